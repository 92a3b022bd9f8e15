"""The written master and data files: every metadata change summing and binning make, the layout."""

import os

import h5py
import hdf5plugin
import numpy as np
import pytest

import lbnl_dask
from lbnl_dask.errors import OptionError
from lbnl_dask.layout import (
    DATA,
    DATA_GROUP,
    DET,
    ENTRY,
    GONIOMETER,
    INSTRUMENT,
    PIXEL_MASK,
    SPEC,
    block_name,
)
from lbnl_dask.meta import MasterRewriter, bin_pixel_mask
from lbnl_dask.pipeline import compress
from lbnl_dask.writer import lossless_filter, read_squash, write_master


@pytest.fixture(scope="module")
def run(tiny, tmp_path_factory):
    """tiny (20 frames, 132 x 102, uint16), images 2..16, sum 3, bin 2 -> 5 frames of 66 x 51."""
    out = tmp_path_factory.mktemp("w") / "out"
    rep = compress(
        tiny,
        str(out),
        first_image=2,
        last_image=16,
        sum_range=3,
        bin_range=2,
        data_block_size=2,
        scheduler="threads",
    )
    src = h5py.File(tiny, "r")
    dst = h5py.File(rep.master, "r")
    yield src, dst, rep
    src.close()
    dst.close()


def test_pixel_size_times_bin(run):
    src, dst, _ = run
    for k in ("x_pixel_size", "y_pixel_size"):
        assert dst[f"{DET}/{k}"][()] == pytest.approx(2 * src[f"{DET}/{k}"][()])
        assert dst[f"{DET}/{k}"].attrs["units"] == b"m"


def test_beam_centre_divided_by_bin(run):
    src, dst, _ = run
    for k in ("beam_center_x", "beam_center_y"):
        assert dst[f"{DET}/{k}"][()] == pytest.approx(src[f"{DET}/{k}"][()] / 2)
        assert dst[f"{DET}/{k}"].attrs["units"] == b"pixel"


def test_nimages_and_ntrigger(run):
    _, dst, rep = run
    assert dst[f"{SPEC}/nimages"][()] == 5 == rep.frames_out
    assert dst[f"{SPEC}/ntrigger"][()] == 1


def test_times_times_sum(run):
    src, dst, _ = run
    for k in ("count_time", "frame_time"):
        assert dst[f"{DET}/{k}"][()] == pytest.approx(3 * src[f"{DET}/{k}"][()])
    assert dst[f"{SPEC}/frame_count_time"][()] == pytest.approx(
        3 * src[f"{SPEC}/frame_count_time"][()]
    )


def test_angles(run):
    src, dst, _ = run
    omega = src[f"{GONIOMETER}/omega"][()]
    ends = src[f"{GONIOMETER}/omega_end"][()]
    np.testing.assert_allclose(dst[f"{GONIOMETER}/omega"][()], omega[1:16][::3])  # group starts
    # the end of each group's last frame
    np.testing.assert_allclose(dst[f"{GONIOMETER}/omega_end"][()], ends[1:16][2::3])
    assert dst[f"{GONIOMETER}/omega_range_average"][()] == pytest.approx(0.3)
    assert dst[f"{GONIOMETER}/omega_increment"][()] == pytest.approx(0.3)
    assert dst[f"{GONIOMETER}/omega_range_total"][()] == pytest.approx(15 * 0.1)
    assert dst[f"{GONIOMETER}/omega_start"][()] == pytest.approx(omega[1])  # first output frame's
    assert dst[f"{GONIOMETER}/omega"].attrs["units"] == b"degree"
    assert dst[f"{GONIOMETER}/chi"][()].tolist() == [0.0]  # static axes keep their single entry


def test_summed_angles_worked_example():
    # the published tool's worked example: first 1, last 7, s 2, omega 0, 0.5, ...:
    # starts 0,1,2,3; ends 1,2,3,3.5
    rw = MasterRewriter(
        n_total=7,
        first=1,
        last=7,
        s=2,
        b=1,
        saturation=1,
        bit_depth=16,
        compression="bslz4",
        frame_shape=(4, 4),
    )
    omega = np.arange(7) * 0.5
    assert rw.per_frame(omega, end=False).tolist() == [0, 1, 2, 3]
    assert rw.per_frame(omega + 0.5, end=True).tolist() == [1, 2, 3, 3.5]


def test_pixel_mask_binned_or_uint32_plain(run):
    src, dst, _ = run
    m = dst[PIXEL_MASK]
    assert m.dtype == np.uint32 and m.shape == (51, 66)
    assert (
        m.chunks is None and m.compression is None and m.id.get_create_plist().get_nfilters() == 0
    )
    np.testing.assert_array_equal(m[()], bin_pixel_mask(src[f"{SPEC}/pixel_mask"][()], 2))


