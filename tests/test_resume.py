"""Atomic, resumable runs: SIGKILL part-way then re-run; a worker killed during a run."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import lbnl_dask
from lbnl_dask.synth import make_dataset


@pytest.fixture(scope="module")
def medium(tmp_path_factory):
    """60 frames of a synthetic Eiger 1M: slow enough to interrupt part-way."""
    return make_dataset(
        tmp_path_factory.mktemp("medium") / "m", "eiger_1m", nframes=60, frames_per_file=30, seed=2
    )


def frames(master):
    return lbnl_dask.open_dataset(master).frames.compute()


def data_files(folder, prefix):
    return sorted(
        p for p in os.listdir(folder) if p.startswith(prefix + "_0") and p.endswith(".h5")
    )


def test_sigkill_then_rerun_resumes(medium, tmp_path):
    args = [
        "-i",
        medium,
        "-d",
        "2",
        "-H",
        "4",
        "--scheduler",
        "threads",
        "-p",
        "1",
        "--no-progress",
    ]
    ref = lbnl_dask.compress(
        medium, str(tmp_path / "ref"), data_block_size=2, hcomp_scale=4, scheduler="threads"
    )
    out = tmp_path / "run"
    out.mkdir()
    cmd = [sys.executable, "-m", "lbnl_dask", *args, "-o", str(out / "o")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while len(data_files(out, "o")) < 4 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "o_master.h5").exists(), "the run finished before it could be killed"
    done = {p: os.stat(out / p) for p in data_files(out, "o")}
    assert 4 <= len(done) < 30
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed" in rerun.stdout
    for p, st in done.items():  # finished blocks were kept, not rewritten
        now = os.stat(out / p)
        assert (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    assert len(data_files(out, "o")) == 30
    assert not [p for p in os.listdir(out) if p.endswith(".part")]
    np.testing.assert_array_equal(frames(out / "o_master.h5"), frames(ref.master))


def test_killed_worker_does_not_spoil_the_run(medium, tmp_path):
    from distributed import Client, LocalCluster

    ref = lbnl_dask.compress(
        medium,
        str(tmp_path / "ref"),
        bin_range=2,
        data_block_size=3,
        hcomp_scale=4,
        scheduler="threads",
    )
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        pids = list(client.run(os.getpid).values())
        result = {}

        def job():
            try:
                result["report"] = lbnl_dask.compress(
                    medium,
                    str(tmp_path / "o"),
                    bin_range=2,
                    data_block_size=3,
                    hcomp_scale=4,
                    scheduler=cluster.scheduler_address,
                )
            except Exception as e:  # noqa: BLE001 - reported below
                result["error"] = e

        t = threading.Thread(target=job)
        t.start()
        deadline = time.time() + 120
        while not data_files(tmp_path, "o") and time.time() < deadline and t.is_alive():
            time.sleep(0.01)
        os.kill(pids[0], signal.SIGKILL)
        t.join(timeout=300)
    assert "error" not in result, result.get("error")
    assert result["report"].frames_out == 60
    np.testing.assert_array_equal(frames(tmp_path / "o_master.h5"), frames(ref.master))


def _chunk_offset(path, frame=0):
    """Byte offset of a data file's stored chunk ``frame`` (to damage it by hand)."""
    import h5py

    with h5py.File(path, "r") as f:
        info = f["/entry/data/data"].id.get_chunk_info(frame)
        return info.byte_offset, info.size


