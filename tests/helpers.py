"""Helpers the tests share (imported as ``tests.helpers``; fixtures stay in conftest.py)."""

from pathlib import Path

import h5py
import numpy as np

from lbnl_dask import layout as L

DATA = Path(__file__).resolve().parent / "data"
#: The nexgen NXmx master committed with the tests (BSD-3, see data/nexgen/README.md).
NEXGEN_MASTER = DATA / "nexgen" / "xrc_209_master.h5"


def write_master(path, data_files, nimages, ntrigger=1, dset=L.DATA, extra=None):
    """A minimal FileWriter-style master linking ``data_files`` (absolute paths)."""
    with h5py.File(path, "w") as f:
        for k, df in enumerate(data_files, start=1):
            f[L.block_path(k)] = h5py.ExternalLink(str(df), dset)
        f.require_group(L.DATA_GROUP)
        s = f.create_group(L.SPEC)
        s["nimages"] = np.uint32(nimages)
        s["ntrigger"] = np.uint32(ntrigger)
        for k, v in (extra or {}).items():
            f[k] = v
    return str(path)


def eiger_from_cbf(prefix, cbf_files, frames_per_file=10):
    """An Eiger FileWriter dataset (uint32, bitshuffle-LZ4) holding the pixels of real PILATUS
    miniCBF frames (read with FabIO): -1 (module gaps) and -2 (bad pixels) become all bits
    set and pixel_mask bits 1 and 2. The master carries the frames' geometry (L-cysteine
    header values: 172 um pixels, 0.16 m, 0.6889 A, beam (730, 865) px, 0.1 deg, cutoff
    388705). Returns the master's path."""
    import fabio
    import hdf5plugin

    frames = np.stack([fabio.open(str(p)).data for p in cbf_files])
    mask = np.zeros(frames.shape[1:], np.uint32)
    mask[(frames == -1).any(axis=0)] |= 1
    mask[(frames == -2).any(axis=0)] |= 2
    data = np.where(frames < 0, np.iinfo(np.uint32).max, frames).astype(np.uint32)
    files = []
    for k, i0 in enumerate(range(0, len(data), frames_per_file), start=1):
        part = data[i0 : i0 + frames_per_file]
        path = L.data_file_name(prefix, k)
        with h5py.File(path, "w") as f:
            d = f.create_dataset(
                L.DATA,
                data=part,
                chunks=(1,) + part.shape[1:],
                **hdf5plugin.Bitshuffle(nelems=0, cname="lz4"),
            )
            d.attrs["image_nr_low"] = np.uint64(i0 + 1)
            d.attrs["image_nr_high"] = np.uint64(i0 + len(part))
        files.append(path)
    det, spec = L.DET, L.SPEC
    n = len(data)
    omega = -145.0 + 0.1 * np.arange(n)
    extra = {
        f"{det}/x_pixel_size": np.float32(172e-6),
        f"{det}/y_pixel_size": np.float32(172e-6),
        f"{det}/beam_center_x": np.float32(730.0),
        f"{det}/beam_center_y": np.float32(865.0),
        f"{det}/detector_distance": np.float32(0.16),
        f"{det}/count_time": np.float32(0.0964),
        f"{det}/frame_time": np.float32(0.1),
        f"{det}/bit_depth_image": np.uint32(32),
        "entry/instrument/beam/incident_wavelength": np.float32(0.6889),
        f"{spec}/countrate_correction_count_cutoff": np.uint32(388705),
        f"{spec}/x_pixels_in_detector": np.uint32(data.shape[2]),
        f"{spec}/y_pixels_in_detector": np.uint32(data.shape[1]),
        f"{spec}/pixel_mask": mask,
        "entry/sample/goniometer/omega": omega.astype(np.float32),
        "entry/sample/goniometer/omega_increment": np.float32(0.1),
    }
    return write_master(f"{prefix}_master.h5", files, nimages=n, extra=extra)


#: A PILATUS_1.2 header like a beamline's (values of a PILATUS 2M; a date, threshold and
#: trim-file line that no rewrite touches).
PILATUS_HEADER = [
    "Detector: PILATUS 2M, S/N 24-0107 Test",
    "2016-03-05T09:01:45.613",
    "Pixel_size 172e-6 m x 172e-6 m",
    "Silicon sensor, thickness 0.000320 m",
    "Exposure_time 0.0964000 s",
    "Exposure_period 0.1000000 s",
    "Count_cutoff 388705 counts",
    "Threshold_setting: 9000 eV",
    "Wavelength 0.68890 A",
    "Detector_distance 0.16000 m",
    "Beam_xy (61.00, 47.50) pixels",
    "Start_angle {start:.4f} deg.",
    "Angle_increment 0.1000 deg.",
    "Detector_2theta 30.0000 deg.",
    "Omega {start:.4f} deg.",
    "Omega_increment 0.1000 deg.",
    "Chi -54.7000 deg.",
    "Phi 0.0000 deg.",
    "Oscillation_axis OMEGA",
    "N_oscillations 1",
]


def write_cbf_series(prefix, frames, start=None, suffix=".cbf.gz", number0=1):
    """Write int32 ``frames`` (n, ny, nx) as miniCBF files ``<prefix>_NNNNN<suffix>`` through
    FabIO with :data:`PILATUS_HEADER` (Start_angle ``start`` + 0.1 deg per frame; by default
    -145 deg at number 1, so files written later carry on one sweep); returns the paths.
    ``.gz`` and ``.bz2`` are compressed after FabIO writes the plain file."""
    import bz2
    import gzip
    import os

    import fabio.cbfimage

    start = -145.0 + 0.1 * (number0 - 1) if start is None else start
    paths = []
    for i, frame in enumerate(np.asarray(frames, np.int32)):
        lines = [ln.format(start=start + 0.1 * i) for ln in PILATUS_HEADER]
        header = {
            "_array_data.header_convention": "PILATUS_1.2",
            "_array_data.header_contents": "\r\n".join("# " + ln for ln in lines),
        }
        plain = f"{prefix}_{number0 + i:05d}.cbf"
        fabio.cbfimage.CbfImage(data=frame, header=header).write(plain)
        path = plain + suffix.removeprefix(".cbf")
        if path != plain:
            opener = gzip.open if path.endswith(".gz") else bz2.open
            with open(plain, "rb") as src, opener(path, "wb") as dst:
                dst.write(src.read())
            os.remove(plain)
        paths.append(path)
    return paths


def cbf_frames(tiny_master, n=None):
    """The frames of a synthetic Eiger dataset as miniCBF int32: all-bits-set pixels become
    -1, and the dead pixels (count 0 in every frame) of the first module row -2."""
    from lbnl_dask import open_dataset

    raw = np.asarray(open_dataset(tiny_master).frames[:n]).astype(np.int64)
    out = np.where(raw == np.iinfo(np.uint16).max, -1, raw).astype(np.int32)
    out[:, 3, 5] = -2  # a bad pixel
    return out
