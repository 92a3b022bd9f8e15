"""The lazy reader: metadata, frames equal to h5py's, ranges, chunking, schedulers, errors."""

import os
import shutil

import dask
import dask.array as da
import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest

import lbnl_dask
from lbnl_dask.errors import (
    DataFileError,
    ImageRangeError,
    InputFileError,
    MissingDataFileError,
    NotEigerError,
    TruncatedDataError,
)
from lbnl_dask.layout import BLOCK_RE, DATA, DATA_GROUP, SPEC, data_file_name
from tests.helpers import NEXGEN_MASTER, write_master


def h5py_frames(master):
    """Reference: every frame through plain h5py, following the master's links."""
    with h5py.File(master, "r") as f:
        keys = sorted(k for k in f[DATA_GROUP] if BLOCK_RE.match(k))
        return np.concatenate([f[DATA_GROUP][k][()] for k in keys])


def test_open_is_lazy_and_chunked_by_data_file(tiny):
    ds = lbnl_dask.open_dataset(tiny)
    assert isinstance(ds.frames, da.Array)
    assert ds.frames.shape == (20, 102, 132)
    assert ds.frames.dtype == np.uint16
    assert ds.frames.chunks[0] == (10, 10)
    assert ds.meta.nimages == 20 and ds.meta.ntrigger == 1
    np.testing.assert_array_equal(ds.frames.compute(), h5py_frames(tiny))


def test_padded_frames_are_the_frames_with_zeros(tiny, tmp_path):
    """Zero-padded to multiples of b while reading: rows only (bitshuffle frames decoded
    into the padded array), rows and columns, none; and through HDF5's own filter (zstd)."""
    ds = lbnl_dask.open_dataset(tiny, datablock=4)
    ref = h5py_frames(tiny)  # (20, 102, 132)
    for b in (1, 4, 5):
        got = ds.padded_frames(b)
        want = np.pad(ref, [(0, 0), (0, -102 % b), (0, -132 % b)])
        assert got.shape == want.shape and got.chunks[0] == ds.frames.chunks[0]
        np.testing.assert_array_equal(got.compute(), want)
    part = lbnl_dask.open_dataset(tiny, 3, 17, datablock=4)  # a range across both data files
    np.testing.assert_array_equal(
        part.padded_frames(4).compute(), np.pad(ref[2:17], [(0, 0), (0, 2), (0, 0)])
    )
    rep = lbnl_dask.compress(tiny, str(tmp_path / "z"), compression="zstd", scheduler="sync")
    out = lbnl_dask.open_dataset(rep.master)
    assert not out.blocks[0].direct
    np.testing.assert_array_equal(
        out.padded_frames(5).compute(), np.pad(out.frames.compute(), [(0, 0), (0, 3), (0, 3)])
    )


def test_nothing_read_before_compute(tiny, monkeypatch):
    calls = []
    real = lbnl_dask.eiger.FrameSource.read
    monkeypatch.setattr(
        lbnl_dask.eiger.FrameSource,
        "read",
        lambda self, a, b: calls.append((a, b)) or real(self, a, b),
    )
    ds = lbnl_dask.open_dataset(tiny, datablock=4)
    frames = ds.frames[2:6]
    assert calls == []
    frames.compute(scheduler="sync")
    assert sorted(calls) == [(2, 4), (4, 6)]  # only frames 3-6, from their two chunks


@pytest.mark.parametrize("first,last,block", [(1, 20, 3), (3, 17, 4), (11, 11, None), (5, None, 2)])
def test_image_range_and_datablock(tiny, first, last, block):
    ref = h5py_frames(tiny)
    ds = lbnl_dask.open_dataset(tiny, first_image=first, last_image=last, datablock=block)
    stop = 20 if last is None else last
    assert ds.frames.shape[0] == stop - first + 1
    if block:
        assert all(c == block for c in ds.frames.chunks[0][:-1])
    np.testing.assert_array_equal(ds.frames.compute(), ref[first - 1 : stop])


