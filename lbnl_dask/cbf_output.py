"""Write an Eiger/NXmx dataset (ours or the detector's) as a miniCBF series, in parallel.

``to_cbf(master, prefix)`` writes ``<prefix>_NNNNN.cbf`` (the input's image numbers, five
digits or more), one dask task per datablock, through FabIO's CBF writer: what fast_dp and
other CBF-only programs read, as ``eiger2cbf`` does serially. The PILATUS_1.2 header of
every file is the master's values (pixel size, beam centre, distance, wavelength, exposure,
count cutoff, the scan axis' start angle of that frame and its increment, 2-theta and the
other axes), written into the header the series had if it came from miniCBF files
(:data:`lbnl_dask.layout.MINICBF_HEADER`: its other lines, the date, threshold and trim
file, are kept as they were). Pixels flagged in the pixel mask become -1 (gap bit) or -2
(other bits), invalid pixels -1. Each file is written under a temporary name and renamed
when complete; a failed run removes the files it wrote.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

import dask
import dask.array as da
import h5py
import numpy as np
from dask.base import tokenize

from . import __version__, minicbf
from .cluster import choose_scheduler, client_for, one_openmp_thread, run
from .eiger import open_dataset
from .errors import LbnlDaskError, OutputError
from .layout import DET, GONIOMETER, MINICBF_HEADER
from .writer import atomic_path

AXES = ("omega", "phi", "chi", "kappa")
#: NeXus sensor_material names as a PILATUS header spells them.
_MATERIALS = {"si": "Silicon", "silicon": "Silicon", "cdte": "CdTe", "gaas": "GaAs"}


def cbf_name(prefix: str, number: int) -> str:
    """``<prefix>_NNNNN.cbf`` for image ``number`` (1-based): ``x_00007.cbf`` for 7."""
    return f"{prefix}_{int(number):05d}.cbf"


@dataclass(frozen=True)
class HeaderPlan:
    """What every frame's header holds: the lines to start from, the values common to all
    frames, and the scan axis with each frame's start angle (degrees) and its increment."""

    base: tuple
    values: tuple  # (key, value) pairs
    axis: str | None
    starts: tuple | None
    increment: float | None

    def text(self, i: int) -> str:
        """The header of frame ``i`` (0-based index into ``starts``)."""
        values = dict(self.values)
        if self.axis is not None and self.starts is not None:
            start = self.starts[i]
            name = self.axis.capitalize()
            values["Start_angle"] = start
            values[name] = start
            if self.increment is not None:
                values["Angle_increment"] = self.increment
                values[name + "_increment"] = self.increment
            values["Oscillation_axis"] = self.axis.upper()
        return minicbf.format_header(values, self.base)


def header_plan(master: str, meta) -> HeaderPlan:
    """The header values of a master (:func:`lbnl_dask.eiger.read_meta`'s ``meta`` and the
    few items it does not carry: sensor material, 2-theta, the non-scan axes)."""
    with h5py.File(master, "r") as f:
        base = f.get(MINICBF_HEADER)
        base = [] if base is None else bytes(np.asarray(base[()]).item()).decode().splitlines()
        material = f.get(DET + "/sensor_material")
        material = "Silicon" if material is None else _text(material[()])
        two_theta = _first_value(f, DET + "/goniometer/two_theta")
        others = {a: _first_value(f, f"{GONIOMETER}/{a}") for a in AXES}
    values = {
        "Pixel_size": (meta.x_pixel_size, meta.y_pixel_size),
        "Exposure_time": meta.count_time,
        "Exposure_period": meta.frame_time,
        "Count_cutoff": meta.overload,
        "Wavelength": meta.wavelength,
        "Detector_distance": meta.detector_distance,
        "Beam_xy": (meta.beam_center_x, meta.beam_center_y),
        "Detector_2theta": two_theta,
    }
    if meta.sensor_thickness is not None:
        values["sensor"] = (_MATERIALS.get(material.lower(), material), meta.sensor_thickness)
    if not any(minicbf.key_of(line) == "Detector" for line in base):
        name = meta.description or "unknown"
        values["Detector"] = name + (f", S/N {meta.detector_number}" if meta.detector_number
                                     else "")  # fmt: skip
    axis = "omega" if meta.omega is not None else None
    for a in AXES:
        if a != axis and others[a] is not None:
            values[a.capitalize()] = others[a]
    values = {k: v for k, v in values.items() if v is not None and not _has_none(v)}
    starts = None if meta.omega is None else tuple(float(x) for x in meta.omega)
    return HeaderPlan(tuple(base), tuple(values.items()), axis, starts, meta.omega_increment)


def _has_none(v) -> bool:
    return isinstance(v, tuple) and any(x is None for x in v)


def _text(v) -> str:
    v = np.asarray(v).reshape(-1)[0] if np.ndim(v) else v
    return v.decode("ascii", "replace") if isinstance(v, bytes) else str(v)


def _first_value(f: h5py.File, path: str) -> float | None:
    d = f.get(path)
    if not isinstance(d, h5py.Dataset) or d.size == 0 or d.dtype.kind not in "iuf":
        return None
    return float(np.asarray(d[()]).reshape(-1)[0])


