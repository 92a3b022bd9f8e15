"""Eiger/NXmx datasets written as miniCBF series (lbnl-to-cbf, lbnl-compress --cbf)."""

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import fabio
import h5py
import numpy as np
import pytest

from lbnl_dask import compress, layout, open_dataset, read_meta
from lbnl_dask.cbf_output import cbf_name, to_cbf
from lbnl_dask.errors import LbnlDaskError, OutputError


def header(path) -> dict:
    return dict(fabio.open(path).pilatus_headers._dict)


def test_an_eiger_dataset_as_minicbf(tiny, tmp_path):
    paths = to_cbf(tiny, str(tmp_path / "t"), scheduler="threads").paths
    assert [os.path.basename(p) for p in paths[:2]] == ["t_00001.cbf", "t_00002.cbf"]
    ds = open_dataset(tiny)
    raw, mask = ds.frames.compute(), np.asarray(ds.pixel_mask())
    for i in (0, 19):
        img = fabio.open(paths[i])
        assert img.data.dtype == np.int32
        ok = (mask == 0) & (raw[i] != 0xFFFF)
        assert np.array_equal(img.data[ok], raw[i][ok])
        assert (img.data[mask != 0] < 0).all() and (img.data[~ok] < 0).all()
    h, m = header(paths[19]), read_meta(tiny)
    assert h["Pixel_size"] == pytest.approx((m.x_pixel_size, m.y_pixel_size))
    assert h["Beam_xy"] == pytest.approx((m.beam_center_x, m.beam_center_y), abs=0.005)
    assert h["Start_angle"] == pytest.approx(m.omega[19], abs=1e-4)
    assert h["Count_cutoff"] == m.overload and h["Oscillation_axis"] == "OMEGA"
    text = fabio.open(paths[0]).header["_array_data.header_contents"]
    assert "e-6 m x" in text and "00000" not in text.split("Beam_xy")[1].split("\n")[0]
    assert re.search(r"^# \d{4}-\d\d-\d\dT", text, re.M)  # dxtbx reads the date line


def test_a_range_keeps_the_image_numbers(tiny, tmp_path):
    paths = to_cbf(tiny, str(tmp_path / "r"), 11, 13, scheduler="threads").paths
    assert [os.path.basename(p) for p in paths] == [f"r_000{k}.cbf" for k in (11, 12, 13)]
    assert header(paths[0])["Start_angle"] == pytest.approx(read_meta(tiny).omega[10], abs=1e-4)


def test_all_the_frames_after_a_few_keeps_the_few(tiny, tmp_path):
    """A file holds its own frame whatever range wrote it: a run over every frame keeps
    those a run over a few wrote (it had refused them as files in the way)."""
    few = to_cbf(tiny, str(tmp_path / "a"), 2, 3, scheduler="threads")
    before = {p: open(p, "rb").read() for p in few.paths}
    every = to_cbf(tiny, str(tmp_path / "a"), scheduler="threads")
    assert len(every.paths) == read_meta(tiny).n_frames and len(every.todo) == len(every.paths) - 2
    assert all(open(p, "rb").read() == b for p, b in before.items())  # kept as they were
    fresh = to_cbf(tiny, str(tmp_path / "b"), scheduler="threads").paths
    for kept, new in zip(every.paths[1:3], fresh[1:3], strict=True):
        assert np.array_equal(fabio.open(kept).data, fabio.open(new).data)
        assert header(kept) == header(new)


def test_a_rerun_keeps_its_own_files_and_a_folder_prefix_writes_into_it(tiny, tmp_path):
    (tmp_path / "c").mkdir()
    exe = [str(Path(sys.executable).with_name("lbnl-to-cbf")), tiny, str(tmp_path / "c"),
           "-N", "3", "--scheduler", "threads"]  # fmt: skip
    r = subprocess.run(exe, capture_output=True, text=True)
    assert r.returncode == 0 and "wrote 3 miniCBF files: tiny_00001.cbf" in r.stdout, r.stderr
    os.remove(tmp_path / "c" / "tiny_00002.cbf")
    r = subprocess.run(exe, capture_output=True, text=True)
    assert "wrote 1 miniCBF files (2 kept from an earlier run)" in r.stdout, r.stderr
    assert len(glob.glob(str(tmp_path / "c" / "*.cbf"))) == 3 and not list(tmp_path.glob("*.cbf"))


