"""Another project's reader agrees: FabIO (ESRF's image library, its EigerImage class) reads
our synthetic input and our compressed output master frame for frame."""

import fabio
import numpy as np
import pytest

import lbnl_dask


@pytest.mark.parametrize("codec", [{}, {"hcomp_scale": 8}])
def test_fabio_reads_our_output(tiny, tmp_path, codec):
    rep = lbnl_dask.compress(
        tiny,
        str(tmp_path / "o"),
        bin_range=2,
        sum_range=2,
        data_block_size=3,
        scheduler="threads",
        **codec,
    )
    ours = lbnl_dask.open_dataset(rep.master).frames.compute()
    img = fabio.open(rep.master)
    assert img.nframes == ours.shape[0] == 10
    for i in range(img.nframes):
        np.testing.assert_array_equal(img.getframe(i).data, ours[i])


def test_fabio_reads_our_synthetic_input(tiny):
    ours = lbnl_dask.open_dataset(tiny).frames.compute()
    img = fabio.open(tiny)
    assert img.nframes == 20
    np.testing.assert_array_equal(img.getframe(13).data, ours[13])
