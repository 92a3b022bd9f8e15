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


def cell_sums(a, mask, t):
    return {(y, x): a[y : y + t, x : x + t][mask[y : y + t, x : x + t]].sum()
            for y in range(0, a.shape[0], t) for x in range(0, a.shape[1], t)}  # fmt: skip


def test_keep_within_brings_restored_pixels_back_inside_the_bound_totals_kept():
    """An error-bounded codec's promise survives the restored totals: every valid pixel
    within the bound, every cell's strong and background totals as restore_totals left them."""
    from lbnl_dask.background import TOTALS_TILE, _strong, keep_within, restore_totals

    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:61, 0:47]
    for lam, bound in ((0.05, 1.0), (1.5, 3.0), (6.0, 8.5)):
        spots = 3000 * np.exp(-((x - 20) ** 2 + (y - 30) ** 2) / 3.0)
        orig = rng.poisson(lam + spots).astype(np.float32)
        b = np.floor(bound)
        dec = np.rint(orig + rng.uniform(-b, b, orig.shape) + 0.4 * b).astype(np.float32)
        valid = rng.random(orig.shape) > 0.05
        restored = restore_totals(dec.copy(), orig, None, valid=valid)
        assert np.abs(restored - orig)[valid].max() > b  # the case this is for
        out = keep_within(restored.copy(), orig, valid, bound)
        assert np.abs(out - orig)[valid].max() <= b
        assert (out == np.rint(out)).all()
        assert (out[~valid] == restored[~valid]).all()  # the caller's to put back
        strong = _strong(orig, valid, TOTALS_TILE, 2)
        for cls in (valid & ~strong, strong):
            assert cell_sums(out, cls, TOTALS_TILE) == cell_sums(restored, cls, TOTALS_TILE)


def test_keep_within_leaves_a_frame_inside_the_bound_alone():
    from lbnl_dask.background import keep_within

    orig = np.arange(30, dtype=np.float64).reshape(5, 6)
    dec = orig + np.tile([2, -2, 1], 10).reshape(5, 6)
    assert (keep_within(dec.copy(), orig, np.ones(orig.shape, bool), 2.0) == dec).all()
