"""Pure functions on dask arrays: flag invalid/saturated pixels, sum frames, bin pixels, scale.

Frames are (n, ny, nx) dask arrays chunked along frames only. Counts are carried as
``values`` (int64, invalid pixels 0) beside ``flags`` (uint8: :data:`INVALID` | :data:`SATURATED`),
so that summing and binning stay exact integer sums while invalidity and saturation
propagate by bitwise OR: an output pixel is invalid if any of its inputs is, saturated if
any of its valid inputs is at or above the count cutoff (SPEC A2).

Summing and binning are ``da.coarsen`` reductions. Partial last groups of frames and
partial edge blocks are zero-padded first (as the published tool does), inside the last
block, so chunks never re-align: keep frame chunks a multiple of the sum factor.
"""
from __future__ import annotations

import re

import dask.array as da
import numpy as np

INVALID = np.uint8(1)
SATURATED = np.uint8(2)


def select(frames: da.Array, first: int, last: int) -> da.Array:
    """Frames first..last (1-based, inclusive) of an (n, ny, nx) array."""
    return frames[first - 1 : last]


def invalid_value(dtype) -> int | float:
    """The all-bits-set value of an integer dtype (module gaps, masked pixels); NaN for floats."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.nan
    return np.array(-1).astype(dtype).item() if dtype.kind == "i" else np.iinfo(dtype).max


def _flag_block(block, mask, cutoff):
    bad = block == invalid_value(block.dtype)
    if mask is not None:
        bad |= np.asarray(mask)[None] != 0
    flags = bad.astype(np.uint8)
    if cutoff is not None:
        flags |= ((block >= cutoff) & ~bad).astype(np.uint8) * SATURATED
    return flags


def _value_block(block, mask):
    bad = block == invalid_value(block.dtype)
    if mask is not None:
        bad |= np.asarray(mask)[None] != 0
    return np.where(bad, 0, block).astype(np.int64)


def split(frames: da.Array, pixel_mask: np.ndarray | None = None, cutoff: int | None = None):
    """(values, flags) of raw frames.

    values: int64 counts, 0 where invalid (all bits set in the input dtype, or flagged in
    ``pixel_mask`` (ny, nx)). flags: uint8, INVALID there, SATURATED where a valid count
    is >= ``cutoff``.
    """
    values = frames.map_blocks(_value_block, pixel_mask, dtype=np.int64)
    flags = frames.map_blocks(_flag_block, pixel_mask, cutoff, dtype=np.uint8)
    return values, flags


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


def _or_reduce(x, axis=None):
    return np.bitwise_or.reduce(x, axis=axis)


def _coarsen(values, flags, factors):
    for axis, f in factors.items():
        if f > 1:
            if any(c % f for c in values.chunks[axis][:-1]):
                raise ValueError(f"chunks {values.chunks[axis]} along axis {axis} are not multiples of {f}")
            values = pad_to_multiple(values, axis, f)
            flags = pad_to_multiple(flags, axis, f)
    factors = {a: f for a, f in factors.items() if f > 1}
    if not factors:
        return values, flags
    return (da.coarsen(np.sum, values, factors), da.coarsen(_or_reduce, flags, factors))


def sum_frames(values: da.Array, flags: da.Array, s: int):
    """Sum s consecutive frames; the partial last group keeps the frames it has.
    (n, ny, nx) -> (ceil(n/s), ny, nx)."""
    return _coarsen(values, flags, {0: int(s)})


def bin_pixels(values: da.Array, flags: da.Array, b: int):
    """Sum b x b pixel blocks, zero-padding bottom/right: (n, ny, nx) -> (n, ceil(ny/b), ceil(nx/b))."""
    return _coarsen(values, flags, {1: int(b), 2: int(b)})


def scale(values: da.Array, factor: float) -> da.Array:
    """Multiply counts by ``factor`` and round to the nearest integer (int64)."""
    if factor == 1:
        return values
    return da.rint(values * float(factor)).astype(np.int64)


def log_transform(values: da.Array, base: float, signed: bool = False) -> da.Array:
    """``ln(v+1)/ln(base)`` (float32); negatives give ``-ln(1-v)/ln(base)`` if ``signed`` else 0."""
    v = values.astype(np.float32)
    lb = np.float32(np.log(base))
    neg = -da.log1p(-v) / lb if signed else 0
    return da.where(v >= 0, da.log1p(da.maximum(v, 0)) / lb, neg).astype(np.float32)


def exp_transform(values: da.Array, base: float, signed: bool = False) -> da.Array:
    """Inverse of :func:`log_transform`: ``base**w - 1``; negatives ``-(base**-w - 1)`` if ``signed`` else 0."""
    w = values.astype(np.float32)
    pos = da.power(np.float32(base), da.maximum(w, 0)) - 1
    neg = -(da.power(np.float32(base), da.maximum(-w, 0)) - 1) if signed else 0
    return da.where(w >= 0, pos, neg).astype(np.float32)


# ---------------------------------------------------------------- region omission (-R / -C)
_STRIDE = re.compile(r"^(columns|rows)_(\d*)::(\d+)$")
_NOFM = re.compile(r"^zero_(\d+)_of_(\d+)_(columns|rows)$")


def region_mask(specs, shape) -> np.ndarray:
    """Boolean (ny, nx) mask of the pixels that ``-R``/``-C`` specifications omit (set to 0).

    Formats (indices in output pixels, x = columns = fast axis): ``columns_START::STEP``,
    ``rows_START::STEP``, ``zero_N_of_M_columns``, ``zero_N_of_M_rows``, ``a,b`` (columns
    a..b inclusive, all rows), ``a,b,c,d`` (columns a..b, rows c..d, inclusive).
    """
    ny, nx = shape
    out = np.zeros(shape, bool)
    for spec in specs or ():
        spec = spec.strip()
        m = _STRIDE.match(spec)
        if m:
            start, step = int(m.group(2) or 0), int(m.group(3))
            if step < 1:
                raise ValueError(f"region {spec!r}: step must be at least 1")
            if m.group(1) == "columns":
                out[:, start::step] = True
            else:
                out[start::step, :] = True
            continue
        m = _NOFM.match(spec)
        if m:
            n, mod = int(m.group(1)), int(m.group(2))
            if mod < 1:
                raise ValueError(f"region {spec!r}: M must be at least 1")
            if m.group(3) == "columns":
                out[:, (np.arange(nx) % mod) < n] = True
            else:
                out[(np.arange(ny) % mod) < n, :] = True
            continue
        try:
            nums = [int(t) for t in spec.split(",")]
        except ValueError:
            raise ValueError(f"region {spec!r}: not one of columns_S::T, rows_S::T, "
                             "zero_N_of_M_columns|rows, a,b or a,b,c,d") from None
        if len(nums) == 2:
            out[:, nums[0] : nums[1] + 1] = True
        elif len(nums) == 4:
            out[nums[2] : nums[3] + 1, nums[0] : nums[1] + 1] = True
        else:
            raise ValueError(f"region {spec!r}: give 2 numbers (a,b) or 4 (a,b,c,d)")
    return out


# ---------------------------------------------------------------- final output pixels
def omit_regions(values: da.Array, omit: np.ndarray | None) -> da.Array:
    """Set the pixels of ``omit`` (ny, nx boolean, see :func:`region_mask`) to 0 in every frame."""
    if omit is None or not omit.any():
        return values
    return da.where(da.from_array(omit[None], chunks=-1), 0, values).astype(values.dtype)


def _finalize_block(values, flags, dtype, saturation):
    dtype = np.dtype(dtype)
    v = values
    if dtype.kind == "f":
        out = v.astype(dtype)
    else:
        lo = np.iinfo(dtype).min if dtype.kind == "i" else 0
        out = np.clip(np.rint(v) if v.dtype.kind == "f" else v, lo, saturation).astype(dtype)
    out[(flags & SATURATED) != 0] = saturation
    out[(flags & INVALID) != 0] = invalid_value(dtype)
    return out


def finalize(values: da.Array, flags: da.Array, dtype, saturation) -> da.Array:
    """Output pixels of ``dtype``: values clipped to [0, saturation] (integers rounded),
    saturated pixels = ``saturation``, invalid pixels = all bits set (NaN for floats)."""
    return da.map_blocks(_finalize_block, values, flags, np.dtype(dtype), saturation,
                         dtype=np.dtype(dtype))
