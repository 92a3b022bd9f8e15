"""Bragg-spot neighbourhoods (--keep-spots): grown in pixels and across chunked frames."""

import dask.array as da
import numpy as np
import pytest

from lbnl_dask import spots as S


def spot_frames(n=9, ny=40, nx=48, spot_frame=4, seed=0):
    """Poisson background 3 counts/px and one spot (600 counts over 3 x 3 px) in one frame."""
    rng = np.random.default_rng(seed)
    x = rng.poisson(3.0, (n, ny, nx)).astype(np.float32)
    x[spot_frame, 19:22, 29:32] += 600 / 9
    x[:, 5, :] = np.nan  # an invalid row is never a spot
    return x


@pytest.mark.parametrize(
    "chunk", [1, 2, 3, 9]
)  # chunks merged for the overlap; a short tail merged; as is; one
def test_spot_regions_grow_in_pixels_and_across_chunked_frames(chunk):
    x = spot_frames()
    lazy = S.spot_regions(da.from_array(x, chunks=(chunk, -1, -1)), sigma=5, grow=3, frames=2)
    assert lazy.dtype == bool and lazy.nbytes == x.size  # 1 byte per pixel
    assert lazy.chunks == (
        (chunk,) * (9 // chunk) + ((9 % chunk,) if 9 % chunk else ()),
        (40,),
        (48,),
    )
    keep = lazy.compute()
    assert keep.dtype == bool and keep.shape == x.shape
    # strong pixels are the spot and its 3x3-sum neighbours (18..22, 28..32), grown by 3
    region = np.zeros(x.shape[1:], bool)
    region[15:26, 25:36] = True
    for k in range(9):
        if 2 <= k <= 6:  # the spot's frame and 2 either side, whatever the chunking
            assert keep[k][region].all(), k
        assert not keep[k][~region].any(), k  # background alone is not kept (5 sigma)


def test_spot_regions_keep_chunks_for_the_codec_step():
    x = da.from_array(spot_frames(n=7), chunks=((3, 3, 1), -1, -1))
    assert S.spot_regions(x).chunks == x.chunks
    assert S._at_least((1, 1, 1, 1, 1), 2) == (2, 3) and S._at_least((3, 3, 1), 2) == (3, 4)
    assert S._at_least((4,), 9) == (4,)
