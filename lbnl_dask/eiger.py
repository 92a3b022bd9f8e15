"""Read a Dectris FileWriter / NXmx master lazily: metadata now, frames as a dask array.

``open_dataset(master)`` parses the master's metadata only. ``EigerDataset.frames`` is a
dask array (n, ny, nx) in the data files' dtype, chunked along frames by datablock; each
chunk is read inside its own task by opening the data file by path (no h5py object is
ever put in the graph), so the same array computes on threads, on worker processes of a
``distributed.LocalCluster``, or on a remote cluster that sees the same file system.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cached_property

import dask.array as da
import h5py
import hdf5plugin  # noqa: F401  (registers the bitshuffle/LZ4 filters in every process)
import numpy as np
from dask.base import tokenize

from .codecs import BitshuffleLZ4
from .errors import (ImageRangeError, InputFileError, MissingDataFileError, NotEigerError,
                     TruncatedDataError)
from .meta import DetectorMeta

DET = "/entry/instrument/detector"
SPEC = DET + "/detectorSpecific"
_BLOCK = re.compile(r"^data_(\d{6})$")


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


class FrameSource:
    """A picklable, array-like view (shape, dtype, ``__getitem__``) of frames spread over
    data files. Every read opens the needed files by path; dask wraps it with ``from_array``.
    ``pad`` (rows, columns) adds zeros at the bottom/right of every frame as it is read:
    a bitshuffle frame decodes straight into the padded array's first rows (no copy)."""

    def __init__(self, blocks: list[DataBlock], shape: tuple[int, int, int], dtype, offset: int = 0,
                 pad: tuple[int, int] = (0, 0)):
        self.blocks = list(blocks)
        self.offset = int(offset)  # global index of frame 0 of this view
        self.frame_shape = tuple(int(x) for x in shape[1:])  # (ny, nx) as stored
        self.pad = tuple(int(p) for p in pad)
        self.shape = (int(shape[0]), self.frame_shape[0] + self.pad[0], self.frame_shape[1] + self.pad[1])
        self.dtype = np.dtype(dtype)
        self.ndim = 3

    def __dask_tokenize__(self):
        return ("lbnl_dask.FrameSource", self.blocks, self.shape, str(self.dtype), self.offset, self.pad)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames [start, stop) of this view as an (n, ny, nx) array (padded: see ``pad``)."""
        out = np.empty((stop - start,) + self.shape[1:], self.dtype)
        ny, nx = self.frame_shape
        out[:, ny:] = 0
        out[:, :ny, nx:] = 0
        g0, g1 = start + self.offset, stop + self.offset
        for blk in self.blocks:
            lo, hi = max(g0, blk.start), min(g1, blk.start + blk.n)
            if lo >= hi:
                continue
            try:
                with h5py.File(blk.path, "r") as f:
                    d = f[blk.name]
                    if blk.direct:  # raw chunks (~0.1 ms each under HDF5's lock), decoded outside it
                        codec = BitshuffleLZ4(d.dtype)
                        for i in range(lo, hi):
                            codec.decode(d.id.read_direct_chunk((i - blk.start, 0, 0))[1], out=out[i - g0, :ny, :nx])
                    else:
                        d.read_direct(out, np.s_[lo - blk.start : hi - blk.start], np.s_[lo - g0 : hi - g0, :ny, :nx])
            except FileNotFoundError as e:
                raise MissingDataFileError(f"{blk.path}: data file is missing") from e
            except (OSError, ValueError, RuntimeError) as e:
                raise TruncatedDataError(
                    f"{blk.path}: cannot read frames {lo - blk.start + 1}-{hi - blk.start} "
                    f"of {blk.name} ({e})") from e
        return out

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (3 - len(key))
        f = key[0]
        if isinstance(f, (int, np.integer)):
            return self.read(int(f), int(f) + 1)[0][key[1:]]
        start, stop, step = f.indices(self.shape[0])
        frames = self.read(start, stop) if stop > start else np.empty((0,) + self.shape[1:], self.dtype)
        return frames[(slice(None, None, step),) + key[1:]]


def _load_mask(path: str, name: str) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f[name][()].astype(np.uint32)


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

    def __init__(self, master: str, meta: DetectorMeta, first_image: int, last_image: int | None,
                 datablock: int | None):
        self.master = master
        self.meta = meta
        self._first = first_image
        self._last = last_image
        self._datablock = datablock

    def __repr__(self):
        return f"EigerDataset({self.master!r}, frames={self.frames!r})"

    @cached_property
    def blocks(self) -> list[DataBlock]:
        """The data blocks, checked: files exist, shapes agree. Raises MissingDataFileError etc."""
        return _data_blocks(self.master)

    @property
    def n_available(self) -> int:
        return sum(b.n for b in self.blocks)

    def data_bytes(self) -> int:
        """Bytes of the data files on disk, each counted for the share of its frames selected."""
        first, last = self._range()
        return int(sum(os.path.getsize(b.path) * max(0, min(last, b.start + b.n) - max(first - 1, b.start)) / b.n
                       for b in self.blocks))

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
        if n < expected:
            last = self.blocks[-1]
            raise TruncatedDataError(
                f"{last.path}: data files hold {n} frames but the master "
                f"{self.master} says {expected} (nimages x ntrigger)")
        total = expected
        last = total if self._last is None else self._last
        _check_range(self.master, self._first, last, total)
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

    def with_datablock(self, datablock: int) -> "EigerDataset":
        """The same dataset chunked by ``datablock`` frames (metadata and data files not read again)."""
        other = EigerDataset(self.master, self.meta, self._first, self._last, int(datablock))
        other.__dict__.update({k: v for k, v in self.__dict__.items() if k in ("blocks", "_frame_type")})
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
        src = FrameSource(self.blocks, (last - first + 1,) + tuple(frame_shape), dtype,
                          offset=first - 1, pad=pad)
        chunks = (self.datablock, -1, -1)
        name = "eiger-frames-" + tokenize(src, chunks)
        return da.from_array(src, chunks=chunks, name=name, lock=False, asarray=True,
                             meta=np.empty((0, 0, 0), dtype))

    def pixel_mask(self) -> PixelMask | None:
        """The master's pixel mask, by reference (``np.asarray`` gives uint32 (ny, nx)), or None."""
        if self.meta.pixel_mask_path is None:
            return None
        with h5py.File(self.master, "r") as f:
            shape = f[self.meta.pixel_mask_path].shape
        return PixelMask(os.path.abspath(self.master), self.meta.pixel_mask_path, tuple(shape))


