"""The lossy round trip of a block of frames, per frame: what ``map_blocks`` runs.

Counts arrive as floats with markers (NaN invalid, +inf saturated: :mod:`lbnl_dask.transform`).
:func:`encode_frames` gives each frame's codec bytes, the marked pixels (and those ``keep``
asks for) filled with the local background first so they do not ring into others;
:func:`decode_frames` decodes them and puts those pixels back unchanged.
"""

from __future__ import annotations

import numpy as np
from numcodecs.abc import Codec

from .background import compiled_frames, fill_at, keep_within, restore_totals
from .codecs import HCOMPRESS_MAX, J2K_MAX, JPEG2000
from .errorbound import FLOAT32_EXACT, SZ3, ZFP


def _valid(frame: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
    """The pixels of ``frame`` (ny, nx) the codec carries, as a bool mask: not invalid (NaN),
    saturated (+inf) or in ``keep``; the round trip puts the others back unchanged."""
    valid = np.isfinite(frame)
    if keep is not None:
        valid &= ~keep
    return valid


def _special(frame: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
    """Flat indices of the pixels :func:`_valid` leaves out (what :func:`_prepared` fills)."""
    return np.flatnonzero(~_valid(frame, keep))


def _prepared(frame: np.ndarray, codec: Codec, special: np.ndarray) -> np.ndarray:
    """Counts (ny, nx, with markers) as the codec's input: clipped to its range, the pixels
    at flat indices ``special`` filled with the local background, rounded to its integer type."""
    (lo, hi), dtype = _input_type(codec)
    x = np.empty(frame.shape, frame.dtype)  # C order, for _fill's flat view
    np.clip(frame, lo, hi, out=x)  # NaN stays NaN until filled
    if special.size:
        fill_at(x, special, FILL_TILE)
    out = np.empty(frame.shape, dtype)
    np.rint(x, out=out, casting="unsafe")
    return out


#: ``keep`` for :func:`lbnl_dask.kernels.codec_input` when nothing is kept.
_NO_KEEP = np.zeros((0, 0), bool)
#: Cells of the local background that fills the pixels a codec does not carry.
FILL_TILE = 32


def _codec_input(frame: np.ndarray, codec: Codec, keep: np.ndarray | None):
    """(the codec's input, the valid pixels (ny, nx) bool): :func:`_prepared` of the pixels
    :func:`_valid` leaves out, in one compiled kernel where it applies (a C-contiguous float
    frame; :func:`lbnl_dask.kernels.codec_input`), else in numpy: the same values."""
    (lo, hi), dtype = _input_type(codec)
    compiled = (
        frame.dtype in (np.float32, np.float64)
        and frame.flags.c_contiguous
        and (
            keep is None
            or (keep.dtype == bool and keep.flags.c_contiguous and keep.shape == frame.shape)
        )
    )
    if compiled:
        from . import kernels

        out, valid = np.empty(frame.shape, dtype), np.empty(frame.shape, bool)
        kernels.codec_input(frame, _NO_KEEP if keep is None else keep, frame.dtype.type(lo),
                            frame.dtype.type(hi), FILL_TILE, out, valid)  # fmt: skip
        return out, valid
    valid = _valid(frame, keep)
    return _prepared(frame, codec, np.flatnonzero(~valid)), valid


def _input_type(codec: Codec) -> tuple[tuple[float, float], type]:
    """The range and type of the counts a codec takes."""
    if isinstance(codec, JPEG2000):
        return (0, J2K_MAX), np.uint16
    if isinstance(codec, (SZ3, ZFP)):
        return (0, FLOAT32_EXACT), np.float32
    return (-HCOMPRESS_MAX, HCOMPRESS_MAX), np.int32


def encode_frames(block: np.ndarray, codec: Codec, keep: np.ndarray | None = None) -> np.ndarray:
    """The codec bytes of every frame of a block of counts (n, ny, nx), as an object array
    (n, 1, 1). Invalid (NaN) and saturated (+inf) pixels, and those of the boolean ``keep``
    (n, ny, nx), are replaced by the local background first, so they do not ring into others."""
    out = np.empty((block.shape[0], 1, 1), dtype=object)
    for i in range(block.shape[0]):
        out[i, 0, 0] = codec.encode(_codec_input(block[i], codec, _kept(keep, i))[0])
    return out


def decode_frames(
    block: np.ndarray,
    encoded: np.ndarray,
    codec: Codec,
    keep: np.ndarray | None = None,
    restore: bool = False,
) -> np.ndarray:
    """Decode :func:`encode_frames`' bytes back to counts of ``block``'s dtype; the invalid
    and saturated pixels of ``block``, and those of ``keep``, are put back unchanged. With
    ``restore``, each small cell keeps the original's total (:func:`restore_totals`)."""
    out = np.empty(block.shape, block.dtype)  # C order: out[i] and its flat view are views
    bounded = isinstance(codec, (SZ3, ZFP))  # they decode to fractions: counts are whole
    for i in range(block.shape[0]):
        codec.decode(encoded[i].item(), out=out[i])
        if bounded:
            np.rint(out[i], out=out[i])
        valid = _valid(block[i], _kept(keep, i))
        _put_back(out[i], block[i], valid, restore)
        if bounded and restore:  # the restored totals kept within the codec's promise
            keep_within(out[i], block[i], valid, codec.bound)
    return out


def _kept(keep: np.ndarray | None, i: int) -> np.ndarray | None:
    return None if keep is None else keep[i]


def _put_back(decoded: np.ndarray, original: np.ndarray, valid: np.ndarray, restore: bool):
    """The decoded frame's cell totals restored (if asked), and the pixels the bool mask
    ``valid`` leaves out put back as they were: in one compiled pass where
    :func:`lbnl_dask.background.compiled_frames` says so (:func:`lbnl_dask.kernels.put_back`;
    1.6 ms of index arrays and fancy indexing before, per 4M output frame), else by their
    flat indices."""
    if restore:
        restore_totals(decoded, original, None, valid=valid)
    if compiled_frames(decoded, original, valid):
        from . import kernels

        kernels.put_back(decoded, original, valid)
        return
    special = np.flatnonzero(~valid)
    decoded.reshape(-1)[special] = original.reshape(-1)[special]


def roundtrip_frames(block: np.ndarray, codec: Codec) -> np.ndarray:
    """Encode and decode every frame of a block of counts (n, ny, nx) with ``codec`` (see
    :func:`encode_frames` and :func:`decode_frames`)."""
    return decode_frames(block, encode_frames(block, codec), codec)


# ---------------------------------------------------------------- HCompress without its coder
def hcompress_frames(
    block: np.ndarray, codec, keep: np.ndarray | None = None, restore: bool = False
) -> np.ndarray:
    """:func:`decode_frames` of :func:`encode_frames` for an HCompress ``codec``, pixel for
    pixel, without HCompress' lossless quadtree coder (nor its process-wide lock): the loss
    is all in the H-transform's quantisation, which :mod:`lbnl_dask.hcompress_fast` applies
    in numpy."""
    from .hcompress_fast import roundtrip_frame

    out = np.empty(block.shape, block.dtype)
    for i in range(block.shape[0]):
        prepared, valid = _codec_input(block[i], codec, _kept(keep, i))
        roundtrip_frame(prepared, codec.scale, codec.tile_rows, checked=True, out=out[i])
        _put_back(out[i], block[i], valid, restore)
    return out


def sampled_sizes(
    block: np.ndarray, codec, keep: np.ndarray | None, every: int, block_info=None
) -> np.ndarray:
    """Object (n, 1, 1): the codec's byte count for the frames whose output index is a
    multiple of ``every`` (the first of each data file), None for the others. What the
    per-data-file line of l_bnl_compress reports, measured on a sample instead of every frame."""
    first = block_info[0]["array-location"][0][0] if block_info else 0
    out = np.full((block.shape[0], 1, 1), None, dtype=object)
    for i in range(block.shape[0]):
        if (first + i) % every == 0:
            out[i, 0, 0] = len(codec.encode(_codec_input(block[i], codec, _kept(keep, i))[0]))
    return out
