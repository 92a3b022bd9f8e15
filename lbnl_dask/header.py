"""The metadata of a Dectris FileWriter / NXmx master, read into a :class:`DetectorMeta`.

Lengths are converted to metres from each dataset's ``units``, the wavelength to ångström;
items a master does not carry are None. Every path comes from :mod:`lbnl_dask.layout`.
"""

from __future__ import annotations

import contextlib
import os
import re

import h5py
import numpy as np

from .errors import InputFileError, MetadataError, NotEigerError, os_reason
from .layout import (
    CUTOFFS,
    DATA,
    DATA_GROUP,
    DET,
    DISTANCES,
    ENTRY,
    INSTRUMENT,
    MASTER_SUFFIX,
    MODULE_PREFIX,
    OMEGA_GROUPS,
    OMEGA_INCREMENTS,
    PIXEL_MASKS,
    SATURATIONS,
    SPEC,
    TRANSFORM_ATTR,
    WAVELENGTHS,
    detector_groups,
    on_detector,
    reach,
)
from .meta import ANGLE, DetectorMeta, rescaled, rewritten


def open_master(master: str) -> h5py.File:
    """The master opened read-only; InputFileError if missing, a directory or not HDF5."""
    if not os.path.exists(master):
        raise InputFileError(f"{master}: no such file")
    if os.path.isdir(master):
        raise InputFileError(f"{master}: is a directory, not an HDF5 master file")
    if not os.path.isfile(master):  # opening a FIFO would wait for a writer forever
        raise InputFileError(f"{master}: not a regular file (a pipe or device)")
    try:
        hdf5 = h5py.is_hdf5(master)
    except OSError as e:  # (unreadable: permissions)
        raise InputFileError(f"{master}: cannot read it ({os_reason(e)})") from None
    if not hdf5:
        raise InputFileError(f"{master}: not an HDF5 file")
    try:
        return MasterFile(master)
    except OSError as e:
        raise InputFileError(f"{master}: cannot open as HDF5 ({e})") from e


class MasterFile(h5py.File):
    """A master opened read-only, whose Dectris detector paths (``layout.DET`` and the paths
    in it) lead to its NXdetector group wherever NXmx named it: ``detector`` is that group's
    path (DET itself where it exists, or where the master has no single NXdetector; the
    groups found are in ``detector_groups``)."""

    detector = DET

    def __init__(self, name):
        super().__init__(name, "r")
        self.detector_groups = detector_groups(self)
        if len(self.detector_groups) == 1:
            self.detector = self.detector_groups[0]

    def _path(self, name):
        return on_detector(name, self.detector) if isinstance(name, str) else name

    def __getitem__(self, name):
        with self._links(name):
            return super().__getitem__(self._path(name))

    def __contains__(self, name):
        with self._links(name):
            return super().__contains__(self._path(name))

    def get(self, name, default=None, getclass=False, getlink=False):
        with self._links(name):
            return super().get(self._path(name), default, getclass, getlink)

    @contextlib.contextmanager
    def _links(self, name):
        """HDF5's failure to follow a link (a soft link to itself: "too many links") as a
        MetadataError naming the master and the path, not a RuntimeError."""
        try:
            yield
        except RuntimeError as e:
            raise MetadataError(f"{self.filename}: {name}: a link that cannot be followed "
                                f"({e})") from None  # fmt: skip


def text_value(v) -> str:
    """A dataset's text (bytes or str, the first element of an array), without NUL padding.
    Bytes are UTF-8 (a fixed-length attribute's µm, Å), else Latin-1 (a lone b'\\xb5')."""
    if isinstance(v, np.ndarray):
        v = v.reshape(-1)[0] if v.size else b""
    if isinstance(v, (bytes, np.bytes_)):
        try:
            return bytes(v).decode("utf-8").rstrip("\x00")
        except UnicodeDecodeError:
            return bytes(v).decode("latin-1").rstrip("\x00")
    return str(v)


_TO_METRES = {"m": 1.0, "mm": 1e-3, "um": 1e-6, "µm": 1e-6, "cm": 1e-2, "nm": 1e-9,
              "meter": 1.0, "metre": 1.0, "millimeter": 1e-3, "millimetre": 1e-3,
              "micrometer": 1e-6, "micrometre": 1e-6, "micron": 1e-6}  # fmt: skip
