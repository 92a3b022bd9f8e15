"""End-to-end throughput of lbnl-compress on a synthetic Eiger 4M dataset (prints figures, writes JSON).

    python benchmarks/bench_pipeline.py [--frames 100] [--detector eiger_4m] [--workers 2]

Runs a few settings on the threaded scheduler and on a LocalCluster of processes and
prints input frames/s and MB/s of 4-byte raw. Not a test: timings depend on the machine.
"""
import argparse
import json
import os
import platform
import shutil
import tempfile
import time

from distributed import LocalCluster

from lbnl_dask import compress
from lbnl_dask.synth import make_dataset

SETTINGS = {
    "b2s2h12": dict(bin_range=2, sum_range=2, hcomp_scale=12),
    "b2s2j120": dict(bin_range=2, sum_range=2, j2k_ratio=120),
    "b1s1h16": dict(hcomp_scale=16),
    "lossless": dict(),
}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--detector", default="eiger_4m")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--schedulers", nargs="+", default=["threads", "processes"])
    p.add_argument("--settings", nargs="+", default=list(SETTINGS))
    p.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "lbnl_bench"))
    p.add_argument("--json", default="benchmarks/results_pipeline.json")
    a = p.parse_args()
    os.makedirs(a.data, exist_ok=True)
    prefix = os.path.join(a.data, f"{a.detector}_{a.frames}")
    master = prefix + "_master.h5"
    if not os.path.exists(master):
        t = time.perf_counter()
        make_dataset(prefix, a.detector, nframes=a.frames, frames_per_file=100, dtype="uint32")
        print(f"synthetic {a.detector} x {a.frames} frames written in {time.perf_counter() - t:.1f} s")
    out_dir = tempfile.mkdtemp(prefix="lbnl_bench_out_")
    rows = []
    try:
        for name in a.settings:
            for sched in a.schedulers:
                for w in a.workers:
                    if sched == "processes":  # a running cluster: its ~1 s start is not throughput
                        with LocalCluster(n_workers=w, threads_per_worker=1, dashboard_address=None) as cl:
                            rep = compress(master, os.path.join(out_dir, name), scheduler=cl.scheduler_address,
                                           overwrite=True, **SETTINGS[name])
                    else:
                        rep = compress(master, os.path.join(out_dir, name), scheduler=sched, workers=w,
                                       overwrite=True, **SETTINGS[name])
                    row = dict(setting=name, scheduler=sched, workers=w, seconds=round(rep.seconds, 2),
                               frames_per_s=round(rep.frames_in / rep.seconds, 2),
                               mb_per_s_raw4=round(2 * rep.raw2_bytes / 1e6 / rep.seconds, 1),
                               ratio_raw2=round(rep.ratio_raw2, 1))
                    rows.append(row)
                    print(f"{name:10s} {sched:9s} workers={w}  {row['seconds']:7.2f} s  "
                          f"{row['frames_per_s']:6.2f} frames/s  {row['mb_per_s_raw4']:7.1f} MB/s  "
                          f"ratio {row['ratio_raw2']}x (2-byte raw)")
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    result = dict(machine=dict(node=platform.node(), cpus=os.cpu_count(), python=platform.python_version()),
                  detector=a.detector, frames=a.frames, rows=rows)
    with open(a.json, "w") as fh:
        json.dump(result, fh, indent=1)
    print(f"wrote {a.json}")


if __name__ == "__main__":  # the guard LocalCluster's worker processes need
    main()
