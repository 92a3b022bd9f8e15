"""The job of ``lbnl-compress``.

Open lazily -> coarsen -> round trip -> one task per datablock -> master.

:func:`output_frames` is the transform chain on the lazy frames (counts, sum and bin in one
coarsen, scale, log/exp, omitted regions, the lossy round trip through ``map_blocks``, the
output type); :func:`build` plans the run and turns the chain into write tasks, one per
output data file and the master last; :func:`compress` runs them on a scheduler and
returns a :class:`~lbnl_dask.report.Report`.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from concurrent.futures import Future, wait
from dataclasses import dataclass
from functools import partial

import dask
import dask.array as da
import h5py
import numpy as np
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph
from dask.local import get_sync

from . import cbf_output, resume
from . import transform as T
from .cluster import (
    LOCAL,
    SYNC,
    available_cores,
    choose_scheduler,
    client_for,
    raise_if_interrupted,
    run,
)
from .codecs import JPEG2000, HCompress, check_openjpeg
from .eiger import open_dataset
from .errorbound import SZ3Storage
from .errors import Interrupted, LbnlDaskError, NoSpaceError, OptionError, OutputError
from .header import MasterFile, copy_notes, link_notes, scan_axis
from .layout import PIXEL_MASK
from .lossless import storage_codec
from .meta import MasterRewriter
from .options import (
    OutputOptions,
    RunSettings,
    log_base,
    output_dtype,
    output_saturation,
    pixel_transform,
    split_options,
)
from .plan import Plan, check_size, chunk_frames, make_plan, output_names
from .regions import omit_regions, region_mask
from .report import Report
from .roundtrip import decode_frames, encode_frames, hcompress_frames, sampled_sizes
from .spots import spot_regions
from .writer import (
    XDS_READABLE,
    finish_master_task,
    package_frames,
    prepare_master_task,
    write_block_task,
    write_squash_task,
)


@dataclass
class OutputGraph:
    """The lazy output of the transforms: ``final`` (n_out, ny', nx') frames of ``dtype``;
    ``encoded`` the lossy ``codec``'s bytes per frame, object (n_out, 1, 1), or None."""

    final: da.Array
    encoded: da.Array | None
    codec: object
    dtype: np.dtype
    saturation: float
    shape: tuple
    notes: list


def output_frames(
    frames: da.Array, cutoff: int | None, mask, o: OutputOptions, frame_shape: tuple | None = None
) -> OutputGraph:
    """The transforms of ``o`` applied lazily to raw ``frames`` (n, ny, nx): counts, sum,
    bin, scale, log/exp, omitted regions, lossy round trip, output type.
    ``frame_shape``: the frames' (ny, nx) when they come zero-padded to multiples of -b
    (:meth:`EigerDataset.padded_frames`, as ``lbnl-compress`` reads them)."""
    notes = []
    s, b = o.sum_range, o.bin_range
    per_pixel = T.count_limit(cutoff, frames.dtype)
    # the top count a raw pixel holds (unsigned: all bits set is the invalid marker)
    most = int(np.iinfo(frames.dtype).max) - (frames.dtype.kind == "u")
    if cutoff is not None and cutoff > most:
        notes.append(f"the input's saturation {cutoff} is above any count its {frames.dtype} "
                     f"frames hold ({most} at most): no input pixel is taken as an overload, "
                     f"though those at {most} may be")  # fmt: skip
    dtype, saturation = output_dtype(o, output_saturation(o, per_pixel, notes), notes)

    counts_type = T.counts_dtype(per_pixel * max(o.scale_factor, 1.0), s * b * b)
    values = T.summed_binned_counts(frames, s, b, mask, cutoff, counts_type, frame_shape)
    values = T.scale(values, o.scale_factor, None if o.logarithm_base or o.exponent else saturation)
    signed = (o.uint or 0) < 0 or (o.ufloat or 0) < 0
    if o.logarithm_base is not None:
        values = T.log_transform(values, log_base(o.logarithm_base, "-L"), signed)
    if o.exponent is not None:
        values = T.exp_transform(values, log_base(o.exponent, "-X"), signed)
    if o.regions:
        try:
            omit = region_mask(o.regions, values.shape[1:])
        except ValueError as e:
            raise OptionError(str(e)) from None
        values = omit_regions(values, omit)

    # -c sz3: no round trip, the data files store SZ3's own bytes (_chunk_packages)
    codec, encoded = (None if o.stores_lossy else o.codec()), None
    if isinstance(codec, JPEG2000):
        check_openjpeg()
    if codec is not None:  # encoded once: the bytes serve the round trip, the sizes and -q
        largest = cutoff - 1 if cutoff is not None else most  # the largest valid raw count
        if not _below_saturation(o, largest, saturation):  # counts the output cannot hold:
            values = T.saturate(values, saturation)  # overloads, kept and out of cell totals
        keep = None  # pixels stored exactly: invalid/saturated ones always, spots if asked
        if o.keep_spots is not None:
            keep = spot_regions(values, o.keep_spots, o.keep_grow, o.keep_frames)
        per_frame = (values.chunks[0], (1,), (1,))
        if isinstance(codec, HCompress) and o.out_squash is None:
            # no coder: the pixels from the H-transform alone, the byte count from a sample
            encoded = da.map_blocks(sampled_sizes, values, codec, keep, o.data_block_size,
                                    dtype=object, chunks=per_frame)  # fmt: skip
            values = da.map_blocks(hcompress_frames, values, codec, keep, o.restores_totals,
                                   dtype=values.dtype)  # fmt: skip
        else:  # encoded once: the bytes serve the round trip, the sizes and -q
            encoded = da.map_blocks(encode_frames, values, codec, keep, dtype=object,
                                    chunks=per_frame)  # fmt: skip
            values = da.map_blocks(decode_frames, values, encoded, codec, keep,
                                   o.restores_totals, dtype=values.dtype)  # fmt: skip
    final = T.finalize(values, dtype, saturation, o.integral, marked=codec is not None)
    return OutputGraph(final, encoded, codec, dtype, saturation, tuple(values.shape[1:]), notes)


