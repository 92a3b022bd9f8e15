"""Judging and showing the explorer's rows: acceptable settings, the best, the Pareto front,
a text table, CSV and JSON files, and a ratio-against-CC plot.

Rows are :func:`lbnl_dask.explore.explore`'s dicts (setting, ratio_raw2, cc, mean_ratio, ...).
"""

from __future__ import annotations

import csv
import json
import os
from math import floor

import numpy as np

from .shells import MIN_SHELL_REFLECTIONS

#: What "acceptable" means by default: CC of the intensities >= MIN_CC and the mean intensity
#: ratio within RATIO_TOLERANCE of 1 (a CC near 1 can hide a scaled-down intensity).
MIN_CC = 0.99
RATIO_TOLERANCE = 0.02
#: The background (summed away from every reflection's shoebox) out/in within this of 1.
BACKGROUND_TOLERANCE = 0.02
#: The mean I/sigma after within this fraction of before.
ISIGMA_TOLERANCE = 0.05
#: At most this fraction of the original's strong reflections lost: a pixel of their box
#: made invalid or saturated by the output (a reader masks it; -c sz3 below its bound).
LOST_TOLERANCE = 0.02


#: Output frames a window gives at the largest sum tried, at least: a reflection's box spans
#: +-1 output frame or more, so windows of one or two output frames would cut most boxes short.
MIN_WINDOW_OUTPUT_FRAMES = 4


def _within(value, tolerance: float) -> bool:
    # 1e-12: a ratio of exactly 1 - tolerance (0.98 is 1 - 0.0200...02 in binary) counts
    return bool(np.isfinite(value) and abs(value - 1) <= tolerance + 1e-12)


def acceptable(row: dict, min_cc: float = MIN_CC, tolerance: float = RATIO_TOLERANCE) -> bool:
    """True if a row of :func:`explore` keeps CC >= ``min_cc``, its mean intensity ratio
    within ``tolerance`` of 1, its background (out/in) within BACKGROUND_TOLERANCE of 1 and
    its mean I/sigma within ISIGMA_TOLERANCE of the original's, overall and in every
    resolution shell of ``row["shells"]``, and it loses at most LOST_TOLERANCE of the
    original's strong reflections (``row["lost"]``; a table of an older version has none,
    and lost none). NaN or another missing measure (too few reflections; a table of an
    older version) is never acceptable."""
    lost = float(row.get("lost", 0.0))
    return (
        _holds(row, min_cc, tolerance)
        and all(_holds(sh, min_cc, tolerance) for sh in row.get("shells", []))
        and not lost > LOST_TOLERANCE  # NaN (no strong reflection): judged by the rest
    )


def _holds(m: dict, min_cc: float, tolerance: float) -> bool:
    cc = float(m["cc"])
    isig = float(m.get("i_sigma_out", np.nan)) / float(m.get("i_sigma_ref", np.nan) or np.nan)
    return bool(
        np.isfinite(cc)
        and cc >= min_cc
        and _within(float(m["mean_ratio"]), tolerance)
        and _within(float(m.get("background_ratio", np.nan)), BACKGROUND_TOLERANCE)
        and _within(isig, ISIGMA_TOLERANCE)
    )


def worst_shell(row: dict) -> dict:
    """The worst of a row's resolution shells by each criterion: the number of shells, the
    lowest CC, and the mean intensity ratio, background out/in and I/sigma after/before
    farthest from 1 (NaN without shells)."""
    shells = row.get("shells") or []
    nan = float("nan")

    def farthest(values):
        values = [v for v in values if np.isfinite(v)]
        return max(values, key=lambda v: abs(v - 1)) if values else nan

    isig = [float(sh.get("i_sigma_out", nan)) / float(sh.get("i_sigma_ref", nan) or nan)
            for sh in shells]  # fmt: skip
    ccs = [float(sh["cc"]) for sh in shells if np.isfinite(float(sh["cc"]))]
    return dict(
        shells=len(shells),
        worst_shell_cc=min(ccs) if ccs else nan,
        worst_shell_mean_ratio=farthest(float(sh["mean_ratio"]) for sh in shells),
        worst_shell_background_ratio=farthest(
            float(sh.get("background_ratio", nan)) for sh in shells
        ),
        worst_shell_i_sigma_ratio=farthest(isig),
    )


