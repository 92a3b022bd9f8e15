"""Read a Dectris FileWriter / NXmx master lazily: metadata now, frames as a dask array.

``open_dataset(master)`` parses the master's metadata only. ``EigerDataset.frames`` is a
dask array (n, ny, nx) in the data files' dtype, chunked along frames by datablock; each
chunk is read inside its own task by opening the data file by path (no h5py object is
ever put in the graph), so the same array computes on threads, on worker processes of a
``distributed.LocalCluster``, or on a remote cluster that sees the same file system.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from functools import cached_property

import dask.array as da
import h5py
import numpy as np
from dask.base import tokenize

from . import buffers
from .bslz4 import (
    BitshuffleLZ4,
    bitshuffle_compressor,
    check_dataset_chunks,
    is_bslz4_per_frame,
)
from .errors import (
    DataFileError,
    ImageRangeError,
    InputFileError,
    LbnlDaskError,
    MissingDataFileError,
    NotEigerError,
    TruncatedDataError,
)
from .header import open_master
from .header import read_meta as read_master_meta
from .layout import BLOCK_RE, CHUNK_CRC, DATA, DATA_GROUP, reach
from .meta import DetectorMeta
from .minicbf import is_cbf_name


# --------------------------------------------------------------------------- data blocks
@dataclass(frozen=True)
class DataBlock:
    """One data file's frames: ``path`` (absolute), dataset ``name`` inside it, frame count,
    global 0-based index of its first frame, and its image_nr_low/high attributes if any."""

    path: str
    name: str
    n: int
    start: int
    image_nr_low: int | None = None
    image_nr_high: int | None = None
    direct: bool = False  # bitshuffle-LZ4 chunks of one frame: decoded outside HDF5
    check_chunks: bool = False  # other bitshuffle-LZ4/-zstd chunks: checked, then read by HDF5
    nbytes: int | None = None  # its frames' bytes on disk, where not its whole file's size


class FrameReader:
    """What dask's ``from_array`` needs of a frame source: ``__getitem__`` over ``read(start,
    stop)`` (frames as an (n, ny, nx) array), ``shape`` and ``dtype``."""

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (3 - len(key))
        f = key[0]
        if isinstance(f, (int, np.integer)):
            return self.read(int(f), int(f) + 1)[0][key[1:]]
        start, stop, step = f.indices(self.shape[0])
        frames = (
            self.read(start, stop) if stop > start else np.empty((0,) + self.shape[1:], self.dtype)
        )
        return frames[(slice(None, None, step),) + key[1:]]


class FrameSource(FrameReader):
    """A picklable, array-like view (shape, dtype, ``__getitem__``) of frames spread over
    data files. Every read opens the needed files by path; dask wraps it with ``from_array``.
    ``pad`` (rows, columns) adds zeros at the bottom/right of every frame as it is read:
    a bitshuffle frame decodes straight into the padded array's first rows (no copy)."""

    def __init__(
        self,
        blocks: list[DataBlock],
        shape: tuple[int, int, int],
        dtype,
        offset: int = 0,
        pad: tuple[int, int] = (0, 0),
    ):
        self.blocks = list(blocks)
        self.offset = int(offset)  # global index of frame 0 of this view
        self.frame_shape = tuple(int(x) for x in shape[1:])  # (ny, nx) as stored
        self.pad = tuple(int(p) for p in pad)
        self.shape = (
            int(shape[0]),
            self.frame_shape[0] + self.pad[0],
            self.frame_shape[1] + self.pad[1],
        )
        self.dtype = np.dtype(dtype)
        self.ndim = 3

    def __dask_tokenize__(self):
        return (
            "lbnl_dask.FrameSource",
            self.blocks,
            self.shape,
            str(self.dtype),
            self.offset,
            self.pad,
        )

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames [start, stop) of this view as an (n, ny, nx) array (padded: see ``pad``)."""
        out = buffers.empty((stop - start,) + self.shape[1:], self.dtype)
        ny, nx = self.frame_shape
        out[:, ny:] = 0
        out[:, :ny, nx:] = 0
        g0, g1 = start + self.offset, stop + self.offset
        for blk in self.blocks:
            lo, hi = max(g0, blk.start), min(g1, blk.start + blk.n)
            if lo >= hi:
                continue
            at = None  # the frame being decoded, where frames are decoded one by one
            try:
                with h5py.File(blk.path, "r") as f:
                    d = f[blk.name]
                    crc = _recorded_crcs(f, d, lo - blk.start, hi - blk.start)
                    if blk.direct:  # raw chunks (quick under HDF5's lock), decoded outside it
                        codec = BitshuffleLZ4(d.dtype)
                        for i in range(lo, hi):
                            at = i - blk.start
                            skipped, raw = _read_chunk(d, at)
                            if crc is not None:
                                _check_crc(raw, crc[i - lo], i - blk.start)
                            dest = out[i - g0, :ny, :nx]
                            if skipped:  # stored unfiltered (the filter could not shrink it)
                                dest[...] = np.frombuffer(raw, d.dtype).reshape(ny, nx)
                            else:
                                codec.decode(raw, out=dest)
                    else:
                        if blk.check_chunks:  # HDF5's bitshuffle filter would follow them blindly
                            check_dataset_chunks(d, lo - blk.start, hi - blk.start)
                        for i in range(lo, hi) if crc is not None else ():
                            _check_crc(_read_chunk(d, i - blk.start)[1], crc[i - lo], i - blk.start)
                        d.read_direct(
                            out,
                            np.s_[lo - blk.start : hi - blk.start],
                            np.s_[lo - g0 : hi - g0, :ny, :nx],
                        )
                        at = _unwritten_frame(d, out[lo - g0 : hi - g0, :ny, :nx], lo - blk.start)
                        if at is not None:
                            raise TruncatedDataError(f"{blk.path}: frame {at + 1} of {blk.name} "
                                                     "was never written (HDF5 would read it as "
                                                     "zeros)")  # fmt: skip
            except LbnlDaskError:  # said already, naming the file and frame
                raise
            except FileNotFoundError as e:
                raise MissingDataFileError(f"{blk.path}: data file is missing") from e
            except (OSError, ValueError, RuntimeError) as e:
                which = (f"frame {at + 1}" if at is not None
                         else f"frames {lo - blk.start + 1}-{hi - blk.start}")  # fmt: skip
                raise TruncatedDataError(
                    f"{blk.path}: cannot read {which} of {blk.name} ({e})"
                ) from e
        return out


def _recorded_crcs(f: h5py.File, d: h5py.Dataset, lo: int, hi: int) -> np.ndarray | None:
    """The CRC-32 lbnl_dask recorded for frames [lo, hi) of ``d`` when it wrote the file
    (its own output read as input), or None: another writer's file, or chunks not one a
    frame."""
    rec = f.get(CHUNK_CRC) if d.name == DATA else None
    if rec is None or len(rec) != d.shape[0] or d.chunks != (1,) + d.shape[1:]:
        return None
    return rec[lo:hi]


def _check_crc(raw: bytes, want, frame: int) -> None:
    """A stored chunk must still have its recorded CRC-32: a flipped bit inside it can decode
    without any error (bitshuffle-LZ4 literals, SZ3) into wrong counts."""
    if zlib.crc32(raw) != int(want):
        raise ValueError(f"frame {frame + 1}'s stored chunk no longer has the CRC-32 recorded "
                         "when it was written: the file is damaged")  # fmt: skip


def _load_mask(path: str, name: str) -> np.ndarray:
    """The pixel mask as uint32 flags. Of a float mask, any value that is not a whole
    number of flags (0.5, NaN, -1) masks its pixel as flag 1: cast, 0.5 would unmask it."""
    with h5py.File(path, "r") as f:
        a = f[name][()]
    if a.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            whole = np.isfinite(a) & (a >= 0) & (a < 2.0**32) & (a == np.floor(a))
        return np.where(whole, a, 1).astype(np.uint32)
    return a.astype(np.uint32, copy=False)  # a uint32 mask as read: no copy


@dataclass(frozen=True)
class PixelMask:
    """A master's pixel mask by reference (path, dataset): small in a task graph, read in
    the task that needs it (``np.asarray(mask)`` -> uint32 (ny, nx)); hashable, so tasks
    can cache what they derive from it."""

    path: str
    name: str
    shape: tuple

    def load(self) -> np.ndarray:
        return _load_mask(self.path, self.name)

    def __array__(self, dtype=None, copy=None):
        a = self.load()
        return a if dtype is None else a.astype(dtype)


# --------------------------------------------------------------------------- the dataset
class EigerDataset:
    """An opened master: ``.meta`` (DetectorMeta), ``.frames`` (lazy dask array (n, ny, nx)),
    ``.first_image``/``.last_image`` (1-based, inclusive) and ``.datablock`` (frames per chunk)."""

    def __init__(
        self,
        master: str,
        meta: DetectorMeta,
        first_image: int,
        last_image: int | None,
        datablock: int | None,
    ):
        self.master = master
        self.meta = meta
        self._first = first_image
        self._last = last_image
        self._datablock = datablock

    def __repr__(self):
        return f"EigerDataset({self.master!r}, frames={self.frames!r})"

    @cached_property
    def _resolved(self) -> tuple[list[DataBlock], str | None]:
        # with a last image and a master that says how many there are, the data files after
        # the one holding the last image are not opened: a run of the first images does not
        # need them (still being written, moved away, on tape)
        return _data_blocks(self.master, self._last if self.meta.n_frames else None,
                            self.meta.warnings)  # fmt: skip

    @property
    def blocks(self) -> list[DataBlock]:
        """The data blocks, checked: files exist, shapes agree. Raises MissingDataFileError etc.
        With a last image, they end with the data file that holds it (:attr:`unread_after`)."""
        return self._resolved[0]

    @property
    def unread_after(self) -> str | None:
        """The first data file not opened because the images asked for end before it, or None."""
        return self._resolved[1]

    @property
    def n_available(self) -> int:
        return sum(b.n for b in self.blocks)

    def data_bytes(self) -> int:
        """Bytes of the data files on disk, each counted for the share of its frames selected."""
        first, last = self._range()
        return int(
            sum(
                (os.path.getsize(b.path) if b.nbytes is None else b.nbytes)
                * max(0, min(last, b.start + b.n) - max(first - 1, b.start))
                / b.n
                for b in self.blocks
            )
        )

    @property
    def first_image(self) -> int:
        return self._first

    @property
    def last_image(self) -> int:
        return self._range()[1]

    @property
    def datablock(self) -> int:
        return self._datablock or self.blocks[0].n

    def _range(self) -> tuple[int, int]:
        n = self.n_available
        expected = self.meta.n_frames if self.meta.nimages else n
        if self.unread_after is not None:  # the files read hold every image asked for
            expected = n  # (and none is short: _data_blocks checks them)
        if n < expected:
            last = self.blocks[-1]
            raise TruncatedDataError(
                f"{last.path}: data files hold {n} frames but the master "
                f"{self.master} says {expected} (nimages x ntrigger)"
            )
        total = expected
        last = total if self._last is None else self._last
        check_range(self.master, self._first, last, total)
        return self._first, last

    @cached_property
    def _frame_type(self) -> tuple[tuple, np.dtype]:
        with h5py.File(self.blocks[0].path, "r") as f:
            d = f[self.blocks[0].name]
            return tuple(d.shape[1:]), d.dtype

    @property
    def shape(self) -> tuple[int, int, int]:
        """(frames selected, ny, nx), without building the dask array."""
        first, last = self._range()
        return (last - first + 1,) + self._frame_type[0]

    def with_datablock(self, datablock: int) -> EigerDataset:
        """The same dataset chunked by ``datablock`` frames.

        Metadata and data files are not read again.
        """
        other = EigerDataset(self.master, self.meta, self._first, self._last, int(datablock))
        other.__dict__.update(
            {
                k: v
                for k, v in self.__dict__.items()
                if k in ("_resolved", "_frame_type", "_mask_shape")
            }  # fmt: skip
        )
        return other

    @cached_property
    def frames(self) -> da.Array:
        return self._frames((0, 0))

    def padded_frames(self, multiple: int) -> da.Array:
        """The frames zero-padded at the bottom/right to multiples of ``multiple`` pixels, as
        binning b x b needs: (n, ceil(ny/b)*b, ceil(nx/b)*b). The zeros are added while
        reading (bitshuffle frames decode straight into the padded array), so no task copies
        a frame to pad it."""
        ny, nx = self._frame_type[0]
        return self._frames((-ny % int(multiple), -nx % int(multiple)))

    def _frames(self, pad) -> da.Array:
        first, last = self._range()
        frame_shape, dtype = self._frame_type
        src = FrameSource(
            self.blocks, (last - first + 1,) + tuple(frame_shape), dtype, offset=first - 1, pad=pad
        )
        chunks = (self.datablock, -1, -1)
        name = "eiger-frames-" + tokenize(src, chunks)
        return da.from_array(
            src, chunks=chunks, name=name, lock=False, asarray=True, meta=np.empty((0, 0, 0), dtype)
        )

    @property
    def is_cbf(self) -> bool:
        return False

    def input_files(self) -> list[str]:
        """The master and the data files: none may be overwritten, and the job token takes
        the size and time of each (:func:`lbnl_dask.options.job_token`)."""
        return [self.master] + [blk.path for blk in self.blocks]

    def master_bytes(self) -> int:
        """Bytes of the master file."""
        return os.path.getsize(self.master)

    def master_source(self) -> str:
        """What the output master is rewritten from: this master's path."""
        return os.path.abspath(self.master)

    def pixel_mask(self) -> PixelMask | None:
        """The master's pixel mask, by reference (``np.asarray`` gives uint32 (ny, nx)), or
        None: without one, or with one whose shape is not the frames' (see
        :meth:`mismatched_mask`: every reader of the frames then goes without it alike)."""
        if self.meta.pixel_mask_path is None or self.mismatched_mask() is not None:
            return None
        return PixelMask(os.path.abspath(self.master), self.meta.pixel_mask_path, self.shape[1:])

    def mismatched_mask(self) -> tuple | None:
        """The shape of the master's pixel mask where it is not the frames' (ny, nx) (a master
        made for another detector mode or edited by hand), else None."""
        shape = self._mask_shape
        return None if shape is None or shape == tuple(self.shape[1:]) else shape

    @cached_property
    def _mask_shape(self) -> tuple | None:
        if self.meta.pixel_mask_path is None:
            return None
        with h5py.File(self.master, "r") as f:
            return tuple(f[self.meta.pixel_mask_path].shape)


