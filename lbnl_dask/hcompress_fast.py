"""HCompress' lossy round trip without its coder, pixel-identical to astropy's C codec.

HCompress (R. White, STScI; CFITSIO's ``fits_hcompress.c`` / ``fits_hdecompress.c``, which
astropy bundles) codes a tile in three steps:

1. **H-transform** (``htrans``): ``log2n = ceil(log2(max(rows, cols)))`` levels of a 2x2 Haar
   transform in integer arithmetic. Level ``k`` turns each 2x2 block ``a00 a01 / a10 a11`` of
   the current top-left ``ceil(rows/2**k) x ceil(cols/2**k)`` block into a sum ``h0``, an
   x-difference ``hx`` (rows), a y-difference ``hy`` (columns) and a cross term ``hc``,
   divided by 2 after the first level (``>> 1``), and throws away low bits: ``hx, hy`` are
   rounded to multiples of ``2**(k+1)``, ``h0`` to multiples of ``2**(k+2)``. An odd last row
   or column is done as pairs (``h0, hx`` or ``h0, hy``, doubled) and an odd corner alone
   (quadrupled). The ``h0`` of level ``k`` are the input of level ``k + 1``.
2. **digitize**: every coefficient (``h0`` of the last level included) becomes
   ``(c + d) / scale`` for ``c > 0`` and ``(c - d) / scale`` otherwise, ``d = (scale+1)/2 - 1``,
   in C's truncating division: nothing happens when ``scale <= 1``. This is the only loss.
3. a lossless quadtree code of the digitized coefficients (the slow part, and the part that
   needs a process-wide lock in astropy: it keeps global state).

Decoding undoes 3, multiplies by ``scale`` (``undigitize``), then ``hinv`` rebuilds the tile
level by level from the top, rounding the coefficients back to the multiples the forward
transform made and propagating their low bits (``lowbit0``, ``lowbit1``) to the sums.

So ``decode(encode(x)) == hinv(undigitize(digitize(htrans(x))))``: this module computes that
right-hand side, skipping the quadtree code (lossless, so it cannot change a pixel) and the
coefficient shuffles (a layout only). Every operation is a numpy operation on a whole level of
a stack of tiles of one shape (no loop over pixels), in int32 with the C code's wrap-around,
arithmetic shifts, masks and rounding constants:

* htrans and the sums of hinv are done as the C code does them, signed;
* each difference (hx, hy, hc) goes through htrans' rounding, digitize, undigitize and hinv's
  rounding as sign and magnitude (every one of these steps is symmetric in sign, and C's
  truncating division is a division of magnitudes), then gets its sign back; hinv's
  ``lowbit0``/``lowbit1`` corrections, which need no sum, are made at the same time;
* sign tests are shifts (``x >> 31``) and masks, never ``np.where`` (slow on random signs).

By default each tile runs through :func:`lbnl_dask.kernels.hcompress_tiles`: the same steps
element by element, compiled with numba (one pass per level instead of numpy's many); the
numpy levels stay as the reference (``compiled=False``), and the tests hold both to astropy.

The pixels equal astropy's ``HCompress1(scale=scale, smooth=False, bytepix=4, nx=rows,
ny=cols)`` round trip, checked in tests/test_hcompress_fast.py on thousands of tiles and
whole frames; the int32 overflow of astropy's transform (a tile whose mean exceeds about
``2**(30 - log2n)``, ``2**19`` for 1035 columns, even within HCOMPRESS_MAX) is reproduced too.

One corner is astropy's own: its quadtree coder breaks on digitized differences of ``2**28``
or more ("qtree_decode: bad format code", or wrong pixels that can differ from one call to
the next). No function of the pixels can equal that, so tiles that reach it (see ``_exact``)
take astropy's own round trip (under the codec's lock): the same behaviour as the codec.
Smoothing on decode (``smooth=True``) is not implemented.

Example::

    from lbnl_dask.hcompress_fast import roundtrip_frame
    approx = roundtrip_frame(frame, 12)   # == HCompress(12).decode(HCompress(12).encode(frame))
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["hcompress_roundtrip", "roundtrip_frame", "tile_edges"]

_I32 = np.int32
#: The quadtree coder of astropy's 32-bit path is exact only for digitized coefficients below
#: 2**28: its bit-plane code (``qtree_onebit``: ``(a << 3) & (1 << (bit + 3))`` in int) breaks
#: from bit plane 28 on ("qtree_decode: bad format code", or wrong pixels). Tiles that reach it
#: take astropy's own round trip instead.
_CODER_LIMIT = 1 << 28
#: Pixels per stack of tiles that one numpy pass takes (512 KB of int32): the first levels of
#: a frame run in a core's L2 cache, deeper levels merge stacks into fewer numpy calls.
_BUDGET = 1 << 17


def _levels(rows: int, cols: int) -> int:
    """``log2n`` of htrans/hinv: ceil(log2(max(rows, cols))), as the C code's float maths
    gives for every size it can take."""
    return max(0, math.ceil(math.log2(max(rows, cols))))


def _sign(h: np.ndarray) -> np.ndarray:
    """-1 where ``h < 0``, else 0 (int32): the C code's sign tests as arithmetic, since numpy's
    masked selection (``np.where``) costs some 20 additions on random signs."""
    return h >> 31


def _forward_level(b: np.ndarray, k: int):
    """One htrans level on the (tiles, n, m) block ``b``: (h0, hx, hy, hc), shapes (ceil n/2,
    ceil m/2), (n//2, ceil m/2), (ceil n/2, m//2), (n//2, m//2) per tile; h0 rounded, the
    differences not yet (``_details`` does it)."""
    t, n, m = b.shape
    ne, me = n // 2, m // 2
    h0 = np.empty((t, n - ne, m - me), _I32)
    hx = np.empty((t, ne, m - me), _I32)
    hy = np.empty((t, n - ne, me), _I32)
    a00, a01 = b[:, 0 : 2 * ne : 2, 0 : 2 * me : 2], b[:, 0 : 2 * ne : 2, 1 : 2 * me : 2]
    a10, a11 = b[:, 1 : 2 * ne : 2, 0 : 2 * me : 2], b[:, 1 : 2 * ne : 2, 1 : 2 * me : 2]
    u, v = a11 + a10, a01 + a00
    w, z = a11 - a10, a01 - a00
    np.add(u, v, out=h0[:, :ne, :me])
    np.subtract(u, v, out=hx[:, :, :me])
    np.add(w, z, out=hy[:, :ne, :])
    hc = np.subtract(w, z, out=w)
    if k > 0:  # divide by 2 after the first level (on the full blocks only)
        for c in (h0[:, :ne, :me], hx[:, :, :me], hy[:, :ne, :], hc):
            c >>= 1
    up = 1 if k == 0 else 0  # odd edges: doubled on the first level, else as they are
    if m % 2:  # last column: pairs of rows
        c0, c1 = b[:, 0 : 2 * ne : 2, m - 1], b[:, 1 : 2 * ne : 2, m - 1]
        np.left_shift(c1 + c0, up, out=h0[:, :ne, me])
        np.left_shift(c1 - c0, up, out=hx[:, :, me])
    if n % 2:  # last row: pairs of columns
        r0, r1 = b[:, n - 1, 0 : 2 * me : 2], b[:, n - 1, 1 : 2 * me : 2]
        np.left_shift(r1 + r0, up, out=h0[:, ne, :me])
        np.left_shift(r1 - r0, up, out=hy[:, ne, :])
        if m % 2:  # corner
            np.left_shift(b[:, n - 1, m - 1], up + 1, out=h0[:, ne, me])
    # h0 = ((h0 >= 0) ? h0 + prnd2 : h0 + prnd2 - 1) & -2 * prnd2, prnd2 = 2 << k
    h0 += _sign(h0)
    h0 += _I32(2 << k)
    h0 &= _I32(-4 << k)
    return h0, hx, hy, hc


def _magnitude(mag: int, scale: int, fwd: int, inv: int) -> int:
    """What ``_quantise`` makes of a negative difference of magnitude ``mag``."""
    if fwd:
        mag = (mag + 2 * fwd - 1) & -2 * fwd
    if scale > 1:
        mag = (mag + (scale + 1) // 2 - 1) // scale * scale
    return (mag + inv) & -2 * inv if inv else mag


@functools.lru_cache(maxsize=256)
def _zero_run(scale: int, fwd: int, inv: int) -> int:
    """The largest magnitude of a negative difference that the round trip turns into 0
    (``_magnitude`` does not decrease with the magnitude, so the zeros are a run from 0)."""
    lo, hi = 0, 1
    while _magnitude(hi, scale, fwd, inv) == 0:
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _magnitude(mid, scale, fwd, inv) == 0 else (lo, mid)
    return lo


def _quantise(c: np.ndarray, scale: int, fwd: int, inv: int):
    """One kind of difference through htrans' rounding (to multiples of ``2 * fwd``, if
    ``fwd``), digitize, undigitize and hinv's rounding (to multiples of ``2 * inv``), in place.

    Returns (sign, magnitude, top, zeros): ``c = (magnitude ^ sign) - sign`` (int32 views),
    the largest magnitude digitize saw and ``_zero_run``. The C code rounds and divides the
    signed value; every step is symmetric in sign on magnitudes (htrans' ``h >= 0 ? h + fwd :
    h`` too, as ``|h| + fwd + (fwd - 1 if h < 0)``), within int32 as ``_exact`` checks. The
    sign is -1 only where the result is negative, not 0 (hinv's tests take 0 as positive)."""
    zeros = _zero_run(scale, fwd, inv)
    if zeros:
        s = c + _I32(zeros)
        s >>= 31
    else:
        s = _sign(c)
    m = np.abs(c, out=c).view(np.uint32)
    if fwd:
        if fwd > 1:
            m += (s & _I32(fwd - 1)).view(np.uint32)
        m += np.uint32(fwd)
        m &= np.uint32(-2 * fwd & 0xFFFFFFFF)
    top = int(m.max()) if m.size else 0
    if scale > 1:
        m += np.uint32((scale + 1) // 2 - 1)
        m //= np.uint32(scale)
        m *= np.uint32(scale)
    if inv and (scale % (2 * inv) if scale > 1 else fwd < inv):  # else multiples already
        m += np.uint32(inv)
        m &= np.uint32(-2 * inv & 0xFFFFFFFF)
    return s, m.view(_I32), top, zeros


def _signed(s: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The magnitudes ``m`` with the signs ``s`` (-1/0) of ``_quantise``, in place."""
    m ^= s
    m -= s
    return m


def _details(hx, hy, hc, scale: int, k: int):
    """Level ``k``'s differences as hinv uses them after the round trip, all that does not
    depend on the sums: (hx, hy's last row, r, s, delta, w, top, zeros) with ``r, s = hy -+
    hc`` (the full blocks' hy, hc), ``delta = lowbit0 - lowbit1`` and ``w = 2 * lowbit1``
    where ``lowbit0 == 0`` (hinv treats negative sums there apart); ``top, zeros`` (the
    largest of ``_quantise``'s) for ``_exact``."""
    ne, me = hc.shape[1:]
    bit0 = 1 << k
    sx, mx, top_x, zx = _quantise(hx, scale, bit0, bit0)
    sy, my, top_y, zy = _quantise(hy, scale, bit0, bit0)
    sc, mc, top_c, zc = _quantise(hc, scale, 0, bit0 >> 1)
    lowbit0 = mc & _I32(bit0)  # the same bit of -mc: mc is a multiple of bit0
    mx[:, :, :me] -= lowbit0  # hx, hy towards 0 by lowbit0, on the full blocks only
    my[:, :ne, :] -= lowbit0
    hx, hy, hc = _signed(sx, mx), _signed(sy, my), _signed(sc, mc)
    hyf = hy[:, :ne, :]
    lowbit1 = hc ^ hx[:, :, :me]
    lowbit1 ^= hyf
    lowbit1 &= _I32(2 << k)
    w = (lowbit0 >> k) - 1  # -1 where lowbit0 == 0
    w &= lowbit1
    w <<= 1
    lowbit0 -= lowbit1
    top, zeros = max(top_x, top_y, top_c), max(zx, zy, zc)
    return hx, hy[:, ne:, :], hyf + hc, hyf - hc, lowbit0, w, top, zeros


def _exact(top: int, zeros: int, scale: int, k: int) -> bool:
    """Whether astropy carries level ``k``'s differences, up to ``top`` in magnitude, exactly
    and as ``_quantise`` computes them: digitize's quotients below the coder's limit, and no
    int32 overflow in the C code's signed rounding and ``c +- d`` (nor in ``c + zeros``)."""
    if scale >= 2**30:  # (scale + 1) / 2 itself near overflow: leave it to astropy
        return False
    d = (scale + 1) // 2 - 1 if scale > 1 else 0
    quotient = (top + d) // scale if scale > 1 else top
    return quotient < _CODER_LIMIT and top + zeros + d + (4 << k) < 2**31


def _exact_levels(tops, runs, scale: int) -> bool:
    """:func:`_exact` at every level ``k`` of a tile, from its largest difference
    ``tops[k]`` and the level's zero run ``runs[k]``."""
    levels = enumerate(zip(tops, runs, strict=True))
    return all(_exact(int(t), int(z), scale, k) for k, (t, z) in levels)


def _inverse_level(h0, hx, hy_last, r, s, delta, w, n: int, m: int, k: int, out=None):
    """One hinv level (k counting down to 0): the (tiles, n, m) block from the rebuilt sums
    ``h0`` (changed in place) and the level's ``_details``."""
    ne, me = n // 2, m // 2
    out = np.empty((h0.shape[0], n, m), _I32) if out is None else out
    h0f = h0[:, :ne, :me]
    # h0 = (h0 >= 0) ? h0 + lowbit0 - lowbit1 : h0 + (lowbit0 == 0 ? lowbit1 : lowbit0 - lowbit1)
    w = _sign(h0f) & w
    h0f += delta
    h0f += w
    hxf = hx[:, :, :me]
    p, q = h0f + hxf, h0f - hxf
    np.add(p, r, out=out[:, 1 : 2 * ne : 2, 1 : 2 * me : 2])
    np.subtract(p, r, out=out[:, 1 : 2 * ne : 2, 0 : 2 * me : 2])
    np.add(q, s, out=out[:, 0 : 2 * ne : 2, 1 : 2 * me : 2])
    np.subtract(q, s, out=out[:, 0 : 2 * ne : 2, 0 : 2 * me : 2])
    bit1 = _I32(2 << k)
    if m % 2:  # last column: pairs of rows; h0 towards 0 by hx's lowbit1
        hxc, h0c = hx[:, :, me], h0[:, :ne, me]
        sign = _sign(h0c)
        h0c -= ((hxc & bit1) ^ sign) - sign
        np.add(h0c, hxc, out=out[:, 1 : 2 * ne : 2, m - 1])
        np.subtract(h0c, hxc, out=out[:, 0 : 2 * ne : 2, m - 1])
    if n % 2:  # last row: pairs of columns
        hyr, h0r = hy_last[:, 0, :], h0[:, ne, :me]
        sign = _sign(h0r)
        h0r -= ((hyr & bit1) ^ sign) - sign
        np.add(h0r, hyr, out=out[:, n - 1, 1 : 2 * me : 2])
        np.subtract(h0r, hyr, out=out[:, n - 1, 0 : 2 * me : 2])
        if m % 2:  # corner
            out[:, n - 1, m - 1] = h0[:, ne, me]
    out >>= 2 if k == 0 else 1  # the sums' division: by 4 on the last level, else by 2
    return out


def _sum_roundtrip(c: np.ndarray, scale: int, log2n: int) -> np.ndarray:
    """The 1 x 1 sum of each tile (coded apart, as 64 bits) through digitize, undigitize and
    hinv's first rounding, exactly as the C code's int32 arithmetic (wrap-around included)."""

    def wrap(v):
        return (v + 2**31) % 2**32 - 2**31

    v = c.astype(np.int64)
    if scale > 1:
        d = (scale + 1) // 2 - 1
        t = wrap(v + np.where(v > 0, d, -d))
        v = wrap(np.sign(t) * (np.abs(t) // scale) * scale)
    prnd2 = 1 << log2n
    v = wrap(v + np.where(v >= 0, prnd2, prnd2 - 1)) & -(2 * prnd2)
    return v.astype(_I32)


def _level_pair(b: np.ndarray, scale: int, k: int):
    """Level ``k`` of htrans on ``b``: (h0, the level's ``_details``, exact)."""
    h0, hx, hy, hc = _forward_level(b, k)
    *details, top, zeros = _details(hx, hy, hc, scale, k)
    return h0, details, _exact(top, zeros, scale, k)


def _groups(blocks: list[np.ndarray]) -> list[list[int]]:
    """Indices of ``blocks`` to stack for one level: runs of blocks of one shape, up to
    ``_BUDGET`` pixels (the chunks of the first level stay apart, deeper levels merge)."""
    groups: list[list[int]] = []
    for i, b in enumerate(blocks):
        g = groups[-1] if groups else None
        if (
            g
            and blocks[g[0]].shape[1:] == b.shape[1:]
            and sum(blocks[j].size for j in g) + b.size <= _BUDGET
        ):
            g.append(i)
        else:
            groups.append([i])
    return groups


def _descend(blocks: list[np.ndarray], scale: int, k: int, log2n: int, outs=None):
    """Levels ``k`` .. ``log2n - 1`` of the round trip of (tiles, n, m) int32 blocks (one
    ``log2n``): the blocks as hinv rebuilds them (into ``outs`` where given), and whether
    astropy carries them exactly."""
    groups = _groups(blocks)
    stacks = [
        np.concatenate([blocks[i] for i in g]) if len(g) > 1 else blocks[g[0]] for g in groups
    ]
    if k == log2n:
        done, exact = [_sum_roundtrip(b, scale, log2n) for b in stacks], True
    else:
        pairs = [_level_pair(b, scale, k) for b in stacks]
        sums, exact = _descend([p[0] for p in pairs], scale, k + 1, log2n)
        done = []
        for g, h0, (_, details, ok), b in zip(groups, sums, pairs, stacks, strict=True):
            out = outs[g[0]] if outs is not None and len(g) == 1 else None
            done.append(_inverse_level(h0, *details, *b.shape[1:], k, out=out))
            exact = exact and ok
    result = []
    for g, out in zip(groups, done, strict=True):
        result += np.split(out, np.cumsum([blocks[i].shape[0] for i in g])[:-1])
    return result, exact


@functools.lru_cache(maxsize=256)
def _level_params(scale: int, log2n: int) -> tuple[np.ndarray, np.ndarray]:
    """For the compiled round trip: per level (log2n, 3: hx, hy, hc), ``_zero_run`` and
    whether ``_quantise`` ends with hinv's rounding."""
    zeros = np.zeros((log2n, 3), np.int64)
    round_inv = np.zeros((log2n, 3), bool)
    for k in range(log2n):
        bit0 = 1 << k
        for kind, (fwd, inv) in enumerate([(bit0, bit0), (bit0, bit0), (0, bit0 >> 1)]):
            zeros[k, kind] = _zero_run(scale, fwd, inv)
            round_inv[k, kind] = bool(inv and (scale % (2 * inv) if scale > 1 else fwd < inv))
    return zeros, round_inv


def _roundtrip_blocks(
    blocks: list[np.ndarray], scale: int, outs: list[np.ndarray], compiled: bool = True
) -> None:
    """The round trips of (tiles, rows, cols) int32 stacks of tiles into ``outs`` (arrays of
    the same shapes: int32, or a float type that gets the int32 result converted), astropy's
    own for the tiles its coder cannot carry exactly (found one by one, only where there are
    any). ``compiled``: each tile through
    :func:`lbnl_dask.kernels.hcompress_tiles` (the same steps, element by element), else the
    numpy levels below (the reference)."""
    if compiled and scale < 2**30:  # (beyond, _exact leaves every tile to astropy)
        from . import kernels

        for b, out in zip(blocks, outs, strict=True):
            log2n = _levels(*b.shape[1:])
            zeros, round_inv = _level_params(scale, log2n)
            tops = np.empty((b.shape[0], log2n), np.int64)
            kernels.hcompress_tiles(b, out, scale, log2n, zeros, round_inv, tops)
            runs = zeros.max(axis=1)
            if not _exact_levels(tops.max(axis=0), runs, scale):  # (_exact falls with top)
                for t in range(b.shape[0]):
                    if not _exact_levels(tops[t], runs, scale):
                        out[t] = _astropy_roundtrip(b[t], scale)
        return
    by_levels: dict[int, list[int]] = {}
    for i, b in enumerate(blocks):
        by_levels.setdefault(_levels(*b.shape[1:]), []).append(i)
    for log2n, idx in by_levels.items():  # (in int32: a float out gets the result converted)
        mine = [outs[i] if outs[i].dtype == _I32 else np.empty(outs[i].shape, _I32) for i in idx]
        done, exact = _descend([blocks[i] for i in idx], scale, 0, log2n, mine)
        for i, out, res in zip(idx, mine, done, strict=True):
            if res is not out:
                out[...] = res
            for t in range(0 if exact else out.shape[0]):
                if not _descend([blocks[i][t : t + 1]], scale, 0, log2n)[1]:
                    out[t] = _astropy_roundtrip(blocks[i][t], scale)
            if out is not outs[i]:
                outs[i][...] = out


def _astropy_roundtrip(tile: np.ndarray, scale: int) -> np.ndarray:
    """astropy's own round trip of one (rows, cols) int32 tile, under the codec's lock (its
    C functions as :func:`lbnl_dask.codecs.hcompress_c` loads them)."""
    from .codecs import _HCOMPRESS_LOCK, hcompress_c

    compress, decompress = hcompress_c()
    rows, cols = tile.shape
    raw = np.ascontiguousarray(tile, np.int32).tobytes()
    with _HCOMPRESS_LOCK:
        dec = decompress(compress(raw, rows, cols, scale, 4), rows, cols, scale, False, 4)
    return np.frombuffer(dec, np.int32).reshape(rows, cols)


def _as_int32(a: np.ndarray) -> np.ndarray:
    """``a`` as C-ordered int32, refusing values that int32 cannot hold."""
    a = np.asarray(a)
    if a.ndim != 2 or a.dtype.kind not in "ui" or a.shape[0] < 4 or a.shape[1] < 4:
        raise ValueError(f"HCompress takes a 2-D integer array of at least 4x4, not {a.shape}")
    if a.dtype.itemsize >= 4 and a.dtype != _I32 and a.size:
        info = np.iinfo(_I32)
        if a.max() > info.max or a.min() < info.min:
            raise ValueError("HCompress (32-bit) takes values that int32 holds")
    return np.ascontiguousarray(a, dtype=_I32)


def hcompress_roundtrip(tile: np.ndarray, scale: int, compiled: bool = True) -> np.ndarray:
    """astropy's ``HCompress1(scale, smooth=False, bytepix=4, nx=rows, ny=cols)`` round trip
    (``decode(encode(tile))``) of one (rows, cols) integer tile, rows and cols >= 4: an int32
    (rows, cols) array, equal to astropy's pixel for pixel (where astropy's coder cannot carry
    a coefficient exactly, astropy's own round trip runs and so fails as astropy does).
    ``compiled=False``: the numpy reference."""
    a = _as_int32(tile)
    out = np.empty_like(a)
    _roundtrip_blocks([a[None]], int(scale), [out[None]], compiled)
    return out


def tile_edges(ny: int, tile_rows: int | None = None) -> list[int]:
    """Row edges of :class:`lbnl_dask.codecs.HCompress`' tiles of a frame of ``ny`` rows:
    ``tile_rows`` high (default :func:`lbnl_dask.codecs.hcompress_tile_rows`), a last tile of
    fewer than 4 rows merged into the one before."""
    from .codecs import hcompress_tile_rows

    h = tile_rows or hcompress_tile_rows(ny)
    edges = list(range(0, ny, h)) + [ny]
    if len(edges) > 2 and edges[-1] - edges[-2] < 4:
        del edges[-2]
    return edges


def roundtrip_frame(
    frame: np.ndarray,
    scale: int,
    tile_rows: int | None = None,
    compiled: bool = True,
    checked: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``HCompress(scale, tile_rows=tile_rows).decode(HCompress(...).encode(frame))`` for a 2-D
    integer frame (ny, nx), without the codec's bytes or lock: the same tiles (all tiles of one
    height in one stack), the same pixels, the frame's dtype (unsigned: clamped at 0, as
    HCompress.decode). Values must lie within +-HCOMPRESS_MAX, as HCompress.encode asks.
    ``compiled=False``: the numpy reference instead of the compiled kernel. ``checked``: the
    caller has clipped the values to that range already (two passes fewer; float32 counts
    clipped at float32(HCOMPRESS_MAX) = 2**26 are one past it, which the H-transform takes).
    ``out``: an array (ny, nx) to write the result into, converted as numpy converts it;
    returned. For an int32 frame and a C-contiguous float32/float64 ``out``, the compiled
    kernel writes it there itself (no int32 frame, no second pass: 0.9 ms of a 4M output
    frame's ~45).

    Example::

        approx = roundtrip_frame(frame, 12)   # frame: (1084, 1035) int32 counts
    """
    from .codecs import HCOMPRESS_MAX, CodecError

    frame = np.asarray(frame)
    if frame.ndim != 2 or frame.dtype.kind not in "ui" or min(frame.shape) < 4:
        raise CodecError(
            f"HCompress takes a 2-D integer frame of at least 4x4, not {frame.shape} {frame.dtype}"
        )
    if not checked and frame.size and (frame.max() > HCOMPRESS_MAX or frame.min() < -HCOMPRESS_MAX):
        raise CodecError(
            f"HCompress takes values within +-{HCOMPRESS_MAX}, got {frame.min()}..{frame.max()}"
        )
    if int(scale) < 0:
        raise ValueError(f"HCompress scale must be >= 0, not {scale}")
    a = np.ascontiguousarray(frame, dtype=_I32)
    ny, nx = a.shape
    edges = tile_edges(ny, tile_rows)
    h = edges[1]
    if h < 4:  # as astropy's HCompress1
        raise ValueError("HCOMPRESS requires tiles of at least 4x4 pixels.")
    full = sum(1 for y0, y1 in zip(edges, edges[1:], strict=False) if y1 - y0 == h)
    per = max(1, _BUDGET // (h * nx))  # tiles per stack
    spans = [(y, min(y + per * h, full * h), h) for y in range(0, full * h, per * h)]
    if full * h < ny:  # the last tile, of another height
        spans.append((full * h, ny, ny - full * h))
    direct = (  # _roundtrip_blocks fills a float frame (the kernel writes it itself)
        out is not None
        and frame.dtype == _I32
        and out.shape == (ny, nx)
        and out.dtype in (np.float32, np.float64)
        and out.flags.c_contiguous
    )
    res = out if direct else np.empty((ny, nx), _I32)
    blocks = [a[y0:y1].reshape(-1, th, nx) for y0, y1, th in spans]
    outs = [res[y0:y1].reshape(-1, th, nx) for y0, y1, th in spans]
    _roundtrip_blocks(blocks, int(scale), outs, compiled)
    if frame.dtype.kind == "u":
        np.maximum(res, 0, out=res)
    if direct:
        return out
    res = res.astype(frame.dtype, copy=False)
    if out is None:
        return res
    out[...] = res
    return out