def _below_saturation(o: OutputOptions, largest_raw: int, saturation) -> bool:
    """Whether every valid count (each input pixel at most ``largest_raw``, summed, binned
    and scaled, then rounded) is below the output's ``saturation``: not where a codec, the
    output type or --cap-sums lowered it, nor through -L/-X."""
    if o.logarithm_base is not None or o.exponent is not None:
        return False
    largest = largest_raw * o.sum_range * o.bin_range**2 * o.scale_factor
    return saturation > largest + 0.5


def build(
    master,
    out: str = "out_data",
    options: OutputOptions | None = None,
    settings: RunSettings | None = None,
):
    """The lazy job: (tasks, plan). ``tasks`` is a dask Delayed writing every data file not
    finished yet (one task each) and the master last; ``plan`` is the :class:`Plan`."""
    o, run_settings = options or OutputOptions(), settings or RunSettings()
    ds = open_dataset(master, o.first_image, o.last_image)
    n_in, ny, nx = ds.shape
    if o.sum_range > n_in:
        why = ""
        if not ds.is_cbf and ds.meta.nimages and ds.n_available > ds.meta.n_frames:
            why = (f" (nimages x ntrigger in the master is {ds.meta.n_frames}; the data files "
                   f"hold {ds.n_available})")  # fmt: skip
        raise OptionError(f"{ds.master}: sum (-s {o.sum_range}) is larger than the {n_in} "
                          f"frames selected{why}")  # fmt: skip
    if o.bin_range > min(ny, nx):
        raise OptionError(f"{ds.master}: bin (-b {o.bin_range}) is larger than the frames "
                          f"({ny} x {nx})")  # fmt: skip
    chunk = chunk_frames(o, run_settings, ny * nx)
    check_size(ds.master, n_in, (ny, nx), chunk, o, run_settings)
    ds = ds.with_datablock(chunk)
    kind = "series" if ds.is_cbf else "master"
    notes, mask = [f"{kind}: {w}" for w in ds.meta.warnings], ds.pixel_mask()
    if not ds.is_cbf and ds.meta.nimages and ds.n_available > ds.meta.n_frames:
        notes.append(f"master: the data files hold {ds.n_available} frames, nimages x "
                     f"ntrigger says {ds.meta.n_frames}: the first {ds.meta.n_frames} are "
                     "used")  # fmt: skip
    omega, total = ds.meta.omega, ds.meta.n_frames if ds.meta.nimages else ds.n_available
    if not ds.is_cbf and omega is not None and len(omega) > total > 1:
        notes.append(f"master: omega holds {len(omega)} angles for {total} images: the first "
                     f"{total} are used")  # fmt: skip
    moving, angles = None, None  # the axis that moves: Dectris' phi scans keep omega fixed
    if not ds.is_cbf:
        with MasterFile(ds.master) as f:
            notes += [f"master: {n}" for n in copy_notes(f, total, (ny, nx), o.bin_range > 1)]
            notes += [f"master: {n}" for n in link_notes(f)]
            if ds.meta.pixel_transform is not None:
                notes.append(f"master: its pixels are {ds.meta.pixel_transform}, not counts (an "
                             "earlier lbnl-compress -S/-L/-X); the output records what its "
                             "own pixels are in counts")  # fmt: skip
            if o.sum_range > 1:
                moving, angles = scan_axis(f, total, short=True)[:2]
    notes += sum_notes(ds.meta, ds.first_image, ds.first_image + n_in - 1, o.sum_range, kind,
                       angles, moving or "omega")  # fmt: skip
    if not ds.is_cbf:
        notes += trigger_time_notes(ds.meta, ds.first_image)
    if ds.meta.overload is None:
        notes.append(f"{kind}: no saturation value nor count cutoff: the output's own (the "
                     "input type's top times the pixels summed, or a codec's or the output "
                     "type's cap; sums that reach it are overloads) is written as "
                     "saturation_value")  # fmt: skip
    if (
        not ds.is_cbf
        and None not in (ds.meta.nx, ds.meta.ny)
        and (ds.meta.ny, ds.meta.nx) != (ny, nx)
    ):
        notes.append(f"master: x/y_pixels_in_detector {ds.meta.nx} x {ds.meta.ny} differ from "
                     f"the frames' {nx} x {ny}: the output's are its frames'")  # fmt: skip
    wrong, written = None if ds.is_cbf else ds.mismatched_mask(), mask
    if wrong is not None:  # ds.pixel_mask() is None then, as every reader of ds finds it
        notes.append(f"pixel_mask {wrong} does not match the frames {(ny, nx)}: ignored "
                     "(the output's masks no pixel)")  # fmt: skip
        written = np.zeros((ny, nx), np.uint32)  # not the source's, of another shape
    if ds.frames.dtype.kind == "i" and not ds.is_cbf:  # (miniCBF: -1 gaps, -2 bad, as read)
        notes.append(f"{kind}: the frames are {ds.frames.dtype}: a negative value is "
                     "taken as an invalid pixel (Dectris marks gaps with -1), not as a "
                     "count")  # fmt: skip
    graph = output_frames(ds.padded_frames(o.bin_range), ds.meta.overload, mask, o, (ny, nx))
    plan = make_plan(ds, out, o, run_settings, graph, notes)
    return _write_tasks(ds, o, graph, plan, written), plan