def test_datasets_an_nxmx_master_links_from_a_meta_file_are_binned_into_the_output(tiny, tmp_path):
    """NXmx masters link the pixel mask, flatfield and bit depth from a meta file: the
    output master holds them binned (and bit_depth_image the output's), as for its own
    datasets, and no link that would name the unbinned ones, or dangle from an output
    written in another folder. A linked group is copied in too (its link had dangled from
    there); a link to a file not there stays a link."""
    import shutil

    src = tmp_path / "in"
    shutil.copytree(os.path.dirname(tiny), src)
    master = src / os.path.basename(tiny)
    with h5py.File(master, "r") as f:
        mask = f[PIXEL_MASK][()]
    flat = np.linspace(0.5, 1.5, mask.size, dtype=np.float32).reshape(mask.shape)
    with h5py.File(src / "meta.h5", "w") as m:
        m["mask"], m["flatfield"], m["depth"] = mask, flat, np.uint32(16)
        m.create_group("extra")["x"] = 1
    with h5py.File(master, "r+") as f:
        del f[PIXEL_MASK], f[f"{DET}/bit_depth_image"]
        f[PIXEL_MASK] = h5py.ExternalLink("meta.h5", "/mask")
        f[f"{DET}/flatfield"] = h5py.ExternalLink("meta.h5", "/flatfield")
        f[f"{DET}/bit_depth_image"] = h5py.ExternalLink("meta.h5", "/depth")
        f[f"{DET}/extra"] = h5py.ExternalLink("meta.h5", "/extra")
        f[f"{DET}/gone"] = h5py.ExternalLink("nowhere.h5", "/x")
        data_file = os.path.basename(tiny).replace("_master.h5", "_data_000001.h5")
        f[f"{DET}/data"] = h5py.ExternalLink(data_file, "/entry/data/data")  # frames: a link
    rep = compress(str(master), str(tmp_path / "elsewhere" / "o"), bin_range=2, hcomp_scale=0,
                   scheduler="sync", fidelity=False)  # fmt: skip
    with h5py.File(rep.master, "r") as f:
        for name in (PIXEL_MASK, f"{DET}/flatfield", f"{DET}/bit_depth_image"):
            assert isinstance(f.get(name, getlink=True), h5py.HardLink), name
        np.testing.assert_array_equal(f[PIXEL_MASK][()], bin_pixel_mask(mask, 2))
        assert f[f"{DET}/flatfield"].shape == f[PIXEL_MASK].shape
        assert f[f"{DET}/bit_depth_image"][()] == 32  # the output's uint32 frames
        assert isinstance(f.get(f"{DET}/extra", getlink=True), h5py.HardLink)  # copied in:
        assert f[f"{DET}/extra/x"][()] == 1  # the link dangled from an output elsewhere
        assert isinstance(f.get(f"{DET}/gone", getlink=True), h5py.ExternalLink)
        assert f"{DET}/data" not in f  # a link to the input's frames, not the output's


def test_links_to_a_meta_file_not_at_hand_are_said_and_not_copied_where_values_change(
    tiny, tmp_path
):
    """The meta file missing: the run said nothing and the output kept links to the pixel
    mask and flatfield, which gave their unbinned values once the file was copied beside
    it (a real-data pass). Those the output rewrites are left out, the others stay links;
    one note per file says which, and that no pixel mask was read; lbnl-validate fails a
    detector/pixel_mask whose shape is not the frames'."""
    import shutil

    from lbnl_dask.validate import validate

    src = tmp_path / "in"
    shutil.copytree(os.path.dirname(tiny), src)
    master = src / os.path.basename(tiny)
    with h5py.File(master, "r+") as f:
        mask = f[PIXEL_MASK][()]
        del f[PIXEL_MASK]
        f[f"{DET}/pixel_mask"] = h5py.ExternalLink("meta.h5", "/mask")
        f[f"{DET}/flatfield"] = h5py.ExternalLink("meta.h5", "/flatfield")
        f[f"{DET}/threshold_energy"] = h5py.ExternalLink("meta.h5", "/threshold")
    rep = compress(str(master), str(src / "o"), bin_range=2, scheduler="sync", fidelity=False)
    note = next(n for n in rep.notes if "meta.h5" in n)
    assert note == ("master: 3 link(s) to meta.h5 cannot be followed (the file, or the path "
                    "in it, is missing): flatfield, pixel_mask not copied (their values may "
                    "change with the bin and sum; the output writes its own where it has "
                    "them); threshold_energy kept as link(s); no pixel mask was read (invalid "
                    "pixels are those the frames mark)")  # fmt: skip
    with h5py.File(rep.master, "r") as f:
        assert f"{DET}/pixel_mask" not in f and f"{DET}/flatfield" not in f
        link = f.get(f"{DET}/threshold_energy", getlink=True)
        assert isinstance(link, h5py.ExternalLink) and link.filename == "meta.h5"
    assert not validate(rep.master).failed
    with h5py.File(src / "meta.h5", "w") as m:  # the file turns up: nothing unbinned is read
        m["mask"], m["threshold"] = mask, 8000.0
    with h5py.File(rep.master, "r+") as f:  # as the old output was: the link, unbinned
        f[f"{DET}/pixel_mask"] = h5py.ExternalLink("meta.h5", "/mask")
    res = validate(rep.master)
    assert res.failed and "detector/pixel_mask: shape (" in str(res)


