"""Where the ratio comes from at each background: the best acceptable setting at each sum
(-s 2, 4, 8, 16 at -b 2), judged by the explorer's criteria (prints the tables, writes JSON).

    python benchmarks/bench_sums.py [--frames 192] [--backgrounds 0.02 0.2 1.5 6]

For each background a synthetic Eiger 4M with ground truth is made (a rocking curve of
sigma 0.09 deg on 0.1 deg frames), and ``lbnl-explore``'s machinery runs lossless,
HCompress 64 and JPEG-2000 720, each plain and with --keep-spots 3 and 5, on 2 windows of
64 frames. Each setting is compared with the lossless sum+bin *of its own sum*: what summing
more frames costs by itself (each output frame spans s x 0.1 deg of rotation) is not judged
here; the ``n`` and ``I/sigma before`` of each sum's lossless row show the same reflections
integrated at that sampling (the shoebox spans about +-3 input frames, at least +-1 output
frame).
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


def judge(name, master, sums, windows, frames) -> dict:
    """The grid's rows on ``master`` and, per sum, its lossless row and best acceptable one."""
    settings = E.grid(bins=(2,), sums=sums, hcomp=(64,), j2k=(720,), keep=(0, 3, 5), sz3=(),
                      zfp=(), sz3_filter=())  # fmt: skip
    rows = E.explore(master, settings, n_windows=windows, window_frames=frames)
    print(f"\n{name}:")
    print(R.table(rows))
    print(R.describe_best(rows))
    per_sum = {}
    print(f"{'sum':>4} {'lossless':>9} {'n':>5} {'I/sig':>6}  best acceptable")
    for s in sums:
        mine = [r for r in rows if r["sum"] == s]
        lossless = next(r for r in mine if r["codec"] == "none")
        best = R.best_setting(mine)
        per_sum[s] = dict(
            lossless_ratio=lossless["ratio_raw2"],
            n=lossless["n"],
            i_sigma=lossless["i_sigma_ref"],
            best=None if best is None else best["setting"],
            best_ratio=None if best is None else best["ratio_raw2"],
        )
        tail = "none" if best is None else f"{best['setting']} {best['ratio_raw2']:.1f}x"
        print(f"{s:4d} {lossless['ratio_raw2']:8.1f}x {lossless['n']:5d} "
              f"{lossless['i_sigma_ref']:6.1f}  {tail}")  # fmt: skip
    best = R.best_setting(rows)
    return dict(rows=rows, per_sum=per_sum, best=None if best is None else best["setting"])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=192)
    p.add_argument("--backgrounds", type=float, nargs="+", default=[0.02, 0.2, 1.5, 6])
    p.add_argument("--sums", type=int, nargs="+", default=[2, 4, 8, 16])
    p.add_argument("--json", default=str(HERE / "results_sums.json"))
    a = p.parse_args()
    results = dict(machine=platform.platform(), frames=a.frames, windows="2 x 64", data={})
    with tempfile.TemporaryDirectory() as tmp:
        for bg in a.backgrounds:
            exp = Experiment(background=bg, background_floor=bg / 10)
            master = make_dataset(os.path.join(tmp, f"bg{bg}"), "eiger_4m", a.frames,
                                  frames_per_file=100, dtype="uint32", experiment=exp)  # fmt: skip
            results["data"][f"4M, {bg:g} counts/px/frame"] = judge(
                f"synthetic 4M, background {bg:g} counts/pixel/frame near the beam", master,
                tuple(a.sums), 2, 64)  # fmt: skip
            with open(a.json, "w") as fh:  # after each dataset: a long run keeps what it did
                json.dump(results, fh, indent=1, default=float)
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