#: Ångström per unit of a wavelength; an energy (eV, keV) is converted by hc.
_TO_ANGSTROM = {"a": 1.0, "å": 1.0, "angstrom": 1.0, "ångström": 1.0, "nm": 10.0,
                "nanometer": 10.0, "nanometre": 10.0, "pm": 0.01, "m": 1e10}  # fmt: skip
_HC = 12398.419843320026  # eV Å
#: Degrees per unit of an angle.
_TO_DEGREES = {"deg": 1.0, "degree": 1.0, "mdeg": 1e-3, "rad": 180.0 / np.pi,
               "radian": 180.0 / np.pi, "mrad": 0.18 / np.pi}  # fmt: skip


def unit_name(d: h5py.Dataset) -> str:
    """A dataset's ``units``, as the tables here spell them: trimmed, lower case (a Greek mu
    is the micro sign), a plural's s dropped ("Millimeters" is "millimeter"); "" if none."""
    u = text_value(d.attrs.get("units", b"")).strip().lower().replace("\u03bc", "µ")
    return u[:-1] if len(u) > 3 and u.endswith("s") else u


def _unit_factor(d: h5py.Dataset, table: dict, default: float | None) -> float | None:
    u = unit_name(d)
    return table.get(u, default) if u else default


def scalar_value(f: h5py.File, path: str, kind=float, length=False):
    """A scalar dataset's value (first element of a 1-element array), or None if absent.
    With ``length`` the value is converted to metres from its ``units`` attribute. A number
    stored as text (or anything but a number) raises MetadataError: the output would carry
    it rewritten as text (a pixel size "binned" into b'0.0000750.000075')."""
    d = f.get(path)
    if not isinstance(d, h5py.Dataset) or d.size == 0:
        return None
    v = d[()]
    if kind is str:
        return text_value(v)
    if d.dtype.kind not in "iuf" + ("b" if kind is int else ""):
        raise MetadataError(f"{f.filename}: {path} is stored as {d.dtype} ({text_value(v)!r}), "
                            "not as a number")  # fmt: skip
    v = np.asarray(v).reshape(-1)[0]
    if kind is int and not float(v).is_integer():
        raise MetadataError(f"{f.filename}: {path} is {v}, not a whole number")
    v = kind(v)
    if length:
        v = v * _unit_factor(d, _TO_METRES, 1.0)
    return v


def length_units(d: h5py.Dataset) -> float | None:
    """Metres per unit of a dataset whose ``units`` attribute names a length (mm, um...),
    else None (pixels, or no units)."""
    return _unit_factor(d, _TO_METRES, None)


def _angstrom(v: float, units: str) -> float:
    """A wavelength in ``units`` (a length, or a photon energy in eV or keV) in ångström;
    without units (or units not known here), as it is."""
    if units in ("ev", "kev"):
        return _HC / (v * (1000.0 if units == "kev" else 1.0)) if v else v
    return v * _TO_ANGSTROM.get(units, 1.0)


def angle_degrees(d: h5py.Dataset) -> float:
    """Degrees per unit of an angle dataset (``units`` deg, mdeg, rad...; none: degrees)."""
    return _unit_factor(d, _TO_DEGREES, 1.0)


def angle_value(f: h5py.File, path: str) -> float | None:
    """:func:`scalar_value` of an angle, in degrees."""
    v = scalar_value(f, path)
    return None if v is None else v * angle_degrees(f[path])


def _beam_centre(f: h5py.File, axis: str) -> float | None:
    """``beam_center_x``/``_y`` in pixels. NXmx lets it be a length (``units`` mm, m...): it
    is divided by the pixel size then; a length without a pixel size is no position."""
    path = f"{DET}/beam_center_{axis}"
    v = scalar_value(f, path)
    metres = length_units(f[path]) if v is not None else None
    if metres is None:
        return v
    pixel = scalar_value(f, f"{DET}/{axis}_pixel_size", length=True)
    return v * metres / pixel if pixel else None


def _first(f, paths, **kw):
    for p in paths:
        v = scalar_value(f, p, **kw)
        if v is not None:
            return v, p
    return None, None


