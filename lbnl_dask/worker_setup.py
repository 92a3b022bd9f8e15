"""Set-up of the worker processes lbnl_dask starts (a dask preload: ``dask_setup``).

A Ctrl-C in the terminal reaches every process of the group; the workers ignore it and the
parent stops the run, so the user reads one message instead of a traceback per worker.
"""

import signal


def dask_setup(worker) -> None:
    """Called by dask in each new worker process, in its main thread."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
