"""Frames stored with SZ3's own filter (``-c sz3``) beside the round trips XDS reads, judged
by the explorer's criteria (prints the tables, writes JSON).

    python benchmarks/bench_sz3_storage.py [--frames 60] [--backgrounds 0.2 1.5]

For each background a synthetic Eiger 4M with ground truth is made, and ``lbnl-explore``'s
machinery runs a small grid on 3 windows of 20 frames: lossless, HCompress 64 and
JPEG-2000 720 (plain and with --keep-spots), and ``-c sz3`` at bounds 1, 2, 4 and 8, at
-b 2 and -s 2 and 4. The real L-cysteine PILATUS frames (``../shared/realdata``) are
added when present (one window of 12 frames, -s 2 and 3). What a reader decodes from
``-c sz3`` is judged: pixels decoded negative are invalid (as DIALS masks them), so the
reflections whose box holds one are lost (the ``lost`` column, at most 2% acceptable).
"""

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

from lbnl_dask import explore as E
from lbnl_dask import explore_results as R
from lbnl_dask.synth import Experiment, make_dataset

HERE = Path(__file__).resolve().parent
LCYS = Path(os.environ.get("LBNL_REALDATA", HERE.parent.parent / "shared" / "realdata"))
LCYS = LCYS / "dials-l-cysteine" / "l-cyst_01_00001.cbf.gz"


def judge(name, master, sums, keep, bounds, windows, frames) -> dict:
    """The grid's rows on ``master``, printed with the best settings; the record."""
    settings = E.grid(bins=(2,), sums=sums, hcomp=(64,), j2k=(720,), keep=(0, keep), sz3=(),
                      zfp=(), sz3_filter=bounds)  # fmt: skip
    rows = E.explore(master, settings, n_windows=windows, window_frames=frames)
    print(f"\n{name}:")
    print(R.table(rows))
    print(R.describe_best(rows))
    best, anyone = R.best_setting(rows), R.best_setting(rows, xds=False)
    return dict(
        rows=rows,
        best_xds=None if best is None else best["setting"],
        best_any=None if anyone is None else anyone["setting"],
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--backgrounds", type=float, nargs="+", default=[0.2, 1.5])
    p.add_argument("--bounds", type=float, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--json", default=str(HERE / "results_sz3_storage.json"))
    a = p.parse_args()
    results = dict(machine=platform.platform(), frames=a.frames, data={})
    with tempfile.TemporaryDirectory() as tmp:
        for bg in a.backgrounds:
            exp = Experiment(background=bg, background_floor=bg / 10)
            master = make_dataset(os.path.join(tmp, f"bg{bg}"), "eiger_4m", a.frames,
                                  frames_per_file=a.frames, experiment=exp)  # fmt: skip
            results["data"][f"4M, {bg} counts/px/frame"] = judge(
                f"synthetic 4M, background {bg} counts/pixel/frame near the beam", master,
                (2, 4), 5, a.bounds, 3, 20)  # fmt: skip
    if LCYS.exists():
        results["data"]["PILATUS 2M L-cysteine"] = judge(
            "PILATUS 2M, L-cysteine (real frames)", str(LCYS), (2, 3), 5, a.bounds, 1, 12
        )
    else:
        print(f"\n(real L-cysteine frames not found at {LCYS}: skipped)")
    with open(a.json, "w") as fh:
        json.dump(results, fh, indent=1, default=float)
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
