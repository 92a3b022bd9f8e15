"""Schedulers: a running scheduler by address, a performance report, the SLURM job script."""

import os
import threading

import numpy as np
import pytest

import lbnl_dask
from lbnl_dask import cli
from lbnl_dask.cluster import (
    WORKER_MALLOC,
    SlurmOptions,
    choose_scheduler,
    client_for,
    slurm_job_script,
)
from lbnl_dask.errors import OptionError
from lbnl_dask.options import OutputOptions


def test_scheduler_address_and_performance_report(tiny, tmp_path):
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0"
    ) as cluster:
        rep = lbnl_dask.compress(
            tiny,
            str(tmp_path / "a"),
            bin_range=2,
            scheduler=cluster.scheduler_address,
            report=str(tmp_path / "perf.html"),
        )
    ref = lbnl_dask.compress(tiny, str(tmp_path / "b"), bin_range=2, scheduler="sync")
    np.testing.assert_array_equal(
        lbnl_dask.open_dataset(rep.master).frames.compute(),
        lbnl_dask.open_dataset(ref.master).frames.compute(),
    )
    html = (tmp_path / "perf.html").read_text()
    assert "<html" in html.lower() and os.path.getsize(tmp_path / "perf.html") > 10000


def test_report_needs_a_distributed_scheduler(tiny, tmp_path):
    with pytest.raises(OptionError, match="--report needs a distributed scheduler"):
        lbnl_dask.compress(
            tiny, str(tmp_path / "a"), scheduler="threads", report=str(tmp_path / "r.html")
        )


def test_auto_is_threads_unless_a_stage_holds_a_process_wide_lock():
    assert choose_scheduler("auto") == ("threads", None)
    assert choose_scheduler("auto", "SZ3/ZFP run inside h5py's lock") == ("processes", None)
    assert choose_scheduler("processes") == ("processes", None)
    assert choose_scheduler("threads", "SZ3/ZFP run inside h5py's lock") == ("threads", None)
    for opts in (dict(hcomp_scale=12), dict(j2k_ratio=120), {}):
        assert OutputOptions(**opts).process_lock is None, opts
    for opts in (dict(sz3_bound=2), dict(zfp_accuracy=8), dict(hcomp_scale=12, out_squash="q")):
        assert OutputOptions(**opts).process_lock, opts


def test_the_default_run_takes_threads_and_report_a_local_cluster(tiny, tmp_path, capsys):
    args = ["-i", str(tiny), "-b", "2", "-s", "2", "-H", "12", "--no-fidelity"]
    assert cli.main([*args, "-o", str(tmp_path / "a")]) == 0
    assert "dask dashboard" not in capsys.readouterr().err  # no cluster was started
    report = tmp_path / "r.html"
    assert cli.main([*args, "-o", str(tmp_path / "b"), "-p", "1", "--report", str(report)]) == 0
    assert "dask dashboard" in capsys.readouterr().err and report.exists()


def test_unknown_scheduler(tiny, tmp_path):
    with pytest.raises(OptionError, match="unknown scheduler 'mpi'"):
        lbnl_dask.compress(tiny, str(tmp_path / "a"), scheduler="mpi")


def test_slurm_job_script_is_printed_not_submitted(capsys):
    script = slurm_job_script(
        SlurmOptions(cores=8, memory="32GB", walltime="02:00:00", queue="mx", account="bl17")
    )
    for line in (
        "#SBATCH -p mx",
        "#SBATCH -A bl17",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH -t 02:00:00",
    ):
        assert line in script
    assert "distributed.cli.dask_worker" in script
    assert cli.main(["--print-job-script", "--cores", "4", "--memory", "8GB"]) == 0
    assert "#SBATCH --cpus-per-task=4" in capsys.readouterr().out


def worker_env(*names):
    with client_for("processes", workers=1) as client:
        (env,) = client.run(lambda: {k: os.environ.get(k) for k in names}).values()
    return env


