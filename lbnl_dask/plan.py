"""The plan of a run: how frames are chunked, which files it writes, which an earlier run left.

:func:`chunk_frames` sizes the dask chunks; :func:`make_plan` names the outputs, takes the
output type from the lazy frames, and finds what an interrupted run of the same job already
finished (:mod:`lbnl_dask.resume`). A :class:`Plan` is plain data: the graph is built from
it, the report is made from it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from .cluster import available_cores
from .errors import LimitError, OptionError
from .layout import MASTER_SUFFIX, output_file_name
from .options import OutputOptions, RunSettings, job_token, pixel_transform
from .resume import check_outputs, output_states


def chunk_frames(o: OutputOptions, run: RunSettings, frame_pixels: int) -> int:
    """Input frames per dask chunk: a multiple of s (so coarsen never re-chunks) whose output
    frames divide -d (so no chunk straddles two data files), at most about 256 MB at 8 bytes
    per input pixel (the raw frames and what a task makes of them). With --keep-spots, at
    least --keep-frames output frames: the spots grow across frames by dask's overlap. Larger
    chunks measured no faster and cost peak memory (benchmarks/bench_memory.py)."""
    s, d = o.sum_range, o.data_block_size
    if run.chunk_frames:
        c_out = max(1, run.chunk_frames // s)
    else:
        c_out = max(1, (256 * 2**20) // (8 * frame_pixels * s))
        if o.keep_spots is not None:
            c_out = max(c_out, o.keep_frames)
    c_out = min(c_out, d)
    while d % c_out:
        c_out -= 1
    return c_out * s


#: Most dask tasks (input chunks) one run plans: building the graph costs about a
#: millisecond per chunk, and a larger job is better run in parts (-1/-N).
MAX_CHUNKS = 100_000
#: Bytes of worker memory a task needs per input pixel of its chunk, and per frame pixel
#: for the frame-sized masks and buffers (a generous bound of what the kernels allocate).
TASK_BYTES_PER_PIXEL, FRAME_BYTES_PER_PIXEL = 16, 16


def check_size(master: str, n: int, frame: tuple, chunk: int, o, run) -> None:
    """Refuse, in one line, a job whose graph would be too large (more than MAX_CHUNKS
    tasks) or whose frames do not fit a worker's memory (local schedulers: the machine's
    memory shared by the workers)."""
    tasks = -(-n // chunk)
    if tasks > MAX_CHUNKS:
        part = MAX_CHUNKS * chunk
        raise LimitError(f"{master}: {n} frames make {tasks} dask tasks, more than one run "
                         f"plans ({MAX_CHUNKS}); compress it in parts of at most {part} frames "
                         f"(-1 1 -N {part}, then -1 {part + 1} ...)")  # fmt: skip
    if run.slurm is not None or run.scheduler not in ("auto", "processes", "threads", "sync"):
        return  # remote workers: their memory is not known here
    import psutil

    pixels = int(np.prod(frame))
    need = pixels * (TASK_BYTES_PER_PIXEL * chunk + FRAME_BYTES_PER_PIXEL)
    workers = run.workers or available_cores()
    have = psutil.virtual_memory().total / workers
    if need > have:
        raise LimitError(f"{master}: frames of {frame[1]} x {frame[0]} pixels need about "
                         f"{need / 1e9:.1f} GB per task ({chunk} frame(s) at -s {o.sum_range}); "
                         f"a worker here has {have / 1e9:.1f} GB (fewer workers, -p, give each "
                         "more)")  # fmt: skip


def output_names(out: str, o: OutputOptions, nblocks: int) -> tuple[list, str, list]:
    """(data files, master, squash files) of output prefix ``out``: ``<out>_NNNNNN.h5``,
    ``<out>_master.h5`` (or ``-m``) and, with ``-q``, ``<q>_NNNNNN.h5``
    (``-q out_file``: ``<out>_squash_NNNNNN.h5``)."""
    if not os.path.basename(out):
        raise OptionError(f"-o {out}: give a prefix for the output files (a folder ends "
                          "it), as in -o out/run1")  # fmt: skip
    data = [output_file_name(out, k) for k in range(1, nblocks + 1)]
    m = o.out_master
    master = out + MASTER_SUFFIX if m in (None, "out_file") else f"{m}.h5"
    sq = o.out_squash
    squash = []
    if sq is not None:
        stem = f"{out}_squash" if sq == "out_file" else sq
        if os.path.abspath(stem) == os.path.abspath(out):
            raise OptionError(
                f"-q {sq}: the squash files would take the data files' names "
                f"({output_file_name(out, 1)}); give another prefix, or -q out_file"
            )
        squash = [output_file_name(stem, k) for k in range(1, nblocks + 1)]
    files = {os.path.abspath(p) for p in data + squash}
    if os.path.abspath(master) in files:
        raise OptionError(f"-m {m}: the master would take the name of an output file "
                          f"({os.path.basename(master)}); give it another")  # fmt: skip
    return data, master, squash


@dataclass
class Plan:
    """What a run writes: output names and shapes, the pixel type, the job token, and which
    files an earlier run of the same job finished (``redo`` False: kept as they are)."""

    master: str
    data_files: list
    squash_files: list
    block_sizes: list  # output frames per data file
    frames_in: int
    frame_shape_in: tuple
    frame_shape_out: tuple
    dtype: np.dtype
    saturation: float
    token: str
    bytes_in: int
    lossy: str | None  # 'hcomp', 'j2k', 'sz3', 'zfp' or None
    chunk_frames: int  # input frames per dask chunk
    sum_range: int = 1
    notes: list = field(default_factory=list)
    redo: list = field(default_factory=list)
    redo_squash: list = field(default_factory=list)
    complete: bool = False  # this job's master and files all there and undamaged
    master_was_done: bool = False  # this job's master was there before the run
    overwrite: bool = False  # --overwrite: every file written again, finished or not
    master_bytes_in: int = 0  # the input master's size: the output master is about as large
    inputs: list = field(default_factory=list)  # the input files (none may be overwritten)
    itemsize_in: int = 2  # bytes of an input pixel
    transform: str | None = None  # what the output pixels are where not counts (-S/-L/-X)

    @property
    def frames_out(self) -> int:
        return sum(self.block_sizes)

    @property
    def nblocks(self) -> int:
        return len(self.data_files)

    @property
    def skipped(self) -> int:
        """Data files kept from an earlier run."""
        return len(self.data_files) if self.complete else sum(not r for r in self.redo)

    def bytes_needed(self) -> int:
        """A rough size of the data files still to write: the input's data files' bytes
        scaled by output pixels and by output over input pixel size (lossy round trips
        shrink it further)."""
        if not self.frames_in or self.complete:
            return 0
        share = self.frames_to_write() / self.frames_in
        pixels = (self.frames_out * np.prod(self.frame_shape_out)) / (
            self.frames_in * np.prod(self.frame_shape_in)
        )
        data = self.bytes_in * share * pixels * self.dtype.itemsize / self.itemsize_in
        return int(data + (0 if self.master_was_done else self.master_bytes_in))  # fmt: skip

    def frames_to_write(self) -> int:
        """Input frames behind the data files this run writes (none if complete)."""
        if self.complete:
            return 0
        s, starts = self.sum_range, np.cumsum([0] + self.block_sizes)
        return int(
            sum(
                min(self.frames_in, starts[k + 1] * s) - starts[k] * s
                for k, redo in enumerate(self.redo)
                if redo
            )
        )

    def written(self) -> list[str]:
        """The files this run writes (not those kept from an earlier run), and the master
        unless this job's master was there already (a repair rewrites it at the very end)."""
        redo = [p for p, r in zip(self.data_files, self.redo, strict=True) if r]
        redo += [p for p, r in zip(self.squash_files, self.redo_squash, strict=True) if r]
        return redo + ([] if self.master_was_done else [self.master])

    def outputs(self) -> list[str]:
        return self.data_files + self.squash_files + [self.master]


