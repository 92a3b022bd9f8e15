"""lbnl-validate: passes our outputs and the synthetic input, fails each broken rule."""

import os

import h5py
import hdf5plugin
import numpy as np
import pytest

import lbnl_dask
from lbnl_dask import validate as V
from lbnl_dask.layout import (
    DATA,
    DATA_GROUP,
    DET,
    ENTRY,
    INSTRUMENT,
    NX_CLASS,
    PIXEL_MASK,
    SPEC,
    block_name,
    block_path,
    data_file_name,
    nx_group,
)
from lbnl_dask.validate import main, validate


@pytest.fixture()
def good(tiny, tmp_path):
    rep = lbnl_dask.compress(
        tiny,
        str(tmp_path / "o"),
        bin_range=2,
        sum_range=2,
        hcomp_scale=4,
        data_block_size=4,
        scheduler="threads",
    )
    return rep.master


def test_valid_output_and_input(good, tiny, capsys):
    assert main([good]) == 0
    out = capsys.readouterr().out
    assert "[FAIL]" not in out and "[ OK ] decoded all 10 frames" in out
    assert not validate(tiny).failed


def test_compress_validate_option(tiny, tmp_path):
    rep = lbnl_dask.compress(
        tiny, str(tmp_path / "v"), bin_range=2, validate=True, scheduler="threads"
    )
    assert "[ OK ] decoded all 20 frames" in rep.validation


def lines(master):
    return str(validate(master))


def test_omega_that_cannot_be_the_scans_is_warned(tiny, tmp_path):
    """A master cut short gives fewer angles than frames; lbnl-compress copies them as they
    are (with a note), and the output's omega then steps by the input's increment, not the
    output's: lbnl-validate had passed both quietly."""
    from lbnl_dask.layout import GONIOMETER

    good = lbnl_dask.compress(tiny, str(tmp_path / "o"), bin_range=2, sum_range=2,
                              scheduler="threads").master  # fmt: skip
    text = lines(good)
    assert "omega holds" not in text and "omega steps" not in text
    import shutil

    for f in os.listdir(os.path.dirname(tiny)):
        if f.startswith(os.path.basename(tiny).replace("_master.h5", "")):
            shutil.copy(os.path.join(os.path.dirname(tiny), f), tmp_path / f)
    short = str(tmp_path / os.path.basename(tiny))
    with h5py.File(short, "r+") as f:
        omega = f[GONIOMETER + "/omega"][:10]
        del f[GONIOMETER + "/omega"]
        f[GONIOMETER + "/omega"] = omega
    assert f"{GONIOMETER}/omega holds 10 angles for 20 frames" in lines(short)
    rep = lbnl_dask.compress(short, str(tmp_path / "s"), bin_range=2, sum_range=2,
                             scheduler="threads")  # fmt: skip
    assert any("omega holds 10 angles for 20 images" in n for n in rep.notes)
    text = lines(rep.master)
    assert "[WARN] /entry/sample/goniometer/omega steps by 0.1 degrees a frame, but " \
        "omega_increment is 0.2" in text and not validate(rep.master).failed  # fmt: skip


def test_unequal_blocks_fail(good):
    d = os.path.dirname(good)
    with h5py.File(os.path.join(d, "o_000002.h5"), "r+") as f:
        f[DATA].resize(3, axis=0)
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
        m = f[PIXEL_MASK][()]
        del f[PIXEL_MASK]
        f.create_dataset(PIXEL_MASK, data=m.astype(np.uint8), chunks=True, compression="gzip")
    text = lines(good)
    assert "[FAIL] pixel_mask type uint8" in text and "chunked or filtered" in text


def test_variable_length_nx_class_fails(good):
    with h5py.File(good, "r+") as f:
        f[INSTRUMENT].attrs["NX_class"] = "NXinstrument"  # h5py writes variable-length UTF-8
    assert "[FAIL] NX_class attributes not fixed-length ASCII in ['entry/instrument']" in lines(
        good
    )


def test_missing_data_file_and_geometry(good):
    os.unlink(os.path.join(os.path.dirname(good), "o_000003.h5"))
    with h5py.File(good, "r+") as f:
        del f[DET + "/x_pixel_size"]
    text = lines(good)
    assert "o_000003.h5 is missing" in text and "[FAIL] x_pixel_size is missing" in text


def test_filters_xds_cannot_read(tiny, tmp_path):
    rep = lbnl_dask.compress(tiny, str(tmp_path / "z"), compression="zstd", scheduler="threads")
    assert "[FAIL] filter: HDF5 filter(s) [32001]" in lines(rep.master)
    rep = lbnl_dask.compress(tiny, str(tmp_path / "s"), compression="bshuf", scheduler="threads")
    text = lines(rep.master)
    assert (
        "[FAIL] filter: bitshuffle only" in text and "durin (its source at 0f27832) fails" in text
    )


