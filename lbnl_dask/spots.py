"""The neighbourhoods of Bragg spots in counts: the pixels ``--keep-spots`` stores exactly.

:func:`spot_regions` marks, in summed and binned counts (n, ny, nx), the pixels around
every strong pixel, within the frame and across frames (a spot's rocking curve), lazily
on the dask array, with the chunks of its input.
"""

from __future__ import annotations

import dask.array as da
import numpy as np

from .background import cell_means, cells_to_pixels


def _with_neighbours(a: np.ndarray, axis: int, op) -> np.ndarray:
    """``op`` of each element with its two neighbours along ``axis`` (none beyond the ends):
    ``np.add`` gives 3-sums, ``np.logical_or`` a one-step dilation."""
    out = a.copy()
    lo, hi = [slice(None)] * a.ndim, [slice(None)] * a.ndim
    lo[axis], hi[axis] = slice(None, -1), slice(1, None)
    lo, hi = tuple(lo), tuple(hi)
    op(out[hi], a[lo], out=out[hi])
    op(out[lo], a[hi], out=out[lo])
    return out


def _spots_block(x, sigma, grow, tile):
    out = np.zeros(x.shape, bool)
    for i, f in enumerate(x):
        finite = np.isfinite(f)
        v = np.where(finite, f, 0)
        b9 = 9 * cell_means(v, finite, tile, zeroed=True)  # per cell, then per pixel: cheaper
        limit = cells_to_pixels(
            (b9 + sigma * np.sqrt(np.maximum(b9, 1.0))).astype(v.dtype), tile, f.shape
        )
        m = finite & (
            _with_neighbours(_with_neighbours(v, 0, np.add), 1, np.add) > limit
        )  # 3 x 3 sums
        for _ in range(grow):
            m = _with_neighbours(_with_neighbours(m, 0, np.logical_or), 1, np.logical_or)
        out[i] = m
    return out


def _grow_frames(m: np.ndarray, f: int) -> np.ndarray:
    for _ in range(f):
        m = _with_neighbours(m, 0, np.logical_or)
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
    grown = m.rechunk((wide, -1, -1)).map_overlap(
        _grow_frames, depth={0: f, 1: 0, 2: 0}, boundary="none", dtype=bool, f=f
    )
    return grown.rechunk(m.chunks) if wide != m.chunks[0] else grown
