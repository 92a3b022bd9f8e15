"""Bitshuffle-LZ4 chunks outside HDF5: byte for byte the filter's, corrupt layouts refused."""

import struct

import numcodecs
import numpy as np
import pytest

from lbnl_dask import bslz4 as B


def frame(shape=(96, 130), seed=0, lam=20):
    rng = np.random.default_rng(seed)
    a = rng.poisson(lam, shape).astype(np.int32)
    a[40:44, 60:64] += 3000  # a spot
    return a


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32])
def test_bslz4_chunks_equal_the_hdf5_filter(tmp_path, dtype):
    import h5py
    import hdf5plugin

    a = frame((37, 53), seed=7).astype(dtype)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        d = f.create_dataset(
            "d", data=a[None], chunks=(1,) + a.shape, **hdf5plugin.Bitshuffle(nelems=0, cname="lz4")
        )
        stored = d.id.read_direct_chunk((0, 0, 0))[1]
    c = numcodecs.get_codec({"id": "lbnl_bslz4", "dtype": np.dtype(dtype).str})
    assert c.encode(a) == stored  # byte for byte what HDF5's filter 32008 writes
    np.testing.assert_array_equal(c.decode(stored).reshape(a.shape), a)
    assert (
        B._bshuf_c() is not None
    )  # decoding into ``out`` goes through bitshuffle's C function here
    out = np.empty_like(a)
    c.decode(stored, out=out)
    np.testing.assert_array_equal(out, a)
    strided = np.zeros(a.shape[::-1], dtype).T  # not C-contiguous: the Python API and a copy
    c.decode(stored, out=strided)
    np.testing.assert_array_equal(strided, a)
    with pytest.raises(ValueError, match="corrupt"):
        c.decode(b"\xff" * 12 + stored[12:], out=out)


@pytest.mark.parametrize("compression", ["bslz4", "bszstd"])
def test_output_chunks_carry_their_block_which_the_hdf5_filter_reads(tiny, tmp_path,
                                                                      compression):  # fmt: skip
    """lbnl_dask writes bitshuffle blocks of BSHUF_BLOCK pixels (fewer bytes than the
    default 8 kB): each chunk's header says so, the HDF5 filter (h5py, DIALS) decodes them
    from there with the cd_values Dectris writes (block 0), and the pixels are those of a
    file in default blocks. The same layout as Neggia and durin read (the block from the
    header; not run here)."""
    import struct

    import h5py
    import hdf5plugin  # noqa: F401

    import lbnl_dask
    from lbnl_dask.layout import BSHUF_BLOCK, DATA

    rep = lbnl_dask.compress(tiny, str(tmp_path / "o"), bin_range=1, hcomp_scale=12,
                             compression=compression, scheduler="threads")  # fmt: skip
    with h5py.File(rep.data_files[0], "r") as f:
        d = f[DATA]
        chunk = d.id.read_direct_chunk((0, 0, 0))[1]
        nbytes, block_bytes = struct.unpack(">QI", chunk[:12])
        assert nbytes == d.dtype.itemsize * d.shape[1] * d.shape[2]
        assert block_bytes == BSHUF_BLOCK * d.dtype.itemsize > 8192
        assert d._filters["32008"][3] == 0  # cd_values: the default block, as Dectris
        frames = d[()]  # through HDF5's filter
    plain = lbnl_dask.compress(tiny, str(tmp_path / "n"), bin_range=1, hcomp_scale=12,
                               compression="none", scheduler="threads")  # fmt: skip
    with h5py.File(plain.data_files[0], "r") as f:  # the same pixels, stored without a filter
        assert np.array_equal(f[DATA][()], frames)


