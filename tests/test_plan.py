"""Planning a run: chunks that coarsen never re-chunks and that never straddle two data
files, output names, and the input frames behind the files a (resumed) run writes."""

import numpy as np
import pytest

from lbnl_dask.errors import OptionError
from lbnl_dask.options import OutputOptions, RunSettings
from lbnl_dask.plan import Plan, chunk_frames, output_names


@pytest.mark.parametrize("s,d,pixels,keep", [(1, 100, 4_500_000, None), (2, 100, 4_500_000, None),
                                             (3, 7, 1_100_000, None), (2, 100, 18_000_000, 5.0),
                                             (4, 3, 100, None), (1, 1, 10**8, None)])  # fmt: skip
def test_chunks_are_multiples_of_s_and_divide_the_data_files(s, d, pixels, keep):
    o = OutputOptions(sum_range=s, data_block_size=d, hcomp_scale=8 if keep else None,
                      keep_spots=keep)  # fmt: skip
    c = chunk_frames(o, RunSettings(), pixels)
    assert c % s == 0 and d % (c // s) == 0
    if not keep:  # about 256 MB at most
        assert c == s or 8 * pixels * c <= 256 * 2**20 + 8 * pixels * s
    else:
        assert c // s >= o.keep_frames  # the spots' growth across frames needs that many
    assert chunk_frames(o, RunSettings(chunk_frames=6 * s), pixels) // s in (6, *range(1, 6))


def test_output_names():
    o = OutputOptions(hcomp_scale=4, out_squash="out_file")
    data, master, squash = output_names("x/run", o, 2)
    assert data == ["x/run_000001.h5", "x/run_000002.h5"] and master == "x/run_master.h5"
    assert squash == ["x/run_squash_000001.h5", "x/run_squash_000002.h5"]
    data, master, squash = output_names("run", OutputOptions(out_master="m/top"), 1)
    assert master == "m/top.h5" and squash == []
    assert output_names("r", OutputOptions(hcomp_scale=4, out_squash="q/sq"), 1)[2] == [
        "q/sq_000001.h5"
    ]


@pytest.mark.parametrize("out,options,match", [
    ("q/e", dict(out_master="q/e_000002"), "the master would take the name of an output"),
    ("q/e", dict(out_master="q/e_squash_000001", hcomp_scale=4, out_squash="out_file"),
     "the master would take the name of an output"),
    ("q/", {}, "give a prefix for the output files"),
])  # fmt: skip
def test_output_names_that_would_clash_are_refused(out, options, match):
    """Before anything is written: a master named like a data or squash file would be
    overwritten by it (the run said it wrote a master that was not there)."""
    with pytest.raises(OptionError, match=match):
        output_names(out, OutputOptions(**options), 3)


def plan(sizes, redo, frames_in, s, complete=False):
    names = [f"o_{k:06d}.h5" for k in range(1, len(sizes) + 1)]
    return Plan(master="o_master.h5", data_files=names, squash_files=[], block_sizes=sizes,
                frames_in=frames_in, frame_shape_in=(4, 4), frame_shape_out=(2, 2), dtype=None,
                saturation=1, token="t", bytes_in=0, lossy=None, chunk_frames=s, sum_range=s,
                redo=redo, complete=complete)  # fmt: skip


def test_frames_a_run_writes():
    assert plan([3, 3, 3, 2], [True] * 4, 21, 2).frames_to_write() == 21  # a partial last group
    assert plan([3, 3, 3, 2], [False, True, False, True], 21, 2).frames_to_write() == 6 + 3
    assert plan([3, 3], [True, True], 6, 1, complete=True).frames_to_write() == 0
    p = plan([3, 3, 3, 2], [False, True, False, True], 21, 2)
    assert p.frames_out == 11 and p.nblocks == 4 and p.skipped == 2


def test_space_needed_scales_by_output_over_input_pixel_size():
    """uint32 input written as uint32 needs about the input's bytes per pixel, not twice."""
    p = plan([2, 2], [True, True], 4, 1)
    p.bytes_in, p.frame_shape_out = 1000, (4, 4)
    for itemsize_in, out, want in ((4, np.uint32, 1000), (2, np.uint32, 2000), (4, np.uint16, 500)):
        p.itemsize_in, p.dtype = itemsize_in, np.dtype(out)
        assert p.bytes_needed() == want