def check_range(path: str, first: int, last: int, total: int) -> None:
    """ImageRangeError naming ``path`` unless 1 <= first <= last <= total."""
    if first < 1:
        raise ImageRangeError(f"{path}: first image {first} is before image 1")
    if last < first:
        raise ImageRangeError(f"{path}: first image {first} is after last image {last}")
    if last > total:
        raise ImageRangeError(f"{path}: last image {last} is beyond the {total} frames")


def open_dataset(
    master, first_image: int = 1, last_image: int | None = None, datablock: int | None = None
) -> EigerDataset:
    """Open an Eiger master (``*_master.h5``) lazily; a miniCBF series (a template
    ``x_#####.cbf.gz``, a first ``.cbf[.gz|.bz2]`` file or a folder of them) opens as a
    :class:`~lbnl_dask.cbf_input.CbfSeries` with the same interface.

    Only metadata is read now (``ds.meta``: lengths in metres, angles in degrees, the
    wavelength in ångström; fields that cannot be right raise MetadataError).
    ``first_image``/``last_image`` are 1-based and inclusive (default: all frames);
    ``datablock`` is the number of frames per dask chunk (default: the frames per data file).
    ``ds.frames`` is a dask array (n, ny, nx) of the data files' integer type, read when it
    is computed; invalid pixels hold all bits set (``ds.pixel_mask()`` flags the masked ones).

    Example::

        ds = open_dataset("data_master.h5", 1, 100)
        ds.meta.x_pixel_size, ds.frames.shape        # 7.5e-05, (100, 2167, 2070)
        mean = ds.frames[:10].mean(axis=0).compute()
    """
    master = os.fspath(master)
    if is_cbf_input(master):
        from .cbf_input import open_series

        return open_series(master, first_image, last_image, datablock)
    meta = read_master_meta(master)
    if datablock is not None and int(datablock) < 1:
        raise ImageRangeError(f"{master}: datablock must be at least 1, not {datablock}")
    total = meta.n_frames
    if total:  # against the master now; against the data files when the frames are built
        check_range(
            master, int(first_image), total if last_image is None else int(last_image), total
        )
    return EigerDataset(
        master,
        meta,
        int(first_image),
        None if last_image is None else int(last_image),
        None if datablock is None else int(datablock),
    )


