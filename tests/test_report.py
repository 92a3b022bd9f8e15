"""The run's report: data-file and with-master ratios, squash files, throughput of this run only."""

import os

import lbnl_dask
from lbnl_dask import quality as Q


def test_report_counts_the_master_and_lists_squash_files(tiny, tmp_path):
    r = lbnl_dask.compress(
        tiny,
        str(tmp_path / "o"),
        sum_range=2,
        hcomp_scale=8,
        data_block_size=3,
        out_squash="out_file",
        scheduler="threads",
    )
    assert r.bytes_master == os.path.getsize(tmp_path / "o_master.h5")
    assert r.ratio_raw2_with_master == r.raw2_bytes / (r.bytes_out + r.bytes_master) < r.ratio_raw2
    text = str(r)
    assert (
        f"data files: {r.ratio_files:.1f}x vs input files, {r.ratio_raw2:.1f}x vs 2-byte raw"
        in text
    )
    assert f"data files + master: {r.ratio_raw2_with_master:.1f}x vs 2-byte raw" in text
    assert r.squash_files == [str(tmp_path / f"o_squash_{k:06d}.h5") for k in range(1, 5)]
    assert "squash files   4 (o_squash_000001.h5 ...)" in text
    assert r.frames_processed == 20 and "(20 of" not in text


def test_rate_counts_only_the_frames_this_run_processed(tiny, tmp_path):
    kw = dict(sum_range=2, data_block_size=3, scheduler="threads")
    first = lbnl_dask.compress(tiny, str(tmp_path / "o"), **kw)
    assert first.frames_processed == 20
    again = lbnl_dask.compress(tiny, str(tmp_path / "o"), **kw)  # complete: nothing to do
    assert again.frames_processed == 0 and "nothing left to write" in str(again)
    assert "input frames/s" not in str(again)
    os.unlink(tmp_path / "o_master.h5")  # as after a run killed before its master
    os.unlink(tmp_path / "o_000002.h5")  # output frames 4-6 = input frames 7-12
    resumed = lbnl_dask.compress(tiny, str(tmp_path / "o"), **kw)
    assert resumed.frames_processed == 6 and resumed.blocks_skipped == 3
    assert "(6 of 20 frames this run)" in str(resumed)


def test_a_lossy_run_ends_with_a_sampled_fidelity_estimate(tiny, tmp_path):
    kw = dict(bin_range=2, sum_range=2, scheduler="threads")
    plain = lbnl_dask.compress(tiny, str(tmp_path / "h"), hcomp_scale=64, **kw)
    kept = lbnl_dask.compress(tiny, str(tmp_path / "k"), hcomp_scale=64, keep_spots=5.0, **kw)
    for r in (plain, kept):
        assert r.fidelity.startswith("4 sampled output frame(s): background out/in ")
        assert ", its noise out/in " in r.fidelity
        assert f"fidelity       {r.fidelity}" in str(r)
    # computed while the run wrote (its lossless side in a thread): the same as afterwards
    after = Q.sample_fidelity(tiny, plain.master, Q.RunGeometry(1, 20, 2, 2))
    assert plain.fidelity == Q.describe_sample_fidelity(after)
    # spots kept exactly: their counts come back unchanged; -H 64 alone does not keep them
    assert "spot neighbourhoods out/in 1.000 " in kept.fidelity
    assert "spot neighbourhoods out/in 1.000 " not in plain.fidelity
    quiet = lbnl_dask.compress(tiny, str(tmp_path / "q"), hcomp_scale=64, fidelity=False, **kw)
    assert quiet.fidelity is None and "fidelity" not in str(quiet)
    assert lbnl_dask.compress(tiny, str(tmp_path / "l"), **kw).fidelity is None  # lossless
    logs = lbnl_dask.compress(tiny, str(tmp_path / "x"), hcomp_scale=8, logarithm_base="e", **kw)
    assert logs.fidelity.startswith("not estimated: -S, -L, -X or -R")


def test_fidelity_reference_beside_the_run_and_a_failed_run_lets_it_end(
    tiny, tmp_path, monkeypatch, capsys
):
    """The fidelity line's lossless side runs in its own thread while the run writes (in the
    calling thread, after the writes, with the synchronous scheduler or one worker: a run
    given one core keeps to one); a run that fails waits for it to end (cut off at exit, it
    crashed the process), saying so after a second."""
    import threading

    import pytest

    from tests.test_errors import case_corrupt_chunk

    names, release, real = [], threading.Event(), Q.fidelity_reference

    def recorded(*args, **kwargs):
        names.append(threading.current_thread().name)
        release.wait(1.5)  # (not released: a reference that takes 1.5 s)
        return real(*args, **kwargs)

    monkeypatch.setattr(Q, "fidelity_reference", recorded)
    kw = dict(bin_range=2, sum_range=2, hcomp_scale=64)
    release.set()
    r = lbnl_dask.compress(tiny, str(tmp_path / "s"), scheduler="sync", **kw)
    assert names == ["MainThread"] and r.fidelity.startswith("4 sampled output frame(s)")
    r = lbnl_dask.compress(tiny, str(tmp_path / "w1"), scheduler="threads", workers=1, **kw)
    assert names[-1] == "MainThread" and r.fidelity.startswith("4 sampled output frame(s)")
    kw["workers"] = 2
    r = lbnl_dask.compress(tiny, str(tmp_path / "t"), scheduler="threads", **kw)
    assert names[-1] == "lbnl-fidelity" and r.fidelity.startswith("4 sampled output frame(s)")
    release.clear()  # the reference now waits until released
    bad, _ = case_corrupt_chunk(tmp_path, tiny)
    with pytest.raises(lbnl_dask.LbnlDaskError, match="cannot read frame 7 of"):
        lbnl_dask.compress(str(bad), str(tmp_path / "u"), scheduler="threads", **kw)
    waiting = [t for t in threading.enumerate() if t.name == "lbnl-fidelity" and t.is_alive()]
    release.set()
    assert waiting == []  # the error came once the reference had ended
    assert "waiting for the fidelity estimate's reads to end" in capsys.readouterr().err
    quiet = lbnl_dask.compress(tiny, str(tmp_path / "v"), scheduler="threads", fidelity=False,
                               **kw)  # fmt: skip
    assert quiet.fidelity is None and len(names) == 4  # no reference computed


def test_a_run_given_one_core_keeps_to_one():
    """-p 1 (or one core): the fidelity reference follows the writes; a cluster elsewhere
    (an address, SLURM) leaves the calling machine's cores to it, whatever its workers."""
    from lbnl_dask.cluster import SlurmOptions
    from lbnl_dask.options import RunSettings
    from lbnl_dask.pipeline import _one_core

    assert _one_core("sync", RunSettings(workers=4))
    assert _one_core("threads", RunSettings(workers=1))
    assert _one_core("processes", RunSettings(workers=1))
    assert not _one_core("threads", RunSettings(workers=2))
    assert not _one_core("tcp://127.0.0.1:8786", RunSettings(workers=1))
    assert not _one_core("processes", RunSettings(workers=1, slurm=SlurmOptions()))