def test_data_files_of_different_lengths_uint32(tiny32):
    ds = lbnl_dask.open_dataset(tiny32, datablock=4)
    assert [b.n for b in ds.blocks] == [5, 5, 4]
    assert [(b.image_nr_low, b.image_nr_high) for b in ds.blocks] == [(1, 5), (6, 10), (11, 14)]
    assert ds.frames.dtype == np.uint32
    np.testing.assert_array_equal(ds.frames.compute(), h5py_frames(tiny32))


def test_threads_and_local_cluster_processes_agree(tiny32):
    from distributed import Client, LocalCluster

    ds = lbnl_dask.open_dataset(tiny32, first_image=2, last_image=13, datablock=3)
    ref = h5py_frames(tiny32)[1:13]
    with dask.config.set(scheduler="threads"):
        np.testing.assert_array_equal(ds.frames.compute(), ref)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cl,
        Client(cl) as client,
    ):
        got = client.compute(ds.frames.sum(axis=(1, 2), dtype=np.uint64)).result()
        np.testing.assert_array_equal(got, ref.sum(axis=(1, 2), dtype=np.uint64))
        np.testing.assert_array_equal(client.compute(ds.frames).result(), ref)


def test_single_data_dataset_in_master(tmp_path, tiny):
    ref = h5py_frames(tiny)
    path = tmp_path / "single_master.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(
            DATA, data=ref[:7], chunks=(1,) + ref.shape[1:], **hdf5plugin.Bitshuffle(cname="lz4")
        )
        f[SPEC + "/nimages"] = np.uint32(7)
    ds = lbnl_dask.open_dataset(path, datablock=2)
    np.testing.assert_array_equal(ds.frames.compute(), ref[:7])


# ---------------------------------------------------------------- real Dectris files
@pytest.mark.parametrize(
    "name,dtype",
    [
        ("datasets_eiger1/eiger1_testmode10_2datafiles_4images_bslz4", "uint16"),
        ("datasets_eiger1/eiger1_testmode10_2datafiles_4images_lz4", "uint16"),
        ("datasets_eiger2/eiger2_simread7_2datafiles_4images_bslz4", "uint16"),
        ("datasets_eiger2/eiger2_simread7_2datafiles_4images_bslz4_uint8", "uint8"),
        ("datasets_eiger2/eiger2_simread7_2datafiles_4images_bslz4_uint32", "uint32"),
        ("datasets_eiger2/eiger2_simread7_2datafiles_4images_lz4", "uint16"),
    ],
)
def test_real_dectris_data_files(tmp_path, realdata, name, dtype):
    files = [realdata / "dectris-h5-testfiles" / data_file_name(name, k) for k in (1, 2)]
    master = write_master(tmp_path / "real_master.h5", files, nimages=4)
    ref = []
    for p in files:
        with h5py.File(p, "r") as f:
            ref.append(f[DATA][()])
    ref = np.concatenate(ref)
    ds = lbnl_dask.open_dataset(master, datablock=1)
    assert ds.frames.dtype == np.dtype(dtype)
    # image_nr_low/high are int32 in the EIGER files and uint64 in the EIGER2 files
    assert [(b.image_nr_low, b.image_nr_high) for b in ds.blocks] == [(1, 2), (3, 4)]
    np.testing.assert_array_equal(ds.frames.compute(), ref)
    np.testing.assert_array_equal(lbnl_dask.open_dataset(master, 2, 3).frames.compute(), ref[1:3])


def test_real_artificial_small_master(realdata):
    master = realdata / "dectris-h5-testfiles/dataset_artificial_small_001/test_master.h5"
    ds = lbnl_dask.open_dataset(master)
    assert ds.meta.x_pixel_size == pytest.approx(0.25) and ds.meta.y_pixel_size == pytest.approx(
        0.5
    )
    np.testing.assert_array_equal(ds.frames.compute(), h5py_frames(master))
    assert ds.pixel_mask().shape == (13, 11)