def test_a_linked_group_not_at_hand_and_a_mask_read_elsewhere(tiny, tmp_path):
    """detectorSpecific as a link to a file not there: the run had crashed writing its
    saturation into the dangling link; now the output has its own group (nimages, the
    saturation) and validates, and the note says no pixel mask was read. A dangling
    detector/pixel_mask beside a real detectorSpecific one: the mask was read, and the
    note does not say otherwise (a review)."""
    import shutil

    from lbnl_dask.validate import validate

    src = tmp_path / "in"
    shutil.copytree(os.path.dirname(tiny), src)
    master = src / os.path.basename(tiny)
    with h5py.File(master, "r+") as f:
        f[f"{DET}/pixel_mask"] = h5py.ExternalLink("gone.h5", "/mask")
        mask = f[PIXEL_MASK][()]
    assert mask.any()
    rep = compress(str(master), str(src / "m"), bin_range=2, scheduler="sync", fidelity=False)
    note = next(n for n in rep.notes if "gone.h5" in n)
    assert "pixel_mask not copied" in note and "no pixel mask was read" not in note
    with h5py.File(rep.master, "r") as f:  # the real one read, and binned
        np.testing.assert_array_equal(f[PIXEL_MASK][()], bin_pixel_mask(mask, 2))
        assert f"{DET}/pixel_mask" not in f
    with h5py.File(master, "r+") as f:
        del f[SPEC], f[f"{DET}/pixel_mask"]
        f[SPEC] = h5py.ExternalLink("gone.h5", "/ds")
    rep = compress(str(master), str(src / "g"), bin_range=2, scheduler="sync", fidelity=False)
    note = next(n for n in rep.notes if "gone.h5" in n)
    assert "detectorSpecific not copied" in note and "no pixel mask was read" in note
    with h5py.File(rep.master, "r") as f:
        assert isinstance(f.get(SPEC, getlink=True), h5py.HardLink)
        assert f[SPEC + "/nimages"][()] == rep.frames_out
        assert f[SPEC + "/saturation_value"][()] == rep.saturation_out
    assert not validate(rep.master).failed


def test_bin_pixel_mask_is_bitwise_or():
    m = np.zeros((5, 5), np.uint32)
    m[0, 0], m[1, 1], m[4, 4] = 1, 8, 2
    b = bin_pixel_mask(m, 2)
    assert b.shape == (3, 3) and b[0, 0] == 9 and b[2, 2] == 2 and b.sum() == 11


