"""Per-frame cost of each stage on one core, and their sum per output frame (the "stage limit").

    python benchmarks/bench_stages.py [--detector eiger_4m] [--frames 8]

Runs under the malloc settings of lbnl-compress' worker processes (``cluster.worker_environ``,
re-executing itself with them), so stages are timed as the workers run them.

Stages, per input frame unless said: bslz4 decode through h5py; raw chunk read + bitshuffle
decode outside HDF5; sum+bin (s=2, b=2, invalid/saturation flags); HCompress and JPEG-2000
round trips (per output frame); bslz4 encode and HDF5 write (per output frame). Prints a
table and writes JSON. Timings depend on the machine: these are figures, not tests.
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time

import h5py
import hdf5plugin
import numpy as np

from lbnl_dask import transform as T
from lbnl_dask.cluster import worker_environ
from lbnl_dask.codecs import BitshuffleLZ4, HCompress, JPEG2000
from lbnl_dask.synth import make_dataset


def timeit(fn, repeat):
    fn()  # warm up
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def main():
    env = {k: str(v) for k, v in worker_environ(single_threaded=True).items()}
    if any(os.environ.get(k) != v for k, v in env.items()):  # malloc reads them at process start
        os.execve(sys.executable, [sys.executable] + sys.argv, {**os.environ, **env})
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--detector", default="eiger_4m")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "lbnl_bench"))
    p.add_argument("--json", default="benchmarks/results_stages.json")
    a = p.parse_args()
    os.makedirs(a.data, exist_ok=True)
    prefix = os.path.join(a.data, f"stages_{a.detector}")
    master = prefix + "_master.h5"
    if not os.path.exists(master):
        make_dataset(prefix, a.detector, nframes=a.frames, frames_per_file=a.frames, dtype="uint32")
    data_file = prefix + "_data_000001.h5"
    f = h5py.File(data_file, "r")
    d = f["/entry/data/data"]
    mask = h5py.File(master, "r")["/entry/instrument/detector/detectorSpecific/pixel_mask"][()]
    two = d[0:2]
    bs = BitshuffleLZ4(dtype=str(d.dtype))
    n = a.repeat
    res = {}
    res["bslz4 decode, h5py (per input frame)"] = timeit(lambda: d[0], n)
    res["raw chunk read + bitshuffle decode (per input frame)"] = timeit(
        lambda: bs.decode(d.id.read_direct_chunk((0, 0, 0))[1]), n)

    def sum_bin():
        # the numpy kernels that the dask tasks run, in order (the graph itself is not timed)
        c = T._counts_block(two, mask, 12440, np.float32)
        c = T.block_sum(c.reshape((1, 2) + c.shape[1:]), 1)
        py, px = -c.shape[1] % 2, -c.shape[2] % 2
        c = np.pad(c, [(0, 0), (0, py), (0, px)])
        c = T.block_sum(c.reshape(1, c.shape[1] // 2, 2, c.shape[2] // 2, 2), (2, 4))
        return T._finalize_block(c, np.uint32, 99520)

    res["sum+bin s2 b2, invalid/saturated markers, output type (per input frame)"] = timeit(sum_bin, n) / 2
    out = sum_bin()[0]
    hc = HCompress(scale=12)
    res["HCompress round trip, scale 12 (per output frame)"] = timeit(lambda: hc.decode(hc.encode(out.astype(np.int32))), n)
    jk = JPEG2000(ratio=120)
    o16 = np.clip(out, 0, 65535).astype(np.uint16)
    res["JPEG-2000 round trip, ratio 120 (per output frame)"] = timeit(lambda: jk.decode(jk.encode(o16)), n)
    bo = BitshuffleLZ4(dtype="uint32")
    res["bslz4 encode outside HDF5 (per output frame)"] = timeit(lambda: bo.encode(out), n)
    tmp = os.path.join(tempfile.mkdtemp(), "w.h5")

    def write_h5py():
        with h5py.File(tmp, "w") as g:
            g.create_dataset("d", data=out[None], chunks=(1,) + out.shape, **hdf5plugin.Bitshuffle(cname="lz4"))

    def write_direct():
        enc = bo.encode(out)
        with h5py.File(tmp, "w") as g:
            ds = g.create_dataset("d", shape=(1,) + out.shape, dtype=out.dtype, chunks=(1,) + out.shape,
                                  **hdf5plugin.Bitshuffle(cname="lz4"))
            ds.id.write_direct_chunk((0, 0, 0), enc)

    res["bslz4 encode + HDF5 write, h5py (per output frame)"] = timeit(write_h5py, n)
    res["bslz4 encode outside + write_direct_chunk (per output frame)"] = timeit(write_direct, n)
    for k, v in res.items():
        print(f"{v * 1e3:9.2f} ms  {k}")
    per_out_h = (2 * res["raw chunk read + bitshuffle decode (per input frame)"] + 2 * res["sum+bin s2 b2, invalid/saturated markers, output type (per input frame)"]
                 + res["HCompress round trip, scale 12 (per output frame)"]
                 + res["bslz4 encode outside + write_direct_chunk (per output frame)"])
    print(f"stage limit -b 2 -s 2 -H 12: {per_out_h * 1e3:.1f} ms per output frame on one core = "
          f"{2 / per_out_h:.1f} input frames/s per core")
    out_json = dict(machine=dict(node=platform.node(), cpus=os.cpu_count(), python=platform.python_version()),
                    detector=a.detector, ms={k: round(v * 1e3, 3) for k, v in res.items()},
                    stage_limit_b2s2h12_input_frames_per_s_per_core=round(2 / per_out_h, 2))
    with open(a.json, "w") as fh:
        json.dump(out_json, fh, indent=1)


if __name__ == "__main__":
    main()
