"""Synthetic datasets.

FileWriter layout, detector presets, invalid pixels, ground truth, determinism.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest

from lbnl_dask import synth
from lbnl_dask.layout import (
    DATA,
    DATA_GROUP,
    DET,
    ENTRY,
    NX_CLASS,
    PIXEL_MASK,
    SPEC,
    block_name,
    block_path,
    data_file_name,
)
from lbnl_dask.synth import DETECTORS, make_dataset


@pytest.mark.parametrize(
    "name,nx,ny",
    [
        ("eiger_1m", 1030, 1065),
        ("eiger_4m", 2070, 2167),
        ("eiger_9m", 3110, 3269),
        ("eiger_16m", 4150, 4371),
        ("eiger2_4m", 2068, 2162),
        ("eiger2_9m", 3108, 3262),
        ("eiger2_16m", 4148, 4362),
    ],
)
def test_detector_presets_have_real_sizes(name, nx, ny):
    assert (DETECTORS[name].nx, DETECTORS[name].ny) == (nx, ny)


def test_layout_is_dectris_filewriter(tiny32):
    prefix = tiny32[: -len("_master.h5")]
    with h5py.File(tiny32, "r") as f:
        links = sorted(f[DATA_GROUP])
        assert links == [block_name(k) for k in (1, 2, 3)]
        link = f[DATA_GROUP].get(block_name(2), getlink=True)
        assert isinstance(link, h5py.ExternalLink) and link.path == DATA
        assert link.filename == data_file_name(prefix.split("/")[-1], 2)
        assert f[ENTRY].attrs[NX_CLASS] == b"NXentry"
        # fixed-length ASCII, not variable-length UTF-8 (durin needs that)
        assert f[DET].attrs.get_id(NX_CLASS).get_type().get_cset() == h5py.h5t.CSET_ASCII
        assert isinstance(f[DET].attrs[NX_CLASS], np.bytes_)
        det = f[DET]
        assert f[SPEC + "/nimages"][()] == 14 and f[SPEC + "/ntrigger"][()] == 1
        assert det["bit_depth_image"][()] == 32
        mask = f[PIXEL_MASK]
        assert mask.dtype == np.uint32 and mask.chunks is None and mask.compression is None
        assert det["x_pixel_size"].attrs["units"] == b"m"
        assert len(f[SPEC + "/detectorModule_003/data_origin"][()]) == 2
    with h5py.File(data_file_name(prefix, 3), "r") as f:
        d = f[DATA]
        assert d.shape == (4, 102, 132) and d.chunks == (1, 102, 132) and d.dtype == np.uint32
        assert d.attrs["image_nr_low"] == 11 and d.attrs["image_nr_high"] == 14
        plist = d.id.get_create_plist()
        assert plist.get_filter(0)[0] == 32008 and plist.get_filter(0)[2][4] == 2  # LZ4


def test_invalid_pixels_flagged_and_all_bits_set(tiny):
    with h5py.File(tiny, "r") as f:
        mask = f[PIXEL_MASK][()]
        frames = np.concatenate([f[block_path(1)][()], f[block_path(2)][()]])
    assert set(np.unique(mask)) == {0, 1, 2, 8}  # gap, dead, hot flags
    gaps = mask & 1 != 0
    assert gaps[:, 64:68].all() and gaps[48:54, :].all()  # tiny: modules 64 x 48, gaps 4 and 6
    assert (frames[:, mask != 0] == 0xFFFF).all()
    assert (frames[:, mask == 0] < 0xFFFF).all()
    # unflagged hot pixels: at or above the count cutoff in every frame
    hot = (frames[:, mask == 0] >= 12440).all(axis=0)
    assert 1 <= hot.sum() <= 20


def test_deterministic_for_a_seed(tmp_path):
    a = make_dataset(tmp_path / "a", "tiny", 4, 4, seed=5)
    b = make_dataset(tmp_path / "b", "tiny", 4, 4, seed=5)
    c = make_dataset(tmp_path / "c", "tiny", 4, 4, seed=6)
    read = lambda m: h5py.File(m, "r")[block_path(1)][()]  # noqa: E731
    assert np.array_equal(read(a), read(b))
    assert not np.array_equal(read(a), read(c))
    time.sleep(1.1)  # HDF5 records objects' times in seconds, where a writer lets it
    (tmp_path / "d").mkdir()
    d = make_dataset(tmp_path / "d" / "a", "tiny", 4, 4, seed=5)  # (the same file names)
    assert open(a, "rb").read() == open(d, "rb").read()  # the same bytes, master too


def test_refuses_to_overwrite(tmp_path):
    make_dataset(tmp_path / "x", "tiny", 2, 2)
    with pytest.raises(synth.OutputError, match="exists"):
        make_dataset(tmp_path / "x", "tiny", 2, 2)
    make_dataset(tmp_path / "x", "tiny", 2, 2, overwrite=True)


def test_console_script(tmp_path, capsys):
    assert (
        synth.main(
            [str(tmp_path / "cli"), "--detector", "tiny", "-n", "3", "--frames-per-file", "2"]
        )
        == 0
    )
    assert capsys.readouterr().out.strip().endswith("cli_master.h5")
    assert synth.main([str(tmp_path / "cli"), "--detector", "tiny", "-n", "3"]) == 2
    assert "exists" in capsys.readouterr().err


def test_console_script_prints_a_line_per_data_file_to_a_batch_log(tmp_path):
    """stdout a pipe (not a terminal, as in a batch job): a line per data file as it is
    written, the master's path last."""
    exe = Path(sys.executable).parent / "lbnl-synth"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "lbnl_dask.synth"]
    p = subprocess.run(
        cmd + [str(tmp_path / "log"), "--detector", "tiny", "-n", "25", "--frames-per-file", "10"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert [ln.split(" (")[0] for ln in lines[:-1]] == [
        f"lbnl-synth: wrote log_data_00000{k}.h5" for k in (1, 2, 3)
    ]
    assert "(frames 21-25 of 25, file 3/3" in lines[2]
    assert lines[-1] == str(tmp_path / "log_master.h5")


def test_help_describes_every_option(capsys):
    with pytest.raises(SystemExit):
        synth.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in (
        "detector model",
        "(default: eiger_4m)",
        "frames in the dataset (default: 100)",
        "frames per data file",
        "pixel type of the frames (default: uint32)",
        "HDF5 filter of the data files (default: bslz4)",
        "random seed",
        "replace existing files",
    ):
        assert text in out, text


def test_background_from_the_command_line(tmp_path, capsys):
    """Datasets across the range beamlines see: ~0.003 to ~6 counts/pixel/frame."""
    from lbnl_dask import open_dataset
    from lbnl_dask.synth import main

    means = {}
    for bg in (0.003, 6.0):
        assert main([str(tmp_path / f"b{bg}"), "--detector", "tiny", "-n", "4",
                     "--background", str(bg)]) == 0  # fmt: skip
        ds = open_dataset(capsys.readouterr().out.split()[-1])
        f = ds.frames.compute().astype(float)
        valid = (np.asarray(ds.pixel_mask()) == 0) & (f < 1000).all(axis=0)
        means[bg] = f[:, valid].mean()
    assert means[0.003] < 0.2 and means[6.0] > 30 * means[0.003]  # spots add to both
    assert main([str(tmp_path / "neg"), "--background", "-1"]) == 2


def test_a_background_near_the_cutoff_is_said(tmp_path, capsys):
    """Counts at the cutoff are overloads, and uint16 clips them at 65534: said, not quiet."""
    from lbnl_dask.synth import main

    assert main([str(tmp_path / "x"), "--detector", "tiny", "-n", "1", "--dtype", "uint16",
                 "--background", "1e5"]) == 0  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "count cutoff (12440)" in err and "65534" in err
    assert main([str(tmp_path / "y"), "--detector", "tiny", "-n", "1", "--background", "6"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("args,msg", [
    (["--background", "nan"], "background must be 0 to 1e+06 counts/pixel/frame, not nan"),
    (["--background", "1e30"], "background must be 0 to 1e+06"),  # (numpy: lam too large)
    (["--background-floor", "inf"], "background_floor must be 0 to 1e+06"),
])  # fmt: skip
def test_backgrounds_that_cannot_be_drawn_are_one_line_and_write_nothing(tmp_path, capsys,
                                                                         args, msg):  # fmt: skip
    from lbnl_dask.synth import main

    assert main([str(tmp_path / "x"), "--detector", "tiny", "-n", "2", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and msg in err and os.listdir(tmp_path) == []


def test_outputs_that_cannot_be_written_are_one_line_and_overwrite_leaves_one_dataset(
    tmp_path, capsys
):
    """A prefix that is a folder or under a file had ended in a traceback; --overwrite of a
    longer dataset left its later data files beside the new master."""
    from lbnl_dask.synth import main

    (tmp_path / "afile").write_text("x")
    for prefix, msg in ((tmp_path / "afile" / "x", "cannot create the output folder"),
                        (str(tmp_path / "d") + os.sep, "give a prefix for the files")):  # fmt: skip
        assert main([str(prefix), "--detector", "tiny", "-n", "2"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and msg in err, err
    x = str(tmp_path / "s" / "x")
    assert main([x, "--detector", "tiny", "-n", "6", "--frames-per-file", "2"]) == 0
    assert main([x, "--detector", "tiny", "-n", "2", "--frames-per-file", "2", "--overwrite"]) == 0
    assert sorted(os.listdir(tmp_path / "s")) == ["x_data_000001.h5", "x_master.h5",
                                                  "x_reflections.csv"]  # fmt: skip


def test_a_negative_seed_is_one_line(tmp_path, capsys):
    from lbnl_dask.synth import main

    assert main([str(tmp_path / "x"), "--detector", "tiny", "--seed", "-1"]) != 0
    assert "the seed must be 0 or more, not -1" in capsys.readouterr().err
