"""Options -> dask graph -> run on a scheduler -> report.

``compress(master, out, **options)`` is the whole job of ``lbnl-compress``: open the
dataset lazily, sum s frames and bin b x b (coarsen), scale / log / exp / omit regions,
the lossy round trip per frame (map_blocks), the final output type, then one task per
output datablock file and one last task for the master. Returns a :class:`Report`.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field

import dask
import dask.array as da
import numpy as np

from . import transform as T
from .codecs import HCOMPRESS_MAX, J2K_MAX, BitshuffleLZ4, HCompress, JPEG2000, decode_frames, \
    encode_frames, glymur_ladder, opj_ladder
from .cluster import SlurmOptions, client_for, run
from .eiger import open_dataset
from .errors import LbnlDaskError, OptionError, OutputError
from .meta import bin_pixel_mask
from .writer import COMPRESSIONS, XDS_READABLE, MasterRewriter, block_is_done, lossless_filter, \
    master_job, write_datablock, write_master, write_squash


@dataclass
class Options:
    """Every option of ``lbnl-compress`` (names as in l_bnl_compress where it had one)."""

    first_image: int = 1
    last_image: int | None = None
    bin_range: int = 1
    sum_range: int = 1
    data_block_size: int = 100
    compression: str = "bslz4"
    compression_level: int | None = None
    hcomp_scale: int | None = None
    j2k_ratio: float | None = None
    j2k_alt_ratio: float | None = None
    j2k_reversible: bool = False
    out_master: str | None = None
    out_squash: str | None = None
    scale_factor: float = 1.0
    uint: int | None = None
    ufloat: float | None = None
    logarithm_base: str | None = None
    exponent: str | None = None
    regions: list = field(default_factory=list)
    cap_sums: bool = False
    keep_spots: float | None = None  # sigma: keep the neighbourhoods of Bragg spots exact (transform.spot_regions)
    keep_grow: int = 3  # output pixels around strong pixels
    keep_frames: int = 2  # output frames before and after
    overwrite: bool = False
    scheduler: str = "processes"
    workers: int | None = None
    chunk_frames: int | None = None  # input frames per dask task (default: see _chunk_frames)
    progress: bool = False
    verbose: bool = False
    slurm: SlurmOptions | None = None
    report: str | None = None  # dask performance report (HTML)
    validate: bool = False


# options that do not change the output (a re-run with other values resumes the same job)
_RUN_ONLY = {"overwrite", "scheduler", "workers", "chunk_frames", "progress", "verbose", "slurm", "report", "validate"}


def job_token(master: str, out: str, o: Options) -> str:
    """A short hash of the input (path, size, mtime) and every option that shapes the output:
    written into each output file, so a re-run resumes only its own job's blocks."""
    st = os.stat(master)
    key = dict(master=os.path.abspath(master), size=st.st_size, mtime=st.st_mtime_ns, out=os.path.abspath(out),
               options={k: v for k, v in asdict(o).items() if k not in _RUN_ONLY})
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Report:
    """What a run did: frames, files, bytes and ratios, time."""

    master: str
    data_files: list
    frames_in: int
    frames_out: int
    frame_shape_in: tuple
    frame_shape_out: tuple
    dtype_out: str
    saturation_out: float
    bytes_in: int
    bytes_out: int
    bytes_master: int
    seconds: float
    notes: list = field(default_factory=list)
    blocks_skipped: int = 0
    validation: str | None = None
    lossy: str | None = None  # "hcomp" or "j2k"
    lossy_bytes: list = field(default_factory=list)  # mean codec bytes per frame, per data file written

    def block_messages(self) -> list[str]:
        """l_bnl_compress' per-block lines (its spelling kept: scripts grep them)."""
        label = {"hcomp": "hcomp avg compressed image size", "j2k": "j2k avg compressed imgage size"}.get(self.lossy)
        return [f"{label}: {int(round(b))}" for b in self.lossy_bytes if label and b is not None]

    @property
    def raw2_bytes(self) -> int:
        """The input as 2-byte raw pixels (the HDRMX paper's reference)."""
        return self.frames_in * int(np.prod(self.frame_shape_in)) * 2

    @property
    def ratio_files(self) -> float:
        return self.bytes_in / max(self.bytes_out, 1)

    @property
    def ratio_raw2(self) -> float:
        return self.raw2_bytes / max(self.bytes_out, 1)

    @property
    def ratio_raw4(self) -> float:
        return 2 * self.raw2_bytes / max(self.bytes_out, 1)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(raw2_bytes=self.raw2_bytes, ratio_files=self.ratio_files, ratio_raw2=self.ratio_raw2,
                 ratio_raw4=self.ratio_raw4)
        return d

    def __str__(self):
        mb = 1e6
        rate = self.frames_in / self.seconds if self.seconds else float("nan")
        lines = [
            f"master         {self.master}",
            f"data files     {len(self.data_files)} ({os.path.basename(self.data_files[0])} ...)",
            f"frames         {self.frames_in} in {self.frame_shape_in} -> {self.frames_out} out "
            f"{self.frame_shape_out} {self.dtype_out}, saturation {self.saturation_out:g}",
            f"bytes          {self.bytes_in / mb:.2f} MB in (data files) -> {self.bytes_out / mb:.3f} MB out "
            f"(+ master {self.bytes_master / mb:.2f} MB)",
            f"ratio          {self.ratio_files:.1f}x vs input files, {self.ratio_raw2:.1f}x vs 2-byte raw, "
            f"{self.ratio_raw4:.1f}x vs 4-byte raw",
            f"time           {self.seconds:.2f} s, {rate:.1f} input frames/s, "
            f"{2 * self.raw2_bytes / mb / max(self.seconds, 1e-9):.0f} MB/s of 4-byte raw",
        ]
        if self.blocks_skipped:
            lines.append(f"resumed        {self.blocks_skipped} finished data file(s) of an earlier run kept")
        lines += [f"note           {n}" for n in self.notes]
        if self.validation:
            lines.append(self.validation)
        return "\n".join(lines)


