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
import glob
import hashlib
import os
import re
import signal
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import dask
import dask.array as da
import h5py
import numpy as np
from dask.base import tokenize

from . import __version__, minicbf
from .cluster import (
    choose_scheduler,
    client_for,
    console,
    one_openmp_thread,
    run,
    stop_on_sigterm,
)
from .eiger import open_dataset
from .errors import InputFileError, LbnlDaskError, OutputError
from .header import MasterFile, angle_value, scan_axis, text_value
from .layout import DET, ENTRY, MINICBF_HEADER, SPEC
from .meta import tidy
from .options import at_least_1
from .resume import file_id, output_folder
from .writer import atomic_path

#: NeXus sensor_material names as a PILATUS header spells them.
_MATERIALS = {"si": "Silicon", "silicon": "Silicon", "cdte": "CdTe", "gaas": "GaAs"}
#: Frames a task writes at most: about 256 MB of int32 pixels, as the pipeline's chunks.
TASK_BYTES = 256 * 2**20
#: The header line naming the job that wrote a file (a re-run keeps the files it finds).
JOB_LINE = "lbnl_dask_job: {}"


def cbf_name(prefix: str, number: int) -> str:
    """``<prefix>_NNNNN.cbf`` for image ``number`` (1-based): ``x_00007.cbf`` for 7."""
    return f"{prefix}_{int(number):05d}.cbf"


@dataclass(frozen=True)
class HeaderPlan:
    """What every frame's header holds: the lines to start from, the values common to all
    frames, and the scan axis with each frame's start and end angle (degrees) and the
    exposure (s) of a frame spanning ``increment``."""

    base: tuple
    values: tuple  # (key, value) pairs
    axis: str | None
    starts: tuple | None
    ends: tuple | None
    increment: float | None
    token: str = ""

    def text(self, i: int) -> str:
        """The header of frame ``i`` (0-based index into ``starts``). A frame spanning less
        than ``increment`` (the last of a sum that ran out of frames) gets its own
        increment and exposure."""
        values = dict(self.values)
        if self.axis is not None and self.starts is not None:
            start = self.starts[i]
            name = self.axis.capitalize()
            values["Start_angle"] = start
            values[name] = start
            inc = self.increment
            if self.ends is not None and inc:
                own = tidy(self.ends[i] - start)
                if 0 < own < inc * (1 - 1e-6):
                    for key in ("Exposure_time", "Exposure_period"):
                        if key in values:
                            values[key] = tidy(values[key] * own / inc)
                    inc = own
            if inc is not None:
                values["Angle_increment"] = inc
                values[name + "_increment"] = inc
            if not any(minicbf.key_of(line) == "Oscillation_axis" for line in self.base):
                values["Oscillation_axis"] = self.axis.upper()  # else the series' own line
        period = dict(self.values).get("Exposure_period", 0)  # the series' (not a short last)
        base = [_later(line, i * period) for line in self.base]
        base += [JOB_LINE.format(self.token)] if self.token else []
        return minicbf.format_header(values, base)