def _other_saturation(f, used) -> list[str]:
    """A note when the second place a master keeps its saturation (:data:`SATURATIONS`)
    holds another value than the one used, or one that cannot be right: the output writes
    its own in both places, so the odd one would otherwise go without a word."""
    if used is None:
        return []
    for path in SATURATIONS[1:]:
        try:
            v = scalar_value(f, path, kind=float)
        except MetadataError:
            d = f.get(path)
            v = text_value(d[()]) if isinstance(d, h5py.Dataset) else "unreadable"
        if v is not None and v != used:
            v = f"{v:g}" if isinstance(v, float) else repr(v)
            return [f"{path} is {v}, not {SATURATIONS[0]}'s {used}: {used} is used (the "
                    "output writes its own value in both)"]  # fmt: skip
    return []


def _refuse_data_file(f: h5py.File, master: str) -> None:
    """A data file given as the master: it holds the frames but no instrument; name the
    master it probably belongs to."""
    if INSTRUMENT in f or not isinstance(f.get(DATA), h5py.Dataset):
        return
    m = re.match(r"^(.*)_data_\d{6}\.h5$", os.path.basename(master))
    if m is None:
        hint = "give its *_master.h5"
    else:
        guess = os.path.join(os.path.dirname(master), m.group(1) + MASTER_SUFFIX)
        hint = f"give its master, probably {guess}" + (
            "" if os.path.exists(guess) else " (not found beside it)"
        )
    raise NotEigerError(f"{master}: a data file (frames but no {INSTRUMENT}), not a master: {hint}")


def read_meta(master) -> DetectorMeta:
    """Parse the metadata of a FileWriter or NXmx master into a :class:`DetectorMeta`.

    Raises InputFileError (missing / directory / not HDF5), NotEigerError (no /entry/data,
    or a data file given as the master) or MetadataError (a field the output needs that is
    not a number or cannot be right); values that are odd but usable go to ``meta.warnings``.
    """
    master = os.fspath(master)
    with open_master(master) as f:
        if not isinstance(f.get(DATA_GROUP), h5py.Group):
            raise NotEigerError(f"{master}: no {DATA_GROUP} group: not an Eiger/NXmx master")
        _refuse_data_file(f, master)
        if len(f.detector_groups) > 1:
            raise MetadataError(
                f"{master}: several NXdetector groups ({', '.join(f.detector_groups)}) and none "
                f"at {DET}: which one describes the frames is not known"
            )
        meta = _read_fields(f, master)
    check_meta(meta)
    return meta


