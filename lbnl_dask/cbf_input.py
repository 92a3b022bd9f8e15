"""Read a miniCBF series (PILATUS, or Eiger data exported as CBF) lazily, as an Eiger dataset.

``open_series(path)`` reads every file's header (a few kB each, no pixels) and returns a
:class:`CbfSeries` with the interface of :class:`lbnl_dask.eiger.EigerDataset`: ``.meta``
(a :class:`~lbnl_dask.meta.DetectorMeta` from the first header), ``.frames`` (a dask array
(n, ny, nx) uint32, chunked by datablock, each chunk read by its own task through FabIO),
``pixel_mask()`` (from the first frame's -1/-2 markers) and ``master_source()``: an NXmx
master in the Dectris FileWriter layout, as bytes, that the writer rewrites for the output
exactly as it rewrites a detector's master. So everything downstream (sum, bin, round trips,
the master's rules, quality, the explorer) is the same for both inputs.

Pixels: int32 counts become uint32; every negative pixel (-1 gap, -2 bad) becomes the
invalid value (all bits set), and the first frame's markers become the pixel mask (bit 0
for -1, bit 1 for -2), as a Dectris master flags its gaps and dead pixels.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from functools import cached_property, lru_cache

import dask.array as da
import h5py
import numpy as np
from dask.base import tokenize

from . import minicbf
from .eiger import FrameReader, check_range
from .errors import (
    ImageRangeError,
    InputFileError,
    MetadataError,
    SeriesError,
    TruncatedDataError,
)
from .header import check_meta
from .layout import (
    DATA_GROUP,
    DET,
    ENTRY,
    GONIOMETER,
    INSTRUMENT,
    MINICBF_HEADER,
    PIXEL_MASK,
    SAMPLE,
    SPEC,
    nx_group,
    write_dataset,
)
from .meta import DetectorMeta


def read_cbf(path: str) -> np.ndarray:
    """One miniCBF file's pixels (ny, nx) int32, checked (:func:`minicbf.read_checked`) and
    decoded through FabIO; TruncatedDataError naming the file if it is damaged."""
    import fabio.cbfimage

    raw = minicbf.read_checked(path)
    try:
        img = fabio.cbfimage.CbfImage()
        img.read(io.BytesIO(raw), check_MD5=False)  # checked above, with a clear error
        return np.asarray(img.data)
    except Exception as e:  # FabIO raises many types for a damaged file (some with no text)
        why = f"{type(e).__name__}: {e}" if str(e) else "its compressed pixel stream is damaged"
        raise TruncatedDataError(f"{path}: cannot decode the CBF pixels ({why})") from e


class CbfSource(FrameReader):
    """A picklable, array-like view (shape, dtype, ``__getitem__``) of a miniCBF series as
    uint32 frames (invalid pixels all bits set), ``pad`` (rows, columns) of zeros added at
    the bottom/right as in :class:`lbnl_dask.eiger.FrameSource`."""

    def __init__(self, files: list[str], frame_shape: tuple[int, int], pad=(0, 0)):
        self.files = list(files)
        self.frame_shape = tuple(int(x) for x in frame_shape)
        self.pad = tuple(int(p) for p in pad)
        self.shape = (len(self.files), self.frame_shape[0] + self.pad[0],
                      self.frame_shape[1] + self.pad[1])  # fmt: skip
        self.dtype = np.dtype(np.uint32)
        self.ndim = 3

    def __dask_tokenize__(self):
        return ("lbnl_dask.CbfSource", self.files, self.shape, self.pad)

    def read(self, start: int, stop: int) -> np.ndarray:
        out = np.zeros((stop - start,) + self.shape[1:], self.dtype)
        ny, nx = self.frame_shape
        for i in range(start, stop):
            px = read_cbf(self.files[i])
            if px.shape != (ny, nx):
                raise SeriesError(f"{self.files[i]}: frame {px.shape} differs from the "
                                    f"series' {(ny, nx)}")  # fmt: skip
            dest = out[i - start, :ny, :nx]
            dest[...] = px.view(np.uint32) if px.dtype == np.int32 else px
            dest[px < 0] = np.iinfo(np.uint32).max
        return out


@dataclass(frozen=True)
class CbfMask:
    """The pixel mask of a series by reference (its first file): small in a task graph,
    decoded in the task that needs it (``np.asarray(mask)`` -> uint32 (ny, nx))."""

    path: str
    shape: tuple

    def load(self) -> np.ndarray:
        return minicbf.mask_of(read_cbf(self.path))

    def __array__(self, dtype=None, copy=None):
        a = self.load()
        return a if dtype is None else a.astype(dtype)


class CbfSeries:
    """An opened miniCBF series: ``.meta``, ``.frames`` (lazy (n, ny, nx) uint32),
    ``.first_image``/``.last_image`` (1-based, inclusive), ``.datablock``; ``.master`` is
    the first file (named in messages and in the job token)."""

    def __init__(self, files, headers, meta, first_image, last_image, datablock):
        self.files, self.headers, self.meta = list(files), list(headers), meta
        self.master = self.files[0]
        self._first = int(first_image)
        self._last = len(self.files) if last_image is None else int(last_image)
        self._datablock = datablock
        check_range(self.master, self._first, self._last, len(self.files))

    def __repr__(self):
        return f"CbfSeries({self.master!r}, frames={self.frames!r})"

    def input_files(self) -> list[str]:
        """Every file of the series: none may be overwritten, and each one's size and time
        are part of the job token (a file replaced means a new job)."""
        return list(self.files)

    @property
    def n_available(self) -> int:
        return len(self.files)

    @property
    def first_image(self) -> int:
        return self._first

    @property
    def last_image(self) -> int:
        return self._last

    @property
    def datablock(self) -> int:
        return self._datablock or 100

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self._last - self._first + 1,) + self.headers[0].shape

    def _selected(self) -> list[str]:
        return self.files[self._first - 1 : self._last]

    def data_bytes(self) -> int:
        """Bytes of the selected files on disk."""
        return sum(os.path.getsize(p) for p in self._selected())

    def master_bytes(self) -> int:
        """Bytes of metadata outside the frames' files: none (each file has its header)."""
        return 0

    def with_datablock(self, datablock: int) -> CbfSeries:
        return CbfSeries(self.files, self.headers, self.meta, self._first, self._last,
                         int(datablock))  # fmt: skip

    @cached_property
    def frames(self) -> da.Array:
        return self._frames((0, 0))

    def padded_frames(self, multiple: int) -> da.Array:
        """The frames zero-padded at the bottom/right to multiples of ``multiple`` pixels."""
        ny, nx = self.headers[0].shape
        return self._frames((-ny % int(multiple), -nx % int(multiple)))

    def _frames(self, pad) -> da.Array:
        src = CbfSource(self._selected(), self.headers[0].shape, pad)
        chunks = (self.datablock, -1, -1)
        name = "cbf-frames-" + tokenize(src, chunks)
        return da.from_array(src, chunks=chunks, name=name, lock=False, asarray=True,
                             meta=np.empty((0, 0, 0), np.uint32))  # fmt: skip

    def pixel_mask(self) -> CbfMask:
        """The first frame's markers as a pixel mask, by reference."""
        return CbfMask(self.files[0], self.headers[0].shape)

    @property
    def is_cbf(self) -> bool:
        return True

    def master_source(self) -> bytes:
        """An NXmx master (Dectris FileWriter layout) of the whole series, as an HDF5 file
        image: the source the output master is rewritten from."""
        return template_master(self)