def is_cbf_input(path: str) -> bool:
    """A miniCBF series rather than an HDF5 master: a ``.cbf[.gz|.bz2]`` name or template, or
    a folder."""
    return is_cbf_name(path) or os.path.isdir(path)


def read_meta(master) -> DetectorMeta:
    """The metadata of an Eiger master or of a miniCBF series (see :func:`open_dataset`)."""
    if is_cbf_input(os.fspath(master)):
        return open_dataset(master).meta
    return read_master_meta(master)


def _check_files(blocks: list[DataBlock], master: str, more: bool, notes: list | None = None):
    """Data files that cannot be the images in the order the master links them: a file
    linked twice; recorded image numbers (image_nr_low/high, where a file has both) that go
    backwards or overlap between files; a file, not the last (``more``: files after these are
    not read, so none of these is), holding fewer frames than its numbers record. Without
    image numbers, a file read before unread ones must hold as many frames as the first (its
    later frames would shift unseen otherwise). The error names the file. A gap between
    files' numbers (a collection of several triggers numbered by angle) is added to
    ``notes``: the frames are read in the master's order all the same."""
    seen, prev = {}, None
    for i, blk in enumerate(blocks):
        key = (os.path.realpath(blk.path), blk.name)
        if key in seen:
            raise DataFileError(f"{blk.path}: linked twice from {master} (also as data file "
                                f"{seen[key]}): its frames would be read twice")  # fmt: skip
        seen[key] = i + 1
        last = i == len(blocks) - 1 and not more
        lo, hi = blk.image_nr_low, blk.image_nr_high
        if lo is None or hi is None:
            prev = None
            if more and blk.n != blocks[0].n:
                raise TruncatedDataError(f"{blk.path}: holds {blk.n} frames where "
                                         f"{blocks[0].path} holds {blocks[0].n}, and it is "
                                         f"not the last data file of {master}")  # fmt: skip
            continue
        after = "" if prev is None else (
            f" after {prev.path}'s {prev.image_nr_low}-{prev.image_nr_high}"
        )  # fmt: skip
        if hi < lo or (prev is not None and lo <= prev.image_nr_high):
            raise DataFileError(f"{blk.path}: records images {lo}-{hi}{after}: the data files "
                                f"linked from {master} are out of order or overlap")  # fmt: skip
        if prev is not None and lo != prev.image_nr_high + 1 and notes is not None:
            note = (f"{os.path.basename(blk.path)} records images {lo}-{hi}{after}: a gap in "
                    "the numbers; the frames are read in the master's order")  # fmt: skip
            if note not in notes:
                notes.append(note)
        if not last and blk.n != hi - lo + 1:
            raise TruncatedDataError(f"{blk.path}: holds {blk.n} frames at images "
                                     f"{blk.start + 1}-{blk.start + blk.n}, but records images "
                                     f"{lo}-{hi}, and it is not the last data file of "
                                     f"{master}")  # fmt: skip
        prev = blk


