"""Peak memory (RSS) of every dask worker process against dataset length and chunk size.

    python benchmarks/bench_memory.py [--detector eiger_1m] [--lengths 100 1000] [--chunks 2 4 8 16]
    # the 9M -d 100 case:
    python benchmarks/bench_memory.py --detector eiger_9m --lengths 200 --chunks 0

Each run uses a fresh LocalCluster of --workers single-threaded worker processes (as
lbnl-compress starts them for --sz3/--zfp/-q) and samples their RSS every 20 ms with psutil;
``--scheduler threads`` (lbnl-compress' default) runs --workers threads in this process and
samples its RSS (the peak of all its threads together: per worker, divide by --workers).
``--chunks 0`` means the default chunking. Prints a table and writes JSON. Memory must not
grow with the dataset's length.
"""

import argparse
import json
import os
import platform
import tempfile
import threading

import psutil
from distributed import Client

from lbnl_dask import compress
from lbnl_dask.cluster import local_cluster
from lbnl_dask.synth import make_dataset


def peak_rss(cluster_pids, stop, out):
    procs = [psutil.Process(p) for p in cluster_pids]
    while not stop.is_set():
        for p in procs:
            try:
                out[p.pid] = max(out.get(p.pid, 0), p.memory_info().rss)
            except psutil.Error:
                pass
        stop.wait(0.02)


def run_threads(master, out, workers, chunk, **settings):
    """Threads in this process (the default scheduler): this process's peak RSS."""
    me = os.getpid()
    base = psutil.Process(me).memory_info().rss
    stop, peaks = threading.Event(), {}
    t = threading.Thread(target=peak_rss, args=([me], stop, peaks))
    t.start()
    try:
        rep = compress(master, out, scheduler="threads", workers=workers, overwrite=True,
                       chunk_frames=chunk or None, **settings)  # fmt: skip
    finally:
        stop.set()
        t.join()
    return peaks[me] / 2**20, base / 2**20, rep


def run(master, out, workers, chunk, **settings):
    with local_cluster(workers) as cl, Client(cl) as c:  # the cluster lbnl-compress starts
        pids = list(c.run(os.getpid).values())
        base = {p: psutil.Process(p).memory_info().rss for p in pids}
        stop, peaks = threading.Event(), {}
        t = threading.Thread(target=peak_rss, args=(pids, stop, peaks))
        t.start()
        try:
            rep = compress(
                master,
                out,
                scheduler=cl.scheduler_address,
                overwrite=True,
                chunk_frames=chunk or None,
                **settings,
            )
        finally:
            stop.set()
            t.join()
    return max(peaks.values()) / 2**20, max(base.values()) / 2**20, rep


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--detector", default="eiger_1m")
    p.add_argument("--lengths", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--chunks", type=int, nargs="+", default=[0, 2, 8, 16])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("-d", "--data-block-size", type=int, default=100)
    p.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "lbnl_bench"))
    p.add_argument("--json", default="benchmarks/results_memory.json")
    p.add_argument("--keep-spots", type=float, default=None, help="also --keep-spots SIGMA")
    p.add_argument("--scheduler", choices=["processes", "threads"], default="processes")
    a = p.parse_args()
    os.makedirs(a.data, exist_ok=True)
    rows = []
    settings = dict(bin_range=2, sum_range=2, hcomp_scale=12, data_block_size=a.data_block_size)
    if a.keep_spots is not None:
        settings["keep_spots"] = a.keep_spots
    for n in a.lengths:
        prefix = os.path.join(a.data, f"mem_{a.detector}_{n}")
        if not os.path.exists(prefix + "_master.h5"):
            make_dataset(prefix, a.detector, nframes=n, frames_per_file=100, dtype="uint32")
        for chunk in a.chunks:
            peak, base, rep = (run_threads if a.scheduler == "threads" else run)(
                prefix + "_master.h5",
                os.path.join(tempfile.mkdtemp(), "o"),
                a.workers,
                chunk,
                **settings,
            )
            row = dict(
                detector=a.detector,
                scheduler=a.scheduler,
                frames=n,
                chunk_frames=chunk or "default",
                peak_rss_mb=round(peak),
                idle_rss_mb=round(base),
                seconds=round(rep.seconds, 1),
            )
            rows.append(row)
            print(
                f"{a.detector} {n:5d} frames, chunk {str(row['chunk_frames']):>7s} input frames: "
                f"peak {'process' if a.scheduler == 'threads' else 'worker'} RSS {peak:7.0f} MB "
                f"(idle {base:.0f} MB), {rep.seconds:.1f} s"
            )
    for chunk in a.chunks:  # the memory targets
        peaks = {
            r["frames"]: r["peak_rss_mb"] for r in rows if r["chunk_frames"] == (chunk or "default")
        }
        if len(peaks) > 1:
            lo, hi = min(peaks), max(peaks)
            x = peaks[hi] / peaks[lo] - 1
            print(
                f"chunk {chunk or 'default'}: peak RSS {lo} -> {hi} frames {x:+.0%}  "
                f"[target within 10%: {'met' if abs(x) <= 0.10 else 'NOT met'}]"
            )
    if a.detector == "eiger_9m":
        top = max(r["peak_rss_mb"] for r in rows)
        if a.scheduler == "threads":  # one process holds every worker thread
            top = round(top / a.workers)
        print(
            f"9M peak RSS per worker {top} MB  "
            f"[target < 2.5 GB: {'met' if top < 2500 else 'NOT met'}]"
        )
    with open(a.json, "w") as fh:
        json.dump(
            dict(
                machine=dict(
                    node=platform.node(), cpus=os.cpu_count(), python=platform.python_version()
                ),
                settings=settings,
                workers=a.workers,
                rows=rows,
            ),
            fh,
            indent=1,
        )


if __name__ == "__main__":
    main()
