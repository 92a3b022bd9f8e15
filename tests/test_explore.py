"""lbnl-explore on data without a reflection table (synthetic with its table removed, real
Eiger and PILATUS frames): the spot finder on numpy and dask input, progress lines in a batch
log, the help text, the plot's labels and the choice of the best setting."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dask
import numpy as np
import pytest

import lbnl_dask
from lbnl_dask import explore as E
from lbnl_dask import explore_results as R
from lbnl_dask import quality as Q
from lbnl_dask.synth import make_dataset
from tests.helpers import eiger_from_cbf, write_master

SMALL_GRID = [
    "--bins",
    "2",
    "--sums",
    "2",
    "--hcomp",
    "8",
    "--j2k",
    "--sz3",
    "--zfp",
    "--sz3-filter",
    "--keep",
    "0",
]


def console_script(name):
    """The installed entry point ``name`` (beside this Python), else the module run as a script."""
    exe = Path(sys.executable).parent / name
    if exe.exists():
        return [str(exe)]
    return [
        sys.executable,
        "-m",
        {"lbnl-explore": "lbnl_dask.explore", "lbnl-synth": "lbnl_dask.synth"}[name],
    ]


@pytest.fixture(scope="module")
def no_table(tmp_path_factory):
    """300 frames of the tiny detector whose ground-truth table is renamed away."""
    d = tmp_path_factory.mktemp("nt")
    master = make_dataset(d / "nt", "tiny", nframes=300, frames_per_file=100, seed=11)
    os.rename(d / "nt_reflections.csv", d / "nt_reflections.csv.hidden")
    return master


def test_spot_finder_takes_numpy_and_dask_alike(no_table):
    run = Q.RunGeometry(1, 40, 2, 2)
    assert Q.truth_reflections(no_table, run) is None
    ref, _ = Q.reference_counts(no_table, run, chunk_frames=8)
    found = Q.find_spots(ref)
    assert len(found) > 10
    where = lambda r: np.stack([r["frame"], r["y"], r["x"]], axis=1)  # noqa: E731
    np.testing.assert_array_equal(where(Q.find_spots(ref.compute())), where(found))
    # what explore does: dask.delayed hands find_spots the computed numpy array
    np.testing.assert_array_equal(where(dask.delayed(Q.find_spots)(ref).compute()), where(found))


def test_explore_without_a_table_prints_progress_to_a_batch_log(no_table, tmp_path):
    """The entry point, stdout a pipe (not a terminal): a line per setting as it finishes."""
    out = tmp_path / "ex"
    p = subprocess.run(
        console_script("lbnl-explore")
        + [
            no_table,
            *SMALL_GRID,
            "--hcomp",
            "8",
            "64",
            "--windows",
            "3",
            "--frames",
            "10",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    progress = [ln for ln in lines if ln.startswith("lbnl-explore: ")]
    assert progress[0].startswith("lbnl-explore: 3 settings on 3 window(s) of 10 frames")
    assert sorted(ln.split()[2] for ln in progress[1:]) == ["b2s2:", "b2s2h64:", "b2s2h8:"]
    assert [ln.split()[1] for ln in progress[1:]] == ["1/3", "2/3", "3/3"]
    table = next(i for i, ln in enumerate(lines) if ln.startswith("setting"))
    assert lines.index(progress[-1]) < table  # the lines come as settings finish, not after
    assert any(ln.startswith("best: ") for ln in lines)
    rows = {r["setting"]: r for r in json.loads(out.with_suffix(".json").read_text())}
    assert rows["b2s2"]["n"] >= 10 and rows["b2s2"]["cc"] == pytest.approx(1.0)
    assert rows["b2s2h64"]["frames"] == 30
    # shells of 20+ strong reflections each (found spots: d from the master's geometry)
    shells = rows["b2s2"]["shells"]
    assert len(shells) == min(5, rows["b2s2"]["n"] // 20)
    if shells:
        assert [sh["background_ratio"] for sh in shells] == pytest.approx([1.0] * len(shells))
        assert all(a["d_min"] >= b["d_max"] for a, b in zip(shells, shells[1:], strict=False))
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_explore_on_real_pilatus_frames_without_a_table(realdata, tmp_path, capsys):
    """Real Bragg spots (L-cysteine, PILATUS 2M) in an Eiger layout; no ground truth."""
    cbf = sorted((realdata / "dials-l-cysteine").glob("l-cyst_01_*.cbf.gz"))
    assert len(cbf) == 15
    master = eiger_from_cbf(tmp_path / "lcys", cbf)
    rc = E.main(
        [
            master,
            "--bins",
            "2",
            "--sums",
            "1",
            "--hcomp",
            "8",
            "--j2k",
            "--keep",
            "0",
            "--windows",
            "2",
            "--frames",
            "5",
            "-o",
            str(tmp_path / "ex"),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    rows = {r["setting"]: r for r in json.loads((tmp_path / "ex.json").read_text())}
    assert rows["b2s1"]["n"] >= 20 and rows["b2s1"]["cc"] == pytest.approx(1.0)
    assert rows["b2s1h8"]["cc"] > 0.99 and rows["b2s1h8"]["ratio_raw2"] > rows["b2s1"]["ratio_raw2"]
    assert "best: " in out


def test_explore_on_real_eiger2_files_with_no_spots(realdata, tmp_path, capsys):
    """Real EIGER2 data files (a test pattern: no Bragg spots) with a master written here:
    no reflection anywhere, every CC undefined, the table, plot and files still written."""
    name = "dectris-h5-testfiles/datasets_eiger2/eiger2_simread7_2datafiles_4images_bslz4_uint32"
    files = [realdata / f"{name}_data_00000{k}.h5" for k in (1, 2)]
    master = write_master(tmp_path / "e2_master.h5", files, nimages=4)
    rc = E.main(
        [
            master,
            *SMALL_GRID[:2],
            "--sums",
            "1",
            *SMALL_GRID[4:],
            "--windows",
            "1",
            "--frames",
            "4",
            "-o",
            str(tmp_path / "e2"),
        ]
    )
    assert rc == 0
    assert "best: none of the settings" in capsys.readouterr().out
    text = (tmp_path / "e2.json").read_text()
    rows = json.loads(text, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert [r["n"] for r in rows] == [0, 0] and (tmp_path / "e2.png").exists()
    assert [r["cc"] for r in rows] == [None, None] and all(r["pareto"] is False for r in rows)


def test_frames_stored_with_sz3s_filter_are_judged_as_readers_decode_them(no_table):
    """An 'SF' setting (-c sz3) counts SZ3's own bytes and integrates what a reader decodes:
    within the bound of the lossless setting's counts, not bitshuffle-LZ4's of the frames."""
    from lbnl_dask.explore import Setting

    plain, stored = Setting(2, 2), Setting(2, 2, "SF", 4)
    assert stored.name == "b2s2sf4" and not stored.xds_reads and plain.xds_reads
    assert stored.kwargs() == dict(bin_range=2, sum_range=2, sz3_bound=4.0, compression="sz3")
    assert [st.codec for st in E.grid((2,), (2,), (), (), (0, 5), (), (), (4,))] == ["none", "SF"]
    rows = {r["setting"]: r for r in E.explore(no_table, [plain, stored], n_windows=2,
                                                window_frames=10)}  # fmt: skip
    lossless, sz = rows["b2s2"], rows["b2s2sf4"]
    assert sz["xds"] is False and lossless["xds"] is True
    assert sz["frames"] == lossless["frames"] and sz["bytes"] < lossless["bytes"]
    # the tiny detector's background is ~0.2 counts: within +-4, pixels of most boxes decode
    # negative, which readers (and the integration) mask: those reflections are lost
    assert lossless["lost"] == 0 and sz["lost"] > 0.5 and sz["n"] < lossless["n"] / 2
    assert R.acceptable(lossless) and not R.acceptable(sz)
    # the background's noise beside it (issue 16 item 6): unchanged losslessly, not by SZ3
    assert lossless["noise_ratio"] == 1.0 and abs(sz["noise_ratio"] - 1) > 0.05


def test_a_sum_longer_than_the_dataset_is_refused_as_lbnl_compress_refuses_it(no_table):
    from lbnl_dask.errors import OptionError

    with pytest.raises(OptionError, match=r"a sum of 400 frames is more than the 300 frames "
                       r"there are \(try --sums 2\)$"):  # fmt: skip
        E.explore(no_table, [E.Setting(2, 400)], n_windows=1, window_frames=10)
    with pytest.raises(OptionError, match=r"\(try --sums 1 4\)$"):  # the sums that fit
        E.explore(no_table, [E.Setting(2, s) for s in (1, 4, 400)], n_windows=1,
                  window_frames=10)  # fmt: skip


def test_windows_hold_whole_output_frames_and_enough_of_the_largest_sum():
    """Each window is a multiple of every sum, and gives the largest sum at least 4 output
    frames (a box spans +-1 output frame or more): --sums 16 with 20 frames would be one."""
    assert E.window_length([1, 2], 20) == 20
    assert E.window_length([2], 10) == 10
    assert E.window_length([2, 3], 20) == 18  # whole output frames of both sums
    assert E.window_length([16], 20) == 64
    assert E.window_length([2, 16], 100) == 96
    assert E.window_length([3, 8], 20) == 48  # lcm 24: 32 frames rounded up to it
    assert E.window_length([16], 20, n_frames=40) == 32  # a shorter dataset: whole frames
    assert E.window_length([2, 3], 20, n_frames=5) == 5  # no multiple of 6 fits: all of it
    for sums, frames in [([1, 2], 20), ([2, 3, 8], 7), ([16], 20), ([5], 1)]:
        n = E.window_length(sums, frames)
        assert all(n % s == 0 and n // s >= 1 for s in sums)
        assert n // max(sums) >= E.MIN_WINDOW_OUTPUT_FRAMES


@pytest.mark.parametrize("flag", ["--sums", "--bins", "--windows", "--frames"])
def test_counts_of_the_grid_below_1_are_refused(flag, capsys):
    with pytest.raises(SystemExit) as e:
        E.parser().parse_args(["m_master.h5", flag, "0"])
    assert e.value.code == 2 and f"argument {flag}: must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["0", "2e6", "x"])
def test_a_bad_sz3_filter_bound_is_named_as_given(bad, capsys):
    with pytest.raises(SystemExit) as e:
        E.parser().parse_args(["m_master.h5", "--sz3-filter", "2", bad])
    assert e.value.code == 2 and "argument --sz3-filter" in capsys.readouterr().err


def test_explore_help_shows_defaults_and_plain_text(capsys):
    with pytest.raises(SystemExit) as e:
        E.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "``" not in out and "Compression ratio against spot fidelity" in out
    for text in (
        "(default: [1, 2])",
        "(default: 3)",
        "(default: 20)",
        "(default: explore)",
        "(default: threads)",
        "(default: [0, 5])",
    ):
        assert text in " ".join(out.split()), text


def test_the_explorer_never_replaces_files_unless_asked(tmp_path, capsys):
    out = tmp_path / "ex"
    (tmp_path / "ex.csv").write_text("my notes\n")
    rc = E.main([str(tmp_path / "absent_master.h5"), "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == (f"lbnl-explore: error: {out}.csv: exists (use --overwrite to "
                               "replace it, or another -o)")  # fmt: skip
    assert (tmp_path / "ex.csv").read_text() == "my notes\n"
    rc = E.main([str(tmp_path / "absent_master.h5"), "-o", str(out), "--overwrite"])
    assert rc == 2 and "absent_master.h5" in capsys.readouterr().err  # on to the input's check


def test_the_output_is_checked_before_the_run(no_table, tmp_path, capsys):
    """A folder that cannot be written, a prefix that names a folder, or the dataset's own
    ground-truth table had failed only after the whole grid (a traceback; the table was
    overwritten by --overwrite)."""
    import shutil

    src = tmp_path / "in"
    shutil.copytree(os.path.dirname(no_table), src)
    master = str(src / os.path.basename(no_table))
    truth = master.replace("_master.h5", "_reflections.csv")
    open(truth, "w").write("h,k,l\n")
    (tmp_path / "afile").write_text("x")
    cases = [
        (["-o", truth[: -len(".csv")], "--overwrite"], "the dataset's own ground-truth table"),
        (["-o", str(tmp_path / "afile" / "x")], "cannot create the output folder"),
        (["-o", str(tmp_path / "d") + os.sep], "give a prefix for the files"),
        (["-p", "0"], "argument -p/--parallel: must be at least 1"),
        (["--keep", "0", "inf"], "argument --keep: a threshold is 0 (off)"),
        (["--bins", "9999"], "bin 9999 is larger than the frames"),
        (["--hcomp", "99999999999"], "HCompress scale (-H) must be 0 (lossless) to 2147483647"),
    ]
    for args, msg in cases:
        try:
            rc = E.main([master, "--windows", "1", "--j2k", "--sz3", "--zfp", "--sz3-filter"]
                        + args)  # fmt: skip
        except SystemExit as e:  # (argparse's own errors)
            rc = e.code
        err = capsys.readouterr().err.strip()
        assert rc == 2 and msg in err and "Traceback" not in err, (args, err)
    assert open(truth).read() == "h,k,l\n"
    assert not list(tmp_path.glob("d*")) and glob_csv(tmp_path) == []


def test_a_folder_that_takes_no_file_is_refused_before_the_run(no_table, tmp_path, capsys):
    """/proc lets os.access and makedirs through but takes no file: refused at once (the
    grid had run to its end, then a traceback). A run that stops leaves no folder it made."""
    rc = E.main([no_table, "--windows", "1", "-o", "/proc/lbnl_explore_x"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("lbnl-explore: error: /proc/lbnl_explore_x: cannot write "
                                      "in the output folder /proc"), err  # fmt: skip
    made = tmp_path / "new" / "deeper"
    rc = E.main([no_table, "--windows", "1", "--bins", "99999", "-o", str(made / "ex")])
    assert rc == 2 and not (tmp_path / "new").exists()  # made by the check, all removed
    rc = E.main([str(tmp_path / "absent_master.h5"), "-o", str(made / "ex")])
    assert rc == 2 and not (tmp_path / "new").exists()  # (a refusal before the run too)


def test_tables_are_written_all_or_none(tmp_path, monkeypatch):
    """A failure while writing the PNG (a full disk) leaves neither CSV nor JSON, and is an
    OutputError naming the file (it had been a traceback, with CSV and JSON left)."""
    import errno

    from lbnl_dask import explore_results as R
    from lbnl_dask.errors import NoSpaceError

    good = dict(cc=1.0, mean_ratio=1.0, background_ratio=1.0, i_sigma_ref=8.0, i_sigma_out=8.0)
    rows = [dict(good, setting="b2s2", codec="none", keep=0, ratio_raw2=20.0)]
    R.pareto(rows)
    pytest.importorskip("matplotlib")

    def full(*args, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("matplotlib.figure.Figure.savefig", full)
    with pytest.raises(NoSpaceError, match=r"ex\.png: no space left on the device"):
        R.save(rows, str(tmp_path / "ex"))
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert R.save(rows, str(tmp_path / "ex")) == [str(tmp_path / f"ex.{e}") for e in
                                                 ("csv", "json", "png")]  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ex.csv", "ex.json", "ex.png"]


def glob_csv(folder):
    return sorted(str(p) for p in folder.rglob("*.csv") if "in" not in p.parts)


def test_explore_refuses_pixels_that_are_not_counts(no_table, tmp_path, capsys):
    rep = lbnl_dask.compress(no_table, str(tmp_path / "s"), scale_factor=0.5, uint=4,
                             scheduler="threads", fidelity=False)  # fmt: skip
    rc = E.main([rep.master, "-o", str(tmp_path / "ex"), "--windows", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "its pixels are counts x 0.5, not counts" in err


def test_the_explorers_bytes_are_what_lbnl_compress_stores(tiny, tmp_path):
    """A window's bytes are those of the chunks lbnl-compress writes for its frames (the
    same bitshuffle blocks): the explorer had counted bitshuffle's default blocks after the
    writer's changed, and named ratios a run did not give."""
    import h5py

    from lbnl_dask.layout import DATA

    n = lbnl_dask.read_meta(tiny).n_frames
    rows = E.explore(tiny, [E.Setting(2, 2, "H", 12)], n_windows=1, window_frames=n)
    rep = lbnl_dask.compress(tiny, str(tmp_path / "o"), bin_range=2, sum_range=2,
                             hcomp_scale=12, scheduler="threads", fidelity=False)  # fmt: skip
    stored = 0
    for path in rep.data_files:
        with h5py.File(path, "r") as f:
            d = f[DATA]
            stored += sum(len(d.id.read_direct_chunk((i, 0, 0))[1]) for i in range(len(d)))
    assert rows[0]["bytes"] == stored


def test_fewer_windows_than_asked_are_said(tiny):
    rows = E.explore(tiny, [E.Setting(2, 2)], n_windows=50, window_frames=10)
    n = rows[0]["dataset_frames"]
    assert rows[0]["windows"] == n // 10 < 50 and rows[0]["windows_asked"] == 50
    assert R.describe_windows(rows) == (f"note: {n // 10} window(s) of 10 frames, not the 50 "
                                        f"asked: more would overlap in {n} frames")  # fmt: skip


def test_explore_refuses_windows_it_cannot_take(tiny, tmp_path):
    from lbnl_dask.errors import OptionError
    from lbnl_dask.explore import explore

    for kw in (dict(n_windows=0), dict(window_frames=0), dict(n_windows=1.5)):
        with pytest.raises(OptionError, match="must be a whole number at least 1"):
            explore(tiny, **kw)
