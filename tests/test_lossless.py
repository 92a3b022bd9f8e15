"""The lossless -c choices encoded outside HDF5: each codec's chunk, put in place with
write_direct_chunk, is what HDF5's own filter reads back (bshuf and Blosc-zstd byte for
byte the filter's own); a damaged bitshuffle-zstd chunk is refused before its decoder."""

import struct

import h5py
import numcodecs
import numpy as np
import pytest

from lbnl_dask import lossless as L
from lbnl_dask.layout import FILTERS

SHAPES = [(103, 77), (64, 128), (9, 3)]  # a partial last block and elements past it; whole


def frame(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.poisson(2.0, shape).astype(dtype)
    a.flat[::97] = np.iinfo(dtype).max if np.dtype(dtype).kind == "u" else 1e30  # markers
    return a


@pytest.mark.parametrize("name", ["bslz4", "bszstd", "bshuf", "zstd"])
@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_each_chunk_reads_back_through_the_hdf5_filter(tmp_path, name, dtype, shape):
    a = frame(shape, dtype)
    codec = L.storage_codec(name, 5, dtype)
    with h5py.File(tmp_path / "c.h5", "w") as f:
        kw = FILTERS[name].make(5 if FILTERS[name].levels else None)
        own = f.create_dataset("own", data=a[None], chunks=(1,) + shape, **kw)
        mine = f.create_dataset("mine", shape=(1,) + shape, dtype=dtype, chunks=(1,) + shape, **kw)
        chunk = codec.encode(a)
        mine.id.write_direct_chunk((0, 0, 0), chunk)
        np.testing.assert_array_equal(mine[0], a)
        skipped, stored = own.id.read_direct_chunk((0, 0, 0))
        if name in ("bshuf", "zstd") and not skipped:  # the same library: the filter's bytes
            assert bytes(chunk) == stored  # (skipped: HDF5 stored a frame it could not shrink)
    back = np.empty_like(a)
    codec.decode(chunk, out=back)
    np.testing.assert_array_equal(back, a)


def test_codecs_are_registered_with_their_configuration():
    for codec in (L.BitshuffleZstd(np.uint32, level=7), L.Bitshuffle(np.uint16)):
        again = numcodecs.get_codec(codec.get_config())
        assert type(again) is type(codec) and again.get_config() == codec.get_config()
    assert L.storage_codec("none", None, np.uint16) is None
    assert L.storage_codec("bszstd", None, np.uint16).level == 3  # -l's default


def test_a_damaged_zstd_chunk_is_refused_before_its_decoder():
    a = frame((103, 77), np.uint32)
    codec = L.BitshuffleZstd(np.uint32)
    enc = codec.encode(a)
    with pytest.raises(ValueError, match="corrupt bitshuffle-Zstd chunk"):
        codec.decode(enc[: len(enc) // 2])
    forged = bytearray(enc)
    forged[12:16] = struct.pack(">I", 10**6)  # the first block claims 1 MB
    with pytest.raises(ValueError, match="block 1 of .* claims 1000000 bytes"):
        codec.decode(bytes(forged))
    with pytest.raises(ValueError, match="corrupt bitshuffle-Zstd chunk header"):
        codec.decode(enc, out=np.empty(10, np.uint32))  # not this frame's size
    with pytest.raises(ValueError, match="not the frame's"):
        L.Bitshuffle(np.uint32).decode(L.Bitshuffle(np.uint32).encode(a)[:-4], out=a.copy())
