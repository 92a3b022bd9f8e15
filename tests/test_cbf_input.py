"""miniCBF series as input: lazy frames, metadata, the template master, compress, quality."""

import glob
import re
import subprocess
import sys

import fabio
import h5py
import hdf5plugin  # noqa: F401  (the output's filters)
import numpy as np
import pytest

from lbnl_dask import compress, layout, open_dataset, read_meta
from lbnl_dask.cbf_input import read_cbf
from lbnl_dask.errors import ImageRangeError, SeriesError, TruncatedDataError
from lbnl_dask.validate import validate
from tests.helpers import cbf_frames, write_cbf_series


@pytest.fixture(scope="module")
def pilatus(tiny, tmp_path_factory):
    """(template, int32 frames) of a 12-frame miniCBF series made of the tiny dataset."""
    frames = cbf_frames(tiny, 12)
    folder = tmp_path_factory.mktemp("cbf")
    write_cbf_series(folder / "p", frames)
    return str(folder / "p_#####.cbf.gz"), frames


def as_stored(frames):
    return np.where(frames < 0, 0xFFFFFFFF, frames).astype(np.uint32)


def test_frames_are_lazy_uint32_with_invalid_markers(pilatus):
    template, frames = pilatus
    ds = open_dataset(template, datablock=5)
    assert ds.frames.dtype == np.uint32 and ds.frames.chunks[0] == (5, 5, 2)
    assert np.array_equal(ds.frames.compute(), as_stored(frames))
    mask = np.asarray(ds.pixel_mask())
    assert mask[3, 5] == 2 and np.array_equal(mask == 1, frames[0] == -1)


def test_meta_comes_from_the_headers(pilatus):
    m = read_meta(pilatus[0])
    assert (m.x_pixel_size, m.beam_center_x, m.beam_center_y) == (172e-6, 61.0, 47.5)
    assert (m.wavelength, m.detector_distance, m.count_time) == (0.6889, 0.16, 0.0964)
    assert m.overload == 388705 and m.n_frames == 12
    assert m.omega == pytest.approx(-145.0 + 0.1 * np.arange(12))


def test_a_range_and_its_errors(pilatus):
    ds = open_dataset(pilatus[0], 3, 7)
    assert ds.shape[0] == 5
    assert np.array_equal(ds.frames.compute(), as_stored(pilatus[1][2:7]))
    with pytest.raises(ImageRangeError, match="beyond the 12 frames"):
        open_dataset(pilatus[0], 1, 13)


def test_mixed_shapes_name_the_file(tmp_path):
    paths = write_cbf_series(tmp_path / "m", np.ones((2, 6, 5), np.int32))
    write_cbf_series(tmp_path / "m", np.ones((1, 7, 5), np.int32), number0=3)
    with pytest.raises(SeriesError, match=r"m_00003.cbf.gz: frame \(7, 5\) differs"):
        open_dataset(paths[0])


@pytest.mark.parametrize("line,new", [
    ("Wavelength 0.68890 A", "Wavelength 1.54180 A"),
    ("Detector_distance 0.16000 m", "Detector_distance 0.30000 m"),
    ("Pixel_size 172e-6 m x 172e-6 m", "Pixel_size 75e-6 m x 75e-6 m"),
    ("Detector_2theta 30.0000 deg.", "Detector_2theta 0.0000 deg."),
    ("Oscillation_axis OMEGA", "Oscillation_axis PHI"),
])  # fmt: skip
def test_a_file_of_another_geometry_is_named(tmp_path, line, new):
    """The output master takes the geometry from the first file: a later file that says
    otherwise (another sweep mixed in, an edited header) is refused, not averaged away."""
    import gzip

    from tests.helpers import PILATUS_HEADER

    assert any(ln.startswith(line.split()[0]) for ln in PILATUS_HEADER)
    paths = write_cbf_series(tmp_path / "g", np.zeros((4, 8, 6), np.int32))
    with gzip.open(paths[2]) as fh:
        raw = fh.read()
    assert line.encode() in raw, raw[:600]
    with gzip.open(paths[2], "wb") as fh:
        fh.write(raw.replace(line.encode(), new.encode()))
    with pytest.raises(SeriesError, match=f"g_00003.cbf.gz: {line.split()[0]} .* differs from "
                       "the first file's .* not one sweep"):  # fmt: skip
        open_dataset(paths[0])


