"""Ratios and spot-level fidelity; the explorer (grid, Pareto front, files written)."""

import json
import os

import numpy as np
import pytest

import lbnl_dask
from lbnl_dask import explore as E
from lbnl_dask import quality as Q
from lbnl_dask.shells import shell_count
from lbnl_dask.synth import make_dataset


@pytest.fixture(scope="module")
def spots(tmp_path_factory):
    """40 frames of the tiny detector with ground truth."""
    return make_dataset(
        tmp_path_factory.mktemp("q") / "q", "tiny", nframes=40, frames_per_file=20, seed=4
    )


@pytest.fixture(scope="module")
def runs(spots, tmp_path_factory):
    d = tmp_path_factory.mktemp("qo")
    out = {}
    for name, opts in {
        "lossless": {},
        "h8": dict(hcomp_scale=8),
        "h64": dict(hcomp_scale=64),
        "j40": dict(j2k_ratio=40),
    }.items():
        out[name] = lbnl_dask.compress(
            spots, str(d / name), bin_range=2, sum_range=2, scheduler="threads", **opts
        )
    return out


def test_ratios_match_the_files(spots, runs):
    r = Q.compression_ratios(spots, runs["h8"].master)
    data = [p for p in runs["h8"].data_files]
    assert r["bytes_out"] == sum(os.path.getsize(p) for p in data)
    assert r["raw2_bytes"] == 40 * 102 * 132 * 2
    assert r["ratio_raw2"] == pytest.approx(r["raw2_bytes"] / r["bytes_out"])
    assert r["ratio_raw4"] == pytest.approx(2 * r["ratio_raw2"])
    assert r["ratio_raw2"] == pytest.approx(runs["h8"].ratio_raw2)  # the run's report says the same


def test_infer_run(spots, tmp_path):
    rep = lbnl_dask.compress(
        spots,
        str(tmp_path / "x"),
        first_image=5,
        last_image=34,
        bin_range=2,
        sum_range=3,
        scheduler="threads",
    )
    assert Q.infer_run(spots, rep.master) == Q.RunGeometry(first=5, last=34, s=3, b=2)


def test_fidelity_refuses_a_pair_that_does_not_belong_together(spots, runs, tiny32, tmp_path):
    """An output compared with another dataset gave numbers (CC -0.2) or dask's own errors;
    the masters' sizes, frame counts and omega say when it cannot be an output of it."""
    import shutil

    import h5py

    from lbnl_dask.errors import MismatchError
    from lbnl_dask.layout import DET

    out = runs["h8"].master
    with pytest.raises(MismatchError, match="not an output of .*: its frames are 102 x 132, "
                       "the original's 51 x 66 binned 1 x 1"):  # fmt: skip
        Q.fidelity(out, spots)  # swapped: 102 x 132 frames are no 2 x 2 binning of 51 x 66
    with pytest.raises(MismatchError, match="its 20 frames at -s 2 need 40 images from "
                       "image 1, the original has 14"):  # fmt: skip
        Q.infer_run(tiny32, out)  # the same detector, a shorter dataset
    d = tmp_path / "in"
    shutil.copytree(os.path.dirname(spots), d)
    shifted = d / os.path.basename(spots)
    with h5py.File(shifted, "a") as f:  # another sweep of the same crystal
        f["/entry/sample/goniometer/omega"][...] += 90.0
    with pytest.raises(MismatchError, match="first omega 0 is none of the original's"):
        Q.infer_run(shifted, out)
    with h5py.File(shifted, "a") as f:  # no count or frame times: s from nframes_sum
        f["/entry/sample/goniometer/omega"][...] -= 90.0
        del f[DET + "/count_time"], f[DET + "/frame_time"]
    assert Q.infer_run(shifted, out) == Q.RunGeometry(first=1, last=40, s=2, b=2)
    # a --cbf output (a miniCBF series records no nframes_sum): s from the exposure times
    rep = lbnl_dask.compress(spots, str(tmp_path / "c"), sum_range=2, bin_range=2, cbf=True,
                             last_image=8, scheduler="threads")  # fmt: skip
    assert Q.infer_run(spots, rep.cbf_files[0]) == Q.RunGeometry(first=1, last=8, s=2, b=2)


