"""The lossless ``-c`` choices as numcodecs codecs: each frame encoded outside HDF5.

HDF5 runs its filters under its per-process lock, so a data file written through the
``bszstd``, ``bshuf`` or ``zstd`` filter is compressed one frame at a time however many
workers a run has (measured: ``-c bszstd`` 3.2 s with 3.3 s of CPU where ``bslz4``, encoded
by the workers, took 1.8 s). :func:`storage_codec` gives the codec that makes a chunk the
filter would have stored; the writer puts it in place with ``write_direct_chunk`` and
readers decode it with the usual HDF5 filter:

- ``bslz4``: :class:`lbnl_dask.bslz4.BitshuffleLZ4`;
- ``bszstd``: :class:`BitshuffleZstd` (filter 32008's zstd compressor: its chunks may
  differ from the filter's by a few bytes, the zstd library's version, and decode the same);
- ``bshuf``: :class:`Bitshuffle` (filter 32008 without a compressor: the same bytes);
- ``zstd`` (l_bnl_compress' zstd, Blosc with Zstandard and no shuffle): numcodecs' own
  ``Blosc`` (in worker threads the same bytes as HDF5's Blosc filter; on the main thread
  Blosc's own threads may order its blocks otherwise).

Where HDF5 would store a chunk it could not shrink as it is (a tiny frame), these chunks
are stored encoded all the same; every one decodes through the usual filter.
"""

from __future__ import annotations

import struct

import numpy as np
from numcodecs import Blosc
from numcodecs.abc import Codec
from numcodecs.registry import register_codec

from .bslz4 import BitshuffleLZ4, BlockCodec, check_chunk
from .layout import BSHUF_BLOCK, DEFAULT_LEVEL


class BitshuffleZstd(BlockCodec):
    """Bitshuffle + Zstandard of one frame, as a chunk of HDF5 filter 32008 with its zstd
    compressor (``-c bszstd``): a 12-byte header (big-endian uint64 byte count, uint32
    block size in bytes), then each block's size and zstd frame. ``decode`` checks that the
    blocks fill the chunk before bitshuffle's decoder follows their sizes."""

    codec_id = "lbnl_bszstd"

    def __init__(self, dtype="uint16", level: int = DEFAULT_LEVEL, block_size: int = 0):
        super().__init__(dtype, block_size)
        self.level = int(level)

    def get_config(self):
        return {**super().get_config(), "level": self.level}

    def encode(self, buf):
        import bitshuffle

        a = np.ascontiguousarray(buf, dtype=self.dtype).reshape(-1)
        block = self._block()
        body = bitshuffle.compress_zstd(a, block, self.level)
        return b"".join((struct.pack(">QI", a.nbytes, block * self.dtype.itemsize), body))

    def decode(self, buf, out=None):
        import bitshuffle

        b = np.frombuffer(buf, dtype=np.uint8)
        want = None if out is None else np.asarray(out).size
        n, block = check_chunk(b, self.dtype, want, compressor="zstd")
        a = bitshuffle.decompress_zstd(b[12:], (n,), self.dtype, block)
        if out is None:
            return a
        np.asarray(out)[...] = a.reshape(np.asarray(out).shape)
        return out


class Bitshuffle(BlockCodec):
    """Bitshuffle alone of one frame, as a chunk of HDF5 filter 32008 without a compressor
    (``-c bshuf``): the frame's bits transposed block by block, no header."""

    codec_id = "lbnl_bshuf"

    def encode(self, buf):
        import bitshuffle

        a = np.ascontiguousarray(buf, dtype=self.dtype).reshape(-1)
        return bitshuffle.bitshuffle(a, self._block()).tobytes()

    def decode(self, buf, out=None):
        import bitshuffle

        a = np.frombuffer(buf, dtype=self.dtype)
        if len(buf) % self.dtype.itemsize or (out is not None and a.size != np.asarray(out).size):
            raise ValueError(f"a bitshuffle chunk of {len(buf)} bytes is not the frame's")
        a = bitshuffle.bitunshuffle(a, self._block())
        if out is None:
            return a
        np.asarray(out)[...] = a.reshape(np.asarray(out).shape)
        return out


def storage_codec(compression: str, level: int | None, dtype) -> Codec | None:
    """The codec whose chunks ``-c compression`` (``-l level``) stores for frames of
    ``dtype``, or None where the data file is written through HDF5 (``none``)."""
    level = DEFAULT_LEVEL if level is None else int(level)
    if compression == "bslz4":
        return BitshuffleLZ4(dtype, BSHUF_BLOCK)
    if compression == "bszstd":
        return BitshuffleZstd(dtype, level, BSHUF_BLOCK)
    if compression == "bshuf":
        return Bitshuffle(dtype)
    if compression == "zstd":
        return Blosc(cname="zstd", clevel=level, shuffle=Blosc.NOSHUFFLE)
    return None


register_codec(BitshuffleZstd)
register_codec(Bitshuffle)
