"""``lbnl-explore``: compression ratio against spot fidelity over a grid of settings, on a sample.

A few windows of frames spread over the dataset (not the whole thing) go through every
setting in memory: the same transforms and codecs as ``lbnl-compress``, the output frames
encoded with bitshuffle-LZ4 to count their bytes (ratio against 2-byte raw), and
:mod:`lbnl_dask.quality` comparing the reflections' intensities with the lossless sum+bin of
the same windows. The table marks the settings on the Pareto front (no other setting has a
higher ratio *and* a higher CC) and is written as CSV and JSON with a PNG plot.
:func:`best_setting` picks the highest ratio among the :func:`acceptable` settings.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass

import dask
import numpy as np

from . import quality as Q
from . import transform as T
from .cluster import Local, console, one_openmp_thread, stop_on_sigterm
from .eiger import open_dataset
from .errorbound import SZ3Storage
from .errors import LbnlDaskError, OptionError, OutputError
from .explore_results import (
    MIN_WINDOW_OUTPUT_FRAMES,
    acceptable,
    best_setting,
    describe_best,
    describe_gain,
    describe_shells,
    describe_short_windows,
    describe_windows,
    pareto,
    plot,
    save,
    table,
)
from .integrate import (
    background_by_resolution,
    background_noise,
    background_sums,
    integrate_block,
    noise_variance,
)
from .lossless import storage_codec
from .options import OutputOptions, at_least_1
from .pipeline import output_frames
from .resume import folders_removed_if_empty, output_folder
from .shells import Geometry, shell_count
from .spots import REFL_DTYPE


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each option's help (where there is one: None is said in the
    help); the description's line breaks kept."""

    def _get_help_string(self, action):
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


#: The explorer's API for notebooks: run it, judge its rows, show them.
__all__ = [
    "Setting",
    "grid",
    "windows",
    "window_length",
    "explore",
    "main",
    "acceptable",
    "best_setting",
    "describe_best",
    "describe_gain",
    "describe_short_windows",
    "describe_windows",
    "pareto",
    "plot",
    "save",
    "table",
]


@dataclass(frozen=True)
class Setting:
    """One point of the grid: bin, sum, a lossy step ('none', 'H' scale, 'J' ratio, 'SZ' SZ3
    error bound, 'ZF' ZFP accuracy, 'SF' SZ3 error bound of frames stored with SZ3's own
    filter, ``-c sz3``) and the ``--keep-spots`` threshold (0 = off)."""

    b: int
    s: int
    codec: str = "none"
    param: float = 0
    keep: float = 0

    @property
    def name(self) -> str:
        tail = "" if self.codec == "none" else f"{self.codec.lower()}{self.param:g}"
        return f"b{self.b}s{self.s}{tail}" + (f"k{self.keep:g}" if self.keep else "")

    @classmethod
    def from_row(cls, row: dict) -> Setting:
        """The setting of a row of :func:`explore`'s table."""
        return cls(
            int(row["bin"]),
            int(row["sum"]),
            row["codec"],
            float(row["param"]),
            float(row.get("keep") or 0),
        )

    def kwargs(self) -> dict:
        """The options of ``lbnl_dask.compress`` (and ``lbnl-compress``) for this setting."""
        kw = dict(bin_range=self.b, sum_range=self.s)
        if self.codec == "H":
            kw["hcomp_scale"] = int(self.param)
        elif self.codec == "J":
            kw["j2k_ratio"] = float(self.param)
        elif self.codec == "SZ":
            kw["sz3_bound"] = float(self.param)
        elif self.codec == "ZF":
            kw["zfp_accuracy"] = float(self.param)
        elif self.codec == "SF":
            kw.update(sz3_bound=float(self.param), compression="sz3")
        if self.keep and self.codec != "none":
            kw["keep_spots"] = float(self.keep)
        return kw

    def options(self) -> OutputOptions:
        return OutputOptions(**self.kwargs())

    @property
    def xds_reads(self) -> bool:
        """XDS' plugins read this setting's output (``-c sz3``'s filter they do not)."""
        return self.codec != "SF"


