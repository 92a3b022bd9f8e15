"""Pure functions on dask arrays.

Counts with invalid/saturated markers, sum, bin, scale, output type.

Frames are (n, ny, nx) dask arrays chunked along frames only. :func:`to_counts` turns raw
frames into floating-point counts in which an **invalid** pixel (all bits set in the input
dtype, or flagged in ``pixel_mask``) is NaN and a **saturated** pixel (a valid count at or
above the cutoff) is +inf. Summing and binning are then plain ``np.sum`` reductions with
:func:`coarsen` (dask's coarsen as a blockwise layer), and IEEE arithmetic propagates both
markers as the output's rules ask: any NaN input makes the output NaN (invalid wins),
otherwise any +inf makes it +inf (saturated), otherwise the sum is exact (integers are
exact in float32 below 2**24 and in float64 below 2**53; :func:`counts_dtype` picks the
narrower type that is exact).
:func:`summed_binned_counts` gives the same counts summed and binned from raw frames in one
:func:`coarsen` whose reduction works band by band of rows, in cache (the pipeline's path).

Partial last groups of frames and partial edge blocks are zero-padded (as the published
tool does) inside the last block, so chunks never re-align: keep frame chunks a multiple
of the sum factor.

The neighbourhoods of Bragg spots that ``--keep-spots`` keeps are :mod:`lbnl_dask.spots`.
"""

from __future__ import annotations

import threading
from functools import lru_cache, partial, wraps

import dask.array as da
import numpy as np
from dask.array import chunk


def select(frames: da.Array, first: int, last: int) -> da.Array:
    """Frames first..last (1-based, inclusive) of an (n, ny, nx) array, re-chunked so that its
    chunks start at ``first`` (whole multiples survive for coarsen). ``lbnl-compress`` selects
    the range when opening instead (``open_dataset(master, first, last)``), which chunks the
    reads there directly; this is for arrays already in hand, in notebooks."""
    if not 1 <= first <= last <= frames.shape[0]:
        raise ValueError(f"image range {first}..{last} is outside 1..{frames.shape[0]}")
    return frames[first - 1 : last].rechunk((frames.chunks[0][0], -1, -1), method="tasks")


def invalid_value(dtype) -> int | float:
    """The all-bits-set value of an integer dtype (module gaps, masked pixels); NaN for floats."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.nan
    return np.array(-1).astype(dtype).item() if dtype.kind == "i" else np.iinfo(dtype).max


def count_limit(cutoff: int | None, raw_dtype) -> int:
    """The largest count a valid raw pixel of ``raw_dtype`` holds: below the master's
    ``cutoff`` (its saturation or count cutoff), else below all bits set (the invalid marker)."""
    return cutoff if cutoff is not None else np.iinfo(raw_dtype).max - 1


def counts_dtype(max_count: float, n_summed: int) -> np.dtype:
    """float32 if every sum of ``n_summed`` counts below ``max_count`` is an exact float32
    integer (< 2**24), else float64 (exact below 2**53)."""
    return np.dtype(np.float32 if float(max_count) * n_summed < 2**24 else np.float64)


def once_per_process(fn):
    """``fn`` cached per process (``lru_cache``, 4 entries), computed once: a thread that asks
    while another computes it waits for that result (dask's threads start their first tasks
    together, and each would otherwise derive the same masks). One lock per function, held
    while it computes (any key): ``fn`` must not call itself, nor a function that calls it."""
    cached, lock = lru_cache(maxsize=4)(fn), threading.Lock()

    @wraps(fn)
    def once(*args):
        with lock:
            return cached(*args)

    once.cache_info, once.cache_clear = cached.cache_info, cached.cache_clear
    return once


def _mask_flags(mask) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (ny, nx) pixels flagged in a pixel mask, and their complement (both cached
    per process for a mask by reference)."""
    if isinstance(mask, np.ndarray):
        flags = mask != 0
        return flags, ~flags
    return _mask_flags_cached(mask)


@once_per_process
def _mask_flags_cached(mask) -> tuple[np.ndarray, np.ndarray]:
    flags = np.asarray(mask) != 0
    return flags, ~flags