def test_tasks_are_bounded_in_memory(tiny):
    from lbnl_dask import cbf_output

    cj = cbf_output.cbf_job(tiny, "/tmp/unused", datablock=None)
    assert cj.job is not None and len(cj.paths) == 20
    small = cbf_output.TASK_BYTES
    try:  # a frame of 132 x 102 int32 is 53856 bytes: two frames a task
        cbf_output.TASK_BYTES = 2 * 132 * 102 * 4
        layer = cbf_output.cbf_job(tiny, "/tmp/unused").job.dask
        tasks = {k[1] for k in layer if isinstance(k, tuple) and k[0].startswith("write-cbf")}
        assert len(tasks) == 10
    finally:
        cbf_output.TASK_BYTES = small


def test_existing_files_are_kept_unless_asked(tiny, tmp_path):
    prefix = str(tmp_path / "e")
    open(cbf_name(prefix, 2), "w").write("mine")
    with pytest.raises(OutputError, match="e_00002.cbf: exists"):
        to_cbf(tiny, prefix, 1, 3, scheduler="threads")
    assert open(cbf_name(prefix, 2)).read() == "mine"
    assert not os.path.exists(cbf_name(prefix, 1))
    to_cbf(tiny, prefix, 1, 3, scheduler="threads", overwrite=True)
    m = read_meta(tiny)
    assert fabio.open(cbf_name(prefix, 2)).data.shape == (m.ny, m.nx)


def test_overwrite_by_a_shorter_run_leaves_one_series(tiny, tmp_path):
    """--overwrite after a longer run had left its later frames: the folder looked like one
    series of two jobs. Frames before a range are another range's, and stay."""
    prefix = str(tmp_path / "o")
    to_cbf(tiny, prefix, 1, 6, scheduler="threads")
    to_cbf(tiny, prefix, 2, 3, scheduler="threads", overwrite=True)
    names = sorted(os.path.basename(p) for p in glob.glob(prefix + "_*.cbf"))
    assert names == ["o_00001.cbf", "o_00002.cbf", "o_00003.cbf"]


def test_an_output_folder_that_cannot_be_made_is_one_error(tiny, tmp_path):
    (tmp_path / "afile").write_text("x")  # (a traceback before)
    with pytest.raises(OutputError, match="afile/sub: cannot create the output folder"):
        to_cbf(tiny, str(tmp_path / "afile" / "sub" / "c"), scheduler="threads")


def test_pixels_that_are_not_counts_are_refused(tiny, tmp_path):
    """An -S/-L/-X output holds no counts: written as miniCBF, log2 values read as counts."""
    rep = compress(tiny, str(tmp_path / "log"), logarithm_base="2", uint=2, scheduler="threads")
    with pytest.raises(OutputError, match=r"its pixels are ln\(1 \+ counts\) / ln\(2\), not "
                       "counts: miniCBF holds counts"):  # fmt: skip
        to_cbf(rep.master, str(tmp_path / "c"), scheduler="threads")
    assert glob.glob(str(tmp_path / "c*")) == []