def _check_range(path: str, first: int, last: int, total: int) -> None:
    if first < 1:
        raise ImageRangeError(f"{path}: first image {first} is before image 1")
    if last < first:
        raise ImageRangeError(f"{path}: first image {first} is after last image {last}")
    if last > total:
        raise ImageRangeError(f"{path}: last image {last} is beyond the {total} frames of the data")


def open_dataset(master, first_image: int = 1, last_image: int | None = None,
                 datablock: int | None = None) -> EigerDataset:
    """Open an Eiger master (``*_master.h5``) lazily.

    Only metadata is read now. ``first_image``/``last_image`` are 1-based and inclusive
    (default: all frames); ``datablock`` is the number of frames per dask chunk (default:
    the frames per data file). Frames are read when ``ds.frames`` is computed.
    """
    master = os.fspath(master)
    meta = read_meta(master)
    if datablock is not None and int(datablock) < 1:
        raise ImageRangeError(f"{master}: datablock must be at least 1, not {datablock}")
    total = meta.n_frames
    if total:  # against the master now; against the data files when the frames are built
        _check_range(master, int(first_image), total if last_image is None else int(last_image), total)
    return EigerDataset(master, meta, int(first_image), None if last_image is None else int(last_image),
                        None if datablock is None else int(datablock))


# --------------------------------------------------------------------------- metadata
def _open_master(master: str) -> h5py.File:
    if not os.path.exists(master):
        raise InputFileError(f"{master}: no such file")
    if os.path.isdir(master):
        raise InputFileError(f"{master}: is a directory, not an HDF5 master file")
    if not h5py.is_hdf5(master):
        raise InputFileError(f"{master}: not an HDF5 file")
    try:
        return h5py.File(master, "r")
    except OSError as e:
        raise InputFileError(f"{master}: cannot open as HDF5 ({e})") from e


