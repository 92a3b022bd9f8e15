"""Integration by summation in shoeboxes, and the background away from every reflection.

Each reflection's *shoebox* is the frames ``frame ± frames_half`` and the pixels within
``box_half`` of its centre (a square); its background is the mean of the finite pixels of
a ring ``ring`` pixels wide around the box, in the same frames. I = sum(box) - n_box *
background, and sigma(I)^2 = sum(box) + (n_box / n_ring)^2 * sum(ring) (Poisson). A
reflection whose box holds an invalid or saturated pixel in either dataset is left out.
The *background* of a dataset is its valid pixels outside every shoebox
(:func:`background_free`), summed overall or by resolution (:mod:`lbnl_dask.shells`).
:mod:`lbnl_dask.quality` turns these into statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dask
import dask.array as da
import numpy as np

from . import shells as shells_mod
from .shells import Geometry

if TYPE_CHECKING:
    from .quality import RunGeometry


@dataclass
class Shoebox:
    """Integration box (output pixels / frames): half-widths of the box and the background ring."""

    box_half: int = 2
    ring: int = 3
    frames_half: int = 2

    @classmethod
    def for_run(cls, run: RunGeometry) -> Shoebox:
        # synthetic spots: sigma 0.9 px, rocking curve sigma ~0.9 frames; Eiger spots are similar
        return cls(
            box_half=max(1, math.ceil(4 / run.b)),
            ring=max(2, math.ceil(4 / run.b)),
            frames_half=max(1, math.ceil(3 / run.s)),
        )


def integrate_block(
    ref: np.ndarray, out: np.ndarray, refl: np.ndarray, offset: int, box: Shoebox
) -> np.ndarray:
    """I and sigma of each reflection in both datasets (n, 4): I_ref, sigma_ref, I_out,
    sigma_out; NaN where the box is not clean (only the output's two where only the output's
    box is not: a reflection the output lost)."""
    res = np.full((len(refl), 4), np.nan)
    n, ny, nx = ref.shape
    h, w, fh = box.box_half, box.ring, box.frames_half
    for j, r in enumerate(refl):
        k, y, x = int(round(r["frame"])) - offset, int(round(r["y"])), int(round(r["x"]))
        f0, f1 = max(0, k - fh), min(n, k + fh + 1)
        y0, y1, x0, x1 = y - h - w, y + h + w + 1, x - h - w, x + h + w + 1
        if f0 >= f1 or y0 < 0 or x0 < 0 or y1 > ny or x1 > nx:
            continue
        inner = np.zeros((y1 - y0, x1 - x0), bool)
        inner[w : w + 2 * h + 1, w : w + 2 * h + 1] = True
        for c, data in enumerate((ref, out)):
            sb = data[f0:f1, y0:y1, x0:x1]
            core = sb[:, inner]
            if not np.isfinite(core).all():
                res[j, 2 * c :] = np.nan
                break
            ring = sb[:, ~inner]
            ring = ring[np.isfinite(ring)]
            if ring.size < 10:
                res[j, 2 * c :] = np.nan
                break
            n_in = core.size
            res[j, 2 * c] = core.sum() - n_in * ring.mean()
            res[j, 2 * c + 1] = math.sqrt(
                max(core.sum(), 0) + (n_in / ring.size) ** 2 * max(ring.sum(), 0)
            )
    return res


def background_free(ref: np.ndarray, out: np.ndarray, refl: np.ndarray, box: Shoebox,
                    offset: int = 0) -> np.ndarray:  # fmt: skip
    """The background pixels (bool, shape of ``ref``): valid in both arrays and in no
    reflection's shoebox (box, ring and frames); ``offset`` is ``ref``'s first frame in the
    reflections' frame numbering."""
    free = np.isfinite(ref) & np.isfinite(out)
    h, fh = box.box_half + box.ring, box.frames_half
    for r in refl:
        k, y, x = int(round(r["frame"])) - offset, int(round(r["y"])), int(round(r["x"]))
        if min(k + fh, y + h, x + h) < 0:  # wholly before the first frame, row or column
            continue
        free[max(0, k - fh) : k + fh + 1, max(0, y - h) : y + h + 1, max(0, x - h) : x + h + 1] = (
            False
        )
    return free