def test_wrong_chunks_fail(good, tmp_path):
    d = os.path.dirname(good)
    p = os.path.join(d, "o_000001.h5")
    with h5py.File(p, "r") as f:
        a = f[DATA][()]
        attrs = dict(f[DATA].attrs)
    with h5py.File(p, "w") as f:
        ds = f.create_dataset(DATA, data=a, chunks=(2,) + a.shape[1:], **hdf5plugin.Bitshuffle())
        for k, v in attrs.items():
            ds.attrs[k] = v
    assert "[FAIL] data_000001: chunks (2, 51, 66)" in lines(good)


def test_corrupt_frame_fails_decoding(good):
    p = os.path.join(os.path.dirname(good), "o_000002.h5")
    with h5py.File(p, "r") as f:
        off = f[DATA].id.get_chunk_info(1).byte_offset
    with open(p, "r+b") as fh:
        fh.seek(off)
        fh.write(b"\xff" * 64)
    assert main([good]) == 1


# ---------------------------------------------------------------- one check at a time
def small_master(tmp_path, sizes, frame=(4, 5), mask=None, mask_chunks=None):
    """A master linking data files of ``sizes`` frames (uint16, one frame per chunk), with
    ``mask`` as detectorSpecific/pixel_mask if given."""
    master = tmp_path / "s_master.h5"
    with h5py.File(master, "w") as m:
        for k, n in enumerate(sizes, start=1):
            name = data_file_name("s", k)
            with h5py.File(tmp_path / name, "w") as f:
                f.create_dataset(DATA, data=np.zeros((n,) + frame, np.uint16), chunks=(1,) + frame)
            m[block_path(k)] = h5py.ExternalLink(name, DATA)
        m[SPEC + "/nimages"] = np.uint32(sum(sizes))
        m[SPEC + "/ntrigger"] = np.uint32(1)
        if mask is not None:
            m.create_dataset(PIXEL_MASK, data=mask, chunks=mask_chunks)
    return str(master)


def run_check(check, master):
    r = V.Result()
    with h5py.File(master, "r") as f:
        check(V.Context(master, f), r)
    return r.lines


@pytest.mark.parametrize(
    "shape,dtype,chunks,level,text",
    [
        ((4, 5), np.uint32, None, "OK", "pixel_mask uint32, frame shape, plain"),
        ((4, 5), np.uint16, None, "FAIL", "pixel_mask type uint16 (Neggia needs uint32)"),
        ((5, 4), np.uint32, None, "FAIL", "pixel_mask shape (5, 4) differs from the frames (4, 5)"),
        (
            (4, 5),
            np.uint32,
            (2, 5),
            "FAIL",
            "pixel_mask chunked or filtered (Neggia aborts on that)",
        ),
        (None, None, None, "WARN", "no detectorSpecific/pixel_mask"),
    ],
)
def test_check_pixel_mask_alone(tmp_path, shape, dtype, chunks, level, text):
    mask = None if shape is None else np.zeros(shape, dtype)
    master = small_master(tmp_path, [2], mask=mask, mask_chunks=chunks)
    assert run_check(V.check_pixel_mask, master) == [(level, text)]


@pytest.mark.parametrize(
    "sizes,level",
    [([4, 4, 2], "OK"), ([3], "OK"), ([4, 4, 4], "OK"), ([4, 2, 4], "FAIL"), ([2, 4], "FAIL")],
)
def test_check_block_sizes_alone(tmp_path, sizes, level):
    [(got, text)] = run_check(V.check_block_sizes, small_master(tmp_path, sizes))
    want = f"block sizes {sizes[0]} (last {sizes[-1]})" if level == "OK" else f"block sizes {sizes}"
    assert got == level and text.startswith(want)


def test_check_nx_class_ascii_alone(tmp_path):
    p = tmp_path / "nx.h5"
    with h5py.File(p, "w") as f:
        nx_group(f, ENTRY)
        nx_group(f, DET)
    assert run_check(V.check_nx_class_ascii, p) == [
        ("OK", "NX_class attributes fixed-length ASCII, terminated where durin needs it")
    ]
    with h5py.File(p, "r+") as f:
        f[DET].attrs[NX_CLASS] = "NXdetector"  # h5py writes a str as variable-length UTF-8
    assert run_check(V.check_nx_class_ascii, p) == [
        (
            "FAIL",
            "NX_class attributes not fixed-length ASCII in ['entry/instrument/detector'] "
            "(durin cannot read them)",
        )
    ]
    with h5py.File(p, "r+") as f:  # h5py writes bytes in as many bytes: no terminator
        f[DET].attrs[NX_CLASS] = np.bytes_(b"NXdetector")
        f[ENTRY].attrs[NX_CLASS] = np.bytes_(b"NXentry")  # (durin does not look for this)
    assert run_check(V.check_nx_class_ascii, p) == [
        (
            "WARN",
            "NX_class of ['entry/instrument/detector'] stored without room for a terminating "
            "null: durin (its source at 0f27832) reads it one character short and cannot open "
            "the file",
        )
    ]


