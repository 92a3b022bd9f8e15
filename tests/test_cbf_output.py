"""Eiger/NXmx datasets written as miniCBF series (lbnl-to-cbf, lbnl-compress --cbf)."""

import glob
import os
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
    paths = to_cbf(tiny, str(tmp_path / "t"), scheduler="threads")
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


def test_a_range_keeps_the_image_numbers(tiny, tmp_path):
    paths = to_cbf(tiny, str(tmp_path / "r"), 11, 13, scheduler="threads")
    assert [os.path.basename(p) for p in paths] == [f"r_000{k}.cbf" for k in (11, 12, 13)]
    assert header(paths[0])["Start_angle"] == pytest.approx(read_meta(tiny).omega[10], abs=1e-4)


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
    r = subprocess.run(exe + [tiny, str(tmp_path / "c"), "-l", "4", "--scheduler", "threads"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "wrote 4 miniCBF files: c_00001.cbf ... c_00004.cbf" in r.stdout
    r = subprocess.run(exe + [str(tmp_path / "none_master.h5")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "none_master.h5" in r.stderr


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
