"""Bitshuffle + LZ4 chunks outside HDF5: the Dectris frame codec, as a numcodecs codec.

:class:`BitshuffleLZ4` encodes and decodes one frame exactly as the HDF5 filter stores it,
so chunks go in and out of files with ``write_direct_chunk``/``read_direct_chunk``, outside
HDF5's per-process lock. Every chunk's block layout is checked before bitshuffle's decoder,
which takes no input length, can read past it.
"""

from __future__ import annotations

import struct
import sys
from functools import lru_cache

import h5py
import hdf5plugin  # its ids; importing it registers the HDF5 filters in this process
import numpy as np
from numcodecs.abc import Codec
from numcodecs.registry import register_codec

from .layout import BSHUF_CD_COMPRESSOR, BSHUF_LZ4, BSHUF_ZSTD


def default_block(dtype) -> int:
    """bitshuffle's default block (elements): 8 kB, a multiple of 8 elements, at least 128."""
    return max((8192 // np.dtype(dtype).itemsize) // 8 * 8, 128)


class BlockCodec(Codec):
    """What bitshuffle's chunk codecs share: the frames' ``dtype`` and the bitshuffle block
    in elements (0: bitshuffle's default, :func:`default_block`)."""

    def __init__(self, dtype="uint16", block_size: int = 0):
        self.dtype = np.dtype(dtype)
        self.block_size = int(block_size)

    def get_config(self):
        return {"id": self.codec_id, "dtype": self.dtype.str, "block_size": self.block_size}

    def _block(self) -> int:
        return self.block_size or default_block(self.dtype)


class BitshuffleLZ4(BlockCodec):
    """Bitshuffle + LZ4 of one frame, as a chunk of the HDF5 filter 32008 (what Dectris writes).

    The encoded bytes are exactly what the HDF5 filter stores (a 12-byte header: big-endian
    uint64 byte count and uint32 block size in bytes, then the LZ4 blocks), so they go into
    a file with ``write_direct_chunk`` and come out with ``read_direct_chunk``, outside
    HDF5's per-process lock. ``decode`` returns a 1-D array of ``dtype`` (or fills ``out``).

    Example::

        chunk = dset.id.read_direct_chunk((i, 0, 0))[1]        # a Dectris frame, as stored
        frame = BitshuffleLZ4(dset.dtype).decode(chunk).reshape(dset.shape[1:])
    """

    codec_id = "lbnl_bslz4"

    def encode(self, buf):
        import bitshuffle

        a = np.ascontiguousarray(buf, dtype=self.dtype).reshape(-1)
        block = self._block()
        body = bitshuffle.compress_lz4(a, block)
        return b"".join(
            (struct.pack(">QI", a.nbytes, block * self.dtype.itemsize), body)
        )  # one copy

    def decode(self, buf, out=None):
        import bitshuffle

        b = np.frombuffer(buf, dtype=np.uint8)
        n, block = check_chunk(b, self.dtype, None if out is None else np.asarray(out).size)
        if out is not None:
            dest = np.asarray(out)
            if (
                dest.flags.c_contiguous
                and dest.dtype == self.dtype
                and _decompress_into(b[12:], dest, block)
            ):
                return out
            dest[...] = bitshuffle.decompress_lz4(b[12:], (n,), self.dtype, block).reshape(
                dest.shape
            )
            return out
        return bitshuffle.decompress_lz4(b[12:], (n,), self.dtype, block)


_BLOCK_SIZE = struct.Struct(">I")


def check_chunk(chunk, dtype, n: int | None = None, compressor: str = "lz4") -> tuple[int, int]:
    """(elements, elements per block) of a bitshuffle-LZ4 chunk (bytes or uint8), after
    checking that its header and block layout fit its length (and that it holds ``n``
    elements, if given): ValueError otherwise, before any decoder follows them.
    ``compressor`` "zstd": a chunk of the filter's zstd compressor (the same layout)."""
    b = np.frombuffer(chunk, dtype=np.uint8)
    itemsize = np.dtype(dtype).itemsize
    what = _NAMES[compressor]
    if len(b) < 12:
        raise ValueError(f"corrupt {what} chunk: {len(b)} bytes, shorter than its header")
    nbytes, block_bytes = struct.unpack(">QI", b[:12].tobytes())
    count = nbytes // itemsize
    if (n is not None and count != n) or block_bytes == 0 or block_bytes % itemsize:
        raise ValueError(f"corrupt {what} chunk header ({nbytes} bytes, blocks of {block_bytes})")
    _check_blocks(b, count, itemsize, block_bytes // itemsize, compressor)
    return count, block_bytes // itemsize


_NAMES = {"lz4": "bitshuffle-LZ4", "zstd": "bitshuffle-Zstd"}


def _bound(compressor: str, nbytes: int) -> int:
    """The most bytes a block of ``nbytes`` compresses to (LZ4_compressBound,
    ZSTD_compressBound)."""
    if compressor == "zstd":
        return nbytes + (nbytes >> 8) + ((128 * 1024 - nbytes) >> 11 if nbytes < 128 * 1024 else 0)
    return nbytes + nbytes // 255 + 16


def _check_blocks(chunk: np.ndarray, n: int, itemsize: int, block: int,
                  compressor: str = "lz4") -> None:  # fmt: skip
    """Raise ValueError unless the LZ4 (or zstd) blocks of a bitshuffle chunk (12-byte
    header, then per block of ``block`` elements a big-endian uint32 compressed size and
    the data; a last partial block of a multiple of 8 elements; the last n % 8 elements
    raw) fill it exactly.
    bitshuffle's decoder is given no input length and follows these sizes: a corrupt one
    makes it read past the chunk and crash the process (a changed block-size byte of the
    header gave a segfault).

    The walk from size to size is compiled (:func:`lbnl_dask.kernels.lz4_blocks`) where
    :mod:`lbnl_dask.kernels` is imported already (numba loaded), as in every compressing run: a
    4M uint32 frame has 2190 blocks, 0.85 ms in Python, 3% of a -b 2 -s 2 -H 12 run's time. A
    tool that only reads a few frames walks them in Python (:func:`_walk_blocks`, the
    reference) rather than load numba."""
    nblocks = n // block + (1 if n % block >= 8 else 0)
    bound = _bound(compressor, block * itemsize)
    what = _NAMES[compressor]
    # each block takes 4 bytes at least: a header claiming more blocks than the chunk can
    # hold fails inside it all the same (and the count stays an int64 for the kernel)
    walked = min(nblocks, (len(chunk) - 12) // 4 + 1)
    # (a module another thread is still importing lacks the name: the Python walk then)
    walk = getattr(sys.modules.get("lbnl_dask.kernels"), "lz4_blocks", _walk_blocks)
    pos, bad, size = walk(chunk, walked, bound)
    if bad >= 0 and size < 0:
        raise ValueError(f"corrupt {what} chunk: it ends inside block {bad + 1} of {nblocks}")
    if bad >= 0:
        raise ValueError(f"corrupt {what} chunk: block {bad + 1} of {nblocks} claims {size} bytes")
    end = len(chunk)
    if pos + (n % 8) * itemsize != end:
        raise ValueError(
            f"corrupt {what} chunk: {end} bytes where its blocks take {pos + (n % 8) * itemsize}"
        )


def _walk_blocks(chunk: np.ndarray, nblocks: int, bound: int) -> tuple[int, int, int]:
    """Follow the sizes of ``nblocks`` LZ4 blocks from byte 12 of ``chunk`` (uint8): (the
    position after the last, -1, 0), or where it fails, (position, 0-based block, -1) for a
    chunk that ends inside the block's size, (position, block, its size) for a size over
    ``bound`` or past the end."""
    end, pos = len(chunk), 12
    size_at = _BLOCK_SIZE.unpack_from
    for k in range(nblocks):
        if pos + 4 > end:
            return pos, k, -1
        (size,) = size_at(chunk, pos)
        pos += 4 + size
        if size > bound or pos > end:
            return pos, k, size
    return pos, -1, 0


@lru_cache(maxsize=1)
def _bshuf_c():
    """bitshuffle's C function ``bshuf_decompress_lz4`` (its public C API, exported by the
    Python extension), or None. Through ctypes it runs without the GIL and writes straight
    into the caller's array: the Python API allocates a new one, and a copy."""
    import ctypes

    import bitshuffle.ext

    try:
        fn = ctypes.CDLL(bitshuffle.ext.__file__).bshuf_decompress_lz4
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_int64
    fn.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_size_t,
        ctypes.c_size_t,
    ]
    return fn


def _decompress_into(body: np.ndarray, dest: np.ndarray, block: int) -> bool:
    """Decode bitshuffle-LZ4 blocks ``body`` into the contiguous array ``dest``; False if the C
    function is not available. Raises ValueError on corrupt input (as the Python API does)."""
    fn = _bshuf_c()
    if fn is None:
        return False
    src = np.ascontiguousarray(body)
    used = fn(src.ctypes.data, dest.ctypes.data, dest.size, dest.dtype.itemsize, block)
    if used < 0 or used > src.nbytes:
        raise ValueError(f"corrupt bitshuffle-LZ4 data (error {used})")
    return True


# ---------------------------------------------------------------- in HDF5 datasets
def bitshuffle_compressor(d: h5py.Dataset) -> str | None:
    """ "lz4" or "zstd": a dataset filtered by bitshuffle with that compressor alone (the
    blocks :func:`check_chunk` can follow), else None."""
    plist = d.id.get_create_plist()
    if d.chunks is None or plist.get_nfilters() != 1:
        return None
    fid, _, cd, _ = plist.get_filter(0)
    if fid != hdf5plugin.BSHUF_ID or len(cd) <= BSHUF_CD_COMPRESSOR:
        return None
    return {BSHUF_LZ4: "lz4", BSHUF_ZSTD: "zstd"}.get(cd[BSHUF_CD_COMPRESSOR])


def is_bslz4(d: h5py.Dataset) -> bool:
    """Filtered by bitshuffle+LZ4 alone."""
    return bitshuffle_compressor(d) == "lz4"


def is_bslz4_per_frame(d: h5py.Dataset) -> bool:
    """One frame per chunk, filtered by bitshuffle+LZ4 alone (Dectris' layout)."""
    return d.chunks == (1,) + tuple(d.shape[1:]) and d.dtype.byteorder != ">" and is_bslz4(d)


def check_dataset_chunks(d: h5py.Dataset, start: int, stop: int) -> None:
    """Check every stored bitshuffle-LZ4 (or -zstd) chunk of frames [start, stop) of ``d``
    before HDF5's filter decodes it: ValueError naming the chunk if its blocks do not fit
    it (the filter follows their sizes out of the chunk)."""
    compressor = bitshuffle_compressor(d) or "lz4"
    c0, c1, c2 = d.chunks
    for i in range(start - start % c0, stop, c0):
        for y in range(0, d.shape[1], c1):
            for x in range(0, d.shape[2], c2):
                mask, raw = d.id.read_direct_chunk((i, y, x))
                if mask:  # stored without the filter (it failed to shrink it): nothing to check
                    continue
                try:  # HDF5 stores edge chunks whole
                    check_chunk(raw, d.dtype, c0 * c1 * c2, compressor)
                except ValueError as e:
                    raise ValueError(f"chunk at ({i}, {y}, {x}): {e}") from None


register_codec(BitshuffleLZ4)