def test_bslz4_corrupt_block_layout_is_an_error_not_a_crash(tmp_path):
    """bitshuffle's decoder follows the blocks' sizes without knowing the chunk's length: a
    header whose block size still looks valid made it read past the chunk (a segfault that
    killed the worker). Run in a child process, so that a regression fails this test only."""
    import subprocess
    import sys

    a = frame((300, 400), seed=3).astype(np.uint32)  # 15 blocks of 2048 elements and a partial one
    enc = bytearray(B.BitshuffleLZ4("uint32").encode(a))
    assert enc[8:12] == (8192).to_bytes(4, "big")
    # blocks of 7680 bytes, a multiple of 8 elements as the header check wants: a segfault before
    enc[10] = 0x1E
    (tmp_path / "chunk").write_bytes(bytes(enc))
    code = (
        "import sys, numpy as np; from lbnl_dask.bslz4 import BitshuffleLZ4\n"
        "buf = open(sys.argv[1], 'rb').read()\n"
        "for out in (np.empty(120000, np.uint32), None):\n"
        "    try: BitshuffleLZ4('uint32').decode(buf, out=out)\n"
        "    except ValueError as e: print(e)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "chunk")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("corrupt bitshuffle-LZ4 chunk") == 2, r.stdout


@pytest.mark.parametrize("kernels", ["absent", "importing", "loaded"])
def test_bslz4_block_walk_names_what_is_wrong(kernels, monkeypatch):
    """The walk over the LZ4 blocks says which block is wrong and how: in Python, and
    compiled where numba is loaded already (as in a run); in Python while another thread
    is still importing the kernels (their module is in sys.modules, its names not yet)."""
    import sys
    import types

    if kernels == "loaded":
        from lbnl_dask import kernels as module

        monkeypatch.setitem(sys.modules, "lbnl_dask.kernels", module)
    elif kernels == "importing":
        monkeypatch.setitem(sys.modules, "lbnl_dask.kernels", types.ModuleType("partial"))
    else:
        monkeypatch.delitem(sys.modules, "lbnl_dask.kernels", raising=False)
    a = frame((300, 400), seed=5).astype(np.uint32)  # 58 full blocks and a partial one
    enc = B.BitshuffleLZ4("uint32").encode(a)
    B.check_chunk(enc, np.uint32, a.size)  # intact: no error
    after_first = 16 + int.from_bytes(enc[12:16], "big")
    with pytest.raises(ValueError, match="ends inside block 2 of 59"):  # in its size field
        B.check_chunk(enc[: after_first + 2], np.uint32, a.size)
    with pytest.raises(ValueError, match=r"block 30 of 59 claims \d+ bytes"):  # past the end
        B.check_chunk(enc[: len(enc) // 2], np.uint32, a.size)
    huge = bytearray(enc)
    huge[12:16] = (10**6).to_bytes(4, "big")  # the first block's size field
    with pytest.raises(ValueError, match="block 1 of 59 claims 1000000 bytes"):
        B.check_chunk(bytes(huge), np.uint32, a.size)
    with pytest.raises(ValueError, match=f"{len(enc) + 3} bytes where its blocks take {len(enc)}"):
        B.check_chunk(enc + b"abc", np.uint32, a.size)
    forged = struct.pack(">QI", 2**64 - 1, 1) + bytes(7)  # 2**64 - 1 one-byte blocks claimed
    with pytest.raises(ValueError, match=f"ends inside block 2 of {2**64 - 1}"):
        B.check_chunk(forged, np.uint8)


def test_bslz4_compiled_block_walk_is_the_python_one():
    """Every way a chunk can be cut short or have a size changed, on chunks of 16- and
    32-bit frames with and without a partial block and raw tail: the same answer."""
    from lbnl_dask import kernels

    rng = np.random.default_rng(11)
    for dtype, shape in ((np.uint16, (300, 400)), (np.uint32, (257, 301)), (np.uint32, (8, 8))):
        a = rng.poisson(3, shape).astype(dtype)
        codec = B.BitshuffleLZ4(dtype)
        enc = np.frombuffer(codec.encode(a), np.uint8)
        block = codec._block()
        nblocks = a.size // block + (1 if a.size % block >= 8 else 0)
        itemsize = np.dtype(dtype).itemsize
        bound = block * itemsize + block * itemsize // 255 + 16
        cases = [enc, enc[:12]] + [enc[:k] for k in rng.integers(12, len(enc), 40)]
        for _ in range(40):
            bad = enc.copy()
            bad[rng.integers(12, len(enc))] = rng.integers(0, 256)
            cases.append(bad)
        for c in cases:
            want = B._walk_blocks(c, nblocks, bound)
            assert kernels.lz4_blocks(c, nblocks, bound) == want
            assert kernels.lz4_blocks(c, nblocks, 0) == B._walk_blocks(c, nblocks, 0)