def _damage(path, frame, nbytes, seed=0):
    off, size = _chunk_offset(path, frame)
    rng = np.random.default_rng(seed)
    with open(path, "r+b") as fh:
        fh.seek(off + size // 2)
        old = fh.read(nbytes)
        fh.seek(off + size // 2)
        fh.write(
            bytes(
                (b ^ int(x)) or 1 for b, x in zip(old, rng.integers(1, 256, nbytes), strict=False)
            )
        )


@pytest.fixture()
def finished(tiny, tmp_path):
    kw = dict(bin_range=2, sum_range=2, hcomp_scale=8, data_block_size=3, scheduler="threads")
    report = lbnl_dask.compress(tiny, str(tmp_path / "o"), **kw)
    return kw, report, frames(report.master)


@pytest.mark.parametrize("fault", ["deleted", "truncated", "one byte", "64 bytes"])
def test_rerun_repairs_exactly_the_lost_or_damaged_file(tiny, tmp_path, finished, fault):
    from lbnl_dask.validate import validate

    kw, report, want = finished
    victim = report.data_files[1]
    before = {p: os.stat(p) for p in report.data_files if p != victim}
    if fault == "deleted":
        os.unlink(victim)
    elif fault == "truncated":
        os.truncate(victim, os.path.getsize(victim) // 2)
    else:
        _damage(victim, 1, 1 if fault == "one byte" else 64)
        res = validate(report.master)  # HDF5 cannot see it; the recorded checksums do
        assert res.failed and f"{os.path.basename(victim)} frame 2" in str(res), str(res)
    again = lbnl_dask.compress(tiny, str(tmp_path / "o"), **kw)  # no --overwrite
    assert again.blocks_skipped == len(report.data_files) - 1
    assert again.frames_processed == 6  # output frames 4-6 = input frames 7-12
    if fault != "deleted":
        assert any(n.startswith("repaired: 1 damaged") for n in again.notes), again.notes
    for p, st in before.items():  # the others kept, not rewritten
        assert (os.stat(p).st_ino, os.stat(p).st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    np.testing.assert_array_equal(frames(again.master), want)
    assert not validate(again.master).failed


def test_overwrite_replaces_a_damaged_output_without_reading_its_checksums(
    tiny, tmp_path, finished, monkeypatch
):
    """--overwrite rewrites every file: the old files' chunks are not read for their CRC-32s
    (0.08 s of a 400-frame re-run, before it starts); the output is whole again. Without
    it, the same damage is found (the state a resume acts on)."""
    from lbnl_dask import resume, writer
    from lbnl_dask.validate import validate

    kw, report, want = finished
    victim = report.data_files[1]
    _damage(victim, 1, 64)
    token, n = resume.master_job(report.master), kw["data_block_size"]
    assert resume.file_state(victim, token, n) == "damaged"
    assert resume.file_state(victim, token, n, verify=False) == "done"  # complete

    def refuse(f):
        raise AssertionError("an output about to be replaced had its chunks' CRC-32s read")

    monkeypatch.setattr(resume, "damaged_in", refuse)
    monkeypatch.setattr(writer, "damaged_in", refuse)
    again = lbnl_dask.compress(tiny, str(tmp_path / "o"), overwrite=True, **kw)
    assert again.blocks_skipped == 0
    monkeypatch.undo()
    np.testing.assert_array_equal(frames(again.master), want)
    assert not validate(again.master).failed


def test_a_damaged_file_of_another_job_is_not_touched(tiny, tmp_path, finished):
    kw, report, _ = finished
    os.unlink(report.master)
    os.truncate(report.data_files[0], 100)  # nothing says it is this job's now
    with pytest.raises(lbnl_dask.LbnlDaskError, match="exists .use --overwrite"):
        lbnl_dask.compress(tiny, str(tmp_path / "o"), **kw)
    assert os.path.getsize(report.data_files[0]) == 100


def _start(medium, out, *extra):
    cmd = [sys.executable, "-m", "lbnl_dask", "-i", medium, "-o", str(out / "o"), "-d", "2",
           "-H", "4", "-p", "1", *extra]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip


def _wait_for(cond, proc, seconds=120):
    deadline = time.time() + seconds
    while not cond() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert cond(), "the run finished (or hung) before the moment to interrupt it"


@pytest.mark.parametrize("how,status", [("SIGINT to the group", 130), ("SIGTERM", 143)])
def test_interrupt_stops_the_workers_and_says_what_was_kept(medium, tmp_path, how, status):
    ref = lbnl_dask.compress(medium, str(tmp_path / "ref"), data_block_size=2, hcomp_scale=4,
                             scheduler="threads")  # fmt: skip
    out = tmp_path / "run"
    out.mkdir()
    proc = _start(medium, out, "--scheduler", "processes")
    _wait_for(lambda: len(data_files(out, "o")) >= 2, proc)
    if how == "SIGTERM":
        proc.send_signal(signal.SIGTERM)
    else:  # what Ctrl-C in a terminal does: every process of the group gets it
        os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == status, stderr
    lines = [ln for ln in stderr.splitlines() if not ln.startswith("dask dashboard:")]
    assert len(lines) == 1 and lines[0].startswith("lbnl-compress: interrupted: "), stderr
    assert "finished and kept, the output is not complete" in lines[0]
    assert "Traceback" not in stderr and "leaked" not in stderr
    assert not [p for p in os.listdir(out) if p.endswith((".part", ".lock"))]
    rerun = subprocess.run(proc.args, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    np.testing.assert_array_equal(frames(out / "o_master.h5"), frames(ref.master))


def test_a_second_run_into_a_live_runs_output_is_refused(medium, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    first = _start(medium, out, "--scheduler", "threads")
    _wait_for(lambda: (out / "o_master.h5.lock").exists(), first)
    second = subprocess.run(first.args, capture_output=True, text=True, timeout=300)
    assert second.returncode == 2
    assert second.stderr.strip().endswith(
        "another run is writing this output now (it holds "
        "o_master.h5.lock); wait for it, or choose another -o"
    )
    first.kill()  # a killed run's lock is not left stuck: the kernel drops it
    first.wait()
    third = subprocess.run(first.args, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr
    assert not (out / "o_master.h5.lock").exists()


def test_two_runs_of_one_prefix_with_two_masters_are_refused(tiny, tmp_path):
    """-o o -m A and -o o -m B at once: the second is refused on the data files' name (the
    lock was the master's alone; both runs wrote o_NNNNNN.h5 and exited 0, one master then
    naming the other's pixels)."""
    from lbnl_dask.errors import OutputError
    from lbnl_dask.resume import output_lock

    with output_lock(str(tmp_path / "A.h5"), [str(tmp_path / "o_000001.h5")]):  # run A, live
        with pytest.raises(OutputError, match=r"o_000001\.h5: another run is writing this "
                           r"output now \(it holds o_000001\.h5\.lock\)"):  # fmt: skip
            lbnl_dask.compress(tiny, str(tmp_path / "o"), out_master=str(tmp_path / "B"),
                               hcomp_scale=4, scheduler="sync")  # fmt: skip
    assert sorted(os.listdir(tmp_path)) == []  # B wrote nothing; A's locks went with it
    rep = lbnl_dask.compress(tiny, str(tmp_path / "o"), out_master=str(tmp_path / "B"),
                             hcomp_scale=4, scheduler="sync")  # fmt: skip
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".lock")] and rep.data_files


def test_an_interrupted_overwrite_counts_only_this_jobs_files(tiny, tmp_path, finished):
    """What an interrupted --overwrite run says it kept: an earlier job's files, not yet
    replaced, are not this job's (it had counted them), and this job's own are kept only
    by a run without --overwrite."""
    from lbnl_dask.options import split_options
    from lbnl_dask.pipeline import build
    from lbnl_dask.resume import what_was_kept

    kw, report, _ = finished  # -H 8, complete
    o, settings = split_options(**{**kw, "hcomp_scale": 16, "overwrite": True})
    _, other = build(tiny, str(tmp_path / "o"), o, settings)  # another job over it
    n = len(report.data_files)
    assert what_was_kept(other).startswith(f"interrupted: 0 of {n} data file(s) finished")
    assert what_was_kept(other).endswith("run the same command again to finish")
    os.unlink(report.master)  # this job's data files all there, its master not yet
    o, settings = split_options(**{**kw, "overwrite": True})
    _, same = build(tiny, str(tmp_path / "o"), o, settings)
    said = what_was_kept(same)
    assert said.startswith(f"interrupted: {n} of {n} data file(s) finished and kept"), said
    assert said.endswith("run the same command without --overwrite to finish (with it, they "
                         "are written again)")  # fmt: skip


def test_a_failed_rerun_keeps_what_earlier_runs_finished(tiny, tmp_path, finished):
    kw, report, want = finished
    os.unlink(report.data_files[2])
    kept = {p: os.stat(p).st_mtime_ns for p in report.data_files if os.path.exists(p)}
    kept[report.master] = os.stat(report.master).st_mtime_ns
    for bad in (dict(scheduler="thread"), dict(scheduler="threads", report="r.html")):
        with pytest.raises(lbnl_dask.LbnlDaskError):
            lbnl_dask.compress(tiny, str(tmp_path / "o"), **{**kw, **bad})
        assert {p: os.stat(p).st_mtime_ns for p in kept} == kept  # nothing removed or rewritten
    again = lbnl_dask.compress(tiny, str(tmp_path / "o"), **kw)
    np.testing.assert_array_equal(frames(again.master), want)


def test_overwrite_removes_a_longer_runs_squash_files(tiny, tmp_path):
    kw = dict(hcomp_scale=4, data_block_size=3, out_squash="out_file", scheduler="threads")
    lbnl_dask.compress(tiny, str(tmp_path / "o"), **kw)
    assert len(list(tmp_path.glob("o_squash_*.h5"))) == 7
    short = lbnl_dask.compress(tiny, str(tmp_path / "o"), last_image=8, overwrite=True, **kw)
    assert sorted(str(p) for p in tmp_path.glob("o_squash_*.h5")) == short.squash_files
    assert sorted(str(p) for p in tmp_path.glob("o_0*.h5")) == short.data_files


def test_squash_files_may_not_take_the_data_files_names(tiny, tmp_path):
    with pytest.raises(lbnl_dask.LbnlDaskError, match="squash files would take the data files"):
        lbnl_dask.compress(tiny, str(tmp_path / "o"), hcomp_scale=4, out_squash=str(tmp_path / "o"),
                           scheduler="threads")  # fmt: skip
    assert os.listdir(tmp_path) == []


def test_a_changed_data_file_makes_another_job(tmp_path):
    """The job token covers every input data file, not only the master: output of the old
    frames is never called complete for new ones; replacing it needs --overwrite."""
    import shutil

    from lbnl_dask.errors import OutputError

    src = make_dataset(tmp_path / "in" / "t", "tiny", nframes=6, frames_per_file=3)
    kw = dict(bin_range=2, scheduler="threads", fidelity=False)
    lbnl_dask.compress(src, str(tmp_path / "o"), **kw)
    data = tmp_path / "in" / "t_data_000002.h5"
    shutil.copyfile(data, tmp_path / "copy.h5")
    os.replace(tmp_path / "copy.h5", data)  # the same pixels, but a new file
    st = os.stat(data)
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(OutputError, match=r"exists \(from another lbnl-compress job: other "
                       r"options or input\) \(use --overwrite"):  # fmt: skip
        lbnl_dask.compress(src, str(tmp_path / "o"), **kw)
    rep = lbnl_dask.compress(src, str(tmp_path / "o"), overwrite=True, **kw)
    assert "already complete" not in str(rep)


def test_a_lost_file_or_master_is_reported_as_what_the_run_did(tmp_path):
    src = make_dataset(tmp_path / "in" / "t", "tiny", nframes=6, frames_per_file=3)
    kw = dict(bin_range=2, scheduler="threads", fidelity=False, data_block_size=2)
    first = lbnl_dask.compress(src, str(tmp_path / "o"), **kw)
    os.unlink(first.data_files[1])  # gone since: this job's master names it
    again = lbnl_dask.compress(src, str(tmp_path / "o"), **kw)
    assert any(n.startswith("repaired: 1 damaged, incomplete or missing") for n in again.notes)
    os.unlink(first.master)  # only the master gone
    third = lbnl_dask.compress(src, str(tmp_path / "o"), **kw)
    assert "the master written again (its data files were complete)" in str(third)
    assert os.path.exists(first.master)
    done = lbnl_dask.compress(src, str(tmp_path / "o"), **kw)
    assert "nothing left to write" in str(done)


def test_the_default_frame_range_given_explicitly_is_the_same_job(tmp_path):
    src = make_dataset(tmp_path / "in" / "t", "tiny", nframes=6, frames_per_file=3)
    kw = dict(bin_range=2, scheduler="threads", fidelity=False)
    lbnl_dask.compress(src, str(tmp_path / "o"), **kw)
    again = lbnl_dask.compress(src, str(tmp_path / "o"), first_image=1, last_image=6, **kw)
    assert "already complete" in str(again)


def test_l_bnl_compress_t_runs_side_by_side_wait_for_each_other(tiny, tmp_path, capsys):
    """l_bnl_compress' fan-out (-t 0, then -t 1..N side by side) on one output: a run given
    -t that finds another writing waits for it (it had failed, status 2, though the output
    was complete), and then finds the job done or does it."""
    from lbnl_dask import cli
    from lbnl_dask.resume import output_lock

    held, done = threading.Event(), threading.Event()

    def other_run():
        with output_lock(str(tmp_path / "o_master.h5"), [str(tmp_path / "o_000001.h5")]):
            held.set()
            time.sleep(1.0)
        done.set()

    t = threading.Thread(target=other_run)
    t.start()
    held.wait(10)
    rc = cli.main(["-i", tiny, "-o", str(tmp_path / "o"), "-t", "1", "--scheduler", "sync"])
    t.join()
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "waiting for the run writing this output (it holds o_master.h5.lock)" in err
    assert done.is_set() and (tmp_path / "o_master.h5").exists()
    assert cli.main(["-i", tiny, "-o", str(tmp_path / "o"), "-t", "2"]) == 0  # done: at once
    assert "already complete" in capsys.readouterr().out
