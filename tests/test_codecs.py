"""HCompress and JPEG-2000 codecs: round trips, configs, registry, error bounds, invalid pixels."""

import io
import os

import numcodecs
import numpy as np
import pytest
from astropy.io import fits

from lbnl_dask import codecs as C


def frame(shape=(96, 130), seed=0, lam=20):
    rng = np.random.default_rng(seed)
    a = rng.poisson(lam, shape).astype(np.int32)
    a[40:44, 60:64] += 3000  # a spot
    return a


@pytest.mark.parametrize(
    "codec_id,cls", [("lbnl_hcompress", C.HCompress), ("lbnl_jpeg2000", C.JPEG2000)]
)
def test_registry_and_config_round_trip(codec_id, cls):
    c = numcodecs.get_codec({"id": codec_id})
    assert isinstance(c, cls)
    c2 = numcodecs.get_codec(c.get_config())
    assert c2.get_config() == c.get_config()
    assert c.get_config()["id"] == codec_id


def test_entry_points_are_declared():
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group="numcodecs.codecs")}
    assert names["lbnl_hcompress"] == "lbnl_dask.codecs:HCompress"
    assert names["lbnl_jpeg2000"] == "lbnl_dask.codecs:JPEG2000"


def test_hcompress_scale_0_is_lossless_for_each_dtype():
    a = frame()
    for dt in (np.uint16, np.int32, np.uint32):
        x = a.astype(dt)
        c = C.HCompress(scale=0)
        out = c.decode(c.encode(x))
        assert out.dtype == dt
        np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("dt,lo,hi", [(np.uint8, 240, 255), (np.uint16, 65500, 65535),
                                       (np.int16, 32750, 32767)])  # fmt: skip
def test_hcompress_decodes_near_a_narrow_types_top_without_wrapping(dt, lo, hi):
    """Lossy decoding overshoots: a uint16 pixel near 65535 came back near 0, an int16 one
    near 32767 as -32768 (the decoder clipped at 0 only). Now held to the type's range."""
    rng = np.random.default_rng(3)
    x = rng.integers(lo, hi, (32, 32), endpoint=True).astype(dt)
    c = C.HCompress(scale=12)
    out = c.decode(c.encode(x))
    assert out.dtype == dt
    assert np.abs(out.astype(np.int64) - x.astype(np.int64)).max() < 64  # no wrap: near
    into = np.empty((32, 32), dt)
    assert c.decode(c.encode(x), out=into) is into and np.array_equal(into, out)


def test_hcompress_errors_grow_with_scale_and_size_falls():
    a = frame()
    errs, sizes = [], []
    for scale in (0, 2, 8, 32, 128):
        c = C.HCompress(scale=scale)
        enc = c.encode(a)
        errs.append(np.abs(c.decode(enc).astype(np.int64) - a).max())
        sizes.append(len(enc))
    assert errs[0] == 0
    assert errs == sorted(errs) and errs[-1] > errs[1]
    assert sizes == sorted(sizes, reverse=True)
    for scale, err in zip((2, 8, 32, 128), errs[1:], strict=False):
        assert err <= scale  # the scale is absolute, in counts


def test_hcompress_equals_the_fits_path_of_the_published_tool():
    a = frame((70, 64), seed=3)
    hdu = fits.CompImageHDU(data=a, compression_type="HCOMPRESS_1", hcomp_scale=4)
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf)
    buf.seek(0)
    with fits.open(buf) as hdul:
        via_fits = hdul[1].data.astype(np.int64)
    c = C.HCompress(scale=4)
    np.testing.assert_array_equal(c.decode(c.encode(a)), via_fits)


def test_hcompress_decodes_into_out():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 500, (70, 33)).astype(np.int32)
    c = C.HCompress(scale=8)
    enc = c.encode(a)
    out = np.full((70, 33), -7.0, np.float32)
    assert c.decode(enc, out=out) is out
    np.testing.assert_array_equal(out, c.decode(enc).astype(np.float32))
    strided = np.zeros((70, 66), np.int64)[:, ::2]  # a view of the caller's array: written in place
    c.decode(enc, out=strided)
    np.testing.assert_array_equal(strided, out)
    with pytest.raises(ValueError):  # never silently into a copy
        c.decode(
            enc, out=np.zeros((70, 66), np.float32)[:, ::2].T
        )  # (33, 70) that no view makes (70, 33)


def test_hcompress_tiling_rule():
    assert C.hcompress_tile_rows(4371) == 20 and C.hcompress_tile_rows(2186) == 16
    assert C.hcompress_tile_rows(25) == 25


def test_hcompress_rejects_values_it_would_corrupt():
    a = frame()
    a[0, 0] = C.HCOMPRESS_MAX + 1
    with pytest.raises(C.CodecError, match="values within"):
        C.HCompress(scale=0).encode(a)


