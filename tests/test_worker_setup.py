"""The preload of lbnl_dask's workers: a worker ignores Ctrl-C (the parent stops the run)."""

import subprocess
import sys


def test_dask_setup_makes_the_process_ignore_sigint():
    code = (
        "import signal\n"
        "from lbnl_dask.worker_setup import dask_setup\n"
        "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler\n"
        "dask_setup(None)\n"
        "print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "True"


def test_the_local_cluster_preloads_it():
    from lbnl_dask.cluster import client_for

    with client_for("processes", workers=1) as client:
        handlers = client.run(
            lambda: __import__("signal").getsignal(2) is __import__("signal").SIG_IGN
        )
    assert set(handlers.values()) == {True}