def describe_shells(row: dict) -> str:
    """The per-shell lines of a row (resolution range, n, CC, intensity ratio, I/sigma before
    -> after, background out/in)."""
    lines = [f"  shells of {row['setting']}:  d (A)        n      CC  ratio I   I/sig      bg"]
    for sh in row.get("shells", []):
        lines.append(
            f"  {'':>16s}{sh['d_max']:6.2f}-{sh['d_min']:5.2f} {sh['n']:5d} {sh['cc']:7.4f} "
            f"{sh['mean_ratio']:8.4f} {sh['i_sigma_ref']:5.1f}->{sh['i_sigma_out']:4.1f} "
            f"{sh['background_ratio']:6.3f}"
        )
    return "\n".join(lines)


def best_setting(rows, min_cc: float = MIN_CC, tolerance: float = RATIO_TOLERANCE,
                 xds: bool = True) -> dict | None:  # fmt: skip
    """The row with the highest ``ratio_raw2`` among the :func:`acceptable` ones, or None;
    with ``xds`` only among the rows whose output XDS' plugins read (``row["xds"]``: not
    ``-c sz3``; rows of older tables, without the field, count as read)."""
    ok = [r for r in rows if acceptable(r, min_cc, tolerance) and (r.get("xds", True) or not xds)]
    return max(ok, key=lambda r: r["ratio_raw2"]) if ok else None


def describe_best(rows) -> str:
    """One line naming :func:`best_setting` of ``rows`` (or saying there is none)."""
    best = best_setting(rows)
    rule = (f"CC >= {MIN_CC:g}, mean intensity ratio and background within "
            f"{RATIO_TOLERANCE:.0%} of 1, I/sigma within {ISIGMA_TOLERANCE:.0%}, overall and "
            f"in each shell of {MIN_SHELL_REFLECTIONS}+ reflections, at most "
            f"{LOST_TOLERANCE:.0%} of the reflections lost")  # fmt: skip
    anyone = best_setting(rows, xds=False)
    also = ""
    if anyone is not None and anyone is not best:
        also = (f"; {'higher' if best else 'acceptable'}, but not read by XDS' Neggia: "
                f"{anyone['setting']} ({anyone['ratio_raw2']:.1f}x)")  # fmt: skip
    if best is None:
        return f"best: none of the settings XDS reads has {rule}{also}"
    return (
        f"best: {best['setting']} (ratio {best['ratio_raw2']:.1f}x vs 2-byte raw, "
        f"CC {best['cc']:.4f}, mean intensity ratio {best['mean_ratio']:.4f}, background "
        f"{best['background_ratio']:.4f}; {rule}){also}"
    )


#: A best setting whose ratio is below this factor times the lossless ratio of its own bin
#: and sum gains little from its lossy step: :func:`describe_gain` says so.
LITTLE_GAIN = 1.25
#: The --keep threshold (sigmas) the note of a lossless best suggests when only higher ones
#: were tried: on a synthetic 4M at 1.5 counts/pixel/frame, b2s4h64 failed the outer shell
#: (CC 0.96-0.97) with --keep 5 and 4 and passed with 3, at 62x against lossless b2s4's 56x.
LOW_KEEP = 3


