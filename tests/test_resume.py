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
    return make_dataset(tmp_path_factory.mktemp("medium") / "m", "eiger_1m", nframes=60, frames_per_file=30, seed=2)


def frames(master):
    return lbnl_dask.open_dataset(master).frames.compute()


def data_files(folder, prefix):
    return sorted(p for p in os.listdir(folder) if p.startswith(prefix + "_0") and p.endswith(".h5"))


def test_sigkill_then_rerun_resumes(medium, tmp_path):
    args = ["-i", medium, "-d", "2", "-H", "4", "--scheduler", "threads", "-p", "1", "--no-progress"]
    ref = lbnl_dask.compress(medium, str(tmp_path / "ref"), data_block_size=2, hcomp_scale=4, scheduler="threads")
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

    ref = lbnl_dask.compress(medium, str(tmp_path / "ref"), bin_range=2, data_block_size=3, hcomp_scale=4,
                             scheduler="threads")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
        result = {}

        def job():
            try:
                result["report"] = lbnl_dask.compress(medium, str(tmp_path / "o"), bin_range=2, data_block_size=3,
                                                      hcomp_scale=4, scheduler=cluster.scheduler_address)
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