def _high_pixels(block, valid, cutoff):
    """Flat indices into ``block`` (any shape, raw integers) of the pixels that become markers
    and are ``valid`` (not flagged in the mask: those are NaN already), and for each whether
    it is invalid (all bits set) rather than saturated (>= ``cutoff``)."""
    allbits = invalid_value(block.dtype)
    if (
        block.dtype.kind == "u"
    ):  # all bits set is the largest value: one comparison finds both markers
        high = block >= (allbits if cutoff is None else min(cutoff, allbits))
    else:  # signed input: all bits set is -1, and no count is negative (readers mask them)
        high = block < 0
        if cutoff is not None:
            high |= block >= cutoff
    if valid is not None:
        high &= valid
    idx = np.flatnonzero(high)
    vals = block.flat[idx]
    return idx, (vals == allbits) if block.dtype.kind == "u" else (vals < 0)


def _counts_block(block, mask, cutoff, dtype):
    # Four whole-frame passes (convert, compare, mask, mask the comparison); the markers of
    # the few pixels left (unmasked gaps, saturated counts) are then set one by one.
    x = block.astype(dtype, order="C")  # C order: the flat index views below are views
    flags, valid = (None, None) if mask is None else _mask_flags(mask)
    if flags is not None:
        np.copyto(x, x.dtype.type(np.nan), where=flags)
    idx, invalid = _high_pixels(block, valid, cutoff)
    if idx.size:
        x.reshape(-1)[idx] = np.where(invalid, np.nan, np.inf)
    return x


#: Rows of one band of :func:`_summed_binned_block`: about 1 MB of summed counts, so the raw
#: rows, the sums and the candidates of a band stay in a core's L2 cache (whole-frame passes
#: and smaller bands measured slower: benchmarks/bench_stages.py).
BAND_BYTES = 2**20


def _band_masks(mask, shape, b, ny, nx):
    """For a frame padded to (ny, nx), multiples of ``b``: the pixels that may become markers
    (valid and not padding; (ny/b, b, nx/b, b) bool, None if all) and the output pixels whose
    b x b cell holds a masked pixel ((ny/b, nx/b) bool, None without a mask). ``shape`` is the
    frame's (ny, nx) before padding. Cached per process for masks by reference."""
    if isinstance(mask, np.ndarray):
        return _band_masks_of(mask, shape, b, ny, nx)
    return _band_masks_cached(mask, shape, b, ny, nx)