def test_lossless_is_perfect_and_close_to_truth(spots, runs):
    f = Q.fidelity(spots, runs["lossless"].master)
    assert f.source == "ground truth" and f.overall.n >= 10
    assert (
        f.overall.cc == pytest.approx(1.0)
        and f.overall.mean_ratio == pytest.approx(1.0)
        and f.overall.r_factor == 0
    )
    assert f.truth_ref.cc > 0.9  # the integration measures what was put in


def test_fidelity_degrades_with_the_scale(spots, runs):
    lo, hi = Q.fidelity(spots, runs["h8"].master), Q.fidelity(spots, runs["h64"].master)
    assert 0.9 < lo.overall.cc < 1.0
    assert hi.overall.r_factor > lo.overall.r_factor
    assert hi.overall.cc < lo.overall.cc
    assert "CC" in str(lo) and len(lo.shells) == shell_count(lo.overall.n)  # 43: 2


def test_spot_finder_finds_the_true_spots(spots, runs):
    run = Q.RunGeometry(1, 40, 2, 2)
    ref, _ = Q.reference_counts(spots, run)
    found = Q.find_spots(ref, sigma=5)
    truth = Q.truth_reflections(spots, run)
    strong = truth[truth["truth"] > 400]
    hits = 0
    for t in strong:
        d = np.hypot(found["x"] - t["x"], found["y"] - t["y"])
        hits += bool(((d < 2) & (np.abs(found["frame"] - t["frame"]) <= 1.5)).any())
    assert hits >= 0.7 * len(strong)
    assert len(found) < 3 * len(truth)  # not a noise detector


def test_fidelity_without_truth_uses_the_spot_finder(spots, runs, tmp_path):
    import shutil

    d = tmp_path / "nt"
    shutil.copytree(os.path.dirname(spots), d)
    (d / "q_reflections.csv").unlink()
    f = Q.fidelity(d / "q_master.h5", runs["h8"].master)
    assert f.source == "spot finder" and f.overall.n > 5 and f.truth_ref is None
    assert 0.9 < f.overall.cc <= 1.0


