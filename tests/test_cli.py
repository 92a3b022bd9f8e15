"""End to end through lbnl-compress.

Each lossy mode, each lossless filter, ranges, schedulers, errors.
"""

import os
import subprocess
import sys

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest

import lbnl_dask
from lbnl_dask import cli
from lbnl_dask.layout import DATA, PIXEL_MASK, SPEC
from tests.reference import expected_output, sum_bin_reference


@pytest.fixture(scope="module")
def source(tiny):
    frames = lbnl_dask.open_dataset(tiny).frames.compute()
    with h5py.File(tiny, "r") as f:
        mask = f[PIXEL_MASK][()]
    return tiny, frames, mask


def compress(args, capsys=None):
    rc = cli.main(args)
    out = capsys.readouterr() if capsys else None
    return rc, out


def read(master):
    return lbnl_dask.open_dataset(master).frames.compute()


def test_lossless_b2_s2_equals_reference(source, tmp_path, capsys):
    tiny, frames, mask = source
    rc, out = compress(
        ["-i", tiny, "-o", str(tmp_path / "o"), "-b", "2", "-s", "2", "--scheduler", "threads"],
        capsys,
    )
    assert rc == 0, out.err
    assert "ratio" in out.out and "vs 2-byte raw" in out.out
    got = read(tmp_path / "o_master.h5")
    np.testing.assert_array_equal(
        got, expected_output(frames, mask, 12440, 2, 2, np.uint32, 12440 * 8)
    )


@pytest.mark.parametrize(
    "lossy,tol",
    [
        (["-H", "12"], 12),
        (["-J", "120"], None),
        (["-K", "120"], None),
        (["-J", "120", "--j2k-reversible"], None),
    ],
)
def test_lossy_modes(source, tmp_path, capsys, lossy, tol):
    tiny, frames, mask = source
    rc, out = compress(
        ["-i", tiny, "-o", str(tmp_path / "o"), "-b", "2", "-s", "2", "--scheduler", "threads"]
        + lossy,
        capsys,
    )
    assert rc == 0, out.err
    got = read(tmp_path / "o_master.h5").astype(np.int64)
    vals, inv, sat = sum_bin_reference(frames, mask, 12440, 2, 2)
    allbits = np.iinfo(np.uint32).max
    assert (got[inv] == allbits).all()  # invalid pixels restored exactly
    assert (got[~inv] != allbits).all()
    with h5py.File(tmp_path / "o_master.h5", "r") as f:
        satval = f[SPEC + "/countrate_correction_count_cutoff"][()]
    assert (got[sat] == satval).all()
    ok = ~inv & ~sat
    err = np.abs(got[ok] - np.clip(vals[ok], 0, satval))
    if tol is not None:
        assert err.max() <= tol  # HCompress' scale is an absolute error bound in counts
    label = (
        "hcomp avg compressed image size: " if "-H" in lossy else "j2k avg compressed imgage size: "
    )
    sizes = [int(line.split(": ")[1]) for line in out.out.splitlines() if line.startswith(label)]
    assert len(sizes) == 1 and 0 < sizes[0] < 51 * 66 * 4  # one data file; a frame's codec bytes
    assert err.mean() < 25
    assert err.max() > 0  # it was lossy


def test_j2k_and_k_ladders_differ_and_both_compress(source, tmp_path, capsys):
    tiny = source[0]
    sizes = {}
    for flag in (None, "-J", "-K"):
        o = tmp_path / (flag or "none").strip("-")
        args = ["-i", tiny, "-o", str(o), "-b", "2", "-s", "2", "--scheduler", "threads"] + (
            [flag, "60"] if flag else []
        )
        assert compress(args, capsys)[0] == 0
        sizes[flag] = sum(os.path.getsize(f"{o}_{k:06d}.h5") for k in (1,))
    assert sizes["-J"] < sizes[None] and sizes["-K"] < sizes[None]
    assert not np.array_equal(read(tmp_path / "J_master.h5"), read(tmp_path / "K_master.h5"))


