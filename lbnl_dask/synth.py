"""Synthetic Eiger rotation datasets with ground truth, for tests, demos and benchmarks.

``make_dataset(prefix, detector="eiger_4m", nframes=100)`` writes, in the Dectris
FileWriter layout, ``<prefix>_master.h5`` plus ``<prefix>_data_000001.h5 ...`` (each with
``/entry/data/data`` (n, ny, nx), chunks of one frame, bitshuffle-LZ4 by default), and
``<prefix>_reflections.csv``: the reflections that were drawn (hkl, frame centroid, x, y in
pixels, d in ångström, expected total counts).

The content behaves like diffraction: Poisson background falling with radius from the
beam centre, Bragg spots from an orthorhombic lattice rotating about the horizontal
spindle (each spot rises and falls over 2-3 frames), module gaps and masked pixels at the
invalid value (all bits set) and flagged in ``pixel_mask``, a few hot and dead pixels.
Deterministic for a given seed: frame i depends only on (seed, i).
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from dataclasses import dataclass

import h5py
import hdf5plugin
import numpy as np

from .errors import LbnlDaskError, OutputError


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

COMPRESSIONS = {"bslz4": lambda: hdf5plugin.Bitshuffle(nelems=0, cname="lz4"),
                "lz4": lambda: hdf5plugin.LZ4(nbytes=0),
                "none": lambda: {}}


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
    background: float = 1.0  # counts per pixel per frame at the beam centre (fine-sliced MX data: ~0.1-1)
    background_floor: float = 0.1  # counts per pixel per frame far from it
    saturation: int = 12440  # countrate_correction_count_cutoff


def geometry(det: Detector, exp: Experiment) -> tuple[float, float, float, float]:
    """(distance m, beam_center_x px, beam_center_y px, d_min Å at the farthest corner)."""
    bcx, bcy = det.nx / 2 + 11.3, det.ny / 2 - 7.7
    dist = exp.distance
    if dist is None:
        two_theta = 2 * np.arcsin(exp.wavelength / (2 * exp.edge_resolution))
        dist = min(bcx, bcy) * exp.pixel_size / np.tan(two_theta)
    corner = np.hypot(max(bcx, det.nx - bcx), max(bcy, det.ny - bcy)) * exp.pixel_size
    d_min = exp.wavelength / (2 * np.sin(np.arctan(corner / dist) / 2))
    return float(dist), bcx, bcy, float(d_min)


def _rotation_matrix(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 7919)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def reflections(det: Detector, exp: Experiment, nframes: int, seed: int) -> np.ndarray:
    """Reflections crossing the Ewald sphere during the scan, as a structured array.

    Fields: h, k, l, frame (1-based centroid), x, y (pixels), d (Å), counts (expected
    total over the rocking curve), phi (deg). Beam along +z, spindle along +x, detector
    normal to the beam at ``distance``, beam centre at the detector centre plus an offset.
    """
    dist, bcx, bcy, d_min = geometry(det, exp)
    a, b, c = exp.cell
    hmax = [int(np.floor(v / d_min)) for v in (a, b, c)]
    h, k, l = np.meshgrid(*(np.arange(-m, m + 1) for m in hmax), indexing="ij")
    hkl = np.stack([h.ravel(), k.ravel(), l.ravel()], axis=1)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    r0 = (hkl / np.array([a, b, c])) @ _rotation_matrix(seed).T  # reciprocal vectors, 1/Å
    rsq = np.sum(r0 ** 2, axis=1)
    keep = rsq < 1.0 / d_min ** 2
    hkl, r0, rsq = hkl[keep], r0[keep], rsq[keep]
    lam = exp.wavelength
    rho = np.hypot(r0[:, 1], r0[:, 2])
    target = -lam * rsq / 2.0  # r_z must equal this on the Ewald sphere
    ok = np.abs(target) < rho
    hkl, r0, rsq, rho, target = hkl[ok], r0[ok], rsq[ok], rho[ok], target[ok]
    # r_z(phi) = r0y sin(phi) + r0z cos(phi) = rho cos(phi - alpha) with alpha = atan2(r0y, r0z)
    alpha = np.arctan2(r0[:, 1], r0[:, 2])
    base = np.arccos(target / rho)
    out = []
    phi0 = np.deg2rad(exp.omega_start)
    span = np.deg2rad(exp.omega_increment * nframes)
    rng = np.random.default_rng(seed + 1)
    for sign in (1.0, -1.0):
        phi = np.mod(sign * base + alpha - phi0, 2 * np.pi) + phi0
        inside = phi < phi0 + span + 3 * np.deg2rad(exp.mosaicity)
        cphi, sphi = np.cos(phi), np.sin(phi)
        ry = r0[:, 1] * cphi - r0[:, 2] * sphi
        rz = r0[:, 1] * sphi + r0[:, 2] * cphi
        s1 = np.stack([r0[:, 0], ry, rz + 1.0 / lam], axis=1)
        fwd = s1[:, 2] > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            x = bcx + dist * s1[:, 0] / s1[:, 2] / exp.pixel_size
            y = bcy + dist * s1[:, 1] / s1[:, 2] / exp.pixel_size
        on = inside & fwd & (x > 5) & (x < det.nx - 6) & (y > 5) & (y < det.ny - 6)
        d = 1.0 / np.sqrt(rsq)
        intensity = exp.mean_intensity * np.exp(-exp.b_factor / (2 * d ** 2)) * rng.exponential(1.0, len(d))
        frame = (np.rad2deg(phi) - exp.omega_start) / exp.omega_increment + 0.5  # 1-based centroid
        for i in np.nonzero(on)[0]:
            out.append((*hkl[i], frame[i], x[i], y[i], d[i], intensity[i], np.rad2deg(phi[i])))
    dt = [("h", "i4"), ("k", "i4"), ("l", "i4"), ("frame", "f8"), ("x", "f8"), ("y", "f8"),
          ("d", "f8"), ("counts", "f8"), ("phi", "f8")]
    arr = np.array(out, dtype=dt)
    return arr[np.argsort(arr["frame"], kind="stable")]


def _erf(x):
    # Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7): avoids a SciPy dependency.
    s = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    y = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * np.exp(-x * x)
    return s * y


def _frame_fraction(refl, exp: Experiment, i: int) -> np.ndarray:
    """Fraction of each reflection's intensity falling in frame i (0-based): Gaussian rocking curve."""
    lo = exp.omega_start + i * exp.omega_increment
    hi = lo + exp.omega_increment
    z = np.sqrt(2.0) * exp.mosaicity
    return 0.5 * (_erf((hi - refl["phi"]) / z) - _erf((lo - refl["phi"]) / z))