# --------------------------------------------------------------------------- the master's links
def _data_blocks(master: str, last_image: int | None = None,
                 notes: list | None = None) -> tuple[list[DataBlock], str | None]:  # fmt: skip
    """Resolve /entry/data/data_NNNNNN links into checked DataBlocks, up to the one holding
    image ``last_image`` (1-based; None: all), and the path of the first data file not
    opened after it (None if there is none). The master's image count then cannot tell
    whether a file read is short (its later frames would shift): each must hold all its
    frames, else TruncatedDataError; and every file's image numbers must follow the one
    before (:func:`_check_files`).

    A single /entry/data/data is resolved the same way.
    """
    blocks: list[DataBlock] = []
    start, like = 0, None
    for path, name in _block_targets(master):
        if last_image is not None and start >= last_image:
            _check_files(blocks, master, True, notes)
            return blocks, path
        blk, like = _read_block(master, path, name, start, like)
        blocks.append(blk)
        start += blk.n
    if not blocks or start == 0:
        raise TruncatedDataError(f"{master}: the data files hold no frames")
    _check_files(blocks, master, False, notes)
    return blocks, None


def _block_targets(master: str) -> list[tuple[str, str]]:
    """(data file path, dataset name) of every data block a master links, in order."""
    with open_master(master) as f:
        g = f[DATA_GROUP]
        names = sorted(k for k in g if BLOCK_RE.match(k)) or (["data"] if "data" in g else [])
        if not names:
            raise NotEigerError(
                f"{master}: {DATA_GROUP} holds neither data_NNNNNN links nor a data dataset"
            )
        return [_link_target(g, k, master) for k in names]


