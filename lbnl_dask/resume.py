"""Resume and clean-up: which outputs an earlier run of the same job finished, and what to remove.

Every output file carries the job's token (:func:`lbnl_dask.options.job_token`) in the
``lbnl_dask_job`` attribute. A re-run keeps the files of its own job that are complete and
writes the rest; ``--overwrite`` replaces everything; a run that fails on bad input removes
what it wrote, so nothing half-written looks finished.
"""
from __future__ import annotations

import glob
import os

import h5py

from .errors import OutputError
from .writer import JOB_ATTR, ascii_attr


def block_is_done(path: str, token: str, n: int | None) -> bool:
    """True if ``path`` is a complete output file of the job ``token`` holding ``n`` frames
    (every chunk written; any ``n`` if None)."""
    try:
        with h5py.File(path, "r") as f:
            d = f["/entry/data/data"]
            if d.attrs.get(JOB_ATTR) != ascii_attr(token):
                return False
            if n is not None and d.shape[0] != n:
                return False
            return d.ndim == 1 or d.id.get_num_chunks() == d.shape[0]
    except (OSError, KeyError):
        return False


def master_job(path: str) -> str | None:
    """The job token a master was written by, or None."""
    try:
        with h5py.File(path, "r") as f:
            v = f["/entry"].attrs.get(JOB_ATTR)
            return None if v is None else bytes(v).decode()
    except (OSError, KeyError):
        return None


def finished_outputs(files: dict[str, int], master: str, token: str) -> dict[str, bool]:
    """For each output file {path: frames} and the ``master``: is it a finished file of
    the job ``token`` (kept by a re-run)?"""
    done = {p: os.path.exists(p) and block_is_done(p, token, n) for p, n in files.items()}
    done[master] = os.path.exists(master) and master_job(master) == token
    return done


def kept_record(path: str, n: int) -> dict:
    """The write record of a data file kept from an earlier run of the same job."""
    return {"path": path, "frames": n, "bytes": os.path.getsize(path), "kept": True}


def check_outputs(paths: list[str], inputs: list[str], overwrite: bool, resumable=lambda p: False):
    """Refuse outputs that would hit the input, sit in unwritable folders, or exist (unless
    ``overwrite``, or ``resumable(path)``: a finished file of this same job)."""
    for p in paths:
        for i in inputs:
            if os.path.exists(p) and _same_file(p, i):
                raise OutputError(f"{p}: output would overwrite the input")
        folder = os.path.dirname(os.path.abspath(p))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{p}: cannot create the output folder ({e.strerror})") from e
        if not os.access(folder, os.W_OK):
            raise OutputError(f"{p}: output folder {folder} is not writable")
        if os.path.exists(p) and not overwrite and not resumable(p):
            raise OutputError(f"{p}: exists (use --overwrite to replace it)")


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def remove_partials(paths: list[str]) -> None:
    """Temporaries (``.part``) that a killed run left beside ``paths``."""
    for p in paths:
        if os.path.exists(p + ".part"):
            os.unlink(p + ".part")


def remove_outputs(paths: list[str], token: str) -> None:
    """The files of job ``token`` among ``paths`` and every temporary: a failed run's output."""
    for p in paths:
        for q in (p, p + ".part"):
            if os.path.exists(q) and (q.endswith(".part") or block_is_done(q, token, None)):
                os.unlink(q)


def remove_stale(master: str, data_files: list[str]) -> None:
    """With --overwrite: the old master first (so a failed run leaves none) and the data
    files of an earlier, longer run that this one would not replace."""
    if os.path.exists(master):
        os.unlink(master)
    prefix = data_files[0][: -len("000001.h5")]
    for p in glob.glob(glob.escape(prefix) + "[0-9]" * 6 + ".h5"):
        if p not in data_files:
            os.unlink(p)