def grid(
    bins=(1, 2),
    sums=(1, 2),
    hcomp=(4, 8, 12, 16, 24, 32, 48),
    j2k=(60, 120, 240, 360, 720),
    keep=(0, 5),
    sz3=(2, 8),
    zfp=(8,),
    sz3_filter=(2, 8),
) -> list[Setting]:
    """Every (bin, sum) with no lossy step, and with each HCompress scale, JPEG-2000 ratio,
    SZ3 error bound and ZFP accuracy, each of those with every ``keep`` threshold (0 = the
    plain round trip), and with each ``sz3_filter`` bound of frames stored with SZ3's own
    filter (no spots kept: every pixel goes through it)."""
    out = []
    for b in bins:
        for s in sums:
            out.append(Setting(b, s))
            for k in keep:
                out += [Setting(b, s, "H", h, k) for h in hcomp]
                out += [Setting(b, s, "J", j, k) for j in j2k]
                out += [Setting(b, s, "SZ", e, k) for e in sz3]
                out += [Setting(b, s, "ZF", a, k) for a in zfp]
            out += [Setting(b, s, "SF", e) for e in sz3_filter]
    return out


def window_length(sums, frames: int, n_frames: int | None = None) -> int:
    """Input frames per window: ``frames`` rounded down to a multiple of every sum in
    ``sums`` (each window gives whole output frames), and at least MIN_WINDOW_OUTPUT_FRAMES
    output frames of the largest sum (``--sums 16`` with the default 20 frames: 64); at most
    the dataset's ``n_frames``, still a multiple of every sum where they allow one."""
    lcm = int(np.lcm.reduce(list(sums)))
    least = -(-MIN_WINDOW_OUTPUT_FRAMES * max(sums) // lcm) * lcm
    length = max(least, frames // lcm * lcm)
    if n_frames is not None and length > n_frames:
        length = n_frames // lcm * lcm or n_frames
    return length


def windows(n_frames: int, count: int, length: int) -> list[tuple[int, int]]:
    """``count`` windows of ``length`` frames (1-based, inclusive), evenly spread."""
    length = min(length, n_frames)
    count = max(1, min(count, n_frames // length))
    starts = np.linspace(1, n_frames - length + 1, count).round().astype(int)
    return [(int(a), int(a) + length - 1) for a in starts]


def _encoded_bytes(block, codec):
    """The bytes of a block's frames as ``codec`` stores them: (1, 1, 1) int64."""
    return np.array([[[sum(len(codec.encode(f)) for f in block)]]], dtype=np.int64)


def _stored_as_read(block, store: SZ3Storage):
    """(bytes, frames (n, ny, nx) int32 as a reader decodes them) of ``store``'s chunks of
    ``block`` in one object (1, 1, 1): each frame is encoded and decoded once."""
    frames, nbytes = np.empty(block.shape, store.dtype), 0
    for i, f in enumerate(block):
        chunk, _, frames[i] = store.roundtrip(f)
        nbytes += len(chunk)
    out = np.empty((1, 1, 1), dtype=object)
    out[0, 0, 0] = (nbytes, frames)
    return out


def _bytes_of(pair):
    return np.array([[[pair[0, 0, 0][0]]]], dtype=np.int64)


def _frames_of(pair):
    return pair[0, 0, 0][1]


def _evaluate(master, setting: Setting, wins, box_for):
    """The measures of one setting, lazily.

    (bytes, input frames, frame pixels, integration results, reflections).
    """
    o = setting.options()
    parts = []
    for first, last in wins:
        ds = open_dataset(
            master, first, last, datablock=(last - first + 1) // setting.s * setting.s or setting.s
        )
        mask = ds.pixel_mask()
        g = output_frames(ds.padded_frames(setting.b), ds.meta.overload, mask, o, ds.shape[1:])
        per_block = ((1,) * g.final.numblocks[0], (1,), (1,))
        if o.stores_lossy:  # -c sz3: its bytes, and the frames a reader decodes from them
            pair = g.final.map_blocks(_stored_as_read, SZ3Storage(o.sz3_bound, g.saturation),
                                      dtype=object, chunks=per_block)  # fmt: skip
            nbytes = pair.map_blocks(_bytes_of, dtype=np.int64).sum()
            final = pair.map_blocks(_frames_of, dtype=SZ3Storage.dtype, chunks=g.final.chunks)
        else:
            nbytes = g.final.map_blocks(  # as lbnl-compress stores them (-c bslz4)
                _encoded_bytes, storage_codec("bslz4", None, g.dtype), dtype=np.int64,
                chunks=per_block,
            ).sum()  # fmt: skip
            final = g.final
        run = Q.RunGeometry(first, last, setting.s, setting.b)
        ref, _ = Q.reference_counts(master, run, chunk_frames=last - first + 1)
        out = T.to_counts(final, None, g.saturation, np.float64).rechunk(
            (ref.chunks[0], -1, -1), method="tasks"
        )
        refl = Q.truth_reflections(master, run)
        if refl is None:
            refl = dask.delayed(Q.find_spots)(ref)
        else:
            refl = refl[(refl["frame"] > -0.5) & (refl["frame"] < ref.shape[0] - 0.5)]
        geometry = Geometry.of_meta(ds.meta, setting.b)
        res = dask.delayed(_integrate)(ref, out, refl, box_for(run), geometry)
        parts.append(
            dict(
                bytes=nbytes,
                frames=last - first + 1,
                pixels=int(np.prod(ds.frames.shape[1:])),
                res=res,
                edges=None if geometry is None else geometry.fine_edges(ref.shape[1:]),
            )
        )
    return parts


def _integrate(ref, out, refl, box, geometry):
    """(I and sigma per reflection, background sums (reference, output), d of each
    reflection, the background's fine histograms by resolution or None, its noise
    (:func:`lbnl_dask.integrate.background_noise`)) of one window."""
    d = refl["d"] if geometry is None or np.isfinite(refl["d"]).all() else geometry.d(
        refl["x"], refl["y"])  # fmt: skip
    return (integrate_block(ref, out, refl, 0, box), background_sums(ref, out, refl, box),
            d, background_by_resolution(ref, out, refl, box, geometry),
            background_noise(ref, out, refl, box))  # fmt: skip


def _collect(*values):
    return list(values)


def _row(st: Setting, parts, values) -> dict:
    """The table row of setting ``st`` from its windows' (bytes, results) ``values``."""
    nbytes = sum(int(v) for v in values[0::2])
    n_in = sum(p["frames"] for p in parts)
    raw2 = sum(p["frames"] * p["pixels"] * 2 for p in parts)
    results = values[1::2]
    res = np.concatenate([v[0] for v in results]) if parts else np.zeros((0, 4))
    bg_in, bg_out = (sum(v[1][i] for v in results) for i in (0, 1))
    pairs, moments = sum(v[4][0] for v in results), sum(v[4][1] for v in results)
    noise_in = noise_variance(pairs, moments, 0)
    fid = _fidelity(res, results, parts)
    s = fid.overall
    return dict(
        setting=st.name,
        xds=st.xds_reads,
        bin=st.b,
        sum=st.s,
        codec=st.codec,
        param=st.param,
        keep=st.keep,
        frames=n_in,
        bytes=nbytes,
        ratio_raw2=raw2 / nbytes,
        ratio_raw4=2 * raw2 / nbytes,
        n=s.n,
        cc=s.cc,
        mean_ratio=s.mean_ratio,
        r_factor=s.r_factor,
        i_sigma_ref=s.i_sigma_ref,
        i_sigma_out=s.i_sigma_out,
        background_ratio=bg_out / bg_in if bg_in else float("nan"),
        noise_ratio=noise_variance(pairs, moments, 1) / noise_in if noise_in else float("nan"),
        lost=fid.lost,
        shells=[_shell_dict(sh) for sh in fid.shells],
    )


def _fidelity(res, results, parts) -> Q.Fidelity:
    """The statistics of all windows, in as many resolution shells (up to 5) as hold
    :data:`~lbnl_dask.shells.MIN_SHELL_REFLECTIONS` strong reflections each."""
    d = np.concatenate([np.asarray(v[2], float) for v in results]) if results else np.zeros(0)
    refl = np.zeros(len(d), REFL_DTYPE)
    refl["d"], refl["truth"] = d, np.nan
    ok = np.isfinite(res).all(axis=1) & (res[:, 0] > 0)
    ok[ok] &= res[ok, 0] / res[ok, 1] >= 3
    shells = shell_count(ok.sum())
    hists = [v[3] for v in results]
    if shells < 1 or any(h is None for h in hists) or parts[0]["edges"] is None:
        return Q.summarize(res, refl, shells=0)
    return Q.summarize(res, refl, shells, background=np.sum(hists, axis=0),
                       edges=parts[0]["edges"])  # fmt: skip


def _shell_dict(sh: Q.Stats) -> dict:
    return dict(d_max=sh.d_max, d_min=sh.d_min, n=sh.n, cc=sh.cc, mean_ratio=sh.mean_ratio,
                i_sigma_ref=sh.i_sigma_ref, i_sigma_out=sh.i_sigma_out,
                background_ratio=sh.background_ratio)  # fmt: skip


def _compute_each(jobs, client, progress: bool, done) -> None:
    """Compute the Delayed ``jobs`` as one graph (work shared between them is done once),
    calling ``done(i, result)`` as soon as job i is finished."""
    if client is None or isinstance(client, Local):
        from dask.callbacks import Callback
        from dask.diagnostics import ProgressBar

        index = {job.key: i for i, job in enumerate(jobs)}
        seen = set()

        def posttask(key, result, dsk, state, worker_id):  # runs in the scheduler's thread
            if key in index and key not in seen:
                seen.add(key)
                done(index[key], result)

        with contextlib.ExitStack() as stack:
            stack.enter_context(Callback(posttask=posttask))
            if progress:
                stack.enter_context(ProgressBar(out=sys.stderr))
            results = dask.compute(*jobs) if client is None else client.compute(*jobs)
        # any job whose key the scheduler did not report
        for job, result in zip(jobs, results, strict=False):
            if job.key not in seen:
                seen.add(job.key)
                done(index[job.key], result)
        return
    from distributed import as_completed
    from distributed import progress as dprogress

    futures = client.compute(jobs)
    index = {f.key: i for i, f in enumerate(futures)}
    if progress:
        dprogress(futures)
        print(file=sys.stderr)
    for fut in as_completed(futures):
        done(index[fut.key], fut.result())


def explore(
    master,
    settings: list[Setting] | None = None,
    n_windows: int = 3,
    window_frames: int = 20,
    scheduler: str = "threads",
    workers: int | None = None,
    progress: bool = False,
    log=None,
) -> list[dict]:
    """Ratio and fidelity of each setting on a sample of ``master``; rows sorted by ratio.
    ``progress``: dask's progress bar on stderr; ``log``: a text stream that gets one line
    per setting as it finishes (for batch logs), or None."""
    from .cluster import client_for

    settings = settings or grid()
    for name, v in (("n_windows", n_windows), ("window_frames", window_frames)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise OptionError(f"{name} must be a whole number at least 1, not {v!r}")
    for st in settings:  # each as lbnl-compress checks it, before any is tried
        st.options()
    ds = open_dataset(master)
    n, ny, nx = ds.frames.shape
    too_long = sorted({st.s for st in settings if st.s > n})
    if too_long:  # lbnl-compress refuses them too: never name one best
        fits = sorted({st.s for st in settings if st.s <= n})
        hint = f"--sums {' '.join(map(str, fits))}" if fits else f"--sums {min(n, 2)}"
        raise OptionError(f"{master}: a sum of {too_long[0]} frames is more than the {n} "
                          f"frames there are (try {hint})")  # fmt: skip
    too_wide = sorted({st.b for st in settings if st.b > min(ny, nx)})
    if too_wide:
        raise OptionError(f"bin {too_wide[0]} is larger than the frames ({ny} x {nx})")
    what = ds.meta.pixel_transform
    if what is not None:  # an -S/-L/-X output: its fidelity figures would mean nothing
        raise OptionError(f"{master}: its pixels are {what}, not counts (lbnl-compress -S/-L/-X):"
                          " explore the original")  # fmt: skip
    length = window_length([st.s for st in settings], window_frames, n)
    wins = windows(n, n_windows, length)
    lazy = [_evaluate(master, st, wins, Q.Shoebox.for_run) for st in settings]
    jobs = [
        dask.delayed(_collect)(*[x for p in parts for x in (p["bytes"], p["res"])])
        for parts in lazy
    ]
    rows = [None] * len(settings)
    t0 = time.monotonic()
    if log is not None:
        print(
            f"lbnl-explore: {len(settings)} settings on {len(wins)} window(s) of "
            f"{min(length, n)} "
            f"frames of {master}",
            file=log,
            flush=True,
        )

    def done(i, values):
        rows[i] = r = _row(settings[i], lazy[i], values)
        r.update(dataset_frames=n, window_frames=length,  # what the sample could be
                 windows=len(wins), windows_asked=n_windows)  # fmt: skip
        if log is not None:
            k = sum(x is not None for x in rows)
            print(
                f"lbnl-explore: {k}/{len(rows)} {r['setting']}: ratio {r['ratio_raw2']:.1f}x, "
                f"CC {r['cc']:.4f}, mean intensity ratio {r['mean_ratio']:.4f} "
                f"({time.monotonic() - t0:.0f} s)",
                file=log,
                flush=True,
            )

    with client_for(scheduler, workers) as client:
        _compute_each(jobs, client, progress, done)
    pareto(rows)
    return sorted(rows, key=lambda r: r["ratio_raw2"])


DESCRIPTION = """\
Compression ratio against spot fidelity over a grid of settings, on a sample of the frames.
Every (bin, sum) runs losslessly and with each HCompress scale, JPEG-2000 ratio, SZ3 error
bound and ZFP accuracy (each plain and with each --keep threshold), and stored with SZ3's
own filter (-c sz3) at each --sz3-filter bound, on a few windows of frames; the Bragg
intensities are compared with the lossless sum+bin of the same frames. Prints a table
(Pareto front marked *) and the best setting whose output XDS' plugins read (highest ratio
with CC >= 0.99, mean intensity ratio and background within 2% of 1, I/sigma within 5%,
overall and in each resolution shell, and at most 2% of the reflections lost to pixels the
output made invalid or saturated), and writes PREFIX.csv, PREFIX.json and PREFIX.png."""


def _filter_bound(text: str) -> float:
    """An error bound of ``--sz3-filter``: what ``-c sz3 --sz3`` takes (checked as
    :class:`OutputOptions` checks it)."""
    try:
        bound = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of counts: {text!r}") from None
    try:
        OutputOptions(compression="sz3", sz3_bound=bound)
    except OptionError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return bound


def _threshold(text: str) -> float:
    """A ``--keep`` threshold: 0 (off) or a finite number of sigmas."""
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not 0 <= v < float("inf"):
        raise argparse.ArgumentTypeError(f"a threshold is 0 (off) or a number of sigmas > 0, "
                                         f"not {text!r}")  # fmt: skip
    return v


def parser() -> argparse.ArgumentParser:
    """The options of ``lbnl-explore``."""
    p = argparse.ArgumentParser(
        prog="lbnl-explore", description=DESCRIPTION, formatter_class=_HelpFormatter
    )
    p.add_argument("master", help="the dataset: its master (*_master.h5), or a miniCBF series "
                   "(a template name_#####.cbf.gz, its first file or its folder)")  # fmt: skip
    p.add_argument("--bins", type=at_least_1, nargs="+", default=[1, 2],
                   help="bin factors to try")  # fmt: skip
    p.add_argument("--sums", type=at_least_1, nargs="+", default=[1, 2],
                   help="sum factors to try")  # fmt: skip
    p.add_argument(
        "--hcomp",
        type=int,
        nargs="*",
        default=[4, 8, 12, 16, 24, 32, 48],
        help="HCompress scales to try; none given: no HCompress",
    )
    p.add_argument(
        "--j2k",
        type=float,
        nargs="*",
        default=[60, 120, 240, 360, 720],
        help="JPEG-2000 ratios to try; none given: no JPEG-2000",
    )
    p.add_argument(
        "--sz3",
        type=float,
        nargs="*",
        default=[2, 8],
        help="SZ3 error bounds (counts) to try; none given: no SZ3",
    )
    p.add_argument(
        "--zfp",
        type=float,
        nargs="*",
        default=[8],
        help="ZFP accuracies (counts) to try; none given: no ZFP",
    )
    p.add_argument(
        "--sz3-filter",
        type=_filter_bound,
        nargs="*",
        default=[2, 8],
        help="error bounds (counts) of frames stored with SZ3's own filter (-c sz3, which "
        "XDS' Neggia does not read) to try; none given: none",
    )
    p.add_argument(
        "--keep",
        type=_threshold,
        nargs="+",
        default=[0, 5],
        help="--keep-spots thresholds (sigmas) to try with each lossy step; 0 = without",
    )
    p.add_argument("--windows", type=at_least_1, default=3,
                   help="sample windows spread over the data")  # fmt: skip
    p.add_argument("--frames", type=at_least_1, default=20,
                   help="frames per window (rounded down to a multiple of every sum, and at "
                   f"least {MIN_WINDOW_OUTPUT_FRAMES} output frames of the largest)")  # fmt: skip
    p.add_argument("-o", "--out", default="explore", help="prefix of the CSV, JSON and PNG written")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier run's CSV, JSON and PNG of this prefix")  # fmt: skip
    p.add_argument(
        "--scheduler",
        default="threads",
        help="threads, sync, processes (a local cluster) or a scheduler address",
    )
    p.add_argument(
        "-p",
        "--parallel",
        dest="workers",
        type=at_least_1,
        default=None,
        metavar="N",
        help="dask workers (default: all cores)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="dask's progress bar on stderr (default: if stderr is a terminal)",
    )
    return p


def _check_out(a) -> str | None:
    """Why ``-o`` cannot take this run's CSV, JSON and PNG, or None: checked before minutes
    of work, not after (an earlier run's, the dataset's own ground-truth table, a folder
    that cannot be written, no prefix)."""
    out = a.out
    if not os.path.basename(out):
        return f"-o {out!r}: give a prefix for the files (a folder ends it), as in -o out/thermo"
    there = [out + ext for ext in (".csv", ".json", ".png") if os.path.exists(out + ext)]
    truth = os.path.abspath(str(a.master).replace("_master.h5", "_reflections.csv"))
    if os.path.abspath(out + ".csv") == truth:
        return f"{out}.csv: the dataset's own ground-truth table: choose another -o"
    if there and not a.overwrite:
        return f"{there[0]}: exists (use --overwrite to replace it, or another -o)"
    folder = os.path.dirname(os.path.abspath(out))
    try:
        output_folder(folder)
        with tempfile.TemporaryFile(dir=folder):  # a folder that lets one in but takes no file
            pass  # (/proc, a read-only mount os.access calls writable)
    except OutputError as e:
        return str(e)
    except OSError as e:
        return f"{out}: cannot write in the output folder {folder} ({e.strerror or e})"
    return None


def main(argv=None) -> int:
    one_openmp_thread()
    a = parser().parse_args(argv)
    log = None if sys.stdout.isatty() else sys.stdout  # a batch log: one line per setting
    with folders_removed_if_empty([a.out]):  # made by _check_out: gone again if left empty
        why = _check_out(a)
        if why is not None:
            print(f"lbnl-explore: error: {why}", file=sys.stderr)
            return 2
        return _explore_and_save(a, log)


def _explore_and_save(a, log) -> int:
    """The grid's run, its table and its files (:func:`main` after the checks)."""
    try:
        with stop_on_sigterm():  # a batch system's time limit: the same line as Ctrl-C
            rows = explore(
                a.master,
                grid(a.bins, a.sums, a.hcomp, a.j2k, a.keep, a.sz3, a.zfp, a.sz3_filter),
                a.windows,
                a.frames,
                a.scheduler,
                a.workers,
                sys.stderr.isatty() if a.progress is None else a.progress,
                log=log,
            )
    except LbnlDaskError as e:
        print(f"lbnl-explore: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # (the tables are written only once every setting is done)
        print("lbnl-explore: interrupted before its tables were written", file=sys.stderr)
        return 128 + getattr(e, "signal", signal.SIGINT)  # 130 for Ctrl-C, 143 for SIGTERM
    print(table(rows))
    print(describe_best(rows))
    best = best_setting(rows)
    if best is not None and best.get("shells"):
        print(describe_shells(best))
    elif best is not None:
        print("  (no resolution shells: the master lacks the geometry or too few reflections; "
              "judged overall only)")  # fmt: skip
    gain = describe_gain(rows)
    if gain is not None:
        print(gain)
    for note in (describe_short_windows(rows), describe_windows(rows)):
        if note is not None:
            print(note)
    try:
        written = save(rows, a.out)
    except LbnlDaskError as e:  # a full disk: the tables above are printed, none is written
        print(f"lbnl-explore: error: {e}; no CSV, JSON nor PNG was written (the table above "
              "is this run's only record)", file=sys.stderr)  # fmt: skip
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


#: The console script (pyproject.toml): :func:`main`, then :func:`~lbnl_dask.cluster.console`.
command = console(main)


if __name__ == "__main__":
    sys.exit(command())