def _read_fields(f: h5py.File, master: str) -> DetectorMeta:
    ntrigger = scalar_value(f, SPEC + "/ntrigger", int)
    wavelength, wpath = _first(f, WAVELENGTHS)
    if wavelength is not None:
        wavelength = _angstrom(wavelength, unit_name(f[wpath]))
    omega, omega_inc = _read_omega(f)
    nimages = scalar_value(f, SPEC + "/nimages", int)
    # the detector's count cutoff (XDS' OVERLOAD), else the lowest of its modules' (one value
    # for the whole detector: a higher one would take some modules' overloads as counts)
    detector_cutoff, cutoffs = scalar_value(f, CUTOFFS[0], int), _module_cutoffs(f)
    bad = sorted({c for c in cutoffs if c <= 0})  # (the detector's own is refused: check_meta)
    cutoffs = [c for c in cutoffs if c > 0]
    entry = f.get(ENTRY)
    transform = entry.attrs.get(TRANSFORM_ATTR) if isinstance(entry, h5py.Group) else None
    meta = DetectorMeta(
        master=master,
        nimages=nimages or 0,
        ntrigger=1 if ntrigger is None else ntrigger,
        nx=scalar_value(f, SPEC + "/x_pixels_in_detector", int),
        ny=scalar_value(f, SPEC + "/y_pixels_in_detector", int),
        x_pixel_size=scalar_value(f, DET + "/x_pixel_size", length=True),
        y_pixel_size=scalar_value(f, DET + "/y_pixel_size", length=True),
        beam_center_x=_beam_centre(f, "x"),
        beam_center_y=_beam_centre(f, "y"),
        detector_distance=_first(f, DISTANCES, length=True)[0],
        sensor_thickness=scalar_value(f, DET + "/sensor_thickness", length=True),
        wavelength=wavelength,
        count_time=scalar_value(f, DET + "/count_time"),
        frame_time=scalar_value(f, DET + "/frame_time"),
        omega=omega,
        omega_increment=omega_inc,
        saturation_value=_first(f, SATURATIONS, kind=int)[0],
        countrate_cutoff=detector_cutoff
        if detector_cutoff is not None
        else min(cutoffs, default=None),
        bit_depth_image=scalar_value(f, DET + "/bit_depth_image", int),
        bit_depth_readout=scalar_value(f, DET + "/bit_depth_readout", int),
        description=scalar_value(f, DET + "/description", str),
        detector_number=scalar_value(f, DET + "/detector_number", str),
        eiger_fw_version=scalar_value(f, SPEC + "/eiger_fw_version", str),
        software_version=scalar_value(f, SPEC + "/software_version", str),
        pixel_mask_path=next(
            (on_detector(p, f.detector) for p in PIXEL_MASKS if isinstance(f.get(p), h5py.Dataset)),
            None,
        ),  # fmt: skip
        pixel_transform=None if transform is None else text_value(transform),
    )
    if f.detector != DET:
        meta.warnings.append(
            f"the detector group is {f.detector}, not {DET}: its values are read there and "
            "the output keeps its name (DIALS finds it by its NX_class; XDS' Neggia plugin "
            f"reads only {DET})"
        )
    if nimages == 0:
        meta.warnings.append("nimages is 0 in the master: every frame of the data files is used")
    meta.warnings += _other_saturation(f, meta.saturation_value)
    if bad:
        meta.warnings.append(f"countrate_correction_count_cutoff {', '.join(map(str, bad))} in "
                             "detectorModule group(s): no cutoff can be that; ignored")  # fmt: skip
    if detector_cutoff is None and len(set(cutoffs)) > 1:
        meta.warnings.append(f"the modules' countrate_correction_count_cutoff differ "
                             f"({min(cutoffs)} to {max(cutoffs)}) and the detector gives none: "
                             f"counts from the lowest, {min(cutoffs)}, on are taken as "
                             "saturated everywhere")  # fmt: skip
    low = min(cutoffs, default=None)
    if detector_cutoff is not None and low is not None and low < detector_cutoff:
        span = "" if len(set(cutoffs)) == 1 else f" to {max(cutoffs)}"
        meta.warnings.append(
            f"the modules' countrate_correction_count_cutoff ({low}{span}) is "
            f"below the detector's ({detector_cutoff}): the detector's is used, "
            f"as XDS' OVERLOAD; counts from {low} to {detector_cutoff - 1} are kept as "
            "counts, and the modules' cutoffs are written as the output's saturation"
        )
    _check_rewritten(f, meta)  # (first: text in them is an error)
    _check_summed_fields(f, meta)
    _check_scalars(f, meta, wpath)
    for axis in "xy":  # a length the pixel size would turn into pixels, without one
        d = f.get(f"{DET}/beam_center_{axis}")
        if getattr(meta, f"beam_center_{axis}") is None and isinstance(d, h5py.Dataset):
            if d.size and length_units(d) is not None:
                meta.warnings.append(
                    f"beam_center_{axis} is a length ({text_value(d.attrs['units'])}) and there "
                    f"is no {axis}_pixel_size: readers cannot place it in pixels (copied as it is)"
                )
    return meta


def _module_cutoffs(f: h5py.File) -> list:
    """Each ``detectorModule_NNN``'s countrate_correction_count_cutoff that is a number."""
    spec = f.get(SPEC)
    if not isinstance(spec, h5py.Group):
        return []
    name = CUTOFFS[1].rsplit("/", 1)[1]
    values = (
        scalar_value(f, f"{SPEC}/{m}/{name}", int) for m in spec if m.startswith(MODULE_PREFIX)
    )
    return [v for v in values if v is not None]


def _datasets(f: h5py.File, keep) -> list[tuple[str, h5py.Dataset]]:
    """(path, dataset) of the master's datasets whose path (``/...``) ``keep`` takes, in one
    walk over the names: ``visititems`` opens every object (60-80 ms a pass on a 9M
    master's 1248), the names alone take ~10 ms."""
    names = []
    f.visit(lambda n: names.append(n) if keep("/" + n) else None)
    found = []
    for n in names:
        obj = f.get(n)
        if isinstance(obj, h5py.Dataset):
            found.append(("/" + n, obj))
    return found