def _text(v) -> str:
    if isinstance(v, np.ndarray):
        v = v.reshape(-1)[0] if v.size else b""
    if isinstance(v, (bytes, np.bytes_)):
        return bytes(v).decode("ascii", "replace").rstrip("\x00")
    return str(v)


_TO_METRES = {"m": 1.0, "mm": 1e-3, "um": 1e-6, "µm": 1e-6, "microns": 1e-6, "cm": 1e-2}


def _scalar(f: h5py.File, path: str, kind=float, length=False):
    """A scalar dataset's value (first element of a 1-element array), or None if absent.
    With ``length`` the value is converted to metres from its ``units`` attribute."""
    d = f.get(path)
    if not isinstance(d, h5py.Dataset) or d.size == 0:
        return None
    v = d[()]
    if kind is str:
        return _text(v)
    v = np.asarray(v).reshape(-1)[0]
    v = kind(v)
    if length:
        units = _text(d.attrs.get("units", b"m")).strip()
        v = v * _TO_METRES.get(units, 1.0)
    return v


def _first(f, paths, **kw):
    for p in paths:
        v = _scalar(f, p, **kw)
        if v is not None:
            return v, p
    return None, None


def read_meta(master) -> DetectorMeta:
    """Parse the metadata of a FileWriter or NXmx master into a :class:`DetectorMeta`.

    Raises InputFileError (missing / directory / not HDF5) or NotEigerError (no /entry/data).
    """
    master = os.fspath(master)
    with _open_master(master) as f:
        if not isinstance(f.get("/entry/data"), h5py.Group):
            raise NotEigerError(f"{master}: no /entry/data group: not an Eiger/NXmx master")
        nimages = _scalar(f, SPEC + "/nimages", int)
        ntrigger = _scalar(f, SPEC + "/ntrigger", int) or 1
        wavelength, wpath = _first(f, ["/entry/sample/beam/incident_wavelength",
                                       "/entry/instrument/beam/incident_wavelength",
                                       "/entry/instrument/beam/wavelength",
                                       "/entry/instrument/monochromator/wavelength",
                                       "/entry/instrument/monochromater/wavelength"])
        if wavelength is not None and _text(f[wpath].attrs.get("units", b"")).strip() == "nm":
            wavelength *= 10.0
        omega, omega_inc = _read_omega(f)
        mask_path = next((p for p in (SPEC + "/pixel_mask", DET + "/pixel_mask")
                          if isinstance(f.get(p), h5py.Dataset)), None)
        meta = DetectorMeta(
            master=master,
            nimages=nimages if nimages is not None else 0,
            ntrigger=ntrigger,
            nx=_scalar(f, SPEC + "/x_pixels_in_detector", int),
            ny=_scalar(f, SPEC + "/y_pixels_in_detector", int),
            x_pixel_size=_scalar(f, DET + "/x_pixel_size", length=True),
            y_pixel_size=_scalar(f, DET + "/y_pixel_size", length=True),
            beam_center_x=_scalar(f, DET + "/beam_center_x"),
            beam_center_y=_scalar(f, DET + "/beam_center_y"),
            detector_distance=_first(f, [DET + "/detector_distance", DET + "/distance"],
                                     length=True)[0],
            sensor_thickness=_scalar(f, DET + "/sensor_thickness", length=True),
            wavelength=wavelength,
            count_time=_scalar(f, DET + "/count_time"),
            frame_time=_scalar(f, DET + "/frame_time"),
            omega=omega,
            omega_increment=omega_inc,
            saturation_value=_first(f, [DET + "/saturation_value", SPEC + "/saturation_value"],
                                    kind=int)[0],
            countrate_cutoff=_first(f, [SPEC + "/countrate_correction_count_cutoff",
                                        SPEC + "/detectorModule_000/countrate_correction_count_cutoff"],
                                    kind=int)[0],
            bit_depth_image=_scalar(f, DET + "/bit_depth_image", int),
            bit_depth_readout=_scalar(f, DET + "/bit_depth_readout", int),
            description=_scalar(f, DET + "/description", str),
            detector_number=_scalar(f, DET + "/detector_number", str),
            eiger_fw_version=_scalar(f, SPEC + "/eiger_fw_version", str),
            software_version=_scalar(f, SPEC + "/software_version", str),
            pixel_mask_path=mask_path,
        )
    return meta


