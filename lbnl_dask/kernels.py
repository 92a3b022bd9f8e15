"""Compiled (numba) kernels for the per-pixel loops that numpy can only write as many passes.

Each kernel gives, bit for bit, what its numpy reference gives (the numpy version stays the
reference and the fallback; ``tests/test_kernels.py`` holds the two equal on many frames):
floating-point sums are taken in numpy's order (:func:`_pairwise`, numpy's pairwise sum
over a contiguous row) and in the arrays' own type.

numba compiles each kernel on first use and caches it on disk (``cache=True``: beside this
module, or numba's user-wide cache when that is read-only), so a worker process loads it in
milliseconds after the first run. Kernels release the GIL (``nogil``): dask's threads run
them side by side.
"""

from __future__ import annotations

import numba
import numpy as np


def kernel(fn):
    """``numba.njit(nogil=True, cache=True)``; without the disk cache where numba finds no
    writable place for it (it raises RuntimeError then): compiled in every process instead."""
    try:
        return numba.njit(nogil=True, cache=True)(fn)
    except RuntimeError:
        return numba.njit(nogil=True)(fn)


@kernel
def _pairwise_end(acc, tail, n, res):
    """Close numpy's pairwise sums (see :func:`restore_totals`) of each cell of a row of
    cells into ``res`` (cells,): ``acc`` (8, cells) holds the 8 partial sums of the first
    ``n - n % 8`` elements (none if n < 8), ``tail`` (8, cells) the rest, added in order."""
    m8 = n - n % 8 if n >= 8 else 0
    for i in range(res.shape[0]):
        if m8:
            res[i] = ((acc[0, i] + acc[1, i]) + (acc[2, i] + acc[3, i])) + (
                (acc[4, i] + acc[5, i]) + (acc[6, i] + acc[7, i])
            )
        else:
            res[i] = 0
        for t in range(n - m8):
            res[i] += tail[t, i]


@kernel
def _pairwise_slot(acc, tail, k, n):
    """Where element ``k`` of a cell of n goes in numpy's pairwise sum: one of the 8 partial
    sums, or the tail added in order."""
    m8 = n - n % 8 if n >= 8 else 0
    return acc[k % 8] if k < m8 else tail[k - m8]


