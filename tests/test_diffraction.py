"""What the synthetic detector sees: background falling with radius, spots where the
ground truth puts them, the scene shared by every frame."""

import h5py
import numpy as np
import pytest

from lbnl_dask.diffraction import background, geometry, reflections
from lbnl_dask.layout import DET, PIXEL_MASK, block_path
from lbnl_dask.synth import DETECTORS, Experiment, make_dataset, read_reflections


def test_background_falls_with_radius(tiny):
    with h5py.File(tiny, "r") as f:
        a = f[block_path(1)][()].astype(float)
        bcx = f[DET + "/beam_center_x"][()]
        bcy = f[DET + "/beam_center_y"][()]
        mask = f[PIXEL_MASK][()]
    a[:, (a >= 12440).any(axis=0)] = np.nan
    yy, xx = np.mgrid[: a.shape[1], : a.shape[2]]
    r = np.hypot(xx - bcx, yy - bcy)
    keep = (mask == 0) & ~np.isnan(a[0])
    med = np.median(a[:, keep], axis=0)
    r = r[keep]
    assert np.nanmedian(med[r < 20]) > np.nanmedian(med[r > 60])


def test_ground_truth_spots_are_in_the_frames(tmp_path):
    tiny = make_dataset(tmp_path / "gt", "tiny", nframes=60, frames_per_file=60, seed=11)
    refl = read_reflections(tiny.replace("_master.h5", "_reflections.csv"))
    assert len(refl) > 30
    assert {"h", "k", "l", "frame", "x", "y", "d", "counts"} <= set(refl.dtype.names)
    with h5py.File(tiny, "r") as f:
        frames = f[block_path(1)][()].astype(float)
        mask = f[PIXEL_MASK][()]
    ny, nx = mask.shape
    hot = (frames >= 12440).any(axis=0)
    strong = refl[
        (refl["counts"] > 300)
        & (refl["frame"] > 3)
        & (refl["frame"] < 58)
        & (refl["x"] > 8)
        & (refl["x"] < nx - 9)
        & (refl["y"] > 8)
        & (refl["y"] < ny - 9)
    ]
    assert len(strong) >= 3
    checked = 0
    for r in strong:
        x, y, fr = int(round(r["x"])), int(round(r["y"])), int(round(r["frame"])) - 1
        box = np.s_[y - 7 : y + 8, x - 7 : x + 8]
        if mask[box].any() or hot[box].any():
            continue
        near = (
            (np.abs(refl["x"] - r["x"]) < 12)
            & (np.abs(refl["y"] - r["y"]) < 12)
            & (np.abs(refl["frame"] - r["frame"]) < 5)
        )
        if near.sum() > 1:  # an overlapping neighbour would bias this simple integration
            continue
        frames_near = frames[(slice(fr - 2, fr + 3),) + box]
        ring = np.ones((15, 15), bool)
        ring[2:13, 2:13] = False
        bg = frames_near[:, ring].mean(axis=1)  # local background per frame
        per_frame = frames_near[:, 3:12, 3:12].sum(axis=(1, 2)) - 81 * bg
        assert per_frame.sum() == pytest.approx(r["counts"], rel=0.25, abs=80)
        assert 2 <= (per_frame > 0.15 * r["counts"]).sum() <= 4  # rises and falls over 2-3 frames
        checked += 1
    assert checked >= 3


def test_reflections_lie_within_the_frames_and_resolution():
    det, exp = DETECTORS["eiger_1m"], Experiment()
    dist, bcx, bcy, d_min = geometry(det, exp)
    assert 0 < bcx < det.nx and 0 < bcy < det.ny and dist > 0 and d_min > 0
    refl = reflections(det, exp, 30, seed=4)
    assert len(refl) > 10
    assert ((refl["x"] >= 0) & (refl["x"] < det.nx) & (refl["y"] >= 0) & (refl["y"] < det.ny)).all()
    assert (refl["d"] >= d_min * 0.999).all()
    bg = background(det, exp, bcx, bcy)
    assert bg.shape == (det.ny, det.nx) and (bg > 0).all()