def test_text_is_stored_as_durin_reads_it(tmp_path):
    """set_text_attr and write_dataset store text with room for its terminator: read as
    durin reads it (into a null-terminated buffer of the stored size), it is whole; h5py's
    default for bytes loses the last character that way."""
    from lbnl_dask.layout import set_text_attr, terminated_text, write_dataset

    def as_durin_reads(attr) -> bytes:
        size = attr.get_type().get_size()
        mem = h5py.h5t.C_S1.copy()
        mem.set_size(size)
        mem.set_strpad(h5py.h5t.STR_NULLTERM)
        buf = np.zeros(1, f"S{size}")
        attr.read(buf, mtype=mem)
        return bytes(buf[0])

    with h5py.File(tmp_path / "t.h5", "w") as f:
        g = nx_group(f, DET)
        set_text_attr(g, "µunits", "µm")
        d = write_dataset(g, "description", "Dectris EIGER", units="m")
        f.attrs["plain"] = np.bytes_(b"NXdata")
        assert as_durin_reads(g.attrs.get_id(NX_CLASS)) == b"NXdetector"
        assert as_durin_reads(g.attrs.get_id("µunits")) == b"um"
        assert as_durin_reads(d.attrs.get_id("units")) == b"m"
        assert as_durin_reads(f.attrs.get_id("plain")) == b"NXdat"  # for contrast
        assert g.attrs[NX_CLASS] == b"NXdetector" and d[()] == b"Dectris EIGER"
        assert terminated_text(g, NX_CLASS) and not terminated_text(f, "plain")
        set_text_attr(f, "plain", f.attrs["plain"])  # rewritten in place, as the master's are
        assert as_durin_reads(f.attrs.get_id("plain")) == b"NXdata"


def test_the_output_master_rewrites_the_inputs_text_for_durin(tiny, tmp_path):
    """An input whose NX_class strings have no terminator (nexgen's, DIALS' test master):
    the output master's have, and every other text attribute too."""
    import shutil

    from lbnl_dask import compress
    from lbnl_dask.layout import terminated_text

    src = tmp_path / "in"
    shutil.copytree(os.path.dirname(tiny), src)
    master = src / os.path.basename(tiny)
    with h5py.File(master, "r+") as f:
        for path in (ENTRY, DET, ENTRY + "/data"):
            f[path].attrs[NX_CLASS] = np.bytes_(f[path].attrs[NX_CLASS])
        f[DET + "/x_pixel_size"].attrs["units"] = "m"  # variable-length
        f[DET].attrs.create("note", np.array([b"one"]))  # shape (1,): kept so
        utf8 = h5py.string_dtype("utf-8", 3)  # fixed-length UTF-8 text: left as it is
        f[DET].attrs.create("unit_name", "\u00c5".encode(), dtype=utf8)
    assert "stored without room" in lines(str(master))
    r = compress(str(master), str(tmp_path / "o"), bin_range=2, scheduler="sync", fidelity=False)
    odd = []
    with h5py.File(r.master) as f:
        f.visititems(lambda p, o: odd.extend(f"{p}@{k}" for k in o.attrs
                                             if not terminated_text(o, k)))  # fmt: skip
    assert not odd
    assert "stored without room" not in lines(r.master)
    with h5py.File(r.master) as f:
        assert f[DET].attrs.get_id("note").shape == (1,) and f[DET].attrs["note"][0] == b"one"
        assert f[DET].attrs["unit_name"] == "\u00c5".encode()
        assert f[DET + "/x_pixel_size"].attrs["units"] == b"m"


def test_check_links_and_frame_count_alone(tmp_path):
    master = small_master(tmp_path, [3, 2])
    assert run_check(V.check_links, master) == [("OK", "2 data links")]
    assert run_check(V.check_frame_count, master) == [("OK", "nimages x ntrigger = 5")]
    with h5py.File(master, "r+") as f:
        f[block_path(3)] = f[DATA_GROUP].get(block_name(2), getlink=True)
        del f[block_path(2)]
        f[SPEC + "/ntrigger"][()] = 2
    [(level, text)] = run_check(V.check_links, master)
    assert level == "FAIL" and "not numbered data_000001" in text
    assert run_check(V.check_frame_count, master) == [
        ("FAIL", "nimages x ntrigger = 10, but the data files hold 5 frames")
    ]