def _check_rewritten(f: h5py.File, meta: DetectorMeta) -> None:
    """MetadataError for the first dataset of the master whose output value is computed
    from its own (:func:`lbnl_dask.meta.rescaled`: pixel sizes and directions, beam centre,
    times, the axes and their increments, module origins and sizes) but that is not
    stored as a number: multiplied, text would be written repeated; a number it cannot
    be is refused here, before anything is written. A module's origin or size that cannot
    be a place on the detector goes to ``meta.warnings`` (binned as it is)."""
    for path, d in _datasets(f, rescaled):
        if d.dtype.kind not in "iuf":
            raise MetadataError(f"{f.filename}: {path} is stored as {d.dtype} "
                                f"({text_value(d[()])!r}), not as a number")  # fmt: skip
        leaf = path.rsplit("/", 1)[-1]
        if leaf in ("data_origin", "data_size") and d.size:
            if np.min(d[()]) < (0 if leaf == "data_origin" else 1):
                meta.warnings.append(f"{path.lstrip('/')} is {np.asarray(d[()]).tolist()} in "
                                     "the master: binned as it is")  # fmt: skip


#: Fields of one value each (a detector's geometry, its times): several values, or a length
#: in units not known here, go to ``meta.warnings`` (the first value is used, copied as it is).
_SCALARS = {DET + "/x_pixel_size": "m", DET + "/y_pixel_size": "m",
            DET + "/beam_center_x": "px", DET + "/beam_center_y": "px",
            DET + "/detector_distance": "m", DET + "/distance": "m",
            DET + "/sensor_thickness": "m", DET + "/count_time": "s",
            DET + "/frame_time": "s"}  # fmt: skip
#: The units read for each kind of :data:`_SCALARS` field (a beam centre: a length or pixels).
_KNOWN_UNITS = {"m": _TO_METRES, "Å": {*_TO_ANGSTROM, "ev", "kev"},
                "px": {*_TO_METRES, "pixel", "px"}, "s": {"s", "sec", "second"}}  # fmt: skip
#: The longest time a frame can take (s): beyond, a warning (a value in other units?).
MAX_FRAME_TIME = 86400.0
#: The most frames a detector sums into one (Dectris' nframes_sum): beyond, a warning.
MAX_NFRAMES_SUM = 10**6


def _check_scalars(f: h5py.File, meta: DetectorMeta, wavelength_path: str | None) -> None:
    """Notes (``meta.warnings``) on single values that cannot be right but are copied: a
    geometry field or time holding several values, a length or wavelength in units not
    known here (read as metres, ångström), a frame time beyond a day, an ``nframes_sum``
    that is not a whole number of frames, and a beam centre far off the detector."""
    paths = dict(_SCALARS)
    if wavelength_path is not None:
        paths[wavelength_path] = "Å"
    for path, unit in paths.items():
        d = f.get(path)
        if not isinstance(d, h5py.Dataset) or d.dtype.kind not in "iuf":
            continue
        name = path.rsplit("/", 1)[1]
        if d.size > 1:
            meta.warnings.append(f"{name} holds {d.size} values in the master, not one: the "
                                 "first is read, all are copied as they are")  # fmt: skip
        u = unit_name(d)
        if u and u not in _KNOWN_UNITS[unit]:
            meta.warnings.append(f"{name} is in units {text_value(d.attrs['units'])!r}, not "
                                 f"known here: read as {unit}")  # fmt: skip
    for name in ("count_time", "frame_time"):
        v = getattr(meta, name)
        if v is not None and _finite(v) and v > MAX_FRAME_TIME:
            meta.warnings.append(f"{name} is {v:g} s in the master, longer than a day: copied "
                                 "(x the sum) as it is")  # fmt: skip
    d = f.get(f"{SPEC}/nframes_sum")
    if isinstance(d, h5py.Dataset) and d.size and d.dtype.kind in "iuf":
        v = np.asarray(d[()], float).reshape(-1)
        odd = v[np.isfinite(v) & (v >= 1) & ((v != np.floor(v)) | (v > MAX_NFRAMES_SUM))]
        if odd.size:
            meta.warnings.append(f"nframes_sum is {odd[0]:g} in the master, not a whole number "
                                 f"of frames up to {MAX_NFRAMES_SUM:g}: copied (x the sum) as "
                                 "it is")  # fmt: skip
    for axis, n in (("x", meta.nx), ("y", meta.ny)):
        v = getattr(meta, f"beam_center_{axis}")
        if v is not None and n and _finite(v) and not -n <= v <= 2 * n:
            meta.warnings.append(f"beam_center_{axis} is {v:g} pixels in the master, more than "
                                 f"a detector's width ({n}) off it: copied (/ the bin) as it "
                                 "is")  # fmt: skip


