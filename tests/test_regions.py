"""Regions to omit (-R/-C): every specification format; invalid pixels stay invalid."""

import dask.array as da
import numpy as np
import pytest

from lbnl_dask import regions as R


def test_region_mask_formats():
    m = R.region_mask(["columns_1::4"], (3, 10))
    assert m[0].nonzero()[0].tolist() == [1, 5, 9] and m.all(axis=1).sum() == 0
    m = R.region_mask(["rows_::2"], (5, 3))
    assert m[:, 0].nonzero()[0].tolist() == [0, 2, 4]
    m = R.region_mask(["zero_2_of_5_columns"], (2, 10))
    assert m[0].nonzero()[0].tolist() == [0, 1, 5, 6]
    m = R.region_mask(["zero_1_of_3_rows"], (7, 2))
    assert m[:, 0].nonzero()[0].tolist() == [0, 3, 6]
    m = R.region_mask(["2,4"], (3, 8))
    assert m[1].nonzero()[0].tolist() == [2, 3, 4] and m[:, 2].all()
    m = R.region_mask(["1,2,0,1"], (4, 4))
    assert m.nonzero()[0].tolist() == [0, 0, 1, 1] and m.nonzero()[1].tolist() == [1, 2, 1, 2]
    with pytest.raises(ValueError, match="give 2 numbers"):
        R.region_mask(["1,2,3"], (4, 4))
    with pytest.raises(ValueError, match="not one of"):
        R.region_mask(["columns_0,2::5"], (4, 4))


def test_omit_regions_applies_to_every_frame():
    a = np.ones((3, 4, 5), np.float32)
    a[:, 0, 0] = np.nan
    got = R.omit_regions(
        da.from_array(a, chunks=(1, 4, 5)), R.region_mask(["0,1"], (4, 5))
    ).compute()
    assert (got[:, 1:, :2] == 0).all() and (got[:, :, 2:] == 1).all()
    assert np.isnan(got[:, 0, 0]).all()  # invalid pixels stay invalid
