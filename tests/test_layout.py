"""The file layout module: the Dectris paths and names, and the filters h5py records."""

import h5py
import hdf5plugin
import numpy as np
import pytest

from lbnl_dask import layout as L
from lbnl_dask import synth, writer
from lbnl_dask.options import OutputOptions


def test_paths_are_the_dectris_filewriter_ones():
    # spelled out: every reader, writer and test takes them from layout, so pin them here
    assert L.DATA_GROUP == "/entry/data" and L.DATA == "/entry/data/data"
    assert L.DET == "/entry/instrument/detector"
    assert L.SPEC == "/entry/instrument/detector/detectorSpecific"
    assert L.PIXEL_MASK == "/entry/instrument/detector/detectorSpecific/pixel_mask"
    assert L.PIXEL_MASKS[0] == L.PIXEL_MASK  # the one Neggia reads is looked for first
    assert L.WAVELENGTHS[1] == "/entry/instrument/beam/incident_wavelength"
    assert L.OMEGA_GROUPS[0] == L.GONIOMETER == "/entry/sample/goniometer"


@pytest.mark.parametrize("k", [1, 2, 10, 999, 999999])
def test_block_name_round_trip(k):
    name = L.block_name(k)
    assert len(name) == len("data_000001") and L.BLOCK_RE.match(name)
    assert L.block_number(name) == k
    assert L.block_path(k) == f"/entry/data/{name}"
    assert L.data_file_name("x", k) == f"x_{name}.h5"


def test_block_names():
    assert L.block_name(1) == "data_000001"
    assert L.data_file_name("dir/run", 3) == "dir/run_data_000003.h5"
    for other in ("data", "data_1", "data_0000001", "data_00000a", "xdata_000001", "data_000001 "):
        assert L.block_number(other) is None and not L.BLOCK_RE.match(other)
    names = sorted(L.block_name(k) for k in (10, 2, 1))  # sorting names sorts the numbers
    assert names == ["data_000001", "data_000002", "data_000010"]


def test_filter_ids_are_hdf5plugins():
    assert (hdf5plugin.BSHUF_ID, hdf5plugin.LZ4_ID, hdf5plugin.BLOSC_ID) == (32008, 32004, 32001)
    ids = {n: c.filter_id for n, c in L.FILTERS.items()}
    assert ids == {
        "bslz4": 32008,
        "bszstd": 32008,
        "bshuf": 32008,
        "zstd": 32001,
        "none": None,
        "sz3": 32024,
        "lz4": 32004,
    }
    for c in L.FILTERS.values():  # what -c prints names the filter that ends up in the file
        assert c.filter_id is None or f"HDF5 filter {c.filter_id}" in c.note


BITSHUFFLE_CODE = {"bslz4": L.BSHUF_LZ4, "bszstd": L.BSHUF_ZSTD, "bshuf": L.BSHUF_NONE}
LEVEL_AT = {"bszstd": 5, "zstd": 4}  # the cd_values entry holding the -l level


@pytest.mark.parametrize("name", list(L.FILTERS))
def test_table_filter_is_what_h5py_records(tmp_path, name):
    c = L.FILTERS[name]
    level = None if c.levels is None else c.levels[1]
    frames = np.arange(3 * 8 * 16, dtype=np.uint16).reshape(3, 8, 16) % 1000
    # the lossy one's filter needs its bound (-c sz3 --sz3 2), and stores int32
    filters = OutputOptions(compression=name, sz3_bound=2).storage_filter() if c.lossy else None
    with h5py.File(tmp_path / "f.h5", "w") as f:
        data = frames.astype(np.int32) if c.lossy else frames
        f.create_dataset("d", data=data, chunks=(1, 8, 16), **(filters or c.make(level)))
    with h5py.File(tmp_path / "f.h5", "r") as f:
        d = f["d"]
        plist = d.id.get_create_plist()
        if c.lossy:
            assert np.abs(d[()] - data).max() <= 2
        else:
            np.testing.assert_array_equal(d[()], frames)
        if c.filter_id is None:
            assert plist.get_nfilters() == 0
            return
        assert plist.get_nfilters() == 1
        fid, _, cd, _ = plist.get_filter(0)
    assert fid == c.filter_id
    if name in BITSHUFFLE_CODE:
        assert cd[L.BSHUF_CD_COMPRESSOR] == BITSHUFFLE_CODE[name]
    if name in LEVEL_AT:
        assert cd[LEVEL_AT[name]] == level


def test_lossless_filter_is_the_table():
    for name, c in L.FILTERS.items():
        if c.output:
            assert writer.lossless_filter(name) == c.make(L.DEFAULT_LEVEL if c.levels else None)
    assert writer.lossless_filter(None) == writer.lossless_filter("BSLZ4")  # default, any case
    assert writer.lossless_filter("bszstd", 7) == L.FILTERS["bszstd"].make(7)


def test_derived_tables():
    assert list(writer.COMPRESSIONS) == ["bslz4", "bszstd", "bshuf", "zstd", "none", "sz3"]
    assert [n for n, c in L.FILTERS.items() if c.lossy] == ["sz3"]
    assert writer.COMPRESSIONS is L.COMPRESSIONS and writer.XDS_READABLE is L.XDS_READABLE
    assert writer.XDS_READABLE == {"bslz4", "none"}
    assert sorted(synth.COMPRESSIONS) == ["bslz4", "lz4", "none"]
    assert writer.JOB_ATTR == L.JOB_ATTR == "lbnl_dask_job"


def test_nx_group_fixed_length_ascii(tmp_path):
    with h5py.File(tmp_path / "g.h5", "w") as f:
        L.nx_group(f, L.ENTRY)
        det = L.nx_group(f, L.DET)  # intermediate groups get no class
        L.nx_group(det, "custom", "NXcollection")
        with pytest.raises(KeyError):
            L.nx_group(f, "/unknown")
    with h5py.File(tmp_path / "g.h5", "r") as f:
        assert f[L.ENTRY].attrs[L.NX_CLASS] == b"NXentry"
        assert f[L.DET].attrs[L.NX_CLASS] == b"NXdetector"
        assert f[L.DET + "/custom"].attrs[L.NX_CLASS] == b"NXcollection"
        assert L.NX_CLASS not in f[L.INSTRUMENT].attrs
        t = f[L.DET].attrs.get_id(L.NX_CLASS).get_type()
        assert not t.is_variable_str() and t.get_cset() == h5py.h5t.CSET_ASCII
