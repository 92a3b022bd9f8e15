"""MasterRewriter rules on real h5py datasets: excluded pixels after binning, a binned
flatfield's edge cells, saturation values of every kind (integer, -L's fraction, -X's huge)."""

import h5py
import numpy as np
import pytest

from lbnl_dask.layout import SPEC
from lbnl_dask.meta import MasterRewriter, _bin_mean, bin_pixel_mask, later_time
from lbnl_dask.writer import write_master


def rewriter(b=1, saturation=12440, frame_shape=(7, 8), **kw):
    return MasterRewriter(
        n_total=4,
        first=1,
        last=4,
        s=1,
        b=b,
        saturation=saturation,
        bit_depth=32,
        compression="bslz4",
        frame_shape=frame_shape,
        **kw,
    )


def small_master(path, mask, flatfield=None, excluded=38170):
    """A master with a pixel mask, number_of_excluded_pixels and saturation datasets."""
    with h5py.File(path, "w") as f:
        s = f.create_group(SPEC)
        s["pixel_mask"] = mask.astype(np.uint32)
        s["number_of_excluded_pixels"] = np.uint32(excluded)
        s["saturation_value"] = np.uint32(12440)
        s["countrate_correction_count_cutoff"] = np.uint32(12440)
        s["nimages"] = np.uint32(4)
        if flatfield is not None:
            s["flatfield"] = flatfield.astype(np.float32)
        f.create_group("entry/data")
    return str(path)


def test_excluded_pixels_count_the_binned_mask(tmp_path):
    mask = np.zeros((7, 8), np.uint32)
    mask[0, 0] = mask[0, 1] = mask[1, 0] = 1  # 3 pixels, one 3 x 3 cell
    mask[:, 4] = 8  # 7 pixels of a column: 3 cells
    mask[6, 7] = 2  # the partial corner cell
    src = small_master(tmp_path / "s_master.h5", mask, excluded=int(np.count_nonzero(mask)))
    binned = bin_pixel_mask(mask, 3)
    assert np.count_nonzero(mask) == 11 and np.count_nonzero(binned) == 5
    rw = rewriter(b=3)
    with h5py.File(src, "r") as f:
        d = f[SPEC + "/number_of_excluded_pixels"]
        assert rw.new_value(d.name, d) is None  # no mask written: kept
        rw.set_mask(binned)
        new = rw.new_value(d.name, d)
        assert new == np.count_nonzero(binned) and new.dtype == np.uint32
    out = tmp_path / "o_master.h5"
    write_master(str(out), src, ["o_000001.h5"], rw, binned)
    with h5py.File(out, "r") as f:
        written = np.count_nonzero(f[SPEC + "/pixel_mask"][()])
        assert f[SPEC + "/number_of_excluded_pixels"][()] == written == 5
    assert rewriter(b=3, excluded_pixels=9845).excluded_pixels == 9845


@pytest.mark.parametrize(
    "shape,b", [((7, 8), 3), ((9, 10), 3), ((5, 5), 2), ((6, 6), 2), ((3, 7), 4)]
)
def test_binned_flatfield_edge_cells_average_real_pixels_only(tmp_path, shape, b):
    assert (_bin_mean(np.full(shape, 1.5), b) == 1.5).all()
    ff = np.random.default_rng(1).uniform(0.5, 2, shape)
    got = _bin_mean(ff, b)
    for y in range(got.shape[0]):
        for x in range(got.shape[1]):
            assert got[y, x] == pytest.approx(ff[y * b : (y + 1) * b, x * b : (x + 1) * b].mean())
    src = small_master(tmp_path / "f_master.h5", np.zeros(shape), flatfield=np.full(shape, 1.5))
    with h5py.File(src, "r") as f:
        d = f[SPEC + "/flatfield"]
        new = rewriter(b=b, frame_shape=shape).new_value(d.name, d)
    assert new.dtype == np.float32 and (new == 1.5).all()


