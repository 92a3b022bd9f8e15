"""SZ3 and ZFP (hdf5plugin's filters, in memory) as lossy round trips."""

import os

import numcodecs
import numpy as np
import pytest

from lbnl_dask import compress
from lbnl_dask.codecs import CodecError
from lbnl_dask.errorbound import SZ3, ZFP
from lbnl_dask.errors import OptionError
from lbnl_dask.options import OutputOptions
from lbnl_dask.roundtrip import roundtrip_frames

DATA = os.path.join(os.path.dirname(__file__), "data")


def counts(shape=(60, 70), seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    spot = 400 * np.exp(-((x - 30) ** 2 + (y - 20) ** 2) / 6.0)
    return rng.poisson(2 + spot).astype(np.float32)


@pytest.mark.parametrize("codec", [SZ3(2), SZ3(8), ZFP(4)])
def test_every_pixel_within_the_bound(codec):
    x = counts()
    stream = codec.encode(x)
    y = codec.decode(stream)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.abs(y - x).max() <= codec.bound + 1e-3
    assert len(stream) < x.nbytes  # it compresses


def test_codecs_are_registered_and_configured():
    for codec in (SZ3(3), ZFP(5)):
        again = numcodecs.get_codec(codec.get_config())
        assert type(again) is type(codec) and again.bound == codec.bound


def test_streams_of_format_1_still_decode():
    """Squash files (-q) keep these streams on disk: the committed ones must still decode."""
    old = np.load(os.path.join(DATA, "errorbound_streams_v1.npz"))
    for name, codec in (("sz3", SZ3(2)), ("zfp", ZFP(4))):
        stream = old[name + "_stream"].tobytes()
        assert stream[:5] == b"LBEB\x01"
        np.testing.assert_array_equal(codec.decode(stream), old[name + "_decoded"])
        assert np.abs(old[name + "_decoded"] - old["original"]).max() <= codec.bound


def test_foreign_and_short_streams_are_refused():
    with pytest.raises(CodecError, match="not this codec's stream"):
        SZ3(2).decode(ZFP(2).encode(counts()))
    with pytest.raises(CodecError, match="too short"):
        SZ3(2).decode(b"LBEB")
    with pytest.raises(CodecError, match="must be positive"):
        SZ3(0)


@pytest.mark.parametrize("flag", ["sz3_bound", "zfp_accuracy"])
def test_options(flag):
    o = OutputOptions(**{flag: 4.0})
    assert o.lossy == flag[:3] and o.codec().bound == 4.0
    with pytest.raises(OptionError, match="positive number of counts"):
        OutputOptions(**{flag: -1.0})
    with pytest.raises(OptionError, match="choose one lossy round trip"):
        OutputOptions(**{flag: 4.0}, hcomp_scale=12)


def test_markers_survive_the_round_trip():
    block = counts()[None].astype(np.float64)
    block[0, 5, 5], block[0, 6, 6] = np.nan, np.inf
    out = roundtrip_frames(block, SZ3(4))
    assert np.isnan(out[0, 5, 5]) and out[0, 6, 6] == np.inf
    ok = np.isfinite(block)
    assert np.abs(out[ok] - block[ok]).max() <= 4 + 1e-3


@pytest.mark.parametrize("option", [{"sz3_bound": 4.0}, {"zfp_accuracy": 8.0}])
def test_compress_keeps_the_background_unbiased(tiny, tmp_path, option):
    rep = compress(tiny, str(tmp_path / "o"), bin_range=2, sum_range=2, scheduler="threads",
                   **option)  # fmt: skip
    assert rep.lossy == next(iter(option))[:3]
    bg = float(rep.fidelity.split("background out/in ")[1].split(",")[0])
    assert bg == pytest.approx(1.0, abs=0.02)


def test_decoded_counts_are_whole_without_restored_totals():
    from lbnl_dask.roundtrip import decode_frames, encode_frames

    block = counts()[None].astype(np.float32)
    for codec in (SZ3(4), ZFP(4)):
        out = decode_frames(block, encode_frames(block, codec), codec, restore=False)
        assert np.array_equal(out, np.rint(out))  # rounded, not truncated by the cast later
        assert abs(out.mean() - block.mean()) < 0.2
