"""Resolution shells: d of pixels, shell ranges and the background shell by shell."""

import numpy as np
import pytest

from lbnl_dask import quality as Q
from lbnl_dask import shells as S
from lbnl_dask.meta import DetectorMeta

# 100 mm, 1 Å, 1 mm pixels, beam at pixel (50, 40)
GEO = S.Geometry(50.0, 40.0, 1e-3, 1e-3, 0.1, 1.0)


def test_d_follows_braggs_law():
    # 100 px = 0.1 m off the beam at 0.1 m: 2-theta 45 deg, d = 1 / (2 sin 22.5 deg)
    assert GEO.d(150.0, 40.0) == pytest.approx(1 / (2 * np.sin(np.radians(22.5))))
    assert GEO.d(50.0, 40.0) == np.inf
    assert GEO.d(50.0, 140.0) == GEO.d(150.0, 40.0)  # a ring about the beam


def test_binning_keeps_d_at_the_same_place():
    meta = DetectorMeta("m", 1, beam_center_x=50.0, beam_center_y=40.0, x_pixel_size=1e-3,
                        y_pixel_size=1e-3, detector_distance=0.1, wavelength=1.0)  # fmt: skip
    g1, g2 = S.Geometry.of_meta(meta), S.Geometry.of_meta(meta, 2)
    # input pixels 120, 121 are output pixel 60 (centre 120.5 in input pixels)
    assert g2.d(60.0, 20.0) == pytest.approx(g1.d(120.5, 40.5))
    assert S.Geometry.of_meta(DetectorMeta("m", 1)) is None


def test_shells_hold_equal_counts_and_cover_every_pixel():
    d = np.linspace(10, 1, 100)
    ranges = S.shell_ranges(d, 4)
    assert [len(p) for p, _, _ in ranges] == [25, 25, 25, 25]
    assert ranges[0][1] == 10 and ranges[-1][2] == 1
    bounds = S.shell_bounds(ranges)
    assert bounds[0][0] == np.inf and bounds[-1][1] == 0
    assert all(bounds[i][1] == bounds[i + 1][0] for i in range(3))  # no gaps
    assert S.shell_ranges(d[:7], 4) == []  # fewer than two a shell


def test_a_bias_at_high_resolution_shows_in_its_shell_only():
    ny, nx = 80, 100
    ref = np.ones((3, ny, nx))
    y, x = np.mgrid[0:ny, 0:nx]
    far = GEO.d(x, y) < 2.0  # the high-resolution corners (down to 1.78 A)
    out = ref.copy()
    out[:, far] = 1.5
    free = np.ones(ref.shape, bool)
    hist = S.background_histograms(ref, out, free, GEO)
    edges = GEO.fine_edges((ny, nx))
    assert hist[0].sum() == ref.sum() and hist[1].sum() == out.sum()
    assert S.shell_background(hist, edges, np.inf, 2.05) == pytest.approx(1.0)
    assert S.shell_background(hist, edges, 1.98, 0.0) == pytest.approx(1.5, rel=0.02)


def unchanged_results(n: int, seed: int):
    """Integration results (I_ref, sigma_ref, I_out, sigma_out) of ``n`` strong reflections
    the output kept as they were, and their table (d from 5 to 1.2 A)."""
    rng = np.random.default_rng(seed)
    res = np.empty((n, 4))
    res[:, 0] = rng.uniform(100, 1000, n)
    res[:, 1] = np.sqrt(res[:, 0])
    res[:, 2], res[:, 3] = res[:, 0], res[:, 1]
    refl = np.zeros(n, Q.REFL_DTYPE)
    refl["d"], refl["truth"] = np.linspace(5, 1.2, n), np.nan
    return res, refl


def test_quality_reports_background_and_i_sigma_per_shell():
    res, refl = unchanged_results(200, 1)
    res[150:, 2] *= 0.9  # the weakest shell loses 10%
    edges = GEO.fine_edges((80, 100))
    hist = np.ones((2, S.FINE_BINS))
    f = Q.summarize(res, refl, 4, background=hist, edges=edges)
    assert [round(sh.mean_ratio, 3) for sh in f.shells] == [1.0, 1.0, 1.0, 0.9]
    assert all(sh.background_ratio == 1.0 for sh in f.shells)
    assert f.overall.background_ratio == 1.0
    assert "bg 1.000" in str(f) and "I/sigma" in str(f)


def test_fidelity_and_the_explorer_use_the_same_shells():
    """As many shells as hold 20 strong reflections each, up to 5: quality.summarize's
    default (so quality.fidelity's) is the explorer's rule. With 52 reflections, 2 shells,
    not 5 of 10 whose one loss of 3% failed a setting the explorer had passed."""
    assert [S.shell_count(n) for n in (0, 19, 20, 52, 99, 100, 10_000)] == [0, 0, 1, 2, 4, 5, 5]
    res, refl = unchanged_results(52, 2)
    assert len(Q.summarize(res, refl).shells) == 2
    assert len(Q.summarize(res, refl, 5).shells) == 5  # asked for: as many as asked
    res[:, 0] /= 1e3  # weak: none at I/sigma >= 3, no shells
    assert Q.summarize(res, refl).shells == []
