"""Sum, bin, scale and output type against a plain numpy reference.

Also markers, region omission and log/exp.
"""

import dask
import dask.array as da
import numpy as np
import pytest

from lbnl_dask import transform as T
from tests.reference import expected_output, sum_bin_reference


def make_frames(n=7, ny=9, nx=11, dtype=np.uint16, seed=0, cutoff=1000):
    rng = np.random.default_rng(seed)
    f = rng.integers(0, 400, (n, ny, nx)).astype(dtype)
    allbits = np.iinfo(dtype).max
    f[:, 4, :] = allbits  # a gap row (every frame)
    f[2, 1, 1] = allbits  # a pixel invalid in one frame only
    f[3, 6, 7] = cutoff + 5  # saturated
    f[0, 0, 10] = cutoff  # exactly at the cutoff: saturated
    mask = np.zeros((ny, nx), np.uint32)
    mask[7, 2] = 2  # flagged dead pixel
    return f, mask


def run(frames, mask, cutoff, s, b, chunk, dtype, saturation, scale=1.0, counts=np.float32):
    x = da.from_array(frames, chunks=(chunk, -1, -1))
    v = T.to_counts(x, mask, cutoff, counts)
    v = T.sum_frames(v, s)
    v = T.bin_pixels(v, b)
    v = T.scale(v, scale)
    return T.finalize(v, dtype, saturation).compute()