# --------------------------------------------------------------------------- opening
def open_series(path, first_image: int = 1, last_image: int | None = None,
                datablock: int | None = None) -> CbfSeries:  # fmt: skip
    """Open a miniCBF series lazily (a template ``x_#####.cbf.gz``, a first file or a
    folder). Every header is read now and checked: same frame size and pixel type, a start
    angle per file; pixels are read when ``.frames`` is computed.

    Example::

        ds = open_series("l-cyst_01_#####.cbf.gz")
        ds.meta.x_pixel_size, ds.frames.shape        # 0.000172, (15, 1679, 1475)
    """
    files = minicbf.find_series(path)
    headers = [_header(p) for p in files]
    first = headers[0]
    if first.element_type and "32-bit" not in first.element_type:
        raise InputFileError(f"{first.path}: pixels are {first.element_type!r}; miniCBF input "
                             "must be 32-bit integers")  # fmt: skip
    for h in headers[1:]:
        if h.element_type != first.element_type:
            raise SeriesError(f"{h.path}: pixels are {h.element_type!r}, the first file's "
                              f"{first.element_type!r} ({first.path})")  # fmt: skip
        if h.shape != first.shape:
            raise SeriesError(f"{h.path}: frame {h.shape} differs from the first file's "
                              f"{first.shape} ({first.path})")  # fmt: skip
    _check_one_sweep(headers, first_image, last_image)
    if datablock is not None and int(datablock) < 1:
        raise ImageRangeError(f"{files[0]}: datablock must be at least 1, not {datablock}")
    meta = series_meta(files, headers, _chosen(headers, first_image, last_image))
    number = minicbf.first_number(files)
    if number != 1:
        meta.warnings.append(f"image numbers (-1/-N) count from its first file: image 1 is "
                             f"{os.path.basename(files[0])} (number {number})")  # fmt: skip
    return CbfSeries(files, headers, meta, first_image, last_image, datablock)