def test_a_failed_run_leaves_no_files(tiny, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(os.path.dirname(tiny), folder)
    master = str(folder / os.path.basename(tiny))
    data2 = sorted(glob.glob(str(folder / "*_data_000002.h5")))[0]
    with h5py.File(data2) as f:  # a chunk's bytes damaged: found only when decoded
        info = f[layout.DATA].id.get_chunk_info(3)
    with open(data2, "r+b") as fh:
        fh.seek(info.byte_offset)
        fh.write(b"\xff" * info.size)
    with pytest.raises(LbnlDaskError, match="tiny_data_000002.h5"):
        to_cbf(master, str(tmp_path / "f"), scheduler="threads", datablock=5)
    assert glob.glob(str(tmp_path / "f_*")) == []


def test_command_line(tiny, tmp_path):
    exe = [str(Path(sys.executable).with_name("lbnl-to-cbf"))]
    r = subprocess.run(exe + [tiny, str(tmp_path / "c"), "-N", "4", "--scheduler", "threads"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "wrote 4 miniCBF files: c_00001.cbf ... c_00004.cbf" in r.stdout
    r = subprocess.run(exe + [str(tmp_path / "none_master.h5")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "none_master.h5" in r.stderr
    src = tmp_path / "scan"  # a master not named *_master.h5: its name without .h5
    shutil.copytree(os.path.dirname(tiny), src)
    os.rename(src / os.path.basename(tiny), src / "scan1.h5")
    (tmp_path / "here").mkdir()
    r = subprocess.run(exe + [str(src / "scan1.h5"), "-N", "1", "--scheduler", "threads"],
                       capture_output=True, text=True, cwd=tmp_path / "here")  # fmt: skip
    assert r.returncode == 0 and os.listdir(tmp_path / "here") == ["scan1_00001.cbf"], r.stderr
    for bad in ("--datablock=-5", "--datablock=0", "-w=-3", "-w=0"):  # tracebacks, or defaults
        r = subprocess.run(exe + [tiny, str(tmp_path / "d" / "c"), bad], capture_output=True,
                           text=True)  # fmt: skip
        assert r.returncode == 2 and "must be at least 1" in r.stderr, (bad, r.stderr)
        assert "Traceback" not in r.stderr and not (tmp_path / "d").exists()


def test_the_masters_odd_values_are_noted_as_they_go_into_the_headers(tiny, tmp_path):
    """A NaN beam centre is written into every header as it is: lbnl-to-cbf says so, as
    lbnl-compress does."""
    src = tmp_path / "in"
    shutil.copytree(os.path.dirname(tiny), src)
    master = src / os.path.basename(tiny)
    with h5py.File(master, "r+") as f:
        f[layout.DET + "/beam_center_x"][()] = np.nan
        f[layout.SPEC + "/nframes_sum"][()] = 0  # lbnl-compress' concern, not the headers'
    exe = [str(Path(sys.executable).with_name("lbnl-to-cbf"))]
    r = subprocess.run(exe + [str(master), str(tmp_path / "c"), "-N", "1", "--scheduler",
                              "threads"], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "lbnl-to-cbf: note: beam_center_x is nan in the master: copied as it is" in r.stderr
    assert "nframes_sum" not in r.stderr
    assert "Beam_xy (nan, " in fabio.open(str(tmp_path / "c_00001.cbf")).header[
        "_array_data.header_contents"]  # fmt: skip
    # read back as input: an unknown value, not a damaged header line
    warned = open_dataset(str(tmp_path / "c_00001.cbf")).meta.warnings
    assert any(w.startswith("no beam_center_x in the headers") for w in warned), warned


# ---------------------------------------------------------------- the real L-cysteine frames
@pytest.fixture(scope="module")
def lcys(realdata):
    return sorted(glob.glob(str(realdata / "dials-l-cysteine" / "l-cyst_01_*.cbf.gz")))


def test_lossless_cbf_hdf5_cbf_is_identical(lcys, tmp_path):
    rep = compress(lcys[0], str(tmp_path / "x"), cbf=True, scheduler="threads")
    out = sorted(glob.glob(str(tmp_path / "x_*.cbf")))
    assert len(out) == len(lcys) == len(rep.cbf_files)
    for src, dst in zip(lcys, out, strict=True):
        a, b = fabio.open(src), fabio.open(dst)
        assert np.array_equal(a.data, b.data) and b.data.dtype == np.int32
        assert header(dst) == header(src)


def test_binned_summed_headers_parse_back_to_the_new_geometry(lcys, tmp_path):
    rep = compress(lcys[0], str(tmp_path / "b"), bin_range=2, sum_range=3, hcomp_scale=12,
                   cbf=True, scheduler="threads")  # fmt: skip
    src = header(lcys[0])
    m = read_meta(rep.master)
    assert len(rep.cbf_files) == 5
    for k, path in enumerate(rep.cbf_files):
        img = fabio.open(path)
        h = header(path)
        assert img.data.shape == (840, 738)
        assert h["Pixel_size"] == pytest.approx((344e-6, 344e-6))
        assert h["Beam_xy"] == pytest.approx((365.0, 432.5))
        assert h["Exposure_time"] == pytest.approx(3 * src["Exposure_time"])
        assert h["Exposure_period"] == pytest.approx(3 * src["Exposure_period"])
        assert h["Angle_increment"] == pytest.approx(0.3)
        assert h["Start_angle"] == pytest.approx(src["Start_angle"] + 0.3 * k)
        assert h["Count_cutoff"] == m.overload
        for key in ("Wavelength", "Detector_distance", "Detector_2theta", "Chi", "Tau"):
            assert h[key] == src[key], key


# ---------------------------------------------------------------- lbnl-compress --cbf
@pytest.fixture
def series(tiny, tmp_path):
    """A 5-frame miniCBF series of the tiny dataset's frames, in its own folder."""
    from tests.helpers import cbf_frames, write_cbf_series

    (tmp_path / "in").mkdir()
    return write_cbf_series(tmp_path / "in" / "p", cbf_frames(tiny, 5))


def test_cbf_rerun_resumes_and_overwrite_leaves_one_series(series, tmp_path):
    out = str(tmp_path / "o")
    rep = compress(series[0], out, cbf=True, scheduler="threads")
    assert len(rep.cbf_files) == 5 and rep.cbf_kept == 0
    os.remove(rep.cbf_files[3])
    rep = compress(series[0], out, cbf=True, scheduler="threads")  # the same command again
    assert rep.cbf_kept == 4 and os.path.exists(rep.cbf_files[3])
    assert "1 miniCBF file(s) written, the HDF5 output was complete" in str(rep)  # not "nothing"
    rep = compress(series[0], out, cbf=True, sum_range=2, overwrite=True, scheduler="threads")
    assert sorted(glob.glob(out + "_*.cbf")) == rep.cbf_files  # 3 frames: no stale 4 and 5


def test_cbf_never_replaces_an_input_file(tiny, tmp_path):
    from tests.helpers import cbf_frames, write_cbf_series

    series = write_cbf_series(tmp_path / "u", cbf_frames(tiny, 3), suffix=".cbf")
    before = [open(p, "rb").read() for p in series]
    with pytest.raises(OutputError, match="u_00001.cbf: output would overwrite the input"):
        compress(series[0], str(tmp_path / "u"), cbf=True, bin_range=2, overwrite=True,
                 scheduler="threads")  # fmt: skip
    assert [open(p, "rb").read() for p in series] == before


def test_cbf_needs_integer_output_before_anything_runs(series, tmp_path):
    from lbnl_dask.errors import OptionError

    with pytest.raises(OptionError, match="--cbf needs integer output"):
        compress(series[0], str(tmp_path / "f"), cbf=True, ufloat=4, scheduler="threads")
    assert not glob.glob(str(tmp_path / "f*"))


def test_the_last_short_sum_has_its_own_increment_and_exposure(series, tmp_path):
    rep = compress(series[0], str(tmp_path / "s"), sum_range=2, cbf=True, scheduler="threads")
    full, short = header(rep.cbf_files[1]), header(rep.cbf_files[2])  # 2 + 2 + 1 frames
    assert full["Angle_increment"] == pytest.approx(0.2)
    assert full["Exposure_time"] == pytest.approx(2 * 0.0964)
    assert short["Angle_increment"] == pytest.approx(0.1)
    assert short["Exposure_time"] == pytest.approx(0.0964)
    assert short["Start_angle"] == pytest.approx(-145.0 + 0.4)


def test_a_phi_scan_keeps_its_axis(tiny, tmp_path):
    from tests.helpers import PILATUS_HEADER, cbf_frames, write_cbf_series

    lines = [ln.replace("OMEGA", "PHI") for ln in PILATUS_HEADER]
    (tmp_path / "in").mkdir()
    try:
        PILATUS_HEADER[:] = lines
        paths = write_cbf_series(tmp_path / "in" / "phi", cbf_frames(tiny, 4))
    finally:
        PILATUS_HEADER[:] = [ln.replace("PHI", "OMEGA") for ln in lines]
    rep = compress(paths[0], str(tmp_path / "o"), sum_range=2, cbf=True, scheduler="threads")
    h = header(rep.cbf_files[1])
    assert h["Oscillation_axis"] == "PHI" and h["Start_angle"] == pytest.approx(-144.8)
    assert h["Phi"] == pytest.approx(-144.8) and h["Angle_increment"] == pytest.approx(0.2)
    assert h["Omega"] == pytest.approx(-145.0)  # the header's Omega line: a fixed axis here


def test_an_nxmx_rotation_in_sample_transformations_keeps_its_scan(tiny, tmp_path):
    """NXmx masters keep omega in sample/transformations (no Dectris goniometer group), and
    the collection's start in entry/start_time: the miniCBF files get the same angles the
    HDF5 output has, and that date, where they had no scan lines and the time of writing."""
    src = os.path.dirname(tiny)
    for p in glob.glob(os.path.join(src, "tiny_*.h5")):
        shutil.copy(p, tmp_path)
    master = str(tmp_path / "tiny_master.h5")
    with h5py.File(master, "r+") as f:
        gonio = f[layout.GONIOMETER]
        omega = 10 + 0.1 * np.arange(gonio["omega"].shape[0])
        del f[layout.GONIOMETER]
        t = f.require_group(layout.SAMPLE + "/transformations")
        t["omega"] = omega
        t["omega"].attrs["units"] = "deg"
        spec = f[layout.SPEC]
        if "data_collection_date" in spec:
            del spec["data_collection_date"]
        f[layout.ENTRY + "/start_time"] = "2024-07-24T10:09:13Z"
    cj = to_cbf(master, str(tmp_path / "c" / "x"), last_image=3, scheduler="sync")
    h = header(cj.paths[2])
    assert h["Start_angle"] == pytest.approx(10.2) and h["Angle_increment"] == pytest.approx(0.1)
    assert h["Oscillation_axis"] == "OMEGA"
    text = open(cj.paths[0], "rb").read(400).decode("latin-1")
    assert "# 2024-07-24T10:09:13.000\r\n" in text  # as dxtbx parses it: no zone
    # each file dated as a detector dates it: the first's time plus its frame periods
    from datetime import datetime, timedelta

    period = read_meta(master).frame_time
    third = open(cj.paths[2], "rb").read(400).decode("latin-1")
    when = datetime(2024, 7, 24, 10, 9, 13) + timedelta(seconds=2 * period)
    assert period > 0 and f"# {when.isoformat(timespec='milliseconds')}\r\n" in third


def test_a_replaced_input_file_is_a_new_job(series, tmp_path):
    out = str(tmp_path / "r")
    compress(series[0], out, scheduler="threads")
    first = open_dataset(out + "_master.h5").frames[2].compute()
    src = fabio.open(series[2]).data
    from tests.helpers import write_cbf_series

    write_cbf_series(series[2].replace("_00003.cbf.gz", ""), (src + 7)[None], number0=3)
    rep = compress(series[0], out, scheduler="threads", overwrite=True)
    assert not any("already complete" in n for n in rep.notes)
    again = open_dataset(out + "_master.h5").frames[2].compute()
    valid = first != 0xFFFFFFFF
    assert (again[valid] == first[valid] + 7).all()


def test_image_numbers_of_a_series_not_starting_at_1_are_noted(tiny, tmp_path):
    from tests.helpers import cbf_frames, write_cbf_series

    (tmp_path / "in").mkdir()
    paths = write_cbf_series(tmp_path / "in" / "k", cbf_frames(tiny, 3), number0=7)
    rep = compress(paths[0], str(tmp_path / "o"), scheduler="threads")
    assert any("image 1 is k_00007.cbf.gz" in n for n in rep.notes)


def test_overwrite_never_removes_a_series_read_from_the_same_prefix(tiny, tmp_path):
    from tests.helpers import cbf_frames, write_cbf_series

    # inputs u_00009 ... u_00013 beside outputs u_00001 ... u_00003: not "stale" outputs
    series = write_cbf_series(tmp_path / "u", cbf_frames(tiny, 5), suffix=".cbf", number0=9)
    rep = compress(series[0], str(tmp_path / "u"), sum_range=2, cbf=True, overwrite=True,
                   scheduler="threads")  # fmt: skip
    assert all(os.path.exists(p) for p in series) and len(rep.cbf_files) == 3


def test_a_damaged_file_of_this_job_is_written_again(series, tmp_path):
    out = str(tmp_path / "d")
    rep = compress(series[0], out, cbf=True, scheduler="threads")
    whole = open(rep.cbf_files[1], "rb").read()
    open(rep.cbf_files[1], "wb").write(whole[: len(whole) // 2])
    rep = compress(series[0], out, cbf=True, scheduler="threads")
    assert rep.cbf_kept == 4 and open(rep.cbf_files[1], "rb").read() == whole


def test_the_series_own_oscillation_axis_line_is_kept(tiny, tmp_path):
    from tests.helpers import PILATUS_HEADER, cbf_frames, write_cbf_series

    (tmp_path / "in").mkdir()
    saved = list(PILATUS_HEADER)
    try:
        PILATUS_HEADER[:] = [ln.replace("Oscillation_axis OMEGA", "Oscillation_axis X, CW")
                             for ln in saved]  # fmt: skip
        paths = write_cbf_series(tmp_path / "in" / "x", cbf_frames(tiny, 2))
    finally:
        PILATUS_HEADER[:] = saved
    rep = compress(paths[0], str(tmp_path / "o"), cbf=True, scheduler="threads")
    text = fabio.open(rep.cbf_files[1]).header["_array_data.header_contents"]
    assert "# Oscillation_axis X, CW" in text and "OMEGA" not in text


def test_the_scan_axis_is_the_one_that_moves(tmp_path):
    """Dectris masters store every axis per frame: a phi scan has omega constant."""
    from lbnl_dask import layout as L
    from lbnl_dask.cbf_output import header_plan
    from tests.helpers import write_master

    g = L.GONIOMETER
    master = write_master(tmp_path / "m_master.h5", [], nimages=3, extra={
        f"{g}/omega": np.zeros(3), f"{g}/phi": np.array([10.0, 10.5, 11.0]),
        f"{g}/phi_increment": np.float64(0.5),
        L.DET + "/x_pixel_size": np.float32(75e-6), L.DET + "/y_pixel_size": np.float32(75e-6),
    })  # fmt: skip
    plan = header_plan(master, read_meta(master))
    assert plan.axis == "phi" and plan.starts == (10.0, 10.5, 11.0) and plan.increment == 0.5


def test_a_round_trip_through_cbf_twice_keeps_one_job_line(series, tmp_path):
    rep = compress(series[0], str(tmp_path / "a" / "a"), cbf=True, scheduler="threads")
    again = compress(rep.cbf_files[0], str(tmp_path / "b" / "b"), cbf=True, scheduler="threads")
    text = fabio.open(again.cbf_files[0]).header["_array_data.header_contents"]
    assert text.count("lbnl_dask_job:") == 1


def test_a_detectors_frames_are_never_replaced(tiny, tmp_path):
    """lbnl-to-cbf --overwrite into the prefix of a raw series (a lossy output's frames
    written over the raw data it came from): refused; files lbnl_dask wrote are replaced."""
    from tests.helpers import cbf_frames, write_cbf_series

    plain = write_cbf_series(tmp_path / "p", cbf_frames(tiny, 2), suffix=".cbf")
    before = [open(p, "rb").read() for p in plain]
    with pytest.raises(OutputError, match="p_00001.cbf: a miniCBF file lbnl_dask did not "
                       "write .*never replaced, even with --overwrite"):  # fmt: skip
        to_cbf(tiny, str(tmp_path / "p"), last_image=2, scheduler="threads", overwrite=True)
    with pytest.raises(OutputError, match="did not write"):
        compress(tiny, str(tmp_path / "p"), cbf=True, last_image=4, sum_range=2,
                 scheduler="threads", overwrite=True)  # fmt: skip
    assert [open(p, "rb").read() for p in plain] == before
    first = to_cbf(tiny, str(tmp_path / "ours"), last_image=2, scheduler="threads")
    again = to_cbf(tiny, str(tmp_path / "ours"), first_image=2, last_image=3,
                   scheduler="threads", overwrite=True)  # fmt: skip
    assert first.paths[1] == again.paths[0] and len(again.todo) == 2


def test_a_short_last_frame_is_dated_by_the_series_period():
    """The last frame of a sum that ran out of images has its own, shorter, exposure; it
    still starts i whole periods after the first."""
    from lbnl_dask.cbf_output import HeaderPlan

    plan = HeaderPlan(("2024-07-24T10:09:13.000",), (("Exposure_period", 0.2),), "omega",
                      (0.0, 0.2, 0.4), (0.2, 0.4, 0.5), 0.2)  # fmt: skip
    dates = [[ln for ln in plan.text(i).splitlines() if "2024-" in ln] for i in range(3)]
    assert dates == [["# 2024-07-24T10:09:13.000"], ["# 2024-07-24T10:09:13.200"],
                     ["# 2024-07-24T10:09:13.400"]]  # fmt: skip
    assert "Exposure_period 0.1" in plan.text(2)
