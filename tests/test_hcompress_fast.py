"""lbnl_dask.hcompress_fast: the numpy round trip equals astropy's HCompress pixel for pixel.

Reference: ``HCompress1(scale, smooth=False, bytepix=4, nx=rows, ny=cols)``'s
``decode(encode(tile))`` per tile, and ``HCompress(scale).decode(HCompress(scale).encode(f))``
per frame. The identity tests forbid the astropy fallback, so they test the numpy code.
"""

import struct

import numpy as np
import pytest
from astropy.io.fits.hdu.compressed._codecs import HCompress1

from lbnl_dask import codecs as C
from lbnl_dask import hcompress_fast as F

M = C.HCOMPRESS_MAX
SCALES = [0, 1, 2, 3, 4, 7, 12, 16, 64, 1000]
SIZES = [4, 5, 6, 7, 8, 9, 11, 15, 16, 17, 24, 31, 32, 33, 47, 63, 64, 65, 70]


def astropy_roundtrip(tile, scale):
    rows, cols = tile.shape
    kw = dict(scale=scale, smooth=False, bytepix=4, nx=rows, ny=cols)
    enc = HCompress1(**kw).encode(np.ascontiguousarray(tile, dtype=np.int32))
    return HCompress1(**kw).decode(np.frombuffer(enc, np.uint8)).reshape(rows, cols)


@pytest.fixture(autouse=True, params=["compiled", "numpy"])
def path(request, monkeypatch):
    """Every test twice: through the compiled kernel (the default) and the numpy reference."""
    if request.param == "numpy":
        real = F._roundtrip_blocks
        monkeypatch.setattr(
            F,
            "_roundtrip_blocks",
            lambda blocks, scale, outs, compiled=True: real(blocks, scale, outs, False),
        )
    return request.param


@pytest.fixture
def no_fallback(monkeypatch):
    """Our round trip only: the astropy fallback for coefficients beyond its coder fails."""

    def refuse(tile, scale):
        raise AssertionError(f"astropy fallback used for a {tile.shape} tile at scale {scale}")

    monkeypatch.setattr(F, "_astropy_roundtrip", refuse)


def poisson(rng, shape, background):
    return rng.poisson(background, shape)


def spots(rng, shape):
    """Poisson background with a few strong spots, up to 1e5 counts."""
    a = rng.poisson(rng.choice([0.1, 1.5, 6]), shape)
    for _ in range(rng.integers(1, 4)):
        y, x = rng.integers(0, shape[0] - 1), rng.integers(0, shape[1] - 1)
        a[y : y + 2, x : x + 2] += rng.poisson(rng.uniform(10, 1e5), (2, 2))
    return a