def _band_masks_of(mask, shape, b, ny, nx):
    if mask is None and tuple(shape) == (ny, nx):
        return None, None
    flags, unflagged = (None, None) if mask is None else _mask_flags(mask)
    h, w = shape if flags is None else flags.shape
    valid = np.zeros((ny, nx), bool)
    valid[:h, :w] = True if flags is None else unflagged
    if flags is None:
        return valid.reshape(ny // b, b, nx // b, b), None
    padded = np.zeros((ny, nx), bool)
    padded[:h, :w] = flags
    rows = padded.reshape(ny // b, b, nx).any(axis=1)  # each cell's rows, then its columns:
    masked = rows[:, 0::b].copy()  # 20x faster than any(axis=(1, 3)) on the 4D view
    for k in range(1, b):
        masked |= rows[:, k::b]
    return valid.reshape(ny // b, b, nx // b, b), masked


_band_masks_cached = once_per_process(_band_masks_of)


def _summed_binned_block(x, axis=None, mask=None, cutoff=None, dtype=np.float32, shape=None):
    # coarsen's reduction: x is (groups, s, ny/b, b, nx/b, b), a view of raw unsigned
    # frames; the compiled kernel (lbnl_dask.kernels.summed_binned) where the rows are
    # contiguous, as they come from the reader, else numpy band by band (the reference).
    dtype = np.dtype(dtype)
    if axis is None:  # dask's metadata call on a (1, 1, 1) array
        return np.asarray(x).astype(dtype)
    g, s, ny, b, nx, _ = x.shape
    valid, masked = _band_masks(mask, shape or (ny * b, nx * b), b, ny * b, nx * b)
    allbits = invalid_value(x.dtype)
    lim = allbits if cutoff is None else min(cutoff, allbits)
    compiled = (
        x.flags.c_contiguous
        and x.dtype.isnative  # numba takes native byte order only (h5py may give ">u4")
        and dtype in (np.float32, np.float64)
        and isinstance(lim, (int, np.integer))
        and 0 <= lim <= allbits
    )
    if compiled:  # (it sets the masked cells NaN itself)
        from . import kernels

        kind, rows = x.dtype.type, x.reshape(g, s, ny, b, nx * b)
        valid_rows = None if valid is None else valid.reshape(ny, b, nx * b)
        return kernels.summed_binned(rows, valid_rows, masked, kind(lim), kind(allbits),
                                     dtype.type(lim), np.empty((g, ny, nx), dtype))  # fmt: skip
    out = _summed_binned_numpy(x, valid, lim, allbits, dtype)
    if masked is not None:
        np.copyto(out, dtype.type(np.nan), where=masked)
    return out


def _summed_binned_numpy(x, valid, lim: int, allbits: int, dtype: np.dtype) -> np.ndarray:
    """Band by band of output rows (BAND_BYTES): numpy's add converts the raw frames to
    ``dtype`` inside its loop; a group holding a value >= lim sums to >= lim (counts are
    >= 0), so the sum is compared once and only the raw values of those candidates decide
    invalid (NaN) or saturated (+inf); then the b x b cells are added. ``valid`` as
    :func:`_band_masks` gives it; the masked cells are left to the caller."""
    g, s, ny, b, nx, _ = x.shape
    rows = max(1, min(ny, BAND_BYTES // (b * b * nx * dtype.itemsize)))
    out = np.empty((g, ny, nx), dtype)
    acc_band, cand_band, row_band = (
        np.empty((rows, b, nx, b), dtype),
        np.empty((rows, b, nx, b), bool),
        np.empty((rows, nx, b), dtype),
    )
    for k in range(g):
        for y0 in range(0, ny, rows):
            y1 = min(ny, y0 + rows)
            raw = x[k, :, y0:y1]  # (s, rows, b, nx, b)
            o = out[k, y0:y1]
            acc = (
                o.reshape(y1 - y0, 1, nx, 1) if b == 1 else acc_band[: y1 - y0]
            )  # b = 1: sum into out
            if s == 1:
                np.copyto(acc, raw[0], casting="unsafe")
            else:
                np.add(raw[0], raw[1], out=acc, dtype=dtype)
                for i in range(2, s):
                    np.add(acc, raw[i], out=acc)
            cand = np.greater_equal(acc, lim, out=cand_band[: y1 - y0])
            if valid is not None:
                cand &= valid[y0:y1]
            idx = np.flatnonzero(cand)
            if idx.size:
                vals = np.stack([np.reshape(raw[i], -1)[idx] for i in range(s)])  # (s, candidates)
                invalid = (vals == allbits).any(axis=0)
                flat = np.reshape(acc, -1, copy=False)
                flat[idx[(vals >= lim).any(axis=0) & ~invalid]] = (
                    np.inf
                )  # the others are exact sums
                flat[idx[invalid]] = np.nan  # an invalid frame of the group wins
            if b > 1:
                r = row_band[: y1 - y0]  # rows of each cell first (contiguous), then its columns
                np.add(acc[:, 0], acc[:, 1], out=r)
                for i in range(2, b):
                    r += acc[:, i]
                np.add(r[..., 0], r[..., 1], out=o)
                for i in range(2, b):
                    o += r[..., i]
    return out


def to_counts(
    frames: da.Array, pixel_mask=None, cutoff: int | None = None, dtype=np.float32
) -> da.Array:
    """Counts of raw frames as ``dtype`` (float32/float64): NaN where invalid (all bits set
    in the input dtype, or flagged in ``pixel_mask`` (ny, nx)), +inf where a valid count is
    >= ``cutoff``. ``pixel_mask`` may be an array, or an object ``np.asarray`` loads inside
    the task (:class:`lbnl_dask.eiger.PixelMask`), which keeps the graph small."""
    return frames.map_blocks(
        _counts_block, pixel_mask, cutoff, np.dtype(dtype), dtype=np.dtype(dtype)
    )


def _pad_last(block, axis, factor, block_info=None):
    info = block_info[0]
    loc, nblocks = info["chunk-location"][axis], info["num-chunks"][axis]
    extra = -block.shape[axis] % factor
    if loc != nblocks - 1 or extra == 0:
        return block
    widths = [(0, 0)] * block.ndim
    widths[axis] = (0, extra)
    return np.pad(block, widths)


def pad_to_multiple(x: da.Array, axis: int, factor: int) -> da.Array:
    """Zero-pad the end of ``axis`` to a multiple of ``factor``, inside the last chunk."""
    extra = -x.shape[axis] % factor
    if extra == 0:
        return x
    chunks = list(x.chunks)
    chunks[axis] = chunks[axis][:-1] + (chunks[axis][-1] + extra,)
    return x.map_blocks(_pad_last, axis, factor, chunks=tuple(chunks), dtype=x.dtype)


def block_sum(x: np.ndarray, axis=None) -> np.ndarray:
    """``x.sum(axis)`` for the short axes :func:`coarsen` reshapes into (length s or b): added
    slice by slice, which is faster than numpy's reduction over a length-2 inner axis."""
    if axis is None:
        return x.sum()
    for ax in sorted((axis,) if np.isscalar(axis) else axis, reverse=True):
        lead = (slice(None),) * ax
        n = x.shape[ax]
        if n == 1:  # coarsen passes every axis, factor 1 for those not coarsened
            x = x[lead + (0,)]
            continue
        acc = np.add(x[lead + (0,)], x[lead + (1,)])
        for i in range(2, n):
            acc += x[lead + (i,)]  # views: no copies
        x = acc
    return x


def _coarsen_block(block, reduction, axes):
    return chunk.coarsen(reduction, block, axes)


def coarsen(reduction, x: da.Array, axes: dict) -> da.Array:
    """``da.coarsen(reduction, x, axes)`` for an ``x`` whose chunks are multiples of the
    factors ``axes`` {axis: factor} already (ValueError if not): dask's own per-chunk
    ``coarsen`` (``reduction`` gets each chunk reshaped to (n0/f0, f0, n1/f1, f1, ...) and
    ``axis=(1, 3, ...)``), through ``map_blocks``. ``da.coarsen`` builds a graph layer that
    dask's blockwise fusion cannot join, so each chunk's chain (read, coarsen, the round
    trip, the output type) would take two tasks, one of them an alias; as a blockwise layer
    the chain fuses into one task per chunk."""
    axes = {i: int(axes.get(i, 1)) for i in range(x.ndim)}
    for i, f in axes.items():
        if any(c % f for c in x.chunks[i]):
            raise ValueError(f"chunks {x.chunks[i]} along axis {i} are not multiples of {f}")
    chunks = tuple(tuple(c // axes[i] for c in x.chunks[i]) for i in range(x.ndim))
    dtype = np.asarray(reduction(np.empty((1,) * x.ndim, x.dtype))).dtype  # as da.coarsen finds it
    return x.map_blocks(
        _coarsen_block,
        reduction,
        axes,
        chunks=chunks,
        dtype=dtype,
        meta=np.empty((0,) * x.ndim, dtype),
        token="coarsen",
    )


def _coarsen_sum(x: da.Array, factors: dict) -> da.Array:
    factors = {a: int(f) for a, f in factors.items() if int(f) > 1}
    for axis, f in factors.items():
        x = pad_to_multiple(x, axis, f)  # the last chunk; coarsen refuses other misfits
    return coarsen(block_sum, x, factors) if factors else x


def sum_frames(x: da.Array, s: int) -> da.Array:
    """Sum s consecutive frames; the partial last group keeps the frames it has.
    (n, ny, nx) -> (ceil(n/s), ny, nx)."""
    return _coarsen_sum(x, {0: s})


def summed_counts(
    frames: da.Array, s: int, pixel_mask=None, cutoff: int | None = None, dtype=np.float32
) -> da.Array:
    """``sum_frames(to_counts(frames, pixel_mask, cutoff, dtype), s)``: raw integer frames
    (n, ny, nx) -> (ceil(n/s), ny, nx) (:func:`summed_binned_counts` with b = 1)."""
    return summed_binned_counts(frames, s, 1, pixel_mask, cutoff, dtype)


def summed_binned_counts(
    frames: da.Array,
    s: int,
    b: int,
    pixel_mask=None,
    cutoff: int | None = None,
    dtype=np.float32,
    frame_shape: tuple | None = None,
) -> da.Array:
    """Counts of raw integer frames (n, ny, nx) summed s at a time and binned b x b:
    (ceil(n/s), ceil(ny/b), ceil(nx/b)) of ``dtype``, the values and markers of
    ``bin_pixels(sum_frames(to_counts(frames, pixel_mask, cutoff, dtype), s), b)``.

    Unsigned frames take one :func:`coarsen` whose reduction works band by band of rows
    (:data:`BAND_BYTES`): raw frames added straight into ``dtype``, markers, b x b cells, while
    the band is in cache; no full-size float frame is ever made. ``frame_shape``: the frames'
    (ny, nx) when they come zero-padded to multiples of b already (as
    :meth:`EigerDataset.padded_frames` reads them, without a copy); ``pixel_mask`` is of that shape.
    """
    shape = tuple(frame_shape or frames.shape[1:])
    if frames.dtype.kind != "u":  # signed input: negatives are invalid, a sum cannot reveal them
        counts = to_counts(frames[:, : shape[0], : shape[1]], pixel_mask, cutoff, dtype)
        return bin_pixels(sum_frames(counts, s), b)
    x = frames.rechunk({1: -1, 2: -1}, method="tasks")  # whole frames: masks are per frame
    for axis, f in ((0, s), (1, b), (2, b)):
        x = pad_to_multiple(x, axis, f)  # the last chunk; coarsen refuses other misfits
    # the options in the reduction itself (coarsen passes the reduction nothing else)
    reduction = partial(
        _summed_binned_block, mask=pixel_mask, cutoff=cutoff, dtype=np.dtype(dtype), shape=shape
    )
    return coarsen(reduction, x, {0: s, 1: b, 2: b})


def bin_pixels(x: da.Array, b: int) -> da.Array:
    """Sum b x b pixel blocks, zero-padding bottom/right.

    (n, ny, nx) -> (n, ceil(ny/b), ceil(nx/b)).
    """
    return _coarsen_sum(x, {1: b, 2: b})


def scale(x: da.Array, factor: float, saturation=None) -> da.Array:
    """Multiply counts by ``factor`` and round to the nearest integer (markers unchanged). A
    count below the output's ``saturation`` that rounds up to it is the largest count below
    it instead: only an overload reads as the saturation."""
    if factor == 1:
        return x
    if saturation is None:
        return da.rint(x * x.dtype.type(factor))
    return x.map_blocks(_scale_block, x.dtype.type(factor), x.dtype.type(saturation),
                        dtype=x.dtype)  # fmt: skip


def _scale_block(x: np.ndarray, factor, saturation) -> np.ndarray:
    y = x * factor
    out = np.rint(y)
    with np.errstate(invalid="ignore"):  # (NaN: neither)
        np.copyto(out, saturation - 1, where=(out >= saturation) & (y < saturation))
    return out


def log_transform(x: da.Array, base: float, signed: bool = False) -> da.Array:
    """``ln(v+1)/ln(base)``; negatives give ``-ln(1-v)/ln(base)`` if ``signed`` else 0."""
    lb = x.dtype.type(np.log(base))
    neg = -da.log1p(-x) / lb if signed else 0
    return da.where(
        x >= 0, da.log1p(da.maximum(x, 0)) / lb, da.where(np.isnan(x), np.nan, neg)
    ).astype(x.dtype)


def exp_transform(x: da.Array, base: float, signed: bool = False) -> da.Array:
    """Inverse of :func:`log_transform`: ``base**w - 1``.

    Negatives are ``-(base**-w - 1)`` if ``signed``, else 0.
    """
    return x.map_blocks(_exp_block, x.dtype.type(base), bool(signed), dtype=x.dtype)


def _exp_block(x: np.ndarray, b, signed: bool) -> np.ndarray:
    with np.errstate(over="ignore"):  # large counts overflow to +inf: saturated, as they should
        pos = np.power(b, np.maximum(x, 0)) - 1
        neg = -(np.power(b, np.maximum(-x, 0)) - 1) if signed else 0
    return np.where(x >= 0, pos, np.where(np.isnan(x), np.nan, neg)).astype(x.dtype)


# ---------------------------------------------------------------- final output pixels
def _finalize_block(x, dtype, saturation, integral=False, marked=False):
    # whole counts into an unsigned type, the usual output: one compiled pass
    # (lbnl_dask.kernels.whole_counts) where it gives what the numpy reference gives
    dtype = np.dtype(dtype)
    if (
        integral
        and dtype.kind == "u"
        and x.dtype in (np.float32, np.float64)
        and x.flags.c_contiguous
        and float(x.dtype.type(saturation)) == saturation
        and 1 <= saturation <= np.iinfo(dtype).max
    ):
        from . import kernels

        over = x.dtype.type(np.inf if marked else saturation)
        return kernels.whole_counts(x, over, _largest_valid(dtype, saturation, x.dtype),
                                    dtype.type(saturation), dtype.type(invalid_value(dtype)),
                                    np.empty(x.shape, dtype))  # fmt: skip
    return _finalize_numpy(x, dtype, saturation, integral, marked)


def _finalize_numpy(x, dtype, saturation, integral=False, marked=False):
    # True counts are never negative: a lossy round trip's undershoot is clipped at 0 in
    # every type (in int16, -1 is also the invalid marker). Only an overload is written as
    # the saturation: +inf, and (unless ``marked``: a round trip's output, whose overloads
    # are all +inf) a value at or above it; a valid value that rounds up to it (-S, float16)
    # or that a lossy step pushed there is the largest value below it.
    dtype = np.dtype(dtype)
    with np.errstate(invalid="ignore"):  # (NaN: neither)
        over = np.isposinf(x) if marked else x >= np.float64(saturation)
    top = _largest_valid(dtype, saturation, x.dtype)
    if dtype.kind == "f":
        out = np.clip(x, 0, top).astype(dtype)  # NaN stays NaN
        np.copyto(out, dtype.type(saturation), where=over)
        return out
    out = np.empty(x.shape, dtype)
    with np.errstate(invalid="ignore"):  # NaN casts to garbage here, overwritten just below
        np.clip(x if integral else np.rint(x), 0, top, out=out, casting="unsafe")
    np.copyto(out, dtype.type(saturation), where=over)
    np.copyto(out, invalid_value(dtype), where=np.isnan(x))
    return out


def _largest_valid(dtype: np.dtype, saturation, x_dtype) -> np.floating:
    """The largest value of ``x_dtype`` (a float type) that finalizes to a valid pixel of
    ``dtype`` below ``saturation``: saturation - 1 for integers, the float below it for floats."""
    if dtype.kind == "f":
        v = float(np.nextafter(dtype.type(saturation), dtype.type(-np.inf)))
    else:
        v = max(float(saturation) - 1, 0.0)
    return _below(np.dtype(x_dtype).type(v), v)


def _below(value: np.floating, limit: float) -> np.floating:
    """The largest number of ``value``'s float type that is at most ``limit``."""
    while float(value) > limit:
        value = np.nextafter(value, value.dtype.type(-np.inf))
    return value


def finalize(
    x: da.Array, dtype, saturation, integral: bool = False, marked: bool = False
) -> da.Array:
    """Output pixels of ``dtype``: saturated (+inf) pixels, and any at or above
    ``saturation``, = ``saturation``; invalid (NaN) pixels = all bits set (NaN for floats);
    the others rounded to the nearest integer (half to even) and clipped to [0, the largest
    value below the saturation] in every type, so a valid pixel never reads as an overload.
    ``integral``: the counts are whole numbers already (no log/exp), so rounding is skipped
    (one whole-frame pass less). ``marked``: every overload is +inf already (a lossy round
    trip's output, after :func:`saturate`): a finite value at or above the saturation is a
    valid pixel the codec pushed there, and is clipped below it."""
    return x.map_blocks(
        _finalize_block, np.dtype(dtype), saturation, bool(integral), bool(marked),
        dtype=np.dtype(dtype),
    )  # fmt: skip


def saturate(x: da.Array, saturation) -> da.Array:
    """Counts at or above ``saturation`` (the output's, lower than the input's cutoff allows
    where a codec or the output type caps it) marked saturated (+inf) before a lossy round
    trip: it then keeps them exactly and leaves them out of the cell totals it restores, and
    :func:`finalize` (``marked``) writes them, and only them, as the saturation."""
    return x.map_blocks(_saturate_block, x.dtype.type(saturation), dtype=x.dtype)


def _saturate_block(x: np.ndarray, top) -> np.ndarray:
    out = x.copy()
    with np.errstate(invalid="ignore"):
        out[x >= top] = np.inf
    return out