def test_real_eiger9m_master_metadata_and_missing_data(realdata):
    master = realdata / "dials-data-files/dectris_eiger_master.h5"
    ds = lbnl_dask.open_dataset(master)
    m = ds.meta
    assert (m.nx, m.ny) == (3110, 3269)
    assert m.x_pixel_size == pytest.approx(75e-6)
    assert m.beam_center_x == pytest.approx(1607.415, rel=1e-6)
    assert m.beam_center_y == pytest.approx(1586.4314, rel=1e-6)
    assert m.detector_distance == pytest.approx(0.134255, rel=1e-6)
    assert m.wavelength == pytest.approx(0.9801122, rel=1e-6)
    assert m.count_time == pytest.approx(0.00499, rel=1e-5)
    assert m.countrate_cutoff == 12440
    assert m.eiger_fw_version == "eiger-1.6.4-199.git97ffde5.release"
    assert m.description == "Dectris Eiger 9M" and m.detector_number == "E-18-0102"
    assert m.omega_increment == pytest.approx(0.5)
    with pytest.raises(MissingDataFileError, match=data_file_name("dectris_eiger", 1)):
        ds.frames


def test_real_nexgen_nxmx_master():
    master = NEXGEN_MASTER  # committed with the tests: runs without the real-data folder
    m = lbnl_dask.read_meta(master)
    assert m.nimages == 240 and m.ntrigger == 1
    assert (m.nx, m.ny) == (2068, 2162)
    assert m.saturation_value == 46051
    assert m.detector_distance == pytest.approx(0.391228, rel=1e-5)
    assert m.wavelength == pytest.approx(0.97625, rel=1e-4)
    assert m.omega.shape == (240,)
    with pytest.raises(MissingDataFileError, match="xrc_209_000001.h5"):
        lbnl_dask.open_dataset(master).frames