def test_local_cluster_workers_get_the_malloc_settings(monkeypatch):
    names = (*WORKER_MALLOC, "MALLOC_ARENA_MAX")
    for (
        k
    ) in names:  # an earlier LocalCluster in this process may have left dask's values in os.environ
        monkeypatch.delenv(k, raising=False)
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    assert worker_env(*names, "OMP_NUM_THREADS", "NUMPY_MADVISE_HUGEPAGE") == {
        **WORKER_MALLOC,
        "MALLOC_ARENA_MAX": "1",
        "OMP_NUM_THREADS": "1",
        "NUMPY_MADVISE_HUGEPAGE": "0",
    }
    # a value the user exported wins (dask's precedence for pre-spawn variables)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")
    assert worker_env("MALLOC_TRIM_THRESHOLD_") == {"MALLOC_TRIM_THRESHOLD_": "1000000"}


def test_local_workers_profile_only_when_asked():
    """The workers' stack-sampling profiler costs 3-4% of throughput.

    It is off unless a report wants it.
    """
    from dask import config

    before = config.get("distributed.worker.profile.enabled")
    for profile in (False, True):
        with client_for("processes", workers=1, profile=profile) as client:
            running = client.run(lambda dask_worker: "profile" in dask_worker.periodic_callbacks)
            assert set(running.values()) == {profile}
    assert (
        config.get("distributed.worker.profile.enabled") == before
    )  # the caller's config untouched


def test_slurm_workers_get_the_malloc_settings():
    import ast

    script = slurm_job_script(SlurmOptions(cores=8, memory="32GB"))
    (line,) = [ln for ln in script.splitlines() if "PRE_SPAWN_ENVIRON" in ln]
    env = ast.literal_eval(line.split("=", 1)[1].strip('"'))  # as dask's config parses the variable
    assert {k: env[k] for k in WORKER_MALLOC} == WORKER_MALLOC
    assert (
        env["MALLOC_ARENA_MAX"] == "1" and env["OMP_NUM_THREADS"] == "1"
    )  # single-threaded workers
    assert line.startswith("export ") and script.index(line) < script.index(
        "distributed.cli.dask_worker"
    )


def test_slurm_needs_cores_and_memory(capsys):
    assert cli.main(["--print-job-script"]) == 2
    assert "--slurm needs --cores" in capsys.readouterr().err


def test_importing_the_package_leaves_the_environment_alone():
    import subprocess
    import sys

    code = "import os, lbnl_dask; print(os.environ.get('OMP_NUM_THREADS'))"
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "None"


SCRIPT = """import lbnl_dask
report = lbnl_dask.compress({master!r}, {out!r}, bin_range=2, sum_range=2, sz3_bound=2)
print("ratio", round(report.ratio_raw2, 1))
print("notes", report.notes)
"""


def _python(tmp_path, source, how):
    import subprocess
    import sys

    if how == "stdin":
        return subprocess.run(
            [sys.executable, "-"],
            input=source,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
        )
    script = tmp_path / "job.py"
    script.write_text(source)
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )


@pytest.mark.parametrize("how", ["script", "stdin"])
def test_compress_from_a_plain_script_or_stdin(tiny, tmp_path, how):
    """The README's example, saved as a script without the __main__ guard or piped to
    python: worker processes could not start there, so the run takes threads and says so."""
    r = _python(tmp_path, SCRIPT.format(master=tiny, out=str(tmp_path / "o")), how)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ratio" in r.stdout and "scheduler: threads" in r.stdout, r.stdout
    assert (tmp_path / "o_master.h5").exists()


def test_compress_under_the_main_guard_starts_a_local_cluster(tiny, tmp_path):
    """... and leaves the caller's environment as it was (the nannies had written the
    workers' variables into it: a cluster started later inherited one malloc arena and
    silenced logs)."""
    body = SCRIPT.format(master=tiny, out=str(tmp_path / "o"))
    source = "import os\n\n\ndef main():\n    before = dict(os.environ)\n"
    source += "".join(f"    {ln}\n" for ln in body.splitlines())
    source += (
        "    print('environ', sorted(k for k, _ in set(os.environ.items()) ^ "
        "set(before.items()) if k != '__DASK_PARENT_PID'))\n"
    )  # (distributed's import)
    source += "\n\nif __name__ == '__main__':\n    main()\n"
    r = _python(tmp_path, source, "script")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "scheduler: threads" not in r.stdout and "notes []" in r.stdout, r.stdout
    assert "dask dashboard" in r.stderr  # a LocalCluster was started
    assert "environ []" in r.stdout, r.stdout


