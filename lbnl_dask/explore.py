"""``lbnl-explore``: compression ratio against spot fidelity over a grid of settings, on a sample.

A few windows of frames spread over the dataset (not the whole thing) go through every
setting in memory: the same transforms and codecs as ``lbnl-compress``, the output frames
encoded with bitshuffle-LZ4 to count their bytes (ratio against 2-byte raw), and
:mod:`lbnl_dask.quality` comparing the reflections' intensities with the lossless sum+bin of
the same windows. The table marks the settings on the Pareto front (no other setting has a
higher ratio *and* a higher CC) and is written as CSV and JSON with a PNG plot.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from dataclasses import dataclass

import dask
import numpy as np

from . import quality as Q
from . import transform as T
from .codecs import BitshuffleLZ4
from .eiger import open_dataset
from .cluster import one_openmp_thread
from .errors import LbnlDaskError
from .options import OutputOptions
from .pipeline import output_frames


@dataclass(frozen=True)
class Setting:
    """One point of the grid: bin, sum, a lossy step ('none', 'H' scale, 'J' ratio) and the
    ``--keep-spots`` threshold (0 = off)."""

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
    def from_row(cls, row: dict) -> "Setting":
        """The setting of a row of :func:`explore`'s table."""
        return cls(int(row["bin"]), int(row["sum"]), row["codec"], float(row["param"]), float(row.get("keep") or 0))

    def kwargs(self) -> dict:
        """The options of ``lbnl_dask.compress`` (and ``lbnl-compress``) for this setting."""
        kw = dict(bin_range=self.b, sum_range=self.s)
        if self.codec == "H":
            kw["hcomp_scale"] = int(self.param)
        elif self.codec == "J":
            kw["j2k_ratio"] = float(self.param)
        if self.keep and self.codec != "none":
            kw["keep_spots"] = float(self.keep)
        return kw

    def options(self) -> OutputOptions:
        return OutputOptions(**self.kwargs())


def grid(bins=(1, 2), sums=(1, 2), hcomp=(4, 8, 12, 16, 24, 32, 48), j2k=(60, 120, 240, 360, 720),
         keep=(0, 5)) -> list[Setting]:
    """Every (bin, sum) with no lossy step, and with each HCompress scale and each JPEG-2000
    ratio, each of those with every ``keep`` threshold (0 = the plain round trip)."""
    out = []
    for b in bins:
        for s in sums:
            out.append(Setting(b, s))
            for k in keep:
                out += [Setting(b, s, "H", h, k) for h in hcomp]
                out += [Setting(b, s, "J", j, k) for j in j2k]
    return out