def sum_notes(meta, first: int, last: int, s: int, kind: str = "master", angles=None,
              axis: str = "omega") -> list[str]:  # fmt: skip
    """Notes on what ``-s s`` sums over images ``first``..``last`` (1-based) that one
    rotation would not: sum groups holding a jump of the scan ``axis``' start ``angles`` (per
    image; None: the master's omega), as wedges of two triggers or a second sweep make; angles
    that do not move (stills, a grid scan: images of one angle, perhaps of other sample
    positions); without angles, images of two triggers."""
    if s < 2 or last - first + 1 < 2:
        return []
    n = last - first + 1
    groups = np.arange(n) // s  # each image's output frame (0-based)
    if angles is None:
        angles = meta.omega
    if angles is not None and len(angles) >= last:
        starts = np.asarray(angles[first - 1 : last], np.float64)
        steps = (np.diff(starts) + 180) % 360 - 180  # a scan across 360 deg is one sweep
        known = np.isfinite(steps)  # (a NaN angle tells nothing)
        if not known.any():
            return []
        typical = float(np.median(np.abs(steps[known])))
        if typical == 0:
            return [f"{kind}: {axis} does not move, nor does another axis (stills, or a grid "
                    f"scan): -s {s} sums images taken at one angle, perhaps of other sample "
                    "positions"]  # fmt: skip
        off = np.zeros_like(known)
        off[known] = np.abs(np.abs(steps[known]) - typical) > 0.5 * typical  # (jitter passes)
        jumps = np.flatnonzero(off)
        inside = jumps[groups[jumps] == groups[jumps + 1]]  # between two images of a group
        if inside.size:
            i = int(inside[0])
            return [f"{kind}: {axis} jumps from {starts[i]:g} to {starts[i + 1]:g} deg between "
                    f"images {first + i} and {first + i + 1} (steps of {typical:g} deg) inside "
                    f"{np.unique(groups[inside]).size} sum group(s) of -s {s}: those output "
                    "frames sum images of two sweeps"]  # fmt: skip
        return []
    per = meta.nimages
    if meta.ntrigger > 1 and per > 1:
        trigger = (first - 1 + np.arange(n)) // per
        across = np.unique(groups[:-1][(trigger[:-1] != trigger[1:]) & (groups[:-1] == groups[1:])])
        if across.size:
            return [f"{kind}: {meta.ntrigger} triggers of {per} images: {across.size} sum "
                    f"group(s) of -s {s} hold images of two triggers (the first: output frame "
                    f"{int(across[0]) + 1}); the master has no angles to tell whether they "
                    "are one sweep"]  # fmt: skip
    return []