def write_cbf_block(block, mask, plan: HeaderPlan, prefix: str, number0: int, index0: int,
                    frame_chunks=(), block_id=None):  # fmt: skip
    """Write the frames of one datablock ``block`` (n, ny, nx) as miniCBF files; returns the
    bytes written as a (1,) array. ``number0``/``index0``: the image number and the index
    into ``plan.starts`` of the dataset's first frame selected; ``frame_chunks``: the frames
    of each block, to place this one (``block_id``)."""
    import fabio.cbfimage

    k = block_id[0]
    start = sum(frame_chunks[:k])
    flags = None if mask is None else np.asarray(mask)
    total = 0
    for j in range(block.shape[0]):
        i = start + j
        path = cbf_name(prefix, number0 + i)
        try:
            pixels = minicbf.cbf_pixels(block[j], flags)
        except ValueError as e:
            raise OutputError(f"{path}: {e}") from None
        header = {
            "_array_data.header_convention": "PILATUS_1.2",
            "_array_data.header_contents": plan.text(index0 + i),
        }
        with atomic_path(path, hdf5=False) as tmp:
            fabio.cbfimage.CbfImage(data=pixels, header=header).write(tmp)
        total += os.path.getsize(path)
    return np.array([total], np.int64)


def cbf_job(master, prefix: str, first_image: int = 1, last_image: int | None = None,
            datablock: int | None = None):  # fmt: skip
    """(the lazy job writing every file, the files' paths): one task per datablock."""
    ds = open_dataset(master, first_image, last_image, datablock)
    frames = ds.frames
    if frames.dtype.kind not in "iu":
        raise OutputError(f"{master}: frames are {frames.dtype}; miniCBF holds integer counts")
    if not hasattr(ds, "master_source") or isinstance(ds.master_source(), bytes):
        raise OutputError(f"{master}: give an HDF5 master (this input is miniCBF already)")
    plan = header_plan(master, ds.meta)
    prefix = os.path.abspath(prefix)
    paths = [cbf_name(prefix, ds.first_image + i) for i in range(frames.shape[0])]
    chunks = frames.chunks[0]
    written = da.map_blocks(
        write_cbf_block, frames, ds.pixel_mask(), plan, prefix, ds.first_image,
        ds.first_image - 1, chunks=((1,) * len(chunks),), drop_axis=[1, 2], dtype=np.int64,
        name="write-cbf-" + tokenize(frames, plan, prefix), frame_chunks=chunks,
    )  # fmt: skip
    return dask.delayed(np.sum)(written), paths


def check_free(paths: list[str]) -> None:
    """OutputError if one of ``paths`` exists (a user's file is replaced only if asked)."""
    for p in paths:
        if os.path.exists(p):
            raise OutputError(f"{p}: exists (use --overwrite to replace it)")


def to_cbf(master, prefix: str, first_image: int = 1, last_image: int | None = None,
           datablock: int | None = None, scheduler: str = "auto", workers: int | None = None,
           overwrite: bool = False, progress: bool = False, slurm=None) -> list[str]:  # fmt: skip
    """Write frames ``first_image``..``last_image`` (1-based) of the dataset of ``master``
    as ``<prefix>_NNNNN.cbf``; returns the paths. Refuses to replace a file unless
    ``overwrite``; on failure removes the files it wrote.

    Example::

        files = to_cbf("out/b2s2h12_master.h5", "out/cbf/b2s2h12")   # ..._00001.cbf ...
    """
    job, paths = cbf_job(master, prefix, first_image, last_image, datablock)
    if not overwrite:
        check_free(paths)
    os.makedirs(os.path.dirname(paths[0]), exist_ok=True)
    scheduler, _ = choose_scheduler(scheduler)
    try:
        with client_for(scheduler, workers, slurm) as client:
            run(job, client, progress, prefix="write-cbf")
    except BaseException:
        for p in paths:
            if os.path.exists(p):
                os.remove(p)
        raise
    return paths


def main(argv=None) -> int:
    """``lbnl-to-cbf``: an Eiger/NXmx dataset as a miniCBF series."""
    one_openmp_thread()
    p = argparse.ArgumentParser(
        prog="lbnl-to-cbf",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Write the frames of an Eiger/NXmx dataset (a detector's master or "
        "lbnl-compress's output) as miniCBF files PREFIX_NNNNN.cbf, with PILATUS_1.2 headers "
        "from the master, in parallel (what eiger2cbf does serially), for fast_dp and other "
        "programs that read CBF only.",
    )
    p.add_argument("master", help="the dataset's *_master.h5")
    p.add_argument("prefix", nargs="?", help="output prefix (default: the master's name "
                   "without _master.h5, in the current folder)")  # fmt: skip
    p.add_argument("-f", "--first", type=int, default=1, help="first image (1-based)")
    p.add_argument("-l", "--last", type=int, default=None, help="last image (default: all)")
    p.add_argument("--datablock", type=int, default=None,
                   help="frames per task (default: the frames of a data file)")  # fmt: skip
    p.add_argument("--scheduler", default="auto",
                   help="threads, processes, auto, or a scheduler address")  # fmt: skip
    p.add_argument("-w", "--workers", type=int, default=None, help="worker processes")
    p.add_argument("--overwrite", action="store_true", help="replace existing files")
    p.add_argument("-V", "--version", action="version", version=f"%(prog)s {__version__}")
    args = p.parse_args(argv)
    prefix = args.prefix or os.path.basename(args.master).removesuffix("_master.h5")
    try:
        paths = to_cbf(args.master, prefix, args.first, args.last, args.datablock,
                       args.scheduler, args.workers, args.overwrite,
                       progress=sys.stderr.isatty())  # fmt: skip
    except LbnlDaskError as e:
        print(f"lbnl-to-cbf: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lbnl-to-cbf: interrupted; the files it wrote were removed", file=sys.stderr)
        return 130
    print(f"wrote {len(paths)} miniCBF files: {os.path.basename(paths[0])} ... "
          f"{os.path.basename(paths[-1])}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