def windows(n_frames: int, count: int, length: int) -> list[tuple[int, int]]:
    """``count`` windows of ``length`` frames (1-based, inclusive), evenly spread."""
    length = min(length, n_frames)
    count = max(1, min(count, n_frames // length))
    starts = np.linspace(1, n_frames - length + 1, count).round().astype(int)
    return [(int(a), int(a) + length - 1) for a in starts]


def _encoded_bytes(block, codec):
    return np.array([[[sum(len(codec.encode(f)) for f in block)]]], dtype=np.int64)


def _evaluate(master, setting: Setting, wins, box_for):
    """(bytes, input frames, frame pixels, integration results, reflections) of one setting, lazily."""
    o = setting.options()
    parts = []
    for first, last in wins:
        ds = open_dataset(master, first, last, datablock=(last - first + 1) // setting.s * setting.s or setting.s)
        mask = ds.pixel_mask()
        g = output_frames(ds.padded_frames(setting.b), ds.meta.overload, mask, o, ds.shape[1:])
        nbytes = g.final.map_blocks(_encoded_bytes, BitshuffleLZ4(g.dtype), dtype=np.int64,
                                    chunks=((1,) * g.final.numblocks[0], (1,), (1,))).sum()
        run = Q.RunGeometry(first, last, setting.s, setting.b)
        ref, _ = Q.reference_counts(master, run, chunk_frames=last - first + 1)
        out = T.to_counts(g.final, None, g.saturation, np.float64).rechunk((ref.chunks[0], -1, -1))
        refl = Q.truth_reflections(master, run)
        if refl is None:
            refl = dask.delayed(Q.find_spots)(ref)
        else:
            refl = refl[(refl["frame"] > -0.5) & (refl["frame"] < ref.shape[0] - 0.5)]
        res = dask.delayed(_integrate)(ref, out, refl, box_for(run))
        parts.append(dict(bytes=nbytes, frames=last - first + 1, pixels=int(np.prod(ds.frames.shape[1:])), res=res))
    return parts


def _integrate(ref, out, refl, box):
    return Q._integrate_block(ref, out, refl, 0, box)


def _collect(*values):
    return list(values)


def pareto(rows, x="ratio_raw2", y="cc") -> None:
    """Mark rows no other row beats in both ``x`` and ``y`` (``row['pareto'] = True``)."""
    for r in rows:
        r["pareto"] = np.isfinite(r[y]) and not any(
            o is not r and np.isfinite(o[y]) and o[x] >= r[x] and o[y] >= r[y] and (o[x] > r[x] or o[y] > r[y])
            for o in rows)


def explore(master, settings: list[Setting] | None = None, n_windows: int = 3, window_frames: int = 20,
            scheduler: str = "threads", workers: int | None = None, progress: bool = False) -> list[dict]:
    """Ratio and fidelity of each setting on a sample of ``master``; rows sorted by ratio."""
    from .cluster import client_for, run as run_job

    settings = settings or grid()
    n = open_dataset(master).frames.shape[0]
    lcm = int(np.lcm.reduce([st.s for st in settings]))
    length = max(lcm, window_frames // lcm * lcm)
    wins = windows(n, n_windows, length)
    lazy = [_evaluate(master, st, wins, Q.Shoebox.for_run) for st in settings]
    flat = [x for parts in lazy for p in parts for x in (p["bytes"], p["res"])]
    with client_for(scheduler, workers) as client:
        values = iter(run_job(dask.delayed(_collect)(*flat), client, progress))
    for parts in lazy:
        for p in parts:
            p["bytes"], p["res"] = next(values), next(values)
    rows = []
    for st, parts in zip(settings, lazy):
        nbytes = sum(int(p["bytes"]) for p in parts)
        n_in = sum(p["frames"] for p in parts)
        raw2 = sum(p["frames"] * p["pixels"] * 2 for p in parts)
        res = np.concatenate([p["res"] for p in parts]) if parts else np.zeros((0, 4))
        s = Q.summarize(res).overall
        rows.append(dict(setting=st.name, bin=st.b, sum=st.s, codec=st.codec, param=st.param, keep=st.keep, frames=n_in,
                         bytes=nbytes, ratio_raw2=raw2 / nbytes, ratio_raw4=2 * raw2 / nbytes, n=s.n, cc=s.cc,
                         mean_ratio=s.mean_ratio, r_factor=s.r_factor, i_sigma_ref=s.i_sigma_ref,
                         i_sigma_out=s.i_sigma_out))
    pareto(rows)
    return sorted(rows, key=lambda r: r["ratio_raw2"])


def table(rows) -> str:
    """The rows as a fixed-width text table (Pareto front marked *)."""
    head = f"{'setting':14s} {'ratio(2B)':>9s} {'n':>5s} {'CC':>7s} {'ratio I':>8s} {'R':>6s} {'I/sig':>11s}"
    lines = [head]
    for r in rows:
        lines.append(f"{r['setting']:13s}{'*' if r['pareto'] else ' '} {r['ratio_raw2']:9.1f} {r['n']:5d} "
                     f"{r['cc']:7.4f} {r['mean_ratio']:8.4f} {r['r_factor']:6.3f} "
                     f"{r['i_sigma_ref']:5.1f}->{r['i_sigma_out']:4.1f}")
    return "\n".join(lines)


def save(rows, prefix: str) -> list[str]:
    """Write ``<prefix>.csv``, ``<prefix>.json`` and ``<prefix>.png`` (if matplotlib is there)."""
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    written = []
    with open(prefix + ".csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    written.append(prefix + ".csv")
    with open(prefix + ".json", "w") as fh:
        json.dump(rows, fh, indent=1, default=float)
    written.append(prefix + ".json")
    try:  # the object API: no pyplot, so a notebook's backend is left alone
        from matplotlib.figure import Figure
    except ImportError:
        return written
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for codec, kept, marker, label in (("none", False, "s", "lossless"), ("H", False, "o", "HCompress"),
                                       ("J", False, "^", "JPEG-2000"), ("H", True, "D", "HCompress, spots kept"),
                                       ("J", True, "v", "JPEG-2000, spots kept")):
        sel = [r for r in rows if r["codec"] == codec and bool(r.get("keep")) == kept]
        if sel:
            ax.scatter([r["ratio_raw2"] for r in sel], [r["cc"] for r in sel], marker=marker, label=label)
    front = sorted((r for r in rows if r["pareto"]), key=lambda r: r["ratio_raw2"])
    ax.plot([r["ratio_raw2"] for r in front], [r["cc"] for r in front], "k--", lw=1, label="Pareto front")
    for r in front:
        ax.annotate(r["setting"], (r["ratio_raw2"], r["cc"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("total compression ratio (vs 2-byte raw)")
    ax.set_ylabel("CC of intensities (I/sigma >= 3) vs lossless")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(prefix + ".png", dpi=120)
    written.append(prefix + ".png")
    return written


def main(argv=None) -> int:
    one_openmp_thread()
    p = argparse.ArgumentParser(prog="lbnl-explore", description=__doc__.splitlines()[0])
    p.add_argument("master")
    p.add_argument("--bins", type=int, nargs="+", default=[1, 2])
    p.add_argument("--sums", type=int, nargs="+", default=[1, 2])
    p.add_argument("--hcomp", type=int, nargs="*", default=[4, 8, 12, 16, 24, 32, 48])
    p.add_argument("--j2k", type=float, nargs="*", default=[60, 120, 240, 360, 720])
    p.add_argument("--keep", type=float, nargs="+", default=[0, 5],
                   help="--keep-spots thresholds (sigmas) to try with each lossy step; 0 = without (0 5)")
    p.add_argument("--windows", type=int, default=3, help="sample windows spread over the data")
    p.add_argument("--frames", type=int, default=20, help="frames per window")
    p.add_argument("-o", "--out", default="explore", help="prefix of the CSV, JSON and PNG written")
    p.add_argument("--scheduler", default="threads")
    p.add_argument("-p", "--parallel", dest="workers", type=int, default=None)
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    a = p.parse_args(argv)
    try:
        rows = explore(a.master, grid(a.bins, a.sums, a.hcomp, a.j2k, a.keep), a.windows, a.frames, a.scheduler, a.workers,
                       sys.stderr.isatty() if a.progress is None else a.progress)
    except LbnlDaskError as e:
        print(f"lbnl-explore: error: {e}", file=sys.stderr)
        return 2
    print(table(rows))
    for path in save(rows, a.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
