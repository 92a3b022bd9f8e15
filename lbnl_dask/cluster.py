"""Where the graph runs: threads, a local cluster of processes, a running scheduler, or SLURM.

``client_for(...)`` is a context manager yielding a ``distributed.Client``, or a
:class:`Local` scheduler for dask's threaded/synchronous ones (handed to each compute call,
never put in dask's process-wide config). All scheduling choices live here.
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import functools
import gc
import logging
import os
import re
import signal
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dask
from dask.threaded import get as threaded_get

from .errors import OptionError, SchedulerError

#: The names of dask's synchronous scheduler: everything in the calling thread.
SYNC = ("sync", "synchronous", "single-threaded")
LOCAL = ("threads", *SYNC)
_ADDRESS = re.compile(r"^(tcp|tls|inproc|ucx)://|^[\w.-]+:\d+$")

#: glibc malloc settings for worker processes. A task allocates and frees arrays of tens of
#: MB; with dask's default (trim the heap above 64 kB) each of them is fresh memory, paid for
#: in page faults. Keeping up to 256 MB in the heap, and (single-threaded workers) one arena,
#: made LocalCluster workers markedly faster (the README's performance section). The
#: threaded scheduler in the parent process measured no faster with them: left alone.
WORKER_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "268435456", "MALLOC_TRIM_THRESHOLD_": "268435456"}
#: One OpenMP thread per worker: bitshuffle's OpenMP threads would compete with dask's own.
WORKER_OPENMP = {"OMP_NUM_THREADS": "1"}
#: No transparent huge pages asked for by numpy (:func:`no_huge_pages`).
WORKER_NUMPY = {"NUMPY_MADVISE_HUGEPAGE": "0"}


@dataclass(frozen=True)
class Local:
    """A scheduler of this process (dask's threaded one on our own pool, or the sync one),
    passed to each compute call: ``dask.compute(..., **local.kwargs)``. It is never set in
    ``dask.config``, which every thread shares: two runs at once (a notebook's threads) each
    restored the other's config on leaving, so one computed on a pool already shut down, and
    the session's later ``.compute()`` calls failed, or ran off the user's Client."""

    get: object
    pool: ThreadPoolExecutor | None = None

    @property
    def kwargs(self) -> dict:
        return {"scheduler": self.get} | ({"pool": self.pool} if self.pool is not None else {})

    def compute(self, *collections):
        """``dask.compute(*collections)`` on this scheduler."""
        return dask.compute(*collections, **self.kwargs)


#: Set by the console scripts' SIGINT handler (:func:`console`). numba loads a cached kernel
#: through a ctypes callback, where an exception is printed and dropped: a Ctrl-C at that
#: moment would be lost and the run go on. The flag keeps it: :func:`raise_if_interrupted`.
_interrupted = False
#: Set by stop_on_sigterm's handler: a SIGTERM arrived (a broken lock may carry it, as a Ctrl-C).
_terminated = False


def _on_sigint(signum, frame):
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def _quiet_dropped_interrupt(unraisable, default=sys.unraisablehook):
    # the dropped KeyboardInterrupt's "Exception ignored" lines: the flag tells it instead
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        default(unraisable)


def quiet_after_interrupt() -> None:
    """After an interrupted run's one line: what the interpreter's exit says of the pieces
    the interrupt cut short (a local cluster stopped while its workers were starting:
    distributed's atexit ``close_clusters`` traceback, asyncio's "Task exception was never
    retrieved") is not printed. For a process's last act only (:mod:`lbnl_dask.scripts`)."""
    import logging

    sys.unraisablehook = lambda unraisable: None
    for name in ("asyncio", "distributed", "tornado"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def raise_if_interrupted() -> None:
    """KeyboardInterrupt if a console script got a Ctrl-C that a library dropped, and
    :class:`Terminated` for a SIGTERM dropped so (raised inside a weakref callback, where
    Python only prints "Exception ignored")."""
    if _terminated:
        raise Terminated()
    if _interrupted:
        raise KeyboardInterrupt


class _DroppedPipe:
    """stdout for the console scripts: once its reader is gone (``lbnl-compress ... | head``)
    what is written goes to /dev/null instead of raising BrokenPipeError in the middle of a
    run (a progress line would have stopped it before its master was written)."""

    def __init__(self, stream):
        self._stream = stream

    def _drop(self) -> None:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, self._stream.fileno())
        os.close(null)

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._drop()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._drop()

    def __getattr__(self, name):
        return getattr(self._stream, name)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that every ``finally`` runs: the cluster
    stops, temporaries go, and the user reads what was kept."""

    signal = signal.SIGTERM


@contextlib.contextmanager
def stop_on_sigterm():
    """SIGTERM (what SLURM sends at the wall-time limit) raises :class:`Terminated`."""
    global _terminated
    _terminated = False

    def handler(signum, frame):
        global _terminated
        _terminated = True  # (for _as_interrupt: a SIGTERM may surface as a broken lock)
        raise Terminated()

    try:
        before = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


#: (caught, handlers before) of each :func:`signals_held` block in progress, innermost last.
_HELD: list = []


@contextlib.contextmanager
def signals_held(signums=(signal.SIGINT, signal.SIGTERM)):
    """SIGINT and SIGTERM held back for the block, then acted on as their handlers would
    have been (a Ctrl-C's KeyboardInterrupt, :class:`Terminated`); at once where the block
    calls :func:`deliver_held_signals`. For code that Python calls back from C, where an
    exception cannot get out cleanly: h5py's file-object driver turns one into a failed
    write inside HDF5. Only the main thread runs Python's signal handlers, so elsewhere this
    does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught, before = [], {}
    for signum in signums:
        try:
            before[signum] = signal.signal(signum, lambda n, frame: caught.append(n))
        except (ValueError, OSError):  # (an embedding that owns the signals)
            pass
    _HELD.append((caught, before))
    try:
        yield
    finally:
        _HELD.pop()  # (blocks nest: this one is the last)
        for signum, handler in before.items():
            signal.signal(signum, handler)
        if caught:
            _act(caught, before)


def deliver_held_signals() -> None:
    """Inside a :func:`signals_held` block, at a point where an exception may leave it (not
    inside a C callback): act now on a signal it caught (a long write stops at once). The
    block's own handlers stay: a signal while it ends is held too."""
    if _HELD and _HELD[-1][0]:
        _act(*_HELD[-1])


def _act(caught: list, before: dict) -> None:
    """Act on the first signal ``caught`` as its handler ``before`` the block would have."""
    signum = caught[0]
    caught.clear()
    handler = before[signum]
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:  # (the process ends: its default)
        signal.signal(signum, handler)
        os.kill(os.getpid(), signum)


def console(main):
    """A command-line tool's ``main`` as its console script runs it: the objects alive before
    it (the imports') and those still alive after it are frozen (``gc.freeze``), so the
    run's and the interpreter's last garbage collections pass them by. With numba, astropy
    and dask loaded, those at exit took ~0.4 s of every run (measured: lbnl-compress, 100
    4M frames, 3.4 -> 2.9 s). ``main`` itself, as tests and notebooks call it, is left as
    it is."""

    @functools.wraps(main)
    def command() -> int:
        keep_freed_memory()
        no_huge_pages()
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):  # fmt: skip
            signal.signal(signal.SIGINT, _on_sigint)  # not where SIGINT is ignored (a job
            sys.unraisablehook = _quiet_dropped_interrupt  # a script started with &)
        gc.freeze()  # what the imports made lives as long as the process: the run's
        # collections pass it by (measured: 0.078 -> 0.046 s of gc in a 400-frame run)
        if not isinstance(sys.stdout, _DroppedPipe):
            sys.stdout = _DroppedPipe(sys.stdout)
        try:
            rc = main()
        except RuntimeError as e:  # a Ctrl-C that broke a lock (see _as_interrupt) where
            if not (_interrupted or _terminated):  # run() was not the one waiting: one line
                raise
            print(f"{os.path.basename(sys.argv[0])}: interrupted ({e}); the same command "
                  "again keeps the data files this run finished and writes the rest",
                  file=sys.stderr)  # fmt: skip
            rc = 143 if _terminated else 130
        finally:
            gc.freeze()
        if (_interrupted or _terminated) and rc == 0:  # dropped where nothing checked it:
            print(f"{os.path.basename(sys.argv[0])}: interrupted, but only once the run had "
                  "finished: its output is complete", file=sys.stderr)  # fmt: skip
            rc = 143 if _terminated else 130  # say so all the same
        return rc

    return command


#: Seconds a failed or interrupted console tool's interpreter has to end its threads.
EXIT_GRACE = 10.0


def exit_watchdog(rc: int, seconds: float | None = None) -> None:
    """End the process with status ``rc`` if it has not ended ``seconds`` from now. At exit
    Python joins every non-daemon thread; a Ctrl-C that lands while a thread pool is
    starting a worker leaves that worker unknown to the pool's shutdown, and the process
    then waits for it forever (seen: a Ctrl-C 0.94 s into a run, hung at 0% CPU). A run
    that fails or is interrupted thus ends all the same; one that succeeds is not
    watched. For a process's last act only (the console scripts, :mod:`lbnl_dask.scripts`):
    the process ends, whatever else it was doing."""

    def force() -> None:
        time.sleep(EXIT_GRACE if seconds is None else seconds)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(rc)

    threading.Thread(target=force, name="lbnl-exit-watchdog", daemon=True).start()


def keep_freed_memory() -> None:
    """:data:`WORKER_MALLOC` for this process (glibc's ``mallopt``: its environment variables
    are read only when a process starts), unless the user set either variable. Frames of
    a few MB then come back from the heap instead of fresh pages the kernel zeroes first:
    ``perf`` put that zeroing at 8.6% of a threads run's CPU, 4.9% with these settings."""
    if any(k in os.environ for k in WORKER_MALLOC) or "glibc.malloc" in os.environ.get(
        "GLIBC_TUNABLES", ""
    ):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt  # glibc (musl's does nothing; macOS has none)
    except (OSError, AttributeError):
        return
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    for param, name in ((-3, "MALLOC_MMAP_THRESHOLD_"), (-1, "MALLOC_TRIM_THRESHOLD_")):
        if not mallopt(param, int(WORKER_MALLOC[name])) and param == -3:
            mallopt(param, 32 << 20)  # glibc builds that cap M_MMAP_THRESHOLD at 32 MiB


def no_huge_pages() -> None:
    """numpy asks the kernel for transparent huge pages (``madvise``) for every array of 4 MB
    and more; where the kernel then compacts memory to find them (THP ``defrag`` set to
    ``madvise``, a common default), the page faults of a run's fresh arrays stall: measured
    on 400 4M frames, -b 2 -s 2 -H 12, 2 threads, 4 runs each: 6.07-6.32 s with, 5.76-5.94
    s without, system time 1.2-1.4 -> 0.6 s. Off for this process (as
    ``NUMPY_MADVISE_HUGEPAGE=0``), unless the user set that variable."""
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _set_madvise_hugepage
    _set_madvise_hugepage(False)


def one_openmp_thread() -> None:
    """For a process lbnl_dask owns (the command-line tools): one OpenMP thread unless the
    user chose otherwise. A library import leaves the caller's environment alone."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def worker_environ(single_threaded: bool = False) -> dict:
    """Environment dask's nannies give new worker processes: dask's configured
    ``distributed.nanny.pre-spawn-environ`` with :data:`WORKER_MALLOC`,
    :data:`WORKER_OPENMP` and :data:`WORKER_NUMPY` on top (and one
    malloc arena for single-threaded workers)."""
    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    env.update(WORKER_MALLOC)
    env.update(WORKER_OPENMP)
    env.update(WORKER_NUMPY)
    if single_threaded:
        env["MALLOC_ARENA_MAX"] = "1"
    return env


def local_cluster(workers: int, profile: bool = False, **kwargs):
    """A ``distributed.LocalCluster`` of ``workers`` single-threaded worker processes with
    :func:`worker_environ` (no dashboard unless ``dashboard_address`` is given). The
    workers' statistical profiler (the dashboard's Profile page, a performance report's
    profile) samples every thread's stack 100 times a second: off unless ``profile``
    (it costs a few per cent of throughput). As dask
    does, a variable already in ``os.environ`` wins (dask's nannies write them into the
    parent; :func:`environ_restored` puts back what was there before)."""
    from distributed import LocalCluster

    kwargs.setdefault("dashboard_address", None)
    kwargs.setdefault("silence_logs", logging.CRITICAL)  # our own errors reach the user
    environ = worker_environ(single_threaded=True)
    if kwargs["silence_logs"]:  # the workers' own loggers, from their start
        level = logging.getLevelName(kwargs["silence_logs"]).lower()
        environ.setdefault("DASK_LOGGING__DISTRIBUTED", level)
    preload = list(dask.config.get("distributed.worker.preload", None) or [])
    config = {
        "distributed.worker.preload": preload + ["lbnl_dask.worker_setup"],
        "distributed.nanny.pre-spawn-environ": environ,
        "distributed.worker.profile.enabled": bool(profile),
    }
    with dask.config.set(config), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, **kwargs)


@dataclass
class SlurmOptions:
    """``dask_jobqueue.SLURMCluster`` settings.

    None falls back to dask's ``jobqueue.slurm`` config.
    """

    jobs: int = 1
    cores: int | None = None
    memory: str | None = None
    walltime: str | None = None
    queue: str | None = None
    account: str | None = None
    processes: int | None = None


def available_cores() -> int:
    """Cores this process may use (its CPU affinity, as a batch job's allocation sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def has_bokeh() -> bool:
    try:
        import bokeh  # noqa: F401

        return True
    except ImportError:
        return False


def slurm_cluster(opts: SlurmOptions):
    """A ``dask_jobqueue.SLURMCluster`` (nothing is submitted until it is scaled)."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise OptionError("--slurm needs dask-jobqueue: pip install 'lbnl-dask[hpc]'") from None
    finally:  # dask_jobqueue.runner, imported with it, sets SIGINT to sys.exit(): a Ctrl-C
        if (threading.current_thread() is threading.main_thread()  # would end the run with
                and signal.getsignal(signal.SIGINT) is not handler):  # status 0  # fmt: skip
            signal.signal(signal.SIGINT, handler)
    kw = {
        k: v
        for k, v in dict(
            cores=opts.cores,
            memory=opts.memory,
            walltime=opts.walltime,
            queue=opts.queue,
            account=opts.account,
            processes=opts.processes,
        ).items()
        if v is not None
    }
    cores = kw.get("cores", dask.config.get("jobqueue.slurm.cores", None))
    if (
        "processes" not in kw
        and dask.config.get("jobqueue.slurm.processes", None) is None
        and cores
    ):
        # one single-threaded worker process per core, as the local cluster: HCompress runs
        # one at a time per process, so threads sharing a process would wait for each other
        kw["processes"] = int(cores)
    single = kw.get("processes", dask.config.get("jobqueue.slurm.processes", None)) == cores
    # the workers' nannies read their pre-spawn environment from dask's config, set here by
    # an environment variable (a dict literal keeps the upper-case names glibc needs)
    prologue = list(dask.config.get("jobqueue.slurm.job-script-prologue", None) or [])
    environ = worker_environ(single_threaded=single)
    prologue.append(f'export DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON="{environ!r}"')
    kw["job_script_prologue"] = prologue
    for need in ("cores", "memory"):
        if need not in kw and dask.config.get(f"jobqueue.slurm.{need}", None) is None:
            raise OptionError(f"--slurm needs --{need} (or jobqueue.slurm.{need} in dask's config)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SLURMCluster(
            scheduler_options={"dashboard_address": ":0" if has_bokeh() else None}, **kw
        )


def slurm_job_script(opts: SlurmOptions) -> str:
    """The batch script ``--slurm`` would submit, without submitting it."""
    cluster = slurm_cluster(opts)
    try:
        return cluster.job_script()
    finally:
        cluster.close()


def _main_guard_lines(path: str) -> list[tuple[int, int]]:
    """Line ranges of the ``if __name__ == "__main__":`` blocks of a script.

    Empty if the script is unreadable.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
    except (OSError, SyntaxError, ValueError):
        return []
    ranges = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.If)
            and "__name__" in ast.unparse(node.test)
            and "__main__" in ast.unparse(node.test)
        ):
            ranges.append((node.body[0].lineno, node.end_lineno or node.body[-1].lineno))
    return ranges


def why_no_processes() -> str | None:
    """Why worker processes cannot start from here, or None if they can. They import the
    ``__main__`` module afresh: code read from stdin cannot be imported again, and a script's
    top level would run again in every worker unless the call sits inside
    ``if __name__ == "__main__":``. Notebooks, ``python -c``, ``-m`` and the console scripts
    have nothing to import again."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    spec = getattr(main, "__spec__", None)
    if main is None or path is None or (spec is not None and spec.name.endswith("__main__")):
        return None  # interactive, -c, -m pkg (its __main__) or a console script: nothing re-run
    if not os.path.isfile(path):
        return "code read from stdin cannot be imported by worker processes (save it as a script)"
    why = (f"worker processes would run {os.path.basename(path)} again: call compress inside "
           "'if __name__ == \"__main__\":'")  # fmt: skip
    guards = _main_guard_lines(path)
    top = _script_level(sys._getframe(1), main)
    if top is None and threading.current_thread() is not threading.main_thread():
        # a thread: the script's top level is where the main thread is (it started the
        # thread there, as a rule); one that has ended left no frame, so then its guard
        # must be somewhere (a script without any re-runs all it did, thread and all)
        top = _script_level(sys._current_frames().get(threading.main_thread().ident), main)
        if top is None:
            return None if guards else why
    if top is None:
        return None  # not called from the script's code: nothing runs twice
    if any(a <= top.f_lineno <= b for a, b in guards):
        return None
    return why


def _script_level(frame, main):
    """The outermost frame of ``main``'s top level (``<module>``) in the stack that
    ``frame`` ends, whatever called onwards from it through any module (python -m
    lbnl_dask.cli: its main() through cluster.console), or None."""
    top = None
    while frame is not None:
        if frame.f_globals is vars(main) and frame.f_code.co_name == "<module>":
            top = frame
        frame = frame.f_back
    return top


def can_start_processes() -> bool:
    """Whether worker processes can start from here (see :func:`why_no_processes`)."""
    return why_no_processes() is None


def choose_scheduler(scheduler: str, locked: str | None = None) -> tuple[str, str | None]:
    """``scheduler`` with ``auto`` resolved, and a note saying why (or None).

    ``auto`` is ``threads``: every stage of a run releases the GIL, and threads measured
    faster than a local cluster of processes at every run length (no processes to start,
    no imports in each; the README's performance section). ``locked`` names a stage of this
    run that holds a process-wide lock (SZ3/ZFP inside h5py, astropy's HCompress coder for
    ``-q``): threads would take turns at it, so ``auto`` is ``processes`` where they can
    start. ``processes`` asked for where they cannot start is an OptionError saying why."""
    if scheduler not in ("auto", "processes"):
        if not isinstance(scheduler, str) or (scheduler not in LOCAL
                                              and not _ADDRESS.match(scheduler)):  # fmt: skip
            raise OptionError(f"unknown scheduler {scheduler!r}: auto, processes, threads, sync "
                              "or an address host:port")  # fmt: skip
        return scheduler, None
    if scheduler == "auto" and locked is None:
        return "threads", None
    why = why_no_processes()
    if why is None:
        return "processes", None
    if scheduler == "processes":
        raise OptionError(f"scheduler 'processes': {why}")
    return "threads", f"scheduler: threads, not a local cluster of processes ({locked}): {why}"


@contextlib.contextmanager
def client_for(
    scheduler: str = "processes",
    workers: int | None = None,
    slurm: SlurmOptions | None = None,
    profile: bool = False,
    quiet: bool = True,
):
    """A dask context: 'threads' / 'sync' (yields a :class:`Local`), 'processes' (a LocalCluster of
    ``workers`` single-threaded worker processes, their profiler on if ``profile``), a
    scheduler address ``host:port`` or ``tcp://...``, or SLURM jobs (``slurm``). Prints the
    dashboard link when there is one. ``quiet``: dask's own log lines below ERROR (worker
    restarts, sizeof fallbacks) stay out of the user's terminal meanwhile."""
    with quiet_dask_logs() if quiet else contextlib.nullcontext():
        yield from _client_for(scheduler, workers or available_cores(), slurm, profile, quiet)


@contextlib.contextmanager
def quiet_dask_logs(level: int = logging.CRITICAL):
    """The ``distributed`` loggers of this process at ``level`` or above, for the block."""
    log = logging.getLogger("distributed")
    before = log.level
    log.setLevel(max(level, before))
    try:
        yield
    finally:
        log.setLevel(before)


def _client_for(scheduler, workers, slurm, profile, quiet=True):
    if slurm is not None:
        from distributed import Client

        cluster = slurm_cluster(slurm)
        with cluster, Client(cluster) as client:
            cluster.scale(jobs=slurm.jobs)
            _dashboard(client)
            yield client
        return
    if scheduler == "threads":
        # our own pool, so that leaving the context waits for tasks still running after an error
        # the threaded scheduler's function, not its name: a name makes dask import
        # distributed (0.4 s) to look for a client
        with ThreadPoolExecutor(workers) as pool:
            yield Local(threaded_get, pool)
        return
    if scheduler in LOCAL:
        from dask.local import get_sync

        yield Local(get_sync)  # a function, not a name: as for threads
        return
    from distributed import Client

    if scheduler == "processes":
        with environ_restored():  # (dask's nannies write the workers' variables in ours)
            cluster = local_cluster(
                workers,
                profile=profile,
                dashboard_address=":0" if has_bokeh() else None,
                silence_logs=logging.CRITICAL if quiet else False,
            )
            with cluster, Client(cluster) as client:
                _dashboard(client)
                yield client
        return
    if _ADDRESS.match(scheduler):
        with _connect(scheduler) as client:
            _dashboard(client)
            yield client
        return
    raise OptionError(
        f"unknown scheduler {scheduler!r}: processes, threads, sync or an address host:port"
    )


#: What the local clusters running in this process found in ``os.environ`` before their
#: nannies wrote the workers' variables there: put back when the last one ends.
_ENV_BEFORE: dict[str, str | None] = {}
_ENV_USERS = 0
_ENV_LOCK = threading.Lock()


@contextlib.contextmanager
def environ_restored():
    """The variables a LocalCluster's nannies write into this process (dask's
    ``distributed.nanny.pre-spawn-environ``, with :func:`local_cluster`'s, and
    PYTHONHASHSEED: one malloc arena, dask's logs silenced, one OpenMP thread...) put back
    as they were once the last local cluster of the process ends; other variables are not
    touched. They had stayed, and a cluster the user started later in the same session
    inherited them. Clusters that overlap (two runs from two threads) restore once, to what
    was there before the first."""
    global _ENV_USERS
    # (worker_environ starts from dask's pre-spawn-environ)
    keys = {*worker_environ(single_threaded=True), "DASK_LOGGING__DISTRIBUTED", "PYTHONHASHSEED"}
    with _ENV_LOCK:
        if _ENV_USERS == 0:
            _ENV_BEFORE.clear()
        for k in keys:
            _ENV_BEFORE.setdefault(k, os.environ.get(k))
        _ENV_USERS += 1
    try:
        yield
    finally:
        with _ENV_LOCK:
            _ENV_USERS -= 1
            if _ENV_USERS == 0:
                for k, v in _ENV_BEFORE.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v


def _connect(address: str):
    """A Client of the scheduler at ``address``, or SchedulerError in one line if none answers
    within dask's connect timeout (``distributed.comm.timeouts.connect``)."""
    from distributed import Client

    timeout = dask.config.get("distributed.comm.timeouts.connect")
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError) as e:
        raise SchedulerError(
            f"{address}: no dask scheduler answered within {timeout} ({type(e).__name__})"
        ) from None


