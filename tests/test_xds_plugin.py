"""Reading datasets through XDS plugins (lbnl_dask.xds_plugin, lbnl-validate --xds-plugin).

Two kinds of plugin:
- a stand-in built here from tests/data/xds_stub_plugin.c (skipped without a C compiler):
  how plugins are called in a child process and how their failures and crashes are reported;
- the real ones, Dectris' Neggia and Diamond's durin, where LBNL_XDS_PLUGINS lists their
  libraries (paths separated by ':'): our outputs read through them, as XDS reads them.
"""

import os
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from lbnl_dask import compress
from lbnl_dask.validate import main as validate_main
from lbnl_dask.validate import validate
from lbnl_dask.xds_plugin import PluginError, expected_frame, frame_differences, read_frames

STUB = Path(__file__).parent / "data" / "xds_stub_plugin.c"
REAL = [p for p in os.environ.get("LBNL_XDS_PLUGINS", "").split(os.pathsep) if p]


@pytest.fixture(scope="module")
def stub(tmp_path_factory) -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc) to build the stand-in XDS plugin")
    lib = tmp_path_factory.mktemp("stub") / "stub-plugin.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(STUB)], check=True)
    return str(lib)


# ------------------------------------------------------------------ calling a plugin
def test_a_plugin_is_called_as_xds_calls_it(stub, tmp_path):
    got = read_frames(stub, str(tmp_path / "x_master.h5"), [1, 3, 7])
    assert (got.nx, got.ny, got.nbytes, got.nframes) == (4, 3, 4, 5)
    assert got.qx == pytest.approx(75e-6) and got.qy == pytest.approx(75e-6)
    assert sorted(got.frames) == [1, 3]  # 7 is past the plugin's 5 frames
    np.testing.assert_array_equal(got.frames[3], 300 + np.arange(12).reshape(3, 4))
    assert got.frames[1].dtype == np.int32


