"""lbnl-validate: passes our outputs and the synthetic input, fails each broken rule."""
import os

import h5py
import hdf5plugin
import numpy as np
import pytest

import lbnl_dask
from lbnl_dask.validate import main, validate

SPEC = "/entry/instrument/detector/detectorSpecific"


@pytest.fixture()
def good(tiny, tmp_path):
    rep = lbnl_dask.compress(tiny, str(tmp_path / "o"), bin_range=2, sum_range=2, hcomp_scale=4, data_block_size=4,
                             scheduler="threads")
    return rep.master


def test_valid_output_and_input(good, tiny, capsys):
    assert main([good]) == 0
    out = capsys.readouterr().out
    assert "[FAIL]" not in out and "[ OK ] decoded all 10 frames" in out
    assert not validate(tiny).failed


def test_compress_validate_option(tiny, tmp_path):
    rep = lbnl_dask.compress(tiny, str(tmp_path / "v"), bin_range=2, validate=True, scheduler="threads")
    assert "[ OK ] decoded all 20 frames" in rep.validation


def lines(master):
    return str(validate(master))


def test_unequal_blocks_fail(good):
    d = os.path.dirname(good)
    with h5py.File(os.path.join(d, "o_000002.h5"), "r+") as f:
        f["/entry/data/data"].resize(3, axis=0)
    with h5py.File(good, "r+") as f:
        f[SPEC + "/nimages"][()] = 9
    text = lines(good)
    assert "[FAIL] block sizes [4, 3, 2]" in text


def test_frame_count_mismatch_fails(good):
    with h5py.File(good, "r+") as f:
        f[SPEC + "/ntrigger"][()] = 2
    assert "[FAIL] nimages x ntrigger = 20, but the data files hold 10 frames" in lines(good)


def test_pixel_mask_rules(good):
    with h5py.File(good, "r+") as f:
        m = f[SPEC + "/pixel_mask"][()]
        del f[SPEC + "/pixel_mask"]
        f.create_dataset(SPEC + "/pixel_mask", data=m.astype(np.uint8), chunks=True, compression="gzip")
    text = lines(good)
    assert "[FAIL] pixel_mask type uint8" in text and "chunked or filtered" in text


def test_variable_length_nx_class_fails(good):
    with h5py.File(good, "r+") as f:
        f["/entry/instrument"].attrs["NX_class"] = "NXinstrument"  # h5py writes variable-length UTF-8
    assert "[FAIL] NX_class attributes not fixed-length ASCII in ['entry/instrument']" in lines(good)


def test_missing_data_file_and_geometry(good):
    os.unlink(os.path.join(os.path.dirname(good), "o_000003.h5"))
    with h5py.File(good, "r+") as f:
        del f["/entry/instrument/detector/x_pixel_size"]
    text = lines(good)
    assert "o_000003.h5 is missing" in text and "[FAIL] x_pixel_size is missing" in text


def test_filters_xds_cannot_read(tiny, tmp_path):
    rep = lbnl_dask.compress(tiny, str(tmp_path / "z"), compression="zstd", scheduler="threads")
    assert "[FAIL] filter: HDF5 filter(s) [32001]" in lines(rep.master)
    rep = lbnl_dask.compress(tiny, str(tmp_path / "s"), compression="bshuf", scheduler="threads")
    text = lines(rep.master)
    assert "[WARN] filter: bitshuffle only" in text and not validate(rep.master).failed


def test_wrong_chunks_fail(good, tmp_path):
    d = os.path.dirname(good)
    p = os.path.join(d, "o_000001.h5")
    with h5py.File(p, "r") as f:
        a = f["/entry/data/data"][()]
        attrs = dict(f["/entry/data/data"].attrs)
    with h5py.File(p, "w") as f:
        ds = f.create_dataset("/entry/data/data", data=a, chunks=(2,) + a.shape[1:], **hdf5plugin.Bitshuffle())
        for k, v in attrs.items():
            ds.attrs[k] = v
    assert "[FAIL] data_000001: chunks (2, 51, 66)" in lines(good)


def test_corrupt_frame_fails_decoding(good):
    p = os.path.join(os.path.dirname(good), "o_000002.h5")
    with h5py.File(p, "r") as f:
        off = f["/entry/data/data"].id.get_chunk_info(1).byte_offset
    with open(p, "r+b") as fh:
        fh.seek(off)
        fh.write(b"\xff" * 64)
    assert main([good]) == 1