def near_max(rng, shape):
    """Isolated pixels within 1000 of +-HCOMPRESS_MAX on a Poisson background."""
    a = rng.poisson(1.5, shape)
    ys = rng.choice(shape[0] // 2, 3) * 2
    xs = rng.choice(shape[1] // 2, 3) * 2
    a[ys, xs] = rng.choice([-1, 1], 3) * (M - rng.integers(0, 1000, 3))
    return a


def signed(rng, shape):
    """Negative values too: uniform integers, or a Poisson background minus an offset."""
    if rng.random() < 0.5:
        return rng.integers(-1000, 1001, shape)
    return rng.poisson(3, shape) - 5


KINDS = {
    "poisson_0.003": lambda rng, shape: poisson(rng, shape, 0.003),
    "poisson_0.1": lambda rng, shape: poisson(rng, shape, 0.1),
    "poisson_1.5": lambda rng, shape: poisson(rng, shape, 1.5),
    "poisson_6": lambda rng, shape: poisson(rng, shape, 6),
    "spots": spots,
    "near_max": near_max,
    "signed": signed,
    "wide_range": lambda rng, shape: rng.integers(-(2**20), 2**20, shape),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("scale", SCALES)
def test_tiles_equal_astropy(kind, scale, no_fallback):
    """40 tiles of each kind and scale, rows and cols in 4..70, odd and even."""
    rng = np.random.default_rng([scale, sorted(KINDS).index(kind)])
    for _ in range(40):
        shape = tuple(int(n) for n in rng.choice(SIZES, 2))
        tile = KINDS[kind](rng, shape).astype(np.int32)
        np.testing.assert_array_equal(
            F.hcompress_roundtrip(tile, scale), astropy_roundtrip(tile, scale), err_msg=str(shape)
        )


@pytest.mark.parametrize("scale", SCALES)
def test_every_small_shape_equals_astropy(scale, no_fallback):
    rng = np.random.default_rng(scale)
    for rows in (4, 5, 6, 7, 8, 9):
        for cols in (4, 5, 6, 7, 8, 9, 10, 13):
            tile = rng.poisson(rng.choice([0.5, 20]), (rows, cols)).astype(np.int32)
            tile -= rng.integers(0, 3) * 7
            np.testing.assert_array_equal(
                F.hcompress_roundtrip(tile, scale), astropy_roundtrip(tile, scale)
            )


@pytest.mark.parametrize("value", [0, 1, -1, 7, -13, 2**19 - 1, 2**19, M, -M])
@pytest.mark.parametrize("shape", [(16, 1035), (17, 70), (5, 4)])
def test_constant_tiles_equal_astropy(value, shape, no_fallback):
    """Constants, up to +-HCOMPRESS_MAX: the sum then overflows astropy's 32-bit transform
    (the pixels come back wrong, and identical: the wrap-around is reproduced)."""
    tile = np.full(shape, value, np.int32)
    for scale in (0, 3, 12):
        np.testing.assert_array_equal(
            F.hcompress_roundtrip(tile, scale), astropy_roundtrip(tile, scale)
        )


def test_lossless_scales_give_the_tile_back(no_fallback):
    rng = np.random.default_rng(5)
    tile = (rng.poisson(2, (33, 47)) - 3).astype(np.int32)
    for scale in (0, 1):
        np.testing.assert_array_equal(F.hcompress_roundtrip(tile, scale), tile)


def test_input_types_and_refusals():
    rng = np.random.default_rng(6)
    tile = rng.poisson(4, (20, 30))
    want = astropy_roundtrip(tile, 4)
    for dtype in (np.uint16, np.int64, np.uint32):
        got = F.hcompress_roundtrip(tile.astype(dtype), 4)
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(F.hcompress_roundtrip(np.asfortranarray(tile), 4), want)
    with pytest.raises(ValueError, match="at least 4x4"):
        F.hcompress_roundtrip(tile[:3], 4)
    with pytest.raises(ValueError, match="int32"):
        F.hcompress_roundtrip(tile.astype(np.int64) + 2**31, 4)


def frame_pair(frame, scale, tile_rows=None):
    codec = C.HCompress(scale, tile_rows=tile_rows)
    return F.roundtrip_frame(frame, scale, tile_rows), codec.decode(codec.encode(frame))


def eiger_like(shape, seed):
    rng = np.random.default_rng(seed)
    a = rng.poisson(1.5, shape).astype(np.int32)
    for _ in range(30):
        y, x = rng.integers(0, shape[0] - 4), rng.integers(0, shape[1] - 4)
        a[y : y + 4, x : x + 4] += rng.poisson(rng.uniform(50, 1e5), (4, 4)).astype(np.int32)
    return a


@pytest.mark.parametrize("compiled", [True, False])
def test_roundtrip_into_a_float_frame_is_the_int32_result_converted(compiled):
    """``out=`` a float frame (the pipeline's counts): the compiled kernel writes its last
    level there itself; every path gives the int32 result as numpy converts it, values
    past float32's exact integers (2**24) included, odd sizes, unsigned frames."""
    rng = np.random.default_rng(3)
    for shape, scale in (((67, 45), 12), ((1084, 1035), 3), ((33, 8), 0)):
        frame = eiger_like(shape, seed=shape[0])
        frame[:4, :4] = C.HCOMPRESS_MAX - rng.integers(0, 64, (4, 4))  # near the codec's top
        want = F.roundtrip_frame(frame, scale, 16, compiled=compiled)
        for dtype in (np.float32, np.float64):
            out = np.full(shape, np.nan, dtype)
            got = F.roundtrip_frame(frame, scale, 16, compiled=compiled, out=out)
            assert got is out
            np.testing.assert_array_equal(out, want.astype(dtype))
    small = eiger_like((40, 40), seed=9).astype(np.uint16)
    out = np.empty((40, 40), np.float32)
    F.roundtrip_frame(small, 12, out=out)
    np.testing.assert_array_equal(out, F.roundtrip_frame(small, 12).astype(np.float32))


@pytest.mark.parametrize("tile_rows", [None, 16, 17, 24, 30])
def test_eiger_frames_equal_the_codec(tile_rows, no_fallback):
    """1084 x 1035 frames (Eiger 4M binned by 2): the codec's tiles, short tails merged."""
    frame = eiger_like((1084, 1035), seed=tile_rows or 0)
    for scale in (12, 3) if tile_rows in (None, 17) else (12,):
        got, want = frame_pair(frame, scale, tile_rows)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "shape,tile_rows",
    [((82, 40), 16), ((35, 40), 16), ((25, 9), None), ((70, 70), 4), ((64, 5), 33), ((6, 7), 30)],
)
def test_small_frames_and_merged_tails_equal_the_codec(shape, tile_rows, no_fallback):
    frame = eiger_like(shape, seed=sum(shape)) - 2
    for scale in (0, 2, 12, 64):
        got, want = frame_pair(frame, scale, tile_rows)
        np.testing.assert_array_equal(got, want)


def test_unsigned_frames_clamp_at_zero_as_the_codec(no_fallback):
    frame = eiger_like((100, 90), seed=4)
    for dtype in (np.uint16, np.uint32, np.int32):
        got, want = frame_pair(frame.astype(dtype), 64)
        assert got.dtype == want.dtype == dtype
        np.testing.assert_array_equal(got, want)
    assert frame_pair(frame.astype(np.int32), 64)[0].min() < 0  # what the clamp is for


def test_tile_edges_are_the_codec_tiles():
    for ny, tile_rows in [(1084, None), (4371, None), (82, 16), (35, 16), (25, None), (9, 30)]:
        a = np.zeros((ny, 4), np.int32)
        enc = C.HCompress(0, tile_rows=tile_rows).encode(a)
        ntiles = struct.unpack_from("<I", enc, 5 + 12)[0]
        heights = [struct.unpack_from("<I", enc, 5 + 16 + 8 * i)[0] for i in range(ntiles)]
        assert np.diff(F.tile_edges(ny, tile_rows)).tolist() == heights


def test_frame_refusals_are_the_codec_ones():
    with pytest.raises(C.CodecError, match="values within"):
        F.roundtrip_frame(np.full((8, 8), M + 1, np.int32), 12)
    with pytest.raises(C.CodecError, match="at least 4x4"):
        F.roundtrip_frame(np.zeros((3, 8), np.int32), 12)
    with pytest.raises(C.CodecError, match="2-D integer"):
        F.roundtrip_frame(np.zeros((8, 8), np.float32), 12)
    with pytest.raises(ValueError, match="scale must be >= 0"):
        F.roundtrip_frame(np.zeros((8, 8), np.int32), -1)
    with pytest.raises(ValueError, match="at least 4x4"):
        F.roundtrip_frame(np.zeros((8, 8), np.int32), 12, tile_rows=2)


def beyond_the_coder():
    """A 16 x 64 tile whose digitized differences reach 2**28 at scale 0: astropy's
    quadtree coder breaks ("qtree_decode: bad format code")."""
    tile = np.zeros((16, 64), np.int32)
    tile[4:8, 20:24] = M
    return tile


def test_beyond_the_coder_astropy_runs_and_fails_alike():
    tile = beyond_the_coder()
    with pytest.raises(Exception, match="bad format code") as theirs:
        astropy_roundtrip(tile, 0)
    with pytest.raises(type(theirs.value), match="bad format code"):
        F.hcompress_roundtrip(tile, 0)


def test_fallback_takes_only_the_tiles_beyond_the_coder(monkeypatch):
    calls = []

    def fake(tile, scale):
        calls.append(tile.copy())
        return np.full(tile.shape, -99, np.int32)

    monkeypatch.setattr(F, "_astropy_roundtrip", fake)
    frame = eiger_like((80, 64), seed=8)
    frame[16:32] = beyond_the_coder()  # the second of five 16-row tiles
    got = F.roundtrip_frame(frame, 0, tile_rows=16)
    assert len(calls) == 1
    np.testing.assert_array_equal(calls[0], frame[16:32])
    assert (got[16:32] == -99).all()
    rest = np.r_[0:16, 32:80]
    np.testing.assert_array_equal(got[rest], frame[rest])  # scale 0: lossless elsewhere


def test_exactness_bound():
    assert F._exact(2**28 - 1, 0, 0, 0) and not F._exact(2**28, 0, 0, 0)
    assert F._exact(2**30 - 2, 0, 4, 0)  # quotient (top + d) // 4 = 2**28 - 1, d = 1
    assert not F._exact(2**30 - 1, 0, 4, 0)
    assert not F._exact(2**31 - 10, 0, 2**20, 0)  # c + d would overflow int32
    assert not F._exact(0, 0, 2**30, 0)


def test_the_fallback_round_trip_is_astropys_own():
    """_astropy_roundtrip (tiles the H-transform cannot take exactly) calls astropy's C
    functions as codecs.hcompress_c loads them: the same pixels as astropy's HCompress1."""
    rng = np.random.default_rng(9)
    for scale, (h, w) in ((12, (16, 40)), (1, (7, 9)), (64, (24, 33))):
        tile = rng.integers(-(2**20), 2**20, (h, w), dtype=np.int32)
        kw = dict(scale=scale, smooth=False, bytepix=4, nx=h, ny=w)
        want = HCompress1(**kw).decode(np.frombuffer(HCompress1(**kw).encode(tile), np.uint8))
        np.testing.assert_array_equal(F._astropy_roundtrip(tile, scale), want.reshape(h, w))