def background_sums(ref: np.ndarray, out: np.ndarray, refl: np.ndarray, box: Shoebox,
                    offset: int = 0) -> tuple[float, float]:  # fmt: skip
    """Summed counts (reference, output) of the background (:func:`background_free`): where
    the lossy step's bias on the weak, unseen reflections shows."""
    free = background_free(ref, out, refl, box, offset)
    return float(ref[free].sum()), float(out[free].sum())


def background_noise(ref: np.ndarray, out: np.ndarray, refl: np.ndarray, box: Shoebox,
                     offset: int = 0):  # fmt: skip
    """:func:`neighbour_moments` of the background (:func:`background_free`): a lossy step
    that flattens the background's noise shows as a lower output variance."""
    return neighbour_moments(ref, out, background_free(ref, out, refl, box, offset))


def neighbour_moments(ref: np.ndarray, out: np.ndarray, free: np.ndarray):
    """The background's noise, as differences between neighbours along a row that are both
    in ``free`` (the background pixels): (how many pairs, moments (2, 2): reference and
    output x sum and sum of squares of the differences, float64). Arrays of any leading
    shape; :func:`noise_variance` turns the moments into variances."""
    pairs = free[..., 1:] & free[..., :-1]
    moments = np.zeros((2, 2))
    for k, frame in enumerate((ref, out)):
        with np.errstate(invalid="ignore"):  # saturated neighbours (inf - inf): not in pairs
            d = np.diff(frame, axis=-1).astype(np.float64, copy=False)
        moments[k] = d.sum(where=pairs), np.square(d).sum(where=pairs)
    return int(np.count_nonzero(pairs)), moments


def noise_variance(pairs: int, moments: np.ndarray, k: int) -> float:
    """The variance of the differences of :func:`neighbour_moments` (k 0: reference, 1:
    output), summed over any number of parts; 0 without pairs."""
    if not pairs:
        return 0.0
    mean = moments[k, 0] / pairs
    return float(max(moments[k, 1] / pairs - mean * mean, 0.0))


def background_by_resolution(ref, out, refl, box: Shoebox, geometry: Geometry | None,
                          offset: int = 0) -> np.ndarray | None:  # fmt: skip
    """The background's counts (reference, output) in fine bins of resolution
    (:func:`lbnl_dask.shells.background_histograms`); None without a geometry."""
    if geometry is None:
        return None
    free = background_free(ref, out, refl, box, offset)
    return shells_mod.background_histograms(ref, out, free, geometry)


def _background_parts(ref: da.Array, out: da.Array, refl, box: Shoebox, geometry) -> list:
    """:func:`background_by_resolution` of a whole dataset: a lazy task per chunk of frames."""
    parts, start = [], 0
    for c in ref.chunks[0]:
        near = refl[(refl["frame"] > start - box.frames_half - 1)
                    & (refl["frame"] < start + c + box.frames_half + 1)]  # fmt: skip
        chunk = (ref[start : start + c], out[start : start + c])
        parts.append(dask.delayed(background_by_resolution)(*chunk, near, box, geometry, start))
        start += c
    return parts


def integrate(ref: da.Array, out: da.Array, refl: np.ndarray, box: Shoebox,
              geometry: Geometry | None = None):  # fmt: skip
    """(I_ref, sigma_ref, I_out, sigma_out) per reflection, computed chunk by chunk in
    parallel. With the output's ``geometry``, also the background by resolution (summed over
    the chunks), in the same pass over the frames: returns (results, histograms) then."""
    if ref.shape != out.shape:
        raise ValueError(f"reference {ref.shape} and compressed {out.shape} frames differ")
    parts, index = [], []
    starts = np.cumsum((0,) + ref.chunks[0][:-1])
    centre = np.rint(refl["frame"]).astype(int)
    for i, st in enumerate(starts):
        sel = np.nonzero((centre >= st) & (centre < st + ref.chunks[0][i]))[0]
        if not len(sel):
            continue
        lo, hi = (
            max(0, st - box.frames_half),
            min(ref.shape[0], st + ref.chunks[0][i] + box.frames_half),
        )
        parts.append(dask.delayed(integrate_block)(ref[lo:hi], out[lo:hi], refl[sel], lo, box))
        index.append(sel)
    background = [] if geometry is None else _background_parts(ref, out, refl, box, geometry)
    computed = dask.compute(*parts, *background)  # one graph: each chunk is read once
    res = np.full((len(refl), 4), np.nan)
    for sel, r in zip(index, computed[: len(parts)], strict=True):
        res[sel] = r
    if geometry is None:
        return res
    return res, np.sum(computed[len(parts) :], axis=0)