# ---------------------------------------------------------------- planning
def _validate(o: Options) -> list[str]:
    notes = []
    for name, v in (("bin (-b)", o.bin_range), ("sum (-s)", o.sum_range), ("data block size (-d)", o.data_block_size)):
        if v is None or int(v) < 1:
            raise OptionError(f"{name} must be at least 1, not {v}")
    lossy = [n for n, v in (("-H", o.hcomp_scale), ("-J", o.j2k_ratio), ("-K", o.j2k_alt_ratio)) if v is not None]
    if len(lossy) > 1:
        raise OptionError(f"choose one lossy round trip, not {' and '.join(lossy)}")
    if o.out_squash is not None and not lossy:
        raise OptionError("-q (squash) needs a lossy round trip (-H, -J or -K) to take codec bytes from")
    if o.keep_spots is not None:
        if not lossy:
            raise OptionError("--keep-spots needs a lossy round trip (-H, -J or -K): without one every pixel is kept")
        if not o.keep_spots > 0:
            raise OptionError(f"--keep-spots takes a threshold in sigmas > 0, not {o.keep_spots}")
        if o.out_squash is not None:
            raise OptionError("-q cannot go with --keep-spots: the squash files' codec bytes would not hold "
                              "the spots kept exactly")
        if o.logarithm_base is not None or o.exponent is not None:
            raise OptionError("--keep-spots finds spots in counts: it cannot go with -L or -X")
        if o.keep_grow < 0 or o.keep_frames < 0:
            raise OptionError(f"--keep-grow and --keep-frames must be >= 0, not {o.keep_grow} and {o.keep_frames}")
    if o.hcomp_scale is not None and o.hcomp_scale < 0:
        raise OptionError(f"HCompress scale (-H) must be >= 0 (0 is lossless), not {o.hcomp_scale}")
    for flag, r in (("-J", o.j2k_ratio), ("-K", o.j2k_alt_ratio)):
        if r is not None and not r > 1:
            raise OptionError(f"JPEG-2000 ratio ({flag}) must be greater than 1, not {r}")
    if o.scale_factor is None or not o.scale_factor > 0:
        raise OptionError(f"scale (-S) must be positive, not {o.scale_factor}")
    if o.uint is not None and o.uint not in (2, -2, 4, -4):
        raise OptionError(f"-u takes 2, -2, 4 or -4 (bytes; negative = signed), not {o.uint}")
    if o.ufloat is not None and o.ufloat not in (2, -2, 4, -4):
        raise OptionError(f"-f takes 2, -2, 4 or -4 (bytes; negative = signed), not {o.ufloat}")
    for flag, base in (("-L", o.logarithm_base), ("-X", o.exponent)):
        if base is not None and _base(base, flag) < 2:
            raise OptionError(f"{flag} needs a base >= 2 (or e), not {base}")
    lossless_filter(o.compression, o.compression_level)  # raises OptionError
    if o.compression.lower() not in XDS_READABLE:
        notes.append(f"-c {o.compression}: {COMPRESSIONS[o.compression.lower()]}")
    return notes


