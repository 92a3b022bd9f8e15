"""What :mod:`lbnl_dask.validate`'s checks share: the result lines, and the master opened
with its data links resolved (each link's data file, shape, dtype, chunks and filters)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property

import h5py
import hdf5plugin  # noqa: F401  (the filters, to open compressed data)
import numpy as np

from .layout import BLOCK_RE, DATA_GROUP


@dataclass
class Result:
    """Lines of a validation: (level, message) with level OK, WARN or FAIL."""

    lines: list = field(default_factory=list)

    def add(self, level: str, msg: str):
        self.lines.append((level, msg))

    @property
    def failed(self) -> bool:
        return any(level == "FAIL" for level, _ in self.lines)

    def __str__(self):
        tag = {"OK": "[ OK ]", "WARN": "[WARN]", "FAIL": "[FAIL]"}
        return "\n".join(f"{tag[level]} {msg}" for level, msg in self.lines)


def dataset_filters(d: h5py.Dataset) -> list[tuple[int, tuple]]:
    """The dataset's HDF5 filters as [(filter id, cd_values)]."""
    plist = d.id.get_create_plist()
    return [
        (plist.get_filter(i)[0], tuple(plist.get_filter(i)[2])) for i in range(plist.get_nfilters())
    ]


@dataclass
class Block:
    """One ``data_NNNNNN`` link as the checks see it: the data file it points into and its
    dataset's shape, dtype, chunks and filters; or ``error``, why it cannot be opened."""

    name: str
    path: str
    shape: tuple = ()
    dtype: np.dtype | None = None
    chunks: tuple | None = None
    filters: list = field(default_factory=list)
    error: str | None = None

    @property
    def ndim(self) -> int:
        return len(self.shape)


class Context:
    """What the checks share: the master's path, the open master ``f`` (opened by
    :func:`check_file` unless given) and its data links resolved to :class:`Block` s."""

    def __init__(self, master, f: h5py.File | None = None, decode: bool = True, plugins=()):
        self.master = os.fspath(master)
        self.f = f
        self.decode = decode
        self.plugins = tuple(plugins)  # XDS plugin libraries to read the dataset through

    def close(self):
        if self.f is not None:
            self.f.close()
            self.f = None

    @cached_property
    def names(self) -> list[str]:
        """The master's ``data_NNNNNN`` links, sorted."""
        if DATA_GROUP not in self.f:
            return []
        return sorted(k for k in self.f[DATA_GROUP] if BLOCK_RE.match(k))

    @cached_property
    def blocks(self) -> list[Block]:
        return [self._block(k) for k in self.names]

    def _block(self, name: str) -> Block:
        g = self.f[DATA_GROUP]
        link = g.get(name, getlink=True)
        path = self.master
        if isinstance(link, h5py.ExternalLink):
            path = os.path.join(os.path.dirname(os.path.abspath(self.master)), link.filename)
        if not os.path.exists(path):
            return Block(name, path, error=f"{name}: data file {path} is missing")
        try:
            d = g[name]
        except (KeyError, OSError, RuntimeError) as e:  # (RuntimeError: a soft link loop)
            return Block(
                name,
                path,
                error=f"{name}: cannot open {getattr(link, 'path', name)} in {path} ({e})",
            )
        if not isinstance(d, h5py.Dataset):
            return Block(name, path, error=f"{name}: {d.name} in {path} is not a dataset")
        return Block(name, path, d.shape, d.dtype, d.chunks, dataset_filters(d))

    @cached_property
    def first(self) -> Block | None:
        """The first block of 3-D data: every other must hold frames like it."""
        return next((b for b in self.blocks if b.error is None and b.ndim == 3), None)

    @property
    def shape(self) -> tuple | None:
        """(ny, nx) of the frames (of the first block), or None."""
        return None if self.first is None else self.first.shape[1:]

    @property
    def dtype(self) -> np.dtype | None:
        return None if self.first is None else self.first.dtype

    @property
    def sizes(self) -> list[int]:
        """Frames in each block that opened (0 if not 3-D)."""
        return [b.shape[0] if b.ndim == 3 else 0 for b in self.blocks if b.error is None]