@pytest.mark.parametrize(
    "name,filter_id,extra",
    [
        ("bslz4", 32008, []),
        ("bszstd", 32008, ["-l", "5"]),
        ("bshuf", 32008, []),
        ("zstd", 32001, ["-l", "4"]),
        ("none", None, []),
    ],
)
def test_each_lossless_compression(source, tmp_path, capsys, name, filter_id, extra):
    tiny, frames, mask = source
    rc, out = compress(
        ["-i", tiny, "-o", str(tmp_path / "o"), "-s", "2", "-c", name, "--scheduler", "threads"]
        + extra,
        capsys,
    )
    assert rc == 0, out.err
    if name in ("bszstd", "bshuf", "zstd"):
        assert "NOT" in out.out and f"-c {name}" in out.out  # in the report
        first = out.err.splitlines()[0]  # and before the run starts
        assert first.startswith(f"lbnl-compress: warning: -c {name}:") and "NOT" in first
    with h5py.File(tmp_path / "o_000001.h5", "r") as f:
        plist = f[DATA].id.get_create_plist()
        ids = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    assert ids == ([filter_id] if filter_id else [])
    with h5py.File(tmp_path / "o_master.h5", "r") as f:
        assert f[SPEC + "/compression"][()] == name.encode()
    np.testing.assert_array_equal(
        read(tmp_path / "o_master.h5"), expected_output(frames, mask, 12440, 2, 1, np.uint16, 24880)
    )


def test_image_range_first_last(source, tmp_path, capsys):
    tiny, frames, mask = source
    rc, out = compress(
        [
            "-i",
            tiny,
            "-o",
            str(tmp_path / "o"),
            "-1",
            "3",
            "-N",
            "12",
            "-s",
            "3",
            "-d",
            "2",
            "--scheduler",
            "threads",
        ],
        capsys,
    )
    assert rc == 0, out.err
    got = read(tmp_path / "o_master.h5")
    assert got.shape[0] == 4  # 10 frames summed 3 at a time: 3, 3, 3, 1
    np.testing.assert_array_equal(
        got, expected_output(frames[2:12], mask, 12440, 3, 1, np.uint32, 12440 * 3)
    )


def test_threads_and_local_cluster_give_the_same_output(source, tmp_path):
    tiny = source[0]
    a = lbnl_dask.compress(
        tiny,
        str(tmp_path / "thr"),
        bin_range=2,
        sum_range=2,
        hcomp_scale=8,
        data_block_size=3,
        scheduler="threads",
        workers=2,
    )
    b = lbnl_dask.compress(
        tiny,
        str(tmp_path / "proc"),
        bin_range=2,
        sum_range=2,
        hcomp_scale=8,
        data_block_size=3,
        scheduler="processes",
        workers=2,
    )
    assert a.frames_out == b.frames_out == 10 and len(b.data_files) == 4
    np.testing.assert_array_equal(read(a.master), read(b.master))


def test_negative_values_with_a_space(source, tmp_path, capsys):
    tiny = source[0]
    assert cli.join_negative_values(["-u", "-2", "-S", "-1.5", "-b", "2"]) == [
        "-u=-2",
        "-S=-1.5",
        "-b",
        "2",
    ]
    rc, out = compress(
        ["-i", tiny, "-o", str(tmp_path / "o"), "-u", "-2", "--scheduler", "threads"], capsys
    )
    assert rc == 0, out.err
    with h5py.File(tmp_path / "o_000001.h5", "r") as f:
        assert f[DATA].dtype == np.int16


def test_missing_input_and_refusal_to_overwrite(source, tmp_path, capsys):
    tiny = source[0]
    rc, out = compress(["-i", str(tmp_path / "none_master.h5")], capsys)
    assert rc == 2 and "none_master.h5: no such file" in out.err
    args = ["-i", tiny, "-o", str(tmp_path / "o"), "--scheduler", "threads"]
    assert compress(args, capsys)[0] == 0
    before = os.stat(tmp_path / "o_master.h5").st_mtime_ns
    rc, out = compress(args, capsys)  # the same job again: already complete, nothing rewritten
    assert rc == 0 and "already complete" in out.out
    rc, out = compress(args + ["-s", "2"], capsys)  # another job into the same files
    assert rc == 2 and "exists (from another lbnl-compress job: other options or input) (use " \
        "--overwrite to replace it)" in out.err  # fmt: skip
    mine = tmp_path / "mine_000001.h5"  # a file of no job: said plainly
    with h5py.File(mine, "w") as f:
        f["x"] = 1
    rc, out = compress(["-i", tiny, "-o", str(tmp_path / "mine"), "--scheduler", "threads"], capsys)
    assert rc == 2 and out.err.strip().endswith(f"{mine}: exists (use --overwrite to replace it)")
    assert os.stat(tmp_path / "o_master.h5").st_mtime_ns == before
    assert compress(args + ["-s", "2", "--overwrite"], capsys)[0] == 0
    assert os.stat(tmp_path / "o_master.h5").st_mtime_ns != before


