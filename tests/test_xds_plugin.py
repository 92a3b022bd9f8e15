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
from lbnl_dask.errors import OptionError
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
        ("fail-open", ["stub-plugin.so failed in plugin_open: error -4: STUB ERROR: CANNOT"]),
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
    assert "invalid location ID" not in msg  # the plugin's message, not the trace below it


def test_a_plugin_that_hangs_is_stopped_with_what_it_started(stub, tmp_path):
    import time

    t0 = time.monotonic()
    with pytest.raises(PluginError, match=r"stub-plugin.so: no answer in 5 s reading .*hang"):
        read_frames(stub, str(tmp_path / "hang_master.h5"), [1, 2], timeout=5)
    assert time.monotonic() - t0 < 30
    assert not _running_with(str(tmp_path).encode())


def test_a_plugin_is_stopped_with_the_run(stub, tmp_path):
    """Ctrl-C (or a batch system's SIGTERM, which lbnl-validate turns into the same) while
    a plugin runs: the plugin's process, and what it started, stop too."""
    import signal
    import sys
    import time

    master = tmp_path / "hang_master.h5"
    code = ("import sys; from lbnl_dask.xds_plugin import read_frames; "
            "read_frames(sys.argv[1], sys.argv[2], [1, 2])")  # fmt: skip
    run = subprocess.Popen([sys.executable, "-c", code, stub, str(master)],
                           stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 60
    while len(_running_with(str(master).encode())) < 3:  # this run, the child, its fork
        assert time.monotonic() < deadline, "the stand-in plugin did not start"
        time.sleep(0.1)
    run.send_signal(signal.SIGINT)
    assert b"KeyboardInterrupt" in run.communicate(timeout=30)[1]
    assert not _running_with(str(tmp_path).encode())


def _running_with(text: bytes) -> list:
    """Processes whose command line holds ``text``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            found += [cmdline] if text in cmdline.read_bytes() else []
        except OSError:
            continue
    return found


def test_a_file_that_is_no_plugin_is_named(tmp_path):
    fake = tmp_path / "notaplugin.so"
    fake.write_text("not a shared library")
    with pytest.raises(PluginError, match=r"notaplugin.so failed in loading it: .*notaplugin"):
        read_frames(str(fake), str(tmp_path / "x_master.h5"), [1])
    lib = shutil.which("true")  # an executable, not a library with the four functions
    with pytest.raises(PluginError, match="failed in loading it"):
        read_frames(lib, str(tmp_path / "x_master.h5"), [1])


# ------------------------------------------------------------ what XDS should get
def test_expected_frame_follows_neggia_1_2():
    frame = np.array([[0, 5, 32766, 32767, 40000, 65535]], np.uint16)
    mask = np.array([[0, 1, 2, 0, 0, 0]], np.uint32)
    want = [[0, -1, -2, 32767, 40000, -1]]  # only the all-bits-set marker is -1
    np.testing.assert_array_equal(expected_frame(frame, mask), want)
    np.testing.assert_array_equal(expected_frame(frame, None)[0, 1:3], [5, 32766])
    big = np.array([[2**31 - 1, 2**31, 2**32 - 1]], np.uint32)
    np.testing.assert_array_equal(expected_frame(big, None), [[2**31 - 1, -1, -1]])


def test_frame_differences_allow_what_the_plugins_differ_in():
    """What Neggia 1.2, earlier Neggia and durin give for the same stored frame passes; a
    masked pixel given as a count, or a count changed, does not."""
    frame = np.array([[7, 3, 32767, 40000, 65535, 9, 11]], np.uint16)
    mask = np.array([[0, 3, 0, 0, 0, 32, 0]], np.uint32)  # bit 0 + bit 1; bit 5 (durin only)
    neggia12 = [[7, -1, 32767, 40000, -1, 9, 11]]
    neggia_before = [[7, -1, -1, -1, -1, 9, 11]]
    durin = [[7, -2, 32767, 40000 - 65536, -1, -1, 11]]
    seen = [frame_differences(np.array(g, np.int32), frame, mask) for g in
            (neggia12, neggia_before, durin)]  # fmt: skip
    assert [(d.count, d.unread) for d in seen] == [(0, 0), (0, 2), (0, 1)]
    d = frame_differences(np.array([[7, 3, 32767, 40000, -1, 9, 12]], np.int32), frame, mask)
    assert (d.count, d.first) == (2, (0, 1, 3, -1))
    # mask bit 31: durin reads the mask as int (clamped to 2**31 - 1, bits 1-4 set): -2
    top = np.array([[3]], np.uint16)
    bit31 = np.array([[2**31]], np.uint32)
    assert frame_differences(np.array([[-2]], np.int32), top, bit31).count == 0
    assert frame_differences(np.array([[3]], np.int32), top, bit31).count == 0
    # compared in bands of rows: a difference past the first band is found, where it is
    tall = np.zeros((600, 3), np.uint32)
    got = tall.astype(np.int32)
    got[517, 2] = 5
    d = frame_differences(got, tall, None)
    assert (d.count, d.first) == (1, (517, 2, 5, 0))


# ------------------------------------------------------------------ lbnl-validate
def test_validate_reports_a_plugin_whose_header_disagrees(stub, tiny, tmp_path, capsys):
    r = compress(tiny, str(tmp_path / "o"), bin_range=2, sum_range=2, scheduler="sync",
                 fidelity=False)  # fmt: skip
    res = validate(r.master, decode=False, xds_plugins=[stub])
    fails = [m for level, m in res.lines if level == "FAIL"]
    assert len(fails) == 1 and fails[0].startswith("stub-plugin.so: header nx 4 (files: "), fails
    with h5py.File(r.master) as f:  # only what differs from the files is named
        two_bytes = f["/entry/data/data_000001"].dtype.itemsize == 2
    assert ("nbytes 4" in fails[0]) == two_bytes and "nframes 5 (files: 10)" in fails[0]
    assert validate_main([r.master, "--no-decode", "--xds-plugin", stub]) == 1
    assert "[FAIL] stub-plugin.so: header" in capsys.readouterr().out


def test_validate_runs_every_other_check_and_says_when_the_plugin_was_not_run(stub, tiny, tmp_path):
    r = compress(tiny, str(tmp_path / "o"), bin_range=2, data_block_size=5, scheduler="sync",
                 fidelity=False)  # fmt: skip
    res = validate(r.master, xds_plugins=[stub])  # the stub's header fails...
    assert res.failed and "decoded all 20 frames" in str(res)  # ...decoding still checked
    os.unlink(tmp_path / "o_000002.h5")
    res = validate(r.master, xds_plugins=[stub])
    assert ("WARN", "stub-plugin.so: not run, as the data files failed the checks above") in (
        res.lines
    )


def test_validate_with_a_plugin_and_no_frames_reads_the_header(stub, tmp_path):
    """A data file of no frames (a master written before any): no frame to compare, the
    header still is (it had ended in an AttributeError)."""
    with h5py.File(tmp_path / "s_000001.h5", "w") as f:
        f.create_dataset("/entry/data/data", shape=(0, 4, 5), maxshape=(None, 4, 5),
                         chunks=(1, 4, 5), dtype=np.uint16)  # fmt: skip
    with h5py.File(tmp_path / "s_master.h5", "w") as m:
        m["/entry/data/data_000001"] = h5py.ExternalLink("s_000001.h5", "/entry/data/data")
        m["/entry/instrument/detector/detectorSpecific/nimages"] = np.uint32(0)
    res = validate(str(tmp_path / "s_master.h5"), xds_plugins=[stub])
    assert any(m.startswith("stub-plugin.so: header nx 4 (files: 5)") for _, m in res.lines)


def test_float_output_is_not_given_to_a_plugin(stub, tiny, tmp_path):
    why = "--xds-plugin checks the output as XDS' plugins read it, and they read unsigned "
    with pytest.raises(OptionError, match=why + "integer pixels, not -f 4"):
        compress(tiny, str(tmp_path / "o"), ufloat=4, xds_plugins=[stub], scheduler="sync")
    assert not list(tmp_path.iterdir())
    r = compress(tiny, str(tmp_path / "f"), ufloat=4, scheduler="sync", fidelity=False)
    res = validate(r.master, decode=False, xds_plugins=[stub])
    assert ("WARN", "stub-plugin.so: not run, as its pixels are float32, and XDS' plugins read "
                    "unsigned integers") in res.lines  # fmt: skip


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
    ok = [m for level, m in res.lines if level == "OK" and "read as stored" in m]
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
    fake = tmp_path / "fake.so"
    fake.write_text("not a library")
    code = compress_main(["-i", tiny, "-o", str(tmp_path / "p"), "--xds-plugin", str(fake)])
    err = capsys.readouterr().err
    assert code == 2 and f"--xds-plugin {fake}: not an XDS plugin (fake.so failed in" in err, err
    assert not list(tmp_path.glob("p*"))  # both refused before anything was written


@pytest.mark.skipif(not REAL, reason="set LBNL_XDS_PLUGINS to XDS plugin libraries (Neggia, durin)")
def test_real_plugins_and_counts_from_32767_in_2_byte_pixels(tiny, tmp_path):
    """Such counts (an input's, never ours: the output caps 2-byte pixels at 32766) reach
    XDS through Neggia 1.2, not through durin (a signed reading) or earlier Neggia (-1):
    a warning, not a failure, and the plugin's other pixels still compared."""
    src = tmp_path / "in"
    shutil.copytree(os.path.dirname(tiny), src)
    master = str(src / os.path.basename(tiny))
    with h5py.File(master) as f:
        mask = f["/entry/instrument/detector/detectorSpecific/pixel_mask"][()]
    ys, xs = np.nonzero(mask == 0)
    with h5py.File(src / "tiny_data_000001.h5", "r+") as f:
        d = f["/entry/data/data"]
        a = d[0]
        a[ys[500], xs[500]], a[ys[900], xs[900]] = 40000, 32767
        d[0] = a
    res = validate(master, decode=False, xds_plugins=REAL)
    assert not res.failed, str(res)
    warns = {m.split(" ")[0]: m for level, m in res.lines if level == "WARN"}
    for plugin in REAL:  # durin reads 40000 as signed; Neggia 1.2 reads both, before 1.2 none
        name = os.path.basename(plugin)
        if "durin" in name:
            assert "reads 1 unmasked count(s) of 32767 and above in frame(s) 1" in warns[name]
        elif name in warns:
            assert "reads 2 unmasked count(s) of 32767 and above in frame(s) 1" in warns[name]
    assert str(res).count(": a header of 20 frames") == len(REAL)


@pytest.mark.skipif(not REAL, reason="set LBNL_XDS_PLUGINS to XDS plugin libraries (Neggia, durin)")
def test_compress_with_the_real_plugins(tiny, tmp_path):
    r = compress(tiny, str(tmp_path / "o"), bin_range=2, hcomp_scale=12, scheduler="sync",
                 fidelity=False, xds_plugins=REAL)  # fmt: skip
    assert r.validation.count("read as stored") == len(REAL), r.validation


@pytest.mark.skipif(not REAL, reason="set LBNL_XDS_PLUGINS to XDS plugin libraries (Neggia, durin)")
def test_real_xds_plugins_read_our_output_of_real_pilatus_frames(realdata, tmp_path):
    series = str(realdata / "dials-l-cysteine" / "l-cyst_01_#####.cbf.gz")
    r = compress(series, str(tmp_path / "o"), bin_range=2, sum_range=2, hcomp_scale=12,
                 last_image=8, data_block_size=2, scheduler="sync", fidelity=False)  # fmt: skip
    res = validate(r.master, decode=False, xds_plugins=REAL)
    ok = ": a header of 4 frames, NX 738 x NY 840, 4-byte pixels of 0.344 x 0.344 mm"
    assert not res.failed and str(res).count(ok) == len(REAL), str(res)


@pytest.mark.skipif(not REAL, reason="set LBNL_XDS_PLUGINS to XDS plugin libraries (Neggia, durin)")
def test_real_xds_plugins_do_not_read_bitshuffle_only(tiny, tmp_path):
    """-c bshuf: Neggia has no decoder for it, durin reads an LZ4 header such chunks lack
    (it had been documented as read by durin); the filter check fails it, and so does each
    plugin."""
    r = compress(tiny, str(tmp_path / "o"), bin_range=2, compression="bshuf", scheduler="sync",
                 fidelity=False)  # fmt: skip
    res = validate(r.master, decode=False, xds_plugins=REAL)
    fails = [m for level, m in res.lines if level == "FAIL"]
    assert fails[0].startswith("filter: bitshuffle only"), fails
    for plugin in REAL:
        assert any(m.startswith(os.path.basename(plugin)) for m in fails[1:]), fails
