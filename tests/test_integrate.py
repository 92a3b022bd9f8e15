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
    assert Q.integrate_block(ref, out, refl, 0, box)[0, 0] == pytest.approx(100)
    out[0, 9, 10] = np.nan  # an invalid pixel in the output's box: left out, lost by it
    res = Q.integrate_block(ref, out, refl, 0, box)
    assert np.isnan(res[0, 2:]).all() and res[0, 0] == pytest.approx(100)
    ref[0, 9, 10] = np.nan  # in the original's too: nothing to compare
    assert np.isnan(Q.integrate_block(ref, out, refl, 0, box)).all()


def test_background_sums_leave_out_every_shoebox_and_invalid_pixels():
    ref = np.ones((5, 20, 20))
    out = 2 * ref
    ref[0, 0, 0] = np.nan  # invalid in one: left out of both
    refl = np.zeros(1, REFL_DTYPE)
    refl["frame"], refl["y"], refl["x"] = 2, 10, 10
    box = Q.Shoebox(box_half=1, ring=1, frames_half=1)  # 3 frames x 5 x 5 pixels
    bg_in, bg_out = Q.background_sums(ref, out, refl, box)
    assert bg_in == 5 * 400 - 1 - 3 * 25 and bg_out == 2 * bg_in


def test_a_reflection_off_the_frame_clears_nothing_in_it():
    ref = np.ones((3, 20, 20))
    refl = np.zeros(2, REFL_DTYPE)
    refl["frame"], refl["y"], refl["x"] = 1, -9, 10  # above the first row
    refl["frame"][1], refl["y"][1], refl["x"][1] = 1, 10, -9  # left of the first column
    box = Q.Shoebox(box_half=1, ring=1, frames_half=1)
    assert Q.background_free(ref, ref, refl, box).all()


def test_integration_and_background_in_one_pass():
    import dask.array as da

    from lbnl_dask.shells import Geometry

    rng = np.random.default_rng(3)
    ref = rng.poisson(2.0, (6, 40, 50)).astype(float)
    ref[2, 20, 25] += 400
    refl = np.zeros(1, REFL_DTYPE)
    refl["frame"], refl["y"], refl["x"] = 2, 20, 25
    box = Q.Shoebox(box_half=2, ring=2, frames_half=1)
    geo = Geometry(25.0, 20.0, 1e-3, 1e-3, 0.05, 1.0)
    r = da.from_array(ref, chunks=(2, -1, -1))
    res, hist = Q.integrate(r, r, refl, box, geo)
    assert res[0, 0] == res[0, 2] and res[0, 0] > 350
    assert hist.shape == (2, 400) and hist[0].sum() == hist[1].sum() > 0
    assert np.array_equal(Q.integrate(r, r, refl, box), res)  # without a geometry: results only


def test_the_background_noise_is_the_variance_of_neighbours_differences():
    rng = np.random.default_rng(2)
    ref = rng.poisson(20, (3, 30, 40)).astype(float)
    flat = np.full_like(ref, 20.0)  # a lossy step that flattened the noise away
    free = np.ones(ref.shape, bool)
    free[:, :, 5] = False  # pairs touching it are left out
    pairs, moments = Q.neighbour_moments(ref, flat, free)
    assert pairs == 3 * 30 * (39 - 2)
    d = np.diff(ref, axis=-1)[:, :, [i for i in range(39) if i not in (4, 5)]]
    assert Q.noise_variance(pairs, moments, 0) == pytest.approx(d.var())
    assert Q.noise_variance(pairs, moments, 1) == 0.0
    refl = np.array([(1.0, 15.0, 20.0, 2.0, np.nan)], REFL_DTYPE)
    n_bg, _ = Q.background_noise(ref, flat, refl, Q.Shoebox(box_half=1, ring=1, frames_half=1))
    assert n_bg < 3 * 30 * 39  # the shoebox's pixels are not background
    assert Q.noise_variance(0, np.zeros((2, 2)), 0) == 0.0
