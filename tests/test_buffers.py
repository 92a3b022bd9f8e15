"""Recycled read buffers: memory is used again only once nothing refers to it."""

import gc

import numpy as np
import pytest

from lbnl_dask import buffers

BIG = (4, 1024, 2048)  # 32 MB of uint32: recycled


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def test_memory_is_reused_once_the_array_is_garbage():
    buffers.clear()
    a = buffers.empty(BIG, np.uint32)
    a[...] = 7
    where = _address(a)
    del a
    gc.collect()
    b = buffers.empty(BIG, np.uint32)
    assert _address(b) == where and b.shape == BIG and b.dtype == np.uint32
    assert b.flags.c_contiguous and b.flags.writeable


def test_memory_is_not_reused_while_a_view_lives():
    buffers.clear()
    a = buffers.empty(BIG, np.uint32)
    view = a[1:, :10]  # what a task may hand on: a view keeps the buffer in use
    view[...] = 3
    where = _address(a)
    del a
    gc.collect()
    b = buffers.empty(BIG, np.uint32)
    b[...] = 0
    assert _address(b) != where
    assert (view == 3).all()
    del view, b
    gc.collect()
    assert len(buffers._free[int(np.prod(BIG)) * 4]) == 2


def test_kept_buffers_are_bounded_and_small_arrays_are_plain_numpy():
    buffers.clear()
    arrays = [buffers.empty(BIG, np.uint32) for _ in range(buffers.KEEP + 3)]
    del arrays
    gc.collect()
    assert len(buffers._free[int(np.prod(BIG)) * 4]) == buffers.KEEP
    small = buffers.empty((10, 10), np.float32)
    assert small.base is None and small.shape == (10, 10)
    buffers.clear()
    assert not buffers._free


def test_scratch_is_one_growing_buffer_per_thread():
    import threading

    from lbnl_dask import buffers

    a = buffers.scratch(10)
    assert a.dtype == np.uint8 and a.nbytes >= 10
    assert buffers.scratch(100) is a  # used again while large enough
    b = buffers.scratch(a.nbytes + 1)
    assert b is not a and b.nbytes > a.nbytes and buffers.scratch(5) is b
    other = []
    t = threading.Thread(target=lambda: other.append(buffers.scratch(10)))
    t.start()
    t.join()
    assert other[0] is not b  # each thread its own


def test_a_chunk_read_through_the_scratch_buffer_is_the_stored_chunk(tiny32):
    import glob
    import os

    import h5py

    from lbnl_dask.eiger import _read_chunk

    path = sorted(glob.glob(os.path.join(os.path.dirname(tiny32), "t32_data_*.h5")))[0]
    with h5py.File(path, "r") as f:
        d = f["/entry/data/data"]
        for at in range(d.shape[0]):
            mask, raw = _read_chunk(d, at)
            assert (mask, bytes(raw)) == d.id.read_direct_chunk((at, 0, 0))
        with pytest.raises((KeyError, ValueError, OSError, RuntimeError)):  # no such chunk
            _read_chunk(d, d.shape[0] + 5)