@pytest.mark.parametrize(
    "saturation,value,dtype",
    [
        (12440, 12440, np.uint32),  # fits the dataset's type: kept
        (49760.0, 49760, np.uint32),  # a whole float is an integer
        (99520 * 70000, 99520 * 70000, np.int64),  # above uint32: int64
        (11.966, 11.966, np.float64),  # after -L: not truncated to 11
        (float(np.finfo(np.float32).max), float(np.finfo(np.float32).max), np.float64),  # after -X
    ],
)
def test_saturation_values_of_every_kind(tmp_path, saturation, value, dtype):
    src = small_master(tmp_path / "x_master.h5", np.zeros((7, 8)))
    rw = rewriter(saturation=saturation)
    with h5py.File(src, "r") as f:
        for name in ("saturation_value", "countrate_correction_count_cutoff"):
            d = f[f"{SPEC}/{name}"]
            new = rw.new_value(d.name, d)
            assert new.dtype == dtype and new == value
    out = tmp_path / "o_master.h5"
    write_master(str(out), src, ["o_000001.h5"], rw, None)
    with h5py.File(out, "r") as f:
        assert f[SPEC + "/saturation_value"][()] == value
        assert f[SPEC + "/saturation_value"].dtype == dtype


def test_rescaled_integers_widen_and_per_frame_times_are_summed(tmp_path):
    """A uint8 pixel size in um at -b 4 is 300 (in a wider type), not 44; an nframes_sum of
    uint8 100 at -s 3 is 300; a per-frame count time is summed over each output frame's
    frames (2 output frames of 3 and 1 here); floats keep their type; text at a rescaled
    path (linked from another file: read_meta refuses the master's own) is copied as it is."""
    from lbnl_dask.meta import rescaled

    with h5py.File(tmp_path / "m.h5", "w") as f:
        f["d/x_pixel_size"] = np.uint8(75)
        f["d/y_pixel_size"] = np.float32(7.5e-5)
        f[SPEC + "/nframes_sum"] = np.uint8(100)
        f["d/count_time"] = np.array([1, 2, 3, 4], np.float32)
        f["d/frame_time"] = np.float32(0.1)
        f["d/fast_pixel_direction"] = b"0.000075"
        rw = MasterRewriter(n_total=4, first=1, last=4, s=3, b=4, saturation=1, bit_depth=32,
                            compression="bslz4", frame_shape=(8, 8))  # fmt: skip
        x = rw.new_value("/d/x_pixel_size", f["d/x_pixel_size"])
        assert x == 300 and x.dtype == np.int64
        y = rw.new_value("/d/y_pixel_size", f["d/y_pixel_size"])
        assert y == np.float32(3e-4) and y.dtype == np.float32
        n = rw.new_value(SPEC + "/nframes_sum", f[SPEC + "/nframes_sum"])
        assert n == 300 and n.dtype == np.int64
        np.testing.assert_array_equal(rw.new_value("/d/count_time", f["d/count_time"]), [6, 4])
        assert rw.new_value("/d/frame_time", f["d/frame_time"]) == np.float32(0.3)
        assert rw.new_value("/d/fast_pixel_direction", f["d/fast_pixel_direction"]) is None
    assert rescaled("/entry/sample/goniometer/phi_increment")
    assert rescaled("/x/detectorModule_001/data_origin") and not rescaled("/x/y/data_origin")
    assert not rescaled("/entry/sample/goniometer/omega_start")
    assert not rescaled("/entry/instrument/detector/description")


@pytest.mark.parametrize(
    "text, seconds, later",
    [
        ("2019-10-11T10:03:21.343+02:00", 3.25, "2019-10-11T10:03:24.593+02:00"),  # Dectris'
        ("2024-07-24T10:09:13Z", 3, "2024-07-24T10:09:16Z"),  # NXmx': the zone kept as Z
        ("2024-07-24T10:09:13Z", 0.99, "2024-07-24T10:09:13.990Z"),  # decimals the shift needs
        ("2024-07-24 10:09:59.123456", 0.0125, "2024-07-24 10:09:59.135956"),
        ("2024-12-31T23:59:59.5\x00\x00", 0.75, "2025-01-01T00:00:00.25"),  # (NUL padded)
        ("2024-07-24T10:09", 120, "2024-07-24T10:11"),
        ("2019-10-11T10:03:21,343+0200", 0.5, "2019-10-11T10:03:21,843+0200"),  # as written
        ("2019-10-11T10:03:21.3434-00:00", 1e-4, "2019-10-11T10:03:21.3435-00:00"),
        ("2019-10-11T10:03:21.343Z", 0.0004, "2019-10-11T10:03:21.3434Z"),
        ("2019-10-11T10:03:21.3436Z", 0.0, "2019-10-11T10:03:21.3436Z"),
        ("2019-10-11T10:03:21Z", 99e10, None),  # beyond datetime's years
        ("2024-07-24", 3, None),  # no time of day
        ("yesterday", 3, None),
    ],
)
def test_later_time_keeps_the_form_of_the_text(text, seconds, later):
    assert later_time(text, seconds) == later