def trigger_time_notes(meta, first: int) -> list[str]:
    """A note when the output starts at image ``first`` (1-based) after the first trigger of
    a multi-trigger collection: its start time is moved by (first - 1) x frame_time
    (:meth:`~lbnl_dask.meta.MasterRewriter._start_date`), and the pauses between triggers,
    which no master records, are not in that."""
    per, triggers = int(meta.nimages or 0), int(meta.ntrigger or 1)
    if first <= 1 or triggers < 2 or per < 1 or first <= per or meta.frame_time is None:
        return []
    return [f"master: image {first} is in trigger {(first - 1) // per + 1} of {triggers}: the "
            f"output's start time is moved by {first - 1} x frame_time, without the pauses "
            "between triggers (the master does not record them), so it may be early"]  # fmt: skip


def _write_tasks(ds, o: OutputOptions, graph: OutputGraph, plan: Plan, mask) -> Delayed:
    """One task per output data file (and squash file), then the master's, which takes them
    all. The tasks are one graph layer written out here: a ``dask.delayed`` call per file
    would merge the whole graph again for each (quadratic: minutes at 10^6 frames)."""
    packages, by_block = _chunk_packages(o, graph, plan)
    d, token, layer = o.data_block_size, plan.token, {}
    blocks = _file_tasks(layer, "datablock", plan.data_files, plan.redo, plan, lambda k: (
        write_block_task, by_block[k], k * d + 1, o.compression, o.compression_level, token,
        plan.frame_shape_out, plan.dtype, o.storage_filter()))  # fmt: skip
    squashed = _file_tasks(layer, "squash", plan.squash_files, plan.redo_squash, plan, lambda k: (
        write_squash_task, by_block[k], k * d + 1, graph.codec.get_config(), token))  # fmt: skip
    mdir = os.path.dirname(os.path.abspath(plan.master))
    links = [os.path.relpath(os.path.abspath(p), mdir) for p in plan.data_files]
    master_key, prepared = f"write-master-{token}", f"prepare-master-{token}"
    # absolute paths everywhere: a remote worker's working directory is not the client's
    path = os.path.abspath(plan.master)
    layer[prepared] = (prepare_master_task, path, ds.master_source(), links,
                       _rewriter(ds, o, plan), mask, o.bin_range, token)  # fmt: skip
    first = next((k for k in blocks if isinstance(k, str) and k in layer), None)
    if first is not None:  # written before the first data file: dask's order would leave a
        layer[first] = (*layer[first], prepared)  # task no frame needs to the very end
    layer[master_key] = (finish_master_task, prepared, path, blocks, squashed)
    hlg = HighLevelGraph.from_collections(f"write-{token}", layer, dependencies=[packages])
    return Delayed(master_key, hlg, layer=f"write-{token}")


def _file_tasks(layer: dict, kind: str, files: list, redo: list, plan: Plan, task_of) -> list:
    """Add to ``layer`` a task per file to write (``task_of(k)``: the function and its
    arguments but the path, made absolute); the record of each file kept from an earlier
    run instead. Returns, per file, its task's key or its record."""
    out = []
    for k, path in enumerate(files):
        if not redo[k]:
            out.append(resume.kept_record(path, plan.block_sizes[k]))
            continue
        func, *args = task_of(k)
        key = f"write-{kind}-{k + 1:06d}-{plan.token}"
        layer[key] = (func, os.path.abspath(path), *args)
        out.append(key)
    return out