def _read_omega(f: h5py.File):
    """Per-frame omega start angles (deg) and the increment, from the usual places."""
    for group in ("/entry/sample/goniometer", "/entry/sample/transformations", "/entry/data"):
        d = f.get(group + "/omega")
        if not isinstance(d, h5py.Dataset):
            continue
        omega = np.atleast_1d(d[()]).astype(np.float64)
        inc = None
        for name in ("omega_increment", "omega_range_average"):
            inc = _scalar(f, f"{group}/{name}")
            if inc is not None:
                break
        if inc is None and len(omega) > 1:
            inc = float(omega[1] - omega[0])
        return omega, inc
    return None, None


def _is_bslz4_per_frame(d: h5py.Dataset) -> bool:
    """One frame per chunk, filtered by bitshuffle+LZ4 alone (Dectris' layout)."""
    if d.chunks != (1,) + tuple(d.shape[1:]) or d.dtype.byteorder == ">":
        return False
    plist = d.id.get_create_plist()
    if plist.get_nfilters() != 1:
        return False
    fid, _, cd, _ = plist.get_filter(0)
    return fid == 32008 and len(cd) > 4 and cd[4] == 2


def _data_blocks(master: str) -> list[DataBlock]:
    """Resolve /entry/data/data_NNNNNN links (or a single /entry/data/data) into checked DataBlocks."""
    mdir = os.path.dirname(os.path.abspath(master))
    entries: list[tuple[str, str]] = []
    with _open_master(master) as f:
        g = f["/entry/data"]
        names = sorted(k for k in g if _BLOCK.match(k))
        if names:
            for k in names:
                link = g.get(k, getlink=True)
                if isinstance(link, h5py.ExternalLink):
                    entries.append((os.path.join(mdir, link.filename), link.path))
                else:
                    entries.append((os.path.abspath(master), f"/entry/data/{k}"))
        elif "data" in g:
            link = g.get("data", getlink=True)
            if isinstance(link, h5py.ExternalLink):
                entries.append((os.path.join(mdir, link.filename), link.path))
            else:
                entries.append((os.path.abspath(master), "/entry/data/data"))
        else:
            raise NotEigerError(f"{master}: /entry/data holds neither data_NNNNNN links nor a data dataset")

    blocks: list[DataBlock] = []
    start, frame_shape, dtype = 0, None, None
    for path, name in entries:
        if not os.path.exists(path):
            raise MissingDataFileError(f"{path}: data file linked from {master} is missing")
        try:
            with h5py.File(path, "r") as df:
                d = df.get(name)
                if not isinstance(d, h5py.Dataset):
                    raise NotEigerError(f"{path}: no dataset {name} (linked from {master})")
                if d.ndim != 3:
                    raise NotEigerError(f"{path}: {name} has shape {d.shape}, expected (n, ny, nx)")
                if d.dtype.kind not in "ui":
                    raise NotEigerError(f"{path}: {name} holds {d.dtype} data, expected integers")
                if frame_shape is None:
                    frame_shape, dtype = d.shape[1:], d.dtype
                elif d.shape[1:] != frame_shape or d.dtype != dtype:
                    raise NotEigerError(f"{path}: frames {d.shape[1:]} {d.dtype} differ from the "
                                        f"first data file's {frame_shape} {dtype}")
                lo, hi = d.attrs.get("image_nr_low"), d.attrs.get("image_nr_high")
                blocks.append(DataBlock(path, name, int(d.shape[0]), start,
                                        None if lo is None else int(np.asarray(lo).reshape(-1)[0]),
                                        None if hi is None else int(np.asarray(hi).reshape(-1)[0]),
                                        direct=_is_bslz4_per_frame(d)))
                start += int(d.shape[0])
        except OSError as e:
            raise InputFileError(f"{path}: cannot open data file ({e})") from e
    if not blocks or start == 0:
        raise TruncatedDataError(f"{master}: the data files hold no frames")
    return blocks
