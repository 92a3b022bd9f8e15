"""miniCBF names, headers and pixel markers (files written by FabIO)."""

import gzip
import os

import numpy as np
import pytest

from lbnl_dask import minicbf
from lbnl_dask.errors import InputFileError, MetadataError, TruncatedDataError
from tests.helpers import PILATUS_HEADER, write_cbf_series


@pytest.fixture
def series(tmp_path):
    frames = np.arange(3 * 6 * 5, dtype=np.int32).reshape(3, 6, 5)
    return write_cbf_series(tmp_path / "x", frames)


def test_series_from_template_first_file_and_folder(series, tmp_path):
    assert minicbf.find_series(tmp_path / "x_#####.cbf.gz") == series
    assert minicbf.find_series(series[0]) == series
    assert minicbf.find_series(series[1]) == series  # any file names its series
    assert minicbf.find_series(tmp_path) == series


def test_series_of_plain_and_bz2_files(tmp_path):
    frames = np.ones((2, 4, 3), np.int32)
    for suffix in (".cbf", ".cbf.bz2"):
        paths = write_cbf_series(tmp_path / f"s{suffix[-3:]}", frames, suffix=suffix)
        assert minicbf.find_series(paths[0]) == paths
        assert minicbf.read_header(paths[1]).shape == (4, 3)


def test_a_missing_frame_is_named(series, tmp_path):
    (tmp_path / "x_00002.cbf.gz").unlink()
    with pytest.raises(InputFileError, match=r"x_00002\.cbf\.gz: missing \(the series runs 1-3"):
        minicbf.find_series(series[0])
    with pytest.raises(InputFileError, match=r"x_00002\.cbf\.gz: missing"):
        minicbf.find_series(tmp_path)  # a folder: the name of the missing file all the same


def test_a_frame_that_is_a_pipe_or_a_folder_is_refused_not_waited_on(series, tmp_path):
    (tmp_path / "x_00002.cbf.gz").unlink()
    os.mkfifo(tmp_path / "x_00002.cbf.gz")  # reading it would wait for a writer forever
    with pytest.raises(InputFileError, match=r"x_00002\.cbf\.gz: not a regular file"):
        minicbf.find_series(series[0])
    (tmp_path / "x_00002.cbf.gz").unlink()
    (tmp_path / "x_00002.cbf.gz").mkdir()
    with pytest.raises(InputFileError, match=r"x_00002\.cbf\.gz: not a regular file"):
        minicbf.find_series(tmp_path / "x_#####.cbf.gz")


def test_numbers_of_any_width_and_twice_the_same_number(tmp_path):
    one = np.ones((1, 4, 3), np.int32)
    for k in range(1, 11):  # z_1 ... z_10: no zero padding
        write_cbf_series(tmp_path / "z", one, suffix=".cbf", number0=k)
    for k in range(1, 11):
        os.rename(tmp_path / f"z_{k:05d}.cbf", tmp_path / f"z_{k}.cbf")
    names = [os.path.basename(p) for p in minicbf.find_series(tmp_path / "z_1.cbf")]
    assert names == [f"z_{k}.cbf" for k in range(1, 11)]
    assert minicbf.find_series(tmp_path / "z_#.cbf") == minicbf.find_series(tmp_path)
    write_cbf_series(tmp_path / "z", one, suffix=".cbf", number0=2)  # z_00002.cbf beside z_2
    for given in (tmp_path, tmp_path / "z_00002.cbf", tmp_path / "z_1.cbf"):
        with pytest.raises(InputFileError, match="frame 2 is also"):
            minicbf.find_series(given)


def test_upper_case_names(tmp_path):
    paths = write_cbf_series(tmp_path / "u", np.ones((2, 4, 3), np.int32))
    for p in paths:
        os.rename(p, p.replace(".cbf.gz", ".CBF.GZ"))
    files = minicbf.find_series(tmp_path)
    assert files[0].endswith("u_00001.CBF.GZ") and minicbf.read_header(files[1]).shape == (4, 3)