def _base(text, flag) -> float:
    if str(text).lower() == "e":
        return float(np.e)
    try:
        return float(text)
    except ValueError:
        raise OptionError(f"{flag} needs a number >= 2 or e, not {text!r}") from None


def output_dtype(o: Options, saturation: int, notes: list) -> tuple[np.dtype, float]:
    """The output pixel type and the saturation value it can hold (SPEC A2)."""
    if o.ufloat is not None:
        dt = np.dtype(np.float16 if abs(o.ufloat) == 2 else np.float32)
        notes.append(f"float output ({dt}): XDS' plugins read only unsigned integer data")
        return dt, float(min(saturation, np.finfo(dt).max))
    if o.uint is not None:
        dt = np.dtype({2: np.uint16, -2: np.int16, 4: np.uint32, -4: np.int32}[o.uint])
    elif o.logarithm_base is not None or o.exponent is not None:
        dt = np.dtype(np.float32)
        notes.append("-L/-X without -f/-u: float32 output (integers would keep only a few levels)")
        return dt, float(saturation)
    else:
        # Neggia reads uint16 >= 32767 and uint32 >= 2**31-1 as invalid: keep saturation below.
        dt = np.dtype(np.uint16 if saturation <= 32766 else np.uint32)
    cap = np.iinfo(dt).max - 1 if o.uint is not None else (32766 if dt == np.uint16 else 2**31 - 2)
    if saturation > cap:
        notes.append(f"output saturation {saturation} capped at {cap} by the {dt} output type")
        saturation = cap
    return dt, saturation


