"""``python -m lbnl_dask.warm``: compile the numba kernels once, for the frame types runs meet.

numba compiles a kernel the first time it sees a new combination of argument types, and
caches it on disk beside :mod:`lbnl_dask.kernels`. A first run on uint16 frames, or on
uint32 frames whose master gives no saturation value (sums in float64), would otherwise
spend seconds compiling before its first frame. The set-up (``run.sh``) runs this once per
install: the real pipeline on tiny synthetic datasets, so the kernels compile for exactly
the types real runs give them. Prints one line; a second call takes a few seconds.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

#: (input pixel type, options): uint16 and uint32 frames, sums in float32 and (scaled far
#: beyond float32's exact range, as uint32 frames without a saturation value are) float64,
#: and each codec's input type (HCompress int32, JPEG-2000 uint16, SZ3 float32).
RUNS = (
    ("uint16", dict(bin_range=2, sum_range=2, hcomp_scale=12)),
    ("uint32", dict(bin_range=2, sum_range=2, hcomp_scale=12)),
    ("uint32", dict(bin_range=1, sum_range=1, hcomp_scale=12, keep_spots=5.0)),
    ("uint32", dict(bin_range=2, sum_range=2, j2k_ratio=120, keep_spots=5.0)),
    ("uint16", dict(bin_range=2, sum_range=2, sz3_bound=2.0)),
    ("uint32", dict(bin_range=2, sum_range=2, hcomp_scale=12, scale_factor=1000.0, keep_spots=5.0)),
)


def warm(folder: str) -> int:
    """Run :data:`RUNS` on tiny datasets written in ``folder``; returns how many ran."""
    from .pipeline import compress
    from .synth import make_dataset

    masters = {}
    for i, (dtype, options) in enumerate(RUNS):
        if dtype not in masters:
            masters[dtype] = make_dataset(os.path.join(folder, dtype), "tiny", nframes=4,
                                          frames_per_file=4, dtype=dtype)  # fmt: skip
        compress(masters[dtype], os.path.join(folder, f"o{i}"), scheduler="sync", **options)
    _warm_keep_within()
    return len(RUNS)


def _warm_keep_within() -> None:
    """The bound-keeping pass after SZ3/ZFP runs only where a pixel left the bound, which
    the tiny runs may not meet: compiled here for the float types the sums come in."""
    import numpy as np

    from .background import keep_within

    for dtype in (np.float32, np.float64):
        original = np.zeros((8, 8), dtype)
        decoded = original.copy()
        decoded[0, 0], decoded[0, 1] = 5, -5  # outside a bound of 2, the cell's total kept
        keep_within(decoded, original, np.ones((8, 8), bool), 2.0)


def main() -> int:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lbnl_warm_") as tmp:
        n = warm(tmp)
    print(f"lbnl_dask: numba kernels ready for {n} kind(s) of run "
          f"({time.perf_counter() - t0:.1f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