#: Times the output multiplies by the sum (-s) that DetectorMeta does not otherwise read.
SUMMED_TIMES = ("frame_count_time", "frame_period")


def _check_summed_fields(f: h5py.File, meta: DetectorMeta) -> None:
    """The Dectris fields the output multiplies by the sum: a number stored as text raises
    MetadataError (it would be written repeated: b'0.00990.0099'); a time that is not
    positive, or an ``nframes_sum`` below 1 (taken as 1 then), goes to ``meta.warnings``."""
    for name in SUMMED_TIMES:
        v = scalar_value(f, f"{SPEC}/{name}")
        if v is not None and not (np.isfinite(v) and v > 0):
            meta.warnings.append(f"{name} is {v} in the master: copied (x the sum) as it is")
    low = _lowest(f, f"{SPEC}/nframes_sum")
    if not low >= 1:  # (NaN too)
        shown = f"{low:g}" if f[f"{SPEC}/nframes_sum"].size == 1 else f"{low:g} in places"
        meta.warnings.append(f"nframes_sum is {shown} in the master: taken as 1 (the output's "
                             "is the frames summed into each output frame)")  # fmt: skip
    for path, least in ((f"{SPEC}/number_of_excluded_pixels", 0),
                        (f"{DET}/bit_depth_readout", 1)):  # fmt: skip
        low = _lowest(f, path)
        if not low >= least:
            meta.warnings.append(f"{path.rsplit('/', 1)[1]} is {low:g} in the master: copied "
                                 "as it is")  # fmt: skip


def _lowest(f: h5py.File, path: str) -> float:
    """The least value of a numeric dataset (NaN if it holds one); +inf where there is none
    (absent, empty, text: :func:`_check_rewritten` and :func:`scalar_value` judge those)."""
    d = f.get(path)
    if not isinstance(d, h5py.Dataset) or d.size == 0 or d.dtype.kind not in "iuf":
        return np.inf
    return float(np.min(d[()]))  # (NaN where there is one)


#: Fields the output rewrites or counts with: a value that cannot be right is an error.
_MUST_BE_POSITIVE = ("x_pixel_size", "y_pixel_size", "saturation_value", "countrate_cutoff",
                     "ntrigger", "nx", "ny")  # fmt: skip
#: A detector pixel's side is within these (m); outside, most likely a length in other units
#: without its units attribute (0.075 for 75 um in mm): a warning, copied (x b) as it is.
PIXEL_SIZE_RANGE = (1e-6, 5e-3)
#: The farthest sample-detector distance taken as it is (m): beyond, a warning.
MAX_DISTANCE = 5.0
#: Fields XDS' plugins need that the output can only copy: a master without one is warned
#: about (the output has none either, and lbnl-validate fails it).
_NEEDED = ("x_pixel_size", "y_pixel_size", "beam_center_x", "beam_center_y", "detector_distance",
           "wavelength")  # fmt: skip
#: Fields copied (or scaled) into the output: an odd value is a warning, copied as it is.
_SHOULD_BE_POSITIVE = ("detector_distance", "wavelength", "count_time", "frame_time",
                       "sensor_thickness")  # fmt: skip


def _finite(v) -> bool:
    """Whether a number is finite: also a Python int beyond float64 (a float 1e40 stored for
    an integer field), which numpy's isfinite cannot take."""
    try:
        return bool(np.isfinite(float(v)))
    except (OverflowError, TypeError, ValueError):
        return False


