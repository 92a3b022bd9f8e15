"""The error-bounded peers (SZ3, ZFP stored with their own HDF5 filters) against this
project's settings, on the same frames and judged by the same integrator (prints figures,
writes JSON).

    python benchmarks/bench_peers.py [--frames 40] [--backgrounds 0.2 1.5]

For each background a synthetic Eiger 4M with ground truth is made. It is summed and binned
-b 2 -s 2 losslessly (the reference). The peers store those frames as float32 with their
filter: the ratio counts their compressed bytes, and the fidelity is that of what they
decode. Ours run through ``lbnl-compress`` (integers, restored totals, bitshuffle-LZ4: what
XDS' plugins read). Both are judged by ``quality`` over every frame, overall and per
resolution shell, with the explorer's criteria (``explore_results.acceptable``).
"""

import argparse
import json
import os
import platform
import tempfile

import dask.array as da
import numpy as np

from lbnl_dask import compress
from lbnl_dask import quality as Q
from lbnl_dask.errorbound import SZ3, ZFP
from lbnl_dask.explore import _shell_dict
from lbnl_dask.explore_results import acceptable
from lbnl_dask.roundtrip import _prepared, _special
from lbnl_dask.shells import Geometry
from lbnl_dask.synth import Experiment, make_dataset

OURS = {
    "b2s2h12": dict(hcomp_scale=12),
    "b2s2j720k5": dict(j2k_ratio=720, keep_spots=5.0),
    "b2s2h64k3": dict(hcomp_scale=64, keep_spots=3.0),
    "b2s2sz8": dict(sz3_bound=8.0),
}


def peer_frames(ref: np.ndarray, codec):
    """What a peer stores and decodes: each frame's markers filled as the codecs' input
    is (the filters know no NaN), the filter's bytes, the decoded frame with the markers
    put back. Returns (decoded (n, ny, nx) float64, total bytes)."""
    out, nbytes = np.empty_like(ref), 0
    for i, frame in enumerate(ref):
        special = _special(frame, None)
        stream = codec.encode(_prepared(frame, codec, special))
        nbytes += len(stream) - 22  # the filter's chunk, without our 22-byte header
        out[i] = codec.decode(stream)
        out[i].reshape(-1)[special] = frame.reshape(-1)[special]
    return out, nbytes


def row(name, ratio, fid: Q.Fidelity) -> dict:
    o = fid.overall
    r = dict(setting=name, ratio_raw2=ratio, n=o.n, cc=o.cc, mean_ratio=o.mean_ratio,
             i_sigma_ref=o.i_sigma_ref, i_sigma_out=o.i_sigma_out,
             background_ratio=o.background_ratio,
             shells=[_shell_dict(sh) for sh in fid.shells])  # fmt: skip
    r["acceptable"] = acceptable(r)
    return r


def show(r):
    worst = min(r["shells"], key=lambda sh: sh["mean_ratio"], default=None)
    tail = f"  worst shell I {worst['mean_ratio']:.3f} CC {worst['cc']:.3f}" if worst else ""
    print(
        f"  {r['setting']:14s} {r['ratio_raw2']:8.1f}x  CC {r['cc']:.4f}  I {r['mean_ratio']:.3f}"
        f"  bg {r['background_ratio']:.3f}{tail}  {'acceptable' if r['acceptable'] else ''}"
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--detector", default="eiger_4m")
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--backgrounds", type=float, nargs="+", default=[0.2, 1.5])
    p.add_argument("--sz3", type=float, nargs="+", default=[2, 4, 8])
    p.add_argument("--zfp", type=float, nargs="+", default=[8, 16])
    p.add_argument("--json", default=os.path.join(os.path.dirname(__file__),
                                                  "results_peers.json"))  # fmt: skip
    a = p.parse_args()
    results = dict(machine=platform.platform(), frames=a.frames, data={})
    with tempfile.TemporaryDirectory() as tmp:
        for bg in a.backgrounds:
            exp = Experiment(background=bg, background_floor=min(0.1, bg / 10))
            master = make_dataset(os.path.join(tmp, f"bg{bg}"), a.detector, a.frames,
                                  frames_per_file=a.frames, experiment=exp)  # fmt: skip
            run = Q.RunGeometry(1, a.frames, 2, 2)
            box = Q.Shoebox.for_run(run)
            ref_d, _ = Q.reference_counts(master, run, chunk_frames=a.frames)
            ref = ref_d.compute(scheduler="threads")
            refl = Q.truth_reflections(master, run)
            refl = refl[(refl["frame"] > -0.5) & (refl["frame"] < ref.shape[0] - 0.5)]
            geo = Geometry.of_meta(Q.read_meta(master), 2)
            raw2 = a.frames * int(np.prod(Q.read_meta(master).ny * Q.read_meta(master).nx)) * 2
            ref_da = da.from_array(ref, chunks=(4, -1, -1))
            rows = []
            print(f"background {bg} counts/pixel/frame near the beam, {a.frames} frames:")
            peers = [(f"peer SZ3 {e:g}", SZ3(e)) for e in a.sz3]
            peers += [(f"peer ZFP {e:g}", ZFP(e)) for e in a.zfp]
            for name, codec in peers:
                out, nbytes = peer_frames(ref, codec)
                fid = Q.compare(ref_da, da.from_array(out, chunks=(4, -1, -1)), refl, box,
                                geometry=geo)  # fmt: skip
                rows.append(row(name, raw2 / nbytes, fid))
                show(rows[-1])
            for name, opts in OURS.items():
                rep = compress(master, os.path.join(tmp, f"o{bg}_{name}"), bin_range=2,
                               sum_range=2, scheduler="threads", fidelity=False,
                               **opts)  # fmt: skip
                fid = Q.fidelity(master, rep.master)
                rows.append(row(name, rep.ratio_raw2, fid))
                show(rows[-1])
            results["data"][str(bg)] = rows
    with open(a.json, "w") as fh:
        json.dump(results, fh, indent=1, default=float)
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
