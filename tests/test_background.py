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