def _dashboard(client):
    link = getattr(client, "dashboard_link", None)
    if link:
        print(f"dask dashboard: {link}", file=sys.stderr)


def run(
    job,
    client=None,
    progress: bool = False,
    report: str | None = None,
    log=None,
    prefix: str = "write-datablock",
):
    """Compute a Delayed ``job`` on ``client`` (a :class:`Local` scheduler, or None: dask's
    configured one), with a
    progress bar, saving dask's performance report to ``report`` (HTML) if given. ``log``
    (a text stream, for batch logs where a bar cannot draw): one line each time a task
    whose key starts with ``prefix`` finishes."""
    # the keys to follow (only for a log: listing them walks the whole graph)
    keys = [k for k in job.dask if str(k).startswith(prefix)] if log else []
    lines = _LineLog(log, len(keys), prefix)
    if client is None or isinstance(client, Local):
        if report:
            raise OptionError(
                "--report needs a distributed scheduler (processes, an address or --slurm)"
            )
        bar = contextlib.nullcontext()
        if progress:
            from dask.diagnostics import ProgressBar

            bar = ProgressBar(out=sys.stderr)
        with bar, lines.callback():
            try:
                return job.compute() if client is None else client.compute(job)[0]
            except Exception as e:
                _as_interrupt(e)
                raise
    from dask.delayed import Delayed
    from distributed import as_completed, performance_report
    from distributed import progress as dprogress

    ctx = performance_report(filename=report) if report else contextlib.nullcontext()
    with ctx:
        layer = job.__dask_layers__()[0]
        fut, *parts = client.compute([job] + [Delayed(k, job.dask, layer=layer) for k in keys])
        try:
            if progress:
                dprogress(fut)
                print(file=sys.stderr)
            for part in as_completed(parts + [fut]):
                if part is fut or part.status != "finished":
                    break  # done, or failed: the result says which, now
                lines.done()
            return fut.result()
        except BaseException as e:
            _stop(client, [fut, *parts], job)
            _as_interrupt(e)
            raise