def test_a_two_theta_arm_is_said(tmp_path):
    """A detector on a 2-theta arm: the output master keeps it as Dectris masters do, not as
    NXmx transformations, and a note says so (a reader of those alone would miss it)."""
    paths = write_cbf_series(tmp_path / "a", np.zeros((2, 8, 6), np.int32))
    (note,) = [w for w in open_dataset(paths[0]).meta.warnings if "2-theta" in w]
    assert note.startswith("the detector sits on a 2-theta arm of 30 deg: the output master "
                           "records it as detector/goniometer/two_theta")  # fmt: skip
    for p in paths:
        _edit(p, b"Detector_2theta 30.0000 deg.", b"Detector_2theta 0.0000 deg.")
    assert not [w for w in open_dataset(paths[0]).meta.warnings if "2-theta" in w]


def _edit(path, old: bytes, new: bytes):
    import gzip

    with gzip.open(path) as fh:
        raw = fh.read()
    assert old in raw
    with gzip.open(path, "wb") as fh:
        fh.write(raw.replace(old, new))


def test_stills_a_scan_across_360_and_a_selected_part_are_read(tmp_path):
    """Stills (increment 0) whose start angles jitter, a scan from 359.8 to 0.0 deg, and
    the images asked for when a later file (not asked for) is of another sweep."""
    zeros = np.zeros((1, 8, 6), np.int32)
    stills = [write_cbf_series(tmp_path / "s", zeros, start=a, number0=k)[0]
              for k, a in enumerate((10.0, 10.001, 10.0), start=1)]  # fmt: skip
    for p in stills:
        _edit(p, b"Angle_increment 0.1000 deg", b"Angle_increment 0.0000 deg")
    assert open_dataset(stills[0]).shape[0] == 3
    turn = write_cbf_series(tmp_path / "t", np.zeros((3, 8, 6), np.int32), start=359.8)
    _edit(turn[2], b"Start_angle 360.0000 deg", b"Start_angle 0.0000 deg")
    assert open_dataset(turn[0]).shape[0] == 3
    mixed = write_cbf_series(tmp_path / "m", np.zeros((4, 8, 6), np.int32))
    _edit(mixed[3], b"Wavelength 0.68890 A", b"Wavelength 1.54180 A")
    assert open_dataset(mixed[0], 1, 3).shape[0] == 3
    with pytest.raises(SeriesError, match="m_00004.cbf.gz: Wavelength 1.5418 differs"):
        open_dataset(mixed[0])


def test_missing_or_odd_geometry_in_the_headers_is_noted(tmp_path):
    """As for a master: a header without a wavelength, or a distance of 160 m, is a note
    (the output can only copy them), said to be from the headers. A distance in mm is read
    in metres (it had been read as 160 m)."""
    import gzip

    paths = write_cbf_series(tmp_path / "w", np.zeros((2, 8, 6), np.int32))
    for p in paths:
        with gzip.open(p) as fh:
            raw = fh.read()
        raw = raw.replace(b"# Wavelength 0.68890 A\r\n", b"")
        raw = raw.replace(b"Detector_distance 0.16000 m", b"Detector_distance 160.000 mm")
        with gzip.open(p, "wb") as fh:
            fh.write(raw)
    meta = open_dataset(paths[0]).meta
    assert "no wavelength in the headers: the output has none either (XDS' plugins need it; " \
        "lbnl-validate fails such a master)" in meta.warnings  # fmt: skip
    assert meta.detector_distance == pytest.approx(0.16, rel=1e-12)
    assert not any("farther" in w for w in meta.warnings), meta.warnings
    for p in paths:
        with gzip.open(p) as fh:
            raw = fh.read()
        with gzip.open(p, "wb") as fh:
            fh.write(raw.replace(b"Detector_distance 160.000 mm", b"Detector_distance 160.000 m"))
    warned = open_dataset(paths[0]).meta.warnings
    assert any(w.startswith("detector_distance is 160 m in the headers, farther than any")
               for w in warned), warned  # fmt: skip