def _chunk_frames(o: Options, frame_pixels: int) -> int:
    """Input frames per dask chunk: a multiple of s (so coarsen never re-chunks) whose output
    frames divide -d (so no chunk straddles two data files), at most about 256 MB at 8 bytes
    per input pixel (the raw frames and what a task makes of them; 4M: 2 groups of s frames;
    9M: 1, or --keep-frames with --keep-spots). Twice that (4M: 8-10 frames) measured +0-4%
    frames/s on 2 workers at -s 2 but 16-22% slower lossless and +90% peak RSS on 1M; peak
    RSS per worker is in the README."""
    s, d = o.sum_range, o.data_block_size
    if o.chunk_frames:
        c_out = max(1, o.chunk_frames // s)
    else:
        c_out = max(1, (256 * 2**20) // (8 * frame_pixels * s))
        if o.keep_spots is not None:  # spots grow across frames by dask's overlap, which needs
            c_out = max(c_out, o.keep_frames)  # chunks of at least that many frames (9M: 2x less RSS)
    c_out = min(c_out, d)
    while d % c_out:
        c_out -= 1
    return c_out * s


def _output_names(out: str, o: Options, nblocks: int):
    data = [f"{out}_{k:06d}.h5" for k in range(1, nblocks + 1)]
    m = o.out_master
    master = f"{out}_master.h5" if m in (None, "out_file") else f"{m}.h5"
    sq = o.out_squash
    squash = None if sq is None else [f"{out if sq == 'out_file' else sq}{'_squash' if sq == 'out_file' else ''}_{k:06d}.h5"
                                      for k in range(1, nblocks + 1)]
    return data, master, squash


def _check_outputs(paths: list[str], inputs: list[str], overwrite: bool, resumable=lambda p: False):
    """Refuse outputs that would hit the input, sit in unwritable folders, or exist (unless
    ``overwrite``, or ``resumable(path)``: a finished file of this same job)."""
    def same(a, b):
        try:
            return os.path.samefile(a, b)
        except OSError:
            return os.path.abspath(a) == os.path.abspath(b)

    for p in paths:
        for i in inputs:
            if os.path.exists(p) and same(p, i):
                raise OutputError(f"{p}: output would overwrite the input")
        folder = os.path.dirname(os.path.abspath(p))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{p}: cannot create the output folder ({e.strerror})") from e
        if not os.access(folder, os.W_OK):
            raise OutputError(f"{p}: output folder {folder} is not writable")
        if os.path.exists(p) and not overwrite and not resumable(p):
            raise OutputError(f"{p}: exists (use --overwrite to replace it)")


# ---------------------------------------------------------------- the graph
@dataclass
class OutputGraph:
    """The lazy output of the transforms: ``final`` (n_out, ny', nx') frames of ``dtype``;
    ``encoded`` the lossy ``codec``'s bytes of each frame (both None without a lossy step)."""

    final: da.Array
    encoded: da.Array | None  # the lossy codec's bytes per frame, object (n_out, 1, 1), or None
    codec: object
    dtype: np.dtype
    saturation: float
    shape: tuple
    notes: list


def make_codec(o: Options):
    """The lossy codec ``-H``/``-J``/``-K`` ask for, or None."""
    if o.hcomp_scale is not None:
        return HCompress(scale=o.hcomp_scale)
    if o.j2k_ratio is not None:
        return JPEG2000(o.j2k_ratio, irreversible=not o.j2k_reversible,
                        ladder=glymur_ladder(int(o.j2k_ratio)) if o.j2k_reversible else None)
    if o.j2k_alt_ratio is not None:
        return JPEG2000(o.j2k_alt_ratio, irreversible=not o.j2k_reversible, ladder=opj_ladder(int(o.j2k_alt_ratio)))
    return None


def output_frames(frames: da.Array, cutoff: int | None, mask, o: Options,
                  frame_shape: tuple | None = None) -> OutputGraph:
    """The transforms of ``o`` applied lazily to raw ``frames`` (n, ny, nx): counts, sum,
    bin, scale, log/exp, omitted regions, lossy round trip, output type (SPEC A2).
    ``frame_shape``: the frames' (ny, nx) when they come zero-padded to multiples of -b
    (:meth:`EigerDataset.padded_frames`, as ``lbnl-compress`` reads them)."""
    notes = []
    s, b = int(o.sum_range), int(o.bin_range)
    in_max = np.iinfo(frames.dtype).max - 1
    per_pixel = cutoff if cutoff is not None else in_max
    saturation = int(per_pixel * o.scale_factor + 0.5) if o.cap_sums else \
        int(per_pixel * s * b * b * o.scale_factor + 0.5)
    if o.hcomp_scale is not None and saturation > HCOMPRESS_MAX:
        notes.append(f"HCompress takes values up to {HCOMPRESS_MAX}: saturation lowered from {saturation}")
        saturation = HCOMPRESS_MAX
    if (o.j2k_ratio or o.j2k_alt_ratio) and saturation > J2K_MAX - 1:
        notes.append(f"JPEG-2000 (glymur) takes 16 bits: sums clipped at {J2K_MAX - 1} (saturation was {saturation})")
        saturation = J2K_MAX - 1
    if o.logarithm_base is not None:  # the saturation value follows the transform of the counts
        saturation = float(np.log1p(saturation) / np.log(_base(o.logarithm_base, "-L")))
    if o.exponent is not None:
        with np.errstate(over="ignore"):
            saturation = float(min(np.expm1(saturation * np.log(_base(o.exponent, "-X"))), np.finfo(np.float32).max))
    dtype, saturation = output_dtype(o, saturation, notes)

    counts_max = (cutoff if cutoff is not None else in_max) * max(o.scale_factor, 1.0)
    values = T.summed_binned_counts(frames, s, b, mask, cutoff, T.counts_dtype(counts_max, s * b * b), frame_shape)
    values = T.scale(values, o.scale_factor)
    signed = (o.uint or 0) < 0 or (o.ufloat or 0) < 0
    if o.logarithm_base is not None:
        values = T.log_transform(values, _base(o.logarithm_base, "-L"), signed)
    if o.exponent is not None:
        values = T.exp_transform(values, _base(o.exponent, "-X"), signed)
    out_shape = values.shape[1:]
    if o.regions:
        try:
            omit = T.region_mask(o.regions, out_shape)
        except ValueError as e:
            raise OptionError(str(e)) from None
        values = T.omit_regions(values, omit)

    codec = make_codec(o)
    if isinstance(codec, JPEG2000):
        from .codecs import check_openjpeg
        check_openjpeg()
    encoded = None
    if codec is not None:  # encoded once: the bytes serve the round trip, the sizes and -q
        keep = None  # pixels stored exactly: invalid/saturated ones always, Bragg spots if asked
        if o.keep_spots is not None:
            keep = T.spot_regions(values, o.keep_spots, o.keep_grow, o.keep_frames)
        encoded = da.map_blocks(encode_frames, values, codec, keep, dtype=object, chunks=(values.chunks[0], (1,), (1,)))
        values = da.map_blocks(decode_frames, values, encoded, codec, keep, dtype=values.dtype)
    integral = o.logarithm_base is None and o.exponent is None  # sums, scale's rint and the codecs give whole counts
    final = T.finalize(values, dtype, saturation, integral)
    return OutputGraph(final, encoded, codec, dtype, saturation, tuple(out_shape), notes)


def build(master, out: str = "out_data", options: Options | None = None):
    """The lazy job: (tasks, info). ``tasks`` is a dask Delayed writing everything (master last);
    ``info`` holds the plan (names, shapes, dtype, saturation, notes, input files)."""
    o = options or Options()
    notes = _validate(o)
    s, b = int(o.sum_range), int(o.bin_range)
    ds = open_dataset(master, o.first_image, o.last_image)
    n_in, ny, nx = ds.shape
    if s > n_in:
        raise OptionError(f"sum (-s {s}) is larger than the {n_in} frames selected")
    ds = ds.with_datablock(_chunk_frames(o, ny * nx))
    meta, frame_shape = ds.meta, (ny, nx)
    first, last = ds.first_image, ds.last_image
    mask = ds.pixel_mask()
    if mask is not None and tuple(mask.shape) != frame_shape:
        notes.append(f"pixel_mask {mask.shape} does not match the frames {frame_shape}: ignored")
        mask = None

    g = output_frames(ds.padded_frames(b), meta.overload, mask, o, frame_shape)  # padded as read: no copy
    final, encoded, codec, dtype, saturation, out_shape = (g.final, g.encoded, g.codec, g.dtype,
                                                           g.saturation, g.shape)
    notes += g.notes

    n_out = final.shape[0]
    d = o.data_block_size
    nblocks = -(-n_out // d)
    data_names, master_name, squash_names = _output_names(out, o, nblocks)
    input_files = [ds.master] + [blk.path for blk in ds.blocks]
    token = job_token(ds.master, out, o)
    sizes = [min(d, n_out - k * d) for k in range(nblocks)]

    # files of an earlier run of this same job that are complete: kept, not rewritten (resume)
    finished = {p: os.path.exists(p) and block_is_done(p, token, sizes[k % nblocks])
                for k, p in enumerate(data_names + (squash_names or []))}
    finished[master_name] = os.path.exists(master_name) and master_job(master_name) == token
    _check_outputs(list(finished), input_files, o.overwrite, finished.get)
    redo = [o.overwrite or not finished[p] for p in data_names]
    redo_sq = [o.overwrite or not finished[p] for p in (squash_names or [])]

    # one task per output datablock; dask chunks never straddle two blocks (see _chunk_frames)
    chunk_out = final.chunks[0]
    starts = np.cumsum((0,) + chunk_out[:-1])
    by_block = [[] for _ in range(nblocks)]
    for i, st in enumerate(starts):
        by_block[st // d].append(i)
    # Everything a chunk contributes to the files, from ONE array so that dask fuses the chain
    # per chunk and computes it once: per frame, what the data file stores (the bslz4 chunk
    # bytes, encoded here in the compute task, or the frame), the size of the lossy codec's
    # bytes (for the report) and, for -q only, the bytes.
    bslz4 = BitshuffleLZ4(dtype) if o.compression.lower() == "bslz4" else None
    packages = da.map_blocks(_package, final, encoded, bslz4, bool(squash_names), dtype=object,
                             chunks=(final.chunks[0], (1,), (1,)))
    parts = packages.to_delayed().ravel()
    write = dask.delayed(_write_block, pure=False)
    blocks = [write(data_names[k], [parts[i] for i in idx], k * d + 1, o.compression.lower(),
                    o.compression_level, token, out_shape, dtype,
                    dask_key_name=f"write-datablock-{k + 1:06d}-{token}")
              if redo[k] else _finished(data_names[k], sizes[k])
              for k, idx in enumerate(by_block)]
    squash = []
    if squash_names:
        sq = dask.delayed(_write_squash_parts, pure=False)
        squash = [sq(squash_names[k], [parts[i] for i in idx], k * d + 1, codec.get_config(), token,
                     dask_key_name=f"write-squash-{k + 1:06d}-{token}")
                  if redo_sq[k] else _finished(squash_names[k], sizes[k])
                  for k, idx in enumerate(by_block)]
    rewriter = MasterRewriter(n_total=meta.n_frames or ds.n_available, first=first, last=last, s=s, b=b,
                              saturation=saturation, bit_depth=8 * dtype.itemsize,
                              compression=o.compression.lower(), frame_shape=frame_shape)
    mdir = os.path.dirname(os.path.abspath(master_name))
    links = [os.path.relpath(os.path.abspath(p), mdir) for p in data_names]
    job = dask.delayed(_write_master_last, pure=False)(master_name, ds.master, links, rewriter, mask, b, token,
                                                      blocks, squash, dask_key_name=f"write-master-{token}")
    info = dict(master=master_name, data_files=data_names, squash_files=squash_names or [], frames_in=n_in,
                frames_out=n_out, frame_shape_in=frame_shape, frame_shape_out=tuple(out_shape),
                dtype=dtype, saturation=saturation, notes=notes, bytes_in=ds.data_bytes(), nblocks=nblocks,
                final=final, token=token, skipped=sum(not r for r in redo),
                lossy=None if codec is None else ("hcomp" if isinstance(codec, HCompress) else "j2k"),
                complete=not o.overwrite and finished[master_name])
    return job, info


def _package(final_block, encoded_block, bslz4, lossy_bytes=False):
    """Object array (n, 1, 1) of (stored, size, lossy) per frame: ``stored`` the bslz4 chunk
    as a uint8 array (or the frame itself for other filters); ``size`` the length of the lossy
    codec's bytes (None without one); ``lossy`` those bytes if ``lossy_bytes`` (for -q), else
    None. Arrays, not bytes: dask sends them to the writer task's worker out of band, without
    copying them through pickle (lossless, 2 workers, 1000 4M frames: transfer time per
    worker 0.3-0.9 s -> 0.1-0.3 s, +3% frames/s)."""
    out = np.empty((final_block.shape[0], 1, 1), dtype=object)
    for i in range(final_block.shape[0]):
        stored = np.frombuffer(bslz4.encode(final_block[i]), np.uint8) if bslz4 is not None else final_block[i]
        lossy = None if encoded_block is None else encoded_block[i].item()
        out[i, 0, 0] = (stored, None if lossy is None else len(lossy), lossy if lossy_bytes else None)
    return out


def _write_block(path, packages, first_frame, compression, level, token, shape, dtype):
    """Write one data file from its chunks' packages; record the mean lossy bytes per frame."""
    items = [p for pk in packages for p in pk.ravel()]
    if compression == "bslz4":
        stored = np.empty((len(items), 1, 1), dtype=object)
        stored[:, 0, 0] = [it[0] for it in items]
    else:
        stored = np.stack([it[0] for it in items])
    rec = write_datablock(path, [stored], first_frame, compression, level, token, shape, dtype)
    if items[0][1] is not None:
        rec["lossy_bytes_mean"] = float(np.mean([it[1] for it in items]))
    return rec


def _finished(path, n):
    """The record of a data file kept from an earlier run of the same job."""
    return {"path": path, "frames": n, "bytes": os.path.getsize(path), "kept": True}


def _write_squash_parts(path, packages, first_frame, config, token):
    return write_squash(path, [[it[2] for it in pk.ravel()] for pk in packages], first_frame, config, token)


def _write_master_last(path, src, links, rewriter, mask, b, token, blocks, squash):
    """The last task: runs only once every datablock (and squash) file is complete."""
    write_master(path, src, links, rewriter, None if mask is None else bin_pixel_mask(np.asarray(mask), b), token)
    return blocks


# ---------------------------------------------------------------- running
def compress(master, out: str = "out_data", **options) -> Report:
    """Sum, bin, lossy-round-trip and rewrite an Eiger dataset; return a :class:`Report`.

    ``options`` are the fields of :class:`Options` (``bin_range=2, sum_range=2,
    hcomp_scale=12, scheduler="threads"``...). Writes ``<out>_NNNNNN.h5`` and
    ``<out>_master.h5``; never overwrites without ``overwrite=True``. A re-run of the same
    job keeps the data files an interrupted run finished and writes the rest.
    """
    o = Options(**options)
    t0 = time.perf_counter()
    job, info = build(os.fspath(master), os.fspath(out), o)
    _remove_partials(info)
    if o.verbose:
        f = info["final"]
        print(f"plan: {info['frames_in']} frames in dask chunks of {f.chunks[0][0] * o.sum_range} input frames -> "
              f"{info['frames_out']} x {info['frame_shape_out']} {info['dtype']} (saturation {info['saturation']:g}), "
              f"{info['nblocks']} data file(s), {info['skipped']} kept from an earlier run, job {info['token']}",
              file=sys.stderr)
    if o.overwrite:
        _remove_stale(info)
    if info["complete"]:
        blocks = [_finished(p, 0) for p in info["data_files"]]
        info["notes"].append("already complete: the master of this same job exists; nothing was rewritten")
        info["skipped"] = len(blocks)
    else:
        try:
            with client_for(o.scheduler, o.workers, o.slurm, profile=bool(o.report)) as client:  # a report shows it
                blocks = run(job, client, o.progress, o.report)
        except LbnlDaskError:
            _remove_outputs(info)  # bad input found while reading: the job cannot be completed
            raise
    validation = None
    if o.validate:
        from .validate import validate

        res = validate(info["master"])
        validation = str(res)
        if res.failed:
            raise OutputError(f"{info['master']}: the output failed validation:\n{validation}")
    seconds = time.perf_counter() - t0
    return Report(master=info["master"], data_files=info["data_files"], frames_in=info["frames_in"],
                  frames_out=info["frames_out"], frame_shape_in=info["frame_shape_in"],
                  frame_shape_out=info["frame_shape_out"], dtype_out=str(info["dtype"]),
                  saturation_out=info["saturation"], bytes_in=info["bytes_in"],
                  bytes_out=sum(os.path.getsize(p) for p in info["data_files"]),
                  bytes_master=os.path.getsize(info["master"]), seconds=seconds, notes=info["notes"],
                  blocks_skipped=info["skipped"], validation=validation, lossy=info["lossy"],
                  lossy_bytes=[b.get("lossy_bytes_mean") for b in blocks])


def _all_outputs(info):
    return info["data_files"] + info["squash_files"] + [info["master"]]


def _remove_partials(info):
    """Temporaries (``.part``) left by a run that was killed."""
    for p in _all_outputs(info):
        if os.path.exists(p + ".part"):
            os.unlink(p + ".part")


def _remove_outputs(info):
    for p in _all_outputs(info):
        for q in (p, p + ".part"):
            if os.path.exists(q) and (q.endswith(".part") or block_is_done(q, info["token"], None)):
                os.unlink(q)


def _remove_stale(info):
    """With --overwrite: remove the old master first (so a failed run leaves none) and data
    files of an earlier, longer run that this one would not replace."""
    if os.path.exists(info["master"]):
        os.unlink(info["master"])
    first = info["data_files"][0]
    prefix = first[: -len("000001.h5")]
    for p in glob.glob(glob.escape(prefix) + "[0-9]" * 6 + ".h5"):
        if p not in info["data_files"]:
            os.unlink(p)