def test_a_run_of_the_first_images_without_the_later_data_files(tiny32, tmp_path, capsys):
    """-N within the first data file runs where the later data files are missing; asking for
    an image of a missing file stops with its name."""
    import shutil

    from lbnl_dask.layout import data_file_name

    d = tmp_path / "in"
    shutil.copytree(os.path.dirname(tiny32), d)
    (d / data_file_name("t32", 3)).unlink()
    args = ["-i", str(d / "t32_master.h5"), "-b", "2", "--scheduler", "threads"]
    rc, out = compress(args + ["-o", str(tmp_path / "o"), "-N", "10"], capsys)
    assert rc == 0, out.err
    with h5py.File(tmp_path / "o_000001.h5", "r") as f:
        assert f[DATA].shape[0] == 10
    rc, out = compress(args + ["-o", str(tmp_path / "p"), "-N", "11"], capsys)
    assert rc != 0 and data_file_name("t32", 3) in out.err and "missing" in out.err
    assert not os.path.exists(tmp_path / "p_master.h5")


def test_a_master_whose_mask_and_frame_size_are_not_the_frames(tiny32, tmp_path, capsys):
    """A pixel_mask of another shape and an x_pixels_in_detector not the frames' width: both
    noted; the output master carries its frames' own size and a blank mask of their shape
    (not the source's), which lbnl-validate passes; the explorer and lbnl-to-cbf read the
    dataset without the mask alike (the explorer's HCompress failed on it)."""
    import shutil

    from lbnl_dask import cbf_output
    from lbnl_dask import explore as E
    from lbnl_dask.validate import validate

    d = tmp_path / "in"
    shutil.copytree(os.path.dirname(tiny32), d)
    master = d / "t32_master.h5"
    with h5py.File(master, "a") as f:
        del f[PIXEL_MASK]
        f[PIXEL_MASK] = np.ones((10, 10), np.uint32)
        del f[SPEC + "/x_pixels_in_detector"]
        f[SPEC + "/x_pixels_in_detector"] = np.uint32(1000)
        f[SPEC + "/number_of_excluded_pixels"] = np.uint32(100)  # the wrong mask's
    rc, out = compress(["-i", str(master), "-o", str(tmp_path / "o"), "-b", "2", "-H", "4",
                        "--scheduler", "threads"], capsys)  # fmt: skip
    assert rc == 0, out.err
    assert "pixel_mask (10, 10) does not match the frames (102, 132): ignored" in out.out
    assert "x/y_pixels_in_detector 1000 x 102 differ from the frames' 132 x 102" in out.out
    with h5py.File(tmp_path / "o_master.h5", "r") as f:
        assert f[PIXEL_MASK].shape == (51, 66) and not f[PIXEL_MASK][()].any()
        assert f[SPEC + "/number_of_excluded_pixels"][()] == 0
        assert f[SPEC + "/x_pixels_in_detector"][()] == 66
        assert f[SPEC + "/y_pixels_in_detector"][()] == 51
    result = validate(str(tmp_path / "o_master.h5"))
    assert not result.failed, str(result)
    assert lbnl_dask.open_dataset(master).pixel_mask() is None
    rows = E.explore(str(master), [E.Setting(1, 1, "H", 4, 0)], n_windows=1, window_frames=4,
                     scheduler="sync")  # fmt: skip
    assert rows[0]["ratio_raw2"] > 1
    cj = cbf_output.to_cbf(str(master), str(tmp_path / "cbf" / "c"), last_image=2,
                           scheduler="threads")  # fmt: skip
    assert len(cj.paths) == 2 and all(os.path.exists(p) for p in cj.paths)