def header_plan(master: str, meta, token: str = "") -> HeaderPlan:
    """The header values of a master (:func:`lbnl_dask.eiger.read_meta`'s ``meta`` and the
    few items it does not carry: sensor material, 2-theta, the scan axis and the others,
    the collection date), for the files of job ``token``."""
    with MasterFile(master) as f:
        base = f.get(MINICBF_HEADER)
        base = [] if base is None else bytes(np.asarray(base[()]).item()).decode().splitlines()
        material = f.get(DET + "/sensor_material")
        material = "Silicon" if material is None else text_value(material[()])
        two_theta = angle_value(f, DET + "/goniometer/two_theta")
        axis, starts, ends, group = scan_axis(f, meta.n_frames)
        starts, ends = (None if a is None else tuple(tidy(x) for x in a) for a in (starts, ends))
        others = {a: angle_value(f, f"{group}/{a}") for a in minicbf.AXES if a != axis}
        increment = angle_value(f, f"{group}/{axis}_increment") if axis else None
        date = f.get(SPEC + "/data_collection_date") or f.get(ENTRY + "/start_time")  # (NXmx)
        date = _pilatus_date(text_value(date[()])) if isinstance(date, h5py.Dataset) else None
    if not any(_is_date(line) for line in base):  # dxtbx reads the date line of a miniCBF
        base = [date or datetime.now().isoformat(timespec="milliseconds")] + base
    values = {}
    if not any(minicbf.key_of(line) == "Detector" for line in base):
        name = meta.description or "unknown"
        values["Detector"] = name + (f", S/N {meta.detector_number}" if meta.detector_number
                                     else "")  # fmt: skip
    values.update({
        "Pixel_size": (tidy(meta.x_pixel_size), tidy(meta.y_pixel_size)),
        "Exposure_time": tidy(meta.count_time),
        "Exposure_period": tidy(meta.frame_time),
        "Count_cutoff": meta.overload,
        "Wavelength": tidy(meta.wavelength),
        "Detector_distance": tidy(meta.detector_distance),
        "Beam_xy": (tidy(meta.beam_center_x), tidy(meta.beam_center_y)),
        "Detector_2theta": tidy(two_theta),
    })  # fmt: skip
    if meta.sensor_thickness is not None:
        values["sensor"] = (_MATERIALS.get(material.lower(), material),
                            tidy(meta.sensor_thickness))  # fmt: skip
    for a, v in others.items():
        if v is not None:
            values[a.capitalize()] = tidy(v)
    values = {k: v for k, v in values.items() if v is not None and not _has_none(v)}
    if increment is None and starts is not None and len(starts) > 1:
        increment = starts[1] - starts[0]
    return HeaderPlan(tuple(base), tuple(values.items()), axis, starts, ends,
                      tidy(increment), token)  # fmt: skip


def _pilatus_date(text: str, seconds: float = 0.0) -> str:
    """An ISO 8601 time (``seconds`` later) as a miniCBF date line dxtbx reads
    (YYYY-mm-ddTHH:MM:SS.mmm, no zone: NXmx's ``2024-07-24T10:09:13Z`` made dials.import
    fail); the text as it is if it is no such time."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        return text
    when = when.replace(tzinfo=None) + timedelta(seconds=float(seconds))
    return when.isoformat(timespec="milliseconds")


def _later(line: str, seconds) -> str:
    """A date line ``seconds`` later (frame i of a series starts i frame periods after the
    first, as a detector dates each file); any other line, or a date not read, as it is."""
    if not seconds or not _is_date(line) or not np.isfinite(seconds) or seconds < 0:
        return line
    return line[: len(line) - len(line.lstrip())] + _pilatus_date(line.strip(), seconds)


def _is_date(line: str) -> bool:
    return re.match(r"^\d{4}-\d\d-\d\dT\d", line.strip()) is not None


def _has_none(v) -> bool:
    return isinstance(v, tuple) and any(x is None for x in v)


def write_cbf_block(block, mask, plan: HeaderPlan, prefix: str, number0: int, index0: int,
                    skip=frozenset(), frame_chunks=(), block_id=None):  # fmt: skip
    """Write the frames of one datablock ``block`` (n, ny, nx) as miniCBF files but those
    whose index is in ``skip`` (finished by an earlier run); returns the bytes written as a
    (1,) array. ``number0``/``index0``: the image number and the index into
    ``plan.starts`` of the dataset's first frame selected; ``frame_chunks``: the frames of
    each block, to place this one (``block_id``)."""
    import fabio.cbfimage

    start = sum(frame_chunks[: block_id[0]])
    flags = None if mask is None else np.asarray(mask)
    total = 0
    for j in range(block.shape[0]):
        i = start + j
        if i in skip:
            continue
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


@dataclass
class CbfJob:
    """What :func:`to_cbf` will do: ``job`` (lazy) writes ``todo`` of ``paths``; the others
    are this job's files from an earlier run (kept). ``foreign``: files in the way."""

    job: object
    paths: list
    todo: list
    foreign: list
    notes: list = field(default_factory=list)  # the master's odd values, copied into headers


