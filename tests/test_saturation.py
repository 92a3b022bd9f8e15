"""Overloads and the valid counts beside them, end to end: an overload is always written as
the saturation and a valid count never is, whatever lowers the output's saturation (a
codec's range, the output type, -S) and whatever the lossy round trip does to its
neighbours."""

import os

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest

import lbnl_dask
from lbnl_dask import transform as T
from lbnl_dask.layout import CUTOFFS, DATA, DET, SATURATIONS, SPEC
from lbnl_dask.synth import make_dataset


def planted(tmp_path, dtype, values, saturation=None, n=4):
    """A tiny uncompressed dataset of ``n`` frames whose pixels ``values`` ((slices, count)
    pairs) are set in every frame, every other count kept below the cutoff, and (if given) every
    saturation field of the master set to ``saturation``."""
    master = make_dataset(tmp_path / "in" / "t", "tiny", nframes=n, frames_per_file=n,
                          dtype=dtype, compression="none")  # fmt: skip
    cutoff = lbnl_dask.read_meta(master).overload
    with h5py.File(master.replace("_master.h5", "_data_000001.h5"), "r+") as f:
        frames = f[DATA][()]
        valid = frames != np.iinfo(frames.dtype).max
        frames[valid] = np.minimum(frames[valid], min(cutoff, saturation or cutoff) - 100)
        for where, v in values:
            frames[(slice(None),) + where] = v
        f[DATA][...] = frames
    if saturation is not None:
        with h5py.File(master, "r+") as f:
            for p in SATURATIONS + CUTOFFS:
                if p in f:
                    f[p][()] = saturation
    return master


def output(rep):
    """The output frames as written (float ones too, which lbnl-compress does not read)."""
    frames = []
    for path in rep.data_files:
        with h5py.File(path, "r") as f:
            frames.append(f[DATA][()])
    return np.concatenate(frames)


def test_counts_above_a_codecs_range_are_overloads_and_add_nothing_to_their_cell(tmp_path):
    """JPEG-2000 takes 16 bits: sums above 65534 are overloads there. They were carried as
    counts clipped at the codec's top, and the cell totals it restores then spread their
    excess over the bright pixels beside them (32000 -> 36074, 16000 -> 18034)."""
    cells = [(np.s_[20:22, 20:22], 5000), (np.s_[20:22, 22:24], 2000), (np.s_[22:24, 20:22], 1000)]
    master = planted(tmp_path, "uint32", cells, saturation=10**6)
    for restore in (True, False):
        rep = lbnl_dask.compress(master, str(tmp_path / f"o{restore}"), sum_range=4, bin_range=2,
                                 j2k_ratio=10, restore_totals=restore, scheduler="threads",
                                 fidelity=False)  # fmt: skip
        px = output(rep)[0]
        assert rep.saturation_out == 65534 and px[10, 10] == 65534  # 80000: an overload
        assert abs(int(px[10, 11]) - 32000) <= 64 and abs(int(px[11, 10]) - 16000) <= 64


@pytest.mark.parametrize("lossy", [{"j2k_ratio": 50}, {"hcomp_scale": 256}, {"hcomp_scale": 64}])
def test_a_valid_count_near_the_saturation_never_comes_back_as_an_overload(tmp_path, lossy):
    """Counts just below the saturation that a lossy round trip pushes to it or above were
    written as the saturation: 148 of 350 such pixels at -J 50, 28 at -H 256."""
    spots = [(np.s_[10 + 12 * k : 16 + 12 * k, 30:36], 12300 + 30 * k) for k in range(5)]
    master = planted(tmp_path, "uint16", spots, n=1)
    cutoff = lbnl_dask.read_meta(master).overload
    rep = lbnl_dask.compress(master, str(tmp_path / "o"), scheduler="threads", fidelity=False,
                             **lossy)  # fmt: skip
    px = output(rep)
    assert rep.saturation_out == cutoff and 0 < px[px != 0xFFFF].max() < cutoff


def test_scaled_or_float16_counts_that_round_up_to_the_saturation_stay_valid(tmp_path):
    """-S 0.1 wrote 12435..12439 as 1244, the scaled saturation; float16 rounded 12437..12439
    to 12440, the saturation itself."""
    master = planted(tmp_path, "uint16", [(np.s_[10, 0:10], np.arange(12430, 12440))], n=1)
    cutoff = lbnl_dask.read_meta(master).overload
    for kw, sat in (({"scale_factor": 0.1}, round(cutoff * 0.1)), ({"ufloat": 2}, cutoff),
                    ({"scale_factor": 0.21}, int(np.ceil(cutoff * 0.21)))):  # fmt: skip
        # (-S 0.21: 12440 x 0.21 = 2612.4 had been rounded to 2612, where 12439 x 0.21 lands)
        rep = lbnl_dask.compress(master, str(tmp_path / str(sat)), scheduler="threads", **kw)
        row = output(rep)[0, 10, :10].astype(np.float64)
        assert rep.saturation_out == sat and (row < sat).all() and row.max() >= sat - 10


