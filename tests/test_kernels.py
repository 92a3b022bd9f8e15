"""The compiled kernels give, pixel for pixel, what their numpy references give."""

import numpy as np
import pytest

from lbnl_dask import background as B
from lbnl_dask import kernels


def _case(rng, shape, background, dtype, huge=False, gaps=True):
    """A frame of counts with spots and marked pixels, and a 'decoded' version of it that
    is smeared, biased and partly negative, as a lossy round trip leaves it."""
    ny, nx = shape
    frame = rng.poisson(background, shape).astype(dtype)
    for _ in range(max(1, ny * nx // 2000)):  # spots
        y, x = rng.integers(ny), rng.integers(nx)
        frame[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2] += rng.integers(20, 5000)
    if huge:  # cell sums past 2**24: the float order of the sums shows
        frame[rng.random(shape) < 0.05] = rng.integers(2**22, 2**26)
    decoded = np.rint(frame * rng.uniform(0.6, 1.4) + rng.normal(0, 2, shape)).astype(dtype)
    decoded[rng.random(shape) < 0.02] = 0
    valid = np.ones(shape, bool)
    if gaps and ny > 8 and nx > 8:
        valid[ny // 3 : ny // 3 + 3] = False  # a module gap
        valid[:, nx // 2] = False
    valid &= rng.random(shape) > 0.01  # hot pixels
    frame[~valid] = np.nan
    return frame, decoded, valid


def _both(frame, decoded, valid, tile=B.TOTALS_TILE, grow=B.STRONG_GROW):
    ref = B.restore_totals_numpy(decoded.copy(), frame, valid, tile, grow)
    special = np.flatnonzero(~valid)
    got = B.restore_totals(decoded.copy(), frame, special, tile, grow)
    return ref, got


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("background", [0.003, 0.2, 1.5, 6.0, 40.0])
def test_restore_totals_kernel_is_the_numpy_rule(seed, background):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(40, 130)), int(rng.integers(40, 130)))  # odd sizes too
    ref, got = _both(*_case(rng, shape, background, np.float32))
    np.testing.assert_array_equal(got, ref)
    decoded = _case(np.random.default_rng(seed), shape, background, np.float32)[1]
    assert not np.array_equal(ref, decoded)  # the rule did change pixels


@pytest.mark.parametrize("tile", [1, 2, 3, 6, 7, 8, 11, 13])
@pytest.mark.parametrize("grow", [0, 1, 2])
def test_restore_totals_kernel_every_tile_and_growth(tile, grow):
    rng = np.random.default_rng(tile * 10 + grow)
    ref, got = _both(*_case(rng, (61, 47), 2.0, np.float32), tile=tile, grow=min(grow, tile))
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_restore_totals_kernel_huge_counts_sum_in_the_references_order(dtype):
    """Past 2**24 a float32 sum depends on its order: the kernel keeps the reference's."""
    for seed in range(5):
        rng = np.random.default_rng(100 + seed)
        ref, got = _both(*_case(rng, (90, 75), 5.0, dtype, huge=True))
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cell_totals_order(dtype):
    """cell_totals adds each cell's rows from the top, then its columns from the left, as
    its docstring says (values whose float sums depend on the order)."""
    rng = np.random.default_rng(4)
    a = (rng.random((13, 17)) * 2.0**30).astype(dtype)
    got = B.cell_totals(a, 6)
    want = np.zeros((3, 3), dtype)
    for cy in range(3):
        for cx in range(3):
            cols = a[6 * cy : 6 * cy + 6, 6 * cx : 6 * cx + 6]
            col = cols[0].copy()
            for row in cols[1:]:
                col = col + row
            t = col[0]
            for v in col[1:]:
                t = dtype(t + v)
            want[cy, cx] = t
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got.astype(np.float64), B._to_cells(a, 6).sum(axis=1).reshape(3, 3))


def test_restore_totals_kernel_edge_shapes():
    for shape in [(1, 1), (1, 40), (40, 1), (5, 5), (6, 6), (7, 13)]:
        rng = np.random.default_rng(sum(shape))
        frame, decoded, valid = _case(rng, shape, 3.0, np.float32, gaps=False)
        ref, got = _both(frame, decoded, valid)
        np.testing.assert_array_equal(got, ref)
    frame, decoded, valid = _case(np.random.default_rng(7), (30, 30), 3.0, np.float32)
    valid[:] = False  # nothing valid: nothing changes
    ref, got = _both(frame, decoded, valid)
    np.testing.assert_array_equal(got, decoded)
    np.testing.assert_array_equal(ref, decoded)


def test_restore_totals_kernel_class_decoded_to_nothing():
    """Cells whose classes decoded to 0 get their totals spread evenly, as in numpy."""
    rng = np.random.default_rng(3)
    frame, decoded, valid = _case(rng, (48, 48), 4.0, np.float32)
    decoded[:24] = 0
    decoded[24:, :20] = -3
    ref, got = _both(frame, decoded, valid)
    np.testing.assert_array_equal(got, ref)
    cells = B._to_cells(np.where(valid, got, 0), 6)[:8]  # top rows: totals back
    want = B._to_cells(np.where(valid, frame, 0), 6)[:8]
    np.testing.assert_array_equal(cells.sum(axis=1), want.sum(axis=1))


def test_restore_totals_other_types_use_numpy():
    """Integer or mixed types, or views, take the numpy path: same rule, same answer."""
    rng = np.random.default_rng(11)
    frame, decoded, valid = _case(rng, (50, 60), 2.0, np.float32)
    special = np.flatnonzero(~valid)
    ref = B.restore_totals_numpy(decoded.copy(), frame, valid)
    wide_dec = decoded.astype(np.float64)
    mixed = B.restore_totals(wide_dec.copy(), frame, special)
    np.testing.assert_array_equal(mixed, B.restore_totals_numpy(wide_dec, frame, valid))
    wide = np.zeros((50, 120), np.float32)
    view = wide[:, ::2]
    view[:] = decoded

    def refuse(*args):
        raise AssertionError("the kernel ran")

    with pytest.MonkeyPatch.context() as mp:  # both went the numpy way
        mp.setattr(kernels, "restore_totals", refuse)
        np.testing.assert_array_equal(B.restore_totals(view, frame, special), ref)
        B.restore_totals(decoded.astype(np.float64), frame, special)


def test_restore_totals_kernel_work_arrays_start_dirty():
    """The kernel's work arrays come from np.empty: a row's results must not depend on what
    they held (a NaN left in one by an earlier frame once turned a row's strong pixels off,
    only inside the pipeline, where freed memory holds marked frames)."""
    rng = np.random.default_rng(9)
    frame, decoded, valid = _case(rng, (24, 40), 3.0, np.float32, gaps=False)
    ys = np.arange(0, 24, 6)[:, None] + rng.integers(0, 6, (4, 7))
    frame[ys, np.arange(0, 40, 6) + 3] = 200
    valid[1::6, 2::6] = False  # every cell has an invalid pixel and a strong one
    tile, nx, cx, half = 6, 40, 7, np.float32(0.5)
    results = []
    for fill in (0.0, np.nan, np.inf, -1e30):
        grown = np.zeros(frame.shape, bool)
        work = np.full((4 + 2 * tile, nx), fill, np.float32)
        sums = np.full((4, cx), fill, np.float32)
        wcount, count = np.full((2, nx), -7, np.int64), np.full((2, cx), -7, np.int64)
        out = decoded.copy()
        for y0 in (0, 6, 12, 18):
            kernels._mark_strong(frame, valid, y0, tile, 2, grown, work[0], wcount[0], sums[0],
                                 count[0])  # fmt: skip
        for y0 in (0, 6, 12, 18):
            work[:], sums[:], wcount[:], count[:] = fill, fill, -7, -7
            kernels._restore_row(out, frame, valid, grown, y0, tile, half, work, wcount, sums,
                                 count)  # fmt: skip
        results.append((grown, out))
    assert results[0][0].any()
    for grown, out in results[1:]:
        np.testing.assert_array_equal(grown, results[0][0])
        np.testing.assert_array_equal(out, results[0][1])
    ref = B.restore_totals_numpy(decoded.copy(), frame, valid)
    np.testing.assert_array_equal(results[0][1], ref)


@pytest.mark.parametrize("raw_type", [np.uint16, np.uint32, np.uint64])
@pytest.mark.parametrize("s, b", [(1, 1), (2, 1), (1, 2), (2, 2), (3, 2), (4, 3), (2, 4)])
def test_summed_binned_kernel_is_the_numpy_band_loop(raw_type, s, b):
    """Sums, bins and markers (all bits set: NaN; at or above the cutoff: +inf; masked
    cells: NaN), the compiled kernel against numpy's band loop, pixel for pixel."""
    from lbnl_dask import transform as T

    rng = np.random.default_rng(s * 10 + b)
    g, ny, nx = 3, 7 * b, 11 * b
    allbits = np.iinfo(raw_type).max
    raw = rng.poisson(3.0, (g * s, ny, nx)).astype(raw_type)
    raw[rng.random(raw.shape) < 0.01] = allbits  # gaps and bad pixels, in some frames
    cutoff = int(min(allbits - 1, 60000))
    raw[rng.random(raw.shape) < 0.01] = cutoff + rng.integers(0, 3)  # saturated
    mask = np.zeros((ny, nx), np.uint32)
    mask[2, :] = 1
    mask[:, 5] = 4
    raw[:, 2, :] = allbits  # a masked gap: huge raw values, NaN cells
    x = raw.reshape(g, s, ny // b, b, nx // b, b)
    for dtype in (np.float32, np.float64):
        for m in (None, mask):
            got = T._summed_binned_block(x, axis=(1, 3, 5), mask=m, cutoff=cutoff, dtype=dtype)
            valid, masked = T._band_masks(m, (ny, nx), b, ny, nx)
            ref = T._summed_binned_numpy(x, valid, cutoff, allbits, np.dtype(dtype))
            if masked is not None:
                np.copyto(ref, np.nan, where=masked)
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, ref)
            assert np.isnan(got).any() and np.isinf(got).any()
    flipped = x[:, :, :, :, ::-1]  # not contiguous: the numpy path, same as the kernel's
    got = T._summed_binned_block(flipped, axis=(1, 3, 5), cutoff=cutoff)
    want = T._summed_binned_block(np.ascontiguousarray(flipped), axis=(1, 3, 5), cutoff=cutoff)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("b", [1, 2, 3])
def test_summed_binned_kernel_rows_wider_than_a_span(b, masked, dtype):
    """Rows of several spans (kernels.SPAN): markers at each span's first and last pixel,
    in the last partial span and in a gap column through every row are found as numpy
    finds them; spans without a marker are left as summed."""
    from lbnl_dask import kernels as K
    from lbnl_dask import transform as T

    span = K.SPAN
    g, s, ny, nx = 2, 2, 4 * b, (3 * span + 7) // b * b
    allbits = np.iinfo(np.uint32).max
    raw = np.random.default_rng(b).poisson(2.0, (g * s, ny, nx)).astype(np.uint32)
    cols = [c for c in (0, span - 1, span, 2 * span - 1, 2 * span, nx - 1) if c < nx]
    for k, c in enumerate(cols):
        raw[k % (g * s), k % ny, c] = allbits if k % 2 else 70000  # invalid / saturated
    raw[:, :, span + 3] = allbits  # a module gap through every row
    x = raw.reshape(g, s, ny // b, b, nx // b, b)
    mask = None
    if masked:  # a masked column at a span's edge: NaN cells, and no markers looked for there
        mask = np.zeros((ny, nx), np.uint32)
        mask[:, span - 1] = 1
    got = T._summed_binned_block(x, axis=(1, 3, 5), mask=mask, cutoff=65000, dtype=dtype)
    valid, masked_cells = T._band_masks(mask, (ny, nx), b, ny, nx)
    ref = T._summed_binned_numpy(x, valid, 65000, allbits, np.dtype(dtype))
    if masked_cells is not None:
        np.copyto(ref, np.nan, where=masked_cells)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, ref)
    assert np.isnan(got).sum() >= g * (ny // b) and np.isinf(got).sum() >= (2 if masked else 3)


@pytest.mark.parametrize("raw_type", [np.uint16, np.uint32, np.uint64])
@pytest.mark.parametrize("s", [2, 3, 5])
def test_summed_binned_kernel_rounds_large_sums_as_numpy(raw_type, s):
    """Sums past 2**24 in float32 (no cutoff): they round, and the kernel rounds as numpy
    does (the first two frames converted to float32 and added, then each raw frame added in
    numpy's mixed type)."""
    from lbnl_dask import transform as T

    rng = np.random.default_rng(s)
    top = min(2**27, np.iinfo(raw_type).max - 1)
    raw = rng.integers(0, top, (2 * s, 8, 12)).astype(raw_type)
    x = raw.reshape(2, s, 4, 2, 6, 2)
    valid, _ = T._band_masks(None, (8, 12), 2, 8, 12)
    ref = T._summed_binned_numpy(x, valid, np.iinfo(raw_type).max, np.iinfo(raw_type).max,
                                 np.dtype(np.float32))  # fmt: skip
    got = T._summed_binned_block(x, axis=(1, 3, 5), dtype=np.float32)
    np.testing.assert_array_equal(got, ref)
    if raw_type != np.uint16:  # (uint16 sums stay exact)
        exact = raw.astype(np.int64).reshape(2, s, 4, 2, 6, 2).sum(axis=(1, 3, 5))
        assert (got != exact).any()  # the case rounds


def test_summed_binned_big_endian_frames_take_the_numpy_path():
    """h5py gives a big-endian dataset's frames as '>u4': numba does not take them."""
    from lbnl_dask import transform as T

    raw = np.random.default_rng(2).poisson(5, (4, 6, 8)).astype(np.uint32)
    native = raw.reshape(2, 2, 3, 2, 4, 2)
    swapped = raw.astype(">u4").reshape(2, 2, 3, 2, 4, 2)
    got = T._summed_binned_block(swapped, axis=(1, 3, 5), cutoff=1000)
    np.testing.assert_array_equal(got, T._summed_binned_block(native, axis=(1, 3, 5), cutoff=1000))
    assert got.sum() == raw.sum()


def test_kernel_without_a_writable_cache_compiles_per_process(monkeypatch):
    """Where numba finds nowhere to cache (it raises RuntimeError at decoration), the kernel
    is compiled without the cache instead of failing the import."""
    real = kernels.numba.njit

    def njit(**options):
        if options.get("cache"):
            raise RuntimeError("cannot cache function: no locator available")
        return real(**options)

    monkeypatch.setattr(kernels.numba, "njit", njit)

    @kernels.kernel
    def twice(a):
        return 2 * a

    from numba.core.caching import NullCache

    assert twice(21) == 42
    assert isinstance(twice._cache, NullCache)  # compiled, not cached
    assert not isinstance(kernels.restore_totals._cache, NullCache)  # the real ones are


def test_hcompress_kernel_and_numpy_agree_on_frames():
    """The HCompress kernel and the numpy levels, side by side on whole frames of every kind
    of tests/test_hcompress_fast (which holds both to astropy)."""
    from lbnl_dask import hcompress_fast as F
    from tests.test_hcompress_fast import KINDS

    rng = np.random.default_rng(12)
    for kind in sorted(KINDS):
        frame = KINDS[kind](rng, (140, 203)).astype(np.int32)
        for scale in (0, 3, 12, 64, 1000):
            np.testing.assert_array_equal(
                F.roundtrip_frame(frame, scale, 16),
                F.roundtrip_frame(frame, scale, 16, compiled=False),
                err_msg=f"{kind} {scale}",
            )


def _codec_frame(rng, shape, dtype, big):
    """Counts with NaN (invalid), +inf (saturated), values past the codecs' ranges, a module
    gap wider than a fill cell, and a keep mask."""
    frame = rng.poisson(3.0, shape).astype(dtype)
    frame[rng.random(shape) < 0.01] = rng.uniform(0, big)
    frame[rng.random(shape) < 0.01] = np.nan
    frame[rng.random(shape) < 0.005] = np.inf
    frame[rng.random(shape) < 0.003] = -rng.uniform(0, big)  # undershoot, clipped
    if shape[0] > 40:
        frame[5:40] = np.nan  # whole cells with nothing valid: their frame's mean
    keep = rng.random(shape) < 0.02
    return frame, keep


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("codec_name", ["hcompress", "j2k", "sz3"])
def test_codec_input_kernel_is_the_numpy_rule(dtype, codec_name):
    from lbnl_dask import roundtrip as R
    from lbnl_dask.codecs import JPEG2000, HCompress
    from lbnl_dask.errorbound import SZ3

    codec = {"hcompress": HCompress(12), "j2k": JPEG2000(120), "sz3": SZ3(2.0)}[codec_name]
    for seed, shape in enumerate([(97, 130), (64, 64), (33, 7), (1, 1)]):
        rng = np.random.default_rng(seed)
        frame, keep = _codec_frame(rng, shape, dtype, big=2.0**30)
        for k in (None, keep):
            special = R._special(frame, k)
            want = R._prepared(frame, codec, special)
            got, valid = R._codec_input(frame, codec, k)
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(np.flatnonzero(~valid), special)
    for seed in range(40):  # fractional counts (-S, -L, -X) too
        rng = np.random.default_rng(1000 + seed)
        frac = (rng.random((70, 90)) * 10 ** rng.uniform(0, 7)).astype(dtype)
        frac[rng.random(frac.shape) < 0.3] = np.nan
        want = R._prepared(frac, codec, R._special(frac, None))
        np.testing.assert_array_equal(R._codec_input(frac, codec, None)[0], want)
    everything_invalid = np.full((40, 50), np.nan, dtype)  # no valid pixel: filled with 0
    got, valid = R._codec_input(everything_invalid, codec, None)
    assert not valid.any() and not got.any()
    frame, keep = _codec_frame(np.random.default_rng(0), (97, 130), dtype, big=2.0**30)
    strided = np.asfortranarray(frame)  # not C-contiguous: numpy's way, the same values
    assert not strided.flags.c_contiguous
    np.testing.assert_array_equal(R._codec_input(strided, codec, keep)[0],
                                  R._codec_input(frame, codec, keep)[0])  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:  # C-contiguous floats take the kernel
        mp.setattr(kernels, "codec_input", None)
        with pytest.raises(TypeError):
            R._codec_input(frame, codec, keep)


def test_restore_totals_float_frames_take_the_kernel():
    """The equality tests above compare the kernel with numpy only if the dispatcher picks
    the kernel for C-contiguous float frames: it does."""
    frame, decoded, valid = _case(np.random.default_rng(1), (40, 50), 2.0, np.float32)

    def refuse(*args):
        raise AssertionError("the numpy path ran")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(B, "restore_totals_numpy", refuse)
        for dtype in (np.float32, np.float64):
            B.restore_totals(decoded.astype(dtype), frame.astype(dtype), np.flatnonzero(~valid))


@pytest.mark.parametrize("x_type", [np.float32, np.float64])
@pytest.mark.parametrize("out_type, saturation", [(np.uint32, 99520), (np.uint16, 65534),
                                                  (np.uint16, 1), (np.uint32, 2**24)])  # fmt: skip
@pytest.mark.parametrize("marked", [False, True])
def test_whole_counts_kernel_is_the_numpy_rule(x_type, out_type, saturation, marked):
    """The output type's one compiled pass gives the numpy reference's pixels: NaN -> all
    bits set, +-inf and negatives clipped, the saturation itself and one above it (an
    overload, or where every overload is marked +inf, a valid count clipped below it)."""
    from lbnl_dask import transform as T

    rng = np.random.default_rng(saturation)
    x = rng.integers(-50, 120000, (37, 53)).astype(x_type)
    for value, n in ((np.nan, 40), (np.inf, 40), (-np.inf, 10)):
        x.flat[rng.integers(0, x.size, n)] = value
    x.flat[:3] = (-0.0, saturation, saturation + 1)
    got = T._finalize_block(x, out_type, saturation, True, marked)
    want = T._finalize_numpy(x, out_type, saturation, True, marked)
    assert got.dtype == want.dtype == out_type
    np.testing.assert_array_equal(got, want)
    top = saturation - 1 if marked else saturation
    assert got.flat[0] == 0 and got.flat[1] == got.flat[2] == top
    assert (got[np.isposinf(x)] == saturation).all()
    assert (got[np.isnan(x)] == np.iinfo(out_type).max).all()


@pytest.mark.parametrize("background", [0.003, 0.2, 1.5, 6.0, 40.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strong_pixels_kernel_is_the_numpy_spot_finder(background, dtype):
    """The spot finder's compiled kernel (--keep-spots, the fidelity line) against its numpy
    reference, pixel for pixel: whole counts over the background range, spots, invalid
    (NaN) and saturated (+inf) pixels, a cell with no finite pixel, partial cells at the
    edges, frames of one row or column, growth 0 to 3, several tiles and sigmas."""
    from lbnl_dask import spots as S

    rng = np.random.default_rng(int(background * 1000))
    shapes = [(67, 45), (130, 97), (1, 40), (40, 1), (2, 2), (33, 64)]
    for k, (ny, nx) in enumerate(shapes):
        f = rng.poisson(background, (ny, nx)).astype(dtype)
        spots = rng.random(f.shape) < 0.01
        f[spots] += rng.poisson(300, int(spots.sum()))
        f[rng.random(f.shape) < 0.02] = np.nan
        f[rng.random(f.shape) < 0.005] = np.inf
        if k == 1:
            f[:32, :32] = np.nan  # a whole cell invalid: the frame's mean stands in
        for sigma, grow, tile in ((5.0, 2, 32), (3.0, 0, 7), (2.5, 3, 4)):
            want = S._spots_numpy(f[None], sigma, grow, tile)[0]
            got = np.empty(f.shape, bool)
            kernels.strong_pixels(f, sigma, grow, tile, got)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(S._spots_block(f[None], sigma, grow, tile)[0], want)
    for empty in ((0, 5), (4, 0)):
        got = np.ones(empty, bool)
        assert kernels.strong_pixels(np.zeros(empty, dtype), 5.0, 2, 32, got).shape == empty
    stack = np.ascontiguousarray(rng.poisson(2.0, (3, 20, 30)).astype(dtype)[:, :, ::-1])
    np.testing.assert_array_equal(S._spots_block(stack[:, :, ::-1], 5.0, 2, 8),
                                  S._spots_numpy(stack[:, :, ::-1], 5.0, 2, 8))  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_put_back_kernel_is_the_index_rule(dtype):
    """The pixels a round trip does not carry go back as they were, NaN and +inf included:
    the compiled pass and the flat-index assignment give the same frame; frames of two
    types take the index path."""
    from lbnl_dask import roundtrip as R

    rng = np.random.default_rng(7)
    original = rng.poisson(4.0, (53, 37)).astype(dtype)
    original[rng.random(original.shape) < 0.05] = np.nan
    original[rng.random(original.shape) < 0.02] = np.inf
    valid = np.isfinite(original) & (rng.random(original.shape) > 0.1)
    decoded = rng.normal(4.0, 1.0, original.shape).astype(dtype)
    want = decoded.copy()
    special = np.flatnonzero(~valid)
    want.reshape(-1)[special] = original.reshape(-1)[special]
    got = decoded.copy()
    kernels.put_back(got, original, valid)
    np.testing.assert_array_equal(got, want)
    for d, o in ((decoded.copy(), original),
                 (decoded.astype(np.float64), original.astype(np.float32))):  # fmt: skip
        R._put_back(d, o, valid, False)
        np.testing.assert_array_equal(d, want.astype(d.dtype))


@pytest.mark.parametrize("ref_type, out_type", [(np.float32, np.float64), (np.float64, np.float64),
                                                (np.float32, np.float32)])  # fmt: skip
def test_frame_fidelity_kernel_is_the_numpy_rule(ref_type, out_type):
    """The fidelity line's sums of one sampled frame: the compiled pass gives numpy's
    figures on whole counts with invalid (NaN) and saturated (+inf) pixels in either frame,
    kept regions, and background pairs broken by them; non-contiguous frames take numpy's."""
    from lbnl_dask import quality as Q

    rng = np.random.default_rng(11)
    ref = rng.poisson(3.0, (61, 47)).astype(ref_type)
    out = (ref + rng.integers(-2, 3, ref.shape)).clip(0).astype(out_type)
    ref[rng.random(ref.shape) < 0.04] = np.nan
    out[rng.random(out.shape) < 0.03] = np.nan
    ref[rng.random(ref.shape) < 0.01] = np.inf
    out[rng.random(out.shape) < 0.01] = np.inf
    kept = rng.random(ref.shape) < 0.2
    want = Q._frame_fidelity_numpy(ref, out, kept)
    got = Q._frame_fidelity(ref, out, kept)
    assert got[0] == want[0] and got[1:3] == want[1:3]
    np.testing.assert_array_equal(got[3], want[3])
    assert want[1] > 0 and want[2] > 0 and want[3][1, 1] > 0  # the test sees every figure
    strided = Q._frame_fidelity(ref[:, ::2], out[:, ::2], kept[:, ::2])  # numpy's path
    cut = Q._frame_fidelity(*(np.ascontiguousarray(a[:, ::2]) for a in (ref, out, kept)))
    assert strided[:3] == cut[:3]
    np.testing.assert_array_equal(strided[3], cut[3])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,bound", [((61, 47), 1.0), ((64, 66), 3.0), ((7, 5), 8.5)])
def test_keep_within_kernel_is_the_numpy_rule(dtype, shape, bound):
    """The compiled bound-keeping pass gives the numpy reference's pixels exactly."""
    from lbnl_dask.background import keep_within, keep_within_numpy, restore_totals

    rng = np.random.default_rng(int(bound * 10) + shape[0])
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    for lam in (0.05, 1.5, 6.0):
        orig = rng.poisson(lam + 2000 * np.exp(-((x - 3) ** 2 + (y - 4) ** 2) / 3.0))
        orig = orig.astype(dtype)
        b = np.floor(bound)
        dec = np.rint(orig + rng.uniform(-b, b, shape) + 0.4 * b).astype(dtype)
        valid = rng.random(shape) > 0.05
        restored = restore_totals(dec, orig, None, valid=valid)
        want = keep_within_numpy(restored.copy(), orig, valid, bound)
        got = keep_within(restored.copy(), orig, valid, bound)
        assert got.dtype == want.dtype and np.array_equal(got, want)
        assert np.abs(got - orig)[valid].max() <= b