def make_plan(ds, out: str, o: OutputOptions, run: RunSettings, graph, notes=()) -> Plan:
    """The plan of writing ``graph`` (:class:`lbnl_dask.pipeline.OutputGraph`) of dataset
    ``ds`` to prefix ``out``, with ``notes`` for the report. Raises OutputError for outputs
    that may not be written."""
    n_out, d = graph.final.shape[0], o.data_block_size
    nblocks = -(-n_out // d)
    sizes = [min(d, n_out - k * d) for k in range(nblocks)]
    data, master, squash = output_names(out, o, nblocks)
    token = job_token(ds.master, out, o, ds.input_files(),  # data files changed: another job
                      (ds.first_image, ds.last_image))  # fmt: skip
    files = {p: sizes[k % nblocks] for k, p in enumerate(data + squash)}
    # --overwrite replaces them all: their chunks' CRC-32s are not read (0.08 s for 200 4M
    # output frames, before the run starts)
    states = output_states(files, master, token, verify=not run.overwrite)
    done = {p: st == "done" for p, st in states.items()}
    check_outputs(
        list(states),
        ds.input_files(),
        run.overwrite,
        lambda p: states[p] in ("done", "damaged"),
    )
    # this job's master names its files: a damaged one, or one gone since, is a repair
    lost = states[master] == "done" and not run.overwrite
    repaired = [p for p in data + squash
                if states[p] == "damaged" or (lost and states[p] == "absent")]  # fmt: skip
    if repaired and not run.overwrite:
        notes = list(notes) + [
            f"repaired: {len(repaired)} damaged, incomplete or missing file(s) of this "
            f"job rewritten ({os.path.basename(repaired[0])} ...)"
        ]
    return Plan(
        master=master,
        data_files=data,
        squash_files=squash,
        block_sizes=sizes,
        frames_in=ds.shape[0],
        frame_shape_in=tuple(ds.shape[1:]),
        frame_shape_out=tuple(graph.shape),
        dtype=graph.dtype,
        saturation=graph.saturation,
        token=token,
        bytes_in=ds.data_bytes(),
        lossy=o.lossy,
        chunk_frames=graph.final.chunks[0][0] * o.sum_range,
        sum_range=o.sum_range,
        notes=o.notes() + list(notes) + graph.notes,
        redo=[run.overwrite or not done[p] for p in data],
        redo_squash=[run.overwrite or not done[p] for p in squash],
        complete=not run.overwrite and all(done.values()),
        master_was_done=not run.overwrite and done[master],
        overwrite=bool(run.overwrite),
        master_bytes_in=ds.master_bytes(),
        inputs=ds.input_files(),
        itemsize_in=ds.frames.dtype.itemsize,
        transform=pixel_transform(
            o, "counts" if ds.meta.pixel_transform is None else f"({ds.meta.pixel_transform})"
        ),  # fmt: skip
    )
