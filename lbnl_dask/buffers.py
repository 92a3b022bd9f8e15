"""Large arrays whose memory is used again once they are garbage.

Every chunk read decodes into a new array of tens of MB (four 4M uint32 frames: 72 MB).
Memory that large comes fresh from the kernel each time, and the kernel zeroes it page by
page before bitshuffle's decoder writes it again: measured at ~10% of a run's CPU time.
:func:`empty` hands out arrays over memory kept from earlier ones of the same size, once
nothing refers to those any more (a ``weakref.finalize`` on the array's base sees to it),
so a buffer is never used twice at the same time, whatever the scheduler keeps.
"""

from __future__ import annotations

import ctypes
import threading
import weakref

import numpy as np

#: Arrays smaller than this come from numpy as usual: malloc reuses their memory already.
MIN_BYTES = 32 << 20
#: Free buffers kept per size, per process: about one per thread reading at a time.
KEEP = 2

_free: dict[int, list[np.ndarray]] = {}


def empty(shape: tuple, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)`` (C order; contents undefined), over recycled memory when
    it is at least :data:`MIN_BYTES`."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < MIN_BYTES:
        return np.empty(shape, dtype)
    try:
        memory = _free.setdefault(nbytes, []).pop()
    except IndexError:
        memory = np.empty(nbytes, np.uint8)
    owner = (ctypes.c_char * nbytes).from_buffer(memory)  # the views' base: alive while they are
    weakref.finalize(owner, _release, memory)
    return np.frombuffer(owner, dtype).reshape(shape)


def _release(memory: np.ndarray) -> None:
    free = _free.setdefault(memory.nbytes, [])
    if len(free) < KEEP:
        free.append(memory)


def clear() -> None:
    """Let go of every kept buffer (a notebook done with lbnl_dask, say)."""
    _free.clear()


_scratch = threading.local()


def scratch(nbytes: int) -> np.ndarray:
    """This thread's uint8 scratch buffer of at least ``nbytes`` (it grows, never shrinks),
    for data used at once and not kept: a stored chunk read before it is decoded. Each
    new bytes object had come fresh from the kernel: 0.3-1.2 ms a 4M frame's chunk."""
    buf = getattr(_scratch, "buf", None)
    if buf is None or buf.nbytes < nbytes:
        buf = _scratch.buf = np.empty(max(nbytes, 1 << 20), np.uint8)
    return buf