def test_j2k_ratio_and_errors_grow_with_ratio():
    a = frame(seed=1).astype(np.uint16)
    errs, ratios = [], []
    for r in (4, 20, 100):
        c = C.JPEG2000(ratio=r)
        enc = c.encode(a)
        out = c.decode(enc)
        assert out.dtype == np.uint16 and out.shape == a.shape
        ratios.append(a.nbytes / len(enc))
        errs.append(np.abs(out.astype(np.int64) - a).mean())
    assert ratios == sorted(ratios) and ratios[-1] > 30
    assert errs == sorted(errs) and errs[0] < errs[-1]


def test_j2k_irreversible_is_default_and_reversible_with_ladder_runs():
    a = frame(seed=2).astype(np.uint16)
    c97 = C.JPEG2000(ratio=50)
    c53 = C.JPEG2000(ratio=50, irreversible=False, ladder=C.glymur_ladder(50))
    assert c97.irreversible and not c53.irreversible
    assert c53.ladder == [6400, 3200, 1600, 800, 400, 200, 100, 50]
    out53 = c53.decode(c53.encode(a))
    assert out53.shape == a.shape
    lossless = C.JPEG2000(ratio=1.0001, irreversible=False)
    # ratio ~1 with the reversible wavelet is lossless
    np.testing.assert_array_equal(lossless.decode(lossless.encode(a)), a)


def test_j2k_scratch_files_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("LBNL_DASK_SCRATCH", str(tmp_path))
    c = C.JPEG2000(ratio=10)
    c.decode(c.encode(frame().astype(np.uint16)))
    with pytest.raises(C.CodecError):
        c.encode(frame().astype(np.float32))
    assert os.listdir(tmp_path) == []


def test_ladders_match_the_published_tool():
    assert C.glymur_ladder(75) == [4800, 2400, 1200, 600, 300, 150, 75]
    assert C.glymur_ladder(125) == [4000, 2000, 1000, 500, 250, 125]
    assert C.glymur_ladder(500) == [4000, 2000, 1000, 500]
    assert C.glymur_ladder(3000) == [6000, 3000] and C.glymur_ladder(4000) == [4000]
    assert C.opj_ladder(75) == [9600, 4800, 2400, 1200, 600, 300, 150, 75]
    assert C.opj_ladder(500) == [8000, 4000, 2000, 1000, 500]
    assert C.opj_ladder(4000) == [8000, 4000]
    assert C.opj_ladder(1) == [512, 256, 128, 64, 32, 16, 8, 4, 2, 1]


def test_hcompress_short_last_tile_is_merged():
    a = frame((35, 40), seed=9)  # tiles of 16 rows would leave 3: merged into the previous tile
    c = C.HCompress(scale=0, tile_rows=16)
    np.testing.assert_array_equal(c.decode(c.encode(a)), a)


def test_missing_openjpeg_is_one_clear_line(monkeypatch):
    import glymur

    assert C.check_openjpeg() >= "2.4"
    monkeypatch.setattr(
        glymur.version, "openjpeg_version", "0.0.0"
    )  # what glymur says without libopenjp2
    with pytest.raises(C.CodecError, match="install OpenJPEG >= 2.4 .*libopenjp2-7"):
        C.JPEG2000(ratio=10).encode(frame().astype(np.uint16))


DATA = os.path.join(os.path.dirname(__file__), "data")


def test_hcompress_streams_of_every_format_still_decode():
    """Squash files (-q) keep HCompress streams on disk: a stream of each format ever
    written (tests/data) must decode to the same pixels, whatever the version writing now."""
    old = np.load(os.path.join(DATA, "hcompress_stream_v0.npz"))
    assert bytes(old["stream"][:4]) == b"LBHC"  # format 0: no version byte
    c = C.HCompress(scale=4)
    np.testing.assert_array_equal(c.decode(old["stream"]), old["decoded"])
    new = c.encode(old["original"])
    assert new[:5] == b"LBHV" + bytes([C.HC_FORMAT])
    np.testing.assert_array_equal(c.decode(new), old["decoded"])  # the same pixels as format 0


def test_hcompress_refuses_a_newer_format_and_foreign_bytes():
    c = C.HCompress(scale=4)
    s = bytearray(c.encode(frame((16, 16))))
    s[4] = C.HC_FORMAT + 1
    with pytest.raises(C.CodecError, match="newer than this lbnl_dask reads"):
        c.decode(bytes(s))
    with pytest.raises(C.CodecError, match="bad magic"):
        c.decode(b"JUNKJUNKJUNKJUNKJUNK")


def test_squash_file_of_format_0_still_reads():
    from lbnl_dask import read_squash

    got = read_squash(os.path.join(DATA, "squash_v0_000001.h5"))
    np.testing.assert_array_equal(got, np.load(os.path.join(DATA, "squash_v0_decoded.npy")))


