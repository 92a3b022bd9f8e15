"""Error-bounded codecs (SZ3, ZFP) as numcodecs codecs, through hdf5plugin's HDF5 filters.

What a facility could use instead of this project's round trips are the error-bounded
compressors hdf5plugin ships as HDF5 filters. Here they are a lossy step like HCompress and
JPEG-2000: a frame of counts (float32) is stored with the filter in an HDF5 file held in
memory, and its compressed chunk is the codec's bytes; decoding writes the chunk back into
such a file and reads it. The output then goes through the same path as the other round
trips (cell totals restored, integers, bitshuffle-LZ4) and every XDS plugin reads it.

- ``SZ3(bound)``: SZ3 with an absolute error bound in counts (every pixel within ``bound``);
- ``ZFP(accuracy)``: ZFP's fixed-accuracy mode (absolute error at most about ``accuracy``).

The stream is ``LBEB``, a format version byte, the method byte (1 SZ3, 2 ZFP), the bound
(float64), ny, nx (uint32) and the filter's chunk. HDF5 calls hold h5py's process-wide lock:
these codecs run in parallel on worker processes, not on threads.
"""

from __future__ import annotations

import io
import struct
from abc import abstractmethod

import h5py
import hdf5plugin
import numpy as np
from numcodecs.abc import Codec
from numcodecs.registry import register_codec

from .codecs import CodecError

MAGIC = b"LBEB"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<4sBBdII")
#: Counts above this are not exact in float32: the codecs' input is clipped there.
FLOAT32_EXACT = 2**24


class _ErrorBounded(Codec):
    """Shared by :class:`SZ3` and :class:`ZFP`: ``method`` byte, ``filter()`` kwargs."""

    method = 0
    input_dtype = np.dtype(np.float32)
    input_range = (0, FLOAT32_EXACT)

    def __init__(self, bound: float):
        bound = float(bound)
        if not bound > 0 or not np.isfinite(bound):
            raise CodecError(f"{type(self).__name__}: the error bound must be positive, "
                             f"not {bound}")  # fmt: skip
        self.bound = bound

    @abstractmethod
    def filter(self) -> dict:
        """h5py ``create_dataset`` keyword arguments of the filter at ``self.bound``."""

    def get_config(self):
        return {"id": self.codec_id, "bound": self.bound}

    def __repr__(self):
        return f"{type(self).__name__}(bound={self.bound:g})"

    def encode(self, buf) -> bytes:
        """A frame (ny, nx) of counts -> the codec's bytes."""
        frame = np.ascontiguousarray(buf, dtype=np.float32)
        if frame.ndim != 2:
            raise CodecError(f"{self!r}: needs a 2-D frame, not shape {frame.shape}")
        with h5py.File(io.BytesIO(), "w") as f:
            d = f.create_dataset("x", data=frame, chunks=frame.shape, **self.filter())
            mask, chunk = d.id.read_direct_chunk((0, 0))
        if mask:
            raise CodecError(f"{self!r}: the filter did not run (is hdf5plugin's plugin there?)")
        head = _HEADER.pack(MAGIC, FORMAT_VERSION, self.method, self.bound, *frame.shape)
        return head + bytes(chunk)

    def decode(self, buf, out=None):
        """The codec's bytes -> the frame (ny, nx) float32 (into ``out`` if given)."""
        buf = bytes(buf)
        if len(buf) < _HEADER.size:
            raise CodecError(f"{self!r}: a stream of {len(buf)} bytes is too short")
        magic, version, method, bound, ny, nx = _HEADER.unpack_from(buf)
        if magic != MAGIC or version != FORMAT_VERSION or method != self.method:
            raise CodecError(f"{self!r}: not this codec's stream (magic {magic!r}, format "
                             f"{version}, method {method})")  # fmt: skip
        codec = type(self)(bound)
        with h5py.File(io.BytesIO(), "w") as f:
            d = f.create_dataset("x", shape=(ny, nx), dtype=np.float32, chunks=(ny, nx),
                                 **codec.filter())  # fmt: skip
            d.id.write_direct_chunk((0, 0), buf[_HEADER.size :])
            frame = d[()]
        if out is None:
            return frame
        out = np.asarray(out)
        if out.shape != (ny, nx):
            raise CodecError(f"{self!r}: out has shape {out.shape}, the frame ({ny}, {nx})")
        np.copyto(out, frame, casting="unsafe")
        return out


class SZ3(_ErrorBounded):
    """SZ3 (hdf5plugin filter 32024) with an absolute error bound ``bound`` (counts)."""

    codec_id = "lbnl_sz3"
    method = 1

    def filter(self) -> dict:
        return dict(hdf5plugin.SZ3(absolute=self.bound))


class ZFP(_ErrorBounded):
    """ZFP (hdf5plugin filter 32013) in fixed-accuracy mode, tolerance ``bound`` (counts)."""

    codec_id = "lbnl_zfp"
    method = 2

    def filter(self) -> dict:
        return dict(hdf5plugin.Zfp(accuracy=self.bound))


register_codec(SZ3)
register_codec(ZFP)