def describe_gain(rows) -> str | None:
    """A note when :func:`best_setting` gains little over lossless storage of its own bin
    and sum (less than LITTLE_GAIN times its ratio), or is that lossless storage itself
    (the acceptable lossy steps tried there store it larger, none was acceptable, or none
    was tried), else None. Then the
    counting noise of the background, which any acceptable output keeps, sets the ratio (at
    about 1 count per output pixel and up: ``benchmarks/bench_bslz4_ceiling.py``), and only
    more raw pixels per output pixel raise it: larger sums, suggested when the best has the
    largest sum tried and the dataset (``row["dataset_frames"]``) holds them. What summing
    more images costs (each output frame spans more rotation) the explorer does not judge:
    it compares each setting with the lossless sum of the same images."""
    best = best_setting(rows)
    if best is None or "sum" not in best:
        return None
    b, s = best["bin"], best["sum"]
    here = [r for r in rows if r.get("bin") == b and r.get("sum") == s]
    lossless = [r for r in here if r.get("codec") == "none"]
    if not lossless:
        return None
    base = lossless[0]["ratio_raw2"]
    if best.get("codec") == "none":
        tried = [r for r in here if r.get("codec") != "none"]
        passed = [r for r in tried if acceptable(r) and r.get("xds", True)]
        why = ("the acceptable lossy settings tried there store it larger" if passed
               else "none of the lossy settings tried there was acceptable" if tried
               else "no lossy step was tried there")  # fmt: skip
        line = f"note: lossless b{b}s{s} ({base:.1f}x) is the best: {why}"
        kept = {r.get("keep") for r in tried if r.get("keep")}  # the --keep thresholds tried
        if tried and not passed and min(kept, default=np.inf) > LOW_KEEP:
            line += (f". --keep-spots at a low threshold keeps weaker reflections exactly, at "
                     f"some cost in ratio (try --keep 0 {LOW_KEEP:g})")  # fmt: skip
    else:
        gain = best["ratio_raw2"] / base
        if gain >= LITTLE_GAIN:
            return None
        # below 1.25 and printed so: 1.248, 1.2496 as 1.249 (rounded, both read 1.25)
        shown = f"{gain:.2f}" if round(gain, 2) < LITTLE_GAIN else f"{floor(gain * 1e3) / 1e3:.3f}"
        line = (f"note: {best['setting']} reaches {shown} times the ratio of lossless "
                f"b{b}s{s} ({base:.1f}x): the lossy steps gain little on this data; the "
                "background's counting noise, which every acceptable setting keeps, sets the "
                "ratio")  # fmt: skip
    n = best.get("dataset_frames")
    more = [k for k in (2 * s, 4 * s) if n is None or k <= n]
    if s >= max(r.get("sum", 0) for r in rows) and more:
        line += (f". Summing more images raises it (try --sums {' '.join(map(str, more))}); "
                 f"each output frame then spans {' or '.join(map(str, more))} images of "
                 "rotation, which these criteria (against the lossless sum of the same images) "
                 "do not judge")  # fmt: skip
    return line


def describe_short_windows(rows) -> str | None:
    """A note when the sample windows give fewer than MIN_WINDOW_OUTPUT_FRAMES output frames
    at the largest sum
    (the dataset is too short for more): a reflection's box spans +-1 output frame or more,
    so the figures at that sum rest on boxes cut short. None otherwise, or for rows without
    ``window_frames``."""
    sized = [r for r in rows if r.get("window_frames") and r.get("sum")]
    if not sized:
        return None
    s = max(r["sum"] for r in sized)
    length = sized[0]["window_frames"]
    if length // s >= MIN_WINDOW_OUTPUT_FRAMES:
        return None
    return (
        f"note: windows of {length} frames give {length // s} output frame(s) at -s {s} "
        "(the data hold no more): its reflections' boxes are cut short; judge that sum "
        "on a longer dataset"
    )


def describe_windows(rows) -> str | None:
    """A note when the sample took fewer windows than asked (``row["windows"]`` against
    ``row["windows_asked"]``): more would have overlapped in a dataset this short. None
    otherwise, or for rows without those fields."""
    row = next((r for r in rows if r.get("windows") and r.get("windows_asked")), None)
    if row is None or row["windows"] >= row["windows_asked"]:
        return None
    return (f"note: {row['windows']} window(s) of {row['window_frames']} frames, not the "
            f"{row['windows_asked']} asked: more would overlap in {row['dataset_frames']} "
            "frames")  # fmt: skip


