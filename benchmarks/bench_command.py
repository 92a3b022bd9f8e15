"""The whole `lbnl-compress` command, start-up included, against the published tool's times.

    python benchmarks/bench_command.py [--frames 400] [--background 1.5] [--workers 1 2]

Makes (once, in --dir) a synthetic Eiger 4M dataset (uint32) whose background is about
--background counts/pixel/frame near the beam, then times the command as a user runs it
(a new process: imports, the cluster's start, the run, the master) for each setting, run
length, scheduler and worker count, and prints input frames/s beside the published tool's
figures measured on the same kind of data and machine (l_bnl_compress revision 133b8b3,
2 cores: b2s2h12 68.2 s for 400 frames and 18.7 s for 100; b2s2j120 ~110 s for 400).
Not a test: timings depend on the machine. Writes JSON (--json).

With --published PATH (a copy of l_bnl_compress.py, and --published-python, an interpreter
with its imports: h5py, hdf5plugin, astropy, glymur, scikit-image, tifffile, pillow), the
published tool runs too, in turns with lbnl-compress (one process at a time, same data,
same -d), and the speed-up is measured rather than taken from the figures above. Revision
133b8b3 stops with a NameError (``dSsaturation_value``) after the master on any master that
holds detectorSpecific/saturation_value, as this benchmark's data does: time a copy with
that one name corrected (``dS_saturation_value``), as the README's figures did. It also
stops (``np.asaary``, line 1301, in ``conv_pixel_mask``) where both sides of the pixel mask
divide by -b (EIGER2 4M's 2068 x 2162, say); this benchmark's 2070 x 2167 frames do not.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

from lbnl_dask.synth import Experiment, make_dataset

#: The published tool's whole-command seconds on this kind of data (2 cores).
PUBLISHED = {("b2s2h12", 400): 68.2, ("b2s2h12", 100): 18.7, ("b2s2j120", 400): 110.0}
SETTINGS = {
    "b2s2h12": ["-b", "2", "-s", "2", "-H", "12"],
    "b2s2j120": ["-b", "2", "-s", "2", "-J", "120"],
}


def dataset(folder: str, frames: int, background: float) -> str:
    prefix = os.path.join(folder, f"bg{background:g}_{frames}")
    master = prefix + "_master.h5"
    if not os.path.exists(master):
        print(f"making {frames} frames of a synthetic Eiger 4M (background {background:g})")
        exp = Experiment(background=background, background_floor=background / 10)
        make_dataset(prefix, "eiger_4m", nframes=frames, frames_per_file=100, dtype="uint32",
                     experiment=exp)  # fmt: skip
    return master


def run(master, out, setting, frames, scheduler, workers) -> float:
    exe = os.path.join(os.path.dirname(sys.executable), "lbnl-compress")
    cmd = [exe, "-i", master, "-o", out, "-N", str(frames), "-d", "100", *SETTINGS[setting],
           "--scheduler", scheduler, "-p", str(workers), "--overwrite"]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def run_published(script, python, master, out, setting, frames) -> float:
    """Seconds the published tool takes for the same command (its temporary files go to the
    output folder, where it is started)."""
    folder = os.path.dirname(out)
    os.makedirs(folder, exist_ok=True)
    cmd = [python, os.path.abspath(script), "-i", os.path.abspath(master), "-o",
           os.path.basename(out), "-N", str(frames), "-d", "100", *SETTINGS[setting],
           "-c", "bslz4"]  # fmt: skip
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    sec = time.perf_counter() - t0
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise SystemExit(f"the published tool failed ({script}): {last}")
    return sec


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=400)
    p.add_argument("--short", type=int, default=100, help="the short run's frames (0: none)")
    p.add_argument("--background", type=float, default=1.5)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--schedulers", nargs="+", default=["processes", "threads"])
    p.add_argument("--settings", nargs="+", default=list(SETTINGS))
    p.add_argument("--repeat", type=int, default=2, help="runs of each; the fastest counts")
    p.add_argument("--published", help="l_bnl_compress.py to time in turns with ours")
    p.add_argument("--published-python", default=sys.executable,
                   help="the interpreter that runs --published")  # fmt: skip
    p.add_argument("--dir", default="/tmp/lbnl_bench_command")
    p.add_argument("--json", default="benchmarks/results_command.json",
                   help="updated in place: its other records are kept")  # fmt: skip
    a = p.parse_args(argv)
    os.makedirs(a.dir, exist_ok=True)
    master = dataset(a.dir, a.frames, a.background)
    rows, published = [], {}
    for setting in a.settings:
        for frames in [n for n in (a.frames, a.short) if n > 0]:  # --short 0: no short run
            for scheduler in a.schedulers:
                for w in a.workers:
                    out = os.path.join(a.dir, "out", setting)
                    # the published tool in turns with the first of our runs of each setting
                    # and length: the machine's drift hits both
                    theirs = published.setdefault((setting, frames), [])
                    pub = a.published and not theirs
                    pub_out = os.path.join(a.dir, "out_published", setting)
                    pub_args = (a.published, a.published_python, master, pub_out, setting, frames)
                    ours = []
                    for _ in range(a.repeat):
                        if pub:
                            theirs.append(run_published(*pub_args))
                        ours.append(run(master, out, setting, frames, scheduler, w))
                    sec = min(ours)
                    ref = min(theirs) if theirs else PUBLISHED.get((setting, frames))
                    row = dict(setting=setting, frames=frames, scheduler=scheduler, workers=w,
                               seconds=round(sec, 2), frames_per_s=round(frames / sec, 1),
                               published_s=None if ref is None else round(ref, 2),
                               published_measured=bool(theirs),
                               runs=[round(t, 2) for t in ours],
                               published_runs=[round(t, 2) for t in theirs],
                               speedup=None if ref is None else round(ref / sec, 1))  # fmt: skip
                    row["published_in_turns"] = bool(pub)
                    rows.append(row)
                    save(a, rows)  # after each row: a later failure keeps what was measured
                    vs = (
                        ""
                        if ref is None
                        else f"  {ref / sec:4.1f}x the published tool"
                        + ("" if theirs else " (its figure recorded on another machine)")
                    )
                    print(f"{setting:9s} {frames:4d} frames {scheduler:9s} {w} worker(s): "
                          f"{sec:6.2f} s {frames / sec:6.1f} frames/s{vs}", flush=True)  # fmt: skip
    return 0


def save(a, rows) -> None:
    """The rows into --json, beside what the file holds already (earlier sessions' records)."""
    record = {}
    if os.path.exists(a.json):
        with open(a.json) as fh:
            record = json.load(fh)
    record.update(machine=platform.platform(), cpus=os.cpu_count(), background=a.background,
                  published=a.published, published_python=a.published and a.published_python,
                  rows=rows)  # fmt: skip
    with open(a.json, "w") as fh:
        json.dump(record, fh, indent=1)


if __name__ == "__main__":
    sys.exit(main())