def test_damaged_pixels_are_caught_before_fabio_decodes_them(series, tmp_path):
    good = minicbf.read_checked(series[0])
    start = good.find(minicbf.BINARY_START) + 6
    bad = tmp_path / "b_00001.cbf"
    bad.write_bytes(good[:start] + bytes([good[start] ^ 0xFF]) + good[start + 1 :])
    with pytest.raises(TruncatedDataError, match="b_00001.cbf: the pixel data does not match"):
        minicbf.read_checked(str(bad))
    cut = tmp_path / "c_00001.cbf"
    cut.write_bytes(good[: start + 2])
    with pytest.raises(TruncatedDataError, match="c_00001.cbf: the pixel data is cut short"):
        minicbf.read_checked(str(cut))
    gz = bytearray(open(series[1], "rb").read())
    gz[len(gz) // 2] ^= 0xFF  # the gzip stream's CRC no longer holds
    flipped = tmp_path / "f_00001.cbf.gz"
    flipped.write_bytes(bytes(gz))
    with pytest.raises(TruncatedDataError, match="f_00001.cbf.gz: damaged or cut short"):
        minicbf.read_checked(str(flipped))


def test_a_folder_of_two_series_asks_which(series, tmp_path):
    write_cbf_series(tmp_path / "y", np.ones((1, 6, 5), np.int32))
    with pytest.raises(InputFileError, match="holds 2 miniCBF series"):
        minicbf.find_series(tmp_path)


@pytest.mark.parametrize(
    "name, message",
    [("nothing_00001.cbf", "no such file"), ("a_##_#.cbf", "one run of #"),
     ("z_#####.cbf.gz", "no file of this series")],
)  # fmt: skip
def test_bad_names_are_one_line(tmp_path, name, message):
    with pytest.raises(InputFileError, match=message):
        minicbf.find_series(tmp_path / name)


def test_header_is_read_without_the_pixels(series):
    raw = minicbf.read_header(series[0])
    assert raw.shape == (6, 5)
    assert "32-bit" in raw.element_type
    assert raw.lines[:3] == PILATUS_HEADER[:3]
    h = minicbf.parse_header(raw)
    assert h.get("Pixel_size") == (172e-6, 172e-6)
    assert h.get("Beam_xy") == (61.0, 47.5)
    assert h.get("Count_cutoff") == 388705
    assert h.get("Start_angle") == pytest.approx(-145.0)
    assert h.get("sensor") == ("Silicon", pytest.approx(320e-6))
    assert minicbf.detector_name(h) == ("PILATUS 2M", "24-0107")


def test_damaged_and_foreign_files_are_one_line(tmp_path, series):
    half = tmp_path / "h_00001.cbf.gz"
    half.write_bytes(open(series[0], "rb").read()[:200])  # the gzip stream stops early
    with pytest.raises(InputFileError, match="h_00001.cbf.gz"):
        minicbf.read_header(str(half))
    text = tmp_path / "t_00001.cbf"
    text.write_text("not a cbf\n")
    with pytest.raises(InputFileError, match="t_00001.cbf: not a CBF"):
        minicbf.read_header(str(text))


def test_a_number_that_is_text_is_refused():
    with pytest.raises(MetadataError, match="f.cbf: header line .*Pixel_size"):
        minicbf.parse_header(["Pixel_size 1.7.2e-4 m x 172e-6 m"], "f.cbf")


@pytest.mark.parametrize("line,key,value", [
    ("Detector_distance 250.00 mm", "Detector_distance", 0.25),  # was read as 250 m
    ("Detector_distance 0.25000 m", "Detector_distance", 0.25),
    ("Pixel_size 172 um x 172e-6 m", "Pixel_size", (172e-6, 172e-6)),
    ("Silicon sensor, thickness 450 µm", "sensor", 450e-6),
])  # fmt: skip
def test_lengths_in_mm_or_um_are_read_in_metres(line, key, value):
    got = minicbf.parse_header([line]).values[key]
    got = got[1] if key == "sensor" else got  # (material, thickness)
    assert got == pytest.approx(value, rel=1e-12)
    if key == "Detector_distance":
        assert minicbf.numbers_of([line], key) == pytest.approx((value,), rel=1e-12)


def test_format_and_parse_agree_for_rewritten_values():
    values = {
        "Pixel_size": (516e-6, 344e-6), "Beam_xy": (730 / 3, 865 / 2), "Exposure_time": 0.2892,
        "Count_cutoff": 4664460, "Start_angle": -144.7, "Angle_increment": 0.3,
        "Wavelength": 0.6889, "Detector_distance": 0.16, "Detector_2theta": 30.0,
    }  # fmt: skip
    base = [ln.format(start=-145.0) for ln in PILATUS_HEADER]
    text = minicbf.format_header(values, base)
    lines = [ln[2:] for ln in text.split("\r\n")]
    assert lines[1] == base[1] and "Threshold_setting: 9000 eV" in lines  # kept
    back = minicbf.parse_header(lines).values
    for key, v in values.items():
        assert back[key] == pytest.approx(v, rel=1e-9), key
    assert len(lines) == len(base)  # rewritten in place, nothing appended twice


def test_markers_become_mask_bits_and_come_back():
    px = np.array([[5, -1, -2], [0, 7, -1]], np.int32)
    mask = minicbf.mask_of(px)
    assert mask.tolist() == [[0, 1, 2], [0, 0, 1]]
    stored = np.where(px < 0, 0xFFFFFFFF, px).astype(np.uint32)
    assert np.array_equal(minicbf.cbf_pixels(stored, mask), px)
    assert minicbf.cbf_pixels(stored, None).tolist() == [[5, -1, -1], [0, 7, -1]]


def test_signed_frames_write_every_negative_value_as_invalid():
    """-c sz3's frames decode negative where the background is below its bound, and its
    invalid marker is -(bound + 1): all are -1 in a miniCBF (never a count, never -3)."""
    sz3 = np.array([[5, -1, -3], [0, -9, 7]], np.int32)
    assert minicbf.cbf_pixels(sz3, None).tolist() == [[5, -1, -1], [0, -1, 7]]
    mask = np.array([[0, 0, 2], [0, 0, 0]], np.uint32)
    assert minicbf.cbf_pixels(sz3.astype(np.int16), mask).tolist() == [[5, -1, -2], [0, -1, 7]]


def test_counts_beyond_int32_are_refused_not_wrapped():
    with pytest.raises(ValueError, match="does not fit"):
        minicbf.cbf_pixels(np.array([[2**31]], np.uint32), None)


def test_gzip_header_reads_only_the_start(series):
    with gzip.open(series[0]) as fh:
        whole = fh.read()
    assert whole.index(minicbf.BINARY_START) < 8192  # what read_header had to decompress


def test_a_series_from_number_0_and_a_template_in_a_missing_folder(tmp_path):
    one = np.ones((1, 4, 3), np.int32)
    for k in range(13):  # x_0 ... x_12
        write_cbf_series(tmp_path / "x", one, suffix=".cbf", number0=k)
        os.rename(tmp_path / f"x_{k:05d}.cbf", tmp_path / f"x_{k}.cbf")
    assert len(minicbf.find_series(tmp_path / "x_0.cbf")) == 13
    with pytest.raises(InputFileError, match="no folder"):
        minicbf.find_series(tmp_path / "nowhere" / "x_#####.cbf")