@pytest.mark.parametrize(
    "s,b,chunk", [(1, 1, 3), (2, 1, 4), (1, 2, 7), (2, 2, 2), (3, 2, 3), (7, 3, 7), (2, 4, 6)]
)
def test_sum_bin_equal_numpy_reference(s, b, chunk):
    frames, mask = make_frames()
    sat = 1000 * s * b * b
    got = run(frames, mask, 1000, s, b, chunk, np.uint32, sat)
    want = expected_output(frames, mask, 1000, s, b, np.uint32, sat)
    assert got.shape == (-(-7 // s), -(-9 // b), -(-11 // b))  # partial groups and edges kept
    np.testing.assert_array_equal(got, want)


def test_invalid_pixels_never_averaged_into_valid_ones():
    frames, mask = make_frames()
    got = run(frames, mask, 1000, 2, 2, 2, np.uint32, 8000)
    allbits = np.iinfo(np.uint32).max
    assert (got[:, 2, :] == allbits).all()  # rows 4-5 hold the gap row 4
    assert got[1, 0, 0] == allbits  # frame 3 (group 2) had pixel (1,1) invalid
    assert got[0, 0, 0] != allbits and got[2, 0, 0] != allbits
    assert got[0, 3, 1] == allbits  # flagged in pixel_mask (7, 2)
    valid = got[got != allbits]
    assert valid.max() <= 8000


def test_uint16_sums_above_65535_are_exact():
    frames = np.full((4, 4, 4), 30000, np.uint16)
    frames[0, 0, 0] = 30001
    got = run(frames, None, 60000, 4, 2, 4, np.uint32, 60000 * 16)
    assert got.dtype == np.uint32
    assert got[0, 0, 0] == 30000 * 16 + 1 and (got[0, 1] == 30000 * 16).all()


def test_float64_counts_when_float32_would_round():
    assert T.counts_dtype(12440, 16) == np.float32
    assert T.counts_dtype(2**22, 16) == np.float64
    frames = np.full((2, 2, 2), 2**31, np.uint32)
    frames[0, 0, 0] += 1
    got = run(frames, None, None, 2, 2, 2, np.uint64, 2**40, counts=np.float64)
    assert got[0, 0, 0] == 8 * 2**31 + 1


def test_saturation_propagates_like_invalidity_not_clipping():
    frames = np.full((2, 2, 2), 900, np.uint16)
    frames[0, 0, 0] = 1000  # at the cutoff
    got = run(frames, None, 1000, 2, 2, 2, np.uint32, 8000)
    assert got[0, 0, 0] == 8000  # saturated: the output saturation value
    frames[0, 0, 0] = 999  # a sum of strong but unsaturated pixels is not an overload
    got = run(frames, None, 1000, 2, 2, 2, np.uint32, 8000)
    assert got[0, 0, 0] == 999 + 7 * 900


@pytest.mark.parametrize("scale", [0.5, 2.0, 3.3])
def test_scale_S(scale):
    frames, mask = make_frames(seed=4)
    sat = int(1000 * 4 * scale + 0.5)
    got = run(frames, mask, 1000, 1, 2, 3, np.uint32, sat, scale=scale)
    np.testing.assert_array_equal(
        got, expected_output(frames, mask, 1000, 1, 2, np.uint32, sat, scale)
    )


@pytest.mark.parametrize(
    "dtype,allbits", [(np.uint16, 0xFFFF), (np.int16, -1), (np.int32, -1), (np.uint32, 0xFFFFFFFF)]
)
def test_integer_output_types_u(dtype, allbits):
    frames, mask = make_frames(seed=5)
    got = run(frames, mask, 1000, 2, 1, 2, dtype, 2000)
    assert got.dtype == dtype
    vals, inv, sat = sum_bin_reference(frames, mask, 1000, 2, 1)
    assert (got[inv] == allbits).all()
    assert (got[sat] == 2000).all()
    ok = ~inv & ~sat
    np.testing.assert_array_equal(got[ok], np.clip(vals[ok], 0, 2000))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_float_output_f(dtype):
    frames, mask = make_frames(seed=6)
    got = run(frames, mask, 1000, 2, 2, 2, dtype, 8000)
    vals, inv, sat = sum_bin_reference(frames, mask, 1000, 2, 2)
    assert got.dtype == dtype
    assert np.isnan(got[inv]).all()
    np.testing.assert_allclose(got[~inv & ~sat], vals[~inv & ~sat], rtol=1e-3)


def test_select_is_1_based_inclusive_and_rechunks_from_first():
    x = da.from_array(np.arange(10 * 2 * 2).reshape(10, 2, 2), chunks=(4, 2, 2))
    sel = T.select(x, 3, 9)
    assert sel.shape[0] == 7 and sel.chunks[0] == (4, 3)  # chunks start at image 3
    np.testing.assert_array_equal(sel.compute(), x.compute()[2:9])
    with pytest.raises(ValueError, match="outside 1..10"):
        T.select(x, 0, 4)


def test_chunks_not_multiple_of_sum_are_refused():
    x = da.zeros((9, 4, 4), chunks=(3, 4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="not multiples of 2"):
        T.sum_frames(x, 2)


def test_coarsen_keeps_frame_chunks():
    x = da.zeros((10, 5, 5), chunks=(4, 5, 5), dtype=np.uint16)
    v = T.sum_frames(T.to_counts(x), 2)
    assert v.chunks[0] == (2, 2, 1)
    v = T.bin_pixels(v, 2)
    assert v.chunks == ((2, 2, 1), (3,), (3,))


def test_coarsen_is_dask_coarsen_fused_one_task_per_chunk():
    a = np.random.default_rng(0).integers(0, 1000, (12, 6, 10))
    x = da.from_array(a, chunks=(4, 6, 10))
    got = T.coarsen(T.block_sum, x, {0: 2, 1: 3, 2: 2})
    assert got.chunks == ((2, 2, 2), (2,), (5,))
    np.testing.assert_array_equal(
        got.compute(), da.coarsen(np.sum, x, {0: 2, 1: 3, 2: 2}).compute()
    )
    # making the chunks, coarsen and the next per-chunk step fuse into one task per chunk
    # (no alias tasks)
    made = da.ones((12, 6, 10), chunks=(4, 6, 10))
    (opt,) = dask.optimize(T.coarsen(T.block_sum, made, {0: 2, 1: 3, 2: 2}).map_blocks(np.negative))
    tasks = [k for k in dict(opt.__dask_graph__()) if isinstance(k, tuple)]
    assert len(tasks) == 3
    with pytest.raises(ValueError, match="not multiples of 2"):
        T.coarsen(T.block_sum, da.from_array(a, chunks=(3, 6, 10)), {0: 2})


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.int32])
@pytest.mark.parametrize("s,chunk", [(2, 2), (2, 4), (3, 3), (7, 7), (2, 6)])
@pytest.mark.parametrize("cutoff", [None, 1000])
def test_summed_counts_equal_counts_then_sum(dtype, s, chunk, cutoff):
    """The integer sum in one coarsen gives the same values and markers as converting each
    frame and summing floats: partial last group, masked, invalid and saturated pixels."""
    frames, mask = make_frames(dtype=np.uint32)
    frames = frames.astype(dtype) if dtype != np.int32 else frames.astype(np.int64).astype(np.int32)
    if dtype == np.int32:
        frames[frames == np.iinfo(np.uint32).max] = -1  # signed data: all bits set is -1
    frames[1, 1, 1] = 5000  # saturated in the group of frame 2's invalid (1, 1): invalid wins
    x = da.from_array(frames, chunks=(chunk, -1, -1))
    for m in (None, mask):
        for counts in (np.float32, np.float64):
            want = T.sum_frames(T.to_counts(x, m, cutoff, counts), s).compute()
            got = T.summed_counts(x, s, m, cutoff, counts)
            assert got.dtype == counts and got.chunks[0] == tuple(-(-c // s) for c in x.chunks[0])
            got = got.compute()
            assert got.dtype == counts
            np.testing.assert_array_equal(got, want)  # NaN == NaN here
    if s == 2 and cutoff == 1000:
        assert np.isnan(got[1, 1, 1]) and np.isposinf(got[1, 6, 7])


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.int32])
@pytest.mark.parametrize(
    "s,b,chunk", [(1, 1, 3), (2, 1, 4), (1, 2, 7), (2, 2, 2), (3, 2, 3), (2, 3, 6), (7, 4, 7)]
)
@pytest.mark.parametrize("band_bytes", [64, None])
def test_summed_binned_counts_equal_sum_then_bin(dtype, s, b, chunk, band_bytes, monkeypatch):
    """The band-by-band reduction gives the values and markers of converting each frame,
    summing and binning floats: partial groups and edges, masked, invalid and saturated
    pixels, several bands per frame (64-byte bands: one output row each) or one."""
    if band_bytes:
        monkeypatch.setattr(T, "BAND_BYTES", band_bytes)
    frames, mask = make_frames(dtype=np.uint32)
    frames = frames.astype(dtype) if dtype != np.int32 else frames.astype(np.int64).astype(np.int32)
    if dtype == np.int32:
        frames[frames == np.iinfo(np.uint32).max] = -1
    frames[1, 1, 1] = 5000  # saturated in the group of frame 2's invalid (1, 1): invalid wins
    x = da.from_array(frames, chunks=(chunk, -1, -1))
    for m in (None, mask):
        for cutoff in (None, 1000):
            for counts in (np.float32, np.float64):
                want = T.bin_pixels(T.sum_frames(T.to_counts(x, m, cutoff, counts), s), b).compute()
                got = T.summed_binned_counts(x, s, b, m, cutoff, counts)
                assert got.chunks[0] == tuple(-(-c // s) for c in x.chunks[0])
                got = got.compute()
                assert got.dtype == counts and got.shape == want.shape
                np.testing.assert_array_equal(got, want)  # NaN == NaN here
    assert np.isnan(got).any() and np.isposinf(got).any()


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
@pytest.mark.parametrize("cutoff", [None, 1000, 0])
def test_summed_binned_counts_of_frames_padded_already(dtype, cutoff):
    """Frames zero-padded to multiples of b before (as the reader pads them) with their true
    ``frame_shape``: the same counts as padding inside; the padding never becomes a marker
    (even with a cutoff of 0, where every real pixel is saturated)."""
    frames, mask = make_frames(dtype=np.uint16)
    frames = frames.astype(dtype)
    x = da.from_array(frames, chunks=(2, -1, -1))
    padded = da.from_array(
        np.pad(frames, [(0, 0), (0, 3), (0, 1)]), chunks=(2, -1, -1)
    )  # 9 x 11 -> 12 x 12
    for m in (None, mask):
        want = T.summed_binned_counts(x, 2, 4, m, cutoff).compute()
        got = T.summed_binned_counts(padded, 2, 4, m, cutoff, frame_shape=(9, 11)).compute()
        np.testing.assert_array_equal(got, want)
    assert got.shape == (4, 3, 3)


def test_markers_survive_blocks_not_in_c_order():
    """A Fortran-ordered block (a notebook's transpose, say): the markers are set through
    flat views, which must not silently be copies."""
    frames, mask = make_frames(dtype=np.uint32)
    want = T._counts_block(frames, mask, 1000, np.dtype(np.float32))
    got = T._counts_block(np.asfortranarray(frames), mask, 1000, np.dtype(np.float32))
    np.testing.assert_array_equal(got, want)
    assert np.isnan(want).any() and np.isposinf(want).any()
    x = da.from_array(np.asfortranarray(frames), chunks=(2, -1, -1))
    np.testing.assert_array_equal(
        T.summed_counts(x, 2, mask, 1000).compute(),
        T.sum_frames(T.to_counts(x, mask, 1000), 2).compute(),
    )


def test_summed_counts_refuse_chunks_not_multiple_of_sum():
    x = da.zeros((9, 4, 4), chunks=(3, 4, 4), dtype=np.uint16)
    with pytest.raises(ValueError, match="not multiples of 2"):
        T.summed_counts(x, 2)


def test_sums_of_large_counts_are_exact():
    """uint16 frames near their top sum above 65535.

    uint32 ones without a cutoff sum above 2**32 (float64).
    """
    x = da.from_array(np.full((2, 2, 2), 65000, np.uint16), chunks=(2, -1, -1))
    assert (T.summed_counts(x, 2, None, 65500, np.float64).compute() == 130000).all()
    y = da.from_array(np.full((2, 2, 2), 2**31 + 5, np.uint32), chunks=(2, -1, -1))
    assert (T.summed_counts(y, 2, None, None, np.float64).compute() == 2**32 + 10).all()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.int32])
def test_finalize_of_whole_counts_skips_rounding_only(dtype):
    """``integral=True`` (no log/exp upstream) gives exactly the rounding path's pixels:
    markers, negatives, values above saturation and the type's all-bits-set invalid value."""
    rng = np.random.default_rng(4)
    x = rng.integers(-50, 400, (3, 20, 30)).astype(np.float32)
    x[0, 1, :5] = np.nan
    x[1, 2, 3] = np.inf
    x[2, 5, 6] = 1e9
    v = da.from_array(x, chunks=(2, -1, -1))
    want = T.finalize(v, dtype, 200).compute()
    got = T.finalize(v, dtype, 200, integral=True).compute()
    np.testing.assert_array_equal(got, want)
    assert got.dtype == dtype and got[1, 2, 3] == 200 == got[2, 5, 6]
    assert (got[0, 1, :5] == T.invalid_value(dtype)).all()


def test_markers_for_signed_input():
    frames = np.array([[[5, -1, 100, 3]]], np.int32)
    c = T.to_counts(da.from_array(frames), None, cutoff=100).compute()
    assert c[0, 0, 0] == 5 and np.isnan(c[0, 0, 1]) and np.isposinf(c[0, 0, 2]) and c[0, 0, 3] == 3


def test_markers_invalid_nan_saturated_inf():
    frames = np.array([[[5, 0xFFFF, 100, 3]]], np.uint16)
    mask = np.array([[0, 0, 0, 2]], np.uint32)
    c = T.to_counts(da.from_array(frames), mask, cutoff=100).compute()
    assert (
        c[0, 0, 0] == 5
        and np.isnan(c[0, 0, 1])
        and np.isposinf(c[0, 0, 2])
        and np.isnan(c[0, 0, 3])
    )
    # invalid wins over saturated when both fall in one output pixel
    assert np.isnan(T.bin_pixels(da.from_array(c[:, :, 1:3]), 2).compute()[0, 0, 0])
    # a flagged pixel is invalid whatever it holds, saturated count or all bits set
    flagged = T.to_counts(
        da.from_array(frames), np.array([[0, 1, 1, 0]], np.uint32), cutoff=100
    ).compute()
    assert np.isnan(flagged[0, 0, 1:3]).all() and flagged[0, 0, 0] == 5


def test_log_and_exp_are_inverse():
    x = da.from_array(np.array([[[0, 1, 7, 1000, 65000]]], np.float32))
    lg = T.log_transform(x, 2.0)
    np.testing.assert_allclose(
        lg.compute(), np.log2(np.array([1, 2, 8, 1001, 65001.0]))[None, None], rtol=1e-6
    )
    np.testing.assert_allclose(T.exp_transform(lg, 2.0).compute(), x.compute(), rtol=1e-4)
    neg = da.from_array(np.array([[[-3]]], np.float32))
    assert T.log_transform(neg, 2.0).compute()[0, 0, 0] == 0
    assert T.log_transform(neg, 2.0, signed=True).compute()[0, 0, 0] == pytest.approx(-2.0)
    assert T.exp_transform(da.from_array(np.array([[[-2.0]]])), 2.0, signed=True).compute()[
        0, 0, 0
    ] == pytest.approx(-3.0)
    special = da.from_array(np.array([[[np.nan, np.inf]]], np.float32))
    got = T.log_transform(special, 2.0).compute()
    assert np.isnan(got[0, 0, 0]) and np.isposinf(got[0, 0, 1])


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.uint16, np.float32, np.float16])
def test_finalize_clips_undershoot_at_zero_in_every_type(dtype):
    """A lossy round trip may undershoot below 0; true counts never are (and in int16 -1
    is the invalid marker)."""
    x = np.array([[[-2.4, -1.0, -0.4, 0.0, 3.0, np.inf, np.nan]]], np.float32)
    out = T._finalize_block(x, dtype, 1000)
    assert out.dtype == dtype
    assert out[0, 0, :5].tolist() == [0, 0, 0, 0, 3] and out[0, 0, 5] == 1000
    last = out[0, 0, 6]
    assert np.isnan(last) if np.dtype(dtype).kind == "f" else last == T.invalid_value(dtype)


