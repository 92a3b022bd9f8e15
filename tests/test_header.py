"""A master's metadata: read into DetectorMeta; fields of the wrong type or range refused or
warned about when the dataset is opened; a data file given as the master refused."""

import os
import re
import shutil

import h5py
import numpy as np
import pytest

import lbnl_dask
from lbnl_dask import cli
from lbnl_dask.errors import MetadataError, NotEigerError
from lbnl_dask.layout import DET, PIXEL_MASK, SPEC


def test_metadata_of_synthetic_master(tiny):
    m = lbnl_dask.read_meta(tiny)
    assert (m.nx, m.ny) == (132, 102)
    assert m.x_pixel_size == pytest.approx(75e-6) and m.y_pixel_size == pytest.approx(75e-6)
    assert m.wavelength == pytest.approx(0.9762, rel=1e-6)
    assert m.count_time == pytest.approx(0.0099) and m.frame_time == pytest.approx(0.01)
    assert m.omega.shape == (20,) and m.omega[1] - m.omega[0] == pytest.approx(0.1)
    assert m.omega_increment == pytest.approx(0.1)
    assert m.countrate_cutoff == 12440 and m.saturation_value == 12440
    assert m.bit_depth_image == 16
    assert m.eiger_fw_version.startswith("release")
    assert m.pixel_mask_path == PIXEL_MASK
    assert 0 < m.beam_center_x < 132 and 0 < m.detector_distance < 1


def copy_with(tiny, tmp_path, path, value):
    """A copy of the tiny dataset whose master has ``path`` replaced by ``value``."""
    d = tmp_path / "in"
    shutil.copytree(os.path.dirname(tiny), d)
    master = d / os.path.basename(tiny)
    with h5py.File(master, "r+") as f:
        attrs = dict(f[path].attrs)
        del f[path]
        f[path] = value
        f[path].attrs.update(attrs)
    return str(master)


