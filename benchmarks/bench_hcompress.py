"""HCompress round trip per frame: astropy's codec against lbnl_dask.hcompress_fast.

    python benchmarks/bench_hcompress.py [--scale 12] [--repeat 15] [--shape 1084 1035]

Times ``HCompress(scale).decode(HCompress(scale).encode(frame))`` (astropy's C codec, tile by
tile under its lock) and ``hcompress_fast.roundtrip_frame(frame, scale)`` (numpy) on one
Poisson frame (background ~1.5 counts, a few strong spots), checks that both give the same
pixels, and prints the median milliseconds per frame and the speed-up. One thread; timings
depend on the machine (and on what else runs on it): figures, not tests.
"""

import argparse
import platform

import numpy as np
from bench_stages import timeit  # the median of repeated runs, after a warm-up (seconds)

from lbnl_dask.codecs import HCompress
from lbnl_dask.hcompress_fast import roundtrip_frame


def make_frame(shape, background=1.5, spots=40, seed=0):
    """An Eiger-like frame: Poisson background and ``spots`` 5x5 Bragg-like spots."""
    rng = np.random.default_rng(seed)
    frame = rng.poisson(background, shape).astype(np.int32)
    yy, xx = np.mgrid[-2:3, -2:3]
    blob = np.exp(-(yy**2 + xx**2) / 2.0)
    for _ in range(spots):
        y, x = rng.integers(0, shape[0] - 5), rng.integers(0, shape[1] - 5)
        peak = rng.uniform(50, 1e5)
        frame[y : y + 5, x : x + 5] += rng.poisson(peak * blob).astype(np.int32)
    return frame


def median_ms(fn, repeat):
    return 1e3 * timeit(fn, repeat)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=int, default=12, help="HCompress scale (default 12)")
    p.add_argument("--repeat", type=int, default=15, help="timed runs of each (default 15)")
    p.add_argument("--shape", type=int, nargs=2, default=[1084, 1035], metavar=("NY", "NX"))
    a = p.parse_args(argv)
    frame = make_frame(tuple(a.shape))
    codec = HCompress(a.scale)
    same = np.array_equal(codec.decode(codec.encode(frame)), roundtrip_frame(frame, a.scale))
    t_astropy = median_ms(lambda: codec.decode(codec.encode(frame)), a.repeat)
    t_numpy = median_ms(lambda: roundtrip_frame(frame, a.scale), a.repeat)
    print(f"{platform.processor() or platform.machine()}, numpy {np.__version__}")
    print(f"frame {a.shape[0]}x{a.shape[1]}, scale {a.scale}, pixel-identical: {same}")
    print(f"astropy HCompress1 encode+decode: {t_astropy:7.1f} ms/frame")
    print(f"hcompress_fast.roundtrip_frame:   {t_numpy:7.1f} ms/frame")
    print(f"speed-up: {t_astropy / t_numpy:.1f}x")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
