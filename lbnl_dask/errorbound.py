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

:class:`SZ3Storage` is the other way (``-c sz3``): the output frames stored with SZ3's own
HDF5 filter, as the peers store them, so a reader decodes SZ3 itself (no round trip, no
restored totals, no bitshuffle-LZ4 after it).
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


def filter_chunk(frame: np.ndarray, filters: dict, who) -> bytes:
    """The chunk HDF5 stores for the 2-D ``frame`` through ``filters`` (h5py keyword
    arguments), made in a file held in memory; ``who`` names the caller in errors."""
    with h5py.File(io.BytesIO(), "w") as f:
        d = f.create_dataset("x", data=frame, chunks=frame.shape, **filters)
        mask, chunk = d.id.read_direct_chunk((0, 0))
    if mask:
        raise CodecError(f"{who!r}: the filter did not run (is hdf5plugin's plugin there?)")
    return bytes(chunk)


def unfilter_chunk(chunk: bytes, shape: tuple, dtype, filters: dict) -> np.ndarray:
    """The frame of ``shape`` and ``dtype`` that HDF5 decodes from a stored ``chunk``."""
    with h5py.File(io.BytesIO(), "w") as f:
        d = f.create_dataset("x", shape=shape, dtype=dtype, chunks=shape, **filters)
        d.id.write_direct_chunk((0, 0), chunk)
        return d[()]


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
        chunk = filter_chunk(frame, self.filter(), self)
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
        filters = type(self)(bound).filter()
        frame = unfilter_chunk(buf[_HEADER.size :], (ny, nx), np.float32, filters)
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


class SZ3Storage:
    """Output frames stored with SZ3's own HDF5 filter (``-c sz3``), every pixel within
    ``bound`` counts of its value, as int32.

    A reader decodes the filter itself, so the markers must survive the bound: an invalid
    pixel (-1 from :func:`lbnl_dask.transform.finalize`) is stored as ``-(bound + 1)`` and a
    saturated one (``saturation``) as ``saturation + bound + 1`` (the bound rounded up);
    decoded, the first is still negative (readers mask it) and the second still at or above
    ``saturation`` (an overload). A marker so close to the counts costs SZ3 few bytes.
    :meth:`encode` decodes what it made and checks the bound, and counts the valid pixels a
    reader will not take as counts: those that decode negative (a background below about
    ``bound`` counts) or at the saturation.
    """

    dtype = np.dtype(np.int32)
    MAX_BOUND = 2**20
    #: The highest saturation whose overload marker still fits int32 at MAX_BOUND.
    MAX_SATURATION = 2**31 - 2 - MAX_BOUND

    def __init__(self, bound: float, saturation: int):
        self.bound, self.saturation = float(bound), int(saturation)
        if not 0 < self.bound <= self.MAX_BOUND:
            raise CodecError(f"SZ3 storage: the error bound must be in (0, {self.MAX_BOUND}], "
                             f"not {bound!r}")  # fmt: skip
        if not 0 < self.saturation <= self.MAX_SATURATION:
            raise CodecError(f"SZ3 storage: the saturation must be in (0, "
                             f"{self.MAX_SATURATION}], not {saturation!r}")  # fmt: skip
        margin = int(np.ceil(self.bound)) + 1
        self.invalid, self.overload = -margin, self.saturation + margin

    def __repr__(self):
        return f"SZ3Storage(bound={self.bound:g}, saturation={self.saturation})"

    def filter(self) -> dict:
        """h5py ``create_dataset`` keyword arguments of the filter at ``self.bound``."""
        return SZ3(self.bound).filter()

    def stored(self, frame: np.ndarray) -> np.ndarray:
        """The int32 values given to the filter: ``frame``'s, markers moved out of reach."""
        x = np.array(frame, dtype=self.dtype)
        x[x < 0] = self.invalid
        x[x >= self.saturation] = self.overload
        return x

    def encode(self, frame: np.ndarray) -> tuple[bytes, int]:
        """A finalised frame (ny, nx) -> (its stored chunk, how many valid pixels decode
        negative or at the saturation). Raises CodecError if SZ3 broke its bound."""
        return self.roundtrip(frame)[:2]

    def roundtrip(self, frame: np.ndarray) -> tuple[bytes, int, np.ndarray]:
        """:meth:`encode`'s (chunk, lost pixels) and the frame a reader decodes from it."""
        x = self.stored(frame)
        chunk = filter_chunk(x, self.filter(), self)
        back = self.decode(chunk, x.shape)
        err = np.abs(back.astype(np.int64) - x).max(initial=0)
        if err > self.bound:
            raise CodecError(f"{self!r}: a pixel decoded {err} counts off, beyond the bound")
        valid = (x >= 0) & (x < self.saturation)
        lost = valid & ((back < 0) | (back >= self.saturation))
        return chunk, int(np.count_nonzero(lost)), back

    def decode(self, chunk: bytes, shape: tuple) -> np.ndarray:
        """A stored chunk -> the int32 frame (ny, nx) a reader sees."""
        return unfilter_chunk(chunk, tuple(shape), self.dtype, self.filter())


register_codec(SZ3)
register_codec(ZFP)