@pytest.mark.parametrize("path,value,msg", [
    (DET + "/x_pixel_size", np.bytes_(b"0.000075"),
     "x_pixel_size is stored as |S8 ('0.000075'), not as a number"),
    (SPEC + "/nimages", np.bytes_(b"20"), "nimages is stored as |S2"),
    (SPEC + "/countrate_correction_count_cutoff", np.int32(-1),
     "countrate_cutoff is -1: it must be a positive number"),
    (DET + "/y_pixel_size", np.float64(np.nan), "y_pixel_size is nan"),
    (DET + "/x_pixel_size", np.float64(-7.5e-5), "x_pixel_size is -7.5e-05"),
    (SPEC + "/ntrigger", np.int32(-2), "ntrigger is -2"),
    (SPEC + "/nimages", np.float64(20.5), "nimages is 20.5, not a whole number"),
    (SPEC + "/frame_count_time", np.bytes_(b"0.0099"),
     "frame_count_time is stored as |S6 ('0.0099'), not as a number"),
    ("/entry/sample/goniometer/omega_range_total", np.bytes_(b"0.8"),
     "/entry/sample/goniometer/omega_range_total is stored as |S3 ('0.8'), not as a number"),
    (SPEC + "/detectorModule_001/data_origin", np.bytes_(b"68 0"),
     "detectorModule_001/data_origin is stored as |S4 ('68 0'), not as a number"),
])  # fmt: skip
def test_fields_that_cannot_be_used_are_one_line_errors(tiny, tmp_path, capsys, path, value, msg):
    master = copy_with(tiny, tmp_path, path, value)
    with pytest.raises(MetadataError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        lbnl_dask.read_meta(master)
    out = tmp_path / "out"
    rc = cli.main(["-i", master, "-o", str(out / "o"), "--scheduler", "threads"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and master in err and msg in err, err
    assert not out.exists() or os.listdir(out) == []


def test_odd_but_usable_fields_are_warned_about_in_the_report(tiny, tmp_path):
    master = copy_with(tiny, tmp_path, DET + "/beam_center_x", np.float64(np.nan))
    assert lbnl_dask.read_meta(master).warnings == [
        "beam_center_x is nan in the master: copied as it is"
    ]
    report = lbnl_dask.compress(master, str(tmp_path / "o"), bin_range=2, scheduler="threads")
    assert "master: beam_center_x is nan in the master: copied as it is" in report.notes
    assert "note           master: beam_center_x is nan" in str(report)
    assert lbnl_dask.read_meta(tiny).warnings == []


def test_summed_fields_that_cannot_be_right_are_warned_about_not_written_quietly(tiny, tmp_path):
    """The output multiplies frame_count_time and nframes_sum by the sum: a negative time is
    copied (x s) with a note; an nframes_sum of 0 is taken as 1 (the output's is s, not 0)."""
    master = copy_with(tiny, tmp_path, SPEC + "/nframes_sum", np.uint32(0))
    with h5py.File(master, "r+") as f:
        del f[SPEC + "/frame_count_time"]
        f[SPEC + "/frame_count_time"] = np.float32(-1)
    assert lbnl_dask.read_meta(master).warnings == [
        "frame_count_time is -1.0 in the master: copied (x the sum) as it is",
        "nframes_sum is 0 in the master: taken as 1 (the output's is the frames summed into "
        "each output frame)",
    ]
    out = str(tmp_path / "o")
    report = lbnl_dask.compress(master, out, sum_range=2, scheduler="threads")
    assert any(n.startswith("master: nframes_sum is 0") for n in report.notes)
    with h5py.File(out + "_master.h5") as f:
        assert f[SPEC + "/nframes_sum"][()] == 2
        assert f[SPEC + "/frame_count_time"][()] == -2


def test_number_of_cycles_is_summed(tiny, tmp_path):
    """NXdetector's number_of_cycles (readouts accumulated in a frame) follows the sum."""
    master = copy_with(tiny, tmp_path, DET + "/count_time", np.float32(0.0099))
    with h5py.File(master, "r+") as f:
        f[DET + "/number_of_cycles"] = np.int32(1)
    out = str(tmp_path / "o")
    lbnl_dask.compress(master, out, sum_range=4, scheduler="threads")
    with h5py.File(out + "_master.h5") as f:
        assert f[DET + "/number_of_cycles"][()] == 4


def test_a_pixel_size_in_other_units_is_warned_about(tiny, tmp_path):
    """0.075 without units (75 um in mm) would be written as 0.15 m at -b 2: a note says so."""
    master = copy_with(tiny, tmp_path, DET + "/x_pixel_size", np.float32(0.075))
    with h5py.File(master, "r+") as f:
        f[DET + "/x_pixel_size"].attrs.pop("units", None)
    warned = lbnl_dask.read_meta(master).warnings
    assert len(warned) == 1 and warned[0].startswith(
        "x_pixel_size is 0.075 m in the master, not a detector pixel's (1 um to 5 mm"
    )
    with h5py.File(master, "r+") as f:  # with its units, the same number is right
        f[DET + "/x_pixel_size"].attrs["units"] = "mm"
    assert lbnl_dask.read_meta(master).warnings == []


def test_a_beam_centre_given_as_a_length_is_pixels_to_readers_and_kept_in_the_output(
    tiny, tmp_path
):
    """NXmx lets beam_center_x/y be lengths (units mm): the position in pixels is that over
    the pixel size, and binning leaves a length alone (only pixels are divided by b): the
    output master keeps 39.47 mm, and its miniCBF headers say Beam_xy in pixels."""
    from lbnl_dask import cbf_output

    master = copy_with(tiny, tmp_path, DET + "/beam_center_x", np.float32(39.47))
    with h5py.File(master, "r+") as f:
        f[DET + "/beam_center_x"].attrs["units"] = "mm"
        px, py = f[DET + "/x_pixel_size"][()], f[DET + "/beam_center_y"][()]
    meta = lbnl_dask.read_meta(master)
    assert meta.beam_center_x == pytest.approx(float(np.float32(39.47)) * 1e-3 / px)
    for units in ("millimetre", "millimeter"):  # spelt out: the same length
        with h5py.File(master, "r+") as f:
            f[DET + "/beam_center_x"].attrs["units"] = units
        assert lbnl_dask.read_meta(master).beam_center_x == pytest.approx(meta.beam_center_x)
    with h5py.File(master, "r+") as f:
        f[DET + "/beam_center_x"].attrs["units"] = "mm"
    assert meta.beam_center_y == pytest.approx(py)  # in pixels, as before
    report = lbnl_dask.compress(master, str(tmp_path / "o"), bin_range=2, hcomp_scale=0,
                                scheduler="sync", fidelity=False)  # fmt: skip
    with h5py.File(report.master, "r") as f:
        assert f[DET + "/beam_center_x"][()] == np.float32(39.47)
        assert f[DET + "/beam_center_y"][()] == pytest.approx(py / 2)
    out = lbnl_dask.read_meta(report.master)
    assert out.beam_center_x == pytest.approx(meta.beam_center_x / 2, rel=1e-6)
    cj = cbf_output.to_cbf(report.master, str(tmp_path / "c"), last_image=1, scheduler="sync")
    text = open(cj.paths[0], "rb").read(4000).decode("latin-1")
    x, y = re.search(r"Beam_xy \(([-\d.]+), ([-\d.]+)\) pixels", text).groups()
    assert float(x) == pytest.approx(out.beam_center_x, rel=1e-4)
    assert float(y) == pytest.approx(py / 2, rel=1e-4)


def test_missing_fields_the_output_needs_are_warned_about_and_nimages_is_written(tiny, tmp_path):
    """A master without x_pixel_size: the output cannot have one either (a note says so);
    without nimages, the output's own frame count is written (readers count by it)."""
    d = tmp_path / "in"
    shutil.copytree(os.path.dirname(tiny), d)
    master = d / os.path.basename(tiny)
    with h5py.File(master, "r+") as f:
        del f[DET + "/x_pixel_size"]
        del f[SPEC + "/nimages"]
    assert lbnl_dask.read_meta(master).warnings == [
        "no x_pixel_size in the master: the output has none either (XDS' plugins need it; "
        "lbnl-validate fails such a master)"
    ]
    report = lbnl_dask.compress(master, str(tmp_path / "o"), bin_range=2, sum_range=2,
                                scheduler="threads")  # fmt: skip
    assert any("no x_pixel_size" in n for n in report.notes)
    with h5py.File(tmp_path / "o_master.h5", "r") as f:
        assert f[SPEC + "/nimages"][()] == 10 and f[SPEC + "/ntrigger"][()] == 1


def test_a_count_cutoff_other_than_the_saturation_value_is_noted(tiny, tmp_path):
    master = copy_with(tiny, tmp_path, SPEC + "/countrate_correction_count_cutoff", np.uint32(500))
    meta = lbnl_dask.read_meta(master)
    assert meta.overload == 500 and meta.warnings == [
        "countrate_correction_count_cutoff 500 and saturation_value 12440 differ in the "
        "master: counts from 500 on are taken as saturated (the cutoff)"
    ]


@pytest.mark.parametrize("value, shown", [(np.int32(-1), "-1"), (np.uint32(9999), "9999"),
                                           (np.bytes_(b"12440"), "'12440'")])  # fmt: skip
def test_a_second_saturation_value_that_differs_is_noted(tiny, tmp_path, value, shown):
    """detectorSpecific/saturation_value beside detector/saturation_value (Dectris writes
    both): one that differs, or cannot be right, is named; the first is used, and the
    output writes its own value in both."""
    master = copy_with(tiny, tmp_path, SPEC + "/saturation_value", value)
    meta = lbnl_dask.read_meta(master)
    assert meta.saturation_value == 12440
    assert meta.warnings == [
        f"{SPEC}/saturation_value is {shown}, not {DET}/saturation_value's 12440: 12440 is "
        "used (the output writes its own value in both)"
    ]
    assert lbnl_dask.read_meta(copy_with(tiny, tmp_path / "same", SPEC + "/saturation_value",
                                         np.uint32(12440))).warnings == []  # fmt: skip


def test_omega_shorter_than_the_images_and_a_nan_increment_are_noted(tiny, tmp_path):
    master = copy_with(tiny, tmp_path, "/entry/sample/goniometer/omega", np.arange(5.0))
    report = lbnl_dask.compress(master, str(tmp_path / "o"), bin_range=2, sum_range=2,
                                scheduler="threads")  # fmt: skip
    note = "master: omega holds 5 angles for 20 images: copied as it is, not one per output frame"
    assert note in report.notes
    master = copy_with(tiny, tmp_path / "nan", "/entry/sample/goniometer/omega_increment",
                       np.float64(np.nan))  # fmt: skip
    assert "omega_increment is nan in the master: copied as it is" in (
        lbnl_dask.read_meta(master).warnings
    )
    master = copy_with(tiny, tmp_path / "long", "/entry/sample/goniometer/omega",
                       0.1 * np.arange(40.0))  # fmt: skip
    report = lbnl_dask.compress(master, str(tmp_path / "long" / "o"), sum_range=2,
                                scheduler="sync", fidelity=False)  # fmt: skip
    assert "master: omega holds 40 angles for 20 images: the first 20 are used" in report.notes


def test_nimages_of_0_is_noted(tiny, tmp_path):
    master = copy_with(tiny, tmp_path, SPEC + "/nimages", np.uint64(0))
    assert lbnl_dask.read_meta(master).warnings == [
        "nimages is 0 in the master: every frame of the data files is used"
    ]
    assert lbnl_dask.open_dataset(master).shape[0] == 20


def test_a_sum_larger_than_nimages_allows_says_what_limits_it(tiny, tmp_path):
    """A master announcing 1 image over data files of 20: -s 2 is refused, and the error
    names the master's count as the limit (the note saying so comes only on a run that
    works)."""
    master = copy_with(tiny, tmp_path, SPEC + "/nimages", np.uint64(1))
    with pytest.raises(lbnl_dask.LbnlDaskError) as e:
        lbnl_dask.compress(master, str(tmp_path / "o"), sum_range=2, scheduler="sync")
    assert str(e.value) == (f"{master}: sum (-s 2) is larger than the 1 frames selected "
                            "(nimages x ntrigger in the master is 1; the data files hold "
                            "20)")  # fmt: skip


def test_a_data_file_given_as_the_master_names_its_master(tiny, tmp_path, capsys):
    data = os.path.join(os.path.dirname(tiny), "tiny_data_000001.h5")
    with pytest.raises(
        NotEigerError,
        match="a data file .* not a master: give its master, probably .*tiny_master.h5$",
    ):
        lbnl_dask.open_dataset(data)
    alone = tmp_path / "x_data_000003.h5"
    shutil.copy(data, alone)
    rc = cli.main(["-i", str(alone), "-o", str(tmp_path / "o"), "--scheduler", "threads"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "probably" in err and "x_master.h5 (not found beside it)" in err, err
    assert sorted(os.listdir(tmp_path)) == ["x_data_000003.h5"]


def test_sums_across_a_jump_of_the_angle_or_two_triggers_are_noted(tiny, tmp_path):
    """-s sums consecutive images: across the jump between two wedges (two triggers at 0
    and 90 deg), or over stills, the output frames are not one rotation's; a note says so.
    A continuous rotation, whatever its triggers, has none."""
    from lbnl_dask.meta import DetectorMeta
    from lbnl_dask.pipeline import sum_notes

    wedges = np.concatenate([0.1 * np.arange(10), 90 + 0.1 * np.arange(10)])
    meta = DetectorMeta(master="m", nimages=10, ntrigger=2, omega=wedges)
    (note,) = sum_notes(meta, 1, 20, 3)
    assert note.startswith("master: omega jumps from 0.9 to 90 deg between images 10 and 11 "
                           "(steps of 0.1 deg) inside 1 sum group(s) of -s 3")  # fmt: skip
    assert sum_notes(meta, 1, 20, 2) == []  # groups of 2 end at image 10: none spans it
    assert sum_notes(meta, 2, 20, 2)  # from image 2, a group holds images 10 and 11
    meta.omega = (355 + 0.5 * np.arange(20)) % 360  # across 360 deg: one sweep
    assert sum_notes(meta, 1, 20, 3) == []
    meta.omega = 0.1 * np.arange(20)  # one sweep in 20 triggers of one image: nothing to say
    meta.nimages, meta.ntrigger = 1, 20
    assert sum_notes(meta, 1, 20, 4) == []
    meta.omega = np.zeros(20)
    assert (
        "omega does not move, nor does another axis (stills, or a grid scan)"
        in (sum_notes(meta, 1, 20, 2)[0])
    )
    phi = 0.1 * np.arange(20)  # a phi scan (omega fixed): the scan axis' angles count
    assert sum_notes(meta, 1, 20, 2, angles=phi, axis="phi") == []
    phi[10:] += 45
    assert sum_notes(meta, 1, 20, 3, angles=phi, axis="phi")[0].startswith("master: phi jumps")
    jitter = 0.1 * np.arange(20) + np.random.default_rng(0).normal(0, 0.004, 20)
    assert sum_notes(meta, 1, 20, 3, angles=jitter) == []  # a readback's jitter is no jump
    wedges_nan = wedges.copy()
    wedges_nan[3] = np.nan  # one unknown angle: the jump is still seen
    assert "jumps from 0.9 to 90" in sum_notes(meta, 1, 20, 3, angles=wedges_nan)[0]
    meta.omega, meta.nimages, meta.ntrigger = None, 10, 2  # no angles: the triggers tell
    assert "2 triggers of 10 images: 1 sum group(s) of -s 3" in sum_notes(meta, 1, 20, 3)[0]
    assert sum_notes(meta, 1, 20, 1) == [] == sum_notes(meta, 1, 20, 2)
    master = copy_with(tiny, tmp_path, "/entry/sample/goniometer/omega", wedges)
    report = lbnl_dask.compress(master, str(tmp_path / "o"), sum_range=3, hcomp_scale=0,
                                scheduler="sync", fidelity=False)  # fmt: skip
    assert any("omega jumps from 0.9 to 90 deg" in n for n in report.notes), report.notes
    master = copy_with(tiny, tmp_path / "phi", "/entry/sample/goniometer/omega", np.zeros(20))
    with h5py.File(master, "r+") as f:  # Dectris' phi scan: omega fixed, phi moving
        del f["/entry/sample/goniometer/phi"]
        f["/entry/sample/goniometer/phi"] = 0.1 * np.arange(20)
    report = lbnl_dask.compress(master, str(tmp_path / "phi" / "o"), sum_range=2,
                                hcomp_scale=0, scheduler="sync", fidelity=False)  # fmt: skip
    assert not any("move" in n or "jumps" in n for n in report.notes), report.notes


def test_a_beam_centre_length_without_a_pixel_size_is_named_as_such(tiny, tmp_path):
    """A beam centre in mm cannot be turned into pixels without the pixel size: the note says
    that (and that the output copies it), not that the master has no beam centre."""
    master = copy_with(tiny, tmp_path, DET + "/beam_center_x", np.float32(4.2))
    with h5py.File(master, "r+") as f:
        f[DET + "/beam_center_x"].attrs["units"] = "mm"
        del f[DET + "/x_pixel_size"]
    warned = lbnl_dask.read_meta(master).warnings
    assert warned[0] == ("beam_center_x is a length (mm) and there is no x_pixel_size: readers "
                         "cannot place it in pixels (copied as it is)")  # fmt: skip
    assert not any(w.startswith("no beam_center_x") for w in warned)
    assert any(w.startswith("no x_pixel_size") for w in warned)


def test_every_per_frame_axis_short_or_with_nan_angles_is_noted(tiny, tmp_path):
    """Not omega only: an omega_end or phi shorter than the images is copied as it is and
    noted; so is a NaN angle (the output's own start angle is then NaN)."""
    g = "/entry/sample/goniometer"
    master = copy_with(tiny, tmp_path, g + "/omega_end", 0.1 * np.arange(1.0, 8.0))
    with h5py.File(master, "r+") as f:
        f[g + "/omega"][3] = np.nan
        del f[g + "/phi"]
        f[g + "/phi"] = np.zeros(6)
    report = lbnl_dask.compress(master, str(tmp_path / "o"), sum_range=2, scheduler="sync",
                                fidelity=False)  # fmt: skip
    short = ": copied as it is, not one per output frame"
    for note in (f"omega_end holds 7 angles for 20 images{short}",
                 f"phi holds 6 angles for 20 images{short}",
                 "omega holds 1 NaN angle (unknown): copied as NaN"):  # fmt: skip
        assert f"master: {note}" in report.notes, report.notes
    # a phi scan cut short, omega fixed: not "stills", the axis that moves is phi
    master = copy_with(tiny, tmp_path / "phi", g + "/omega", np.zeros(20))
    with h5py.File(master, "r+") as f:
        del f[g + "/phi"]
        f[g + "/phi"] = 0.1 * np.arange(6.0)
    report = lbnl_dask.compress(master, str(tmp_path / "phi" / "o"), sum_range=2,
                                scheduler="sync", fidelity=False)  # fmt: skip
    assert f"master: phi holds 6 angles for 20 images{short}" in report.notes
    assert not any("does not move" in n for n in report.notes), report.notes


@pytest.mark.parametrize("path, value, units, field, want", [
    (DET + "/beam_center_x", 5.7975, "MM", "beam_center_x", 5.7975e-3 / 75e-6),
    (DET + "/beam_center_x", 5.7975, "millimeters", "beam_center_x", 5.7975e-3 / 75e-6),
    (DET + "/x_pixel_size", 75.0, "\u03bcm", "x_pixel_size", 75e-6),  # a Greek mu
    (DET + "/x_pixel_size", 0.075, "Millimetres", "x_pixel_size", 75e-6),
    ("/entry/instrument/beam/incident_wavelength", 12700.7, "eV", "wavelength",
     12398.419843320026 / 12700.7),
    ("/entry/instrument/beam/incident_wavelength", 12.7007, "keV", "wavelength",
     12398.419843320026 / 12700.7),
    ("/entry/instrument/beam/incident_wavelength", 0.09762, "nanometers", "wavelength", 0.9762),
    ("/entry/instrument/beam/incident_wavelength", 9.762e-11, "m", "wavelength", 0.9762),
])  # fmt: skip
def test_units_are_read_in_any_usual_spelling(tiny, tmp_path, path, value, units, field, want):
    """Case, plurals, a Greek mu, a wavelength as a length in any unit or as an energy: read
    in the DetectorMeta's units (m, pixels, ångström), never taken as pixels or metres."""
    master = copy_with(tiny, tmp_path, path, np.float64(value))
    with h5py.File(master, "r+") as f:
        f[path].attrs["units"] = units
    meta = lbnl_dask.read_meta(master)
    assert getattr(meta, field) == pytest.approx(want, rel=1e-6)  # (float32 pixel sizes)
    assert not any(w.startswith(field) for w in meta.warnings), meta.warnings


def test_angles_in_radians_are_degrees_to_readers(tiny, tmp_path):
    g = "/entry/sample/goniometer"
    master = copy_with(tiny, tmp_path, g + "/omega", np.deg2rad(0.1 * np.arange(20.0)))
    with h5py.File(master, "r+") as f:
        f[g + "/omega"].attrs["units"] = "rad"
        f[g + "/omega_increment"][()] = np.deg2rad(0.1)
        f[g + "/omega_increment"].attrs["units"] = "radians"
    meta = lbnl_dask.read_meta(master)
    np.testing.assert_allclose(meta.omega, 0.1 * np.arange(20.0))
    assert meta.omega_increment == pytest.approx(0.1)


def test_a_flatfield_not_of_the_frames_shape_is_noted(tiny, tmp_path):
    """A flatfield of the frames' shape is binned with them; any other is copied as it is,
    beside binned frames: a note says so."""
    master = copy_with(tiny, tmp_path, SPEC + "/nimages", np.uint32(20))
    with h5py.File(master, "r+") as f:
        f[SPEC + "/flatfield"] = np.ones((132, 102), np.float32)  # transposed
    report = lbnl_dask.compress(master, str(tmp_path / "o"), bin_range=2, scheduler="sync",
                                fidelity=False)  # fmt: skip
    assert (f"master: {SPEC.lstrip('/')}/flatfield is (132, 102), not the frames' (102, 132): "
            "copied as it is, not binned") in report.notes  # fmt: skip


def test_a_float_pixel_mask_masks_every_pixel_that_is_not_zero(tiny, tmp_path):
    """A float mask's 0.5, NaN or -1 mask their pixels (flag 1); cast to uint32, 0.5 was 0 and
    the pixel came back as valid. Whole flags stay as they are."""
    from lbnl_dask import open_dataset

    with h5py.File(tiny) as f:
        flags = f[SPEC + "/pixel_mask"][()]
    odd = flags.astype(np.float32)
    odd[0, :4] = [0.5, np.nan, -1.0, 4.0]
    master = copy_with(tiny, tmp_path, SPEC + "/pixel_mask", odd)
    got = np.asarray(open_dataset(master).pixel_mask())
    assert got.dtype == np.uint32 and list(got[0, :4]) == [1, 1, 1, 4]
    np.testing.assert_array_equal(got[1:], flags[1:])


def test_counts_and_module_geometry_that_cannot_be_right_are_noted(tiny, tmp_path):
    module = SPEC + "/detectorModule_001"
    master = copy_with(tiny, tmp_path, SPEC + "/nframes_sum", np.array([1, 0], np.uint32))
    with h5py.File(master, "r+") as f:
        f[DET + "/bit_depth_readout"][()] = 0
        f[SPEC + "/number_of_excluded_pixels"] = np.int32(-5)
        f[module + "/data_origin"][()] = [-68, 0]
    warned = lbnl_dask.read_meta(master).warnings
    notes = [
        "nframes_sum is 0 in places in the master: taken as 1",
        "bit_depth_readout is 0 in the master: copied as it is",
        "number_of_excluded_pixels is -5 in the master: copied as it is",
        f"{module.lstrip('/')}/data_origin is [-68, 0] in the master: binned as it is",
    ]
    for note in notes:
        assert any(w.startswith(note) for w in warned), (note, warned)
    assert lbnl_dask.read_meta(tiny).warnings == []


@pytest.mark.parametrize("units", [np.bytes_("µm".encode()), np.bytes_("μm".encode()),
                                   np.bytes_(b"\xb5m")])  # fmt: skip
def test_a_fixed_length_byte_units_attribute_with_a_micro_sign_is_read(tiny, tmp_path, units):
    """Dectris and nexgen write fixed-length byte attributes: a UTF-8 (or Latin-1) µ in them
    is a micro sign, not a character lost (which left the value in metres: 450 m thick)."""
    master = copy_with(tiny, tmp_path, DET + "/sensor_thickness", np.float32(450))
    with h5py.File(master, "r+") as f:
        f[DET + "/sensor_thickness"].attrs["units"] = units
    assert lbnl_dask.read_meta(master).sensor_thickness == pytest.approx(450e-6)


def _renamed_detector(tiny, tmp_path, *names):
    """A copy of the tiny dataset whose NXdetector group is renamed ``names[0]`` (NXmx leaves
    the name free); further names are copies of it."""
    with h5py.File(tiny) as f:
        count_time = f[DET + "/count_time"][()]
    master = copy_with(tiny, tmp_path, DET + "/count_time", count_time)  # a copy, as it was
    with h5py.File(master, "r+") as f:
        f.move(DET, f"/entry/instrument/{names[0]}")
        for extra in names[1:]:
            f.copy(f"/entry/instrument/{names[0]}", f"/entry/instrument/{extra}")
    return master


def test_a_detector_group_of_another_name_is_read_and_rewritten_where_it_is(tiny, tmp_path):
    """NXmx names the NXdetector group freely (here ``eiger_1``): its pixel size, mask and
    saturation are read there, the binned values written there, and no second NXdetector
    (``detector``) is created. XDS' Neggia reads only the Dectris path: a note says so and
    lbnl-validate fails the output, naming the group."""
    master = _renamed_detector(tiny, tmp_path, "eiger_1")
    want, got = lbnl_dask.read_meta(tiny), lbnl_dask.read_meta(master)
    assert (got.x_pixel_size, got.beam_center_x, got.overload, got.pixel_mask_path) == (
        want.x_pixel_size, want.beam_center_x, want.overload,
        "/entry/instrument/eiger_1/detectorSpecific/pixel_mask",
    )  # fmt: skip
    assert got.warnings and "the detector group is /entry/instrument/eiger_1" in got.warnings[0]
    out, ref = str(tmp_path / "o"), str(tmp_path / "ref")
    report = lbnl_dask.compress(master, out, bin_range=2, scheduler="threads")
    lbnl_dask.compress(tiny, ref, bin_range=2, scheduler="threads")
    assert any("detector group is /entry/instrument/eiger_1" in n for n in report.notes)
    assert not any("no x_pixel_size" in n or "no saturation" in n for n in report.notes)
    with h5py.File(out + "_master.h5") as f, h5py.File(ref + "_master.h5") as r:
        inst = f["/entry/instrument"]
        assert [k for k in inst if inst[k].attrs.get("NX_class") == b"NXdetector"] == ["eiger_1"]
        names = []
        r[DET].visit(names.append)
        for name in names:  # the same binned values, mask and saturation as from "detector"
            a, b = f["/entry/instrument/eiger_1/" + name], r[DET + "/" + name]
            if isinstance(b, h5py.Dataset):
                assert np.array_equal(a[()], b[()]), name
        assert f["/entry/instrument/eiger_1/x_pixel_size"][()] == 2 * want.x_pixel_size
    rc = cli_validate(out + "_master.h5")
    assert rc[0] == 1 and "the detector group is /entry/instrument/eiger_1" in rc[1]


def test_several_detector_groups_none_at_the_dectris_path_is_a_one_line_error(
    tiny, tmp_path, capsys
):
    master = _renamed_detector(tiny, tmp_path, "eiger_1", "eiger_2")
    with pytest.raises(MetadataError, match="several NXdetector groups"):
        lbnl_dask.read_meta(master)
    rc = cli.main(["-i", master, "-o", str(tmp_path / "out" / "o"), "--scheduler", "threads"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "eiger_1, /entry/instrument/eiger_2" in err


def cli_validate(master):
    """lbnl-validate's exit status and its printed lines."""
    import contextlib
    import io

    from lbnl_dask import validate

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = validate.main([master])
    return rc, buf.getvalue()


@pytest.mark.parametrize("path,value,note", [
    (DET + "/x_pixel_size", np.array([7.5e-5, 7.5e-5], np.float32),
     "x_pixel_size holds 2 values in the master, not one"),
    (DET + "/detector_distance", np.array([0.1, 0.2], np.float32),
     "detector_distance holds 2 values in the master, not one"),
    (DET + "/count_time", np.float64(1e40),
     "count_time is 1e+40 s in the master, longer than a day"),
    (SPEC + "/nframes_sum", np.float32(2.5),
     "nframes_sum is 2.5 in the master, not a whole number"),
    (SPEC + "/nframes_sum", np.uint64(2**63), "nframes_sum is 9.22337e+18 in the master"),
    (DET + "/beam_center_x", np.float32(5000), "beam_center_x is 5000 pixels in the master, more "
     "than a detector's width (132) off it"),
])  # fmt: skip
def test_single_values_that_cannot_be_right_are_noted(tiny, tmp_path, path, value, note):
    """Each had been copied (or multiplied) into the output without a word (a QA pass)."""
    master = copy_with(tiny, tmp_path, path, value)
    assert any(w.startswith(note) for w in lbnl_dask.read_meta(master).warnings), note
    if path.endswith("nframes_sum") and value.dtype == np.uint64:  # x 2 had wrapped round to 0
        out = str(tmp_path / "o")
        lbnl_dask.compress(master, out, sum_range=2, scheduler="threads")
        with h5py.File(out + "_master.h5") as f:
            assert f[path][()] == 2.0**64


def test_units_not_known_are_noted(tiny, tmp_path):
    master = copy_with(tiny, tmp_path, DET + "/x_pixel_size", np.float32(7.5e-5))
    with h5py.File(master, "r+") as f:
        f[DET + "/x_pixel_size"].attrs["units"] = "furlong"
    assert "x_pixel_size is in units 'furlong', not known here: read as m" in (
        lbnl_dask.read_meta(master).warnings)  # fmt: skip
    assert lbnl_dask.read_meta(tiny).warnings == []
    with h5py.File(master, "r+") as f:  # spellings that are known: no note
        f[DET + "/x_pixel_size"].attrs["units"] = "Micrometers"
        f[DET + "/x_pixel_size"][()] = 75
        f[DET + "/beam_center_x"].attrs["units"] = "px"
        f[DET + "/count_time"].attrs["units"] = "sec"
    assert lbnl_dask.read_meta(master).warnings == []
