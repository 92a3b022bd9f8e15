"""Resume and clean-up: which outputs an earlier run of the same job finished, and what to remove.

Every output file carries the job's token (:func:`lbnl_dask.options.job_token`) in the
``lbnl_dask_job`` attribute, and each data file the CRC-32 of its stored chunks. A re-run
checks every output file, keeps those of its own job that are complete and undamaged, and
writes the missing and damaged ones (then the master); ``--overwrite`` replaces everything;
a run that fails on bad input removes what it wrote, so nothing half-written looks finished.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import sys

import h5py

from . import layout
from .errors import OutputError
from .writer import JOB_ATTR, ascii_attr, damaged_in


def block_is_done(path: str, token: str, n: int | None) -> bool:
    """True if ``path`` is a complete, undamaged output file of the job ``token`` holding
    ``n`` frames (any ``n`` if None)."""
    return file_state(path, token, n) == "done"


def file_state(path: str, token: str, n: int | None, verify: bool = True) -> str:
    """What an output file of the job ``token`` (``n`` frames) is now: ``absent``; ``done``
    (complete, every chunk's CRC-32 as written); ``damaged`` (this job's, but short, a chunk
    missing or changed); ``unreadable`` (not an HDF5 file we can open: truncated, say); or
    ``foreign`` (another job's file, or not ours at all). ``verify=False``: the chunks'
    CRC-32s are not read (a file about to be replaced: ``done`` means complete only)."""
    if not os.path.exists(path):
        return "absent"
    try:
        f = h5py.File(path, "r")
    except OSError:
        return "unreadable"
    with f:  # one opening: the job, the frame count, the chunks and their checksums
        try:
            d = f[layout.DATA]
        except (OSError, KeyError):
            return "unreadable"
        if d.attrs.get(JOB_ATTR) != ascii_attr(token):
            return "foreign"
        complete = (n is None or d.shape[0] == n) and (
            d.ndim == 1 or d.id.get_num_chunks() == d.shape[0])  # fmt: skip
        try:
            return "damaged" if not complete or (verify and damaged_in(f)) else "done"
        except (OSError, KeyError):
            return "damaged"


def written_by_a_job(path: str) -> bool:
    """Whether ``path`` is an output file of some lbnl-compress job: a data file whose
    frames, or a master whose entry, carry a job token (this one's or another's)."""
    return _job_token(path, (layout.DATA, layout.ENTRY)) is not None


def master_job(path: str) -> str | None:
    """The job token a master was written by, or None."""
    return _job_token(path, (layout.ENTRY,))


def _job_token(path: str, places) -> str | None:
    """The job token on the first of the HDF5 objects ``places`` of ``path`` that has one,
    or None (no such object, no token, or no HDF5 file)."""
    try:
        with h5py.File(path, "r") as f:
            for place in places:
                v = f[place].attrs.get(JOB_ATTR) if place in f else None
                if v is not None:
                    return bytes(v).decode()
    except (OSError, KeyError):
        pass
    return None


def output_states(files: dict[str, int], master: str, token: str,
                  verify: bool = True) -> dict[str, str]:  # fmt: skip
    """:func:`file_state` of each output file {path: frames} (``verify``: as there), and of
    the ``master`` (``done`` if this job wrote it). A file that cannot be opened counts as
    this job's ``damaged`` one when this job's master exists: the master names it."""
    states = {p: file_state(p, token, n, verify) for p, n in files.items()}
    if not os.path.exists(master):
        states[master] = "absent"
    else:
        states[master] = "done" if master_job(master) == token else "foreign"
    if states[master] == "done":
        states.update({p: "damaged" for p, st in states.items() if st == "unreadable"})
    return states


def kept_record(path: str, n: int) -> dict:
    """The write record of a data file kept from an earlier run of the same job (with its
    ``lost_pixels`` if it recorded them: ``-c sz3``)."""
    rec = {"path": path, "frames": n, "bytes": os.path.getsize(path), "kept": True}
    with h5py.File(path, "r") as f:
        lost = f[layout.DATA].attrs.get(layout.LOST_ATTR)
    if lost is not None:
        rec["lost_pixels"] = int(lost)
    return rec


def output_folder(folder: str, named: str | None = None) -> str:
    """``folder`` made if need be, and writable; else OutputError naming ``named`` (the
    output file), or the folder itself."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{named or folder}: cannot create the output folder "
                          f"({e.strerror})") from None  # fmt: skip
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{named or folder}: output folder {folder} is not writable")
    return folder


def check_outputs(paths: list[str], inputs: list[str], overwrite: bool, resumable=lambda p: False):
    """Refuse outputs that would hit the input, sit in unwritable folders, or exist (unless
    ``overwrite``, or ``resumable(path)``: a file of this same job, finished or to repair)."""
    ids = {file_id(i) for i in inputs}  # once: a miniCBF series has thousands of files
    for p in paths:
        if os.path.exists(p) and file_id(p) in ids:
            raise OutputError(f"{p}: output would overwrite the input")
        output_folder(os.path.dirname(os.path.abspath(p)), named=p)
        if os.path.exists(p) and not overwrite and not resumable(p):
            whose = " (from another lbnl-compress job: other options or input)" if (
                written_by_a_job(p)) else ""  # fmt: skip
            raise OutputError(f"{p}: exists{whose} (use --overwrite to replace it)")


def file_id(path: str):
    """(device, inode) of an existing file, else its absolute path: what names one file."""
    try:
        st = os.stat(path)
        return (st.st_dev, st.st_ino)
    except OSError:
        return os.path.abspath(path)