def test_scaled_and_log_counts_round_to_nearest_half_to_even():
    """-S and -L into integer output round to the nearest integer, half to even (not the
    published tool's truncation, which lowers every value by half a count on average)."""
    x = da.from_array(np.array([[[1, 3, 5, 7, 1000]]], np.float32), chunks=-1)
    np.testing.assert_array_equal(T.scale(x, 0.5).compute()[0, 0], [0, 2, 2, 4, 500])
    logs = T.log_transform(x, 2.0).compute()  # log2(1 + v): 1, 2, 2.585, 3, 9.97
    out = T._finalize_block(logs, np.uint16, 100)
    np.testing.assert_array_equal(out[0, 0], [1, 2, 3, 3, 10])
    rng = np.random.default_rng(0)  # the mean of many scaled counts stays near; truncation's falls
    v = rng.poisson(7, 100000).astype(np.float32).reshape(1, 100, 1000)
    scaled = T.scale(da.from_array(v, chunks=-1), 0.3).compute()
    assert (
        abs(scaled.mean() - 0.3 * v.mean()) < 0.1 < 0.3 < 0.3 * v.mean() - np.trunc(0.3 * v).mean()
    )


def test_mask_caches_are_computed_once_across_threads():
    """dask's threads start their first tasks together: the per-process mask caches are
    computed by one of them, the others wait for its result."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    calls, gate = [], threading.Event()

    @T.once_per_process
    def slow(x):
        calls.append(x)
        gate.wait(5)
        return [x]

    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(slow, 1) for _ in range(3)]
        time.sleep(0.2)  # all three have asked
        gate.set()
        results = [f.result() for f in futures]
    assert calls == [1] and all(r is results[0] for r in results)
    assert slow(2) == [2] and calls == [1, 2] and slow.cache_info().hits == 2


@pytest.mark.parametrize("dtype", [np.int16, np.int32])
def test_signed_input_takes_every_negative_value_as_invalid(dtype):
    """No count is negative: in signed frames (-c sz3's output, JUNGFRAU-like data) any value
    below 0 is an invalid pixel, as DIALS reads it, not a count that would lower a sum."""
    frames = np.full((2, 4, 4), 7, dtype)
    frames[0, 0, 0], frames[1, 2, 3], frames[0, 3, 3] = -1, -2, -(2**14)
    got = T.to_counts(da.from_array(frames, chunks=(1, 4, 4)), None, 1000, np.float32).compute()
    assert np.isnan(got[0, 0, 0]) and np.isnan(got[1, 2, 3]) and np.isnan(got[0, 3, 3])
    assert np.isfinite(got).sum() == frames.size - 3 and (got[np.isfinite(got)] == 7).all()
    summed = T.summed_binned_counts(da.from_array(frames, chunks=(2, 4, 4)), 2, 2, None, 1000,
                                    np.float32).compute()  # fmt: skip
    assert np.isnan(summed[0, 0, 0]) and np.isnan(summed[0, 1, 1]) and summed[0, 0, 1] == 56


@pytest.mark.parametrize("dtype,sat", [(np.uint32, 2**32 - 2), (np.int32, 2**31 - 2),
                                       (np.uint32, 2**24 + 1)])  # fmt: skip
def test_a_saturation_float32_cannot_hold_never_wraps(dtype, sat):
    """-X or -S can push counts past what the output type holds: the saturation is not a
    float32 value there (2**32 - 2 is 2**32 in float32, which would wrap to 0)."""
    x = np.array([[30, 2.0**24, 2**31, 2.0**32, np.inf, 88, np.nan]], np.float32)
    out = T._finalize_block(x, np.dtype(dtype), sat, integral=True)
    want = [min(v, sat) for v in (30, 2**24, 2**31, 2**32, sat, 88)]
    assert out[0, :6].tolist() == want and out[0, 6] == T.invalid_value(dtype)
    assert (out[0, :6] <= sat).all() and out[0, 4] == sat  # saturated pixels say so exactly
