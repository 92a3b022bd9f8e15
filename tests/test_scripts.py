"""The console scripts: light to start, Ctrl-C while the tools load is one line."""

import importlib
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lbnl_dask import scripts

ROOT = Path(__file__).resolve().parent.parent


def test_import_lbnl_dask_loads_no_heavy_module_until_a_name_is_used():
    """Light to import (hdf5plugin yes: every reader of our files needs its filters), the
    public names and the submodules found on first use."""
    code = ("import sys, lbnl_dask; print([m for m in ('dask', 'numba', 'astropy') "
            "if m in sys.modules], 'hdf5plugin' in sys.modules); lbnl_dask.open_dataset; "
            "print('dask' in sys.modules, lbnl_dask.eiger.open_dataset is "
            "lbnl_dask.open_dataset, set(lbnl_dask.__all__) <= set(vars(lbnl_dask)))")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.split("\n")[:2] == ["[] True", "True True False"], r.stdout
    r = subprocess.run([sys.executable, "-c", "import lbnl_dask; lbnl_dask.nothing"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 1 and "has no attribute 'nothing'" in r.stderr


def test_every_script_names_a_tool_that_exists():
    text = (ROOT / "pyproject.toml").read_text().split("[project.scripts]")[1].split("\n[")[0]
    table = dict(re.findall(r'^(lbnl-[\w-]+) = "([\w.:]+)"$', text, re.M))
    assert len(table) == 6
    for prog, target in table.items():
        module, attr = target.split(":")
        assert module == "lbnl_dask.scripts"
        tool, main, name = getattr(scripts, attr).target
        assert name == prog
        assert callable(getattr(importlib.import_module(tool), main))


def test_ctrl_c_while_a_tool_loads_is_one_line(tmp_path, capsys, monkeypatch):
    """A tool whose import is interrupted (as Ctrl-C in the first half second of a run)."""
    (tmp_path / "slow_tool.py").write_text("raise KeyboardInterrupt\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    rc = scripts._entry("slow_tool", "main", "lbnl-slow")()
    err = capsys.readouterr().err
    assert rc == 130 and err == "lbnl-slow: interrupted before anything was written\n"


def test_a_ctrl_c_a_library_drops_is_still_seen(capsys, monkeypatch):
    """numba loads a cached kernel through a ctypes callback, where an exception is printed
    and dropped: a Ctrl-C arriving then is kept by the console scripts' handler, and the
    command ends with status 130 all the same (not 0, as if never pressed), in one line."""
    import ctypes
    import signal

    from lbnl_dask import cluster

    monkeypatch.setattr(cluster, "_interrupted", False)
    handler, hook = signal.getsignal(signal.SIGINT), sys.unraisablehook

    def dropped():
        signal.raise_signal(signal.SIGINT)
        sum(range(10))  # the handler runs here, inside the callback: ctypes drops what it raises

    def main():
        ctypes.CFUNCTYPE(None)(dropped)()
        return 0

    try:
        rc = cluster.console(main)()
    finally:
        signal.signal(signal.SIGINT, handler)
        sys.unraisablehook = hook
    err = capsys.readouterr().err
    assert rc == 130 and err.endswith("interrupted, but only once the run had finished: its "
                                      "output is complete\n"), err  # fmt: skip
    assert len(err.splitlines()) == 1, err  # no "Exception ignored" traceback
    with pytest.raises(KeyboardInterrupt):
        cluster.raise_if_interrupted()


def test_stdout_closed_early_is_no_traceback(tiny, tmp_path):
    """``lbnl-compress ... | head -1``: the progress and report lines meet a closed pipe;
    the run must not stop for that (a progress line raised BrokenPipeError mid-run)."""
    exe = str(Path(sys.executable).with_name("lbnl-compress"))
    p = subprocess.Popen([exe, "-i", tiny, "-o", str(tmp_path / "o"), "-H", "4", "-d", "5",
                          "--scheduler", "threads"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)  # fmt: skip
    p.stdout.close()  # before it writes anything: every line meets a closed pipe
    err = p.stderr.read()
    assert p.wait(timeout=300) == 0, err  # the run went on to its end: only its report is lost
    assert (tmp_path / "o_master.h5").exists()
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_an_ignored_sigint_stays_ignored(monkeypatch):
    """A run started in the background by a script (``lbnl-compress ... &``) inherits SIGINT
    ignored: a Ctrl-C meant for the script must not stop it."""
    import signal

    from lbnl_dask import cluster

    handler, hook = signal.getsignal(signal.SIGINT), sys.unraisablehook
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        seen = []
        assert cluster.console(lambda: seen.append(signal.getsignal(signal.SIGINT)) or 0)() == 0
        assert seen == [signal.SIG_IGN]
    finally:
        signal.signal(signal.SIGINT, handler)
        sys.unraisablehook = hook


def test_a_failed_tool_ends_even_with_a_thread_that_never_does(tmp_path):
    """Python joins every non-daemon thread at exit: a pool's worker that a Ctrl-C left
    unknown to the pool's shutdown kept a run waiting forever after its one line. A tool
    that fails (status 2 here) ends within the grace the watchdog gives it, with its
    status; one that succeeds is not watched (its thread is let go here, and it exits 0)."""
    (tmp_path / "stuck_tool.py").write_text(
        "import threading\n"
        "stop = threading.Event()\n"
        "def main():\n"
        "    threading.Thread(target=stop.wait).start()  # never set: a thread left behind\n"
        "    return 2\n"
        "def fine():\n"
        "    threading.Thread(target=stop.wait, args=(0.2,)).start()\n"
        "    return 0\n"
    )
    for attr, rc in (("main", 2), ("fine", 0)):
        code = ("import sys; sys.path.insert(0, sys.argv[1]); from lbnl_dask import cluster, "
                "scripts; cluster.EXIT_GRACE = 0.5; "
                f"sys.exit(scripts._entry('stuck_tool', '{attr}', 'lbnl-stuck')())")  # fmt: skip
        done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], timeout=60)
        assert done.returncode == rc


def _stopped_after_first_line(cmd, sig, timeout=240):
    """Run ``cmd``, send ``sig`` once it has printed a line to stdout (a batch log's: it is
    working), and return (status, stderr)."""
    import subprocess
    import time

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    line = proc.stdout.readline()
    assert line and time.time() < deadline, proc.communicate()[1]
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.parametrize("sig,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_explore_and_synth_stopped_mid_run_say_so_in_one_line(tmp_path, tiny, sig, status):
    """lbnl-explore printed a 27-75 line traceback for a Ctrl-C and nothing for a SIGTERM;
    lbnl-synth a traceback, leaving a data file with zero frames under its final name."""
    import glob

    import h5py

    bindir = Path(sys.executable).parent
    rc, err = _stopped_after_first_line(
        [str(bindir / "lbnl-explore"), tiny, "-o", str(tmp_path / "ex"), "--windows", "1"], sig
    )
    assert rc == status and err.strip() == "lbnl-explore: interrupted before its tables were " \
        "written", err  # fmt: skip
    assert not list(tmp_path.glob("ex*"))
    prefix = str(tmp_path / "s" / "x")
    synth = [str(bindir / "lbnl-synth"), prefix, "--detector", "eiger_1m", "-n", "40",
             "--frames-per-file", "4"]  # fmt: skip
    rc, err = _stopped_after_first_line(synth, sig)
    assert rc == status and len(err.strip().splitlines()) == 1 and "interrupted" in err, err
    left = sorted(glob.glob(prefix + "*"))
    assert left and not [p for p in left if p.endswith((".part", "_master.h5"))], left
    for p in left:  # every data file there is whole
        with h5py.File(p) as f:
            assert f["/entry/data/data"].shape[0] == 4