def test_missing_file_says_no_such_file(tmp_path, capsys):
    missing = tmp_path / "nothere.h5"
    assert str(validate(missing)) == f"[FAIL] {missing}: no such file"
    assert main([str(missing)]) == 1
    assert f"[FAIL] {missing}: no such file" in capsys.readouterr().out
    text = tmp_path / "text_master.h5"
    text.write_text("not hdf5\n")
    assert str(validate(text)) == f"[FAIL] {text}: not an HDF5 file"
    assert str(validate(tmp_path)) == f"[FAIL] {tmp_path}: is a directory, not an HDF5 master file"


def test_checks_run_in_order_and_a_small_master_passes(tmp_path):
    assert V.CHECKS[0] is V.check_file and V.CHECKS[-2:] == [V.check_decode, V.check_xds_plugins]
    assert all(c.__name__.startswith("check_") and c.__doc__ for c in V.CHECKS)
    master = small_master(tmp_path, [3, 2], mask=np.zeros((4, 5), np.uint32))
    r = validate(master, decode=False)
    assert [msg for _, msg in r.lines[:5]] == [
        "2 data links",
        "data type uint16, frames 4 x 5",
        "filter: no filter",
        "all 2 data files present, chunked one frame per chunk",
        "block sizes 3 (last 2): equal but the last",
    ]
    assert ("FAIL", "x_pixel_size is missing") in r.lines  # a master without geometry fails...
    assert not any("decod" in msg for _, msg in validate(master).lines)  # ...before decoding


def test_a_truncated_master_and_a_frame_count_of_two_values_fail_in_one_line(good, tmp_path):
    """Both had ended lbnl-validate in a traceback (OSError, TypeError)."""
    import shutil

    cut = str(tmp_path / "cut_master.h5")
    shutil.copy(good, cut)
    os.truncate(cut, os.path.getsize(cut) // 2)
    text = lines(cut)
    assert f"[FAIL] {cut}: cannot open it (" in text and "truncated file" in text
    with h5py.File(good, "r+") as f:
        del f[SPEC + "/nimages"]
        f[SPEC + "/nimages"] = np.array([5, 5], np.uint32)
    assert "[FAIL] nimages not one whole number (the plugins read one)" in lines(good)
    with h5py.File(good, "r+") as f:  # one value in a one-element array: read as one
        del f[SPEC + "/nimages"]
        f[SPEC + "/nimages"] = np.array([10], np.uint32)
    assert "[ OK ] nimages x ntrigger = 10" in lines(good)


@pytest.mark.parametrize("path,value,msg", [
    ("/entry/instrument/beam/incident_wavelength", np.float32(0),
     "incident_wavelength is 0: it must be above 0"),
    (DET + "/detector_distance", np.float32(-0.1), "detector_distance is -0.1: it must be above 0"),
    (DET + "/beam_center_x", np.float32(np.nan), "beam_center_x is nan"),
    (DET + "/y_pixel_size", np.zeros(0, np.float32),
     "y_pixel_size is not one number (float32, 0 value(s))"),
    (DET + "/x_pixel_size", h5py.ExternalLink("gone.h5", "/x"), "x_pixel_size cannot be read"),
])  # fmt: skip
def test_geometry_that_cannot_be_right_fails(good, path, value, msg):
    """lbnl-compress notes such values and copies them; lbnl-validate had passed them."""
    with h5py.File(good, "r+") as f:
        if path in f or isinstance(f.get(path, getlink=True), h5py.ExternalLink):
            del f[path]
        f[path] = value
    result = validate(good)
    assert f"[FAIL] {msg}" in str(result) and result.failed


def test_a_saturation_neggia_reads_as_invalid_is_warned(good):
    """An output whose overloads XDS' Neggia plugin takes as invalid pixels (uint16 from
    32767 on: -u 2 had written 65534) had passed quietly."""
    assert "Neggia plugin reads" not in lines(good)
    with h5py.File(good, "r+") as f:
        dtype = f[DATA_GROUP + "/data_000001"].dtype
        for p in (DET + "/saturation_value", SPEC + "/saturation_value",
                  SPEC + "/countrate_correction_count_cutoff"):  # fmt: skip
            if p in f:
                f[p][()] = 65534 if dtype == np.uint16 else 2**31
    assert "is at or above" in lines(good) and "XDS' Neggia plugin reads in" in lines(good)
