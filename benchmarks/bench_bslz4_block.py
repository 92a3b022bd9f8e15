"""The bytes of the same output frames in bitshuffle blocks of several sizes.

    python benchmarks/bench_bslz4_block.py [--frames 8] [--backgrounds 0.02 0.2 1.5 6]

Each chunk of HDF5 filter 32008 (bslz4, bszstd) records its bitshuffle block size in its
header, and every decoder takes it from there (Neggia, durin, the HDF5 filter h5py and
DIALS load). The block is thus the writer's choice; :data:`lbnl_dask.layout.BSHUF_BLOCK` is
what lbnl_dask writes. This makes synthetic datasets over the background range (EIGER 4M
uint32 and EIGER2 9M uint16 geometries, module gaps included), compresses them with
``lbnl-compress`` (lossless -b 2 -s 2, -b 2 -s 2 -H 12, -b 1 -s 1) and stores their output
frames again in blocks of each size: the bytes against bitshuffle's default block (8 kB,
block 0), and the milliseconds per frame to encode and decode. Pixels are the same in every
case (checked). Not a test: it prints figures and writes JSON.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import h5py
import hdf5plugin  # noqa: F401  (the data files' filter)
import numpy as np

from lbnl_dask.bslz4 import BitshuffleLZ4
from lbnl_dask.layout import BSHUF_BLOCK, DATA
from lbnl_dask.lossless import BitshuffleZstd

BLOCKS = (0, 16384, 32768, 65536, 131072)
SETTINGS = {"b2s2": ["-b", "2", "-s", "2"], "b2s2h12": ["-b", "2", "-s", "2", "-H", "12"],
            "b1s1": ["-b", "1", "-s", "1"]}  # fmt: skip
DETECTORS = {"eiger_4m": "uint32", "eiger2_9m": "uint16"}


def _tool(name: str) -> str:
    return os.path.join(os.path.dirname(sys.executable), name)


def dataset(folder: str, detector: str, dtype: str, background: float, frames: int) -> str:
    prefix = os.path.join(folder, f"{detector}_{background:g}")
    if not os.path.exists(prefix + "_master.h5"):
        subprocess.run([_tool("lbnl-synth"), prefix, "--detector", detector, "--dtype", dtype,
                        "-n", str(frames), "--background", str(background)],
                       check=True, capture_output=True)  # fmt: skip
    return prefix + "_master.h5"


def sizes(frames: np.ndarray, make) -> list[dict]:
    """Per block size: bytes, encode and decode ms per frame, for the codec ``make(block)``."""
    rows = []
    for block in BLOCKS:
        codec = make(block)
        t0 = time.perf_counter()
        chunks = [codec.encode(f) for f in frames]
        t1 = time.perf_counter()
        back = [codec.decode(c) for c in chunks]
        t2 = time.perf_counter()
        assert all(np.array_equal(b.reshape(f.shape), f) for b, f in zip(back, frames, strict=True))
        rows.append(dict(block=block, bytes=sum(map(len, chunks)),
                         encode_ms=1e3 * (t1 - t0) / len(frames),
                         decode_ms=1e3 * (t2 - t1) / len(frames)))  # fmt: skip
    for r in rows:
        r["relative"] = round(r["bytes"] / rows[0]["bytes"], 4)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=8, help="input frames of each dataset")
    p.add_argument("--backgrounds", type=float, nargs="+", default=[0.02, 0.2, 1.5, 6.0])
    p.add_argument("--dir", default="/tmp/lbnl_bench_block")
    p.add_argument("--json", default="benchmarks/results_bslz4_block.json")
    a = p.parse_args(argv)
    os.makedirs(a.dir, exist_ok=True)
    results = []
    print(f"bytes against bitshuffle's default block (0); lbnl_dask writes {BSHUF_BLOCK}")
    print(f"{'dataset':22s} {'setting':8s} {'dtype':6s} codec  " +
          " ".join(f"{b:>7d}" for b in BLOCKS))  # fmt: skip
    for detector, dtype in DETECTORS.items():
        for bg in a.backgrounds:
            master = dataset(a.dir, detector, dtype, bg, a.frames)
            for name, opts in SETTINGS.items():
                out = os.path.join(a.dir, f"{detector}_{bg:g}_{name}")
                subprocess.run([_tool("lbnl-compress"), "-i", master, "-o", out, *opts,
                                "--overwrite", "--no-fidelity"], check=True,
                               capture_output=True)  # fmt: skip
                with h5py.File(out + "_000001.h5", "r") as f:
                    frames = f[DATA][()]
                for codec, make in (
                    ("bslz4", lambda b, t=frames.dtype: BitshuffleLZ4(t, b)),
                    ("bszstd", lambda b, t=frames.dtype: BitshuffleZstd(t, 3, b)),
                ):
                    rows = sizes(frames, make)
                    results.append(
                        dict(
                            detector=detector,
                            background=bg,
                            setting=name,
                            dtype=str(frames.dtype),
                            codec=codec,
                            blocks=rows,
                        )
                    )
                    print(
                        f"{detector + ' ' + format(bg, 'g'):22s} {name:8s} "
                        f"{str(frames.dtype):6s} {codec:6s} "
                        + " ".join(f"{r['relative']:7.3f}" for r in rows),
                        flush=True,
                    )
    with open(a.json, "w") as fh:
        json.dump(dict(blocks=BLOCKS, written=BSHUF_BLOCK, frames=a.frames, results=results),
                  fh, indent=1)  # fmt: skip
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