def test_start_angles_going_back_are_refused(tmp_path):
    paths = write_cbf_series(tmp_path / "a", np.zeros((2, 8, 6), np.int32))
    write_cbf_series(tmp_path / "a", np.zeros((2, 8, 6), np.int32), start=-145.0, number0=3)
    with pytest.raises(SeriesError, match="a_00003.cbf.gz: Start_angle -145 does not follow "
                       "-144.9 of .*a_00002.cbf.gz \\(increment 0.1 deg\\)"):  # fmt: skip
        open_dataset(paths[0])


@pytest.mark.parametrize("which, old, new", [
    (1, b"Start_angle -144.9000 deg", b"Start_angle abc deg"),
    (0, b"Pixel_size 172e-6 m x 172e-6 m", b"Pixel_size 172um x 172um"),
    (1, b"Wavelength 0.68890 A", b"Wavelength ? A"),
])  # fmt: skip
def test_a_header_line_that_holds_no_number_is_named_not_taken_as_absent(tmp_path, which, old,
                                                                          new):  # fmt: skip
    """A known line whose value does not parse is a damaged header (an error naming the
    file and line), not a line the header lacks; nor a pixel decode error later."""
    from lbnl_dask.errors import MetadataError

    paths = write_cbf_series(tmp_path / "h", np.zeros((3, 8, 6), np.int32))
    _edit(paths[which], old, new)
    said = re.escape(f"h_0000{which + 1}.cbf.gz: header line '{new.decode()}")
    with pytest.raises(MetadataError, match=said):
        open_dataset(paths[0])


def test_a_damaged_frame_is_named_when_read(tmp_path):
    paths = write_cbf_series(tmp_path / "d", np.ones((2, 60, 50), np.int32), suffix=".cbf")
    data = bytearray(open(paths[1], "rb").read())
    open(paths[1], "wb").write(bytes(data[: len(data) - 3000]))  # pixels cut short
    ds = open_dataset(paths[0])
    with pytest.raises(TruncatedDataError, match="d_00002.cbf"):
        ds.frames.compute(scheduler="sync")


def test_a_damaged_pixel_stream_without_a_checksum_says_so(tmp_path):
    """A file without Content-MD5 whose byte-offset stream was damaged: FabIO fails an
    assertion with no text; the one line still says what is wrong."""
    frames = np.random.default_rng(0).poisson(3, (1, 40, 50)).astype(np.int32)
    path = write_cbf_series(tmp_path / "m", frames, suffix=".cbf")[0]
    raw = re.sub(rb"Content-MD5: [^\r\n]*\r\n", b"", open(path, "rb").read())
    start = raw.index(b"\x0c\x1a\x04\xd5") + 4  # the binary section
    raw = raw[: start + 100] + b"\x80" * 40 + raw[start + 140 :]
    open(path, "wb").write(raw)
    with pytest.raises(TruncatedDataError) as e:
        read_cbf(str(path))
    assert str(e.value) == (f"{path}: cannot decode the CBF pixels (its compressed pixel "
                            "stream is damaged)")  # fmt: skip


def test_lossless_compress_keeps_every_pixel_and_value(pilatus, tmp_path):
    template, frames = pilatus
    rep = compress(template, str(tmp_path / "o"), scheduler="threads", data_block_size=5)
    assert not validate(rep.master).failed
    with h5py.File(rep.master) as f:
        data = np.concatenate([f[layout.block_path(k)][()] for k in (1, 2, 3)])
        assert np.array_equal(data, as_stored(frames))
        assert f[layout.PIXEL_MASK][3, 5] == 2
        assert f[layout.DET + "/x_pixel_size"][()] == 172e-6
        assert f[layout.SPEC + "/countrate_correction_count_cutoff"][()] == 388705
        assert f[layout.GONIOMETER + "/omega"][()] == pytest.approx(-145 + 0.1 * np.arange(12))
        assert f[layout.DET + "/goniometer/two_theta"][0] == 30.0


def test_sum_and_bin_rewrite_the_geometry(pilatus, tmp_path):
    template, frames = pilatus
    rep = compress(template, str(tmp_path / "o"), bin_range=2, sum_range=3,
                   scheduler="threads")  # fmt: skip
    m = read_meta(rep.master)
    assert (m.x_pixel_size, m.beam_center_x, m.beam_center_y) == (344e-6, 30.5, 23.75)
    assert m.count_time == pytest.approx(3 * 0.0964) and m.n_frames == 4
    assert m.omega == pytest.approx(-145 + 0.3 * np.arange(4))
    assert m.omega_increment == pytest.approx(0.3)


