"""Compiled (numba) kernels for the per-pixel loops that numpy can only write as many passes.

Each kernel gives, bit for bit, what its numpy reference gives (the numpy version stays the
reference and the fallback; ``tests/test_kernels.py`` holds the two equal on many frames):
floating-point sums are taken in the reference's order and types (a cell's rows, then its
columns, for the cell sums of the restored totals and the codec's input:
:func:`lbnl_dask.background.cell_totals`; numpy's own order where the reference is a numpy
reduction), integer ones wrap around at 32 bits where the reference's do.

numba compiles each kernel on first use and caches it on disk (``cache=True``: beside this
module, or numba's user-wide cache when that is read-only), so a worker process loads it in
milliseconds after the first run. Kernels release the GIL (``nogil``): dask's threads run
them side by side.

In the loops over pixels, conditions on several flags are written with ``&``, not ``and``:
``and`` short-circuits, which is a branch per pixel, and the loop no longer vectorises
(restore_totals measured 14.8 -> 11.2 ms per 4M output frame for that change alone).
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
def _add_rows(a, b, cols, zero):
    """Add row ``a`` (nx,) into ``cols`` where ``b`` holds: a simple loop with one
    destination (vectorised)."""
    for x in range(cols.shape[0]):
        cols[x] += a[x] if b[x] else zero


@kernel
def _across(cols, tile, out):
    """Close :func:`lbnl_dask.background.cell_totals` for a row of cells: ``out[i]`` (cells,)
    is the sum of ``cols[i * tile : i * tile + tile]`` from the left (``cols`` holds the
    cells' column sums)."""
    nx = cols.shape[0]
    for i in range(out.shape[0]):
        t = cols[i * tile]
        for x in range(i * tile + 1, min(i * tile + tile, nx)):
            t += cols[x]
        out[i] = t


@kernel
def _spread(cells, tile, out):
    """Each pixel of a row of cells gets its cell's value: ``out[x] = cells[x // tile]``
    (``out`` (nx,); spelt out once, so that no loop over pixels divides)."""
    for i in range(cells.shape[0]):
        for x in range(i * tile, min(i * tile + tile, out.shape[0])):
            out[x] = cells[i]


@kernel
def _mark_strong(original, valid, y0, tile, grow, grown, cols, ncols, total, count):
    """Mark in ``grown`` (ny, nx) each strong pixel of the row of cells starting at image row
    ``y0`` (valid, and above its cell's mean by 3 Poisson sigmas), with its diamond of radius
    ``grow``. ``cols`` (nx,) of the frame's type, ``ncols`` (nx,) int64, ``total`` and
    ``count`` (cells,) are work arrays."""
    ny, nx = original.shape
    cols[:] = 0
    ncols[:] = 0
    zero = cols[0]  # 0 in the frame's type
    for ty in range(min(tile, ny - y0)):
        vrow = valid[y0 + ty]
        _add_rows(original[y0 + ty], vrow, cols, zero)
        for x in range(nx):
            ncols[x] += vrow[x]
    _across(cols, tile, total)
    _across(ncols, tile, count)
    cell = np.empty(total.shape[0], np.float64)
    for i in range(total.shape[0]):
        mean = np.float64(total[i]) / max(count[i], 1)
        cell[i] = mean + 3 * np.sqrt(max(mean, 1.0))
    limit = np.empty(nx, np.float64)  # each pixel's cell's
    _spread(cell, tile, limit)
    cur, nxt = np.empty(nx, np.bool_), np.empty(nx, np.bool_)
    for y in range(y0, min(y0 + tile, ny)):
        vrow, orow = valid[y], original[y]
        hits = 0
        for x in range(nx):
            m = vrow[x] & (np.float64(orow[x]) > limit[x])
            cur[x] = m
            hits += m
        if not hits:
            continue
        for w in range(grow + 1):  # the diamond: rows y -+ (grow - w) get the strong
            _or_into(grown, y - (grow - w), cur)  # pixels grown by w along the row
            if w < grow:
                _or_into(grown, y + (grow - w), cur)
                _dilate(cur, nxt)
                cur, nxt = nxt, cur


@kernel
def _or_into(grown, y, row):
    """``grown[y] |= row`` where row y exists."""
    if 0 <= y < grown.shape[0]:
        g = grown[y]
        for x in range(row.shape[0]):
            g[x] |= row[x]


@kernel
def _dilate(a, out):
    """``out`` (n,) = ``a`` (n,) or either of its neighbours (none beyond the ends)."""
    n = a.shape[0]
    for x in range(1, n - 1):
        out[x] = a[x] | a[x - 1] | a[x + 1]
    if n == 1:
        out[0] = a[0]
    elif n > 1:
        out[0] = a[0] | a[1]
        out[n - 1] = a[n - 1] | a[n - 2]


@kernel
def _restore_row(decoded, original, valid, grown, y0, tile, half, work, wcount, sums, count):
    """:func:`restore_totals` on the row of cells starting at image row ``y0``, whose strong
    pixels (and those of the rows beside it) ``grown`` holds. Each pixel is in one class,
    background (0) or strong (1): their sums are taken side by side, each in the numpy
    reference's order, their rounded parts added, as the reference does. Work arrays:
    ``work`` (4 + 2 * tile, nx) of the frame's type, ``wcount`` (2, nx) int64, ``sums`` (4,
    cells), ``count`` (2, cells) int64."""
    ny, nx = decoded.shape
    zero = half - half
    one = half + half
    rows = min(tile, ny - y0)
    cells = sums.shape[1]
    # each class's total, and what it decoded to: column sums, then across each cell; both
    # classes in one pass over the pixels (each sum still runs down its column in row order)
    for r in range(4):
        work[r, :] = zero
    wcount[:, :] = 0
    w0, w1, d0, d1, n0, n1 = work[0], work[1], work[2], work[3], wcount[0], wcount[1]
    for ty in range(rows):
        y = y0 + ty
        vrow, grow_, orow, drow = valid[y], grown[y], original[y], decoded[y]
        for x in range(nx):
            m1 = vrow[x] & grow_[x]
            m0 = vrow[x] & (grow_[x] == False)  # noqa: E712  (not on a bool is a branch)
            o, d = orow[x], zero if drow[x] < 0 else drow[x]
            w0[x] += o if m0 else zero
            w1[x] += o if m1 else zero
            d0[x] += d if m0 else zero
            d1[x] += d if m1 else zero
            n0[x] += m0
            n1[x] += m1
    for c in range(2):
        _across(work[c], tile, sums[c])
        _across(work[2 + c], tile, sums[2 + c])
        _across(wcount[c], tile, count[c])
    for c in range(2):  # sums[c] becomes the class's ratio of totals, sums[2 + c] 1 where
        for i in range(cells):  # the class decoded to nothing (its total spread evenly)
            even = sums[2 + c, i] == 0
            if even:
                sums[2 + c, i] = max(count[c, i], 1)  # in the frame's type, as numpy divides
            sums[c, i] = sums[c, i] / sums[2 + c, i]
            sums[2 + c, i] = one if even else zero
    # each pixel's share, p * ratio, in two rows per image row (class 0, class 1) ...
    share = work[4:]
    for c in range(2):  # each pixel's cell's ratio (work[c]) and evenness (work[2 + c])
        _spread(sums[c], tile, work[c])
        _spread(sums[2 + c], tile, work[2 + c])
    for ty in range(rows):
        y = y0 + ty
        vrow, grow_, drow = valid[y], grown[y], decoded[y]
        for c in range(2):
            q, ratio, flat = share[2 * ty + c], work[c], work[2 + c]
            strong = c == 1
            for x in range(nx):
                member = vrow[x] & (grow_[x] == strong)
                p = one if flat[x] else (zero if drow[x] < 0 else drow[x])
                q[x] = (p if member else zero) * ratio[x]
    # ... then systematic rounding along each cell: running sums, rounded, differenced
    sums[:] = 0  # the running sums (0, 1) and the last rounded ones (2, 3)
    for ty in range(rows):
        for c in range(2):
            q, run, last = share[2 * ty + c], sums[c], sums[2 + c]
            for tx in range(tile):
                for i in range((nx - tx + tile - 1) // tile):
                    x = i * tile + tx
                    t = run[i] + q[x]
                    run[i] = t
                    r = np.floor(t + half)
                    q[x] = r - last[i]
                    last[i] = r
        vrow, drow, q0, q1 = valid[y0 + ty], decoded[y0 + ty], share[2 * ty], share[2 * ty + 1]
        for x in range(nx):
            drow[x] = q0[x] + q1[x] if vrow[x] else drow[x]


@kernel
def restore_totals(decoded, original, valid, tile, grow, half):
    """:func:`lbnl_dask.background.restore_totals` on C-contiguous ``decoded`` and
    ``original`` (ny, nx) of one float type, ``valid`` (ny, nx) bool, ``half`` 0.5 in that
    type; ``grow <= tile``. In place.

    The frame is handled a row of cells at a time, in image order, each cell's sums running
    across the row side by side, added in :func:`lbnl_dask.background.cell_totals`' order
    (whole image rows first: loops over contiguous memory). A row's strong pixels are found
    one row of cells ahead, since their halo reaches into the row above."""
    ny, nx = decoded.shape
    cy, cx = (ny + tile - 1) // tile, (nx + tile - 1) // tile
    dtype = decoded.dtype
    work = np.empty((4 + 2 * tile, nx), dtype)
    wcount = np.empty((2, nx), np.int64)
    sums = np.empty((4, cx), dtype)
    count = np.empty((2, cx), np.int64)
    grown = np.zeros((ny, nx), np.bool_)
    _mark_strong(original, valid, 0, tile, grow, grown, work[0], wcount[0], sums[0], count[0])
    for j in range(cy):
        if j + 1 < cy:
            _mark_strong(original, valid, (j + 1) * tile, tile, grow, grown, work[0], wcount[0],
                         sums[0], count[0])  # fmt: skip
        _restore_row(decoded, original, valid, grown, j * tile, tile, half, work, wcount, sums,
                     count)  # fmt: skip
    return decoded


#: Pixels of a row that :func:`summed_binned` counts candidates in at a time: a marker (a
#: module gap's pixel, a saturated one) makes only its span be looked at pixel by pixel.
SPAN = 64


@kernel
def summed_binned(x, valid, masked, lim, allbits, flim, out):
    """:func:`lbnl_dask.transform._summed_binned_block` of raw unsigned frames ``x`` (groups,
    s, ny, b, nx * b), each image row contiguous: ``out`` (groups, ny, nx) gets each group's
    sum of its s frames binned b x b, a pixel whose raw value in any frame is all bits set
    (``allbits``) NaN and one >= ``lim`` +inf where ``valid`` (ny, b, nx * b; None: all)
    allows markers, NaN where ``masked`` (ny, nx; None: none) holds, as the reference's
    caller sets them; ``flim`` is ``lim`` in the output type. One image row at a time: the s
    rows added in numpy's order and types (the first two converted to the output type, then
    each raw row added as numpy's mixed-type add does), the pixels whose
    sum reaches ``flim`` (counts are >= 0: every marker's does) looked at again, the b rows
    of a cell added, then its b columns. A cell's first row sums straight into the column
    sums and its last is added in the binning loop: two passes over each row fewer than the
    reference's (7.6 -> 5.8 ms per 4M output frame of -s 2 -b 2), the same additions."""
    g, s, ny, b, w = x.shape
    nx = w // b
    row = np.empty(w, out.dtype)
    col = np.empty(w, out.dtype)
    kind = out.dtype.type
    for k in range(g):
        for y in range(ny):
            for by in range(b):
                acc = col if by == 0 else row  # a cell's first row goes straight into col
                first = x[k, 0, y, by]
                if s >= 2:  # numpy adds the first two frames in the output type
                    second = x[k, 1, y, by]
                    for p in range(w):
                        acc[p] = kind(first[p]) + kind(second[p])
                    for i in range(2, s):  # then the raw values as they are (float64 for
                        raw = x[k, i, y, by]  # 32-bit ones)
                        for p in range(w):
                            acc[p] += raw[p]
                else:
                    for p in range(w):
                        acc[p] = first[p]
                for p0 in range(0, w, SPAN):  # a vectorised count per span first: only
                    p1 = min(p0 + SPAN, w)  # the spans holding a candidate are looked at
                    hits = 0  # (a module gap crosses every row, but only a span or two)
                    for p in range(p0, p1):
                        hits += acc[p] >= flim
                    for p in range(p0, p1 if hits else p0):
                        if acc[p] >= flim and (valid is None or valid[y, by, p]):
                            invalid, saturated = False, False
                            for i in range(s):
                                invalid |= x[k, i, y, by, p] == allbits
                                saturated |= x[k, i, y, by, p] >= lim
                            if invalid:
                                acc[p] = np.nan
                            elif saturated:
                                acc[p] = np.inf
                if 0 < by < b - 1:  # the last row is added in the columns' loop below
                    for p in range(w):
                        col[p] += row[p]
            if b == 1:
                for xo in range(nx):
                    out[k, y, xo] = col[xo]
            elif b == 2:  # the usual bin, written out: the compiler vectorises it
                for xo in range(nx):
                    left, right = 2 * xo, 2 * xo + 1
                    out[k, y, xo] = (col[left] + row[left]) + (col[right] + row[right])
            else:
                for xo in range(nx):
                    v = col[xo * b] + row[xo * b]
                    for bx in range(1, b):
                        v += col[xo * b + bx] + row[xo * b + bx]
                    out[k, y, xo] = v
            if masked is not None:  # cells holding a masked pixel (module gaps): NaN, here
                mrow = masked[y]  # where the row is in cache, not in a pass of its own
                for xo in range(nx):
                    if mrow[xo]:
                        out[k, y, xo] = np.nan
    return out


# ---------------------------------------------------------------- the HCompress round trip
# lbnl_dask.hcompress_fast describes the algorithm and holds the numpy reference; these are
# its steps element by element, per tile. numba computes int32 arithmetic in 64 bits: values
# are brought back to 32 bits (np.int32 / np.uint32 wrap around, as C's int does) before every
# step whose result depends on more than the low 32 bits (shifts right, signs, divisions).


@kernel
def _quantise(c, scale, fwd, inv, zeros, round_inv):
    """hcompress_fast._quantise of one difference ``c``: (sign -1/0, magnitude as int32,
    magnitude after htrans' rounding, for the exactness bound)."""
    c = np.int32(c)
    s = np.int32(np.int32(c + zeros) >> 31) if zeros else np.int32(c >> 31)
    m = np.uint32(abs(np.int64(c)))
    if fwd:
        if fwd > 1:
            m = np.uint32(m + (s & (fwd - 1)))
        m = np.uint32(m + fwd)
        m = np.uint32(m & ((-2 * fwd) & 0xFFFFFFFF))
    top = np.int64(m)
    if scale > 1:
        m = np.uint32(m + ((scale + 1) // 2 - 1))
        # m // scale, as a float64 division: exact for m < 2**32 (the quotient's rounding
        # error is below 1/scale), and much cheaper than an integer division
        m = np.uint32(np.int64(np.floor(np.float64(m) / scale)) * scale)
    if round_inv:
        m = np.uint32(m + inv)
        m = np.uint32(m & ((-2 * inv) & 0xFFFFFFFF))
    return s, np.int32(m), top


@kernel
def _round_h0(h, k):
    """htrans' rounding of a sum: ``(h >= 0 ? h + 2 << k : h + (2 << k) - 1) & -4 << k``."""
    h = np.int64(np.int32(h))
    return np.int32((h + (h >> 31) + (np.int64(2) << k)) & (np.int64(-4) << k))


@kernel
def _forward(b, k, h0, hx, hy, hc):
    """hcompress_fast._forward_level on one tile's block ``b`` (n, m) into h0 (ceil n/2,
    ceil m/2), hx (n//2, ceil m/2), hy (ceil n/2, m//2), hc (n//2, m//2); h0 rounded."""
    n, m = b.shape
    ne, me = n // 2, m // 2
    shift = 1 if k > 0 else 0
    for i in range(ne):
        for j in range(me):
            a00, a01 = np.int64(b[2 * i, 2 * j]), np.int64(b[2 * i, 2 * j + 1])
            a10, a11 = np.int64(b[2 * i + 1, 2 * j]), np.int64(b[2 * i + 1, 2 * j + 1])
            u, v = np.int32(a11 + a10), np.int32(a01 + a00)
            w, z = np.int32(a11 - a10), np.int32(a01 - a00)
            h0[i, j] = _round_h0(np.int32(u + v) >> shift, k)
            hx[i, j] = np.int32(u - v) >> shift
            hy[i, j] = np.int32(w + z) >> shift
            hc[i, j] = np.int32(w - z) >> shift
    up = 1 - shift  # odd edges: doubled on the first level
    if m % 2:
        for i in range(ne):
            c0, c1 = np.int64(b[2 * i, m - 1]), np.int64(b[2 * i + 1, m - 1])
            h0[i, me] = _round_h0((c1 + c0) << up, k)
            hx[i, me] = np.int32((c1 - c0) << up)
    if n % 2:
        for j in range(me):
            r0, r1 = np.int64(b[n - 1, 2 * j]), np.int64(b[n - 1, 2 * j + 1])
            h0[ne, j] = _round_h0((r1 + r0) << up, k)
            hy[ne, j] = np.int32((r1 - r0) << up)
        if m % 2:
            h0[ne, me] = _round_h0(np.int64(b[n - 1, m - 1]) << (up + 1), k)


@kernel
def _signed(s, m):
    """A magnitude with its sign (-1/0) of _quantise, as int32."""
    return np.int32((np.int64(m) ^ s) - s)


@kernel
def _details(hx, hy, hc, hy_last, r, s, delta, w, scale, k, zeros, round_inv):
    """hcompress_fast._details for one tile: hx in place (its full blocks' values towards 0
    by lowbit0), the odd row of hy into hy_last (1, m//2), and r, s, delta, w (n//2, m//2)
    as _inverse takes them; returns the largest magnitude htrans' rounding left (``top``
    of hcompress_fast._exact)."""
    ne, me = hc.shape
    bit0 = 1 << k
    top = np.int64(0)
    for i in range(ne):  # the full blocks: hx, hy, hc and what hinv makes of them together
        for j in range(me):
            sx, mx, tx = _quantise(hx[i, j], scale, bit0, bit0, zeros[0], round_inv[0])
            sy, my, ty = _quantise(hy[i, j], scale, bit0, bit0, zeros[1], round_inv[1])
            sc, mc, tc = _quantise(hc[i, j], scale, 0, bit0 >> 1, zeros[2], round_inv[2])
            top = max(top, tx, ty, tc)
            low0 = np.int64(mc & bit0)
            x = _signed(sx, np.int64(mx) - low0)
            y = _signed(sy, np.int64(my) - low0)
            c = _signed(sc, mc)
            low1 = np.int64((c ^ x ^ y) & (2 << k))
            hx[i, j] = x
            w[i, j] = np.int32((((low0 >> k) - 1) & low1) << 1)
            delta[i, j] = np.int32(low0 - low1)
            r[i, j] = np.int32(np.int64(y) + c)
            s[i, j] = np.int32(np.int64(y) - c)
    if hx.shape[1] > me:  # the odd column's hx
        for i in range(ne):
            sx, mx, tx = _quantise(hx[i, me], scale, bit0, bit0, zeros[0], round_inv[0])
            top = max(top, tx)
            hx[i, me] = _signed(sx, mx)
    if hy.shape[0] > ne:  # the odd row's hy
        for j in range(me):
            sy, my, ty = _quantise(hy[ne, j], scale, bit0, bit0, zeros[1], round_inv[1])
            top = max(top, ty)
            hy_last[0, j] = _signed(sy, my)
    return top


@kernel
def _inverse(h0, hx, hy_last, r, s, delta, w, k, out):
    """hcompress_fast._inverse_level for one tile: ``out`` (n, m) from the rebuilt sums h0
    (changed in place) and the level's details; the sums' division (by 4 on the last level,
    else by 2) made as each pixel is written."""
    n, m = out.shape
    ne, me = n // 2, m // 2
    shift = 2 if k == 0 else 1
    for i in range(ne):
        for j in range(me):
            h = np.int64(h0[i, j])
            h = np.int64(np.int32(h + delta[i, j] + ((h >> 31) & w[i, j])))
            p, q = h + hx[i, j], h - hx[i, j]
            out[2 * i + 1, 2 * j + 1] = np.int32(p + r[i, j]) >> shift
            out[2 * i + 1, 2 * j] = np.int32(p - r[i, j]) >> shift
            out[2 * i, 2 * j + 1] = np.int32(q + s[i, j]) >> shift
            out[2 * i, 2 * j] = np.int32(q - s[i, j]) >> shift
    bit1 = np.int64(2) << k
    if m % 2:  # last column: pairs of rows; h0 towards 0 by hx's lowbit1
        for i in range(ne):
            d, h = np.int64(hx[i, me]), np.int64(h0[i, me])
            sign = h >> 31
            h = np.int64(np.int32(h - (((d & bit1) ^ sign) - sign)))
            out[2 * i + 1, m - 1] = np.int32(h + d) >> shift
            out[2 * i, m - 1] = np.int32(h - d) >> shift
    if n % 2:  # last row: pairs of columns
        for j in range(me):
            d, h = np.int64(hy_last[0, j]), np.int64(h0[ne, j])
            sign = h >> 31
            h = np.int64(np.int32(h - (((d & bit1) ^ sign) - sign)))
            out[n - 1, 2 * j + 1] = np.int32(h + d) >> shift
            out[n - 1, 2 * j] = np.int32(h - d) >> shift
        if m % 2:
            out[n - 1, m - 1] = h0[ne, me] >> shift


@kernel
def _wrap(v):
    """``v`` (64-bit) as C's 32-bit int holds it."""
    return np.int64(np.int32(v))


@kernel
def _sum_roundtrip(v, scale, log2n):
    """hcompress_fast._sum_roundtrip of one tile's 1 x 1 sum."""
    v = np.int64(v)
    if scale > 1:
        d = (scale + 1) // 2 - 1
        t = _wrap(v + (d if v > 0 else -d))
        v = _wrap((-1 if t < 0 else 1) * (abs(t) // scale) * scale)
    prnd2 = np.int64(1) << log2n
    return np.int32(_wrap(v + (prnd2 if v >= 0 else prnd2 - 1)) & -(2 * prnd2))


@kernel
def hcompress_tiles(tiles, out, scale, log2n, zeros, round_inv, tops):
    """hcompress_fast's round trip of a stack of int32 tiles (t, rows, cols), all of
    ``log2n`` levels, into ``out`` (int32, or a float type: the frame's counts, converted as
    numpy converts int32); ``zeros`` (log2n, 3) and ``round_inv`` (log2n, 3) are
    _zero_run and _quantise's last rounding for hx, hy, hc at each level. ``tops`` (t,
    log2n) gets each tile's largest difference magnitude at each level, from which the
    caller decides (hcompress_fast._exact) where astropy's own round trip must run."""
    rows, cols = tiles.shape[1], tiles.shape[2]
    half_r, half_c = (rows + 1) // 2, (cols + 1) // 2
    # each level's details, kept for the way back (level k in [k, :n//2, :m//2] and so on)
    hxs = np.empty((log2n, half_r, half_c), np.int32)
    hys = np.empty((log2n, 1, half_c), np.int32)
    rs = np.empty((log2n, half_r, half_c), np.int32)
    ss = np.empty_like(rs)
    deltas = np.empty_like(rs)
    ws = np.empty_like(rs)
    ns = np.empty(log2n + 1, np.int64)
    ms = np.empty(log2n + 1, np.int64)
    ns[0], ms[0] = rows, cols
    for k in range(log2n):
        ns[k + 1], ms[k + 1] = ns[k] - ns[k] // 2, ms[k] - ms[k] // 2
    for t in range(tiles.shape[0]):
        b = tiles[t]
        for k in range(log2n):
            n, m = ns[k], ms[k]
            ne, me = n // 2, m // 2
            h0 = np.empty((n - ne, m - me), np.int32)
            hy = np.empty((n - ne, me), np.int32)
            hc = np.empty((ne, me), np.int32)
            hx = hxs[k, :ne, : m - me]
            _forward(b, k, h0, hx, hy, hc)
            top = _details(hx, hy, hc, hys[k, :, :me], rs[k, :ne, :me], ss[k, :ne, :me],
                           deltas[k, :ne, :me], ws[k, :ne, :me], scale, k, zeros[k],
                           round_inv[k])  # fmt: skip
            tops[t, k] = top
            b = h0
        h0 = np.empty((1, 1), np.int32)
        h0[0, 0] = _sum_roundtrip(b[0, 0], scale, log2n)
        for k in range(log2n - 1, -1, -1):
            n, m = ns[k], ms[k]
            ne, me = n // 2, m // 2
            if k == 0:  # the last level straight into out, in its type (int32 or a float)
                _inverse(h0, hxs[0, :ne, : m - me], hys[0, :, :me], rs[0, :ne, :me],
                         ss[0, :ne, :me], deltas[0, :ne, :me], ws[0, :ne, :me], 0,
                         out[t])  # fmt: skip
                break
            level = np.empty((n, m), np.int32)
            _inverse(h0, hxs[k, :ne, : m - me], hys[k, :, :me], rs[k, :ne, :me],
                     ss[k, :ne, :me], deltas[k, :ne, :me], ws[k, :ne, :me], k, level)  # fmt: skip
            h0 = level
    return tops


@kernel
def _cell_sums_work(ny, nx, tile):
    """Work arrays for the float64 sums and counts of a frame's ``tile`` x ``tile`` cells:
    (cells_y, cells_x) float64 and int64, and a row's column sums (nx,) of each."""
    cy, cx = (ny + tile - 1) // tile, (nx + tile - 1) // tile
    return (np.empty((cy, cx), np.float64), np.empty((cy, cx), np.int64),
            np.empty(nx, np.float64), np.empty(nx, np.int64))  # fmt: skip


@kernel
def codec_input(frame, keep, lo, hi, tile, out, valid):
    """:func:`lbnl_dask.roundtrip._prepared` of ``frame`` (ny, nx) float, C-contiguous: marks
    in ``valid`` (ny, nx) bool its finite pixels not in ``keep`` (ny, nx) bool (shape (0, 0):
    none kept), and writes to ``out`` (ny, nx, the codec's type) the valid pixels clipped to
    [``lo``, ``hi``] (in the frame's type) and rounded, the others the mean of the valid ones
    of their ``tile`` x ``tile`` cell (the frame's mean in a cell without any), rounded.
    The cell sums are float64, in
    :func:`lbnl_dask.background.cell_totals`' order, as the reference's; the frame's mean
    (for cells without a valid pixel) is summed in order where numpy sums pairwise, which
    whole counts (exact in any order) do not see."""
    ny, nx = frame.shape
    tot, cnt, cols, ncols = _cell_sums_work(ny, nx, tile)
    cy, cx = tot.shape
    has_keep = keep.shape[0] != 0
    for j in range(cy):  # each cell's sum and count of valid pixels, clipped
        cols[:] = 0
        ncols[:] = 0
        for y in range(j * tile, min(j * tile + tile, ny)):
            f, v = frame[y], valid[y]
            for x in range(nx):
                v[x] = np.isfinite(f[x])
            if has_keep:
                k = keep[y]
                for x in range(nx):
                    v[x] = v[x] & (not k[x])
            for x in range(nx):
                cols[x] += min(max(f[x], lo), hi) if v[x] else 0.0
            for x in range(nx):
                ncols[x] += v[x]
        _across(cols, tile, tot[j])
        _across(ncols, tile, cnt[j])
    n_valid = cnt.sum()
    fallback = tot.sum() / n_valid if n_valid else 0.0
    means = np.empty(cx, np.float64)
    fill = np.empty(nx, frame.dtype)  # each column's cell's mean, in the frame's type
    for j in range(cy):
        for i in range(cx):
            means[i] = tot[j, i] / cnt[j, i] if cnt[j, i] > 0 else fallback
        _spread(means, tile, fill)
        for y in range(j * tile, min(j * tile + tile, ny)):
            f, v, o = frame[y], valid[y], out[y]
            for x in range(nx):
                o[x] = np.rint(min(max(f[x], lo), hi) if v[x] else fill[x])


@kernel
def strong_pixels(f, sigma, grow, tile, out):
    """:func:`lbnl_dask.spots._spots_numpy` of one frame ``f`` (ny, nx) float, C-contiguous,
    into ``out`` (ny, nx) bool: finite pixels whose 3 x 3 sum (non-finite neighbours 0, in
    ``f``'s type, added as the reference adds them: each row with the one above, then the
    one below; then so along the row) exceeds 9 x their ``tile`` x ``tile`` cell's mean of
    finite pixels by ``sigma`` Poisson sigmas (the limit made in float64, then ``f``'s type),
    grown ``grow`` times by a pixel to all 8 neighbours. The cell sums are float64 in
    :func:`lbnl_dask.background.cell_totals`' order (the frame's mean, which only cells
    without a finite pixel use, in order where numpy sums pairwise: no pixel of such a cell
    can be strong)."""
    ny, nx = f.shape
    if ny == 0 or nx == 0:
        return out
    tot, cnt, cols, ncols = _cell_sums_work(ny, nx, tile)
    cy, cx = tot.shape
    zero = f.dtype.type(0)
    for j in range(cy):  # each cell's sum and count of finite pixels
        cols[:] = 0
        ncols[:] = 0
        for y in range(j * tile, min(j * tile + tile, ny)):
            row = f[y]
            for x in range(nx):
                ok = np.isfinite(row[x])
                cols[x] += row[x] if ok else 0.0
                ncols[x] += ok
        _across(cols, tile, tot[j])
        _across(ncols, tile, cnt[j])
    n_ok = cnt.sum()
    fallback = tot.sum() / n_ok if n_ok else 0.0
    limit = np.empty((cy, cx), f.dtype)
    for j in range(cy):
        for i in range(cx):
            b9 = 9 * (tot[j, i] / cnt[j, i] if cnt[j, i] > 0 else fallback)
            limit[j, i] = b9 + sigma * np.sqrt(max(b9, 1.0))
    lim = np.empty(nx, f.dtype)  # each column's cell's, for the current row of cells
    v = np.empty((3, nx), f.dtype)  # rows y-1, y, y+1, non-finite as 0 (a ring)
    col3 = np.empty(nx, f.dtype)
    for y in range(min(2, ny)):
        for x in range(nx):
            v[y % 3, x] = f[y, x] if np.isfinite(f[y, x]) else zero
    for y in range(ny):
        if y % tile == 0:
            _spread(limit[y // tile], tile, lim)
        if y + 1 < ny and y >= 1:  # row y + 1 into the ring
            nxt = f[y + 1]
            r = v[(y + 1) % 3]
            for x in range(nx):
                r[x] = nxt[x] if np.isfinite(nxt[x]) else zero
        mid = v[y % 3]
        for x in range(nx):
            col3[x] = mid[x]
        if y > 0:
            up = v[(y - 1) % 3]
            for x in range(nx):
                col3[x] += up[x]
        if y + 1 < ny:
            down = v[(y + 1) % 3]
            for x in range(nx):
                col3[x] += down[x]
        frow, orow = f[y], out[y]
        for x in range(1, nx - 1):  # (the ends below: no branch in this loop)
            t = (col3[x] + col3[x - 1]) + col3[x + 1]
            orow[x] = np.isfinite(frow[x]) & (t > lim[x])
        t = col3[0] + col3[1] if nx > 1 else col3[0]
        orow[0] = np.isfinite(frow[0]) & (t > lim[0])
        if nx > 1:
            t = col3[nx - 1] + col3[nx - 2]
            orow[nx - 1] = np.isfinite(frow[nx - 1]) & (t > lim[nx - 1])
    if grow > 0:
        tmp = np.empty((ny, nx), np.bool_)
        for _ in range(grow):  # each step: rows with their neighbours, then columns
            for y in range(ny):
                t, o = tmp[y], out[y]
                for x in range(nx):
                    t[x] = o[x]
                if y > 0:
                    a = out[y - 1]
                    for x in range(nx):
                        t[x] |= a[x]
                if y + 1 < ny:
                    a = out[y + 1]
                    for x in range(nx):
                        t[x] |= a[x]
            for y in range(ny):
                t, o = tmp[y], out[y]
                for x in range(nx):
                    o[x] = t[x]
                for x in range(1, nx):
                    o[x] |= t[x - 1]
                for x in range(nx - 1):
                    o[x] |= t[x + 1]
    return out


@kernel
def lz4_blocks(chunk, nblocks, bound):
    """:func:`lbnl_dask.bslz4._walk_blocks`: the sizes of ``nblocks`` LZ4 blocks (big-endian
    uint32 before each) followed from byte 12 of ``chunk`` (uint8)."""
    end, pos = chunk.shape[0], 12
    for k in range(nblocks):
        if pos + 4 > end:
            return pos, k, -1
        size = (np.int64(chunk[pos]) << 24) | (np.int64(chunk[pos + 1]) << 16) | (
            np.int64(chunk[pos + 2]) << 8) | np.int64(chunk[pos + 3])  # fmt: skip
        pos += 4 + size
        if size > bound or pos > end:
            return pos, k, size
    return pos, -1, 0


@kernel
def outside_bound(decoded, original, valid, b):
    """How many ``valid`` pixels of ``decoded`` lie more than ``b`` from ``original`` (2-D,
    one float type): :func:`lbnl_dask.background.keep_within`'s first look."""
    n = 0
    for y in range(decoded.shape[0]):
        for x in range(decoded.shape[1]):
            n += valid[y, x] & (abs(decoded[y, x] - original[y, x]) > b)
    return n


@kernel
def keep_within(decoded, original, valid, strong, b, tile):
    """:func:`lbnl_dask.background.keep_within_numpy` in place on C-contiguous 2-D frames
    of one float type (``valid``, ``strong`` bool): cell by cell, each class's pixels clipped
    to ``original`` +- ``b``, then what the clip took given to those with room, in the
    reference's order and float64 arithmetic (the same pixels)."""
    ny, nx = decoded.shape
    for y0 in range(0, ny, tile):
        y1 = min(y0 + tile, ny)
        for x0 in range(0, nx, tile):
            x1 = min(x0 + tile, nx)
            for k in range(2):
                cls = k == 1
                excess = 0.0
                for y in range(y0, y1):
                    for x in range(x0, x1):
                        if valid[y, x] and strong[y, x] == cls:
                            o, d = original[y, x], decoded[y, x]
                            c = min(max(d, o - b), o + b)
                            excess += np.float64(d) - np.float64(c)
                            decoded[y, x] = c
                if excess == 0.0:
                    continue
                up = excess > 0.0
                room = 0.0
                for y in range(y0, y1):
                    for x in range(x0, x1):
                        if valid[y, x] and strong[y, x] == cls:
                            o, c = original[y, x], decoded[y, x]
                            room += np.float64((o + b) - c) if up else np.float64(c - (o - b))
                q = abs(excess) / max(room, 1.0)
                cum, given = 0.0, 0.0
                for y in range(y0, y1):
                    for x in range(x0, x1):
                        if valid[y, x] and strong[y, x] == cls:
                            o, c = original[y, x], decoded[y, x]
                            r = np.float64((o + b) - c) if up else np.float64(c - (o - b))
                            cum += r * q
                            g = np.floor(cum + 0.5) - given
                            given += g
                            decoded[y, x] = c + g if up else c - g


@kernel
def put_back(decoded, original, valid):
    """``decoded`` (C-contiguous) gets ``original``'s values (its type) where ``valid`` (bool,
    the same shape) is False: the pixels a round trip does not carry, back as they were."""
    d, o, v = decoded.reshape(-1), original.reshape(-1), valid.reshape(-1)
    for i in range(d.size):
        d[i] = d[i] if v[i] else o[i]


@kernel
def whole_counts(x, over, top, saturation, allbits, out):
    """:func:`lbnl_dask.transform._finalize_numpy` of whole counts ``x`` (C-contiguous float,
    any shape) into ``out`` (its shape, an unsigned integer type) in one pass: NaN ->
    ``allbits``, values at or above ``over`` (in ``x``'s type: the saturation, or +inf where
    every overload is marked) -> ``saturation`` (both of ``out``'s type), the others clipped
    to [0, ``top``] (the largest valid value, in ``x``'s type) and converted."""
    a, o = x.reshape(-1), out.reshape(-1)
    zero = top - top
    for i in range(a.size):
        v = a[i]
        if v != v:
            o[i] = allbits
        elif v >= over:
            o[i] = saturation
        else:
            o[i] = min(max(v, zero), top)
    return out


@kernel
def frame_fidelity(r, out, kept, sums, moments):
    """:func:`lbnl_dask.quality._frame_fidelity_numpy` of one sampled frame in one pass:
    ``r`` and ``out`` (ny, nx) float (the lossless reference and the output, non-finite
    markers), ``kept`` (ny, nx) bool (the spots' neighbourhoods). Fills ``sums`` (4,)
    float64: the background's (pixels finite in both and not kept) counts in ``r`` and
    ``out``, then the kept pixels' likewise; and ``moments`` (2, 2) float64: ``r``'s and
    ``out``'s sum and sum of squares of the differences between background neighbours
    along a row (each difference taken in the frames' type, as ``np.diff`` does). Returns
    (kept pixels finite in both, background neighbour pairs). Sums run in image order:
    on whole counts they are exact, as numpy's are."""
    ny, nx = r.shape
    sums[:] = 0.0
    moments[:] = 0.0
    b0, b1, s0, s1 = 0.0, 0.0, 0.0, 0.0
    m00, m01, m10, m11 = 0.0, 0.0, 0.0, 0.0
    spots, pairs = 0, 0
    for y in range(ny):
        rr, oo, kk = r[y], out[y], kept[y]
        prev = False
        for x in range(nx):
            both = np.isfinite(rr[x]) & np.isfinite(oo[x])
            bg = both & (kk[x] == False)  # noqa: E712  (not on a bool is a branch)
            sp = both & kk[x]
            a, b = np.float64(rr[x]), np.float64(oo[x])
            b0 += a if bg else 0.0
            b1 += b if bg else 0.0
            s0 += a if sp else 0.0
            s1 += b if sp else 0.0
            spots += sp
            if bg & prev:
                da = np.float64(rr[x] - rr[x - 1])
                db = np.float64(oo[x] - oo[x - 1])
                m00 += da
                m01 += da * da
                m10 += db
                m11 += db * db
                pairs += 1
            prev = bg
    sums[0], sums[1], sums[2], sums[3] = b0, b1, s0, s1
    moments[0, 0], moments[0, 1], moments[1, 0], moments[1, 1] = m00, m01, m10, m11
    return spots, pairs