def test_validate_names_a_frame_size_that_is_not_the_frames(tiny32, tmp_path):
    import shutil

    from lbnl_dask.validate import validate

    d = tmp_path / "in"
    shutil.copytree(os.path.dirname(tiny32), d)
    master = d / "t32_master.h5"
    assert not validate(str(master)).failed
    with h5py.File(master, "a") as f:
        f[SPEC + "/y_pixels_in_detector"][()] = 7
    result = validate(str(master))
    assert result.failed and "y_pixels_in_detector 7 is not the frames' 102" in str(result)


def test_output_may_not_overwrite_input(source, tmp_path, capsys):
    tiny = source[0]
    prefix = tiny[: -len("_master.h5")]
    rc, out = compress(
        [
            "-i",
            tiny,
            "-o",
            prefix,
            "-m",
            prefix + "_master",
            "--overwrite",
            "--scheduler",
            "threads",
        ],
        capsys,
    )
    assert rc == 2 and "would overwrite the input" in out.err


def test_console_scripts():
    r = subprocess.run([sys.executable, "-m", "lbnl_dask", "-V"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("lbnl_dask-")
    r = subprocess.run(
        [sys.executable, "-m", "lbnl_dask", "--help"], capture_output=True, text=True
    )
    for opt in (
        "--first_image",
        "--last_image",
        "--bin",
        "--sum",
        "--data_block_size",
        "--compression",
        "--compression_level",
        "--Hcompress",
        "--J2K",
        "--J2K2",
        "--infile",
        "--out_file",
        "--out_master",
        "--out_squash",
        "--scale",
        "--uint",
        "--float",
        "--logarithm",
        "--exponential",
        "--RO",
        "--CO",
        "--parallel",
        "--thread",
        "--verbose",
        "--version",
        "--overwrite",
        "--scheduler",
    ):
        assert opt in r.stdout


def test_squash_through_the_command(source, tmp_path, capsys):
    tiny = source[0]
    rc, out = compress(
        [
            "-i",
            tiny,
            "-o",
            str(tmp_path / "o"),
            "-b",
            "2",
            "-s",
            "2",
            "-J",
            "40",
            "-q",
            "out_file",
            "-d",
            "5",
            "--scheduler",
            "threads",
            "--no-restore-totals",  # the data as decoded from the streams
        ],
        capsys,
    )
    assert rc == 0, out.err
    got = lbnl_dask.read_squash(tmp_path / "o_squash_000001.h5")
    data = read(tmp_path / "o_master.h5")[:5]
    ok = (data != np.iinfo(data.dtype).max) & (data < 65534)
    np.testing.assert_array_equal(
        np.clip(got, 0, None)[ok], data[ok]
    )  # the data files were decoded from these codestreams


def test_scale_updates_saturation_in_master(source, tmp_path, capsys):
    tiny, frames, mask = source
    rc, out = compress(
        ["-i", tiny, "-o", str(tmp_path / "o"), "-S", "2", "--scheduler", "threads"], capsys
    )
    assert rc == 0, out.err
    with h5py.File(tmp_path / "o_master.h5", "r") as f:
        assert f[SPEC + "/countrate_correction_count_cutoff"][()] == 24880
    np.testing.assert_array_equal(
        read(tmp_path / "o_master.h5"),
        expected_output(frames, mask, 12440, 1, 1, np.uint16, 24880, scale=2.0),
    )


def test_log_to_float_and_region_omission(source, tmp_path, capsys):
    tiny, frames, mask = source
    rc, out = compress(
        [
            "-i",
            tiny,
            "-o",
            str(tmp_path / "o"),
            "-L",
            "2",
            "-f",
            "4",
            "-R",
            "0,9",
            "-C",
            "rows_0::10",
            "--scheduler",
            "threads",
        ],
        capsys,
    )
    assert rc == 0, out.err
    with h5py.File(tmp_path / "o_000001.h5", "r") as f:
        got = f[DATA][()]
    vals, inv, sat = sum_bin_reference(frames, mask, 12440, 1, 1)
    assert got.dtype == np.float32
    assert (got[:, :, :10][~inv[:, :, :10]] == 0).all() and (got[:, ::10][~inv[:, ::10]] == 0).all()
    keep = ~inv & ~sat
    keep[:, :, :10] = False
    keep[:, ::10] = False
    np.testing.assert_allclose(got[keep], np.log2(vals[keep] + 1.0), rtol=1e-5)
    assert np.isnan(got[inv]).all()
    assert got[sat & ~inv] == pytest.approx(np.log2(12441.0))  # saturation follows the transform


def test_cap_sums_like_the_published_tool(source, tmp_path, capsys):
    tiny, frames, mask = source
    rc, out = compress(
        ["-i", tiny, "-o", str(tmp_path / "o"), "-s", "4", "--cap-sums", "--scheduler", "threads"],
        capsys,
    )
    assert rc == 0, out.err
    got = read(tmp_path / "o_master.h5")
    with h5py.File(tmp_path / "o_master.h5", "r") as f:
        assert f[SPEC + "/countrate_correction_count_cutoff"][()] == 12440  # not x s
    assert got.dtype == np.uint16
    vals, inv, sat = sum_bin_reference(frames, mask, 12440, 4, 1)
    assert (got[~inv] <= 12440).all()
    over = ~inv & (vals >= 12440)
    assert (
        got[over | sat] == 12440
    ).all()  # sums of strong pixels at or above the cap are overloads


def test_each_chunk_is_read_and_summed_once(source, tmp_path, monkeypatch):
    """The lossy bytes feed the round trip, the size lines and -q: the frames upstream of them
    must not be computed once per consumer."""
    from lbnl_dask import transform as T

    tiny = source[0]
    calls = []
    real = (
        T._summed_binned_block
    )  # the raw frames go straight into the summing and binning reduction

    def spy(x, axis=None, **kw):
        if axis is not None:  # dask also calls it once on a (1, 1, 1) array for metadata
            calls.append(x.shape[0] * x.shape[1])  # (groups, s, ...)
        return real(x, axis, **kw)

    monkeypatch.setattr(T, "_summed_binned_block", spy)
    rep = lbnl_dask.compress(
        tiny,
        str(tmp_path / "o"),
        sum_range=2,
        bin_range=2,
        hcomp_scale=4,
        data_block_size=2,
        chunk_frames=4,
        out_squash=str(tmp_path / "sq"),
        scheduler="sync",
        fidelity=False,  # the estimate reads a few frames again, on purpose
    )
    assert sum(calls) == 20 and len(calls) == 5  # 20 frames in chunks of 4, each once
    assert len(rep.data_files) == 5


def test_keep_spots_stores_spot_neighbourhoods_exactly(source, tmp_path, capsys):
    import dask.array as da

    from lbnl_dask.spots import spot_regions

    tiny, frames, mask = source
    args = ["-i", tiny, "-b", "2", "-s", "2", "-H", "64", "--scheduler", "threads"]
    rc, out = compress(args + ["-o", str(tmp_path / "k"), "--keep-spots"], capsys)
    assert rc == 0, out.err
    got = read(tmp_path / "k_master.h5").astype(np.int64)
    assert compress(args + ["-o", str(tmp_path / "h")])[0] == 0
    plain = read(tmp_path / "h_master.h5").astype(np.int64)
    vals, inv, sat = sum_bin_reference(frames, mask, 12440, 2, 2)
    counts = np.where(inv, np.nan, np.where(sat, np.inf, vals))
    keep = spot_regions(
        da.from_array(counts, chunks=(1, -1, -1)), 5.0, 3, 2
    ).compute()  # the defaults
    ok = ~inv & ~sat
    assert 0 < (keep & ok).sum() < 0.5 * ok.sum()  # the synthetic spots, not the background
    np.testing.assert_array_equal(got[keep & ok], vals[keep & ok])  # kept exactly
    assert (plain[keep & ok] != vals[keep & ok]).any()  # which -H 64 alone does not do
    rest = ~keep & ok
    assert (got[rest] != vals[rest]).any() and np.abs(
        got[rest] - vals[rest]
    ).mean() < 64  # lossy elsewhere


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_batch_log_gets_a_line_per_data_file(source, tmp_path, scheduler):
    """No terminal (an HPC batch log): no progress bar, but a line as each data file is written."""
    tiny = source[0]
    cmd = [
        sys.executable,
        "-m",
        "lbnl_dask",
        "-i",
        tiny,
        "-o",
        str(tmp_path / "o"),
        "-d",
        "3",
        "-s",
        "2",
        "--scheduler",
        scheduler,
        "-p",
        "1",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = [ln.split(" (")[0] for ln in r.stdout.splitlines() if ln.startswith("progress:")]
    # the first and the last, and one every few seconds between them
    assert lines[0] == "progress: 1 of 4 data files written" and len(lines) <= 4
    assert lines[-1] == "progress: 4 of 4 data files written"
    quiet = subprocess.run(cmd + ["--no-progress", "--overwrite"], capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert quiet.returncode == 0 and "progress:" not in quiet.stdout + quiet.stderr


def test_integer_output_of_transformed_counts_keeps_its_saturation_whole(source, tmp_path,
                                                                        capsys):  # fmt: skip
    """-X into uint32 once wrapped the largest counts (2**32 in float32) to 0; -L into
    integers wrote a saturation (9.43) no pixel could hold. Both now say what the pixels hold,
    and --cbf refuses before the run what it cannot write. The log saturation (9.43) is
    rounded up (10): rounded down, every count whose log reached 9 read as an overload."""
    tiny = source[0]
    rc, out = compress(["-i", tiny, "-o", str(tmp_path / "x"), "-X", "2", "-u", "4",
                        "--scheduler", "threads"], capsys)  # fmt: skip
    assert rc == 0, out.err
    with h5py.File(tmp_path / "x_000001.h5", "r") as f:
        px = f[DATA][()]
    sat, valid = 2**31 - 2, px != 2**32 - 1  # (below what Neggia takes as -1)
    assert "saturation 2147483646" in out.out and px[valid].max() == sat
    raw = read(tiny)[: px.shape[0]]
    assert not ((px == 0) & (raw > 31) & valid).any()  # no count wrapped to 0
    rc, out = compress(["-i", tiny, "-o", str(tmp_path / "l"), "-L", "e", "-u", "2",
                        "--scheduler", "threads"], capsys)  # fmt: skip
    assert rc == 0 and "uint16, saturation 10\n" in out.out and "is 10 in uint16 pixels" in out.out
    rc, out = compress(["-i", tiny, "-o", str(tmp_path / "c"), "-S", "200000", "-u", "4",
                        "--cbf", "--scheduler", "threads"], capsys)  # fmt: skip
    assert rc == 2 and "--cbf writes counts: it cannot go with -S, -L or -X" in out.err, out.err
    rc, out = compress(["-i", tiny, "-o", str(tmp_path / "c"), "-X", "2", "-u", "4", "--cbf",
                        "--scheduler", "threads"], capsys)  # fmt: skip
    assert rc == 2 and "--cbf writes counts: it cannot go with -S, -L or -X" in out.err
    assert not list(tmp_path.glob("c_*"))
    # an earlier -L output as the input: refused before anything is written, too
    rc, out = compress(["-i", str(tmp_path / "l_master.h5"), "-o", str(tmp_path / "d"),
                        "--cbf", "--scheduler", "threads"], capsys)  # fmt: skip
    assert rc == 2 and "this output's pixels would be ln(1 + counts) / ln(2.71828)" in out.err
    assert not list(tmp_path.glob("d_*"))


def test_pixels_that_are_not_counts_say_so_in_the_master(source, tmp_path, capsys):
    """-S, -L and -X output looked like counts to every reader: the master now records what
    its pixels are (lbnl-validate warns), through a later run as well."""
    from lbnl_dask import validate
    from lbnl_dask.layout import ENTRY, TRANSFORM_ATTR

    def transform(prefix):
        with h5py.File(f"{prefix}_master.h5", "r") as f:
            v = f[ENTRY].attrs.get(TRANSFORM_ATTR)
        return None if v is None else v.decode()

    tiny, log, back, plain = source[0], *(str(tmp_path / n) for n in ("log", "back", "plain"))
    runs = [
        [tiny, log, "-L", "2", "-S", "0.5", "-u", "2"],
        [log + "_master.h5", back, "-X", "2", "-u", "4"],
        [log + "_master.h5", plain],
        [tiny, str(tmp_path / "c")],
    ]
    said = []
    for args in runs:
        rc, out = compress(["-i", args[0], "-o", args[1], *args[2:], "--scheduler", "threads"],
                           capsys)  # fmt: skip
        assert rc == 0, out.err
        said.append(out.out)
    assert transform(log) == "ln(1 + counts x 0.5) / ln(2)"
    assert transform(back) == "2**((ln(1 + counts x 0.5) / ln(2))) - 1"
    assert transform(plain) == "ln(1 + counts x 0.5) / ln(2)"  # carried: still not counts
    assert transform(str(tmp_path / "c")) is None
    assert "master: its pixels are ln(1 + counts x 0.5) / ln(2), not counts" in said[2]
    validate.main([log + "_master.h5"])
    warned = capsys.readouterr().out
    assert "[WARN] the pixels are ln(1 + counts x 0.5) / ln(2), not counts" in warned


def test_exp_transform_runs_and_records_a_float_saturation(source, tmp_path, capsys):
    """-X (exp) used to fail on its float32-max saturation (OverflowError, a data file and no
    master left)."""
    tiny = source[0]
    for extra in (["-X", "2", "-f", "4"], ["-X"]):
        out = tmp_path / "x".join(extra).replace("-", "")
        args = ["-i", tiny, "-o", str(out), "-b", "2", "--scheduler", "threads", *extra]
        rc, cap = compress(args, capsys)
        assert rc == 0, cap.err
        with h5py.File(f"{out}_master.h5", "r") as f:
            sat = f[SPEC + "/countrate_correction_count_cutoff"][()]
            assert f[SPEC + "/countrate_correction_count_cutoff"].dtype.kind == "f" and sat > 1e30
        with h5py.File(f"{out}_000001.h5", "r") as f:
            d = f["/entry/data/data"][()]
            assert d.dtype == np.float32 and np.nanmax(d) <= sat


def test_a_refused_run_leaves_no_empty_output_folder(source, tmp_path, capsys):
    tiny = source[0]
    out = tmp_path / "new" / "deeper" / "o"
    rc, res = compress(["-i", tiny, "-o", str(out), "-s", "1000", "--scheduler", "threads"],
                       capsys)  # fmt: skip
    assert rc == 2 and "is larger than" in res.err
    assert not (tmp_path / "new").exists()  # both folders it made are gone again
    (tmp_path / "new").mkdir()  # a folder that was there stays, empty or not
    assert compress(["-i", tiny, "-o", str(out), "-s", "1000"], capsys)[0] == 2
    assert (tmp_path / "new").is_dir() and not (tmp_path / "new" / "deeper").exists()
    assert compress(["-i", tiny, "-o", str(out), "--scheduler", "threads"], capsys)[0] == 0
    assert (tmp_path / "new" / "deeper" / "o_master.h5").exists()
    # the squash files' folder too, made by the checks of each output path
    rc, res = compress(["-i", tiny, "-o", str(tmp_path / "n1" / "x"), "-q",
                        str(tmp_path / "n2" / "sq"), "-H", "12", "-s", "1000"], capsys)  # fmt: skip
    assert rc == 2 and not (tmp_path / "n1").exists() and not (tmp_path / "n2").exists()


@pytest.mark.parametrize("flag", ["--keep-grow", "--keep-frames"])
def test_keep_options_without_keep_spots_are_said_not_ignored(source, tmp_path, capsys, flag):
    tiny = source[0]
    rc, out = compress(["-i", tiny, "-o", str(tmp_path / "o"), "-H", "12", flag, "4"], capsys)
    assert rc == 2 and f"{flag} shapes what --keep-spots keeps" in out.err
    assert not list(tmp_path.iterdir())
    rc, out = compress(["-i", tiny, "-o", str(tmp_path / "o"), "-H", "12", "--keep-spots", "5",
                        flag, "4", "--scheduler", "threads"], capsys)  # fmt: skip
    assert rc == 0, out.err


def test_validate_failure_is_one_line_naming_what_failed(tiny32, tmp_path, capsys):
    """A master without x_pixel_size: a note at the start, then --validate fails the output
    in one line naming the check (the validation report was several lines)."""
    import shutil

    from lbnl_dask.layout import DET

    d = tmp_path / "in"
    shutil.copytree(os.path.dirname(tiny32), d)
    with h5py.File(d / "t32_master.h5", "a") as f:
        del f[DET + "/x_pixel_size"]
    rc, out = compress(["-i", str(d / "t32_master.h5"), "-o", str(tmp_path / "o"), "--validate",
                        "--scheduler", "threads"], capsys)  # fmt: skip
    err = out.err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert err.endswith("the output failed validation: x_pixel_size is missing"), err