def test_j2k_runs_openjpeg_without_its_thread_pool_same_bytes(tmp_path):
    """glymur's default of one OpenJPEG thread hands every code block to a pool thread; the
    codec runs them in the calling thread instead: the same codestream. A user's choice of
    more threads is kept."""
    import glymur

    frame = np.random.default_rng(2).poisson(6, (200, 230)).astype(np.uint16)
    path = str(tmp_path / "pooled.j2k")
    before = glymur.get_option("lib.num_threads")
    try:
        glymur.set_option("lib.num_threads", 1)
        glymur.Jp2k(path, data=frame, cratios=[120], irreversible=True, numres=6)
        with open(path, "rb") as fh:
            pooled = fh.read()
        pooled_decoded = glymur.Jp2k(path)[:]  # through the pool still
        codec = C.JPEG2000(120)
        assert codec.encode(frame) == pooled
        assert glymur.get_option("lib.num_threads") == 0
        np.testing.assert_array_equal(codec.decode(pooled), pooled_decoded)
        glymur.set_option("lib.num_threads", 2)
        codec.encode(frame)
        assert glymur.get_option("lib.num_threads") == 2
    finally:
        glymur.set_option("lib.num_threads", before)


def test_hcompress_c_functions_are_astropys_without_importing_astropy_io_fits():
    """The C functions come from astropy's extension file (no ~0.2 s of astropy.units...):
    the same bytes as astropy's own HCompress1 codec, both ways."""
    import subprocess
    import sys

    code = ("import sys; from lbnl_dask import codecs as C; C.hcompress_c(); "
            "print(sorted(m for m in sys.modules if m.startswith('astropy')))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['astropy.io.fits.hdu.compressed._compression']"
    from astropy.io.fits.hdu.compressed._codecs import HCompress1

    compress, decompress = C.hcompress_c()
    rng = np.random.default_rng(4)
    for scale, (h, w) in ((0, (16, 37)), (12, (24, 100)), (64, (7, 9))):
        tile = rng.poisson(30, (h, w)).astype(np.int32)
        theirs = HCompress1(scale=scale, smooth=False, bytepix=4, nx=h, ny=w)
        stream = compress(tile.tobytes(), h, w, scale, 4)
        assert stream == theirs.encode(tile)
        back = np.frombuffer(decompress(stream, h, w, scale, False, 4), "i4")
        np.testing.assert_array_equal(back, theirs.decode(np.frombuffer(stream, np.uint8)))


@pytest.mark.parametrize("make,msg", [
    (lambda: C.HCompress(scale=2.7), "scale must be a whole number >= 0, not 2.7"),
    (lambda: C.HCompress(scale=float("nan")), "scale must be a whole number"),
    (lambda: C.HCompress(scale=-1), "scale must be a whole number >= 0"),
    (lambda: C.HCompress(tile_rows=0), "tile_rows must be None .* or a whole number >= 4"),
    (lambda: C.JPEG2000(ratio=float("inf")), "ratio must be a finite number > 1"),
    (lambda: C.JPEG2000(ratio=1), "ratio must be a finite number > 1"),
    (lambda: C.JPEG2000(numres=0), "numres must be a whole number >= 1"),
])  # fmt: skip
def test_codec_settings_that_cannot_be_right_are_refused(make, msg):
    """Settings that had been taken silently: a scale of 2.7 as 2, tile_rows 0 as the rule,
    an infinite ratio, numres 0 as 1."""
    with pytest.raises(ValueError, match=msg):
        make()
    assert C.HCompress(scale=12.0).scale == 12 and C.HCompress(tile_rows=8).tile_rows == 8


def test_jpeg2000_refuses_an_empty_frame_as_a_codec_error():
    """An empty frame: a CodecError, not an OverflowError after a divide-by-zero warning."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(C.CodecError, match=r"at least 1x1, not \(0, 10\) uint16"):
            C.JPEG2000().encode(np.zeros((0, 10), np.uint16))


def test_hcompress_decoded_range_is_the_overlap_of_stream_and_destination():
    """Every pairing of a stream's type and an integer destination's: the overlap of their
    ranges, none where int32 holds it (an int32 -998 decoded into uint32 had wrapped)."""
    from lbnl_dask.codecs import _decoded_range

    dt = np.dtype
    assert _decoded_range(dt("int32"), dt("uint32")) == (0, None)
    assert _decoded_range(dt("int32"), dt("float32")) == (None, None)
    assert _decoded_range(dt("uint32"), dt("float64")) == (0, None)
    assert _decoded_range(dt("uint16"), dt("uint32")) == (0, 65535)
    assert _decoded_range(dt("int16"), dt("int32")) == (-32768, 32767)
    assert _decoded_range(dt("int32"), dt("uint8")) == (0, 255)
    assert _decoded_range(dt("uint8"), dt("int16")) == (0, 255)
    x = np.array([[-1000, 5, 9, 3]] * 4, np.int32)
    c = C.HCompress(scale=12)
    into = np.empty((4, 4), np.uint32)
    c.decode(c.encode(x), out=into)
    assert into.max() < 1000  # clipped at 0, not wrapped to ~4.29e9