def _chunk_packages(o: OutputOptions, graph: OutputGraph, plan: Plan):
    """The packages array (:func:`package_frames`, one object per frame) and, per output
    data file, the keys of its chunks. Everything a chunk gives the files comes from ONE
    array, so dask fuses each chunk's chain into one task and computes it once; chunks
    never straddle two data files."""
    store = None  # the chunks encoded in the graph, or frames the writer's HDF5 filters
    if o.stores_lossy:
        store = SZ3Storage(o.sz3_bound, graph.saturation)
    else:  # the lossless filters' chunks, made by the workers outside HDF5's lock
        store = storage_codec(o.compression, o.compression_level, graph.dtype)
    final = graph.final
    packages = da.map_blocks(package_frames, final, graph.encoded, store,
                             bool(plan.squash_files), dtype=object,
                             chunks=(final.chunks[0], (1,), (1,)))  # fmt: skip
    (packages,) = dask.optimize(packages)  # the chain of each chunk fused into one task
    by_block = [[] for _ in range(plan.nblocks)]
    start = 0
    for i, c in enumerate(final.chunks[0]):
        by_block[start // o.data_block_size].append((packages.name, i, 0, 0))
        start += c
    return packages, by_block


def _rewriter(ds, o: OutputOptions, plan: Plan) -> MasterRewriter:
    """The master's rewrite rules for this output."""
    return MasterRewriter(
        n_total=ds.meta.n_frames or ds.n_available, first=ds.first_image, last=ds.last_image,
        s=o.sum_range, b=o.bin_range, saturation=_as_stored(plan.saturation, plan.dtype),
        bit_depth=8 * plan.dtype.itemsize, compression=o.compression,
        frame_shape=plan.frame_shape_in, transform=plan.transform, period=ds.meta.frame_time,
    )  # fmt: skip


def _as_stored(saturation, dtype: np.dtype):
    """The saturation value as the output pixels hold it: float pixels are rounded to their
    type, so the master's value equals the saturated pixels' (readers compare with ==)."""
    return float(dtype.type(saturation)) if dtype.kind == "f" else saturation


def compress(master, out: str = "out_data", **options) -> Report:
    """Sum, bin, lossy-round-trip and rewrite an Eiger dataset; return a :class:`Report`.

    Parameters: ``master`` the input ``*_master.h5``; ``out`` the output prefix
    (``<out>_NNNNNN.h5`` data files, ``<out>_master.h5``); ``options`` the fields of
    :class:`~lbnl_dask.options.OutputOptions` and :class:`~lbnl_dask.options.RunSettings`
    (``bin_range`` b: b x b pixels summed; ``sum_range`` s: frames summed; ``hcomp_scale``:
    HCompress quantisation step in counts; ``scheduler``...). Never overwrites without
    ``overwrite=True``; a re-run of the same job keeps the data files an interrupted run
    finished and writes the rest.

    Example::

        report = compress("data_master.h5", "out/b2s2h12", bin_range=2, sum_range=2,
                          hcomp_scale=12, scheduler="threads")
        print(report.ratio_raw2)
    """
    o, settings = split_options(**options)
    t0 = time.perf_counter()
    master, out = os.fspath(master), os.fspath(out)
    # before anything is written; --report profiles a cluster's workers
    locked = o.process_lock or ("--report profiles worker processes" if settings.report else None)
    scheduler, why = choose_scheduler(settings.scheduler, locked)
    if settings.report and scheduler in LOCAL and settings.slurm is None:
        raise OptionError(
            "--report needs a distributed scheduler (processes, an address or --slurm)"
        )
    settings.validate = settings.validate or bool(settings.xds_plugins)
    if settings.validate:  # what would fail only at the end, refused now
        _check_xds_reads(o, "--xds-plugin" if settings.xds_plugins else "--validate")
        _check_plugins_load(settings.xds_plugins)
    first_data, master_out, first_squash = output_names(out, o, 1)
    finished = False
    try:
        with resume.output_lock(master_out, first_data + first_squash, settings.wait):
            job, plan = build(master, out, o, settings)
            raise_if_interrupted()  # a Ctrl-C numba dropped while the graph was built
            cbf_files = _check_cbf(out, o, plan, settings) if settings.cbf else []
            if why:
                plan.notes.append(why)
            resume.remove_partials(plan.outputs())
            if settings.verbose:
                _print_plan(plan)
            if settings.overwrite:
                resume.remove_stale(plan.master, plan.data_files, plan.squash_files)
            sample = _FidelitySample(master, plan, o, settings.fidelity,
                                     not _one_core(scheduler, settings))  # fmt: skip
            try:
                if plan.complete:
                    blocks = [resume.kept_record(p, 0) for p in plan.data_files]
                    plan.notes.append("already complete: this job's master and data files are "
                                      "all there, every data file's chunks as written (their "
                                      "CRC-32s; the master has none to check); none was "
                                      "rewritten")  # fmt: skip
                else:
                    _warn_if_short_of_space(plan)
                    blocks = _run(job, plan, settings, scheduler)
                finished = True  # a Ctrl-C or SIGTERM from here on: the output is complete
                plan.notes += _mask_notes(plan.master)
                try:
                    validation = (
                        _validate_output(plan.master, settings.xds_plugins)
                        if settings.validate
                        else None
                    )
                except KeyboardInterrupt as e:
                    raise Interrupted(f"interrupted while validating; the output is complete: "
                                      f"{plan.master}", e) from None  # fmt: skip
                try:
                    fidelity = sample.line()
                except KeyboardInterrupt as e:
                    raise Interrupted(f"interrupted while estimating the fidelity; the output is "
                                      f"complete: {plan.master}", e) from None  # fmt: skip
            except BaseException:
                sample.settle()
                raise
            cbf_kept = _write_cbf(out, cbf_files, plan, settings, scheduler) if cbf_files else 0
        report = Report.of(plan, blocks, time.perf_counter() - t0, validation, fidelity)
        report.cbf_files, report.cbf_kept = cbf_files, cbf_kept
        return report
    except KeyboardInterrupt as e:  # (after the run: the lock's release, the report)
        if not finished:
            raise
        raise Interrupted(f"interrupted once the run had finished; its output is complete: "
                          f"{master_out}", e) from None  # fmt: skip


#: The share of output pixels masked above which a run says so.
MASKED_NOTE = 0.5


def _mask_notes(master: str) -> list[str]:
    """A note when the output's pixel mask (binned, as written) masks most of its pixels: a
    mask of all ones had made every output pixel invalid without a word."""
    with MasterFile(master) as f:  # (the mask of a detector group of another name too)
        m = f.get(PIXEL_MASK)
        if not isinstance(m, h5py.Dataset) or m.size == 0:
            return []
        share = np.count_nonzero(m[()]) / m.size
    if share <= MASKED_NOTE:
        return []
    return [f"the pixel mask masks {share:.0%} of the output's pixels: they are all written as "
            "invalid (is the master's pixel_mask right?)"]  # fmt: skip


def _check_cbf(out: str, o: OutputOptions, plan: Plan, settings: RunSettings) -> list[str]:
    """The miniCBF files ``--cbf`` will write (the output's image numbers 1..n), checked
    before the run: integer output, no input file among them, none in the way (unless
    --overwrite, which also removes an earlier, longer run's)."""
    if plan.dtype.kind not in "iu":
        raise OptionError(f"--cbf needs integer output, not {plan.dtype} (-f, -L or -X)")
    if pixel_transform(o) is not None:  # integers with -u, but not counts (lbnl-to-cbf's rule)
        raise OptionError("--cbf writes counts: it cannot go with -S, -L or -X")
    if plan.transform is not None:  # an earlier -S/-L/-X output as the input
        raise OptionError(f"--cbf writes counts, and this output's pixels would be "
                          f"{plan.transform} (the input's are not counts)")  # fmt: skip
    # (its saturation fits int32: integer output keeps it below 2**31 - 1, for Neggia)
    names = [cbf_output.cbf_name(os.path.abspath(out), k + 1) for k in range(plan.frames_out)]
    resume.check_outputs(names, plan.inputs, overwrite=True)  # never over an input file
    foreign = [p for p in names if cbf_output.is_foreign(p, plan.token)]
    cbf_output.check_ours(foreign)  # nor over a detector's frames, --overwrite or not
    if settings.overwrite:
        cbf_output.remove_stale(out, names, plan.inputs)
    else:
        cbf_output.check_free(foreign)
    return names


def _write_cbf(out: str, names: list, plan: Plan, settings: RunSettings, scheduler: str) -> int:
    """Write the output as miniCBF files (a re-run keeps those this job finished); returns
    how many were kept."""
    try:
        cj = cbf_output.to_cbf(plan.master, out, scheduler=scheduler, workers=settings.workers,
                               overwrite=settings.overwrite, progress=settings.progress,
                               slurm=settings.slurm, token=plan.token)  # fmt: skip
    except KeyboardInterrupt as e:
        if all(os.path.exists(p) for p in names):  # stopped after the last was in place
            raise Interrupted(
                f"interrupted after the miniCBF files were written: the output is "
                f"complete: {plan.master} and {len(names)} CBF files",
                e,
            ) from None
        raise Interrupted(f"interrupted while writing the miniCBF files; the HDF5 output is "
                          f"complete: {plan.master}; run the same command again to write "
                          "the remaining CBF files", e) from None  # fmt: skip
    return len(cj.paths) - len(cj.todo)


def _one_core(scheduler: str, settings: RunSettings) -> bool:
    """Whether this run has one core on this machine: the sync scheduler, or threads or a
    local cluster with one worker (``-p 1``, or a batch job given one core). The fidelity
    sample's reads then follow the writes, instead of taking a second core beside them."""
    if scheduler in SYNC:
        return True
    local = settings.slurm is None and scheduler in ("threads", "processes")
    return local and (settings.workers or available_cores()) == 1


class _FidelitySample:
    """The report's fidelity line (:func:`lbnl_dask.quality.sample_fidelity`) for a lossy
    run whose output is in counts (not -S, -L, -X or -R, which change them on purpose). Its
    lossless side reads only the input: with ``concurrent`` a daemon thread computes it while
    the run writes (a run that fails or is interrupted waits for it to end, :meth:`settle`,
    so that the interpreter does not cut it off mid-call), else :meth:`line` does;
    :meth:`line` then compares the output's sampled frames with it."""

    def __init__(self, master: str, plan: Plan, o: OutputOptions, wanted: bool,
                 concurrent: bool = True):  # fmt: skip
        from . import quality

        self.compressed, self.note, self.work, self.future = plan.master, None, None, None
        if not wanted or o.lossy is None:
            return
        if not o.integral or o.scale_factor != 1 or o.regions:
            self.note = "not estimated: -S, -L, -X or -R change the counts on purpose"
            return
        run = quality.RunGeometry(o.first_image, o.first_image + plan.frames_in - 1,
                                  o.sum_range, o.bin_range)  # fmt: skip
        self.work = partial(quality.fidelity_reference, master, run, scheduler=get_sync)
        if concurrent:
            self.future = Future()
            threading.Thread(target=_fill, args=(self.future, self.work), name="lbnl-fidelity",
                             daemon=True).start()  # fmt: skip

    def line(self) -> str | None:
        from . import quality

        if self.work is None:
            return self.note
        reference = self.work() if self.future is None else self.future.result()
        found = quality.compare_fidelity(reference, self.compressed)
        return quality.describe_sample_fidelity(found)

    def settle(self, timeout: float = 30.0) -> None:
        """Wait (at most ``timeout`` s; it reads a few frames, well under a second as a
        rule) for the thread of a run that failed or was interrupted: left running, it was
        cut off mid-call when the interpreter ended, and the process crashed at exit (a
        segfault in 1 of 20 failed runs, or a hang). A wait beyond a second says so; a
        Ctrl-C ends it."""
        if self.future is None or self.future.done():
            return
        try:
            if not wait([self.future], 1.0).done:
                print("lbnl-compress: waiting for the fidelity estimate's reads to end "
                      "(Ctrl-C stops waiting)", file=sys.stderr)  # fmt: skip
                wait([self.future], timeout - 1.0)
        except KeyboardInterrupt:
            pass


def _fill(future: Future, work) -> None:
    """``future`` gets what ``work()`` returns or raises."""
    try:
        future.set_result(work())
    except BaseException as e:  # handed on to whoever asks for the result
        future.set_exception(e)


def _run(job, plan: Plan, settings: RunSettings, scheduler: str) -> list:
    """Run the write tasks; on bad input remove what this run wrote, on a full disk or an
    interrupt the temporaries only (finished files stay for the next run), saying what
    was kept."""
    try:
        with client_for(
            scheduler,
            settings.workers,
            settings.slurm,
            profile=bool(settings.report),
            quiet=not settings.verbose,
        ) as client:
            log = sys.stdout if settings.progress_lines else None
            return run(job, client, settings.progress, settings.report, log)
    except NoSpaceError as e:  # finished files stay: the same command resumes once there is room
        resume.remove_partials(plan.outputs())
        need = _megabytes(plan.bytes_needed())
        done = resume.finished_files(plan)
        then = resume.how_to_finish(plan, done, "when there is room")
        raise NoSpaceError(
            f"{e}; this output needs about {need} MB ({len(done)} of {len(plan.data_files)} "
            f"data file(s) finished and kept: {then})"
        ) from None
    except LbnlDaskError:
        resume.remove_outputs(plan.written())  # bad input: what this run wrote, no more
        raise
    except KeyboardInterrupt as e:
        resume.remove_partials(plan.outputs())
        raise Interrupted(resume.what_was_kept(plan), e) from None
    finally:  # the master prepared beside the frames, if the run stopped before its rename
        resume.remove_partials([plan.master])


def _warn_if_short_of_space(plan: Plan) -> None:
    """A line before the run when the output's file system has less free space than the
    data files may need (an estimate: lossy steps need less, so this does not refuse)."""
    folder = os.path.dirname(os.path.abspath(plan.master))
    free, need = shutil.disk_usage(folder).free, plan.bytes_needed()
    if free < need:
        print(f"lbnl-compress: warning: {folder}: {free / 1e6:.1f} MB free; the data files may "
              f"need about {_megabytes(need)} MB", file=sys.stderr)  # fmt: skip


def _megabytes(n: int) -> str:
    """``n`` bytes in MB as a size estimate reads: whole MB, one decimal below 10 MB (a
    small output's "about 0 MB" said nothing)."""
    return f"{n / 1e6:.0f}" if n >= 1e7 else f"{n / 1e6:.1f}"


def _print_plan(plan: Plan) -> None:
    print(f"plan: {plan.frames_in} frames in dask chunks of {plan.chunk_frames} input frames "
          f"-> {plan.frames_out} x {plan.frame_shape_out} {plan.dtype} (saturation "
          f"{plan.saturation:.10g}), {plan.nblocks} data file(s), {plan.skipped} kept from an "
          f"earlier run, job {plan.token}", file=sys.stderr)  # fmt: skip


def _check_xds_reads(o, flag: str) -> None:
    """OptionError where XDS' plugins could not read the output ``flag`` is to check: a
    compression they do not decode, or pixels that are not unsigned integers."""
    checks = f"{flag} checks the output as XDS' plugins read it, and they"
    if o.compression not in XDS_READABLE:
        raise OptionError(f"{checks} do not read -c {o.compression}: choose bslz4 or none, or "
                          f"drop {flag}")  # fmt: skip
    if o.ufloat is not None or (o.uint or 0) < 0:
        what = f"-f {o.ufloat:g}" if o.ufloat is not None else f"-u {o.uint}"
        raise OptionError(f"{checks} read unsigned integer pixels, not {what}'s: drop {what} "
                          f"or {flag}")  # fmt: skip


def _check_plugins_load(plugins) -> None:
    """Each ``--xds-plugin`` library loads and has XDS' plugin functions, before the run
    (it is used only after the output is written)."""
    from .xds_plugin import PluginError, check_loadable

    for lib in plugins:
        try:
            check_loadable(lib)
        except PluginError as e:
            raise OptionError(f"--xds-plugin {lib}: not an XDS plugin ({e})") from None


def _validate_output(master: str, xds_plugins=()) -> str:
    from .validate import validate

    res = validate(master, xds_plugins=xds_plugins)
    if res.failed:  # one line: what failed (lbnl-validate prints every check)
        fails = "; ".join(msg for level, msg in res.lines if level == "FAIL")
        raise OutputError(f"{master}: the output failed validation: {fails}")
    return str(res)
