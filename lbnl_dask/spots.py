"""Bragg spots in counts (n, ny, nx): their neighbourhoods, and their peaks.

:func:`spot_regions` marks, in summed and binned counts, the pixels around every strong
pixel, within the frame and across frames (a spot's rocking curve), lazily on the dask
array, with the chunks of its input: what ``--keep-spots`` stores exactly.
:func:`find_spots` lists the peaks of strong spots, where a dataset has no reflection table
(:mod:`lbnl_dask.quality` integrates them).
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np

from .background import cell_means, cells_to_pixels, local_mean, with_neighbours

#: A reflection list: frame (0-based, output frames), y, x (pixels), d (Å) and true counts.
REFL_DTYPE = [("frame", "f8"), ("y", "f8"), ("x", "f8"), ("d", "f8"), ("truth", "f8")]


def _spots_block(x, sigma, grow, tile):
    """The strong pixels of each frame of counts ``x`` (n, ny, nx), grown (see
    :func:`spot_regions`): the compiled kernel (:func:`lbnl_dask.kernels.strong_pixels`, 8x
    faster on a 4M output frame) for C-contiguous float frames, else :func:`_spots_numpy`,
    the reference: the same pixels."""
    if x.dtype in (np.float32, np.float64) and x.flags.c_contiguous and x.ndim == 3:
        from . import kernels

        out = np.empty(x.shape, bool)
        for i in range(x.shape[0]):
            kernels.strong_pixels(x[i], float(sigma), int(grow), int(tile), out[i])
        return out
    return _spots_numpy(x, sigma, grow, tile)


def _spots_numpy(x, sigma, grow, tile):
    out = np.zeros(x.shape, bool)
    for i, f in enumerate(x):
        finite = np.isfinite(f)
        v = np.where(finite, f, 0)
        b9 = 9 * cell_means(v, finite, tile, zeroed=True)  # per cell, then per pixel: cheaper
        limit = cells_to_pixels(
            (b9 + sigma * np.sqrt(np.maximum(b9, 1.0))).astype(v.dtype), tile, f.shape
        )
        m = finite & (
            with_neighbours(with_neighbours(v, 0, np.add), 1, np.add) > limit
        )  # 3 x 3 sums
        for _ in range(grow):
            m = with_neighbours(with_neighbours(m, 0, np.logical_or), 1, np.logical_or)
        out[i] = m
    return out


def _grow_frames(m: np.ndarray, f: int) -> np.ndarray:
    for _ in range(f):
        m = with_neighbours(m, 0, np.logical_or)
    return m


def _at_least(chunks: tuple, f: int) -> tuple:
    """``chunks`` with neighbours merged until each holds at least ``f`` (a short tail joins
    the chunk before it)."""
    out = []
    for c in chunks:
        if out and out[-1] < f:
            out[-1] += c
        else:
            out.append(c)
    if len(out) > 1 and out[-1] < f:
        tail = out.pop()
        out[-1] += tail
    return tuple(out)


def spot_regions(
    x: da.Array, sigma: float = 5.0, grow: int = 3, frames: int = 2, tile: int = 32
) -> da.Array:
    """Boolean (n, ny, nx): the neighbourhoods of Bragg spots in counts ``x`` (n, ny, nx),
    which ``--keep-spots`` stores exactly while the rest goes through the lossy codec.

    A pixel is *strong* when the sum of its 3 x 3 neighbourhood exceeds 9 x the local
    background (mean of the valid pixels of its ``tile`` x ``tile`` cell) by ``sigma``
    Poisson standard deviations; the strong pixels are grown by ``grow`` pixels within the
    frame and by ``frames`` frames before and after (the rocking curve's tails, across
    chunk boundaries with dask's ``map_overlap``). Chunks of the result are those of ``x``."""
    m = x.map_blocks(_spots_block, float(sigma), int(grow), int(tile), dtype=bool)
    f = min(int(frames), m.shape[0])
    if not f:
        return m
    wide = _at_least(m.chunks[0], f)  # the overlap needs chunks of at least f frames
    grown = m.rechunk((wide, -1, -1), method="tasks").map_overlap(
        _grow_frames, depth={0: f, 1: 0, 2: 0}, boundary="none", dtype=bool, f=f
    )
    return grown.rechunk(m.chunks, method="tasks") if wide != m.chunks[0] else grown


def _local_max(frames: np.ndarray, k: int = 1) -> np.ndarray:
    """True where a pixel is the maximum of its (2k+1)^3 neighbourhood (frames, y, x)."""
    pad = np.pad(np.nan_to_num(frames, nan=-np.inf, posinf=-np.inf), k, constant_values=-np.inf)
    win = np.lib.stride_tricks.sliding_window_view(pad, (2 * k + 1,) * 3)
    return frames >= win.max(axis=(3, 4, 5))


def _find_in_block(block: np.ndarray, offset: int, sigma: float, min_counts: float) -> np.ndarray:
    peaks = []
    cand = np.zeros(block.shape, bool)
    for i, fr in enumerate(block):
        finite = np.isfinite(fr)
        bg = local_mean(fr, finite, tile=16)
        cand[i] = finite & (fr > bg + sigma * np.sqrt(np.maximum(bg, 1.0))) & (fr >= min_counts)
    cand &= _local_max(block)
    for k, y, x in zip(*np.nonzero(cand), strict=False):
        peaks.append((k + offset, y, x, np.nan, np.nan))
    return np.array(peaks, REFL_DTYPE) if peaks else np.zeros(0, REFL_DTYPE)


def find_spots(counts, sigma: float = 6.0, min_counts: float = 10.0) -> np.ndarray:
    """Strong spots of (n, ny, nx) counts (a dask or numpy array): pixels above ``local mean
    + sigma * sqrt(local mean)`` (and ``min_counts``) that are the maximum of their 3 x 3 x 3
    neighbourhood. The local mean is that of the pixel's 16 x 16 tile. Returns reflections
    (frame, y, x). A dask array is searched chunk by chunk in parallel; a numpy array (what
    a ``dask.delayed`` call hands over) in this thread, whole: the same spots."""
    if not isinstance(counts, da.Array):
        counts = np.asarray(counts)
        if counts.ndim != 3:
            raise ValueError(f"find_spots needs (frames, ny, nx) counts, not shape {counts.shape}")
        return _find_in_block(counts, 0, sigma, min_counts)
    parts = []
    starts = np.cumsum((0,) + counts.chunks[0][:-1])
    for i, st in enumerate(starts):
        lo, hi = max(0, st - 1), min(counts.shape[0], st + counts.chunks[0][i] + 1)
        parts.append(
            dask.delayed(_keep_inside)(
                dask.delayed(_find_in_block)(counts[lo:hi], lo, sigma, min_counts),
                st,
                st + counts.chunks[0][i],
            )
        )
    found = dask.compute(*parts)
    return np.concatenate(found) if found else np.zeros(0, REFL_DTYPE)


def _keep_inside(refl, lo, hi):
    return refl[(refl["frame"] >= lo) & (refl["frame"] < hi)]