def remove_partials(paths: list[str]) -> None:
    """Temporaries (:func:`lbnl_dask.layout.part_path`) a killed run left beside ``paths``."""
    for p in paths:
        if os.path.exists(layout.part_path(p)):
            os.unlink(layout.part_path(p))


def remove_outputs(written: list[str]) -> None:
    """A failed run's output: the files it was writing (``Plan.written``: missing or
    damaged ones of its own job, so nothing of another job's and none of an earlier run's
    finished files) and their temporaries."""
    for p in written:
        for q in (p, layout.part_path(p)):
            if os.path.exists(q):
                os.unlink(q)


def remove_stale(master: str, data_files: list[str], squash_files=()) -> None:
    """With --overwrite: the old master first (so a failed run leaves none) and the data
    files of an earlier, longer run that this one would not replace."""
    if os.path.exists(master):
        os.unlink(master)
    for files in (data_files, list(squash_files)):
        if not files:
            continue
        prefix = files[0][: -len(layout.output_file_name("", 1))]
        for p in glob.glob(glob.escape(prefix) + layout.OUTPUT_GLOB):
            if p not in files and p not in data_files:
                os.unlink(p)


def what_was_kept(plan) -> str:
    """One true sentence on what an interrupted run of ``plan`` leaves: a complete output,
    or how many data files of this job are finished (kept for the next run of the same
    command). Files are renamed into place only when complete; one of an earlier job that
    --overwrite had not replaced yet is not counted (it had been)."""
    done = finished_files(plan)
    master_new = plan.master in plan.written() and os.path.exists(plan.master)
    if master_new and len(done) == len(plan.data_files):
        return (
            f"interrupted after the output was complete: {plan.master} and its data files are kept"
        )
    return (f"interrupted: {len(done)} of {len(plan.data_files)} data file(s) finished and kept, "
            f"the output is not complete; {how_to_finish(plan, done, 'to finish')}")  # fmt: skip


def finished_files(plan) -> list[str]:
    """The data files of ``plan``'s job that are complete now (kept for the next run of the
    same command); one of an earlier job that --overwrite had not replaced yet is not."""
    return [p for p, n in zip(plan.data_files, plan.block_sizes, strict=True)
            if file_state(p, plan.token, n, verify=False) == "done"]  # fmt: skip


def how_to_finish(plan, done: list[str], when: str) -> str:
    """What finishes a stopped run of ``plan`` that left the data files ``done``, ``when``
    ("to finish", "when there is room"): the same command, without --overwrite if it had it
    (with it, they are written again)."""
    if plan.overwrite and done:
        return f"run the same command without --overwrite {when} (with it, they are written again)"
    return f"run the same command again {when}"


@contextlib.contextmanager
def output_lock(master: str, others=(), wait: bool = False):
    """Hold ``<master>.lock`` and ``<path>.lock`` for each of ``others`` (the first data
    file, the first squash file: a run's other names; flocks, which the kernel drops when a
    process dies, so a killed run leaves nothing stuck) for the block; OutputError if another
    live run holds one (with ``wait``, as l_bnl_compress' ``-t N`` runs side by side: a line,
    then the block once that run has ended). Two runs of one -o with two -m had both
    written its data files.
    The output folders that do not exist yet (the master's, and those of the paths
    ``others``: data files, squash files) are removed again if the block leaves them empty,
    so a refused or failed run leaves no empty folder behind."""
    with folders_removed_if_empty([master, *others]), contextlib.ExitStack() as held:
        for path in dict.fromkeys([master, *others]):  # -m and -o are two names (-q a third)
            held.enter_context(_locked(path, wait))
        yield


@contextlib.contextmanager
def folders_removed_if_empty(paths):
    """The folders of ``paths`` that do not exist yet, removed again after the block if it
    leaves them empty (deepest first; one that holds anything stays, and so do its
    parents): a refused or failed run leaves no empty folder behind."""
    created = []
    for p in paths:
        for d in _missing_folders(os.path.dirname(os.path.abspath(p))):
            if d not in created:
                created.append(d)
    created.sort(key=lambda d: -d.count(os.sep))
    try:
        yield
    finally:
        for d in created:
            with contextlib.suppress(OSError):
                os.rmdir(d)


@contextlib.contextmanager
def _locked(master: str, wait: bool = False):
    """:func:`output_lock`'s flock on ``<master>.lock``, its folder made if need be; held
    by another run: OutputError, or with ``wait`` a line and a wait for it."""
    path = master + ".lock"
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    except OSError as e:
        raise OutputError(f"{master}: cannot create the output folder ({e.strerror})") from e
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise OutputError(f"{path}: cannot create the output's lock ({e.strerror})") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                os.close(fd)
                raise OutputError(
                    f"{master}: another run is writing this output now (it holds "
                    f"{os.path.basename(path)}); wait for it, or choose another -o"
                ) from None
            print(f"lbnl-compress: waiting for the run writing this output (it holds "
                  f"{os.path.basename(path)})", file=sys.stderr, flush=True)  # fmt: skip
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # (a Ctrl-C ends the wait)
            except BaseException:
                os.close(fd)
                raise
        try:  # the lock's file may have been removed by the run that held it: lock the new one
            if os.path.exists(path) and os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except OSError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def _missing_folders(folder: str) -> list[str]:
    """The folders ``os.makedirs(folder)`` would create, deepest first."""
    missing = []
    while folder and not os.path.exists(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return missing
