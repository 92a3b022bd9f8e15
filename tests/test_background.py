"""Local background: cell means of valid pixels, and filling the pixels a codec does not carry."""

import numpy as np

from lbnl_dask.background import cell_means, fill_invalid, local_mean


def test_fill_invalid_uses_local_background():
    f = np.zeros((64, 64), np.int64)
    f[:, 32:] = 100
    bad = np.zeros_like(f, bool)
    bad[10, 5] = bad[10, 50] = True
    filled = fill_invalid(f, bad)
    assert filled[10, 5] == 0 and filled[10, 50] == 100


def test_cell_means_count_only_valid_pixels_and_partial_cells():
    f = np.arange(35 * 40, dtype=np.float64).reshape(35, 40)
    valid = np.ones(f.shape, bool)
    valid[0, 0] = False
    m = cell_means(f, valid, tile=16)
    assert m.shape == (3, 3)
    assert m[0, 0] == f[:16, :16][valid[:16, :16]].mean()
    assert m[2, 2] == f[32:, 32:].mean()  # the partial corner cell: its 3 x 8 pixels only
    empty = np.zeros(f.shape, bool)
    empty[20:, :] = True  # the top cells have no valid pixel: the frame's mean of valid ones
    assert cell_means(f, empty, tile=16)[0, 0] == f[20:].mean()
    px = local_mean(f, valid, tile=16)
    assert px.shape == f.shape and px[33, 39] == m[2, 2]


def test_restore_totals_keeps_every_cells_total_in_whole_counts():
    from lbnl_dask.background import TOTALS_TILE, restore_totals

    rng = np.random.default_rng(3)
    for lam in (0.003, 0.3, 6.0):
        orig = rng.poisson(lam, (61, 47)).astype(np.float64)
        dec = np.rint(orig + rng.normal(0.4, 1.0, orig.shape))  # biased, some negative
        special = np.flatnonzero(rng.random(orig.size) < 0.05)
        dec.reshape(-1)[special] = -7  # what the codec made of them does not matter
        out = restore_totals(dec.copy(), orig, special)
        valid = np.ones(orig.size, bool)
        valid[special] = False
        valid = valid.reshape(orig.shape)
        t = TOTALS_TILE
        for y in range(0, 61, t):
            for x in range(0, 47, t):
                cell = (slice(y, y + t), slice(x, x + t))
                assert out[cell][valid[cell]].sum() == orig[cell][valid[cell]].sum()
        assert (out[valid] >= 0).all() and (out == np.rint(out)).all()
        assert (out.reshape(-1)[special] == -7).all()  # left for the caller to put back