def test_command_line_takes_a_template(pilatus, tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "lbnl_dask", "-i", pilatus[0], "-o", str(tmp_path / "c"),
         "-b", "2", "-H", "12", "--scheduler", "threads", "--validate"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "[ OK ] decoded all 12 frames" in r.stdout and "fidelity" in r.stdout


# ---------------------------------------------------------------- the real L-cysteine frames
@pytest.fixture(scope="module")
def lcys(realdata):
    return str(realdata / "dials-l-cysteine" / "l-cyst_01_#####.cbf.gz")


@pytest.fixture(scope="module")
def lcys_frames(lcys):
    return np.stack([fabio.open(p).data for p in sorted(glob.glob(lcys.replace("#####", "*")))])


def test_real_frames_sum_exactly(lcys, lcys_frames, tmp_path):
    rep = compress(lcys, str(tmp_path / "s"), sum_range=3, bin_range=2, scheduler="threads")
    assert not validate(rep.master).failed
    with h5py.File(rep.master) as f:
        out = f[layout.block_path(1)][()]
        mask = f[layout.PIXEL_MASK][()]
    x = lcys_frames.astype(np.int64)
    n, ny, nx = x.shape
    pad = np.zeros((n, ny + ny % 2, nx + nx % 2), np.int64)
    pad[:, :ny, :nx] = x
    expect = pad.reshape(n // 3, 3, pad.shape[1] // 2, 2, pad.shape[2] // 2, 2).sum(axis=(1, 3, 5))
    valid = mask == 0
    assert np.array_equal(out[:, valid], expect[:, valid])  # 14 bits of counts: exact sums
    assert (out[:, ~valid] == 0xFFFFFFFF).all()


def test_keep_spots_and_quality_on_real_frames(lcys, tmp_path):
    from lbnl_dask import quality

    rep = compress(lcys, str(tmp_path / "k"), sum_range=1, bin_range=2, hcomp_scale=64,
                   keep_spots=True, scheduler="threads")  # fmt: skip
    assert rep.fidelity and "background out/in" in rep.fidelity
    f = quality.fidelity(lcys, rep.master)
    assert f.n_reflections > 0 and f.source != "ground truth"
    assert f.overall.cc > 0.99 and 0.95 < f.overall.mean_ratio < 1.05


def test_explore_takes_the_series_itself(lcys, tmp_path, capsys):
    import json

    from lbnl_dask import explore as E

    rc = E.main([lcys, "--bins", "2", "--sums", "2", "--hcomp", "12", "--j2k", "--sz3", "--zfp",
                 "--sz3-filter", "--keep", "0", "--windows", "1", "--frames", "4",
                 "-o", str(tmp_path / "ex"), "--scheduler", "threads"])  # fmt: skip
    assert rc == 0
    rows = {r["setting"]: r for r in json.loads((tmp_path / "ex.json").read_text())}
    assert set(rows) == {"b2s2", "b2s2h12"} and rows["b2s2"]["n"] > 5
    assert rows["b2s2"]["cc"] == pytest.approx(1.0)
    assert "best: " in capsys.readouterr().out


def test_a_cbf_without_a_pilatus_header_or_with_16_bit_pixels_is_refused(tmp_path):
    import fabio.cbfimage

    from lbnl_dask.errors import InputFileError

    fabio.cbfimage.CbfImage(data=np.ones((4, 3), np.int32), header={}).write(
        str(tmp_path / "n_00001.cbf"))  # fmt: skip
    with pytest.raises(InputFileError, match="n_00001.cbf: no PILATUS_1.2 pixel size"):
        open_dataset(str(tmp_path / "n_00001.cbf"))
    (tmp_path / "s").mkdir()
    paths = write_cbf_series(tmp_path / "s" / "s", np.ones((1, 4, 3), np.int32), suffix=".cbf")
    img = fabio.open(paths[0])
    fabio.cbfimage.CbfImage(data=img.data.astype(np.int16), header=img.header).write(paths[0])
    with pytest.raises(InputFileError, match="s_00001.cbf: pixels are .signed 16-bit integer."):
        open_dataset(paths[0])


def test_files_that_differ_in_cutoff_or_exposure_are_said(tmp_path):
    """Only the first header was read: a later file's lower Count_cutoff let its overloads
    through as counts, another exposure went unsaid (a QA pass)."""
    frames = np.zeros((4, 8, 6), np.int32)
    frames[2, 1, 1] = 250000  # above file 3's own cutoff, below the first's
    paths = write_cbf_series(tmp_path / "c", frames)
    _edit(paths[2], b"Count_cutoff 388705 counts", b"Count_cutoff 200000 counts")
    _edit(paths[1], b"Exposure_time 0.0964000 s", b"Exposure_time 0.5000000 s")
    rep = compress(paths[0], str(tmp_path / "o"), scheduler="threads")
    assert rep.saturation_out == 200000
    assert (
        "series: Count_cutoff differs between the files (200000 to 388705 counts): counts "
        "from the lowest, 200000, on are taken as saturated in every frame" in rep.notes
    )
    assert any("Exposure_time differs between the files (0.0964 to 0.5 s)" in n
               for n in rep.notes)  # fmt: skip
    out = open_dataset(rep.master).frames.compute()
    assert out[2, 1, 1] == 200000  # an overload, not a count
    _edit(paths[3], b"# Count_cutoff 388705 counts\r\n", b"")
    assert any("c_00004.cbf.gz (and 0 more) gives no Count_cutoff" in w
               for w in read_meta(paths[0]).warnings)  # fmt: skip


def test_a_frame_size_its_pixel_count_denies_and_a_damaged_later_line_are_refused(tmp_path):
    """A wrong X-Binary-Size-Fastest-Dimension read the pixels sheared (exit 0); a damaged
    line in a later file was only a long FabIO log line (a QA pass)."""
    from lbnl_dask.errors import InputFileError, MetadataError

    paths = write_cbf_series(tmp_path / "s", np.zeros((3, 8, 6), np.int32))
    _edit(paths[1], b"Exposure_time 0.0964000 s", b"Exposure_time \x00\x01\xff s")
    with pytest.raises(MetadataError, match="s_00002.cbf.gz: header line 'Exposure_time"):
        open_dataset(paths[0])
    paths = write_cbf_series(tmp_path / "f", np.zeros((3, 8, 6), np.int32))
    for p in paths:
        _edit(p, b"X-Binary-Size-Fastest-Dimension: 6", b"X-Binary-Size-Fastest-Dimension: 5")
    with pytest.raises(InputFileError, match="f_00001.cbf.gz: the binary section holds 48 "
                       "pixels, not its 5 x 8"):  # fmt: skip
        open_dataset(paths[0])


def test_a_pixel_size_in_mm_is_rewritten_not_kept_beside_the_binned_one(tmp_path):
    """lbnl-to-cbf kept the input's 'Pixel_size 0.172 mm x 0.172 mm' and added the binned
    size after it: two sizes, a factor b apart (a QA pass)."""
    from lbnl_dask.cbf_output import to_cbf

    paths = write_cbf_series(tmp_path / "p", np.ones((2, 8, 6), np.int32))
    for p in paths:
        _edit(p, b"Pixel_size 172e-6 m x 172e-6 m", b"Pixel_size 0.172 mm x 0.172 mm")
    rep = compress(paths[0], str(tmp_path / "o"), bin_range=2, scheduler="threads")
    to_cbf(rep.master, str(tmp_path / "c"), scheduler="threads")
    header = fabio.open(str(tmp_path / "c_00001.cbf")).header["_array_data.header_contents"]
    sizes = [ln for ln in header.splitlines() if "Pixel_size" in ln]
    assert sizes == ["# Pixel_size 344e-6 m x 344e-6 m"], sizes


def test_only_the_files_read_set_the_cutoff_and_an_axis_is_read_as_readers_read_it(tmp_path):
    """A file outside -1/-N had lowered the run's saturation; 'OMEGA' against 'omega' had
    been refused as another sweep (a review)."""
    paths = write_cbf_series(tmp_path / "r", np.zeros((4, 8, 6), np.int32))
    _edit(paths[3], b"Count_cutoff 388705 counts", b"Count_cutoff 1000 counts")
    assert open_dataset(paths[0], 1, 3).meta.overload == 388705
    assert open_dataset(paths[0], 1, 4).meta.overload == 1000
    _edit(paths[1], b"Oscillation_axis OMEGA", b"Oscillation_axis  omega")
    assert open_dataset(paths[0]).shape[0] == 4