def cbf_job(master, prefix: str, first_image: int = 1, last_image: int | None = None,
            datablock: int | None = None, token: str | None = None,
            overwrite: bool = False) -> CbfJob:  # fmt: skip
    """The lazy job writing the files of frames ``first_image``..``last_image``: one task per
    datablock (default: the data files' frames, at most about 256 MB of pixels)."""
    ds = open_dataset(master, first_image, last_image)
    if ds.is_cbf:
        raise InputFileError(f"{master}: give an HDF5 master (this input is miniCBF already)")
    what = ds.meta.pixel_transform
    if what is not None:  # an -S/-L/-X output: a reader would take them as counts
        raise OutputError(f"{master}: its pixels are {what}, not counts: miniCBF holds counts")
    n, ny, nx = ds.shape
    if datablock is None:
        datablock = max(1, min(ds.datablock, TASK_BYTES // (4 * ny * nx)))
    ds = ds.with_datablock(datablock)
    frames = ds.frames
    if frames.dtype.kind not in "iu":
        raise OutputError(f"{master}: frames are {frames.dtype}; miniCBF holds integer counts")
    prefix = os.path.abspath(prefix)
    token = token or default_token(master, prefix)
    plan = header_plan(master, ds.meta, token)
    paths = [cbf_name(prefix, ds.first_image + i) for i in range(n)]
    states = [file_state(p, token) for p in paths]
    done = [] if overwrite else [i for i, st in enumerate(states) if st == "done"]
    foreign = [p for p, st in zip(paths, states, strict=True) if st == "foreign"]
    chunks = frames.chunks[0]
    written = da.map_blocks(
        write_cbf_block, frames, ds.pixel_mask(), plan, prefix, ds.first_image,
        ds.first_image - 1, frozenset(done), chunks=((1,) * len(chunks),), drop_axis=[1, 2],
        dtype=np.int64, name="write-cbf-" + tokenize(frames, plan, prefix, done),
        frame_chunks=chunks,
    )  # fmt: skip
    finished = set(done)
    todo = [p for i, p in enumerate(paths) if i not in finished]
    return CbfJob(dask.delayed(np.sum)(written), paths, todo, foreign, _header_notes(ds.meta))


#: The master's fields that go into the headers: the notes on them concern the miniCBF files
#: (those on what lbnl-compress sums or bins do not).
HEADER_FIELDS = ("x_pixel_size", "y_pixel_size", "beam_center_x", "beam_center_y",
                 "detector_distance", "wavelength", "count_time", "frame_time",
                 "sensor_thickness", "omega", "omega_increment", "saturation_value",
                 "countrate_correction_count_cutoff")  # fmt: skip


def _header_notes(meta) -> list[str]:
    def field_of(note: str) -> str:
        words = note.split()
        return words[1] if words[0] == "no" and len(words) > 1 else words[0]

    return [w for w in meta.warnings if w and field_of(w) in HEADER_FIELDS]


def default_token(master: str, prefix: str) -> str:
    """``lbnl-to-cbf``'s job: the master (path, size, time) and the prefix. Not the range:
    a file holds its own frame whatever range wrote it, so a run over all the frames keeps
    those an earlier run over a few wrote (it had refused them as files in the way)."""
    st = os.stat(master)
    key = (os.path.abspath(master), st.st_size, st.st_mtime_ns, prefix)
    return hashlib.sha1(repr(key).encode()).hexdigest()[:16]


def is_foreign(path: str, token: str) -> bool:
    """An existing file whose header does not name job ``token`` (only the header is read)."""
    if not os.path.exists(path):
        return False
    try:
        return JOB_LINE.format(token) not in minicbf.read_header(path).lines
    except LbnlDaskError:
        return True


def file_state(path: str, token: str) -> str:
    """'absent'; 'done' (a finished, undamaged file of job ``token``: its header names the
    job, its pixel data is whole and matches its Content-MD5); 'damaged' (this job's, to be
    written again); or 'foreign' (another file in the way)."""
    if not os.path.exists(path):
        return "absent"
    if is_foreign(path, token):
        return "foreign"
    try:
        minicbf.read_checked(path)
    except LbnlDaskError:
        return "damaged"
    return "done"


def raw_cbf(path: str) -> bool:
    """A miniCBF file lbnl_dask did not write (a readable PILATUS header naming no job): a
    detector's or another program's frame. Anything else in the way (this package's files,
    a file that is no miniCBF) is not."""
    try:
        lines = minicbf.read_header(path).lines
    except LbnlDaskError:
        return False
    return not any(ln.startswith(JOB_LINE.format("")) for ln in lines)


def check_ours(paths: list[str]) -> None:
    """OutputError for an existing file of ``paths`` that is a :func:`raw_cbf`: raw detector
    frames are never replaced, --overwrite or not."""
    for p in paths:
        if os.path.exists(p) and raw_cbf(p):
            raise OutputError(f"{p}: a miniCBF file lbnl_dask did not write (a detector's "
                              "frame?): never replaced, even with --overwrite; choose another "
                              "prefix")  # fmt: skip


def check_free(paths: list[str]) -> None:
    """OutputError if one of ``paths`` exists (a user's file is replaced only if asked)."""
    for p in paths:
        if os.path.exists(p):
            raise OutputError(f"{p}: exists (use --overwrite to replace it)")


def remove_stale(prefix: str, keep: list[str], inputs=(), after: int = 0) -> list[str]:
    """With --overwrite: remove ``<prefix>_NNNNN.cbf`` files not in ``keep`` (an earlier,
    longer run's) and numbered above ``after``, so the folder holds one series; never one of
    ``inputs`` (a series read from the same folder and prefix). Returns what it removed."""
    prefix, keep, ids = os.path.abspath(prefix), set(keep), {file_id(i) for i in inputs}
    pattern = glob.escape(prefix) + "_" + "[0-9]" * 5 + "*.cbf"
    stale = [p for p in glob.glob(pattern)
             if (m := re.fullmatch(r"_(\d{5,})\.cbf", p[len(prefix) :])) and p not in keep
             and int(m.group(1)) > after and file_id(p) not in ids and not raw_cbf(p)]  # fmt: skip
    for p in stale:
        os.remove(p)
    return stale


def to_cbf(master, prefix: str, first_image: int = 1, last_image: int | None = None,
           datablock: int | None = None, scheduler: str = "auto", workers: int | None = None,
           overwrite: bool = False, progress: bool = False, slurm=None,
           token: str | None = None) -> CbfJob:  # fmt: skip
    """Write frames ``first_image``..``last_image`` (1-based) of the dataset of ``master``
    as ``<prefix>_NNNNN.cbf``; returns the :class:`CbfJob` (``.paths``, ``.todo``). A
    re-run keeps the files of the same job (``token``) and writes the rest; another file in
    the way is replaced only with ``overwrite``. On bad input it removes the files it
    wrote; interrupted, it keeps those it finished (the same call resumes).

    Example::

        files = to_cbf("out/b2s2h12_master.h5", "out/cbf/b2s2h12").paths   # ..._00001.cbf
    """
    cj = cbf_job(master, prefix, first_image, last_image, datablock, token, overwrite)
    check_ours(cj.foreign)  # first: --overwrite would not help
    if cj.foreign and not overwrite:
        check_free(cj.foreign)
    if overwrite:  # an earlier, longer run's files after these: the folder holds one series
        remove_stale(prefix, cj.paths, after=int(re.search(r"_(\d+)\.cbf$", cj.paths[-1])[1]))
    if not cj.todo:
        return cj
    output_folder(os.path.dirname(cj.paths[0]))
    before = {p: os.stat(p).st_mtime_ns for p in cj.todo if os.path.exists(p)}
    scheduler, _ = choose_scheduler(scheduler)
    try:
        with client_for(scheduler, workers, slurm) as client:
            run(cj.job, client, progress, prefix="write-cbf")
    except KeyboardInterrupt:  # finished files are this job's: the same command resumes
        raise
    except BaseException:  # bad input: what this run wrote goes
        for p in cj.todo:
            if os.path.exists(p) and before.get(p) != os.stat(p).st_mtime_ns:
                os.remove(p)
        raise
    return cj


def main(argv=None) -> int:
    """``lbnl-to-cbf``: an Eiger/NXmx dataset as a miniCBF series."""
    one_openmp_thread()
    p = argparse.ArgumentParser(
        prog="lbnl-to-cbf",
        description="Write the frames of an Eiger/NXmx dataset (a detector's master or "
        "lbnl-compress's output) as miniCBF files PREFIX_NNNNN.cbf, with PILATUS_1.2 headers "
        "from the master, in parallel (what eiger2cbf does serially), for fast_dp and other "
        "programs that read CBF only. A re-run keeps the files it finished and writes the rest.",
    )
    p.add_argument("master", help="the dataset's *_master.h5")
    p.add_argument("prefix", nargs="?", help="output prefix, or a folder to write into "
                   "(default: the master's name without _master.h5, or its extension, "
                   "here)")  # fmt: skip
    p.add_argument("-1", "--first_image", dest="first", type=int, default=1,
                   help="first image, 1-based (default 1), as lbnl-compress -1")  # fmt: skip
    p.add_argument("-N", "--last_image", dest="last", type=int, default=None,
                   help="last image (default: the last), as lbnl-compress -N")  # fmt: skip
    p.add_argument("--datablock", type=at_least_1, default=None, help="frames per task (default: a "
                   "data file's, at most about 256 MB of pixels)")  # fmt: skip
    p.add_argument("--scheduler", default="auto", help="threads, processes, auto (default: "
                   "processes where they can start), or a scheduler address")  # fmt: skip
    p.add_argument("-w", "--workers", type=at_least_1, default=None,
                   help="worker processes (default: one per core)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace files in the way")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: when on a terminal)")  # fmt: skip
    p.add_argument("-V", "--version", action="version", version=f"%(prog)s {__version__}")
    args = p.parse_args(argv)
    name = os.path.basename(args.master)  # its name without _master.h5 (or .h5, .nxs...)
    name = name.removesuffix("_master.h5") if name.endswith("_master.h5") else (
        os.path.splitext(name)[0] or name)  # fmt: skip
    prefix = args.prefix or name
    if prefix.endswith(os.sep) or os.path.isdir(prefix):
        prefix = os.path.join(prefix, name)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    try:
        with stop_on_sigterm():  # a batch system's time limit: the same line as Ctrl-C
            cj = to_cbf(args.master, prefix, args.first, args.last, args.datablock,
                        args.scheduler, args.workers, args.overwrite, progress)  # fmt: skip
    except LbnlDaskError as e:
        print(f"lbnl-to-cbf: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print("lbnl-to-cbf: interrupted; the files finished are kept: run the same command "
              "again to write the rest", file=sys.stderr)  # fmt: skip
        return 128 + getattr(e, "signal", signal.SIGINT)  # 130 for Ctrl-C, 143 for SIGTERM
    for n in cj.notes:  # (a NaN beam centre is written as such: say so)
        print(f"lbnl-to-cbf: note: {n}", file=sys.stderr)
    kept = len(cj.paths) - len(cj.todo)
    note = f" ({kept} kept from an earlier run)" if kept else ""
    first, last = (os.path.basename(p) for p in (cj.paths[0], cj.paths[-1]))
    print(f"wrote {len(cj.todo)} miniCBF files{note}: {first} ... {last}")
    return 0


#: The console script (pyproject.toml): :func:`main`, then :func:`~lbnl_dask.cluster.console`.
command = console(main)


if __name__ == "__main__":
    sys.exit(command())