def test_log_counts_into_integers_never_read_as_overloads(tmp_path):
    """-L 2 -u 2: the saturation log2(1 + 12440) = 13.6 had been written as 13, so every
    count from 8191 up (log2 >= 13) read as an overload. It is 14 now."""
    master = planted(tmp_path, "uint16", [(np.s_[10, 0:10], np.arange(12330, 12340) + 100)], n=1)
    rep = lbnl_dask.compress(master, str(tmp_path / "o"), logarithm_base="2", uint=2,
                             scheduler="threads")  # fmt: skip
    px = output(rep)[0]
    assert rep.saturation_out == 14 and (px[10, :10] == 14).sum() == 0 and px[10, 0] == 13


def test_without_a_cutoff_a_lossless_round_trip_keeps_the_top_count(tmp_path):
    """No saturation in the master: the top count a uint16 frame holds (65534) is valid, and
    summed it is the output's saturation. -H 0 wrote 65533 where the plain run wrote 65534."""
    master = planted(tmp_path, "uint16", [(np.s_[10, 10], 65534)], n=1)
    with h5py.File(master, "r+") as f:
        for p in SATURATIONS + CUTOFFS:
            f.pop(p, None)
        for name in list(f[SPEC]):
            if name.startswith("detectorModule_"):
                f[SPEC][name].pop("countrate_correction_count_cutoff", None)
    plain = output(lbnl_dask.compress(master, str(tmp_path / "p"), scheduler="threads"))
    lossless = output(lbnl_dask.compress(master, str(tmp_path / "h"), hcomp_scale=0,
                                         scheduler="threads", fidelity=False))  # fmt: skip
    assert plain[0, 10, 10] == 65534 and np.array_equal(plain, lossless)


def test_notes_on_saturations_the_frames_cannot_reach_or_that_differ_by_module(tmp_path):
    master = planted(tmp_path, "uint16", [], saturation=70000, n=1)
    rep = lbnl_dask.compress(master, str(tmp_path / "o"), scheduler="threads")
    assert any("above any count its uint16 frames hold (65534 at most)" in n for n in rep.notes)
    with h5py.File(master, "r+") as f:  # only the modules' cutoffs, one lower than the rest
        for p in SATURATIONS + CUTOFFS[:1]:
            f.pop(p, None)
        f[f"{SPEC}/detectorModule_001/countrate_correction_count_cutoff"][()] = 10000
    meta = lbnl_dask.read_meta(master)
    assert meta.overload == 10000  # the lowest: a higher one takes some overloads as counts
    assert any("modules' countrate_correction_count_cutoff differ (10000 to 70000)" in w
               for w in meta.warnings)  # fmt: skip
    with h5py.File(master, "r+") as f:  # the detector's given, above a module's (a real 9M)
        f[CUTOFFS[0]] = 12440
    meta = lbnl_dask.read_meta(master)
    assert meta.overload == 12440  # the detector's, as XDS' OVERLOAD; said
    said = "modules' countrate_correction_count_cutoff (10000 to 70000) is below the detector's"
    assert any(said + " (12440): the detector's is used" in w for w in meta.warnings)
    assert any("counts from 10000 to 12439 are kept as counts" in w for w in meta.warnings)
    assert os.path.exists(rep.master) and DET  # (the first run was written)
    with h5py.File(master, "r+") as f:  # a module's cutoff of 0 cannot be right: not used
        f[f"{SPEC}/detectorModule_001/countrate_correction_count_cutoff"][()] = 0
    meta = lbnl_dask.read_meta(master)
    assert meta.overload == 12440
    assert ("countrate_correction_count_cutoff 0 in detectorModule group(s): no cutoff can be "
            "that; ignored") in meta.warnings  # fmt: skip
    assert not any("kept as counts" in w for w in meta.warnings)  # (70000 is above 12440)
    with h5py.File(master, "r+") as f:  # and without the detector's: the other modules'
        del f[CUTOFFS[0]]
        cuts = [g["countrate_correction_count_cutoff"][()] for n, g in f[SPEC].items()
                if n.startswith("detectorModule_")]  # fmt: skip
    assert lbnl_dask.read_meta(master).overload == min(c for c in cuts if c > 0) > 0


@pytest.mark.parametrize("marked", [False, True])
@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.int32, np.float32, np.float16])
def test_finalize_writes_the_saturation_for_overloads_only(dtype, marked):
    """+inf (and, unless every overload is marked, any value at or above the saturation) is
    the saturation; a finite value below it, or pushed there by a codec (``marked``), is the
    largest valid value at most; NaN is the invalid marker."""
    sat = 1000
    x = np.array([[5.0, 999.4, 999.6, 1000.0, 1003.0, np.inf, np.nan, -3.0]], np.float32)
    out = T._finalize_block(x, dtype, sat, integral=False, marked=marked).astype(np.float64)
    floats = np.dtype(dtype).kind == "f"  # (not rounded)
    below = float(np.nextafter(dtype(sat), dtype(0))) if floats else 999
    assert out[0, 0] == 5 and out[0, 1] == pytest.approx(999, abs=0.5) and out[0, 7] == 0
    assert out[0, 2] == (pytest.approx(999.6, abs=0.3) if floats else below) and out[0, 5] == sat
    assert (out[0, 3:5] == (below if marked else sat)).all()
    assert (
        np.isnan(out[0, 6]) if np.dtype(dtype).kind == "f" else out[0, 6] == T.invalid_value(dtype)
    )
