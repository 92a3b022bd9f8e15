"""Synthetic Eiger rotation datasets with ground truth, for tests, demos and benchmarks.

``make_dataset(prefix, detector="eiger_4m", nframes=100)`` writes, in the Dectris
FileWriter layout, ``<prefix>_master.h5`` plus ``<prefix>_data_000001.h5 ...`` (each with
``/entry/data/data`` (n, ny, nx), chunks of one frame, bitshuffle-LZ4 by default), and
``<prefix>_reflections.csv``: the reflections that were drawn (hkl, frame centroid, x, y in
pixels, d in ångström, expected total counts).

The content (:mod:`lbnl_dask.diffraction`) behaves like diffraction: Poisson background
falling with radius from the beam centre, Bragg spots from an orthorhombic lattice rotating
about the horizontal spindle (each spot rises and falls over 2-3 frames), module gaps and
masked pixels at the invalid value (all bits set) and flagged in ``pixel_mask``, a few hot
and dead pixels.
Deterministic for a given seed: frame i depends only on (seed, i).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import glob
import os
import signal
import sys
import time
from dataclasses import dataclass

import h5py
import numpy as np

from .diffraction import REFLECTION_FIELDS, add_spots, background, geometry, masks, reflections
from .errors import LbnlDaskError, OutputError, os_reason
from .layout import (
    DATA,
    DATA_GROUP,
    DET,
    ENTRY,
    FILTERS,
    GONIOMETER,
    INSTRUMENT,
    MASTER_SUFFIX,
    MODULE_PREFIX,
    SAMPLE,
    SPEC,
    SYNTH_COMPRESSIONS,
    block_name,
    data_file_name,
    nx_group,
    write_dataset,
)


@dataclass(frozen=True)
class Detector:
    """A detector model: module grid, module size and gaps in pixels (x = fast axis)."""

    name: str
    description: str
    modules_x: int
    modules_y: int
    module_nx: int
    module_ny: int
    gap_x: int
    gap_y: int

    @property
    def nx(self) -> int:
        return self.modules_x * self.module_nx + (self.modules_x - 1) * self.gap_x

    @property
    def ny(self) -> int:
        return self.modules_y * self.module_ny + (self.modules_y - 1) * self.gap_y

    def module_origins(self):
        """(x0, y0) of every module, row by row."""
        for j in range(self.modules_y):
            for i in range(self.modules_x):
                yield i * (self.module_nx + self.gap_x), j * (self.module_ny + self.gap_y)


_E1 = dict(module_nx=1030, module_ny=514, gap_x=10, gap_y=37)
_E2 = dict(module_nx=1028, module_ny=512, gap_x=12, gap_y=38)
DETECTORS = {
    "eiger_1m": Detector("eiger_1m", "Dectris Eiger 1M", 1, 2, **_E1),
    "eiger_4m": Detector("eiger_4m", "Dectris Eiger 4M", 2, 4, **_E1),
    "eiger_9m": Detector("eiger_9m", "Dectris Eiger 9M", 3, 6, **_E1),
    "eiger_16m": Detector("eiger_16m", "Dectris Eiger 16M", 4, 8, **_E1),
    "eiger2_4m": Detector("eiger2_4m", "Dectris EIGER2 X 4M", 2, 4, **_E2),
    "eiger2_9m": Detector("eiger2_9m", "Dectris EIGER2 X 9M", 3, 6, **_E2),
    "eiger2_16m": Detector("eiger2_16m", "Dectris EIGER2 X 16M", 4, 8, **_E2),
}
# A tiny detector (2 x 2 modules of 64 x 48, gaps 4 and 6) for fast tests.
DETECTORS["tiny"] = Detector("tiny", "Synthetic tiny", 2, 2, 64, 48, 4, 6)

#: The data files' compressions (``compression=``): what the Dectris FileWriter writes, or none.
COMPRESSIONS = {name: FILTERS[name] for name in SYNTH_COMPRESSIONS}


@dataclass
class Experiment:
    """Beam, geometry and crystal of a synthetic rotation series (SI units, degrees, Å)."""

    wavelength: float = 0.9762  # Å
    distance: float | None = None  # m; None: the detector's edge sees edge_resolution
    edge_resolution: float = 2.0  # Å at the middle of the detector's nearest edge
    pixel_size: float = 75e-6  # m
    count_time: float = 0.0099  # s
    frame_time: float = 0.01  # s
    omega_start: float = 0.0  # deg
    omega_increment: float = 0.1  # deg per frame
    cell: tuple = (38.0, 47.0, 55.0)  # orthorhombic a, b, c (Å)
    mosaicity: float = 0.09  # deg, sigma of the rocking curve: spots span 2-3 frames
    spot_sigma: float = 0.9  # pixels
    mean_intensity: float = 600.0  # counts of a reflection at low resolution
    b_factor: float = 20.0  # Å^2, Wilson fall-off
    background: float = 1.0  # counts/pixel/frame at the beam centre (fine-sliced MX: ~0.1-1)
    background_floor: float = 0.1  # counts per pixel per frame far from it
    saturation: int = 12440  # countrate_correction_count_cutoff


def make_dataset(
    prefix,
    detector: str = "tiny",
    nframes: int = 20,
    frames_per_file: int = 10,
    dtype="uint16",
    compression: str = "bslz4",
    seed: int = 0,
    experiment: Experiment | None = None,
    overwrite: bool = False,
    log=None,
) -> str:
    """Write a synthetic rotation dataset and return the master's path.

    ``detector`` is a key of :data:`DETECTORS`; frames are (ny, nx) of ``dtype`` (uint16 or
    uint32). Files: ``<prefix>_master.h5``, ``<prefix>_data_NNNNNN.h5`` of
    ``frames_per_file`` frames (the last may be shorter), ``<prefix>_reflections.csv``.
    ``log``: a text stream that gets a line per data file written (batch logs), or None.
    """
    if detector not in DETECTORS:
        raise LbnlDaskError(f"unknown detector {detector!r}; choose from {', '.join(DETECTORS)}")
    if nframes < 1 or frames_per_file < 1:
        raise LbnlDaskError("nframes and frames_per_file must be at least 1")
    if int(seed) < 0:
        raise LbnlDaskError(f"the seed must be 0 or more, not {seed}")
    det = DETECTORS[detector]
    exp = experiment or (Experiment(edge_resolution=6.0) if detector == "tiny" else Experiment())
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype("uint16"), np.dtype("uint32")):
        raise LbnlDaskError(f"dtype must be uint16 or uint32, not {dtype}")
    for name in ("background", "background_floor"):
        v = getattr(exp, name)
        if not 0 <= v <= MAX_BACKGROUND:
            raise LbnlDaskError(f"{name} must be 0 to {MAX_BACKGROUND:g} counts/pixel/frame, "
                                f"not {v}")  # fmt: skip
    prefix = os.fspath(prefix)
    if not os.path.basename(prefix):
        raise OutputError(f"{prefix}: give a prefix for the files (a folder ends it), as in "
                          "data/thermo")  # fmt: skip
    master = prefix + MASTER_SUFFIX
    nfiles = -(-nframes // frames_per_file)
    data = [data_file_name(prefix, k) for k in range(1, nfiles + 1)]
    _check_free([master, prefix + "_reflections.csv"] + data, overwrite)
    from .resume import output_folder

    output_folder(os.path.dirname(os.path.abspath(prefix)))
    if overwrite:  # the earlier master first (it names the earlier files), then an
        for old in [master] + glob.glob(glob.escape(prefix) + "_data_" + "[0-9]" * 6 + ".h5"):
            if os.path.exists(old) and (old == master or old not in data):  # earlier, longer
                os.remove(old)  # dataset's files after these: not this one's

    scene = _Scene(det, exp, nframes, seed, dtype)
    t0 = time.monotonic()
    for k, path in enumerate(data):  # each file complete under its name, or not there
        i0, i1 = k * frames_per_file, min(nframes, (k + 1) * frames_per_file)
        with _written(path) as tmp:
            _write_data_file(tmp, scene, i0, i1, compression)
        _raise_if_interrupted()  # (a signal a library's callback dropped)
        if log is not None:
            print(f"lbnl-synth: wrote {os.path.basename(path)} (frames {i0 + 1}-{i1} of "
                  f"{nframes}, file {k + 1}/{nfiles}, {time.monotonic() - t0:.0f} s)",
                  file=log, flush=True)  # fmt: skip
    refl = scene.refl.copy()
    refl["counts"] = scene.expected_total
    with _written(prefix + "_reflections.csv", hdf5=False) as tmp:
        _write_reflections(tmp, refl, nframes)
    names = [os.path.basename(p) for p in data]
    with _written(master) as tmp:  # last: a master means a complete dataset
        _write_master(tmp, det, exp, scene.dist, scene.bcx, scene.bcy, nframes, frames_per_file,
                      dtype, scene.mask, compression, names)  # fmt: skip
    return master


def _raise_if_interrupted() -> None:
    from .cluster import raise_if_interrupted  # (dask: loaded once a file is written)

    raise_if_interrupted()


#: The largest background lbnl-synth draws (counts/pixel/frame; beamlines see ~0.003 to ~6).
MAX_BACKGROUND = 1e6


@contextlib.contextmanager
def _written(path: str, hdf5: bool = True):
    """:func:`lbnl_dask.writer.atomic_path`, with a file that cannot be written (a read-only
    folder, a full disk) an OutputError naming it."""
    from .writer import atomic_path

    try:
        with atomic_path(path, hdf5=hdf5) as tmp:
            yield tmp
    except OutputError:  # (a full disk: it names the file and says so already)
        raise
    except OSError as e:
        raise OutputError(f"{path}: cannot write it ({os_reason(e)})") from None


def _check_free(paths: list[str], overwrite: bool) -> None:
    if not overwrite:
        for p in paths:
            if os.path.exists(p):
                raise OutputError(f"{p}: exists (use overwrite=True / --overwrite)")


class _Scene:
    """What every frame of a synthetic dataset shares: reflections, masks, geometry,
    background; ``expected_total`` sums each reflection's expected counts as frames are drawn."""

    def __init__(self, det, exp, nframes: int, seed: int, dtype):
        self.det, self.exp, self.seed, self.dtype = det, exp, seed, dtype
        self.refl = reflections(det, exp, nframes, seed)
        self.mask, self.hot, self.dead = masks(det, seed)
        self.dist, self.bcx, self.bcy, _ = geometry(det, exp)
        self.bg = background(det, exp, self.bcx, self.bcy)
        self.expected_total = np.zeros(len(self.refl))

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` (0-based): Poisson counts of background and spots, hot and dead
        pixels, masked pixels at the invalid value; depends only on (seed, i)."""
        invalid = np.iinfo(self.dtype).max
        lam = self.bg.copy()
        add_spots(lam, self.refl, self.exp, i, self.expected_total)
        rng = np.random.default_rng([self.seed, i])
        img = rng.poisson(lam).astype(np.int64)
        img.flat[self.hot] = self.exp.saturation + rng.integers(0, 1000, len(self.hot))
        img.flat[self.dead] = 0
        img = np.minimum(img, invalid - 1).astype(self.dtype)
        img[self.mask != 0] = invalid
        return img


def _write_data_file(path: str, scene: _Scene, i0: int, i1: int, compression: str) -> None:
    from .cluster import deliver_held_signals
    from .writer import hdf5_file  # (a full disk fails in Python, not inside HDF5)

    det = scene.det
    with hdf5_file(path) as f:
        nx_group(f, ENTRY)
        nx_group(f, DATA_GROUP)
        shape, filters = (i1 - i0, det.ny, det.nx), COMPRESSIONS[compression].make(None)
        d = f.create_dataset(DATA, shape=shape, dtype=scene.dtype, chunks=(1,) + shape[1:],
                             **filters)  # fmt: skip
        d.attrs["image_nr_low"] = np.uint64(i0 + 1)
        d.attrs["image_nr_high"] = np.uint64(i1)
        for i in range(i0, i1):
            d[i - i0] = scene.frame(i)
            deliver_held_signals()  # a Ctrl-C stops here, between frames


def _write_reflections(path, refl, nframes):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([name for name, _ in _CSV_FIELDS])
        for r in refl:
            if 0.5 <= r["frame"] <= nframes + 0.5 and r["counts"] > 0:
                w.writerow(
                    [
                        int(r["h"]),
                        int(r["k"]),
                        int(r["l"]),
                        f"{r['frame']:.3f}",
                        f"{r['x']:.3f}",
                        f"{r['y']:.3f}",
                        f"{r['d']:.4f}",
                        f"{r['counts']:.2f}",
                    ]
                )


#: Columns of ``*_reflections.csv`` (the reflections' fields but the angle).
_CSV_FIELDS = [f for f in REFLECTION_FIELDS if f[0] != "phi"]


def read_reflections(path) -> np.ndarray:
    """Read a ``*_reflections.csv`` ground-truth table as a structured array."""
    return np.loadtxt(path, delimiter=",", skiprows=1, dtype=_CSV_FIELDS, ndmin=1)


def _write_master(
    master, det, exp, dist, bcx, bcy, nframes, frames_per_file, dtype, mask, compression, data_files
):
    from .writer import hdf5_file

    with hdf5_file(master) as f:
        nx_group(f, ENTRY)
        data = nx_group(f, DATA_GROUP)
        for k, name in enumerate(data_files, start=1):
            data[block_name(k)] = h5py.ExternalLink(name, DATA)
        inst = nx_group(f, INSTRUMENT)
        beam = nx_group(inst, "beam")
        write_dataset(beam, "incident_wavelength", exp.wavelength, "angstrom", np.float32)
        mono = nx_group(inst, "monochromator")
        write_dataset(mono, "wavelength", exp.wavelength, "angstrom", np.float32)
        det_g = nx_group(f, DET)
        bits = 8 * dtype.itemsize
        write_dataset(det_g, "description", det.description)
        write_dataset(det_g, "detector_number", "SYNTH-0001")
        write_dataset(det_g, "beam_center_x", bcx, "pixel", np.float32)
        write_dataset(det_g, "beam_center_y", bcy, "pixel", np.float32)
        write_dataset(det_g, "bit_depth_image", bits, None, np.uint32)
        write_dataset(det_g, "bit_depth_readout", 12 if bits == 16 else 16, None, np.uint32)
        write_dataset(det_g, "count_time", exp.count_time, "s", np.float32)
        write_dataset(det_g, "frame_time", exp.frame_time, "s", np.float32)
        write_dataset(det_g, "detector_distance", dist, "m", np.float32)
        write_dataset(det_g, "x_pixel_size", exp.pixel_size, "m", np.float32)
        write_dataset(det_g, "y_pixel_size", exp.pixel_size, "m", np.float32)
        write_dataset(det_g, "sensor_material", "Si")
        write_dataset(det_g, "sensor_thickness", 450e-6, "m", np.float32)
        write_dataset(det_g, "countrate_correction_applied", 1, None, np.int32)
        write_dataset(det_g, "pixel_mask_applied", 1, None, np.int32)
        write_dataset(det_g, "saturation_value", exp.saturation, None, np.uint32)
        gonio = nx_group(det_g, "goniometer")
        for name in ("two_theta", "two_theta_end"):
            write_dataset(gonio, name, [0.0], "degree", np.float32)
        write_dataset(gonio, "two_theta_range_average", 0.0, "degree", np.float32)
        ds = nx_group(f, SPEC)
        write_dataset(ds, "nimages", nframes, None, np.uint32)
        write_dataset(ds, "ntrigger", 1, None, np.uint32)
        write_dataset(ds, "x_pixels_in_detector", det.nx, None, np.uint32)
        write_dataset(ds, "y_pixels_in_detector", det.ny, None, np.uint32)
        write_dataset(ds, "countrate_correction_count_cutoff", exp.saturation, None, np.uint32)
        write_dataset(ds, "saturation_value", exp.saturation, None, np.uint32)
        write_dataset(ds, "eiger_fw_version", "release-2022.1.2 (synthetic)")
        write_dataset(ds, "software_version", "1.8.0")
        write_dataset(ds, "compression", compression)
        write_dataset(ds, "nframes_sum", 1, None, np.uint32)
        write_dataset(ds, "frame_count_time", exp.count_time, "s", np.float32)
        write_dataset(ds, "photon_energy", 12398.42 / exp.wavelength, "eV", np.float32)
        ds.create_dataset("pixel_mask", data=mask)  # uint32, not chunked, not filtered
        for m, (x0, y0) in enumerate(det.module_origins()):
            mg = ds.create_group(f"{MODULE_PREFIX}{m:03d}")
            write_dataset(mg, "data_origin", [x0, y0], None, np.int32)
            write_dataset(mg, "data_size", [det.module_nx, det.module_ny], None, np.uint32)
            write_dataset(mg, "countrate_correction_count_cutoff", exp.saturation, None, np.uint32)
        _write_goniometer(f, exp, nframes)


def _write_goniometer(f, exp: Experiment, nframes: int):
    """The sample goniometer: omega per frame (deg), chi, kappa, phi at 0."""
    nx_group(f, SAMPLE)
    sgon = nx_group(f, GONIOMETER)
    omega = exp.omega_start + exp.omega_increment * np.arange(nframes)
    write_dataset(sgon, "omega", omega, "degree", np.float32)
    write_dataset(sgon, "omega_end", omega + exp.omega_increment, "degree", np.float32)
    write_dataset(sgon, "omega_increment", exp.omega_increment, "degree", np.float32)
    write_dataset(sgon, "omega_start", exp.omega_start, "degree", np.float32)
    write_dataset(sgon, "omega_range_average", exp.omega_increment, "degree", np.float32)
    write_dataset(sgon, "omega_range_total", exp.omega_increment * nframes, "degree", np.float32)
    for axis in ("chi", "kappa", "phi"):
        write_dataset(sgon, axis, [0.0], "degree", np.float32)
        write_dataset(sgon, axis + "_end", [0.0], "degree", np.float32)
        write_dataset(sgon, axis + "_range_average", 0.0, "degree", np.float32)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="lbnl-synth",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Write a synthetic Eiger rotation dataset (Dectris FileWriter layout) with "
        "its ground-truth reflection table. Prints the master's path last (and, "
        "when stdout is not a terminal, a line per data file written before it).",
    )
    p.add_argument(
        "prefix",
        help="output prefix: writes PREFIX_master.h5, "
        "PREFIX_data_NNNNNN.h5, PREFIX_reflections.csv",
    )
    p.add_argument(
        "--detector",
        default="eiger_4m",
        choices=sorted(DETECTORS),
        help="detector model: module layout and size ('tiny' is 132 x 102, for tests)",
    )
    p.add_argument("-n", "--nframes", type=int, default=100, help="frames in the dataset")
    p.add_argument(
        "--frames-per-file",
        type=int,
        default=100,
        help="frames per data file (the last file may hold fewer)",
    )
    p.add_argument(
        "--dtype", default="uint32", choices=["uint16", "uint32"], help="pixel type of the frames"
    )
    p.add_argument(
        "--compression",
        default="bslz4",
        choices=sorted(COMPRESSIONS),
        help="HDF5 filter of the data files",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="random seed: the same seed writes the same dataset"
    )
    p.add_argument("--background", type=float, default=None,
                   help="background near the beam, counts/pixel/frame (None: the preset's, "
                   "1.0; beamlines see ~0.003 to ~6)")  # fmt: skip
    p.add_argument("--background-floor", type=float, default=None,
                   help="background far from the beam, counts/pixel/frame (None: the "
                   "preset's, 0.1, or a tenth of --background when that is lower)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace existing files")
    a = p.parse_args(argv)
    experiment = None
    if a.background is not None or a.background_floor is not None:
        experiment = Experiment() if a.detector != "tiny" else Experiment(edge_resolution=6.0)
        if a.background is not None:
            experiment.background = a.background
            experiment.background_floor = min(experiment.background_floor, a.background / 10)
        if a.background_floor is not None:
            experiment.background_floor = a.background_floor
    log = None if sys.stdout.isatty() else sys.stdout  # a batch log: a line per data file
    top = (experiment or Experiment()).saturation
    if a.background is not None and top / 10 <= a.background <= MAX_BACKGROUND:
        print(f"lbnl-synth: warning: a background of {a.background:g} counts/pixel/frame is near "
              f"or above the detector's count cutoff ({top}): many pixels are overloads, "
              f"written as counts at or above the cutoff (clipped at "
              f"{np.iinfo(a.dtype).max - 1} in {a.dtype})", file=sys.stderr)  # fmt: skip
    from .cluster import stop_on_sigterm  # (dask: loaded for the command only)

    try:
        with stop_on_sigterm():  # a batch system's time limit: the same line as Ctrl-C
            master = make_dataset(
                a.prefix,
                a.detector,
                a.nframes,
                a.frames_per_file,
                a.dtype,
                a.compression,
                a.seed,
                experiment=experiment,
                overwrite=a.overwrite,
                log=log,
            )
    except LbnlDaskError as e:
        print(f"lbnl-synth: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # (the master is written last: without it, no dataset)
        print("lbnl-synth: interrupted: the data files finished are kept, the master was not "
              "written", file=sys.stderr)  # fmt: skip
        return 128 + getattr(e, "signal", signal.SIGINT)  # 130 for Ctrl-C, 143 for SIGTERM
    print(master)
    return 0


def command() -> int:
    """The console script (pyproject.toml): :func:`main` through
    :func:`lbnl_dask.cluster.console` (Ctrl-C's handler, a dropped signal said)."""
    from .cluster import console

    return console(main)()


if __name__ == "__main__":
    sys.exit(command())