def _link_target(g: h5py.Group, name: str, master: str) -> tuple[str, str]:
    """(file path, dataset name) of ``name`` in the master's data group: an external link's
    target (relative to the master's folder), else the master's own dataset."""
    link = g.get(name, getlink=True)
    if isinstance(link, h5py.ExternalLink):
        return os.path.join(os.path.dirname(os.path.abspath(master)), link.filename), link.path
    return os.path.abspath(master), f"{g.name}/{name}"


def _read_chunk(d: h5py.Dataset, at: int):
    """(filter mask, bytes) of frame ``at``'s stored chunk in ``d``, read into this thread's
    scratch buffer (:func:`lbnl_dask.buffers.scratch`): valid until its next read. Where
    that cannot be done (no such chunk, say), h5py's own read, which says why."""
    try:
        size = d.id.get_chunk_info_by_coord((at, 0, 0)).size
        return d.id.read_direct_chunk((at, 0, 0), out=buffers.scratch(size))
    except Exception:  # (the read below raises what it raised before)
        return d.id.read_direct_chunk((at, 0, 0))


def _read_block(master: str, path: str, name: str, start: int, like):
    """The checked DataBlock of dataset ``name`` in file ``path``, whose first frame has the
    global index ``start``, and its (frame shape, dtype), which must equal ``like`` if given."""
    if not os.path.exists(path):
        if os.path.islink(path):  # (a link to nothing, or to itself)
            to = os.readlink(path)
            raise MissingDataFileError(f"{path}: data file linked from {master} is a symbolic "
                                       f"link to {to}, which cannot be opened")  # fmt: skip
        raise MissingDataFileError(f"{path}: data file linked from {master} is missing")
    if os.path.isdir(path):
        raise InputFileError(f"{path}: is a directory, not a data file (linked from {master})")
    if not os.path.isfile(path):  # opening a FIFO would wait for a writer forever
        raise InputFileError(f"{path}: not a regular file (a pipe or device; linked from {master})")
    try:
        with h5py.File(path, "r") as df:
            d = df.get(name)
            if not isinstance(d, h5py.Dataset):
                raise NotEigerError(f"{path}: no dataset {name} (linked from {master})")
            if d.ndim != 3:
                raise NotEigerError(f"{path}: {name} has shape {d.shape}, expected (n, ny, nx)")
            if d.dtype.kind not in "ui":
                raise NotEigerError(f"{path}: {name} holds {d.dtype} data, expected integers")
            kind = (d.shape[1:], d.dtype)
            if d.is_virtual:
                _check_virtual(d, path, master)
            if like is not None and kind != like:
                raise NotEigerError(
                    f"{path}: frames {kind[0]} {kind[1]} differ from the "
                    f"first data file's {like[0]} {like[1]}"
                )
            return DataBlock(
                path,
                name,
                int(d.shape[0]),
                start,
                _int_attr(d, "image_nr_low"),
                _int_attr(d, "image_nr_high"),
                direct=is_bslz4_per_frame(d),
                check_chunks=bitshuffle_compressor(d) is not None and not is_bslz4_per_frame(d),
                nbytes=None if path != os.path.abspath(master) else _frame_bytes(d, path),
            ), kind
    except LbnlDaskError:
        raise
    except OSError as e:
        raise InputFileError(f"{path}: cannot open data file ({e})") from e
    except RuntimeError as e:  # (a soft link to itself: "too many links")
        raise InputFileError(f"{path}: {name}: a link that cannot be followed ({e})") from e