def check_meta(meta: DetectorMeta, where: str = "the master") -> None:
    """Raise MetadataError for a value the output cannot use (a negative or non-finite pixel
    size or saturation value, a negative frame count...); note odd but usable ones (a NaN
    beam centre, a negative distance, a length in other units) and missing ones the output
    needs in ``meta.warnings``, saying they are from ``where``."""
    if meta.nimages < 0:
        raise MetadataError(f"{meta.master}: nimages is {meta.nimages}, a negative frame count")
    for name in _MUST_BE_POSITIVE:
        v = getattr(meta, name)
        if v is not None and not (_finite(v) and v > 0):
            raise MetadataError(f"{meta.master}: {name} is {v}: it must be a positive number")
    cut, sat = meta.countrate_cutoff, meta.saturation_value
    if cut is not None and sat is not None and cut != sat:
        meta.warnings.append(f"countrate_correction_count_cutoff {cut} and saturation_value "
                             f"{sat} differ in {where}: counts from {cut} on are taken as "
                             "saturated (the cutoff)")  # fmt: skip
    lo, hi = PIXEL_SIZE_RANGE
    for name in ("x_pixel_size", "y_pixel_size"):
        v = getattr(meta, name)
        if v is not None and not lo <= v <= hi:
            meta.warnings.append(f"{name} is {v:g} m in {where}, not a detector pixel's "
                                 f"({lo * 1e6:g} um to {hi * 1e3:g} mm; a length in other "
                                 "units without its units?): copied as it is")  # fmt: skip
    for name in ("beam_center_x", "beam_center_y", "omega_increment"):
        v = getattr(meta, name)
        if v is not None and not np.isfinite(v):
            meta.warnings.append(f"{name} is {v} in {where}: copied as it is")
    for name in _SHOULD_BE_POSITIVE:
        v = getattr(meta, name)
        if v is not None and not (np.isfinite(v) and v > 0):
            meta.warnings.append(f"{name} is {v} in {where}: copied as it is")
    d = meta.detector_distance
    if d is not None and np.isfinite(d) and d > MAX_DISTANCE:
        meta.warnings.append(f"detector_distance is {d:g} m in {where}, farther than any "
                             f"diffraction detector's ({MAX_DISTANCE:g} m; a length in mm?): "
                             "copied as it is")  # fmt: skip
    for name in _NEEDED:
        if getattr(meta, name) is None and not any(w.startswith(name + " ") for w in meta.warnings):
            meta.warnings.append(f"no {name} in {where}: the output has none either (XDS' "
                                 "plugins need it; lbnl-validate fails such a master)")  # fmt: skip


def scan_axis(f: h5py.File, n: int, short: bool = False):
    """(axis, start angles (n,), end angles (n,) or None, group) of a master's rotation: the
    goniometer axis (omega, phi, chi, kappa) with a value per image that changes (for one
    image, an increment), in the places :func:`_read_omega` looks (Dectris'
    sample/goniometer, NXmx's sample/transformations, then entry/data); an axis with more
    values than images gives its first n. (None, None, None, sample/goniometer) if none
    moves. With ``short``, failing that, an axis with fewer values than images that moves
    (its values as they are: a master cut short)."""
    found = _moving_axis(f, n, n)
    if found[0] is None and short and n > 2:
        found = _moving_axis(f, n, 2)
    return found


def _moving_axis(f: h5py.File, n: int, least: int):
    from .minicbf import AXES

    for group in OMEGA_GROUPS:
        for axis in AXES:
            d = f.get(f"{group}/{axis}")
            if (
                not isinstance(d, h5py.Dataset)
                or d.dtype.kind not in "iuf"
                or d.size < least
                or n < 1
            ):
                continue
            inc = scalar_value(f, f"{group}/{axis}_increment") or 0
            values = np.asarray(d[()], float).reshape(-1)[:n] * angle_degrees(d)
            finite = values[np.isfinite(values)]
            if (finite.size > 1 and np.ptp(finite) > 0) if n > 1 else inc != 0:
                e = f.get(f"{group}/{axis}_end")
                ends = (np.asarray(e[()], float).reshape(-1)[:n] * angle_degrees(e)
                        if isinstance(e, h5py.Dataset) and e.size >= least else None)  # fmt: skip
                return axis, values, ends, group
    return None, None, None, OMEGA_GROUPS[0]