#: Header lines every file of one sweep shares: the output master takes them from the first
#: file, so a file that says otherwise is refused, naming it.
SHARED_KEYS = ("Wavelength", "Pixel_size", "Detector_distance", "Beam_xy", "Angle_increment",
               "Detector_2theta")  # fmt: skip


def _shown(numbers: tuple | None) -> str:
    return "none" if numbers is None else " ".join(f"{x:g}" for x in numbers)


def _check_one_sweep(headers: list[minicbf.RawHeader], first_image: int = 1,
                     last_image: int | None = None) -> None:  # fmt: skip
    """SeriesError naming the first file of images ``first_image``..``last_image`` whose
    geometry (:data:`SHARED_KEYS`) differs from the first file's (the output's geometry comes
    from it), or whose Start_angle does not move on from the file before it in the direction
    of the scan (modulo 360 deg; a scan going back would be written as one). Files not
    selected are not judged; stills (an Angle_increment of 0) have no scan to follow."""
    first = headers[0]
    chosen = _chosen(headers, first_image, last_image)
    ref = {k: _numbers(first, k) for k in SHARED_KEYS}
    axis = _axis_line(first)
    for h in chosen:
        damaged = minicbf.damaged_line(h.lines)
        if damaged is not None:  # (a value no check below reads: the output takes the first's)
            raise MetadataError(f"{h.path}: header line {damaged!r} does not hold a number")
        if _axis_line(h) != axis:
            raise SeriesError(f"{h.path}: Oscillation_axis {_axis_line(h) or 'none'} differs from "
                              f"the first file's {axis or 'none'} ({first.path}): not one "
                              "sweep")  # fmt: skip
        for k in SHARED_KEYS:
            v = _numbers(h, k)
            same = v == ref[k] or (v is not None and ref[k] is not None
                                   and np.allclose(v, ref[k], rtol=1e-6, atol=0))  # fmt: skip
            if not same:
                raise SeriesError(f"{h.path}: {k} {_shown(v)} differs from the first file's "
                                  f"{_shown(ref[k])} ({first.path}): not one sweep")  # fmt: skip
    starts = scan_starts(chosen)
    if starts is None or len(starts) < 2:
        return
    inc = ref["Angle_increment"][0] if ref["Angle_increment"] else starts[1] - starts[0]
    if inc == 0:  # stills (a grid scan, serial crystallography): no scan to follow
        return
    step = ((np.diff(starts) + 180.0) % 360.0 - 180.0) * np.sign(inc)  # across 360 too
    bad = np.flatnonzero(step <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise SeriesError(f"{chosen[i].path}: Start_angle {starts[i]:g} does not follow "
                          f"{starts[i - 1]:g} of {chosen[i - 1].path} (increment {inc:g} deg): "
                          "not one sweep")  # fmt: skip


def _chosen(headers: list, first_image: int = 1, last_image: int | None = None) -> list:
    """The headers of images ``first_image``..``last_image`` (1-based; all if none)."""
    return headers[max(1, int(first_image)) - 1 : last_image] or headers


def _axis_line(h: minicbf.RawHeader) -> str | None:
    """A file's Oscillation_axis, as its readers take it: case and spaces aside (``X, CW``
    is ``x,cw``); None without one."""
    line = next((ln for ln in h.lines if ln.startswith("Oscillation_axis")), None)
    return None if line is None else "".join(line.split()[1:]).lower() or None


def _numbers(h: minicbf.RawHeader, key: str) -> tuple | None:
    """:func:`lbnl_dask.minicbf.numbers_of` a file's header; a damaged line is a
    MetadataError naming the file."""
    try:
        return minicbf.numbers_of(h.lines, key)
    except ValueError as e:
        raise MetadataError(f"{h.path}: {e}") from None


def scan_axis(h: minicbf.Header) -> str:
    """The rotation axis of the scan (``Oscillation_axis``; omega if it names none we know)."""
    axis = (h.get("Oscillation_axis") or "omega").lower()
    return axis if axis in minicbf.AXES else "omega"


def scan_starts(headers: list[minicbf.RawHeader]) -> np.ndarray | None:
    """Each file's Start_angle (deg), or None if a header lacks it."""
    starts = []
    for r in headers:
        starts.append(_numbers(r, "Start_angle"))
    return None if None in starts else np.asarray([v[0] for v in starts], np.float64)


def _header(path: str) -> minicbf.RawHeader:
    """A file's header, read once per (path, size, time) in a process: the explorer and
    quality open the same series again and again."""
    st = os.stat(path)
    return _cached_header(path, st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=2**16)
def _cached_header(path: str, size: int, mtime: int) -> minicbf.RawHeader:
    return minicbf.read_header(path)


def series_meta(files: list[str], headers: list[minicbf.RawHeader],
                chosen: list[minicbf.RawHeader] | None = None) -> DetectorMeta:  # fmt: skip
    """The metadata of a series: the first header's values, one start angle per file; the
    lowest Count_cutoff of the ``chosen`` files (those a run reads; default all)."""
    chosen = headers if chosen is None else chosen
    h = minicbf.parse_header(headers[0])
    if "Pixel_size" not in h.values:
        raise InputFileError(f"{files[0]}: no PILATUS_1.2 pixel size (a 'Pixel_size <x> m x "
                             "<y> m' line)")  # fmt: skip
    description, number = minicbf.detector_name(h)
    ny, nx = headers[0].shape
    cutoff, notes = _series_cutoff(chosen, h.get("Count_cutoff"))
    times = sorted({t[0] for r in chosen if (t := _numbers(r, "Exposure_time"))})
    if len(times) > 1:
        notes.append(f"Exposure_time differs between the files ({times[0]:g} to {times[-1]:g} "
                     "s): the output's count_time is the first file's x the sum")  # fmt: skip
    two_theta = h.get("Detector_2theta")
    if two_theta is not None and np.isfinite(two_theta) and two_theta != 0:
        notes.append(f"the detector sits on a 2-theta arm of {two_theta:g} deg: the output "
                     "master records it as detector/goniometer/two_theta (as Dectris masters "
                     "do), not as an NXtransformations chain; XDS takes its geometry from "
                     "XDS.INP, but check what a reader of NXmx transformations (DIALS) makes "
                     "of it")  # fmt: skip
    starts = scan_starts(headers)
    omega = starts if scan_axis(h) == "omega" else None
    meta = DetectorMeta(
        master=files[0],
        nimages=len(files),
        ntrigger=1,
        nx=nx,
        ny=ny,
        x_pixel_size=h.get("Pixel_size")[0],
        y_pixel_size=h.get("Pixel_size")[1],
        beam_center_x=(h.get("Beam_xy") or (None, None))[0],
        beam_center_y=(h.get("Beam_xy") or (None, None))[1],
        detector_distance=h.get("Detector_distance"),
        sensor_thickness=(h.get("sensor") or (None, None))[1],
        wavelength=h.get("Wavelength"),
        count_time=h.get("Exposure_time"),
        frame_time=h.get("Exposure_period"),
        omega=omega,
        omega_increment=h.get("Angle_increment"),
        saturation_value=None if cutoff is None else int(cutoff),
        countrate_cutoff=None if cutoff is None else int(cutoff),
        bit_depth_image=32,
        description=description,
        detector_number=number,
    )
    meta.warnings += notes
    check_meta(meta, where="the headers")
    return meta


def _series_cutoff(headers: list[minicbf.RawHeader], first) -> tuple[float | None, list[str]]:
    """The series' Count_cutoff: the lowest any file gives (a higher one would take that
    file's overloads as counts), and a note where the files differ or some give none."""
    found = [_numbers(r, "Count_cutoff") for r in headers]
    values = sorted({v[0] for v in found if v is not None})
    if not values:
        return first, []  # (none gives one: check_meta's note)
    if len(values) == 1 and None not in found:
        return values[0], []
    notes = []
    if len(values) > 1:
        notes.append(f"Count_cutoff differs between the files ({values[0]:g} to "
                     f"{values[-1]:g} counts): counts from the lowest, {values[0]:g}, on are "
                     "taken as saturated in every frame")  # fmt: skip
    if None in found:
        missing = headers[found.index(None)].path
        notes.append(f"{os.path.basename(missing)} (and {found.count(None) - 1} more) gives no "
                     f"Count_cutoff: the other files' ({values[0]:g}) is used for it")  # fmt: skip
    return values[0], notes


# --------------------------------------------------------------------------- the master
def template_master(ds: CbfSeries) -> bytes:
    """The series as an NXmx master in the Dectris FileWriter layout (no data links), as an
    HDF5 file image; the writer rewrites it for the output's sum and binning."""
    m, h = ds.meta, minicbf.parse_header(ds.headers[0])
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        nx_group(f, ENTRY)
        nx_group(f, DATA_GROUP)
        inst = nx_group(f, INSTRUMENT)
        if m.wavelength is not None:
            write_dataset(nx_group(inst, "beam"), "incident_wavelength", m.wavelength,
                          "angstrom", np.float64)  # fmt: skip
        det = nx_group(f, DET)
        for name, value, units in (
            ("x_pixel_size", m.x_pixel_size, "m"), ("y_pixel_size", m.y_pixel_size, "m"),
            ("beam_center_x", m.beam_center_x, "pixel"),
            ("beam_center_y", m.beam_center_y, "pixel"),
            ("detector_distance", m.detector_distance, "m"),
            ("sensor_thickness", m.sensor_thickness, "m"),
            ("count_time", m.count_time, "s"), ("frame_time", m.frame_time, "s"),
        ):  # fmt: skip
            if value is not None:
                write_dataset(det, name, value, units, np.float64)
        for name, value in (("description", m.description),
                            ("detector_number", m.detector_number),
                            ("sensor_material", (h.get("sensor") or (None,))[0])):  # fmt: skip
            if value is not None:
                write_dataset(det, name, value)
        write_dataset(det, "bit_depth_image", 32, None, np.uint32)
        if m.saturation_value is not None:
            write_dataset(det, "saturation_value", m.saturation_value, None, np.uint32)
        two_theta = h.get("Detector_2theta")
        if two_theta is not None:
            write_dataset(nx_group(det, "goniometer"), "two_theta", [two_theta], "degree")
        spec = nx_group(f, SPEC)
        write_dataset(spec, "nimages", len(ds.files), None, np.uint32)
        write_dataset(spec, "ntrigger", 1, None, np.uint32)
        write_dataset(spec, "x_pixels_in_detector", m.nx, None, np.uint32)
        write_dataset(spec, "y_pixels_in_detector", m.ny, None, np.uint32)
        write_dataset(spec, "nframes_sum", 1, None, np.uint32)
        write_dataset(spec, "compression", "none")
        if m.countrate_cutoff is not None:
            write_dataset(spec, "countrate_correction_count_cutoff", m.countrate_cutoff, None,
                          np.uint32)  # fmt: skip
        # the mask's place (its space is not allocated): the writer puts the binned mask there
        spec.create_dataset(PIXEL_MASK.rsplit("/", 1)[1], shape=(m.ny, m.nx), dtype=np.uint32)
        lines = [ln for ln in h.lines if not ln.startswith("lbnl_dask_job:")]  # not ours to keep
        write_dataset(spec, MINICBF_HEADER.rsplit("/", 1)[1], "\n".join(lines))
        _write_goniometer(f, ds, h)
    return buf.getvalue()


def _write_goniometer(f: h5py.File, ds: CbfSeries, h: minicbf.Header) -> None:
    """The scan axis (``Oscillation_axis``, default omega) per frame from each file's
    Start_angle; the other axes at their header value."""
    nx_group(f, SAMPLE)
    g = nx_group(f, GONIOMETER)
    axis = scan_axis(h)
    inc = h.get("Angle_increment")
    starts = scan_starts(ds.headers)
    for name in minicbf.AXES:
        if name == axis and starts is not None:
            write_dataset(g, name, starts, "degree")
            if inc is not None:
                write_dataset(g, name + "_end", starts + inc, "degree")
                write_dataset(g, name + "_increment", inc, "degree")
                write_dataset(g, name + "_range_average", inc, "degree")
                write_dataset(g, name + "_range_total", inc * len(starts), "degree")
        else:
            value = h.get(name.capitalize())
            if value is not None:
                write_dataset(g, name, [value], "degree")