def _as_interrupt(e: BaseException) -> None:
    """KeyboardInterrupt (from ``e``) if the console's Ctrl-C handler ran: a Ctrl-C that lands
    inside ``threading.Condition.wait`` (dask's schedulers wait in one) leaves its lock
    half-released, and the interrupt surfaces as "RuntimeError: cannot release un-acquired
    lock" as the lock's ``with`` block exits: a traceback and status 1 instead of the
    interrupt's one line and 130 (seen once in five runs of the Ctrl-C test)."""
    if isinstance(e, KeyboardInterrupt):
        return
    if _terminated:  # a SIGTERM, the same way (seen in the SIGTERM test)
        raise Terminated() from e
    if _interrupted:
        raise KeyboardInterrupt from e


def _stop(client, futures, job, seconds: float = 60.0) -> None:
    """Cancel a failed or interrupted job and wait (up to ``seconds``) until none of its
    tasks runs on a worker any more: a remote cluster outlives the run, and a write task
    finishing after the clean-up would leave a file that looks finished."""
    keys = {str(k) for k in job.dask}
    with contextlib.suppress(Exception):
        client.cancel(futures, force=True)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            running = {str(k) for ks in client.processing().values() for k in ks}
            if not running & keys:
                break
            time.sleep(0.1)


class _LineLog:
    """Progress as lines: ``done()`` prints 'k of n ... (elapsed)' to ``stream`` (if any)
    for the first and the last, and at most every ``every`` seconds between them."""

    def __init__(self, stream, total: int, prefix: str, every: float = 5.0):
        self.stream, self.total, self.prefix, self.count = stream, total, prefix, 0
        self.t0 = self.last = time.perf_counter()
        self.every = every

    def done(self):
        self.count += 1
        now = time.perf_counter()
        due = self.count in (1, self.total) or now - self.last >= self.every
        if self.stream is not None and due:
            self.last = now
            print(
                f"progress: {self.count} of {self.total} data files written "
                f"({time.perf_counter() - self.t0:.1f} s)",
                file=self.stream,
                flush=True,
            )

    def callback(self):
        """A dask callback for the local schedulers calling :meth:`done` per matching task."""
        from dask.callbacks import Callback

        if self.stream is None:
            return contextlib.nullcontext()
        return Callback(
            posttask=lambda key, *a: self.done() if str(key).startswith(self.prefix) else None
        )