def _masks(det: Detector, seed: int):
    """pixel_mask (uint32, Dectris bits: 1 gap, 2 dead, 8 hot/over-responding) and
    unflagged hot and dead pixel positions."""
    mask = np.ones((det.ny, det.nx), np.uint32)
    for x0, y0 in det.module_origins():
        mask[y0 : y0 + det.module_ny, x0 : x0 + det.module_nx] = 0
    rng = np.random.default_rng(seed + 2)
    valid = np.flatnonzero(mask == 0)
    picks = rng.choice(valid, size=min(len(valid), 8 + det.nx * det.ny // 20000), replace=False)
    flagged, hot, dead = np.array_split(picks, 3)
    mask.flat[flagged[: len(flagged) // 2]] = 2
    mask.flat[flagged[len(flagged) // 2 :]] = 8
    return mask, hot, dead


def make_dataset(prefix, detector: str = "tiny", nframes: int = 20, frames_per_file: int = 10,
                 dtype="uint16", compression: str = "bslz4", seed: int = 0,
                 experiment: Experiment | None = None, overwrite: bool = False, log=None) -> str:
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
    det = DETECTORS[detector]
    exp = experiment or (Experiment(edge_resolution=6.0) if detector == "tiny" else Experiment())
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype("uint16"), np.dtype("uint32")):
        raise LbnlDaskError(f"dtype must be uint16 or uint32, not {dtype}")
    prefix = os.fspath(prefix)
    master = prefix + "_master.h5"
    nfiles = -(-nframes // frames_per_file)
    outputs = [master, prefix + "_reflections.csv"] + [f"{prefix}_data_{k:06d}.h5" for k in range(1, nfiles + 1)]
    if not overwrite:
        for p in outputs:
            if os.path.exists(p):
                raise OutputError(f"{p}: exists (use overwrite=True / --overwrite)")
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)

    refl = reflections(det, exp, nframes, seed)
    mask, hot, dead = _masks(det, seed)
    invalid = np.iinfo(dtype).max
    dist, bcx, bcy, _ = geometry(det, exp)
    yy, xx = np.ogrid[: det.ny, : det.nx]
    r = np.hypot(xx - bcx, yy - bcy).astype(np.float32)
    bg = (exp.background_floor + exp.background * np.exp(-r / (0.35 * max(det.nx, det.ny)))).astype(np.float32)
    half = 4
    offs = np.arange(-half, half + 1)
    expected_total = np.zeros(len(refl))
    t0 = time.monotonic()

    for k in range(nfiles):
        i0, i1 = k * frames_per_file, min(nframes, (k + 1) * frames_per_file)
        path = outputs[2 + k]
        with h5py.File(path, "w") as f:
            _nx(f, "entry", "NXentry")
            g = _nx(f["entry"], "data", "NXdata")
            d = g.create_dataset("data", shape=(i1 - i0, det.ny, det.nx), dtype=dtype,
                                 chunks=(1, det.ny, det.nx), **COMPRESSIONS[compression]())
            d.attrs["image_nr_low"] = np.uint64(i0 + 1)
            d.attrs["image_nr_high"] = np.uint64(i1)
            for i in range(i0, i1):
                lam = bg.copy()
                frac = _frame_fraction(refl, exp, i)
                sel = np.nonzero(frac > 1e-4)[0]
                for j in sel:
                    x, y = refl["x"][j], refl["y"][j]
                    ix, iy = int(round(x)), int(round(y))
                    gx = np.exp(-0.5 * ((ix + offs - x) / exp.spot_sigma) ** 2)
                    gy = np.exp(-0.5 * ((iy + offs - y) / exp.spot_sigma) ** 2)
                    prof = np.outer(gy, gx)
                    prof /= prof.sum()
                    counts = refl["counts"][j] * frac[j]
                    lam[iy - half : iy + half + 1, ix - half : ix + half + 1] += (counts * prof).astype(np.float32)
                    expected_total[j] += counts
                rng = np.random.default_rng([seed, i])
                img = rng.poisson(lam).astype(np.int64)
                img.flat[hot] = exp.saturation + rng.integers(0, 1000, len(hot))
                img.flat[dead] = 0
                img = np.minimum(img, invalid - 1).astype(dtype)
                img[mask != 0] = invalid
                d[i - i0] = img
        if log is not None:
            print(f"lbnl-synth: wrote {os.path.basename(path)} (frames {i0 + 1}-{i1} of {nframes}, "
                  f"file {k + 1}/{nfiles}, {time.monotonic() - t0:.0f} s)", file=log, flush=True)
    refl = refl.copy()
    refl["counts"] = expected_total
    _write_reflections(outputs[1], refl, nframes)
    _write_master(master, det, exp, dist, bcx, bcy, nframes, frames_per_file, dtype, mask, compression,
                  [os.path.basename(p) for p in outputs[2:]])
    return master


def _write_reflections(path, refl, nframes):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["h", "k", "l", "frame", "x", "y", "d", "counts"])
        for r in refl:
            if 0.5 <= r["frame"] <= nframes + 0.5 and r["counts"] > 0:
                w.writerow([int(r["h"]), int(r["k"]), int(r["l"]), f"{r['frame']:.3f}",
                            f"{r['x']:.3f}", f"{r['y']:.3f}", f"{r['d']:.4f}", f"{r['counts']:.2f}"])


def read_reflections(path) -> np.ndarray:
    """Read a ``*_reflections.csv`` ground-truth table as a structured array."""
    dt = [("h", "i4"), ("k", "i4"), ("l", "i4"), ("frame", "f8"), ("x", "f8"), ("y", "f8"),
          ("d", "f8"), ("counts", "f8")]
    return np.loadtxt(path, delimiter=",", skiprows=1, dtype=dt, ndmin=1)


def _ascii(text: str) -> np.bytes_:
    """Fixed-length ASCII (what Dectris writes and durin needs), not vlen UTF-8."""
    return np.bytes_(text.encode("ascii"))


def _nx(parent, name, nx_class):
    g = parent.require_group(name)
    g.attrs["NX_class"] = _ascii(nx_class)
    return g


def _ds(group, name, value, units=None, dtype=None):
    if isinstance(value, str):
        d = group.create_dataset(name, data=_ascii(value))
    else:
        d = group.create_dataset(name, data=np.asarray(value, dtype=dtype))
    if units is not None:
        d.attrs["units"] = _ascii(units)
    return d


def _write_master(master, det, exp, dist, bcx, bcy, nframes, frames_per_file, dtype, mask, compression, data_files):
    with h5py.File(master, "w") as f:
        entry = _nx(f, "entry", "NXentry")
        data = _nx(entry, "data", "NXdata")
        for k, name in enumerate(data_files, start=1):
            data[f"data_{k:06d}"] = h5py.ExternalLink(name, "/entry/data/data")
        inst = _nx(entry, "instrument", "NXinstrument")
        beam = _nx(inst, "beam", "NXbeam")
        _ds(beam, "incident_wavelength", exp.wavelength, "angstrom", np.float32)
        mono = _nx(inst, "monochromator", "NXmonochromator")
        _ds(mono, "wavelength", exp.wavelength, "angstrom", np.float32)
        det_g = _nx(inst, "detector", "NXdetector")
        bits = 8 * dtype.itemsize
        _ds(det_g, "description", det.description)
        _ds(det_g, "detector_number", "SYNTH-0001")
        _ds(det_g, "beam_center_x", bcx, "pixel", np.float32)
        _ds(det_g, "beam_center_y", bcy, "pixel", np.float32)
        _ds(det_g, "bit_depth_image", bits, None, np.uint32)
        _ds(det_g, "bit_depth_readout", 12 if bits == 16 else 16, None, np.uint32)
        _ds(det_g, "count_time", exp.count_time, "s", np.float32)
        _ds(det_g, "frame_time", exp.frame_time, "s", np.float32)
        _ds(det_g, "detector_distance", dist, "m", np.float32)
        _ds(det_g, "x_pixel_size", exp.pixel_size, "m", np.float32)
        _ds(det_g, "y_pixel_size", exp.pixel_size, "m", np.float32)
        _ds(det_g, "sensor_material", "Si")
        _ds(det_g, "sensor_thickness", 450e-6, "m", np.float32)
        _ds(det_g, "countrate_correction_applied", 1, None, np.int32)
        _ds(det_g, "pixel_mask_applied", 1, None, np.int32)
        _ds(det_g, "saturation_value", exp.saturation, None, np.uint32)
        gonio = _nx(det_g, "goniometer", "NXtransformations")
        for name in ("two_theta", "two_theta_end"):
            _ds(gonio, name, [0.0], "degree", np.float32)
        _ds(gonio, "two_theta_range_average", 0.0, "degree", np.float32)
        ds = _nx(det_g, "detectorSpecific", "NXcollection")
        _ds(ds, "nimages", nframes, None, np.uint32)
        _ds(ds, "ntrigger", 1, None, np.uint32)
        _ds(ds, "x_pixels_in_detector", det.nx, None, np.uint32)
        _ds(ds, "y_pixels_in_detector", det.ny, None, np.uint32)
        _ds(ds, "countrate_correction_count_cutoff", exp.saturation, None, np.uint32)
        _ds(ds, "saturation_value", exp.saturation, None, np.uint32)
        _ds(ds, "eiger_fw_version", "release-2022.1.2 (synthetic)")
        _ds(ds, "software_version", "1.8.0")
        _ds(ds, "compression", compression)
        _ds(ds, "nframes_sum", 1, None, np.uint32)
        _ds(ds, "frame_count_time", exp.count_time, "s", np.float32)
        _ds(ds, "photon_energy", 12398.42 / exp.wavelength, "eV", np.float32)
        ds.create_dataset("pixel_mask", data=mask)  # uint32, not chunked, not filtered
        for m, (x0, y0) in enumerate(det.module_origins()):
            mg = ds.create_group(f"detectorModule_{m:03d}")
            _ds(mg, "data_origin", [x0, y0], None, np.int32)
            _ds(mg, "data_size", [det.module_nx, det.module_ny], None, np.uint32)
            _ds(mg, "countrate_correction_count_cutoff", exp.saturation, None, np.uint32)
        sample = _nx(entry, "sample", "NXsample")
        sgon = _nx(sample, "goniometer", "NXtransformations")
        omega = exp.omega_start + exp.omega_increment * np.arange(nframes)
        _ds(sgon, "omega", omega, "degree", np.float32)
        _ds(sgon, "omega_end", omega + exp.omega_increment, "degree", np.float32)
        _ds(sgon, "omega_increment", exp.omega_increment, "degree", np.float32)
        _ds(sgon, "omega_start", exp.omega_start, "degree", np.float32)
        _ds(sgon, "omega_range_average", exp.omega_increment, "degree", np.float32)
        _ds(sgon, "omega_range_total", exp.omega_increment * nframes, "degree", np.float32)
        for axis in ("chi", "kappa", "phi"):
            _ds(sgon, axis, [0.0], "degree", np.float32)
            _ds(sgon, axis + "_end", [0.0], "degree", np.float32)
            _ds(sgon, axis + "_range_average", 0.0, "degree", np.float32)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="lbnl-synth", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Write a synthetic Eiger rotation dataset (Dectris FileWriter layout) with "
                    "its ground-truth reflection table. Prints the master's path last (and, "
                    "when stdout is not a terminal, a line per data file written before it).")
    p.add_argument("prefix", help="output prefix: writes PREFIX_master.h5, "
                                  "PREFIX_data_NNNNNN.h5, PREFIX_reflections.csv")
    p.add_argument("--detector", default="eiger_4m", choices=sorted(DETECTORS),
                   help="detector model: module layout and size ('tiny' is 132 x 102, for tests)")
    p.add_argument("-n", "--nframes", type=int, default=100, help="frames in the dataset")
    p.add_argument("--frames-per-file", type=int, default=100,
                   help="frames per data file (the last file may hold fewer)")
    p.add_argument("--dtype", default="uint32", choices=["uint16", "uint32"],
                   help="pixel type of the frames")
    p.add_argument("--compression", default="bslz4", choices=sorted(COMPRESSIONS),
                   help="HDF5 filter of the data files")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed: the same seed writes the same dataset")
    p.add_argument("--overwrite", action="store_true", help="replace existing files")
    a = p.parse_args(argv)
    log = None if sys.stdout.isatty() else sys.stdout  # a batch log: a line per data file
    try:
        master = make_dataset(a.prefix, a.detector, a.nframes, a.frames_per_file, a.dtype,
                              a.compression, a.seed, overwrite=a.overwrite, log=log)
    except LbnlDaskError as e:
        print(f"lbnl-synth: error: {e}", file=sys.stderr)
        return 2
    print(master)
    return 0


if __name__ == "__main__":
    sys.exit(main())
