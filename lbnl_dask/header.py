"""The metadata of a Dectris FileWriter / NXmx master, read into a :class:`DetectorMeta`.

Lengths are converted to metres from each dataset's ``units``, the wavelength to ångström;
items a master does not carry are None. Every path comes from :mod:`lbnl_dask.layout`.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from .errors import InputFileError, NotEigerError
from .layout import (
    CUTOFFS,
    DATA_GROUP,
    DET,
    DISTANCES,
    OMEGA_GROUPS,
    OMEGA_INCREMENTS,
    PIXEL_MASKS,
    SATURATIONS,
    SPEC,
    WAVELENGTHS,
)
from .meta import DetectorMeta


def open_master(master: str) -> h5py.File:
    """The master opened read-only; InputFileError if missing, a directory or not HDF5."""
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
    with open_master(master) as f:
        if not isinstance(f.get(DATA_GROUP), h5py.Group):
            raise NotEigerError(f"{master}: no {DATA_GROUP} group: not an Eiger/NXmx master")
        nimages = _scalar(f, SPEC + "/nimages", int)
        ntrigger = _scalar(f, SPEC + "/ntrigger", int) or 1
        wavelength, wpath = _first(f, WAVELENGTHS)
        if wavelength is not None and _text(f[wpath].attrs.get("units", b"")).strip() == "nm":
            wavelength *= 10.0
        omega, omega_inc = _read_omega(f)
        mask_path = next((p for p in PIXEL_MASKS if isinstance(f.get(p), h5py.Dataset)), None)
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
            detector_distance=_first(f, DISTANCES, length=True)[0],
            sensor_thickness=_scalar(f, DET + "/sensor_thickness", length=True),
            wavelength=wavelength,
            count_time=_scalar(f, DET + "/count_time"),
            frame_time=_scalar(f, DET + "/frame_time"),
            omega=omega,
            omega_increment=omega_inc,
            saturation_value=_first(f, SATURATIONS, kind=int)[0],
            countrate_cutoff=_first(f, CUTOFFS, kind=int)[0],
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
    for group in OMEGA_GROUPS:
        d = f.get(group + "/omega")
        if not isinstance(d, h5py.Dataset):
            continue
        omega = np.atleast_1d(d[()]).astype(np.float64)
        inc = None
        for name in OMEGA_INCREMENTS:
            inc = _scalar(f, f"{group}/{name}")
            if inc is not None:
                break
        if inc is None and len(omega) > 1:
            inc = float(omega[1] - omega[0])
        return omega, inc
    return None, None