def pareto(rows, x="ratio_raw2", y="cc") -> None:
    """Mark rows no other row beats in both ``x`` and ``y`` (``row['pareto'] = True``). ``y``
    values are compared to 12 significant digits: two lossless settings' CC of 1.0 and
    0.9999999999999999 are a tie, not a win."""

    def key(v):
        return float(f"{v:.12g}")

    for r in rows:
        r["pareto"] = bool(np.isfinite(r[y])) and not any(
            o is not r
            and np.isfinite(o[y])
            and o[x] >= r[x]
            and key(o[y]) >= key(r[y])
            and (o[x] > r[x] or key(o[y]) > key(r[y]))
            for o in rows
        )


def table(rows) -> str:
    """The rows as a fixed-width text table (Pareto front marked *)."""
    head = (
        f"{'setting':14s} {'ratio(2B)':>9s} {'n':>5s} {'CC':>7s} "
        f"{'ratio I':>8s} {'R':>6s} {'I/sig':>11s} {'bg':>6s} {'noise':>5s} {'lost':>5s}"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['setting']:13s}{'*' if r['pareto'] else ' '} {r['ratio_raw2']:9.1f} {r['n']:5d} "
            f"{r['cc']:7.4f} {r['mean_ratio']:8.4f} {r['r_factor']:6.3f} "
            f"{r['i_sigma_ref']:5.1f}->{r['i_sigma_out']:4.1f} "
            f"{r.get('background_ratio', float('nan')):6.3f} "
            f"{r.get('noise_ratio', float('nan')):5.2f} {r.get('lost', 0.0):5.1%}"
        )
    return "\n".join(lines)


def save(rows, prefix: str) -> list[str]:
    """Write ``<prefix>.csv``, ``<prefix>.json`` and ``<prefix>.png`` (if matplotlib is there).
    The CSV has a row's overall figures, whether it is :func:`acceptable` and its worst
    resolution shell's (:func:`worst_shell`); every shell is in the JSON file. All or none:
    each is made as a temporary beside its name and the three are renamed once all are
    made, so a full disk leaves no table without its plot (OutputError then)."""
    from .layout import part_path
    from .writer import refused_write

    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    flat = [{**{k: v for k, v in r.items() if k != "shells"}, "acceptable": acceptable(r),
             **worst_shell(r)} for r in rows]  # fmt: skip
    try:
        fig = plot(rows)
    except ImportError:  # matplotlib is optional
        fig = None

    def write_csv(tmp):
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(flat[0]), extrasaction="ignore")
            w.writeheader()
            w.writerows(flat)

    def write_json(tmp):
        with open(tmp, "w") as fh:  # strict: undefined is null
            json.dump(_strict(rows), fh, indent=1, allow_nan=False)

    writers = {prefix + ".csv": write_csv, prefix + ".json": write_json}
    if fig is not None:
        writers[prefix + ".png"] = lambda tmp: fig.savefig(tmp, dpi=PLOT_DPI, format="png")
    made = []
    path = None
    try:
        for path, write in writers.items():  # each a temporary first, then all renamed
            made.append(part_path(path))
            write(made[-1])
        for tmp, path in zip(made, writers, strict=True):
            os.replace(tmp, path)
    except OSError as e:
        raise refused_write(path, e) from None
    finally:
        for tmp in made:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return list(writers)


