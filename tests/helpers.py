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