@pytest.mark.parametrize("shape", [(7, 5), (8, 6), (13, 11), (1, 9)])
@pytest.mark.parametrize("b", [1, 2, 3, 4, 5])
def test_bin_pixel_mask_ors_each_cell(shape, b):
    rng = np.random.default_rng(b)
    m = np.where(rng.random(shape) < 0.3, rng.integers(1, 2**31, shape), 0).astype(np.uint32)
    m[-1, -1] = 2**32 - 1
    got = bin_pixel_mask(m, b)
    oy, ox = -(-shape[0] // b), -(-shape[1] // b)
    assert got.shape == (oy, ox) and got.dtype == np.uint32
    for y in range(oy):
        for x in range(ox):
            assert got[y, x] == np.bitwise_or.reduce(
                m[y * b : (y + 1) * b, x * b : (x + 1) * b], axis=None
            )


def test_saturation_and_bit_depth(run):
    _, dst, rep = run
    sat = 12440 * 3 * 4
    assert rep.saturation_out == sat and rep.dtype_out == "uint32"
    assert dst[f"{SPEC}/countrate_correction_count_cutoff"][()] == sat
    assert dst[f"{SPEC}/saturation_value"][()] == sat
    assert dst[f"{DET}/saturation_value"][()] == sat
    assert dst[f"{DET}/bit_depth_image"][()] == 32


def test_module_sizes_and_pixel_counts(run):
    src, dst, _ = run
    assert (
        dst[f"{SPEC}/x_pixels_in_detector"][()] == 66
        and dst[f"{SPEC}/y_pixels_in_detector"][()] == 51
    )
    for m in range(4):
        g = f"{SPEC}/detectorModule_{m:03d}"
        np.testing.assert_array_equal(dst[g + "/data_origin"][()], src[g + "/data_origin"][()] // 2)
        np.testing.assert_array_equal(
            dst[g + "/data_size"][()], (src[g + "/data_size"][()] + 1) // 2
        )


def test_everything_else_copied_intact(run):
    src, dst, _ = run
    for p in (
        f"{DET}/detector_distance",
        f"{DET}/sensor_thickness",
        f"{DET}/description",
        f"{SPEC}/eiger_fw_version",
        INSTRUMENT + "/beam/incident_wavelength",
        f"{DET}/goniometer/two_theta",
    ):
        np.testing.assert_array_equal(dst[p][()], src[p][()])
        assert dict(dst[p].attrs) == dict(src[p].attrs)
    assert dst[f"{DET}/goniometer"].attrs["NX_class"] == b"NXtransformations"


def test_string_attributes_fixed_length_ascii(run):
    _, dst, _ = run

    def check(name, obj):
        for k in obj.attrs:
            t = obj.attrs.get_id(k).get_type()
            if t.get_class() == h5py.h5t.STRING:
                assert not t.is_variable_str() and t.get_cset() == h5py.h5t.CSET_ASCII, (name, k)

    dst.visititems(check)


def test_data_files_layout(run):
    _, dst, rep = run
    assert [os.path.basename(p) for p in rep.data_files] == [
        "out_000001.h5",
        "out_000002.h5",
        "out_000003.h5",
    ]
    links = [dst[DATA_GROUP].get(block_name(k), getlink=True) for k in (1, 2, 3)]
    assert [(ln.filename, ln.path) for ln in links] == [
        (f"out_{k:06d}.h5", DATA) for k in (1, 2, 3)
    ]
    sizes = []
    for k, p in enumerate(rep.data_files):
        with h5py.File(p, "r") as f:
            d = f[DATA]
            sizes.append(d.shape[0])
            assert d.chunks == (1, 51, 66) and d.dtype == np.uint32
            plist = d.id.get_create_plist()
            assert (
                plist.get_filter(0)[0] == 32008 and plist.get_filter(0)[2][4] == 2
            )  # bitshuffle + LZ4
            assert (d.attrs["image_nr_low"], d.attrs["image_nr_high"]) == (
                2 * k + 1,
                2 * k + sizes[-1],
            )
            assert f[ENTRY].attrs["NX_class"] == b"NXentry"
    assert sizes == [2, 2, 1]  # every file holds -d frames but the last
    assert not [p for p in os.listdir(os.path.dirname(rep.master)) if p.endswith(".part")]


def test_read_back_through_open_dataset(run, tiny):
    _, _, rep = run
    ds = lbnl_dask.open_dataset(rep.master)
    assert ds.frames.shape == (5, 51, 66)
    assert ds.meta.nimages == 5 and ds.meta.x_pixel_size == pytest.approx(150e-6)
    src = lbnl_dask.open_dataset(tiny).frames.compute()
    with h5py.File(tiny, "r") as f:
        mask = f[f"{SPEC}/pixel_mask"][()]
    from tests.reference import expected_output

    np.testing.assert_array_equal(
        ds.frames.compute(), expected_output(src[1:16], mask, 12440, 3, 2, np.uint32, 12440 * 12)
    )


def test_master_rewrite_of_real_eiger9m_master(realdata, tmp_path):
    src = realdata / "dials-data-files/dectris_eiger_master.h5"
    rw = MasterRewriter(
        n_total=1,
        first=1,
        last=1,
        s=1,
        b=2,
        saturation=49760,
        bit_depth=32,
        compression="bslz4",
        frame_shape=(3269, 3110),
    )
    with h5py.File(src, "r") as f:
        mask = bin_pixel_mask(f[PIXEL_MASK][()], 2)
    out = tmp_path / "x_master.h5"
    write_master(str(out), str(src), ["x_000001.h5"], rw, mask)
    with h5py.File(src, "r") as s, h5py.File(out, "r") as d:
        assert (
            d[f"{SPEC}/x_pixels_in_detector"][()] == 1555
            and d[f"{SPEC}/y_pixels_in_detector"][()] == 1635
        )
        assert d[f"{DET}/x_pixel_size"][()] == pytest.approx(150e-6)
        assert d[PIXEL_MASK].shape == (1635, 1555) and d[PIXEL_MASK].dtype == np.uint32
        assert d[f"{SPEC}/flatfield"].shape == (1635, 1555)
        np.testing.assert_array_equal(d[f"{SPEC}/detectorModule_001/data_origin"][()], [1555, 955])
        np.testing.assert_array_equal(d[f"{SPEC}/detectorModule_001/data_size"][()], [515, 129])
        assert d[f"{SPEC}/countrate_correction_count_cutoff"][()] == 49760
        assert d[f"{SPEC}/eiger_fw_version"][()] == s[f"{SPEC}/eiger_fw_version"][()]
        assert d[f"{DET}/geometry/translation/distances"].shape == (3,)
        assert d[DATA_GROUP].get(block_name(1), getlink=True).filename == "x_000001.h5"
        assert d[f"{DET}/beam_center_x"].attrs["units"] == b"pixel"
    # the binned mask must be stored plain (1635 x 1555 x 4 bytes); the rest stays as small
    # as the source
    assert os.path.getsize(out) < 1.3 * 1635 * 1555 * 4


@pytest.mark.parametrize(
    "name,level,msg",
    [
        ("lzma", None, "unknown compression"),
        ("bslz4", 3, "applies to bszstd and zstd"),
        ("zstd", 10, "0..9"),
        ("bszstd", 0, "1..22"),
    ],
)
def test_lossless_filter_validation(name, level, msg):
    with pytest.raises(OptionError, match=msg):
        lossless_filter(name, level)


def test_squash_files_round_trip(tiny, tmp_path):
    rep = compress(
        tiny,
        str(tmp_path / "sq"),
        sum_range=2,
        bin_range=2,
        hcomp_scale=4,
        out_squash=str(tmp_path / "raw"),
        data_block_size=4,
        scheduler="threads",
        restore_totals=False,  # the data files as the codec decodes (else cells corrected)
    )
    out = lbnl_dask.open_dataset(rep.master).frames.compute()
    got = np.concatenate([read_squash(tmp_path / f"raw_{k:06d}.h5") for k in (1, 2, 3)])
    assert got.shape == out.shape
    valid = out != np.iinfo(out.dtype).max
    # squash holds the codec bytes the data files were decoded from (saturated/invalid pixels
    # restored there)
    sat = out == rep.saturation_out
    np.testing.assert_array_equal(
        np.clip(got, 0, None)[valid & ~sat], out[valid & ~sat]
    )  # output counts are >= 0
    with h5py.File(tmp_path / "raw_000001.h5", "r") as f:
        assert b"lbnl_hcompress" in f[DATA].attrs["codec"]


def test_the_master_is_prepared_beside_the_frames_and_put_in_place_last(tiny, tmp_path):
    """prepare_master_task needs no frames (it runs while they are computed) and leaves the
    master as <master>.part; only finish_master_task, after every data file, renames it."""
    from lbnl_dask.writer import finish_master_task, prepare_master_task

    with h5py.File(tiny, "r") as f:
        shape = f[DATA_GROUP + "/data_000001"].shape[1:]
    rw = MasterRewriter(n_total=20, first=1, last=20, s=1, b=1, saturation=1000, bit_depth=16,
                        compression="bslz4", frame_shape=shape)  # fmt: skip
    out = str(tmp_path / "o_master.h5")
    prepared = prepare_master_task(out, tiny, ["o_000001.h5"], rw, None, 1, "tok")
    assert prepared == out + ".part" and not os.path.exists(out)
    with h5py.File(prepared, "r") as f:  # complete already, under its temporary name
        assert f[ENTRY].attrs["lbnl_dask_job"] == b"tok"
    records = [{"path": "o_000001.h5"}]
    assert finish_master_task(prepared, out, records, []) is records
    assert os.path.exists(out) and not os.path.exists(prepared)
    assert finish_master_task(prepared, out, records, []) is records  # a retried task


def test_a_run_that_fails_leaves_no_prepared_master(tiny, tmp_path, monkeypatch):
    """Whatever stops a run (here a bug in a write task), the master prepared beside the
    frames goes with it: nothing named like the master or its temporary stays."""
    from lbnl_dask import pipeline

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(pipeline, "write_block_task", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        compress(tiny, str(tmp_path / "o"), scheduler="threads", data_block_size=5)
    assert not [p for p in os.listdir(tmp_path) if "master" in p]


def test_a_master_without_a_saturation_gets_the_outputs_own(tiny, tmp_path):
    """Sums clipped at the output type's top must be flagged: with no saturation value nor
    count cutoff in the input, the output master says where its pixels are clipped."""
    import shutil

    from lbnl_dask.layout import CUTOFFS, SATURATIONS

    folder = tmp_path / "in"
    shutil.copytree(os.path.dirname(tiny), folder)
    master = folder / os.path.basename(tiny)
    with h5py.File(master, "r+") as f:
        for p in SATURATIONS + CUTOFFS:
            if p in f:
                del f[p]
        for name in list(f[SPEC]):  # the modules' own cutoffs too
            if name.startswith("detectorModule_"):
                f[SPEC][name].pop("countrate_correction_count_cutoff", None)
    rep = compress(str(master), str(tmp_path / "o"), bin_range=4, sum_range=3, uint=2,
                   scheduler="threads")  # fmt: skip
    assert any("no saturation value nor count cutoff" in n for n in rep.notes)
    with h5py.File(rep.master, "r") as f:
        for p in SATURATIONS:
            assert f[p][()] == rep.saturation_out == 32766  # below what Neggia takes as -1
    px = lbnl_dask.open_dataset(rep.master).frames.compute()
    assert px.max(where=px != 0xFFFF, initial=0) <= 32766


def _edited_copy(tiny, tmp_path, edit):
    import shutil

    folder = tmp_path / "in"
    shutil.copytree(os.path.dirname(tiny), folder)
    master = folder / os.path.basename(tiny)
    with h5py.File(master, "r+") as f:
        edit(f)
    return str(master)


def _module_of_another_name(f):
    g = f[DET].create_group("module_0")  # NXmx: an NXdetector_module of any name
    g.attrs["NX_class"] = np.bytes_(b"NXdetector_module")
    g["data_size"], g["data_origin"] = np.array([102, 132]), np.array([0, 0])


def _soft_linked_detector(f):
    f.move(DET, INSTRUMENT + "/eiger")
    f[DET] = h5py.SoftLink(INSTRUMENT + "/eiger")


def _frames_in_the_master_and_linked_from_the_detector(f):
    frames = np.concatenate([f[f"{DATA_GROUP}/{k}"][()] for k in sorted(f[DATA_GROUP])])
    for k in list(f[DATA_GROUP]):
        del f[f"{DATA_GROUP}/{k}"]
    f[DATA] = frames
    f[f"{DET}/data"] = f[DATA]  # a hard link: the same dataset


def _frames_as_a_virtual_dataset(f):  # (nexgen's layout, without the data_NNNNNN links)
    names = sorted(f[DATA_GROUP])
    parts = [(f.get(f"{DATA_GROUP}/{k}", getlink=True).filename, f[f"{DATA_GROUP}/{k}"].shape)
             for k in names]  # fmt: skip
    n = sum(shape[0] for _, shape in parts)
    layout = h5py.VirtualLayout(
        shape=(n,) + parts[0][1][1:], dtype=f[f"{DATA_GROUP}/{names[0]}"].dtype
    )
    at = 0
    for name, shape in parts:
        layout[at : at + shape[0]] = h5py.VirtualSource(name, DATA, shape=shape)
        at += shape[0]
    for k in names:
        del f[f"{DATA_GROUP}/{k}"]
    f[DATA_GROUP].create_virtual_dataset("data", layout)


def _soft_links_to_the_frames_and_to_omega(f):
    f[f"{DET}/data"] = h5py.SoftLink(DATA)  # the output has data_NNNNNN links, no data
    f[f"{DATA_GROUP}/omega"] = h5py.SoftLink(f"{GONIOMETER}/omega")
    f[f"{GONIOMETER}/omega_increment_set"] = np.float64(0.1)


def _other_per_frame_axes_beside_the_data(f):  # (Dectris' newer FileWriter, nexgen)
    f[f"{DATA_GROUP}/image_id"] = np.arange(1, 21, dtype=np.uint64)
    f[f"{DATA_GROUP}/start_time"] = np.arange(20, dtype=np.float64) * 0.1


def _saturation_only_in_the_modules(f):
    for p in (f"{DET}/saturation_value", f"{SPEC}/saturation_value",
              f"{SPEC}/countrate_correction_count_cutoff"):  # fmt: skip
        f.pop(p, None)


@pytest.mark.parametrize("edit", [
    _module_of_another_name, _soft_linked_detector,
    _frames_in_the_master_and_linked_from_the_detector, _frames_as_a_virtual_dataset,
    _soft_links_to_the_frames_and_to_omega,
    _other_per_frame_axes_beside_the_data,
    _saturation_only_in_the_modules,
], ids=lambda e: e.__name__[1:])  # fmt: skip
def test_nxmx_layouts_give_a_consistent_output_master(tiny, tmp_path, edit):
    """Layouts NXmx writers produce: each was written wrong, with exit status 0, no note,
    and (but for the mask) lbnl-validate passing: a module's data_size unbinned, the mask
    unbinned under a soft-linked detector group, the raw frames copied whole into the
    master, soft links dropped or dangling, no detector-level saturation."""
    from lbnl_dask import validate

    master = _edited_copy(tiny, tmp_path, edit)
    rep = compress(master, str(tmp_path / "o"), sum_range=2, bin_range=2, scheduler="threads",
                   fidelity=False)  # fmt: skip
    shape = (51, 66)
    with h5py.File(rep.master, "r") as f:
        assert f[PIXEL_MASK].shape == shape
        dangling, big = [], []
        f.visititems_links(lambda n, link: dangling.append(n) if isinstance(
            link, h5py.SoftLink) and f.get(n) is None else None)  # fmt: skip
        f.visititems(lambda n, o: big.append(n) if isinstance(o, h5py.Dataset) and o.ndim == 3
                     else None)  # fmt: skip
        assert dangling == [] and big == []
        if edit is _module_of_another_name:
            assert list(f[f"{DET}/module_0/data_size"][()]) == list(shape)
        if edit is _soft_links_to_the_frames_and_to_omega:
            assert f[f"{DATA_GROUP}/omega"] == f[f"{GONIOMETER}/omega"]  # the same, summed
            assert len(f[f"{DATA_GROUP}/omega"]) == 10
            assert f[f"{GONIOMETER}/omega_increment_set"][()] == pytest.approx(0.2)
        if edit is _saturation_only_in_the_modules:
            assert f[f"{DET}/saturation_value"][()] == rep.saturation_out
        if edit is _other_per_frame_axes_beside_the_data:  # one per output frame: its first
            assert f[f"{DATA_GROUP}/image_id"][()].tolist() == list(range(1, 21, 2))
            assert f[f"{DATA_GROUP}/start_time"][()] == pytest.approx(np.arange(0, 2, 0.2))
            part = compress(master, str(tmp_path / "part"), first_image=3, last_image=8,
                            scheduler="threads", fidelity=False)  # fmt: skip
            with h5py.File(part.master, "r") as g:  # no sum, a range: its frames' own
                assert g[f"{DATA_GROUP}/image_id"][()].tolist() == [3, 4, 5, 6, 7, 8]
    if edit in (_frames_in_the_master_and_linked_from_the_detector, _frames_as_a_virtual_dataset):
        with h5py.File(master) as f:  # the frames' bytes, not the whole master's (its size)
            d, folder = f[DATA], os.path.dirname(master)
            files = {os.path.join(folder, v.file_name) for v in d.virtual_sources()} if (
                d.is_virtual) else set()  # fmt: skip
            want = sum(map(os.path.getsize, files)) if files else d.id.get_storage_size()
        assert rep.bytes_in == want != os.path.getsize(master)
    assert validate.main([rep.master]) == 0


def test_data_files_longer_than_nimages_give_a_consistent_master(tiny, tmp_path):
    """nimages x ntrigger smaller than the frames the data files hold: the first frames are
    used, the report says so, and the per-frame angles follow the output frames."""
    import shutil

    from lbnl_dask.layout import GONIOMETER

    folder = tmp_path / "in"
    shutil.copytree(os.path.dirname(tiny), folder)
    master = folder / os.path.basename(tiny)
    with h5py.File(master, "r+") as f:
        f[SPEC + "/nimages"][()] = 16  # the data files hold 20
        omega = f[GONIOMETER + "/omega"][()]
    assert len(omega) == 20
    rep = compress(str(master), str(tmp_path / "o"), sum_range=2, scheduler="threads")
    assert rep.frames_in == 16 and rep.frames_out == 8
    assert any("the data files hold 20 frames, nimages x ntrigger says 16" in n
               for n in rep.notes)  # fmt: skip
    with h5py.File(rep.master, "r") as f:
        out = f[GONIOMETER + "/omega"][()]
    np.testing.assert_allclose(out, omega[:16:2])


def test_micro_in_units_is_written_as_u():
    """Attributes are written as ASCII (durin needs it): "µm" becomes "um", which readers
    (this one too) take for micrometres, not "?m"."""
    from lbnl_dask.layout import ascii_attr

    assert ascii_attr("µm") == b"um" and ascii_attr("μm") == b"um"
    assert ascii_attr("\u00c5") == ascii_attr("\u212b") == b"angstrom"  # NeXus' unit name
    assert ascii_attr("\u00e9") == b"?"


def test_a_master_with_only_the_count_cutoff_gets_a_detector_saturation_value(tiny, tmp_path):
    """DIALS takes its trusted range from detector/saturation_value alone: without it, the
    overloads (the output's saturation) read as counts (a QA pass)."""
    import shutil

    from lbnl_dask.layout import CUTOFFS, SATURATIONS

    folder = tmp_path / "in"
    shutil.copytree(os.path.dirname(tiny), folder)
    master = folder / os.path.basename(tiny)
    with h5py.File(master, "r+") as f:
        del f[SATURATIONS[0]]  # detector/saturation_value; the cutoffs stay
        cutoff = int(f[CUTOFFS[0]][()])
    rep = compress(str(master), str(tmp_path / "o"), bin_range=2, sum_range=2,
                   scheduler="threads")  # fmt: skip
    assert rep.saturation_out == cutoff * 2 * 4
    with h5py.File(rep.master, "r") as f:
        assert [f[p][()] for p in SATURATIONS] == [rep.saturation_out] * 2
        assert f[CUTOFFS[0]][()] == rep.saturation_out


def test_a_master_without_nexus_classes_gets_them_and_the_default_plot(tiny, tmp_path):
    """dxtbx finds the entry and the detector by NX_class: a hand-made master without them
    had kept none in its output. The default plot attributes are written as l_bnl_compress
    wrote them (a parity pass); an input's own are kept."""
    import shutil

    from lbnl_dask.layout import DET, ENTRY, INSTRUMENT, NX_CLASS, SPEC

    folder = tmp_path / "in"
    shutil.copytree(os.path.dirname(tiny), folder)
    master = folder / os.path.basename(tiny)
    with h5py.File(master, "r+") as f:
        names = []
        f.visit(names.append)  # (visititems stops at a callback's first non-None return)
        for obj in [f] + [f[n] for n in names]:
            obj.attrs.pop(NX_CLASS, None)
        f.attrs.pop("default", None)
        assert not any(NX_CLASS in f[n].attrs for n in names)
    rep = compress(str(master), str(tmp_path / "o"), bin_range=2, scheduler="threads")
    with h5py.File(rep.master, "r") as f:
        kinds = {p: f[p].attrs.get(NX_CLASS) for p in (ENTRY, INSTRUMENT, DET, SPEC)}
        assert kinds == {ENTRY: b"NXentry", INSTRUMENT: b"NXinstrument", DET: b"NXdetector",
                         SPEC: b"NXcollection"}  # fmt: skip
        assert f.attrs["default"] == b"entry" and f[ENTRY].attrs["default"] == b"data"
        assert f[ENTRY + "/data"].attrs["signal"] == b"data_000001"
        assert isinstance(f.attrs["default"], np.bytes_)  # fixed-length ASCII, as durin reads
    with h5py.File(master, "r+") as f:
        f.attrs["default"] = np.bytes_("elsewhere")
    rep = compress(str(master), str(tmp_path / "k"), bin_range=2, scheduler="threads")
    with h5py.File(rep.master, "r") as f:
        assert f.attrs["default"] == b"elsewhere"


def test_an_output_from_a_later_image_starts_later(tiny, tmp_path):
    """-1 F: the output's images start (F - 1) frame periods after the collection did, and
    its start times say so (a miniCBF made from it dates its files from them): Dectris'
    fixed-length data_collection_date and NXmx' variable-length start_time, each in its own
    form. From image 1 they are copied as they were."""
    import glob
    import shutil

    for p in glob.glob(os.path.join(os.path.dirname(tiny), "tiny_*.h5")):
        shutil.copy(p, tmp_path)
    master = str(tmp_path / "tiny_master.h5")
    with h5py.File(master, "r+") as f:
        dectris = np.array(b"2019-10-11T10:03:21.343+02:00", "S40")  # (NUL-padded)
        f[SPEC].create_dataset("data_collection_date", data=dectris)
        f[ENTRY + "/start_time"] = "2024-07-24T10:09:13Z"
        period = float(f[DET + "/frame_time"][()])
    assert period > 0
    from datetime import datetime, timedelta

    def at(text, seconds, fmt):
        when = datetime.fromisoformat(text) + timedelta(seconds=seconds)
        return when.isoformat(timespec=fmt)

    for first in (1, 5):
        rep = compress(master, str(tmp_path / f"o{first}"), first_image=first, sum_range=2,
                       scheduler="sync")  # fmt: skip
        with h5py.File(rep.master, "r") as f:
            date, start = f[SPEC + "/data_collection_date"], f[ENTRY + "/start_time"]
            assert date.dtype == "S40"  # the source's own string types
            utf8 = h5py.check_string_dtype(h5py.string_dtype("utf-8"))
            assert h5py.check_string_dtype(start.dtype) == utf8
            shift = (first - 1) * period
            assert date[()].decode() == at("2019-10-11T10:03:21.343+02:00", shift, "milliseconds")
            want = at(
                "2024-07-24T10:09:13+00:00", shift, "milliseconds" if first > 1 else "seconds"
            )
            assert start[()].decode() == want.replace("+00:00", "Z")
        assert not any("trigger" in n for n in rep.notes), rep.notes  # one trigger: exact
    with h5py.File(master, "r+") as f:  # the same frames as two triggers of half as many
        n = int(f[SPEC + "/nimages"][()])
        f[SPEC + "/nimages"][()], f[SPEC + "/ntrigger"][()] = n // 2, 2
    for first, said in ((n // 2, False), (n // 2 + 1, True)):
        rep = compress(master, str(tmp_path / f"t{first}"), first_image=first,
                       scheduler="sync", overwrite=True)  # fmt: skip
        note = f"image {first} is in trigger 2 of 2: the output's start time is moved by"
        assert any(note in m and "so it may be early" in m for m in rep.notes) == said, rep.notes


def test_trigger_time_notes():
    """The note on a start time moved across triggers: only from an image after the first
    trigger's, of a multi-trigger master with a frame period."""
    from lbnl_dask.meta import DetectorMeta
    from lbnl_dask.pipeline import trigger_time_notes

    meta = DetectorMeta(master="m", nimages=10, ntrigger=3, frame_time=0.1)
    assert trigger_time_notes(meta, 1) == trigger_time_notes(meta, 10) == []
    (note,) = trigger_time_notes(meta, 21)
    assert note.startswith("master: image 21 is in trigger 3 of 3: the output's start time is "
                           "moved by 20 x frame_time")  # fmt: skip
    meta.frame_time = None  # no period: the start time is not moved, nothing to say
    assert trigger_time_notes(meta, 21) == []
    meta.frame_time, meta.ntrigger = 0.1, 1
    assert trigger_time_notes(meta, 21) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full (Linux) here")
def test_a_refused_write_is_raised_once_hdf5_has_closed_the_file():
    """writer.hdf5_file on a device that refuses every write (/dev/full: ENOSPC): HDF5 sees
    its writes succeed and closes the file; the refusal is raised after, and no HDF5 object
    of that file stays open (they had, and crashed the process at exit)."""
    import errno
    import gc

    from lbnl_dask.writer import hdf5_file

    def open_objects():
        return h5py.h5f.get_obj_count(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_ALL & ~h5py.h5f.OBJ_DATATYPE)

    before = open_objects()
    with pytest.raises(OSError) as e:
        with hdf5_file("/dev/full") as f:
            f.create_dataset("x", data=np.arange(100_000), chunks=(1000,))
            f.attrs["a"] = "b"
    assert e.value.errno == errno.ENOSPC
    with pytest.raises(OSError) as e:  # the block fails on what it reads back: the refusal
        with hdf5_file("/dev/full") as f:
            f.create_dataset("x", data=np.arange(10))
            f.flush()
            raise ValueError("what HDF5 read back of the unwritten file made no sense")
    assert e.value.errno == errno.ENOSPC and isinstance(e.value.__cause__, ValueError)
    gc.collect()
    assert open_objects() == before  # (other tests may hold files open)


def test_hdf5_file_writes_what_h5py_writes(tmp_path):
    """The same datasets, chunks (direct chunk writes too), filters and attributes as h5py's
    own driver writes (the metadata may be laid out otherwise in the file)."""
    from lbnl_dask.writer import hdf5_file

    chunk = np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8)

    def fill(f):
        d = f.create_dataset("x", shape=(3, 50, 100), dtype=np.uint8, chunks=(1, 50, 100))
        for i in range(3):
            d.id.write_direct_chunk((i, 0, 0), chunk.tobytes())
        f.create_dataset("g/y", data=np.arange(10.0))
        f.create_dataset("g/z", data=np.arange(40_000, dtype=np.uint32).reshape(200, 200),
                         chunks=(1, 200), **hdf5plugin.Bitshuffle(cname="lz4"))  # fmt: skip
        f["g"].attrs["NX_class"] = np.bytes_(b"NXdata")

    with hdf5_file(str(tmp_path / "a.h5")) as f:
        fill(f)
    with h5py.File(tmp_path / "b.h5", "w") as f:
        fill(f)
    with h5py.File(tmp_path / "a.h5", "r") as a, h5py.File(tmp_path / "b.h5", "r") as b:
        for name in ("x", "g/y", "g/z"):
            assert a[name].dtype == b[name].dtype and a[name].chunks == b[name].chunks
            assert a[name].id.get_create_plist().get_nfilters() == (name == "g/z")
            np.testing.assert_array_equal(a[name][()], b[name][()])
        for i in range(3):
            assert a["x"].id.read_direct_chunk((i, 0, 0)) == b["x"].id.read_direct_chunk((i, 0, 0))
        assert dict(a["g"].attrs) == dict(b["g"].attrs) == {"NX_class": b"NXdata"}


def test_fail_later_reads_and_writes_by_offset(tmp_path):
    """What h5py's file-object driver asks of writer.FailLater: writes at any offset, reads
    that fill the whole buffer (zeros past the end, as HDF5's own driver reads), the end
    by seek(0, 2) and tell(), and truncate to a size."""
    from lbnl_dask.writer import FailLater

    f = FailLater(str(tmp_path / "f"))
    f.seek(10)
    assert f.write(b"xyz") == 3 and f.tell() == 13
    f.seek(0, os.SEEK_END)
    assert f.tell() == 13
    buf = bytearray(b"#" * 8)
    f.seek(8)
    f.readinto(buf)
    assert bytes(buf) == b"\0\0xyz\0\0\0"
    f.truncate(11)
    f.seek(0)
    assert f.read() == b"\0" * 10 + b"x"
    f.close()
    assert open(tmp_path / "f", "rb").read() == b"\0" * 10 + b"x"


def test_fail_later_reads_without_preadv(tmp_path, monkeypatch):
    """Where os has no preadv (macOS before 11), reads go through os.pread: the same bytes."""
    from lbnl_dask.writer import FailLater

    monkeypatch.delattr(os, "preadv")
    f = FailLater(str(tmp_path / "f"))
    f.write(b"abcdef")
    f.seek(4)
    buf = bytearray(b"######")
    f.readinto(buf)
    f.close()
    assert bytes(buf) == b"ef\0\0\0\0"


@pytest.mark.parametrize("compression", ["bslz4", "none"])
def test_recorded_checksums_are_those_of_the_stored_chunks(tiny, tmp_path, compression):
    """Chunks written as encoded get their CRC-32 from the bytes in hand, the others from
    HDF5's stored chunks: either way what a later check reads back."""
    from lbnl_dask.layout import CHUNK_CRC
    from lbnl_dask.writer import chunk_checksums, damaged_frames

    rep = compress(tiny, str(tmp_path / "o"), bin_range=2, sum_range=2, hcomp_scale=12,
                   compression=compression, data_block_size=3, scheduler="sync")  # fmt: skip
    for p in rep.data_files:
        with h5py.File(p, "r") as f:
            np.testing.assert_array_equal(f[CHUNK_CRC][()], chunk_checksums(f[DATA]))
        assert damaged_frames(p) == []