@pytest.mark.parametrize(
    "name, words",
    [
        ("fail-open", ["stub-plugin.so failed in plugin_open: error -4", "STUB ERROR: CANNOT"]),
        ("fail-header", ["failed in plugin_get_header: error -4"]),
        ("fail-data", ["failed in plugin_get_data (frame 2): error -2", "CANNOT OPEN FRAME 2"]),
        ("crash", ["stub-plugin.so crashed (SIGSEGV) in plugin_get_data (frame 2)"]),
    ],
)
def test_a_plugin_failing_is_one_line_naming_the_call(stub, tmp_path, name, words):
    with pytest.raises(PluginError) as e:
        read_frames(stub, str(tmp_path / f"{name}_master.h5"), [1, 2])
    msg = str(e.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_a_file_that_is_no_plugin_is_named(tmp_path):
    fake = tmp_path / "notaplugin.so"
    fake.write_text("not a shared library")
    with pytest.raises(PluginError, match=r"notaplugin.so failed in loading it: .*notaplugin"):
        read_frames(str(fake), str(tmp_path / "x_master.h5"), [1])
    lib = shutil.which("true")  # an executable, not a library with the four functions
    with pytest.raises(PluginError, match="failed in loading it"):
        read_frames(lib, str(tmp_path / "x_master.h5"), [1])


# ------------------------------------------------------------ what XDS should get
def test_expected_frame_follows_neggias_rules():
    frame = np.array([[0, 5, 32766, 32767, 65535]], np.uint16)
    mask = np.array([[0, 1, 2, 0, 0]], np.uint32)
    np.testing.assert_array_equal(expected_frame(frame, mask), [[0, -1, -2, -1, -1]])
    np.testing.assert_array_equal(expected_frame(frame, None), [[0, 5, 32766, -1, -1]])
    big = np.array([[2**31 - 2, 2**31 - 1, 2**32 - 1]], np.uint32)
    np.testing.assert_array_equal(expected_frame(big, None), [[2**31 - 2, -1, -1]])


def test_frame_differences_allow_what_the_plugins_differ_in():
    frame = np.array([[7, 3, 32767, 9]], np.uint16)
    mask = np.array([[0, 3, 0, 0]], np.uint32)  # bit 0 with bit 1: Neggia -1, durin -2
    assert frame_differences(np.array([[7, -2, 32767, 9]], np.int32), frame, mask) == (0, None)
    assert frame_differences(np.array([[7, -1, -1, 9]], np.int32), frame, mask) == (0, None)
    # a masked pixel given as a count, a count changed: both found, the first reported
    got = np.array([[7, 3, -1, 8]], np.int32)
    assert frame_differences(got, frame, mask) == (2, (0, 1, 3, -1))


# ------------------------------------------------------------------ lbnl-validate
def test_validate_reports_a_plugin_whose_header_disagrees(stub, tiny, tmp_path, capsys):
    r = compress(tiny, str(tmp_path / "o"), bin_range=2, sum_range=2, scheduler="sync",
                 fidelity=False)  # fmt: skip
    res = validate(r.master, decode=False, xds_plugins=[stub])
    fails = [m for level, m in res.lines if level == "FAIL"]
    assert len(fails) == 1 and fails[0].startswith("stub-plugin.so: header nx 4 (files: "), fails
    assert "nframes 5 (files: 5)" not in fails[0]  # only what differs
    assert validate_main([r.master, "--no-decode", "--xds-plugin", stub]) == 1
    assert "[FAIL] stub-plugin.so: header" in capsys.readouterr().out


def test_validate_refuses_a_plugin_that_is_not_there(tiny, capsys):
    with pytest.raises(SystemExit) as e:
        validate_main([tiny, "--xds-plugin", "/nonexistent/neggia.so"])
    assert e.value.code == 2
    assert "--xds-plugin /nonexistent/neggia.so: no such file" in capsys.readouterr().err


# ------------------------------------------------------- the real plugins, where given
SETTINGS = {
    "lossless b2s2": dict(bin_range=2, sum_range=2),
    "b1s1 H12": dict(bin_range=1, sum_range=1, hcomp_scale=12),
    "b2s2 J120 keep": dict(bin_range=2, sum_range=2, j2k_ratio=120, keep_spots=5.0),
    "b2s3 uint32 out": dict(bin_range=2, sum_range=3, uint=4),
    "b1s2 unfiltered": dict(bin_range=1, sum_range=2, compression="none"),
}


@pytest.mark.skipif(not REAL, reason="set LBNL_XDS_PLUGINS to XDS plugin libraries (Neggia, durin)")
@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("dataset", ["tiny", "tiny32"])
def test_real_xds_plugins_read_our_output(request, tmp_path, setting, dataset):
    src = request.getfixturevalue(dataset)
    r = compress(src, str(tmp_path / "o"), data_block_size=3, scheduler="sync", fidelity=False,
                 **SETTINGS[setting])  # fmt: skip
    res = validate(r.master, decode=False, xds_plugins=REAL)
    assert not res.failed, str(res)
    ok = [m for level, m in res.lines if level == "OK" and " reads " in m]
    assert len(ok) == len(REAL), str(res)
    with h5py.File(r.master) as f:
        assert f["/entry/instrument/detector/detectorSpecific/nimages"][()] > 0


@pytest.mark.skipif(not REAL, reason="set LBNL_XDS_PLUGINS to XDS plugin libraries (Neggia, durin)")
def test_real_xds_plugins_read_our_synthetic_input(tiny32):
    res = validate(tiny32, decode=False, xds_plugins=REAL)
    assert not res.failed, str(res)


# ------------------------------------------------------------------ lbnl-compress
def test_compress_reads_its_output_through_the_plugin_asked_for(stub, tiny, tmp_path, capsys):
    from lbnl_dask.cli import main as compress_main

    out = str(tmp_path / "o")
    code = compress_main(["-i", tiny, "-o", out, "-b", "2", "--scheduler", "sync",
                          "--no-fidelity", "--xds-plugin", stub])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "the output failed validation: stub-plugin.so: header nx 4" in err, err
    code = compress_main(["-i", tiny, "-o", str(tmp_path / "p"), "--xds-plugin",
                          str(tmp_path / "none.so")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and f"--xds-plugin {tmp_path / 'none.so'}: no such file" in err, err
    assert not list(tmp_path.glob("p*"))  # refused before anything was written


@pytest.mark.skipif(not REAL, reason="set LBNL_XDS_PLUGINS to XDS plugin libraries (Neggia, durin)")
def test_compress_with_the_real_plugins(tiny, tmp_path):
    r = compress(tiny, str(tmp_path / "o"), bin_range=2, hcomp_scale=12, scheduler="sync",
                 fidelity=False, xds_plugins=REAL)  # fmt: skip
    assert r.validation.count(" reads ") == len(REAL), r.validation


@pytest.mark.skipif(not REAL, reason="set LBNL_XDS_PLUGINS to XDS plugin libraries (Neggia, durin)")
def test_real_xds_plugins_read_our_output_of_real_pilatus_frames(realdata, tmp_path):
    series = str(realdata / "dials-l-cysteine" / "l-cyst_01_#####.cbf.gz")
    r = compress(series, str(tmp_path / "o"), bin_range=2, sum_range=2, hcomp_scale=12,
                 last_image=8, data_block_size=2, scheduler="sync", fidelity=False)  # fmt: skip
    res = validate(r.master, decode=False, xds_plugins=REAL)
    assert not res.failed and str(res).count(" reads 4 frames of 738 x 840") == len(REAL), str(res)
