"""Integration in shoeboxes and the background away from them (lbnl_dask.integrate)."""

import numpy as np
import pytest

from lbnl_dask import integrate as Q
from lbnl_dask.spots import REFL_DTYPE


def test_invalid_pixels_never_count():
    ref = np.zeros((3, 20, 20))
    out = ref.copy()
    ref[1, 10, 10] = 100
    out[1, 10, 10] = 100
    refl = np.array([(1.0, 10.0, 10.0, 2.0, np.nan)], REFL_DTYPE)
    box = Q.Shoebox(box_half=1, ring=2, frames_half=1)
    assert Q._integrate_block(ref, out, refl, 0, box)[0, 0] == pytest.approx(100)
    out[0, 9, 10] = np.nan  # an invalid pixel in the box: left out
    assert np.isnan(Q._integrate_block(ref, out, refl, 0, box)).all()


def test_background_sums_leave_out_every_shoebox_and_invalid_pixels():
    ref = np.ones((5, 20, 20))
    out = 2 * ref
    ref[0, 0, 0] = np.nan  # invalid in one: left out of both
    refl = np.zeros(1, REFL_DTYPE)
    refl["frame"], refl["y"], refl["x"] = 2, 10, 10
    box = Q.Shoebox(box_half=1, ring=1, frames_half=1)  # 3 frames x 5 x 5 pixels
    bg_in, bg_out = Q.background_sums(ref, out, refl, box)
    assert bg_in == 5 * 400 - 1 - 3 * 25 and bg_out == 2 * bg_in