def test_explorer_command(spots, tmp_path, capsys):
    rc = E.main(
        [
            spots,
            "--bins",
            "2",
            "--sums",
            "2",
            "--hcomp",
            "8",
            "64",
            "--j2k",
            "40",
            "--sz3",
            "--zfp",
            "--sz3-filter",
            "--windows",
            "2",
            "--frames",
            "10",
            "-o",
            str(tmp_path / "ex"),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "b2s2h8" in out and "b2s2j40" in out and "*" in out
    rows = json.loads((tmp_path / "ex.json").read_text())
    assert {r["setting"] for r in rows} == {
        "b2s2",
        "b2s2h8",
        "b2s2h64",
        "b2s2j40",
        "b2s2h8k5",
        "b2s2h64k5",
        "b2s2j40k5",
    }
    by = {r["setting"]: r for r in rows}
    for lossy in ("b2s2h64", "b2s2j40"):  # spots kept exactly: their intensities come back
        assert abs(by[lossy + "k5"]["mean_ratio"] - 1) < min(0.02, abs(by[lossy]["mean_ratio"] - 1))
        assert by[lossy + "k5"]["cc"] > 0.99
    assert E.Setting.from_row(by["b2s2h64k5"]).kwargs() == dict(
        bin_range=2, sum_range=2, hcomp_scale=64, keep_spots=5
    )
    assert E.Setting.from_row(by["b2s2"]).kwargs() == dict(bin_range=2, sum_range=2)
    assert by["b2s2"]["cc"] == pytest.approx(1.0) and by["b2s2"]["pareto"]
    assert by["b2s2h64"]["ratio_raw2"] > by["b2s2h8"]["ratio_raw2"] > by["b2s2"]["ratio_raw2"] * 0.9
    assert by["b2s2h64"]["frames"] == 20  # two windows of 10 frames, not the whole dataset
    assert (tmp_path / "ex.csv").read_text().startswith("setting,")
    assert (tmp_path / "ex.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_windows_spread_over_the_data():
    assert E.windows(100, 3, 20) == [(1, 20), (41, 60), (81, 100)]
    assert E.windows(10, 3, 20) == [(1, 10)]


def test_sample_fidelity_of_a_lossless_run_is_exactly_one(tiny, tmp_path):
    r = lbnl_dask.compress(tiny, str(tmp_path / "o"), bin_range=2, sum_range=2, scheduler="threads")
    f = Q.sample_fidelity(tiny, r.master, Q.RunGeometry(1, 20, 2, 2), frames=3)
    assert f["frames"] == 3 and f["spot_pixels"] > 0 and f["background_in"] > 0
    assert f["background_out"] == f["background_in"] and f["spots_out"] == f["spots_in"]
    assert f["noise_out"] == f["noise_in"] > 0
    assert Q.describe_sample_fidelity(f).startswith(
        "3 sampled output frame(s): background out/in 1.000, its noise out/in 1.00, spot "
        "neighbourhoods out/in 1.000"
    )


def test_a_sample_without_background_counts_says_so_not_nan():
    """Every sampled pixel masked (or no count at all): the line says there were none,
    where it printed 'background out/in nan, its noise out/in nan'."""
    f = dict(frames=2, background_in=0.0, background_out=0.0, spots_in=0.0, spots_out=0.0,
             spot_pixels=0, noise_in=float("nan"), noise_out=float("nan"))  # fmt: skip
    line = Q.describe_sample_fidelity(f)
    assert line == ("2 sampled output frame(s): no background counts in them (out: 0), no "
                    "spots found in them (--no-fidelity skips this)")  # fmt: skip
    assert "nan" not in line


def test_sample_fidelity_reads_only_the_sampled_output_frames(tiny, tmp_path):
    import h5py

    r = lbnl_dask.compress(tiny, str(tmp_path / "o"), bin_range=2, sum_range=2, scheduler="threads")
    run = Q.RunGeometry(1, 20, 2, 2)
    before = Q.sample_fidelity(tiny, r.master, run, frames=3)  # output frames 0, 4 and 9 of 10
    with h5py.File(r.data_files[0], "r+") as f:  # frame 2, never sampled, made unreadable
        f["/entry/data/data"].id.write_direct_chunk((2, 0, 0), b"not bitshuffle-LZ4")
    assert Q.sample_fidelity(tiny, r.master, run, frames=3) == before


def test_summarize_counts_the_reflections_the_output_lost():
    """A reflection clean in the original but not in the output (a pixel it made invalid)
    is lost: counted apart from the statistics, which pair only clean boxes."""
    res = np.array([[100.0, 10, 101, 10], [200, 10, 199, 10], [300, 10, np.nan, np.nan],
                    [5, 10, 5, 10], [np.nan, np.nan, np.nan, np.nan]])  # fmt: skip
    fid = Q.summarize(res, shells=0)
    assert fid.overall.n == 2 and fid.lost == pytest.approx(1 / 3)  # row 4: weak; 5: unclean
    assert "33.3% of the original's lost" in str(fid)
    assert Q.summarize(res[:2], shells=0).lost == 0 and "lost" not in str(
        Q.summarize(res[:2], shells=0))  # fmt: skip


def test_fidelity_line_of_a_master_without_a_saturation_value(tiny32, tmp_path):
    """No saturation value nor count cutoff in the master (the run notes it): the fidelity
    line's reference is summed in float64, as the run's counts are, and the line is written."""
    import shutil

    import h5py

    from lbnl_dask.layout import CUTOFFS, SATURATIONS, SPEC

    d = tmp_path / "in"
    shutil.copytree(os.path.dirname(tiny32), d)
    master = str(d / os.path.basename(tiny32))
    with h5py.File(master, "a") as f:
        for name in SATURATIONS + CUTOFFS:
            if name in f:
                del f[name]
        for name in list(f[SPEC]):  # the modules' own cutoffs too
            if name.startswith("detectorModule_"):
                f[SPEC][name].pop("countrate_correction_count_cutoff", None)
    assert lbnl_dask.open_dataset(master).meta.overload is None
    run = Q.RunGeometry(1, 14, 2, 2)
    assert Q.reference_counts(master, run, dtype=None)[0].dtype == np.float64
    r = lbnl_dask.compress(master, str(tmp_path / "o"), bin_range=2, sum_range=2, hcomp_scale=12,
                           scheduler="threads")  # fmt: skip
    assert r.fidelity.startswith("4 sampled output frame(s): background out/in"), r.fidelity