def _strict(value):
    """``value`` for strict JSON: NaN and infinities (a CC without reflections) as None,
    numpy scalars as Python's."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


PLOT_DPI = 120
_MARKERS = (
    ("none", False, "s", "lossless"),
    ("H", False, "o", "HCompress"),
    ("J", False, "^", "JPEG-2000"),
    ("H", True, "D", "HCompress, spots kept"),
    ("J", True, "v", "JPEG-2000, spots kept"),
    ("SZ", False, "P", "SZ3"),
    ("ZF", False, "X", "ZFP"),
    ("SZ", True, "p", "SZ3, spots kept"),
    ("ZF", True, "x", "ZFP, spots kept"),
    ("SF", False, "*", "SZ3's own filter (-c sz3)"),
)


def plot(rows):
    """CC against ratio (vs 2-byte raw, log axis) of ``rows`` as a matplotlib Figure (7 x 4.5
    in, drawn with Agg): the Pareto front as a line, its points labelled without overlap,
    :func:`best_setting` circled. The object API, no pyplot: a notebook's backend is left
    alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=PLOT_DPI)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    finite = [r for r in rows if np.isfinite(r["cc"])]
    for codec, kept, marker, label in _MARKERS:
        sel = [r for r in finite if r["codec"] == codec and bool(r.get("keep")) == kept]
        if sel:
            ax.scatter(
                [r["ratio_raw2"] for r in sel], [r["cc"] for r in sel], marker=marker, label=label
            )
    front = sorted((r for r in finite if r["pareto"]), key=lambda r: r["ratio_raw2"])
    best = best_setting(rows)
    if finite:
        ax.plot(
            [r["ratio_raw2"] for r in front],
            [r["cc"] for r in front],
            "k--",
            lw=1,
            label="Pareto front",
        )
        if best is not None:
            ax.scatter(
                [best["ratio_raw2"]],
                [best["cc"]],
                s=160,
                facecolors="none",
                edgecolors="red",
                label=f"best: {best['setting']}",
            )
        ax.set_xscale("log")
        ax.legend(fontsize=8, loc="lower left")
    else:  # no reflection integrated cleanly anywhere: nothing to plot on a CC axis
        ax.text(
            0.5,
            0.5,
            "no reflections to compare: CC undefined",
            transform=ax.transAxes,
            ha="center",
            va="center",
        )
    ax.set_xlabel("total compression ratio (vs 2-byte raw)")
    ax.set_ylabel("CC of intensities (I/sigma >= 3) vs lossless")
    fig.tight_layout()
    _label_points(ax, front, finite)
    return fig


# label offsets (points) tried in turn: right/left of the point, then further up/down
_OFFSETS = [(dx, dy) for dy in (6, -6, 16, -16, 26, -26, 36, -36, 46, -46) for dx in (5, -5)]


def _label(ax, text: str, xy, dx: float, dy: float, **kw):
    """``text`` beside the point ``xy``, offset by (dx, dy) points, on the side of dx."""
    return ax.annotate(text, xy, xytext=(dx, dy), textcoords="offset points", fontsize=7,
                       ha="left" if dx > 0 else "right", va="center", **kw)  # fmt: skip


def _label_points(ax, rows, markers=()) -> None:
    """Name each row's point on ``ax``, at the first offset where its text overlaps no label
    placed before and no marker of ``markers`` (rows) and stays inside the axes (else at the
    first offset overlapping none): points close together get staggered labels."""
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    renderer = ax.figure.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    half = 4 * ax.figure.dpi / 72  # a default scatter marker's half width (pixels)
    placed = []
    for r in markers:
        x, y = ax.transData.transform((r["ratio_raw2"], r["cc"]))
        placed.append(Bbox.from_extents(x - half, y - half, x + half, y + half))
    for r in rows:
        xy = (r["ratio_raw2"], r["cc"])
        choice = None
        for dx, dy in _OFFSETS:
            ann = _label(ax, r["setting"], xy, dx, dy)
            ann.update_positions(renderer)
            box = Text.get_window_extent(ann, renderer)  # the text alone, not its leader line
            ann.remove()
            if any(box.overlaps(b) for b in placed):
                continue
            fits = (
                inside.x0 <= box.x0
                and box.x1 <= inside.x1
                and inside.y0 <= box.y0
                and box.y1 <= inside.y1
            )
            if choice is None or fits:
                choice = (dx, dy, box)
            if fits:
                break
        dx, dy, box = choice or (*_OFFSETS[0], None)
        leader = dict(arrowstyle="-", lw=0.5, color="0.4") if abs(dy) > 6 else None
        _label(ax, r["setting"], xy, dx, dy, arrowprops=leader)
        if box is not None:
            placed.append(box)
