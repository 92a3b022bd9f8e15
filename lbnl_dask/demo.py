"""``lbnl-demo``: make a small synthetic Eiger dataset, compress it, print the report.

The README's first command. Default: a 40-frame Eiger 4M (uint32) dataset in
``demo_out/``, compressed with ``-b 2 -s 2 -H 12`` on threads (a run this short is over
before a local cluster of processes would have started).
"""

from __future__ import annotations

import argparse
import os
import sys

from .cluster import console, one_openmp_thread
from .errors import LbnlDaskError
from .pipeline import compress
from .synth import make_dataset


def main(argv=None) -> int:
    one_openmp_thread()
    p = argparse.ArgumentParser(
        prog="lbnl-demo",
        description="Make a small synthetic Eiger dataset, compress it with -b 2 -s 2 -H 12 "
        "and print the report.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--dir", default="demo_out", help="folder for the synthetic input and the output"
    )
    p.add_argument("--detector", default="eiger_4m", help="a preset of lbnl-synth")
    p.add_argument("-n", "--nframes", type=int, default=40, help="frames of the synthetic dataset")
    p.add_argument("--scheduler", default="threads",
                   help="as lbnl-compress --scheduler (threads: a short run is done before a "
                   "local cluster has started)")  # fmt: skip
    a = p.parse_args(argv)
    os.makedirs(a.dir, exist_ok=True)
    prefix = os.path.join(a.dir, f"synth_{a.detector}")
    try:
        master = prefix + "_master.h5"
        if not os.path.exists(master):
            print(f"making a synthetic {a.detector} dataset of {a.nframes} frames: {master}")
            make_dataset(prefix, a.detector, nframes=a.nframes, frames_per_file=20, dtype="uint32")
        out = os.path.join(a.dir, "b2s2h12")
        print(f"lbnl-compress -i {master} -o {out} -b 2 -s 2 -H 12 --overwrite "
              f"--scheduler {a.scheduler}")  # fmt: skip
        report = compress(
            master,
            out,
            bin_range=2,
            sum_range=2,
            hcomp_scale=12,
            overwrite=True,
            scheduler=a.scheduler,
            progress=sys.stderr.isatty(),
        )
    except LbnlDaskError as e:
        print(f"lbnl-demo: error: {e}", file=sys.stderr)
        return 2
    for line in report.block_messages():
        print(line)
    print(report)
    return 0


#: The console script (pyproject.toml): :func:`main`, then :func:`~lbnl_dask.cluster.console`.
command = console(main)


if __name__ == "__main__":
    sys.exit(command())