@pytest.mark.parametrize("guarded", [False, True])
def test_processes_asked_for_from_a_thread_of_a_script(tmp_path, guarded):
    """A thread started at a script's unguarded top level: worker processes would run the
    top level, thread and all, again (it had passed: only the output lock stopped the second
    job). Started inside the main guard, they may start."""
    import subprocess
    import sys

    call = ("import threading\nfrom lbnl_dask.cluster import why_no_processes\n"
            "t = threading.Thread(target=lambda: print(why_no_processes()))\n"
            "t.start()\nt.join()\n")  # fmt: skip
    if guarded:
        call = "def main():\n" + "".join(f"    {ln}\n" for ln in call.splitlines())
        call += "\n\nif __name__ == '__main__':\n    main()\n"
    (tmp_path / "job.py").write_text(call)
    r = subprocess.run([sys.executable, "job.py"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    said = r.stdout.strip()
    assert (said == "None") if guarded else ("would run job.py again" in said), said


def test_two_runs_at_once_leave_dask_as_it_was(tiny, tmp_path):
    """Two compress calls in two threads (a notebook's): both finish, and dask's config is
    as it was. Each had put its scheduler and pool in the process-wide config and restored
    the other's on leaving: a run failed on a pool shut down, later .compute() calls too."""
    import dask
    import dask.array as da

    before = {k: dask.config.get(k, None) for k in ("scheduler", "pool")}
    done, errors = [], []

    def job(name):
        try:
            done.append(lbnl_dask.compress(tiny, str(tmp_path / name), bin_range=2, sum_range=2,
                                           hcomp_scale=12, scheduler="threads"))  # fmt: skip
        except BaseException as e:  # (reported below)
            errors.append(e)

    threads = [threading.Thread(target=job, args=(n,)) for n in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(done) == 3, errors
    assert {k: dask.config.get(k, None) for k in ("scheduler", "pool")} == before
    assert da.ones(10, chunks=5).sum().compute() == 10
    for rep in done:
        assert rep.fidelity is not None


def test_a_module_run_with_python_m_starts_a_local_cluster(tiny, tmp_path):
    """python -m lbnl_dask.cli (a module's guard calling main(), which reaches compress
    through cluster.console): worker processes start; the guard had not been found there."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "lbnl_dask.cli", "-i", tiny, "-o", str(tmp_path / "o"),
           "-b", "2", "-s", "2", "--scheduler", "processes", "-p", "1"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "would run" not in r.stderr and (tmp_path / "o_master.h5").exists()


def test_a_scheduler_nobody_answers_is_one_line(tiny, tmp_path, capsys):
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        rc = cli.main(
            ["-i", tiny, "-o", str(tmp_path / "out" / "o"), "--scheduler", "tcp://127.0.0.1:9"]
        )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "tcp://127.0.0.1:9: no dask scheduler answered within 2s" in err
    assert not os.path.exists(tmp_path / "out") or os.listdir(tmp_path / "out") == []


def test_slurm_workers_are_single_threaded_processes_like_the_local_cluster(capsys):
    """HCompress runs one at a time per process: --cores 32 gives 32 one-thread workers."""
    assert cli.main(["--print-job-script", "--cores", "32", "--memory", "64GB"]) == 0
    script = capsys.readouterr().out
    assert "--nthreads 1" in script and "--nworkers 32" in script, script
    three = slurm_job_script(SlurmOptions(cores=32, memory="64GB", processes=4))  # asked: kept
    assert "--nthreads 8" in three and "--nworkers 4" in three


def test_dask_warnings_stay_out_of_the_users_terminal():
    """dask's own WARNING lines (a sizeof fallback on a profile tree with --report, worker
    restarts) are not the user's business: the local cluster logs errors only."""
    import logging

    def level():
        return logging.getLogger("distributed.sizeof").getEffectiveLevel()

    with client_for("processes", workers=1, profile=True) as client:
        assert level() >= logging.CRITICAL
        assert set(client.run(level).values()) == {logging.CRITICAL}


@pytest.mark.parametrize("how,why", [("stdin", "code read from stdin cannot be imported"),
                                     ("script", "would run job.py again")])  # fmt: skip
def test_processes_asked_for_where_they_cannot_start_is_a_clear_error(tiny, tmp_path, how, why):
    source = SCRIPT.format(master=tiny, out=str(tmp_path / "o")).replace(
        "sz3_bound=2)", "sz3_bound=2, scheduler='processes')"
    )
    r = _python(tmp_path, source, how)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("lbnl_dask.errors.OptionError: scheduler 'processes': ") and why in last
    assert "Nanny failed to start" not in r.stderr and len(r.stderr.splitlines()) < 30


def test_a_module_run_with_dash_m_is_a_script_to_the_workers(tmp_path):
    """``python -m pkg.job`` is imported again by spawned workers (as __mp_main__), like a
    script; only a package's __main__ is not."""
    import subprocess
    import sys

    pkg = tmp_path / "jobpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    code = "from lbnl_dask.cluster import why_no_processes\nprint(why_no_processes())\n"
    (pkg / "job.py").write_text(code)
    (pkg / "__main__.py").write_text(code)
    run = [sys.executable, "-m"]
    top = subprocess.run(run + ["jobpkg.job"], cwd=tmp_path, capture_output=True, text=True)
    assert "would run job.py again" in top.stdout, top.stderr
    main = subprocess.run(run + ["jobpkg"], cwd=tmp_path, capture_output=True, text=True)
    assert main.stdout.strip() == "None", main.stderr


def test_relative_output_paths_on_a_remote_cluster(tiny, tmp_path, monkeypatch):
    import sys

    """Workers started elsewhere (another working directory) write where the client means."""
    import subprocess
    import time

    bindir = os.path.dirname(sys.executable)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sfile = tmp_path / "scheduler.json"
    quiet = dict(cwd=elsewhere, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sched = subprocess.Popen([f"{bindir}/dask", "scheduler", "--scheduler-file", str(sfile),
                              "--port", "0", "--no-dashboard"], **quiet)  # fmt: skip
    try:
        deadline = time.time() + 60
        while not sfile.exists() and time.time() < deadline:
            time.sleep(0.1)
        worker = subprocess.Popen([f"{bindir}/dask", "worker", "--scheduler-file", str(sfile),
                                   "--nthreads", "1", "--no-dashboard"], **quiet)  # fmt: skip
        try:
            import json

            address = json.loads(sfile.read_text())["address"]
            client_dir = tmp_path / "client"
            client_dir.mkdir()
            monkeypatch.chdir(client_dir)
            report = lbnl_dask.compress(tiny, "out/y", data_block_size=10, scheduler=address)
            assert report.frames_out == 20
            assert sorted(os.listdir(client_dir / "out")) == ["y_000001.h5", "y_000002.h5",
                                                              "y_master.h5"]  # fmt: skip
            assert not os.path.exists(elsewhere / "out")
        finally:
            worker.terminate()
            worker.wait()
    finally:
        sched.terminate()
        sched.wait()


@pytest.mark.parametrize("scheduler", ["threads", "sync"])
def test_a_local_run_does_not_import_distributed(tiny, tmp_path, scheduler):
    """With threads (or sync), nothing needs dask.distributed; naming the scheduler by a
    string, or a rechunk choosing its method, would import it (0.4 s of every short run)."""
    import subprocess
    import sys

    code = (
        "import sys; from lbnl_dask.cli import main; "
        f"rc = main(['-i', {str(tiny)!r}, '-o', {str(tmp_path / 'o')!r}, '-b', '2', '-s', '2', "
        f"'-H', '12', '--scheduler', {scheduler!r}, '-p', '2', '--no-progress']); "
        "print('distributed' in sys.modules); sys.exit(rc)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "fidelity" in run.stdout  # the whole run, the fidelity sample included
    assert run.stdout.strip().splitlines()[-1] == "False"


def test_console_scripts_freeze_what_is_alive_at_exit():
    """The installed commands freeze the objects alive when their main returns (the exit's
    garbage collections pass them by); main itself, as tests and notebooks call it, not."""
    import subprocess
    import sys

    code = (
        "import gc, sys\n"
        "from lbnl_dask import cli\n"
        "sys.argv = ['lbnl-compress', '--version']\n"
        "assert cli.main() == 0 and gc.get_freeze_count() == 0\n"
        "assert cli.command() == 0 and gc.get_freeze_count() > 1000\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    from lbnl_dask import cbf_output, demo, explore

    for mod in (cli, demo, explore, cbf_output):
        assert mod.command.__wrapped__ is mod.main


@pytest.mark.parametrize("exported", [None, "1"])
def test_console_scripts_ask_for_no_huge_pages_unless_the_user_chose(exported):
    """numpy's madvise for huge pages stalls a run's page faults where the kernel compacts
    memory: the installed commands turn it off, as NUMPY_MADVISE_HUGEPAGE=0 would; a value
    the user exported wins. ``_set_madvise_hugepage`` returns the setting it replaces."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from numpy._core.multiarray import _set_madvise_hugepage as hugepages\n"
        "from lbnl_dask import cli\n"
        "sys.argv = ['lbnl-compress', '--version']\n"
        "assert cli.command() == 0\n"
        "print(hugepages(True))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    if exported:
        env["NUMPY_MADVISE_HUGEPAGE"] = exported
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-1] == ("True" if exported else "False")


def test_keep_freed_memory_leaves_a_users_malloc_settings_alone(monkeypatch):
    import ctypes

    from lbnl_dask import cluster

    def refuse(*a):
        raise AssertionError("mallopt called although the user chose")

    monkeypatch.setattr(ctypes, "CDLL", refuse)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "0")
    cluster.keep_freed_memory()  # returns before touching libc
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    with pytest.raises(AssertionError, match="mallopt called"):
        cluster.keep_freed_memory()


def test_a_ctrl_c_that_breaks_a_lock_is_still_an_interrupt(monkeypatch):
    """A Ctrl-C landing inside threading.Condition.wait surfaces as "RuntimeError: cannot
    release un-acquired lock": once the console's handler has seen it, run() raises the
    interrupt (one line, status 130), not that error; without a Ctrl-C, the error as it is."""
    from lbnl_dask import cluster

    class Job:
        def compute(self):
            raise RuntimeError("cannot release un-acquired lock")

    monkeypatch.setattr(cluster, "_interrupted", True)
    with pytest.raises(KeyboardInterrupt) as e:
        cluster.run(Job())
    assert isinstance(e.value.__cause__, RuntimeError)
    monkeypatch.setattr(cluster, "_interrupted", False)
    with pytest.raises(RuntimeError, match="un-acquired lock"):
        cluster.run(Job())
    monkeypatch.setattr(cluster, "_terminated", True)  # a SIGTERM the same way: status 143
    with pytest.raises(cluster.Terminated) as e:
        cluster.run(Job())
    assert isinstance(e.value.__cause__, RuntimeError) and e.value.signal == 143 - 128
    monkeypatch.setattr(cluster, "_terminated", False)

    def main():  # the same, where no run() was waiting: the console's own line
        raise RuntimeError("cannot release un-acquired lock")

    import signal
    import sys

    handler, hook, stdout = signal.getsignal(signal.SIGINT), sys.unraisablehook, sys.stdout
    try:
        monkeypatch.setattr(cluster, "_interrupted", True)
        assert cluster.console(main)() == 130
        monkeypatch.setattr(cluster, "_interrupted", False)
        with pytest.raises(RuntimeError):
            cluster.console(main)()
    finally:
        signal.signal(signal.SIGINT, handler)
        sys.unraisablehook, sys.stdout = hook, stdout


def test_the_slurm_cluster_leaves_the_ctrl_c_handler_alone(capsys):
    """dask_jobqueue.runner, imported with SLURMCluster, sets SIGINT to sys.exit(): a Ctrl-C
    during a --slurm run would have ended it with status 0. The handler in place before
    (the console's, here Python's default) is put back."""
    import signal

    before = signal.getsignal(signal.SIGINT)
    assert cli.main(["--print-job-script", "--cores", "4", "--memory", "8GB"]) == 0
    assert signal.getsignal(signal.SIGINT) is before
    capsys.readouterr()


def test_signals_held_until_the_block_ends():
    """A Ctrl-C (and a SIGTERM) inside the block acts once it has ended, as the handler in
    place would have: HDF5's file-object callbacks run in such a block."""
    import os
    import signal
    import time

    from lbnl_dask.cluster import signals_held

    seen = []
    with pytest.raises(KeyboardInterrupt):
        with signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # (Python runs handlers between bytecodes: it had, by now)
            seen.append("inside, after the signal")
    assert seen == ["inside, after the signal"]
    before = signal.signal(signal.SIGTERM, lambda n, frame: seen.append("SIGTERM handled"))
    try:
        with signals_held():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            seen.append("inside again")
    finally:
        signal.signal(signal.SIGTERM, before)
    assert seen[1:] == ["inside again", "SIGTERM handled"]


def test_held_signals_are_delivered_where_the_block_says():
    """lbnl-synth writes a data file's frames in one HDF5 file: a Ctrl-C stops it at the
    next frame (deliver_held_signals), not once the file is done."""
    import os
    import signal
    import time

    from lbnl_dask.cluster import deliver_held_signals, signals_held

    seen = []
    with pytest.raises(KeyboardInterrupt):
        with signals_held():
            deliver_held_signals()  # nothing caught: nothing happens
            seen.append("before the signal")
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            deliver_held_signals()
            seen.append("after the delivery")
    assert seen == ["before the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _task_prefixes(dask_scheduler) -> list[str]:
    return list(dask_scheduler.task_prefixes)


def test_a_client_passed_as_the_scheduler_is_used(tiny, tmp_path):
    """A notebook's Client passed as it is (it had been refused: "unknown scheduler
    <Client ...>"); the run's tasks go to its scheduler, and the Client stays usable."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        rep = lbnl_dask.compress(tiny, str(tmp_path / "o"), bin_range=2, hcomp_scale=4,
                                 scheduler=client)  # fmt: skip
        prefixes = client.run_on_scheduler(_task_prefixes)
        assert any(p.startswith("write-datablock") for p in prefixes), prefixes
        assert client.submit(sum, [1, 2]).result() == 3
    assert rep.frames_out > 0


def test_environ_restored_puts_back_only_the_workers_variables(monkeypatch):
    """What the nannies write (one malloc arena, one OpenMP thread...) goes back to what it
    was once the last local cluster ends; an overlapping one does not restore early, and a
    variable of the user's set meanwhile stays."""
    from lbnl_dask.cluster import environ_restored

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    monkeypatch.delenv("LBNL_TEST_MINE", raising=False)
    with environ_restored():
        os.environ["MALLOC_ARENA_MAX"], os.environ["OMP_NUM_THREADS"] = "1", "1"  # a nanny
        os.environ["LBNL_TEST_MINE"] = "x"  # the user's, meanwhile
        with environ_restored():  # a second run's cluster, overlapping the first
            pass
        assert os.environ["MALLOC_ARENA_MAX"] == "1"  # the first cluster still runs
    assert "MALLOC_ARENA_MAX" not in os.environ and os.environ["OMP_NUM_THREADS"] == "8"
    assert os.environ.pop("LBNL_TEST_MINE") == "x"