# ---------------------------------------------------------------- errors
def test_missing_path(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        lbnl_dask.open_dataset(tmp_path / "nope_master.h5")


def test_directory(tmp_path):
    with pytest.raises(InputFileError, match="is a directory"):
        lbnl_dask.open_dataset(tmp_path)


def test_not_hdf5(tmp_path):
    p = tmp_path / "x_master.h5"
    p.write_text("hello")
    with pytest.raises(InputFileError, match=f"{p}: not an HDF5 file"):
        lbnl_dask.open_dataset(p)


def test_hdf5_without_entry_data(tmp_path):
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f["x"] = 1
    with pytest.raises(NotEigerError, match=f"no {DATA_GROUP}"):
        lbnl_dask.open_dataset(p)


def test_missing_data_file_is_named(tmp_path, tiny32):
    d = tmp_path / "copy"
    shutil.copytree(os.path.dirname(tiny32), d)
    (d / data_file_name("t32", 2)).unlink()
    with pytest.raises(MissingDataFileError, match=data_file_name("t32", 2)):
        lbnl_dask.open_dataset(d / "t32_master.h5").frames


def test_a_data_file_that_is_a_broken_symbolic_link_is_named_so(tmp_path, tiny32):
    d = tmp_path / "copy"
    shutil.copytree(os.path.dirname(tiny32), d)
    second = d / data_file_name("t32", 2)
    second.unlink()
    second.symlink_to("/nowhere/t32_data_000002.h5")
    with pytest.raises(MissingDataFileError, match="is a symbolic link to /nowhere/t32_data"):
        lbnl_dask.open_dataset(d / "t32_master.h5").frames


def _as_virtual_dataset(master, keep_files=None):
    """The master's data_NNNNNN links replaced by one virtual dataset over the data files
    ``keep_files`` names (1-based; None: all) maps, as nexgen writes."""
    with h5py.File(master, "r+") as f:
        g = f[DATA_GROUP]
        names = sorted(k for k in g if BLOCK_RE.match(k))
        parts = [(g.get(k, getlink=True).filename, g[k].shape) for k in names]
        n = sum(shape[0] for _, shape in parts)
        layout = h5py.VirtualLayout((n,) + parts[0][1][1:], g[names[0]].dtype)
        at = 0
        for k, (fname, shape) in enumerate(parts, start=1):
            if keep_files is None or k in keep_files:
                layout[at : at + shape[0]] = h5py.VirtualSource(fname, DATA, shape=shape)
            at += shape[0]
        for k in names:
            del g[k]
        g.create_virtual_dataset("data", layout, fillvalue=0)


def test_a_virtual_dataset_reads_only_files_that_are_there(tmp_path, tiny32):
    """HDF5 reads the frames of a missing source file, or of none, as zeros: refused."""
    d = tmp_path / "copy"
    shutil.copytree(os.path.dirname(tiny32), d)
    master = str(d / "t32_master.h5")
    _as_virtual_dataset(master)
    frames = lbnl_dask.open_dataset(master).frames.compute()
    np.testing.assert_array_equal(frames, h5py_frames(tiny32))  # whole: read as it was
    (d / data_file_name("t32", 2)).unlink()
    with pytest.raises(MissingDataFileError, match=data_file_name("t32", 2) + ": data file "
                       "mapped by the virtual dataset /entry/data/data"):  # fmt: skip
        lbnl_dask.open_dataset(master).frames
    shutil.copytree(os.path.dirname(tiny32), tmp_path / "part")
    master = str(tmp_path / "part" / "t32_master.h5")
    _as_virtual_dataset(master, keep_files=(1,))
    with pytest.raises(TruncatedDataError, match="maps 5 of its 14 frames"):
        lbnl_dask.open_dataset(master).frames


def _with_frame_unwritten(tmp_path, tiny32, chunked: bool, **filters):
    """A copy of tiny32 whose second data file was written as a writer that stopped leaves
    it: its third frame's chunk never written (``chunked``), or nothing written at all
    (contiguous storage never allocated). Returns the copy's folder."""
    d = tmp_path / "copy"
    shutil.copytree(os.path.dirname(tiny32), d)
    path = d / data_file_name("t32", 2)
    with h5py.File(path, "r") as f:
        a, attrs = f[DATA][()], dict(f[DATA].attrs)
    path.unlink()
    with h5py.File(path, "w") as f:
        chunks = (1,) + a.shape[1:] if chunked else None
        ds = f.create_dataset(DATA, shape=a.shape, dtype=a.dtype, chunks=chunks, **filters)
        ds.attrs.update(attrs)
        for i in range(len(a)) if chunked else ():
            if i != 2:
                ds[i] = a[i]
    return d


@pytest.mark.parametrize("chunked", [True, False])
def test_a_frame_never_written_is_refused(tmp_path, tiny32, chunked):
    """A file writer that stopped mid-file leaves chunks (or contiguous storage) never
    written, which HDF5 reads as zeros without an error (bitshuffle-LZ4 chunks are read raw
    and were refused already; an uncompressed or LZ4 file was not)."""
    d = _with_frame_unwritten(tmp_path, tiny32, chunked)
    ds = lbnl_dask.open_dataset(d / "t32_master.h5")
    at = 3 if chunked else 1
    with pytest.raises(TruncatedDataError, match=f"frame {at} of /entry/data/data was never "
                                                 "written"):  # fmt: skip
        ds.frames.compute()
    np.testing.assert_array_equal(ds.frames[:5].compute(), h5py_frames(tiny32)[:5])  # file 1


def test_data_files_after_the_last_image_asked_for_are_not_opened(tmp_path, tiny32):
    """A run of the first images needs only the files that hold them: the later ones may be
    missing (moved away, on tape) or unreadable (still being written); a missing file the
    range needs is an error, and so is a short file among those read (frames would shift)."""
    d = tmp_path / "copy"
    shutil.copytree(os.path.dirname(tiny32), d)
    (d / data_file_name("t32", 2)).unlink()
    (d / data_file_name("t32", 3)).write_bytes(b"not HDF5")
    master = d / "t32_master.h5"
    ds = lbnl_dask.open_dataset(master, 2, 5)
    np.testing.assert_array_equal(
        ds.frames.compute(), lbnl_dask.open_dataset(tiny32, 2, 5).frames.compute()
    )
    assert ds.shape == (4, 102, 132) and len(ds.blocks) == 1
    assert ds.unread_after.endswith(data_file_name("t32", 2))
    assert ds.input_files() == [str(master), ds.blocks[0].path]  # the job's token: these
    assert ds.with_datablock(2).frames.shape == (4, 102, 132)
    assert lbnl_dask.open_dataset(tiny32).unread_after is None
    for last in (6, None):  # image 6 is in the second file; None: every image
        with pytest.raises(MissingDataFileError, match=data_file_name("t32", 2)):
            lbnl_dask.open_dataset(master, 1, last).frames


def test_a_short_data_file_before_unread_ones_is_an_error(tmp_path, tiny32):
    """With the later files unread, the master's image count cannot catch a short file among
    those read: each must then hold as many frames as the first (only a last file is short)."""
    d = tmp_path / "copy"
    shutil.copytree(os.path.dirname(tiny32), d)
    first = d / data_file_name("t32", 1)
    with h5py.File(first, "a") as f:  # file 1 keeps 3 of its 5 frames
        frames = f[DATA][:3]
        attrs = dict(f[DATA].attrs)
        del f[DATA]
        f.create_dataset(DATA, data=frames, chunks=(1,) + frames.shape[1:])
        f[DATA].attrs.update(attrs)
    name = data_file_name("t32", 1)
    with pytest.raises(TruncatedDataError, match=f"{name}: holds 3 frames at images 1-3, but "
                       "records images 1-5, and it is not the last"):  # fmt: skip
        lbnl_dask.open_dataset(d / "t32_master.h5", 1, 6).frames
    for k in (1, 2):  # without image numbers, the sizes tell
        with h5py.File(d / data_file_name("t32", k), "a") as f:
            for key in ("image_nr_low", "image_nr_high"):
                del f[DATA].attrs[key]
    with pytest.raises(TruncatedDataError, match=f"{data_file_name('t32', 2)}: holds 5 frames "
                       f"where .*{name} holds 3"):  # fmt: skip
        lbnl_dask.open_dataset(d / "t32_master.h5", 1, 6).frames


def _copy(tiny32, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(os.path.dirname(tiny32), d)
    return d, d / "t32_master.h5"


def _number(path, low, high):
    with h5py.File(path, "a") as f:
        f[DATA].attrs.update(image_nr_low=np.uint64(low), image_nr_high=np.uint64(high))


def test_a_data_file_linked_twice_is_refused(tmp_path, tiny32):
    """Frames 6-10 as copies of 1-5 (a master edited by hand) would pass every other check."""
    d, master = _copy(tiny32, tmp_path)
    with h5py.File(master, "a") as f:
        del f[DATA_GROUP]["data_000002"]
        f[DATA_GROUP]["data_000002"] = h5py.ExternalLink(data_file_name("t32", 1), DATA)
    with pytest.raises(DataFileError, match=f"{data_file_name('t32', 1)}: linked twice from "
                       ".* \\(also as data file 1\\)"):  # fmt: skip
        lbnl_dask.open_dataset(master).frames
    for k in (1, 2, 3):  # without image numbers, too
        with h5py.File(d / data_file_name("t32", k), "a") as f:
            f[DATA].attrs.pop("image_nr_low", None)
            f[DATA].attrs.pop("image_nr_high", None)
    with pytest.raises(DataFileError, match="linked twice"):
        lbnl_dask.open_dataset(master, 1, 7).frames  # images 6-7 are in the second link
    assert lbnl_dask.open_dataset(master, 1, 3).frames.shape[0] == 3  # not read: not judged


@pytest.mark.parametrize(
    "numbers",
    [
        [(1, 5), (4, 8), (9, 12)],  # an overlap
        [(6, 10), (1, 5), (11, 14)],  # swapped
        [(1, 5), (10, 6), (11, 14)],  # high below low
        [(1, 5), (1, 5), (6, 9)],  # the same numbers twice
    ],
)
def test_image_numbers_that_contradict_the_order_are_refused(tmp_path, tiny32, numbers):
    d, master = _copy(tiny32, tmp_path)
    for k, (lo, hi) in enumerate(numbers, start=1):
        _number(d / data_file_name("t32", k), lo, hi)
    bad = next(k for k in (2, 3) if numbers[k - 1][0] <= numbers[k - 2][1]
               or numbers[k - 1][1] < numbers[k - 1][0])  # fmt: skip
    lo, hi = numbers[bad - 1]
    with pytest.raises(DataFileError, match=f"{data_file_name('t32', bad)}: records images "
                       f"{lo}-{hi} after .* out of order or overlap"):  # fmt: skip
        lbnl_dask.open_dataset(master).frames


def test_a_gap_in_the_image_numbers_is_a_note(tmp_path, tiny32):
    """Triggers numbered by angle (1-5, 901-905, 1801-1804: a collection script's
    renumbering): read in the master's order, and said."""
    d, master = _copy(tiny32, tmp_path)
    for k, (lo, hi) in enumerate([(1, 5), (901, 905), (1801, 1804)], start=1):
        _number(d / data_file_name("t32", k), lo, hi)
    ds = lbnl_dask.open_dataset(master)
    np.testing.assert_array_equal(ds.frames.compute(),
                                  lbnl_dask.open_dataset(tiny32).frames.compute())  # fmt: skip
    f1, f2, f3 = (data_file_name("t32", k) for k in (1, 2, 3))
    tail = "a gap in the numbers; the frames are read in the master's order"
    assert [w for w in ds.meta.warnings if "a gap in the numbers" in w] == [
        f"{f2} records images 901-905 after {d / f1}'s 1-5: {tail}",
        f"{f3} records images 1801-1804 after {d / f2}'s 901-905: {tail}",
    ]


def test_image_numbers_with_an_offset_are_read(tmp_path, tiny32):
    """A master linking files of images 101-114 (a series split by hand): the numbers follow
    one another, so the frames are the files' in order."""
    d, master = _copy(tiny32, tmp_path)
    for k, (lo, hi) in enumerate([(101, 105), (106, 110), (111, 114)], start=1):
        _number(d / data_file_name("t32", k), lo, hi)
    np.testing.assert_array_equal(lbnl_dask.open_dataset(master).frames.compute(),
                                  lbnl_dask.open_dataset(tiny32).frames.compute())  # fmt: skip


def test_a_short_data_file_is_named_when_all_are_read(tmp_path, tiny32):
    """Every file read: the short one is named (the master's count named the last one)."""
    d, master = _copy(tiny32, tmp_path)
    first = d / data_file_name("t32", 1)
    with h5py.File(first, "a") as f:  # file 1 keeps 3 of its 5 frames
        frames, attrs = f[DATA][:3], dict(f[DATA].attrs)
        del f[DATA]
        f.create_dataset(DATA, data=frames, chunks=(1,) + frames.shape[1:])
        f[DATA].attrs.update(attrs)
    with pytest.raises(TruncatedDataError, match=f"{data_file_name('t32', 1)}: holds 3 frames "
                       "at images 1-3, but records images 1-5"):  # fmt: skip
        lbnl_dask.open_dataset(master).frames


def test_data_shorter_than_master(tmp_path, tiny32):
    files = [os.path.join(os.path.dirname(tiny32), data_file_name("t32", k)) for k in (1, 2)]
    master = write_master(tmp_path / "m.h5", files, nimages=12)
    with pytest.raises(TruncatedDataError, match="hold 10 frames but the master"):
        lbnl_dask.open_dataset(master).frames


@pytest.mark.parametrize(
    "first,last,msg",
    [
        (0, None, "before image 1"),
        (5, 4, "after last image"),
        (1, 21, "beyond the 20 frames"),
        (21, None, "after last image"),
    ],
)
def test_image_range_errors(tiny, first, last, msg):
    with pytest.raises(ImageRangeError, match=msg):
        lbnl_dask.open_dataset(tiny, first, last).frames


def test_corrupt_chunk_is_reported(tmp_path, tiny):
    d = tmp_path / "c"
    shutil.copytree(os.path.dirname(tiny), d)
    data = d / data_file_name("tiny", 1)
    with h5py.File(data, "r") as f:
        offset = f[DATA].id.get_chunk_info(3).byte_offset
    with open(data, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * 64)
    ds = lbnl_dask.open_dataset(d / "tiny_master.h5", datablock=2)
    ds.frames[:2].compute()  # other chunks still read
    with pytest.raises(TruncatedDataError, match=f"{data.name}: cannot read frame 4 of"):
        ds.frames.compute()


def test_shape_and_rechunk_without_rereading(tiny32, monkeypatch):
    ds = lbnl_dask.open_dataset(tiny32, first_image=2)
    assert ds.shape == (13, 102, 132)
    blocks = ds.blocks
    monkeypatch.setattr(
        lbnl_dask.eiger, "_data_blocks", lambda *a: pytest.fail("data files opened again")
    )
    other = ds.with_datablock(4)
    assert other.blocks is blocks and other.frames.chunks[0] == (4, 4, 4, 1)
    np.testing.assert_array_equal(other.frames.compute(), ds.frames.compute())


@pytest.mark.parametrize("options", [dict(bin_range=2), dict(compression="sz3", sz3_bound=2.0)])
def test_a_damaged_chunk_of_our_own_output_is_caught_by_its_crc(tmp_path, tiny, options):
    """A few flipped bytes inside a chunk can decode without any error (bitshuffle-LZ4's
    literals, SZ3 always): read back as input, lbnl_dask's own files are checked against the
    CRC-32 they recorded, and lbnl-validate finds them even when the format fails XDS'."""
    from lbnl_dask.validate import validate

    rep = lbnl_dask.compress(tiny, str(tmp_path / "o"), scheduler="threads", fidelity=False,
                             **options)  # fmt: skip
    data = rep.data_files[0]
    ds = lbnl_dask.open_dataset(rep.master)
    before = ds.frames.compute()
    with h5py.File(data, "r") as f:
        info = f[DATA].id.get_chunk_info(3)
    with open(data, "r+b") as fh:  # the middle of frame 4's chunk, past any header
        fh.seek(info.byte_offset + info.size // 2)
        b = fh.read(4)
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(bytes(x ^ 0x01 for x in b))
    with pytest.raises(TruncatedDataError, match="frame 4's stored chunk no longer has the CRC"):
        lbnl_dask.open_dataset(rep.master).frames.compute()
    assert (lbnl_dask.open_dataset(rep.master).frames[:3].compute() == before[:3]).all()
    assert "[FAIL] 1 stored chunk(s) changed since written: o_000001.h5 frame 4" in str(
        validate(rep.master))  # fmt: skip


def test_frames_of_zeros_that_were_written_are_read(tmp_path):
    """Only storage never written is refused: written zeros (a dark frame), and compact or
    contiguous storage holding them, are frames like any other."""
    from lbnl_dask.eiger import _unwritten_frame

    zeros = np.zeros((3, 8, 8), np.uint16)
    with h5py.File(tmp_path / "z.h5", "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        h5py.h5d.create(f.id, b"compact", h5py.h5t.NATIVE_UINT16,
                        h5py.h5s.create_simple(zeros.shape), dcpl=dcpl)  # fmt: skip
        written = {
            "chunked": f.create_dataset("chunked", data=zeros, chunks=(1, 4, 8)),
            "contiguous": f.create_dataset("contiguous", data=zeros),
            "compact": f["compact"],
        }
        for name, d in written.items():
            assert _unwritten_frame(d, d[()], 0) is None, name
        d = f.create_dataset("partly", shape=(3, 8, 8), dtype=np.uint16, chunks=(1, 4, 8))
        d[0] = 1
        d[1, :4] = 0  # the frame's first chunk written (zeros), its second not
        assert _unwritten_frame(d, d[()], 0) == 1
        assert _unwritten_frame(d, d[2:], 2) == 2
        never = f.create_dataset("never", shape=(2, 8, 8), dtype=np.uint16)
        assert _unwritten_frame(never, never[()], 0) == 0


def test_virtual_sources_found_where_hdf5_finds_them(tmp_path, tiny32):
    """A source path that moved, with the file beside the master, is read (HDF5 looks
    there); a source in the same file (nexgen's '.') that is a link to a missing file, and an
    unlimited (SWMR) mapping, are judged as HDF5 reads them."""
    d = tmp_path / "copy"
    shutil.copytree(os.path.dirname(tiny32), d)
    master = str(d / "t32_master.h5")
    first = str(d / data_file_name("t32", 1))
    with h5py.File(first, "r") as f:
        n, shape, dtype = f[DATA].shape[0], f[DATA].shape[1:], f[DATA].dtype
    with h5py.File(master, "r+") as f:
        g = f[DATA_GROUP]
        for k in [k for k in g if BLOCK_RE.match(k)]:
            del g[k]
        g["ext"] = h5py.ExternalLink(data_file_name("t32", 1), DATA)
        f[SPEC + "/nimages"][()] = n  # (the first data file's frames only)
        moved = h5py.VirtualLayout((n,) + shape, dtype)
        moved[:] = h5py.VirtualSource("/nowhere/" + data_file_name("t32", 1), DATA, (n,) + shape)
        g.create_virtual_dataset("data", moved, fillvalue=0)
    frames = lbnl_dask.open_dataset(master).frames.compute()
    np.testing.assert_array_equal(frames, h5py_frames(tiny32)[:n])
    with h5py.File(master, "r+") as f:
        g = f[DATA_GROUP]
        del g["data"]
        dot = h5py.VirtualLayout((n,) + shape, dtype)
        dot[:] = h5py.VirtualSource(".", DATA_GROUP + "/ext", (n,) + shape)
        g.create_virtual_dataset("data", dot, fillvalue=0)
    np.testing.assert_array_equal(lbnl_dask.open_dataset(master).frames.compute(), frames)
    os.rename(first, first + ".away")
    with pytest.raises(MissingDataFileError, match="holds no dataset /entry/data/ext"):
        lbnl_dask.open_dataset(master).frames
    os.rename(first + ".away", first)
    with h5py.File(master, "r+") as f:
        g = f[DATA_GROUP]
        del g["data"]
        grow = h5py.VirtualLayout((n,) + shape, dtype, maxshape=(None,) + shape)
        src = h5py.VirtualSource(data_file_name("t32", 1), DATA, (n,) + shape,
                                 maxshape=(None,) + shape)  # fmt: skip
        grow[0 : h5py.h5s.UNLIMITED] = src[0 : h5py.h5s.UNLIMITED]
        g.create_virtual_dataset("data", grow, fillvalue=0)
    np.testing.assert_array_equal(lbnl_dask.open_dataset(master).frames.compute(), frames)


def test_a_virtual_datasets_source_frame_never_written_is_refused(tmp_path, tiny32):
    """nexgen's masters map the data files through a virtual dataset, read by HDF5's filter
    (not raw chunks): a data file whose writer stopped mid-file read as zeros through it."""
    d = _with_frame_unwritten(tmp_path, tiny32, True, **hdf5plugin.Bitshuffle())
    master = str(d / "t32_master.h5")
    _as_virtual_dataset(master)
    with pytest.raises(TruncatedDataError, match="frame 8 of /entry/data/data was never written"):
        lbnl_dask.open_dataset(master).frames.compute()


def test_virtual_mappings_of_every_kind_are_looked_into_or_left_alone(tmp_path):
    """A whole-dataset mapping (layout[...] = source) is looked into; a mapping of every
    other source frame is left alone rather than judged by the wrong frames (a review)."""
    from lbnl_dask.eiger import _unwritten_frame

    shape = (8, 4, 4)
    for name, written in (("a.h5", range(5)), ("b.h5", (0, 2, 4, 6))):
        with h5py.File(tmp_path / name, "w") as f:
            d = f.create_dataset("data", shape=shape, dtype=np.uint16, chunks=(1, 4, 4))
            for i in written:
                d[i] = 0 if (name, i) == ("b.h5", 2) else i + 1  # b's frame 2: written zeros
    with h5py.File(tmp_path / "m.h5", "w") as f:
        whole = h5py.VirtualLayout(shape, np.uint16)
        whole[...] = h5py.VirtualSource("a.h5", "data", shape)
        f.create_virtual_dataset("whole", whole, fillvalue=0)
        every = h5py.VirtualLayout((4, 4, 4), np.uint16)
        every[0:4] = h5py.VirtualSource("b.h5", "data", shape)[0:8:2]
        f.create_virtual_dataset("every", every, fillvalue=0)
    with h5py.File(tmp_path / "m.h5", "r") as f:
        assert _unwritten_frame(f["whole"], f["whole"][()], 0) == 5
        # its frame 1 is b's frame 2, written zeros; b's frame 1 was never written
        assert _unwritten_frame(f["every"], f["every"][()], 0) is None
