"""The console scripts' entry points (``pyproject.toml``). Each imports its tool inside a
``try``: Ctrl-C while Python loads dask, numba and astropy (the first half second of a
run) then ends in one line and status 130, as it does later in a run, not in a traceback.
A tool that fails or is interrupted ends within :data:`lbnl_dask.cluster.EXIT_GRACE`
seconds whatever threads are left (:func:`lbnl_dask.cluster.exit_watchdog`)."""

from __future__ import annotations

import importlib
import sys


def _entry(module: str, attr: str, prog: str):
    def run() -> int:
        try:
            main = getattr(importlib.import_module(module), attr)
        except KeyboardInterrupt:
            print(f"{prog}: interrupted before anything was written", file=sys.stderr)
            return 130
        from .cluster import exit_watchdog, quiet_after_interrupt

        try:
            rc = main()
        except BaseException:  # (a traceback, then exit: the same watch)
            exit_watchdog(1)
            raise
        if rc in (130, 143):  # interrupted: its one line said so; the rest is exit noise
            quiet_after_interrupt()
        if rc:  # failed or interrupted: its threads get EXIT_GRACE seconds to end
            exit_watchdog(rc)
        return rc

    run.__name__ = run.__qualname__ = prog.replace("-", "_")
    run.__doc__ = f"``{prog}``: ``{module}.{attr}``, imported on the call."
    run.target = (module, attr, prog)
    return run


compress = _entry("lbnl_dask.cli", "command", "lbnl-compress")
synth = _entry("lbnl_dask.synth", "command", "lbnl-synth")
demo = _entry("lbnl_dask.demo", "command", "lbnl-demo")
validate = _entry("lbnl_dask.validate", "main", "lbnl-validate")
explore = _entry("lbnl_dask.explore", "command", "lbnl-explore")
to_cbf = _entry("lbnl_dask.cbf_output", "command", "lbnl-to-cbf")
