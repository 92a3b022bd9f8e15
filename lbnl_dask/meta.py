"""Detector, beam and goniometer metadata of a dataset, and how summing and binning change it.

:class:`DetectorMeta` holds plain typed fields (SI units as named in each field).
:class:`MasterRewriter` holds every rule of SPEC Part A2 for the output master of ``sum s``
/ ``bin b`` (pixel size, beam centre, frame counts, times, angles, saturation, bit depth,
module sizes, flatfield, excluded pixels); the writer applies it dataset by dataset, so each
rule lives here once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import h5py
import numpy as np

from .layout import MODULE_PREFIX, NX_CLASSES, SPEC, nx_class


@dataclass
class DetectorMeta:
    """Metadata of an Eiger/NXmx master file.

    Lengths are in metres, angles in degrees, times in seconds, the wavelength in
    ångström, the beam centre in pixels from the first pixel's edge. ``None`` when the
    master does not carry the item.
    """

    master: str
    nimages: int
    ntrigger: int = 1
    nx: int | None = None  # x_pixels_in_detector (fast axis)
    ny: int | None = None  # y_pixels_in_detector (slow axis)
    x_pixel_size: float | None = None
    y_pixel_size: float | None = None
    beam_center_x: float | None = None
    beam_center_y: float | None = None
    detector_distance: float | None = None
    sensor_thickness: float | None = None
    wavelength: float | None = None
    count_time: float | None = None
    frame_time: float | None = None
    omega: np.ndarray | None = None  # start angle of every frame (deg), or None
    omega_increment: float | None = None
    saturation_value: int | None = None
    countrate_cutoff: int | None = None
    bit_depth_image: int | None = None
    bit_depth_readout: int | None = None
    description: str | None = None
    detector_number: str | None = None
    eiger_fw_version: str | None = None
    software_version: str | None = None
    pixel_mask_path: str | None = None  # HDF5 path of the pixel mask in the master
    pixel_transform: str | None = None  # what the pixels are where not counts (-S/-L/-X output)
    warnings: list = field(default_factory=list)  # odd but usable values, one line each

    @property
    def n_frames(self) -> int:
        """Frames the master announces: nimages x ntrigger."""
        return int(self.nimages) * int(self.ntrigger)

    @property
    def overload(self) -> int | None:
        """The count at and above which a pixel is saturated (cutoff, else saturation value)."""
        for v in (self.countrate_cutoff, self.saturation_value):
            if v is not None:
                return int(v)
        return None


def binned_size(n: int, b: int) -> int:
    """Pixels along an axis of n pixels after b x b binning (partial edge kept): ceil(n/b)."""
    return -(-int(n) // int(b))


def output_frame_count(n_in: int, s: int) -> int:
    """Output frames from n_in input frames summed s at a time (partial last group kept)."""
    return -(-int(n_in) // int(s))


def bin_pixel_mask(mask: np.ndarray, b: int) -> np.ndarray:
    """Bin a 2-D pixel mask b x b by bitwise OR (zero-padded edges).

    Returns shape (ceil(ny/b), ceil(nx/b)), uint32.
    """
    mask = np.asarray(mask).astype(np.uint32, copy=False)
    if b == 1:
        return mask.copy()
    ny, nx = mask.shape
    rows = np.zeros((binned_size(ny, b), nx), np.uint32)
    for i in range(b):  # OR the b rows of each cell (whole rows), then its b columns: fast
        part = mask[i::b]
        rows[: part.shape[0]] |= part
    out = np.zeros((rows.shape[0], binned_size(nx, b)), np.uint32)
    for j in range(b):
        part = rows[:, j::b]
        out[:, : part.shape[1]] |= part
    return out


_AXES = ("omega", "phi", "chi", "kappa", "two_theta", "translation", "sam_x", "sam_y", "sam_z")
ANGLE = re.compile(
    r"^({})(_end|_range_average|_range_total|_increment|_increment_set|_start)?$".format(
        "|".join(_AXES)
    )
)


class MasterRewriter:
    """The rewrite rules of a master's datasets for one output (summing and binning).

    ``n_total`` source frames; the output takes 1-based ``first``..``last`` summed ``s`` at
    a time and binned ``b`` x ``b``; ``saturation`` and ``bit_depth`` of the output pixels.
    ``new_value(path, dset)`` returns the new value of a dataset, or None to keep it.
    ``excluded_pixels``: the nonzero pixels of the output (binned) pixel mask, written as
    ``number_of_excluded_pixels``; None keeps the source's value (no mask written).
    ``transform``: :func:`lbnl_dask.options.pixel_transform`, recorded on ``/entry``.
    ``period``: seconds from one input frame's start to the next (the master's frame_time):
    an output that starts at image ``first`` > 1 starts ``(first - 1) * period`` after the
    collection, and its :data:`START_DATES` say so.
    """

    def __init__(
        self,
        *,
        n_total,
        first,
        last,
        s,
        b,
        saturation,
        bit_depth,
        compression,
        frame_shape,
        excluded_pixels: int | None = None,
        transform: str | None = None,
        period: float | None = None,
    ):
        self.n_total, self.first, self.last, self.s, self.b = n_total, first, last, s, b
        self.n_in = last - first + 1
        self.n_out = output_frame_count(self.n_in, s)
        self.saturation, self.bit_depth, self.compression = saturation, bit_depth, compression
        self.frame_shape = tuple(frame_shape)  # input (ny, nx)
        self.frame_shape_out = tuple(binned_size(n, b) for n in self.frame_shape)
        self.excluded_pixels = excluded_pixels
        self.transform = transform  # what the pixels hold where not counts (-S, -L, -X)
        self.period = period

    def set_mask(self, binned_mask: np.ndarray | None) -> None:
        """Take ``number_of_excluded_pixels`` from the output pixel mask (ny', nx'), as
        written to the master; None (no mask written) keeps the source's value."""
        self.excluded_pixels = None if binned_mask is None else int(np.count_nonzero(binned_mask))

    def per_frame(self, arr: np.ndarray, end: bool) -> np.ndarray:
        """One entry per output frame: group's first frame (starts) or last frame (``end``)."""
        sel = arr[self.first - 1 : self.last]
        if not end:
            return sel[:: self.s]
        ends = sel[self.s - 1 :: self.s]
        if len(ends) < self.n_out:
            ends = np.concatenate([ends, sel[-1:]])
        return ends

    def per_frame_sums(self, arr: np.ndarray) -> np.ndarray:
        """One entry per output frame: the sum of its input frames' values (a per-frame
        count time summed with its frames)."""
        sel = np.asarray(arr[self.first - 1 : self.last])
        wide = sel.astype(np.float64 if sel.dtype.kind == "f" else np.int64)
        return _fitted(np.add.reduceat(wide, np.arange(0, len(sel), self.s), axis=0), sel.dtype)

    def _start_date(self, d: h5py.Dataset):
        """A collection's start time (ISO 8601 text) moved to image ``first``'s start, in the
        source's own form; None (kept as it is) from image 1, without a frame period, or
        for a value that is no such time."""
        p = self.period
        if self.first <= 1 or p is None or not np.isfinite(p) or p <= 0 or d.shape != ():
            return None
        if h5py.check_string_dtype(d.dtype) is None:  # (text only)
            return None
        raw = d[()]
        text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)
        # the period as its float32 holds it (0.1, not 0.10000000149): whole milliseconds
        moved = later_time(text, (self.first - 1) * tidy(p))
        if moved is None:
            return None
        if d.dtype.kind == "S":  # fixed length: the source's, unless the text outgrew it
            return np.array(moved.encode("ascii"), dtype=f"S{max(d.dtype.itemsize, len(moved))}")
        return np.array(moved, dtype=d.dtype)  # variable length: its encoding kept

    def new_value(self, path: str, d: h5py.Dataset):
        """The new value of dataset ``d`` at ``path``, or None to copy it as it is (only the
        datasets a rule names are read). A dataset :func:`rescaled` names that is not a
        number (read_meta refuses such a master; a dataset linked from another file can get
        here) is copied as it is: multiplied, b'0.0099' would become b'0.00990.0099'."""
        name = path.rsplit("/", 1)[-1]
        parent = path.rsplit("/", 2)[-2] if path.count("/") >= 2 else ""
        s, b = self.s, self.b
        if rescaled(path) and d.dtype.kind not in "iuf":
            return None
        if name in START_DATES:
            return self._start_date(d)
        if name in BINNED_LENGTHS:
            return _scaled(d[()], b)
        if name in ("beam_center_x", "beam_center_y"):  # in pixels; a length stays as it is
            from .header import length_units  # (header imports this module)

            return None if length_units(d) is not None else d[()] / b
        if name in SUMMED:
            v = d[()]
            if name == "nframes_sum":  # below 1 cannot be right: taken as 1 (read_meta warns)
                v = np.fmax(v, 1)  # (a NaN too)
            elif np.ndim(v) >= 1 and np.shape(v)[0] >= self.n_total > 1:  # one per frame
                return self.per_frame_sums(v[: self.n_total])
            return _scaled(v, s)
        if name == "nimages":
            return np.asarray(self.n_out, d.dtype)
        if name == "ntrigger":
            return np.asarray(1, d.dtype)
        if name in ("x_pixels_in_detector", "x_pixels", "y_pixels_in_detector", "y_pixels"):
            # the output frames' own size: a master whose count differs from its frames (a
            # note says so) would otherwise carry its error into the output
            return np.asarray(self.frame_shape_out[name[0] == "x"], d.dtype)
        if name == "compression" and parent == SPEC.rsplit("/", 1)[1]:
            return np.bytes_(self.compression.encode("ascii"))
        if name == "bit_depth_image":
            return np.asarray(self.bit_depth, d.dtype)
        if name in ("saturation_value", "countrate_correction_count_cutoff"):
            return saturation_value(self.saturation, d.dtype)
        if name == "number_of_excluded_pixels" and self.excluded_pixels is not None:
            return np.asarray(self.excluded_pixels, d.dtype if d.dtype.kind in "ui" else np.int64)
        if _in_module(parent) or nx_class(d.parent) == "NXdetector_module":
            if name == "data_origin":
                return (np.asarray(d[()]) // b).astype(d.dtype)
            if name == "data_size":
                return np.asarray([binned_size(x, b) for x in np.atleast_1d(d[()])], d.dtype)
        if name == "flatfield" and d.shape == self.frame_shape:
            return _bin_mean(d[()], b).astype(np.float32)
        m = ANGLE.match(name)
        if m:
            suffix = m.group(2) or ""
            if suffix == "_start":
                return None  # set from the first output frame's start by write_master
            arr = np.asarray(d[()])
            if suffix in ("_range_average", "_increment", "_increment_set"):
                return _scaled(arr, s)
            if suffix == "_range_total":
                return arr * (self.n_in / self.n_total) if self.n_total else arr
            if arr.ndim >= 1 and arr.shape[0] >= self.n_total > 1:  # longer: data files hold
                return self.per_frame(arr[: self.n_total], end=suffix == "_end")  # more frames
        return None


def tidy(v):
    """A value read from a float32 dataset without its binary noise (7 significant digits:
    75.00000356e-6 -> 75e-6, 0.1000000015 -> 0.1); None stays None."""
    return None if v is None else float(f"{float(v):.7g}")


#: Text datasets giving when the collection started (Dectris' and NXmx'): an output from
#: image ``first`` > 1 starts later (:meth:`MasterRewriter._start_date`).
START_DATES = ("data_collection_date", "start_time")


def later_time(text: str, seconds: float) -> str | None:
    """ISO 8601 time ``text`` ``seconds`` later, written as it was: its separator, its zone
    as written (``Z``, ``+0200``), its decimal mark, as many decimals (more where the shift
    needs them: 0.0125 s, 4; 3 or 6 where it had none), rounded to the last one. None for
    text that is no date and time, or a time beyond datetime's years."""
    text = text.strip().rstrip("\x00").strip()
    m = re.match(r"^\d{4}-\d\d-\d\d([T ])\d\d:\d\d(:\d\d([.,](\d+))?)?(.*)$", text)
    if m is None:
        return None
    try:
        when = datetime.fromisoformat(text).replace(tzinfo=None)  # (the zone: as written)
    except ValueError:
        return None
    # the decimals the shift needs (0.0125 s: 4): a whole number of the last one, near enough
    need = next((k for k in range(6) if abs(seconds * 10**k - round(seconds * 10**k)) < 1e-6), 6)
    had = len(m.group(4) or "")
    digits = min(6, max(had, need if had or not need else 3 if need <= 3 else 6))
    unit = 10 ** (6 - digits)  # microseconds in the last decimal written
    try:
        when += timedelta(seconds=seconds)
        when += timedelta(microseconds=(when.microsecond + unit // 2) // unit * unit
                          - when.microsecond)  # fmt: skip
    except OverflowError:
        return None
    if not digits:
        minutes = not m.group(2) and seconds % 60 == 0
        out = when.isoformat(sep=m.group(1), timespec="minutes" if minutes else "seconds")
    else:  # (rounded above: the decimals cut off are zeros)
        out = when.isoformat(sep=m.group(1), timespec="microseconds")
        out = out[: len(out) - (6 - digits)]
    if m.group(3) and m.group(3).startswith(","):
        out = out.replace(".", ",")
    return out + m.group(5)


#: Lengths of a pixel, multiplied by the bin.
BINNED_LENGTHS = ("x_pixel_size", "y_pixel_size", "fast_pixel_direction", "slow_pixel_direction")
#: Times (and the frame counts: Dectris' nframes_sum, NXdetector's number_of_cycles, the
#: readouts accumulated in a frame) an output frame sums over its input frames.
SUMMED = ("count_time", "frame_time", "frame_count_time", "frame_period", "nframes_sum",
          "number_of_cycles")  # fmt: skip


#: Datasets the output master writes from the run rather than copies: its frame count,
#: size, type, compression and saturation, the binned pixel mask and flatfield.
REPLACED = ("nimages", "ntrigger", "x_pixels_in_detector", "x_pixels", "y_pixels_in_detector",
            "y_pixels", "compression", "bit_depth_image", "saturation_value",
            "countrate_correction_count_cutoff", "number_of_excluded_pixels", "flatfield",
            "pixel_mask")  # fmt: skip


def rewritten(path: str) -> bool:
    """Whether the output's value of the dataset at ``path`` may differ from the input's
    (:func:`rescaled`, or one of :data:`REPLACED`), or ``path`` is one of the Dectris groups
    that hold such datasets (:data:`lbnl_dask.layout.NX_CLASSES`): a link to it, where it
    cannot be read, may not be copied as it is."""
    return rescaled(path) or path.rsplit("/", 1)[-1] in REPLACED or path in NX_CLASSES


def _in_module(parent: str) -> bool:
    return parent.startswith(MODULE_PREFIX) or parent == "module"


def rescaled(path: str) -> bool:
    """Whether :meth:`MasterRewriter.new_value` computes the output's value of the dataset at
    ``path`` from its own (a number it multiplies, divides or selects per output frame):
    such a dataset must hold numbers."""
    name = path.rsplit("/", 1)[-1]
    parent = path.rsplit("/", 2)[-2] if path.count("/") >= 2 else ""
    m = ANGLE.match(name)
    return (
        name in BINNED_LENGTHS + ("beam_center_x", "beam_center_y") + SUMMED
        or (_in_module(parent) and name in ("data_origin", "data_size"))
        or (m is not None and m.group(2) != "_start")
    )  # fmt: skip


def _scaled(v, factor):
    """``v`` (a number or an array) times a whole ``factor``, in ``v``'s type where the
    product fits it, else in int64 or float64: a uint8 75 um pixel at -b 4 is 300, not 44."""
    a = np.asarray(v)
    approx = a.astype(np.float64) * factor
    if a.dtype.kind == "f":
        return _fitted(approx, a.dtype)
    if np.all(np.abs(approx) < 2.0**62):
        return _fitted(a.astype(np.int64) * factor, a.dtype)
    if a.dtype == np.uint64 and np.all(approx < 2.0**64):  # exact in uint64 itself
        return a * np.uint64(factor)
    return _fitted(approx, a.dtype)  # beyond any integer type: a float, not wrapped round to 0


def _fitted(wide: np.ndarray, dtype) -> np.ndarray:
    """``wide`` (int64 or float64) in ``dtype`` where every value fits that integer type
    (or ``dtype`` is a float), else as it is."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        lim, lo, hi = np.iinfo(dtype), wide.min(initial=0), wide.max(initial=0)
        if wide.dtype.kind == "f":  # below the first power of 2 beyond (2**64 is no uint64)
            fits = lim.min <= lo and hi < 2.0 ** (8 * dtype.itemsize - (dtype.kind == "i"))
        else:
            fits = lim.min <= lo <= hi <= lim.max
        if not fits:
            return wide
    return wide.astype(dtype)


def saturation_value(saturation, dtype) -> np.ndarray:
    """The saturation as a 0-d array for a master dataset of ``dtype``: that type when it
    holds the value exactly; else int64 for an integer, else float64 (a value after -L
    such as 11.966, or float32's maximum after -X, is neither truncated nor overflows)."""
    dtype = np.dtype(dtype)
    v = float(saturation)
    if dtype.kind == "f":
        with np.errstate(over="ignore"):
            exact = float(dtype.type(v)) == v
        return np.asarray(v, dtype if exact else np.float64)
    if np.isfinite(v) and v.is_integer():
        n = int(saturation) if isinstance(saturation, (int, np.integer)) else int(v)
        for dt in (dtype, np.dtype(np.int64)):
            if dt.kind in "ui" and np.iinfo(dt).min <= n <= np.iinfo(dt).max:
                return np.asarray(n, dt)
    return np.asarray(v, np.float64)


def _bin_mean(a: np.ndarray, b: int) -> np.ndarray:
    """Mean of each b x b cell of 2-D ``a`` over the real pixels only: an edge cell of a
    partial row/column is not diluted by padding. Shape (ceil(ny/b), ceil(nx/b)), float64."""
    if b == 1:
        return a
    ny, nx = a.shape
    py, px = binned_size(ny, b) * b, binned_size(nx, b) * b
    pad = np.zeros((py, px), np.float64)
    pad[:ny, :nx] = a
    real = np.zeros((py, px), np.float64)
    real[:ny, :nx] = 1
    total = pad.reshape(py // b, b, px // b, b).sum(axis=(1, 3))
    return total / real.reshape(py // b, b, px // b, b).sum(axis=(1, 3))
