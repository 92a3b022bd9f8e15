"""Per-frame cost of each stage on one core, and their sum per output frame (the "stage limit").

    python benchmarks/bench_stages.py [--detector eiger_4m] [--frames 8]

Runs under the malloc settings of lbnl-compress' worker processes (``cluster.worker_environ``,
re-executing itself with them), so stages are timed as the workers run them.

Stages, per input frame unless said: bslz4 decode through h5py; raw chunk read + bitshuffle
decode outside HDF5; sum+bin (s=2, b=2, invalid/saturation flags); HCompress and JPEG-2000
round trips (per output frame); bslz4 encode and HDF5 write (per output frame). Each is
timed on one frame again and again, as the stage limit asks; then the same kernels run in a
plain loop over --stream-frames distinct frames, in chunks of 4 as the tasks get them (no
dask): the "streamed" figures show what a stream of new frames costs each step (memory
that is not in the caches). Prints a table and writes JSON. Timings depend on the machine:
these are figures, not tests.
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
from lbnl_dask.background import restore_totals
from lbnl_dask.bslz4 import BitshuffleLZ4
from lbnl_dask.cluster import worker_environ
from lbnl_dask.codecs import JPEG2000, HCompress
from lbnl_dask.eiger import open_dataset
from lbnl_dask.lossless import storage_codec
from lbnl_dask.roundtrip import _prepared, _special, decode_frames, encode_frames, hcompress_frames
from lbnl_dask.synth import make_dataset


def timeit(fn, repeat):
    fn()  # warm up
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def streamed(data, detector, nframes, chunk=4):
    """Seconds per output frame of each step of a task's work (``-b 2 -s 2 -H 12``, bslz4)
    over ``nframes`` distinct frames, in chunks of ``chunk`` input frames, without dask
    (the second of two passes: the files in the page cache, as a beamline's fresh data are)."""
    from lbnl_dask.eiger import FrameSource
    from lbnl_dask.writer import package_frames

    prefix = os.path.join(data, f"stream_{detector}_{nframes}")
    if not os.path.exists(prefix + "_master.h5"):
        make_dataset(prefix, detector, nframes=nframes, frames_per_file=nframes, dtype="uint32")
    ds = open_dataset(prefix + "_master.h5")
    ny, nx = ds.shape[1:]
    src = FrameSource(
        ds.blocks, ds.shape, ds.frames.dtype, pad=(ny % 2, nx % 2)
    )  # as padded_frames(2) reads
    mask, cutoff = ds.pixel_mask(), ds.meta.overload
    hc, bo = HCompress(scale=12), storage_codec("bslz4", None, "uint32")  # as the writer
    steps = dict.fromkeys(
        [
            "read + bitshuffle decode (zero-padded to even rows and columns)",
            "sum + bin, band by band (raw frames added into float32, markers)",
            "HCompress round trip (fill, H-transform in numpy, put back, restored totals)",
            "output type",
            "bslz4 encode (write task not included)",
        ],
        0.0,
    )
    names = list(steps)
    n = nframes - nframes % chunk
    for start in list(range(0, n, chunk)) * 2:  # a first pass to warm up, a second one timed
        if start == 0:
            steps = dict.fromkeys(names, 0.0)
        t = [time.perf_counter()]
        raw = src.read(start, start + chunk)
        t.append(time.perf_counter())
        g, py, px = chunk // 2, raw.shape[1], raw.shape[2]
        c = T._summed_binned_block(
            raw.reshape(g, 2, py // 2, 2, px // 2, 2), (1, 3, 5), mask, cutoff, np.float32, (ny, nx)
        )
        t.append(time.perf_counter())
        c = hcompress_frames(c, hc, None, True)  # as the pipeline runs it (no -q, totals kept)
        t.append(time.perf_counter())
        fin = T._finalize_block(c, np.uint32, cutoff * 8, True)
        t.append(time.perf_counter())
        package_frames(fin, None, bo)
        t.append(time.perf_counter())
        for k, (t0, t1) in zip(names, zip(t, t[1:], strict=False), strict=False):
            steps[k] += (t1 - t0) / (n // 2)
    return steps


def main():
    env = {k: str(v) for k, v in worker_environ(single_threaded=True).items()}
    if any(os.environ.get(k) != v for k, v in env.items()):  # malloc reads them at process start
        os.execve(sys.executable, [sys.executable] + sys.argv, {**os.environ, **env})
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--detector", default="eiger_4m")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument(
        "--stream-frames",
        type=int,
        default=48,
        help="distinct frames for the streamed loop (0: skip)",
    )
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
    mask = open_dataset(
        master
    ).pixel_mask()  # by reference, its flags cached per process, as in the workers
    ny, nx = d.shape[1:]
    two = np.pad(d[0:2], [(0, 0), (0, ny % 2), (0, nx % 2)])  # as the reader pads them
    bs = BitshuffleLZ4(dtype=str(d.dtype))
    n = a.repeat
    res = {}
    res["bslz4 decode, h5py (per input frame)"] = timeit(lambda: d[0], n)
    res["raw chunk read + bitshuffle decode (per input frame)"] = timeit(
        lambda: bs.decode(d.id.read_direct_chunk((0, 0, 0))[1]), n
    )

    def counts_sum_bin():
        # the numpy kernel that the dask tasks run (the graph itself is not timed)
        py, px = two.shape[1:]
        return T._summed_binned_block(
            two.reshape(1, 2, py // 2, 2, px // 2, 2), (1, 3, 5), mask, 12440, np.float32, (ny, nx)
        )

    def sum_bin():
        return T._finalize_block(counts_sum_bin(), np.uint32, 99520, True)

    res["sum+bin s2 b2, invalid/saturated markers, output type (per input frame)"] = (
        timeit(sum_bin, n) / 2
    )
    counts = counts_sum_bin()  # (1, ny/2, nx/2) with markers: what the lossy round trip takes
    out = sum_bin()[0]
    # the round trips as the pipeline runs them: gaps and saturated pixels filled with the
    # local background before encoding, put back after decoding
    # (roundtrip.encode_frames/decode_frames)
    res["HCompress round trip, scale 12, numpy H-transform as the pipeline (per output frame)"] = (
        timeit(lambda: hcompress_frames(counts, HCompress(scale=12), None, True), n)
    )
    decoded, special = hcompress_frames(counts, HCompress(scale=12))[0], _special(counts[0], None)
    res["  of which: restored totals, the compiled kernel (per output frame)"] = timeit(
        lambda: restore_totals(decoded.copy(), counts[0], special), n
    )
    res["  of which: the H-transform round trip without restored totals (per output frame)"] = (
        timeit(lambda: hcompress_frames(counts, HCompress(scale=12)), n)
    )
    for name, codec in (
        ("HCompress round trip, scale 12, astropy's codec as -q", HCompress(scale=12)),
        ("JPEG-2000 round trip, ratio 120", JPEG2000(ratio=120)),
    ):
        res[f"{name} (per output frame)"] = timeit(
            lambda codec=codec: decode_frames(counts, encode_frames(counts, codec), codec), n
        )
        special = _special(counts[0], None)
        ready = _prepared(counts[0], codec, special)
        res[f"{name}: the codec alone, on the filled frame"] = timeit(
            lambda codec=codec, ready=ready: codec.decode(codec.encode(ready)), n
        )
    bo = storage_codec("bslz4", None, "uint32")  # the writer's blocks
    res["bslz4 encode outside HDF5 (per output frame)"] = timeit(lambda: bo.encode(out), n)
    # into an open data file, one chunk per frame, as a write task does (files are per datablock)
    g = h5py.File(os.path.join(tempfile.mkdtemp(), "w.h5"), "w")
    shape, chunks = (n + 1,) + out.shape, (1,) + out.shape
    via_h5py = g.create_dataset(
        "h5py", shape=shape, dtype=out.dtype, chunks=chunks, **hdf5plugin.Bitshuffle(cname="lz4")
    )
    direct = g.create_dataset(
        "direct", shape=shape, dtype=out.dtype, chunks=chunks, **hdf5plugin.Bitshuffle(cname="lz4")
    )
    k = iter(range(2 * n + 2))
    res["bslz4 encode + HDF5 write, h5py (per output frame)"] = timeit(
        lambda: via_h5py.__setitem__(next(k) % (n + 1), out), n
    )
    res["bslz4 encode outside + write_direct_chunk (per output frame)"] = timeit(
        lambda: direct.id.write_direct_chunk((next(k) % (n + 1), 0, 0), bo.encode(out)), n
    )
    g.close()
    for k, v in res.items():
        print(f"{v * 1e3:9.2f} ms  {k}")
    per_out_h = (
        2 * res["raw chunk read + bitshuffle decode (per input frame)"]
        + 2 * res["sum+bin s2 b2, invalid/saturated markers, output type (per input frame)"]
        + res[
            "HCompress round trip, scale 12, numpy H-transform as the pipeline (per output frame)"
        ]
        + res["bslz4 encode outside + write_direct_chunk (per output frame)"]
    )
    print(
        f"stage limit -b 2 -s 2 -H 12: {per_out_h * 1e3:.1f} ms per output frame on one core = "
        f"{2 / per_out_h:.1f} input frames/s per core"
    )
    out_json = dict(
        machine=dict(node=platform.node(), cpus=os.cpu_count(), python=platform.python_version()),
        detector=a.detector,
        ms={k: round(v * 1e3, 3) for k, v in res.items()},
        stage_limit_b2s2h12_input_frames_per_s_per_core=round(2 / per_out_h, 2),
    )
    if a.stream_frames:
        steps = streamed(a.data, a.detector, a.stream_frames)
        total = sum(steps.values())
        print(
            f"streamed, -b 2 -s 2 -H 12, {a.stream_frames} distinct frames in chunks of 4, "
            "ms per output frame:"
        )
        for k, v in steps.items():
            print(f"{v * 1e3:9.2f} ms  {k}")
        print(
            f"streamed total: {total * 1e3:.1f} ms per output frame = "
            f"{2 / total:.1f} input frames/s per core "
            f"({per_out_h / total:.0%} of the stage limit)"
        )
        out_json["streamed_ms_per_output_frame"] = {k: round(v * 1e3, 3) for k, v in steps.items()}
        out_json["streamed_b2s2h12_input_frames_per_s_per_core"] = round(2 / total, 2)
    with open(a.json, "w") as fh:
        json.dump(out_json, fh, indent=1)


if __name__ == "__main__":
    main()
