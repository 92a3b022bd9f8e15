"""A deliberately plain numpy reference of sum + bin (+ scale, saturation, invalid pixels):
explicit loops over output pixels, independent of lbnl_dask's coarsen code."""

import numpy as np


def sum_bin_reference(frames, mask, cutoff, s, b, scale=1.0, saturation=None):
    """Returns (values int64 or float, invalid bool, saturated bool) of the output frames."""
    n, ny, nx = frames.shape
    allbits = np.iinfo(frames.dtype).max
    bad = frames == allbits
    if mask is not None:
        bad |= mask[None] != 0
    sat = (frames >= cutoff) & ~bad if cutoff is not None else np.zeros_like(bad)
    no, oy, ox = -(-n // s), -(-ny // b), -(-nx // b)
    vals = np.zeros((no, oy, ox), np.int64)
    inv = np.zeros((no, oy, ox), bool)
    osat = np.zeros((no, oy, ox), bool)
    for k in range(no):
        for i in range(oy):
            for j in range(ox):
                box = np.s_[k * s : (k + 1) * s, i * b : (i + 1) * b, j * b : (j + 1) * b]
                inv[k, i, j] = bad[box].any()
                osat[k, i, j] = sat[box].any() and not inv[k, i, j]
                vals[k, i, j] = np.where(bad[box], 0, frames[box].astype(np.int64)).sum()
    vals = np.rint(vals * scale).astype(np.int64) if scale != 1 else vals
    if saturation is not None:
        osat |= (vals >= saturation) & ~inv
    return vals, inv, osat


def expected_output(frames, mask, cutoff, s, b, dtype, saturation, scale=1.0):
    """The output pixels lbnl-compress must write without a lossy step."""
    vals, inv, sat = sum_bin_reference(frames, mask, cutoff, s, b, scale)
    dtype = np.dtype(dtype)
    out = np.clip(vals, 0, saturation).astype(dtype)
    out[sat] = saturation
    out[inv] = np.iinfo(dtype).max if dtype.kind == "u" else -1
    return out
