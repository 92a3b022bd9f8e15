"""Regions to omit (``-R``/``-C``): the pixels they name, set to 0 in every output frame."""

from __future__ import annotations

import re

import dask.array as da
import numpy as np

_STRIDE = re.compile(r"^(columns|rows)_(\d*)::(\d+)$")
_NOFM = re.compile(r"^zero_(\d+)_of_(\d+)_(columns|rows)$")


def region_mask(specs, shape) -> np.ndarray:
    """Boolean (ny, nx) mask of the pixels that ``-R``/``-C`` specifications omit (set to 0).

    Formats (indices in output pixels, x = columns = fast axis): ``columns_START::STEP``,
    ``rows_START::STEP``, ``zero_N_of_M_columns``, ``zero_N_of_M_rows``, ``a,b`` (columns
    a..b inclusive, all rows), ``a,b,c,d`` (columns a..b, rows c..d, inclusive). A
    specification naming no pixel of the frames (outside them: input pixels given for
    binned output?) is a ValueError, not a silent no-op.
    """
    out = np.zeros(shape, bool)
    for spec in specs or ():
        spec = spec.strip()
        one = _spec_mask(spec, shape)
        if not one.any():
            raise ValueError(f"region {spec!r} names no pixel of the output frames "
                             f"({shape[0]} x {shape[1]}, after binning)")  # fmt: skip
        out |= one
    return out


def _spec_mask(spec: str, shape) -> np.ndarray:
    ny, nx = shape
    out = np.zeros(shape, bool)
    m = _STRIDE.match(spec)
    if m:
        start, step = int(m.group(2) or 0), int(m.group(3))
        if step < 1:
            raise ValueError(f"region {spec!r}: step must be at least 1")
        if m.group(1) == "columns":
            out[:, start::step] = True
        else:
            out[start::step, :] = True
        return out
    m = _NOFM.match(spec)
    if m:
        n, mod = int(m.group(1)), int(m.group(2))
        if mod < 1:
            raise ValueError(f"region {spec!r}: M must be at least 1")
        if m.group(3) == "columns":
            out[:, (np.arange(nx) % mod) < n] = True
        else:
            out[(np.arange(ny) % mod) < n, :] = True
        return out
    try:
        nums = [int(t) for t in spec.split(",")]
    except ValueError:
        raise ValueError(
            f"region {spec!r}: not one of columns_S::T, rows_S::T, "
            "zero_N_of_M_columns|rows, a,b or a,b,c,d"
        ) from None
    if len(nums) == 2:
        out[:, nums[0] : nums[1] + 1] = True
    elif len(nums) == 4:
        out[nums[2] : nums[3] + 1, nums[0] : nums[1] + 1] = True
    else:
        raise ValueError(f"region {spec!r}: give 2 numbers (a,b) or 4 (a,b,c,d)")
    return out


def omit_regions(x: da.Array, omit: np.ndarray | None) -> da.Array:
    """Set the valid pixels of ``omit`` (ny, nx boolean, see :func:`region_mask`) to 0 in
    every frame; invalid pixels stay invalid."""
    if omit is None or not omit.any():
        return x
    return da.where(da.from_array(omit[None], chunks=-1) & ~da.isnan(x), 0, x).astype(x.dtype)