@kernel
def _mark_strong(original, valid, y0, tile, grow, grown, acc, tail, total, count):
    """Mark in ``grown`` (ny, nx) each strong pixel of the row of cells starting at image row
    ``y0`` (valid, and above its cell's mean by 3 Poisson sigmas), with its diamond of radius
    ``grow``. The other arguments are work arrays."""
    ny, nx = original.shape
    n = tile * tile
    acc[:] = 0
    tail[:] = 0
    count[:] = 0
    zero = acc[0, 0]  # 0 in the frame's type
    for ty in range(min(tile, ny - y0)):
        vrow, orow = valid[y0 + ty], original[y0 + ty]
        for tx in range(tile):
            dest = _pairwise_slot(acc, tail, ty * tile + tx, n)
            for i in range((nx - tx + tile - 1) // tile):
                good = vrow[i * tile + tx]
                dest[i] += orow[i * tile + tx] if good else zero
                count[i] += good
    _pairwise_end(acc, tail, n, total)
    limit = np.empty(total.shape[0], np.float64)
    for i in range(total.shape[0]):
        mean = np.float64(total[i]) / max(count[i], 1)
        limit[i] = mean + 3 * np.sqrt(max(mean, 1.0))
    for y in range(y0, min(y0 + tile, ny)):
        vrow, orow = valid[y], original[y]
        for x in range(nx):
            if vrow[x] and np.float64(orow[x]) > limit[x // tile]:
                for dy in range(max(-grow, -y), min(grow, ny - 1 - y) + 1):
                    w = grow - abs(dy)
                    for dx in range(max(-w, -x), min(w, nx - 1 - x) + 1):
                        grown[y + dy, x + dx] = True


@kernel
def _restore_row(decoded, original, valid, grown, y0, tile, half, acc, tail, sums, count):
    """:func:`restore_totals` on the row of cells starting at image row ``y0``, whose strong
    pixels (and those of the rows beside it) ``grown`` holds. Each pixel is in one class,
    background (0) or strong (1); both are handled side by side, as the numpy reference
    adds their two rounded parts. ``sums`` (4, cells) and ``count`` (2, cells) are work
    arrays; ``acc`` and ``tail`` (4, 8, cells)."""
    ny, nx = decoded.shape
    n = tile * tile
    zero = half - half
    one = half + half
    acc[:] = 0
    tail[:] = 0
    count[:] = 0
    rows = min(tile, ny - y0)
    c0, c1 = count[0], count[1]
    for ty in range(rows):  # each class's total, and what it decoded to
        y = y0 + ty
        vrow, grow_, orow, drow = valid[y], grown[y], original[y], decoded[y]
        for tx in range(tile):
            k = ty * tile + tx
            w0 = _pairwise_slot(acc[0], tail[0], k, n)
            w1 = _pairwise_slot(acc[1], tail[1], k, n)
            d0 = _pairwise_slot(acc[2], tail[2], k, n)
            d1 = _pairwise_slot(acc[3], tail[3], k, n)
            for i in range((nx - tx + tile - 1) // tile):
                x = i * tile + tx
                good = vrow[x]
                strong = good and grow_[x]
                weak = good and not grow_[x]
                o = orow[x] if good else zero
                d = drow[x]
                d = zero if d < 0 else d
                w0[i] += o if weak else zero
                w1[i] += o if strong else zero
                d0[i] += d if weak else zero
                d1[i] += d if strong else zero
                c0[i] += weak
                c1[i] += strong
    for c in range(4):
        _pairwise_end(acc[c], tail[c], n, sums[c])
    cells = sums.shape[1]
    even = np.zeros((2, cells), np.bool_)
    for c in range(2):  # sums[c] becomes the class's ratio of totals
        for i in range(cells):
            if sums[2 + c, i] == 0:  # a class that decoded to nothing: its total spread evenly
                even[c, i] = True
                sums[2 + c, i] = max(count[c, i], 1)
            sums[c, i] = sums[c, i] / sums[2 + c, i]
            sums[2 + c, i] = 0  # now the running sum
    last0, last1 = np.zeros(cells, decoded.dtype), np.zeros(cells, decoded.dtype)
    ratio0, ratio1, run0, run1 = sums[0], sums[1], sums[2], sums[3]
    even0, even1 = even[0], even[1]
    # systematic rounding along each cell: running sums, rounded, then differenced
    for ty in range(rows):
        y = y0 + ty
        vrow, grow_, drow = valid[y], grown[y], decoded[y]
        for tx in range(tile):
            for i in range((nx - tx + tile - 1) // tile):
                x = i * tile + tx
                good = vrow[x]
                strong = good and grow_[x]
                weak = good and not grow_[x]
                d = drow[x]
                d = zero if d < 0 else d
                p0 = (one if weak else zero) if even0[i] else (d if weak else zero)
                p1 = (one if strong else zero) if even1[i] else (d if strong else zero)
                run0[i] += p0 * ratio0[i]
                run1[i] += p1 * ratio1[i]
                r0 = np.floor(run0[i] + half)
                r1 = np.floor(run1[i] + half)
                if good:
                    drow[x] = (r0 - last0[i]) + (r1 - last1[i])
                last0[i] = r0
                last1[i] = r1


@kernel
def restore_totals(decoded, original, valid, tile, grow, half):
    """:func:`lbnl_dask.background.restore_totals` on C-contiguous ``decoded`` and
    ``original`` (ny, nx) of one float type, ``valid`` (ny, nx) bool, ``half`` 0.5 in that
    type; ``tile * tile <= 128`` and ``grow <= tile``. In place.

    The frame is handled a row of cells at a time, in image order, each cell's sums running
    across the row side by side; a cell's sums are numpy's pairwise sums of its pixels taken
    row by row (its order in the reference's (cells, tile * tile) layout). A row's strong
    pixels are found one row of cells ahead, since their halo reaches into the row above."""
    ny, nx = decoded.shape
    cy, cx = (ny + tile - 1) // tile, (nx + tile - 1) // tile
    dtype = decoded.dtype
    acc = np.empty((4, 8, cx), dtype)
    tail = np.empty((4, 8, cx), dtype)
    sums = np.empty((4, cx), dtype)
    count = np.empty((2, cx), np.int64)
    grown = np.zeros((ny, nx), np.bool_)
    _mark_strong(original, valid, 0, tile, grow, grown, acc[0], tail[0], sums[0], count[0])
    for j in range(cy):
        if j + 1 < cy:
            y1 = (j + 1) * tile
            _mark_strong(original, valid, y1, tile, grow, grown, acc[0], tail[0], sums[0],
                         count[0])  # fmt: skip
        _restore_row(decoded, original, valid, grown, j * tile, tile, half, acc, tail, sums,
                     count)  # fmt: skip
    return decoded


@kernel
def summed_binned(x, valid, lim, allbits, flim, out):
    """:func:`lbnl_dask.transform._summed_binned_block` of raw unsigned frames ``x`` (groups,
    s, ny, b, nx * b), each image row contiguous: ``out`` (groups, ny, nx) gets each group's
    sum of its s frames binned b x b, a pixel whose raw value in any frame is all bits set
    (``allbits``) NaN and one >= ``lim`` +inf where ``valid`` (ny, b, nx * b; None: all)
    allows markers; ``flim`` is ``lim`` in the output type. One image row at a time: the s
    rows added (exact: the sums are whole numbers the output type holds), the pixels whose
    sum reaches ``flim`` (counts are >= 0: every marker's does) looked at again, the b rows
    of a cell added, then its b columns."""
    g, s, ny, b, w = x.shape
    nx = w // b
    row = np.empty(w, out.dtype)
    col = np.empty(w, out.dtype)
    for k in range(g):
        for y in range(ny):
            for by in range(b):
                first = x[k, 0, y, by]
                for p in range(w):
                    row[p] = first[p]
                for i in range(1, s):
                    raw = x[k, i, y, by]
                    for p in range(w):
                        row[p] += raw[p]
                for p in range(w):
                    if row[p] >= flim and (valid is None or valid[y, by, p]):
                        invalid, saturated = False, False
                        for i in range(s):
                            invalid |= x[k, i, y, by, p] == allbits
                            saturated |= x[k, i, y, by, p] >= lim
                        if invalid:
                            row[p] = np.nan
                        elif saturated:
                            row[p] = np.inf
                if by == 0:
                    col[:] = row
                else:
                    for p in range(w):
                        col[p] += row[p]
            for xo in range(nx):
                v = col[xo * b]
                for bx in range(1, b):
                    v += col[xo * b + bx]
                out[k, y, xo] = v
    return out