def copy_notes(f: h5py.File, total: int, frame_shape: tuple, binned: bool) -> list[str]:
    """Notes on master values the output copies as they are, in one walk: a per-frame axis
    (omega, phi... and their ``_end``, in any group) with fewer values than the ``total``
    images (not one per output frame) or with NaN values (unknown angles); with ``binned``,
    a flatfield (not a module's own) whose shape is not the frames' (ny, nx), copied
    unbinned beside binned frames. Each note once."""
    notes = []

    def keep(path: str) -> bool:
        leaf = path.rsplit("/", 1)[-1]
        m = ANGLE.match(leaf)
        return (m is not None and m.group(2) in (None, "_end")) or (
            binned and leaf == "flatfield" and f"/{MODULE_PREFIX}" not in path
        )

    for path, d in _datasets(f, keep):
        leaf = path.rsplit("/", 1)[-1]
        if leaf == "flatfield":
            if d.shape != tuple(frame_shape):
                notes.append(f"{path.lstrip('/')} is {d.shape}, not the frames' "
                             f"{tuple(frame_shape)}: copied as it is, not binned")  # fmt: skip
            continue
        if d.ndim != 1 or d.dtype.kind not in "iuf":
            continue
        axis = ANGLE.match(leaf).group(1)
        what = "values" if axis in ("translation", "sam_x", "sam_y", "sam_z") else "angles"
        if 1 < d.shape[0] < total:
            notes.append(f"{leaf} holds {d.shape[0]} {what} for {total} images: copied as it "
                         "is, not one per output frame")  # fmt: skip
        nan = int(np.count_nonzero(np.isnan(d[()]))) if d.dtype.kind == "f" else 0
        if nan:
            notes.append(f"{leaf} holds {nan} NaN {what if nan > 1 else what[:-1]} (unknown): "
                         "copied as NaN")  # fmt: skip
    return list(dict.fromkeys(notes))


def link_notes(f: h5py.File) -> list[str]:
    """Notes on the master's links to other files (NXmx' meta file: pixel mask, flatfield,
    bit depths) that cannot be followed (the file, or the path in it, missing), one per
    file: those whose values the output may rewrite are not copied (a link would give the
    unbinned values once the file was there; the output writes its own where it has them),
    the others are kept as links. Where no pixel mask could be read at all, the invalid
    pixels are only those the frames mark. Links to frames (``/entry/data``) are checked
    elsewhere."""
    lost = {}
    frames = DATA_GROUP.lstrip("/")

    def check(name, link):
        if (isinstance(link, h5py.ExternalLink) and name != frames
                and not name.startswith(frames + "/") and reach(f, name) is None):  # fmt: skip
            lost.setdefault(link.filename, []).append("/" + name)

    f.visititems_links(check)
    no_mask = not any(isinstance(reach(f, p), h5py.Dataset) for p in PIXEL_MASKS)
    masks = [on_detector(p, getattr(f, "detector", DET)) for p in PIXEL_MASKS]
    notes = []
    for filename, paths in lost.items():
        dropped = [p for p in paths if rewritten(p)]
        kept = [p for p in paths if not rewritten(p)]
        what = []
        if dropped:
            what.append(f"{_names(dropped)} not copied (their values may change with the bin "
                        "and sum; the output writes its own where it has them)")  # fmt: skip
        if kept:
            what.append(f"{_names(kept)} kept as link(s)")
        mask = no_mask and any(m == p or m.startswith(p + "/") for p in dropped
                               for m in masks)  # fmt: skip
        notes.append(f"{len(paths)} link(s) to {filename} cannot be followed (the file, or the "
                     "path in it, is missing): " + "; ".join(what)
                     + ("; no pixel mask was read (invalid pixels are those the frames mark)"
                        if mask else ""))  # fmt: skip
    return notes


def _names(paths: list[str], most: int = 4) -> str:
    leaves = [p.rsplit("/", 1)[-1] for p in paths]
    return ", ".join(leaves[:most]) + (f" and {len(leaves) - most} more" if len(leaves) > most
                                       else "")  # fmt: skip


def _read_omega(f: h5py.File):
    """Per-frame omega start angles (deg) and the increment, from the usual places."""
    for group in OMEGA_GROUPS:
        d = f.get(group + "/omega")
        if not isinstance(d, h5py.Dataset):
            continue
        omega = np.atleast_1d(d[()]).astype(np.float64) * angle_degrees(d)
        inc = None
        for name in OMEGA_INCREMENTS:
            inc = angle_value(f, f"{group}/{name}")
            if inc is not None:
                break
        if inc is None and len(omega) > 1:
            inc = float(omega[1] - omega[0])
        return omega, inc
    return None, None
