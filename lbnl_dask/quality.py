"""Compression ratios and spot-level fidelity: what a setting costs the Bragg intensities.

``fidelity(original_master, compressed_master)`` integrates reflections in the original
(summed and binned the same way, losslessly) and in the compressed output, and compares
them. Reflection positions come from the synthetic ground-truth table
(``<prefix>_reflections.csv`` beside the original master) when there is one, otherwise from
:func:`find_spots`.

Integration (documented, deliberately simple) is :mod:`lbnl_dask.integrate`: summation in
a square shoebox with a background ring; a reflection whose box holds an invalid or
saturated pixel in either dataset is left out: invalid pixels never count.

Statistics are over the reflections with I/sigma >= 3 in the original: correlation
coefficient of the intensities, mean ratio compressed/original (intensity-weighted,
sum(Ic) / sum(Io)), R = sum|Ic - Io| / sum|Io|,
and the mean I/sigma of each; also by resolution shell and, with ground truth, against it.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import dask
import dask.array as da
import h5py
import numpy as np
from dask.threaded import get as threaded_get  # not "threads": the name imports distributed

from . import shells as shells_mod
from . import transform as T
from .cluster import available_cores
from .eiger import is_cbf_input, open_dataset, read_meta
from .errors import MismatchError
from .header import MasterFile
from .integrate import (  # noqa: F401  (quality's API: integrate with it)
    Shoebox,
    background_free,
    background_sums,
    integrate,
    integrate_block,
    neighbour_moments,
    noise_variance,
)
from .layout import SPEC
from .shells import Geometry
from .spots import REFL_DTYPE, find_spots, spot_regions
from .synth import read_reflections


# ---------------------------------------------------------------- ratios
def compression_ratios(
    original_master, compressed_master, first_image: int = 1, last_image: int | None = None
) -> dict:
    """Ratios of a run: input data files on disk (the selected frames' share), 2-byte raw
    (the HDRMX paper's convention: frames x ny x nx x 2 bytes of the original) and 4-byte raw,
    each divided by the compressed data files' bytes."""
    src = open_dataset(original_master, first_image, last_image)
    files_in = src.data_bytes()
    files_out = open_dataset(compressed_master).data_bytes()
    raw2 = int(np.prod(src.shape)) * 2
    return dict(
        bytes_in=int(files_in),
        bytes_out=int(files_out),
        raw2_bytes=raw2,
        ratio_files=files_in / files_out,
        ratio_raw2=raw2 / files_out,
        ratio_raw4=2 * raw2 / files_out,
    )


# ---------------------------------------------------------------- geometry of a run
@dataclass
class RunGeometry:
    """How a compressed dataset maps onto its original: 1-based first/last input image,
    sum s, bin b (inferred from the two masters unless given)."""

    first: int
    last: int
    s: int
    b: int


def infer_run(original_master, compressed_master) -> RunGeometry:
    """Infer first/last/s/b from the masters: b from the pixel sizes, s from nframes_sum
    (else the count or frame times), first from the first output frame's omega. A
    compressed dataset whose frames cannot be the original's summed and binned so (their
    size, their number, an omega that is none of the original's images) is a
    MismatchError: its figures would be numbers about two different datasets."""
    mi, mo = read_meta(original_master), read_meta(compressed_master)
    b = int(round(mo.x_pixel_size / mi.x_pixel_size)) if mi.x_pixel_size and mo.x_pixel_size else 1
    s = _summed(original_master, compressed_master, mi, mo)
    first, omega = 1, None
    if mi.omega is not None and mo.omega is not None and len(mi.omega) > 1 and len(mo.omega):
        first = int(np.argmin(np.abs(mi.omega - mo.omega[0]))) + 1
        omega = (mo.omega[0], mi.omega[first - 1], abs(mi.omega[1] - mi.omega[0]))
    n_out = mo.n_frames
    last = min(first + n_out * s - 1, mi.n_frames)
    run = RunGeometry(first, last, max(s, 1), max(b, 1))
    _check_pair(original_master, compressed_master, run, omega)
    return run


def _summed(original_master, compressed_master, mi, mo) -> int:
    """Input frames per output frame: the ratio of the masters' nframes_sum (lbnl-compress
    writes s x the input's), else of their count times, else of their frame times; 1."""

    def nframes_sum(master):
        if is_cbf_input(os.fspath(master)):
            return None  # a miniCBF series records no sum: its exposure times tell
        with MasterFile(master) as f:
            d = f.get(SPEC + "/nframes_sum")
            v = d[()] if isinstance(d, h5py.Dataset) and d.shape == () else None
        return int(v) if v is not None and np.isfinite(v) and v >= 1 else None

    pairs = [(nframes_sum(compressed_master), nframes_sum(original_master)),
             (mo.count_time, mi.count_time), (mo.frame_time, mi.frame_time)]  # fmt: skip
    for out, inp in pairs:
        if out and inp and out > 0 and inp > 0:
            return max(1, int(round(out / inp)))
    return 1


def _check_pair(original_master, compressed_master, run: RunGeometry, omega) -> None:
    """MismatchError unless ``compressed_master``'s frames can be ``original_master``'s
    images run.first..run.last summed s and binned b."""
    n_in, ny, nx = open_dataset(original_master).shape
    n_out, my, mx = open_dataset(compressed_master).shape
    want = (-(-ny // run.b), -(-nx // run.b))
    why = None
    if (my, mx) != want:
        why = (f"its frames are {my} x {mx}, the original's {ny} x {nx} binned {run.b} x "
               f"{run.b} are {want[0]} x {want[1]}")  # fmt: skip
    elif run.first + (n_out - 1) * run.s > n_in:
        why = (f"its {n_out} frames at -s {run.s} need {n_out * run.s} images from image "
               f"{run.first}, the original has {n_in}")  # fmt: skip
    elif omega is not None and abs(omega[0] - omega[1]) > omega[2] / 2 + 1e-9:
        why = f"its first omega {omega[0]:g} is none of the original's images' start angles"
    if why:
        raise MismatchError(f"{compressed_master}: not an output of {original_master}: {why} "
                            "(pass run= if the masters' metadata mislead)")  # fmt: skip


def reference_counts(
    original_master, run: RunGeometry, chunk_frames: int | None = None, dtype=np.float64
) -> tuple[da.Array, float]:
    """The original summed and binned as the run did, losslessly, as counts (NaN invalid,
    +inf saturated), and the output saturation value they correspond to. ``dtype``: the
    counts' float type; None: float32 where every sum is exact in it, as the run's own."""
    s, b = run.s, run.b
    ds = open_dataset(
        original_master, run.first, run.last, datablock=(chunk_frames or 4 * s) // s * s or s
    )
    cutoff = ds.meta.overload
    if dtype is None:
        dtype = T.counts_dtype(T.count_limit(cutoff, ds.frames.dtype), s * b * b)
    frames = ds.padded_frames(b)  # read and summed as lbnl-compress does
    return T.summed_binned_counts(
        frames, s, b, ds.pixel_mask(), cutoff, dtype, ds.shape[1:]
    ), cutoff


def output_counts(compressed_master, chunks) -> da.Array:
    """A compressed dataset as counts: all-bits-set -> NaN, the recorded saturation -> +inf."""
    ds = open_dataset(compressed_master, datablock=chunks)  # a sample reads its frames only
    return T.to_counts(ds.frames, None, ds.meta.overload, np.float64)


# ---------------------------------------------------------------- reflections
def truth_reflections(original_master, run: RunGeometry) -> np.ndarray | None:
    """The synthetic ground-truth table in output coordinates (0-based output frame index,
    y, x in output pixels), or None if there is none."""
    path = str(original_master).replace("_master.h5", "_reflections.csv")
    if path == str(original_master) or not os.path.exists(path):
        return None
    t = read_reflections(path)
    out = np.zeros(len(t), REFL_DTYPE)
    # a 1-based frame centroid c sits at 0-based input index c - 1; output frame k spans
    # input indices (first - 1) + k*s ... + s - 1, whose centre is (first - 1) + k*s + (s - 1)/2
    out["frame"] = (t["frame"] - 1 - (run.first - 1) - (run.s - 1) / 2) / run.s
    out["x"] = (t["x"] + 0.5) / run.b - 0.5
    out["y"] = (t["y"] + 0.5) / run.b - 0.5
    out["d"] = t["d"]
    out["truth"] = t["counts"]
    return out


# ---------------------------------------------------------------- statistics
@dataclass
class Stats:
    """Agreement of compressed with original intensities over ``n`` reflections."""

    n: int
    cc: float
    mean_ratio: float
    r_factor: float
    i_sigma_ref: float
    i_sigma_out: float
    d_max: float = float("nan")
    d_min: float = float("nan")
    background_ratio: float = float("nan")  # background out/in (pixels away from reflections)


def stats(i_ref, i_out, s_ref, s_out, d=None) -> Stats:
    """CC, mean ratio out/ref (intensity-weighted: sum(out) / sum(ref), robust to weak
    reflections), R-factor and mean I/sigma for paired intensities."""
    n = len(i_ref)
    if n < 2:
        return Stats(n, float("nan"), float("nan"), float("nan"), float("nan"), float("nan"))
    dd = np.asarray(d) if d is not None else np.full(n, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        cc = float(np.corrcoef(i_ref, i_out)[0, 1])  # NaN if one side is constant
    return Stats(
        n=n,
        cc=cc,
        mean_ratio=float(np.sum(i_out) / np.sum(i_ref)),
        r_factor=float(np.sum(np.abs(i_out - i_ref)) / np.sum(np.abs(i_ref))),
        i_sigma_ref=_mean_ratio(i_ref, s_ref),
        i_sigma_out=_mean_ratio(i_out, s_out),
        d_max=float(np.nanmax(dd)) if np.isfinite(dd).any() else float("nan"),
        d_min=float(np.nanmin(dd)) if np.isfinite(dd).any() else float("nan"),
    )


def _mean_ratio(a, b) -> float:
    """Mean of a/b over the entries with b > 0 (a sigma of 0 says nothing)."""
    ok = np.asarray(b) > 0
    return float(np.mean(np.asarray(a)[ok] / np.asarray(b)[ok])) if ok.any() else float("nan")


@dataclass
class Fidelity:
    """Spot-level fidelity of a compressed dataset (see the module docstring)."""

    n_reflections: int
    n_integrated: int
    overall: Stats
    shells: list = field(default_factory=list)
    truth_ref: Stats | None = None
    truth_out: Stats | None = None
    source: str = "ground truth"
    #: Of the reflections with I/sigma >= 3 in the original, the fraction whose box the
    #: output made unclean (a pixel it turned invalid or saturated): lost to a reader.
    lost: float = float("nan")

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self):
        o = self.overall
        lines = [
            f"reflections    {self.n_reflections} ({self.source}), "
            f"{self.n_integrated} integrated cleanly, "
            f"{o.n} with I/sigma >= 3"
            + (
                f", {self.lost:.1%} of the original's lost (the output made a pixel of their "
                "box invalid or saturated)"
                if self.lost > 0
                else ""
            ),  # fmt: skip
            f"overall        CC {o.cc:.4f}, mean ratio {o.mean_ratio:.4f}, R {o.r_factor:.4f}, "
            f"I/sigma {o.i_sigma_ref:.1f} -> {o.i_sigma_out:.1f}, "
            f"background {o.background_ratio:.3f}",
        ]
        for sh in self.shells:
            lines.append(
                f"  {sh.d_max:6.2f}-{sh.d_min:5.2f} A  n {sh.n:5d}  "
                f"CC {sh.cc:.4f}  ratio {sh.mean_ratio:.4f}  "
                f"R {sh.r_factor:.4f}  I/sigma {sh.i_sigma_ref:.1f} -> {sh.i_sigma_out:.1f}  "
                f"bg {sh.background_ratio:.3f}"
            )
        if self.truth_ref is not None:
            lines.append(
                f"vs truth       original CC {self.truth_ref.cc:.4f} "
                f"(ratio {self.truth_ref.mean_ratio:.3f}), "
                f"compressed CC {self.truth_out.cc:.4f} (ratio {self.truth_out.mean_ratio:.3f})"
            )
        return "\n".join(lines)


def summarize(
    res: np.ndarray,
    refl: np.ndarray | None = None,
    shells: int | None = None,
    source: str = "ground truth",
    background: np.ndarray | None = None,
    edges: np.ndarray | None = None,
) -> Fidelity:
    """Statistics of integration results ``res`` (I_ref, sigma_ref, I_out, sigma_out per
    reflection): over those integrated cleanly with I/sigma >= 3 in the original; by
    resolution shell and against the truth when ``refl`` carries d and truth. ``shells``:
    how many; None, as many as hold 20 such reflections each, up to 5, as the explorer
    judges them (:func:`lbnl_dask.shells.shell_count`).
    ``background``: the background's fine histograms (reference, output) over the 1/d^2
    ``edges`` (:func:`lbnl_dask.shells.background_histograms`): each Stats then carries its
    background out/in."""
    if background is not None and edges is None:
        raise ValueError("summarize: background histograms need their 1/d^2 edges")
    ok = np.isfinite(res).all(axis=1)
    strong_ref = np.isfinite(res[:, :2]).all(axis=1) & (res[:, 0] > 0)
    strong_ref[strong_ref] &= res[strong_ref, 0] / res[strong_ref, 1] >= 3
    strong = strong_ref & ok
    n_ref = int(strong_ref.sum())
    i_r, s_r, i_o, s_o = (res[strong, c] for c in range(4))
    d = refl["d"][strong] if refl is not None else np.full(int(strong.sum()), np.nan)
    if shells is None:
        shells = shells_mod.shell_count(strong.sum())
    ranges = shells_mod.shell_ranges(d, shells)
    bounds = shells_mod.shell_bounds(ranges)
    shell_stats = []
    for (part, _, _), (upper, lower) in zip(ranges, bounds, strict=True):
        st = stats(i_r[part], i_o[part], s_r[part], s_o[part], d[part])
        if background is not None:
            st.background_ratio = shells_mod.shell_background(background, edges, upper, lower)
        shell_stats.append(st)
    truth_ref = truth_out = None
    if refl is not None and np.isfinite(refl["truth"]).any():
        t = refl["truth"][strong]
        truth_ref = stats(t, i_r, np.sqrt(t), s_r)
        truth_out = stats(t, i_o, np.sqrt(t), s_o)
    overall = stats(i_r, i_o, s_r, s_o, d)
    if background is not None and background[0].sum() > 0:
        overall.background_ratio = float(background[1].sum() / background[0].sum())
    return Fidelity(
        n_reflections=len(res),
        n_integrated=int(ok.sum()),
        overall=overall,
        shells=shell_stats,
        truth_ref=truth_ref,
        truth_out=truth_out,
        source=source,
        lost=(n_ref - int(strong.sum())) / n_ref if n_ref else float("nan"),
    )


def compare(
    ref: da.Array,
    out: da.Array,
    refl: np.ndarray,
    box: Shoebox,
    shells: int | None = None,
    source: str = "ground truth",
    geometry: Geometry | None = None,
) -> Fidelity:
    """Integrate ``refl`` in both count arrays and summarise them (:func:`summarize`); with
    the output's ``geometry``, the background too, overall and per shell."""
    if geometry is None:
        return summarize(integrate(ref, out, refl, box), refl, shells, source)
    res, hist = integrate(ref, out, refl, box, geometry)
    return summarize(res, refl, shells, source, hist, geometry.fine_edges(ref.shape[1:]))


def fidelity(
    original_master,
    compressed_master,
    run: RunGeometry | None = None,
    box: Shoebox | None = None,
    shells: int | None = None,
) -> Fidelity:
    """Spot-level fidelity of ``compressed_master`` against ``original_master`` (see module doc)."""
    run = run or infer_run(original_master, compressed_master)
    box = box or Shoebox.for_run(run)
    ref, _ = reference_counts(original_master, run)
    out = output_counts(compressed_master, ref.chunks[0][0])
    refl = truth_reflections(original_master, run)
    source = "ground truth"
    geometry = Geometry.of_meta(read_meta(compressed_master))
    if refl is None:
        refl = find_spots(ref)
        refl["d"] = np.nan if geometry is None else geometry.d(refl["x"], refl["y"])
        source = "spot finder"
    else:
        refl = refl[(refl["frame"] > -0.5) & (refl["frame"] < ref.shape[0] - 0.5)]
    out = out.rechunk((ref.chunks[0], -1, -1), method="tasks")
    return compare(ref, out, refl, box, shells, source, geometry)


# ---------------------------------------------------------------- a run's own estimate
@dataclass
class FidelityReference:
    """The lossless side of :func:`sample_fidelity`, which needs only the input: the sampled
    output frames' indices ``idx`` (k,), the original summed and binned ``counts``, k frames
    (ny, nx) (float32 where every sum is exact in it, else float64; NaN invalid, +inf
    saturated), and the spots' neighbourhoods ``kept``, k bool frames (ny, nx)."""

    idx: np.ndarray
    counts: list
    kept: list


def fidelity_reference(original_master, run: RunGeometry, frames: int = 4, sigma: float = 5.0,
                       scheduler=threaded_get) -> FidelityReference:  # fmt: skip
    """:class:`FidelityReference` for ``frames`` output frames spread over the run: only
    their input frames are read. ``lbnl-compress`` computes it while the run writes."""
    ref = reference_counts(original_master, run, chunk_frames=run.s, dtype=None)[0]
    n = ref.shape[0]
    idx = np.unique(np.linspace(0, n - 1, min(frames, n)).round().astype(int))
    r = ref[idx].rechunk({0: 1})  # a frame a chunk (already so: chunks of s input frames)
    # each frame's block as it is (no concatenated copy of the sample): lists of (ny, nx)
    blocks = dask.compute(list(r.to_delayed().ravel()),
                          list(spot_regions(r, sigma, 2, 0).to_delayed().ravel()),
                          scheduler=scheduler)  # fmt: skip
    counts, kept = ([block[0] for block in part] for part in blocks)
    return FidelityReference(idx, counts, kept)


def compare_fidelity(reference: FidelityReference, compressed_master) -> dict:
    """:func:`sample_fidelity` from its lossless side and the output: only the sampled
    output frames are read. Frame by frame (in threads: numpy lets go of the GIL), summed in
    float64 through ``where`` masks: no copies of the sample (fresh memory is slow to fault
    in); the frames' sums are added in frame order, as one loop would."""
    sample = output_counts(compressed_master, 1)[reference.idx].to_delayed().ravel()
    o = [block[0] for block in dask.compute(*sample, scheduler=threaded_get)]  # no joined copy
    names = ("background_in", "background_out", "spots_in", "spots_out")
    if len(o) != len(reference.counts):
        raise ValueError(f"{compressed_master}: {len(o)} sampled output frames for "
                         f"{len(reference.counts)} reference frames")  # fmt: skip
    with ThreadPoolExecutor(max(1, min(len(o), available_cores()))) as pool:
        parts = list(pool.map(_frame_fidelity, reference.counts, o, reference.kept))
    total = dict.fromkeys(names, 0.0)
    spot_pixels, pairs_n = 0, 0
    moments = np.zeros((2, 2))  # (in, out) x (sum, sum of squares) of neighbours' differences
    for sums, spots, pairs, frame_moments in parts:
        for name, value in zip(names, sums, strict=True):
            total[name] += value
        spot_pixels += spots
        pairs_n += pairs
        moments += frame_moments

    return dict(frames=len(reference.idx), **total, spot_pixels=spot_pixels,
                noise_in=noise_variance(pairs_n, moments, 0),
                noise_out=noise_variance(pairs_n, moments, 1))  # fmt: skip


def _frame_fidelity(r, out, kept):
    """One sampled frame's share of :func:`compare_fidelity`: the four sums, the spot
    pixels, the background neighbour pairs and their differences' moments (2, 2). In one
    compiled pass (:func:`lbnl_dask.kernels.frame_fidelity`) where the frames are
    C-contiguous 2-D floats and ``kept`` bool of their shape (13 -> 4 ms per 4M output
    frame), else :func:`_frame_fidelity_numpy`: the same figures."""
    if (
        r.ndim == 2
        and r.dtype in (np.float32, np.float64)
        and out.dtype in (np.float32, np.float64)
        and kept.dtype == bool
        and r.shape == out.shape == kept.shape
        and r.flags.c_contiguous
        and out.flags.c_contiguous
        and kept.flags.c_contiguous
    ):
        from . import kernels

        sums, moments = np.empty(4), np.empty((2, 2))
        spots, pairs = kernels.frame_fidelity(r, out, kept, sums, moments)
        return [float(v) for v in sums], int(spots), int(pairs), moments
    return _frame_fidelity_numpy(r, out, kept)


def _frame_fidelity_numpy(r, out, kept):
    """:func:`_frame_fidelity` in numpy (the reference the compiled kernel is held to)."""
    both = np.isfinite(r) & np.isfinite(out)
    bg, sp = both & ~kept, both & kept
    sums = [float(frame.sum(where=where, dtype=np.float64))
            for frame, where in ((r, bg), (out, bg), (r, sp), (out, sp))]  # fmt: skip
    pairs, moments = neighbour_moments(r, out, bg)
    return sums, int(np.count_nonzero(sp)), pairs, moments


def sample_fidelity(original_master, compressed_master, run: RunGeometry, frames: int = 4,
                    sigma: float = 5.0) -> dict:  # fmt: skip
    """What a lossy run did to the data, on ``frames`` output frames spread over it: the
    summed counts of the background (pixels away from any spot found in the lossless
    reference) and of the spots' neighbourhoods (:func:`lbnl_dask.spots.spot_regions`),
    in the original summed and binned losslessly and in the output; and the background's
    noise: the variance of differences between neighbouring background pixels (a lossy
    step that flattens the background lowers it). Only the sampled frames are read."""
    return compare_fidelity(fidelity_reference(original_master, run, frames, sigma),
                            compressed_master)  # fmt: skip


def describe_sample_fidelity(f: dict) -> str:
    """One line for a run's report from :func:`sample_fidelity`."""
    text = f"{f['frames']} sampled output frame(s): "
    if f["background_in"]:
        text += f"background out/in {f['background_out'] / f['background_in']:.3f}"
    else:  # every pixel masked, or no count at all: a ratio would be a NaN
        text += f"no background counts in them (out: {f['background_out']:g})"
    if np.isfinite(f["noise_in"]) and f["noise_in"] > 0:  # (NaN: no neighbouring pairs)
        text += f", its noise out/in {f['noise_out'] / f['noise_in']:.2f}"
    if f["spot_pixels"]:
        text += (f", spot neighbourhoods out/in {f['spots_out'] / f['spots_in']:.3f} "
                 f"({f['spot_pixels']} px)")  # fmt: skip
    else:
        text += ", no spots found in them"
    return text + " (--no-fidelity skips this)"