def _check_virtual(d: h5py.Dataset, path: str, master: str) -> None:
    """A virtual dataset's frames all come from sources that are there: HDF5 reads the
    frames of a missing source file or dataset, or of none, as its fill value (zeros),
    without an error. A source file is looked for where HDF5 looks (its own path, then its
    name under ``HDF5_VDS_PREFIX``, the virtual dataset's folder and the working folder); a
    source in the same file (``.``, as nexgen writes: a dataset there that is an external
    link) must lead to a dataset."""
    folder, mapped, unlimited = os.path.dirname(os.path.abspath(path)), 0, False
    for src in d.virtual_sources():
        try:
            mapped += src.vspace.get_select_npoints()
        except (ValueError, RuntimeError, OSError):  # an unlimited selection (a SWMR writer)
            unlimited = True
        if src.file_name == ".":
            where, found = path, isinstance(reach(d.file, src.dset_name), h5py.Dataset)
        elif "%b" in src.file_name:  # an unlimited mapping's printf-style names: HDF5's own
            continue
        else:
            where = _vds_source(src.file_name, folder)
            if where is None:
                raise MissingDataFileError(f"{src.file_name}: data file mapped by the virtual "
                                           f"dataset {d.name} of {path} is missing")  # fmt: skip
            with h5py.File(where, "r") as sf:
                found = isinstance(reach(sf, src.dset_name), h5py.Dataset)
        if not found:
            raise MissingDataFileError(f"{where}: holds no dataset {src.dset_name} (a source of "
                                       f"the virtual dataset {d.name} of {path}; a link to a "
                                       "file not there?)")  # fmt: skip
    if not unlimited and mapped < d.size:
        per = max(1, d.size // max(1, d.shape[0]))
        raise TruncatedDataError(f"{path}: the virtual dataset {d.name} maps {mapped // per} "
                                 f"of its {d.shape[0]} frames to data files: the others would "
                                 "read as zeros")  # fmt: skip


def _vds_source(name: str, folder: str) -> str | None:
    """Where HDF5 finds a virtual dataset's source file ``name`` (``folder``: the virtual
    dataset's file's), or None: the name itself if absolute, then its name (an absolute
    one's last part) under ``HDF5_VDS_PREFIX`` (``${ORIGIN}`` is ``folder``), ``folder``
    and the working folder."""
    rel = os.path.basename(name) if os.path.isabs(name) else name
    prefixes = os.environ.get("HDF5_VDS_PREFIX", "").replace("${ORIGIN}", folder)
    tries = ([name] if os.path.isabs(name) else []) + [
        os.path.join(p, rel) for p in (*prefixes.split(os.pathsep), folder, os.getcwd()) if p
    ]
    return next((p for p in tries if os.path.isfile(p)), None)


def _unwritten_frame(d: h5py.Dataset, frames: np.ndarray, lo: int) -> int | None:
    """The first of ``frames`` (as read: frames ``lo``.. of ``d``, 0-based) whose storage
    was never written, or None. HDF5 reads a chunk never written (or contiguous storage
    never allocated) as the fill value, zeros, without an error: what a writer that stopped
    mid-file leaves; through a virtual dataset, its source's. Only a frame that reads
    entirely as the fill value is looked up (a chunk index lookup costs more the later the
    chunk in the file)."""
    if not frames.size:
        return None
    fill = d.fillvalue
    for k, frame in enumerate(frames):
        if not _reads_as_fill(frame, fill):
            continue
        if _virtual_never_stored(d, lo + k) if d.is_virtual else _never_stored(d, lo + k):
            return lo + k
    return None


def _reads_as_fill(frame: np.ndarray, fill) -> bool:
    """Whether every pixel of ``frame`` (ny, nx) is ``fill``: a sample of every 31st row and
    column first (a frame that was written differs there almost always, in microseconds),
    the whole frame only then (numpy's ``any`` reads it all: 0.7 ms a 4M frame)."""
    if (frame[::31, ::31] != fill).any():
        return False
    return not (frame.any() if fill == 0 else (frame != fill).any())


def _never_stored(d: h5py.Dataset, i: int) -> bool:
    """Whether frame ``i`` of (non-virtual) ``d`` has storage never written: a chunk of it,
    or the contiguous storage (compact and external storage always are)."""
    if d.chunks is None:
        plist = d.id.get_create_plist()
        return (plist.get_layout() == h5py.h5d.CONTIGUOUS and plist.get_external_count() == 0
                and d.id.get_offset() is None)  # fmt: skip
    c0, c1, c2 = d.chunks
    at = i // c0 * c0
    return any(d.id.get_chunk_info_by_coord((at, y, x)).byte_offset is None
               for y in range(0, d.shape[1], c1) for x in range(0, d.shape[2], c2))  # fmt: skip


def _virtual_never_stored(d: h5py.Dataset, i: int) -> bool:
    """:func:`_never_stored` of the source frame a virtual dataset maps to its frame ``i``
    (the mappings of whole frames, one to one, that nexgen and h5py write; others are not
    looked into)."""
    folder = os.path.dirname(os.path.abspath(d.file.filename))
    for src in d.virtual_sources():
        try:
            v0, n = _frames_selected(src.vspace, d.shape[0])
            s0, m = _frames_selected(src.src_space, None)
        except (ValueError, RuntimeError, OSError):  # (another kind of selection)
            continue
        if (m is not None and m != n) or not v0 <= i < v0 + n or "%b" in src.file_name:
            continue
        where = d.file.filename if src.file_name == "." else _vds_source(src.file_name, folder)
        if where is None:
            return True  # (refused when the dataset was opened; gone since)
        with h5py.File(where, "r") as f:
            source = f.get(src.dset_name)
            if isinstance(source, h5py.Dataset) and not source.is_virtual:
                return _never_stored(source, s0 + i - v0)
    return False


def _frames_selected(space, frames: int | None) -> tuple[int, int | None]:
    """(first frame, how many) a virtual mapping's selection ``space`` takes along its first
    axis, one after another: all of it (``frames`` of them; None: its extent), or a regular
    hyperslab of consecutive frames. ValueError for any other selection."""
    if space.get_select_type() == h5py.h5s.SEL_ALL:
        return 0, frames if frames is not None else (space.shape or (None,))[0]
    (start, *_), (step, *_), (count, *_), (block, *_) = space.get_regular_hyperslab()
    if count > 1 and step != block:  # (every other frame: not one after another)
        raise ValueError("frames not consecutive")
    return start, count * block


def _frame_bytes(d: h5py.Dataset, path: str) -> int:
    """The bytes on disk of frames kept in the master itself (not the whole master's size):
    its stored chunks, or for a virtual dataset the files it maps (each counted once)."""
    if not d.is_virtual:
        return int(d.id.get_storage_size())
    folder = os.path.dirname(os.path.abspath(path))
    files = {_vds_source(s.file_name, folder) for s in d.virtual_sources() if s.file_name != "."}
    return int(sum(os.path.getsize(p) for p in files if p is not None))


def _int_attr(d: h5py.Dataset, key: str) -> int | None:
    """An integer attribute (image_nr_low/high), or None if absent or not a whole number
    (they only serve checks: the frames are read without them)."""
    v = np.asarray(d.attrs.get(key)).reshape(-1)
    if v.size != 1 or v.dtype.kind not in "iuf" or not np.isfinite(v[0]) or v[0] != int(v[0]):
        return None
    return int(v[0])
