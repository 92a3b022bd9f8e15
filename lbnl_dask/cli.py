"""``lbnl-compress``: the command line, with the option names of l_bnl_compress.py kept.

Errors in the input or options print one line ``lbnl-compress: error: <file>: <problem>``
and exit with status 2, without a traceback; nothing that looks complete is left behind.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys

from . import __version__
from .cluster import SlurmOptions, console, one_openmp_thread, slurm_job_script, stop_on_sigterm
from .errors import Interrupted, LbnlDaskError
from .options import KEEP_SPOTS_SIGMA, option_names, split_options
from .pipeline import compress
from .writer import COMPRESSIONS, XDS_READABLE

VERSION = f"lbnl_dask-{__version__} (l_bnl_compress-1.1.4-30May25 options)"

# options whose value may be negative: "-u -2" is joined to "-u=-2" before argparse sees it
_TAKES_VALUE = {
    "-u",
    "--uint",
    "-f",
    "--float",
    "-S",
    "--scale",
    "-l",
    "--compression_level",
    "-H",
    "--Hcompress",
    "-J",
    "--J2K",
    "-K",
    "--J2K2",
    "-L",
    "--logarithm",
    "-X",
    "--exponential",
    "-N",
    "--last_image",
    "-1",
    "--first_image",
    "-b",
    "--bin",
    "-s",
    "--sum",
    "-d",
    "--data_block_size",
    "-p",
    "--parallel",
    "--keep-spots",
    "--keep-grow",
    "--keep-frames",
}
_NEGATIVE = re.compile(r"^-\d+(\.\d*)?$|^-\.\d+$")


def join_negative_values(argv: list[str]) -> list[str]:
    """``["-u", "-2"]`` -> ``["-u=-2"]`` for options that take a value, as l_bnl_compress
    accepted them."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a in _TAKES_VALUE and i + 1 < len(argv) and _NEGATIVE.match(argv[i + 1]):
            out.append(f"{a}={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lbnl-compress",
        description="Bin and sum images from a range "
        "(l_bnl_compress-compatible, parallel with dask). "
        "Writes <out>_NNNNNN.h5 data files and <out>_master.h5 that XDS and DIALS read.",
        epilog="Negative values may be written '-u -2' or '-u=-2'. "
        "Defaults differ from l_bnl_compress "
        "where l_bnl_compress had a bug: -c bslz4, output type sized to the saturation value.",
    )
    a = p.add_argument
    a(
        "-1",
        "--first_image",
        type=int,
        nargs="?",
        const=1,
        default=1,
        help="first input image, 1-based (default 1)",
    )
    a(
        "-N",
        "--last_image",
        type=int,
        default=None,
        help="last input image, inclusive (default: the last)",
    )
    a(
        "-b",
        "--bin",
        dest="bin_range",
        type=int,
        nargs="?",
        const=1,
        default=1,
        help="bin b x b pixels (sum)",
    )
    a(
        "-s",
        "--sum",
        dest="sum_range",
        type=int,
        nargs="?",
        const=1,
        default=1,
        help="sum s consecutive frames",
    )
    a(
        "-d",
        "--data_block_size",
        type=int,
        nargs="?",
        const=100,
        default=100,
        help="output frames per data file (100)",
    )
    a(
        "-c",
        "--compression",
        nargs="?",
        const="zstd",
        default="bslz4",
        help="lossless filter: bslz4 (default; XDS and DIALS read it), bszstd, bshuf, "
        "zstd (Blosc-zstd), none; or sz3: LOSSY, SZ3's own filter at --sz3's bound, int32 "
        "(DIALS reads it, XDS' Neggia does not)",
    )
    a(
        "-l",
        "--compression_level",
        type=int,
        default=None,
        help="level for bszstd (1-22) or zstd (0-9)",
    )
    a(
        "-H",
        "--Hcompress",
        dest="hcomp_scale",
        type=int,
        default=None,
        help="HCompress round trip, scale in counts (0 = lossless)",
    )
    a(
        "-J",
        "--J2K",
        dest="j2k_ratio",
        type=float,
        default=None,
        help="JPEG-2000 round trip, target ratio (> 1)",
    )
    a(
        "-K",
        "--J2K2",
        dest="j2k_alt_ratio",
        type=float,
        default=None,
        help="JPEG-2000 round trip with l_bnl_compress' -K ratio ladder "
        "(in memory; no external tools)",
    )
    a(
        "--sz3",
        dest="sz3_bound",
        type=float,
        default=None,
        metavar="BOUND",
        help="SZ3 round trip (hdf5plugin's filter, in memory), absolute error bound in counts; "
        "stored as integers with -c like the other round trips (with -c sz3: the bound of "
        "SZ3's own filter, no round trip)",
    )
    a(
        "--zfp",
        dest="zfp_accuracy",
        type=float,
        default=None,
        metavar="ACCURACY",
        help="ZFP round trip (fixed accuracy, in counts), as --sz3",
    )
    a(
        "--j2k-reversible",
        action="store_true",
        help="5/3 wavelet and ratio ladder of l_bnl_compress (default: 9/7, one ratio)",
    )
    a(
        "--keep-spots",
        type=float,
        nargs="?",
        const=KEEP_SPOTS_SIGMA,
        default=None,
        metavar="SIGMA",
        help="store the neighbourhoods of Bragg spots exactly, "
        "the rest through the lossy round trip: pixels whose "
        "3x3 sum is SIGMA (default 5) Poisson sigmas above the local background, "
        "grown by --keep-grow pixels "
        "and --keep-frames frames (an extension of l_bnl_compress)",
    )
    a("--keep-grow", type=int, default=None,
      help="with --keep-spots: output pixels kept around each strong pixel (3)")  # fmt: skip
    a(
        "--keep-frames",
        type=int,
        default=None,
        help="with --keep-spots: output frames kept before and after each strong pixel (2)",
    )
    a(
        "-i",
        "--infile",
        default=None,
        help="input: an Eiger master (*_master.h5), or a "
        "miniCBF series: a template (name_#####.cbf.gz), its first file or its folder",
    )
    a(
        "-o",
        "--out_file",
        default="out_data",
        help="output prefix: <out>_NNNNNN.h5 (default out_data)",
    )
    a(
        "-m",
        "--out_master",
        default=None,
        help="output master prefix (default <out>_master; .h5 appended)",
    )
    a(
        "-q",
        "--out_squash",
        default=None,
        help="also write squash files of the raw codec bytes (prefix; 'out_file' = <out>_squash)",
    )
    a(
        "-S",
        "--scale",
        "--sc",  # l_bnl_compress' abbreviation (--scheduler made it ambiguous)
        dest="scale_factor",
        type=float,
        default=1.0,
        help="multiply the counts (and the saturation value); scaled counts are rounded to the "
        "nearest integer (half to even), where l_bnl_compress truncated",
    )
    a(
        "-u",
        "--uint",
        type=int,
        nargs="?",
        const=2,
        default=None,
        help="integer output: 2 uint16, -2 int16, 4 uint32, -4 int32",
    )
    a(
        "-f",
        "--float",
        dest="ufloat",
        type=float,
        nargs="?",
        const=2,
        default=None,
        help="float output: 2 float16, 4 float32",
    )
    a(
        "-L",
        "--logarithm",
        dest="logarithm_base",
        nargs="?",
        const="e",
        default=None,
        help="log transform log(1+v)/log(base), base e or >= 2; into integer output (-u) "
        "rounded to the nearest integer (half to even), where l_bnl_compress truncated",
    )
    a(
        "-X",
        "--exponential",
        dest="exponent",
        nargs="?",
        const="e",
        default=None,
        help="exp transform, base e or >= 2",
    )
    a(
        "-R",
        "--RO",
        dest="regions",
        action="append",
        default=[],
        help="region to omit (zero), repeatable",
    )
    a("-C", "--CO", dest="regions", action="append", help="same as -R")
    a(
        "-0",
        "--omit",
        dest="omit_frames",
        type=int,
        action="append",
        default=None,
        help="accepted and ignored (unused in l_bnl_compress)",
    )
    a(
        "-p",
        "--parallel",
        dest="workers",
        type=int,
        default=None,
        help="number of dask workers (default, or 0 as in l_bnl_compress: the cores)",
    )
    a(
        "-t",
        "--thread",
        type=int,
        nargs="?",
        default=None,
        help="dask schedules the work; as l_bnl_compress' -t N runs side by side, a run that "
        "finds another writing this output waits for it (then finds it complete)",
    )
    a(
        "-v",
        "--verbose",
        action="store_true",
        help="print the plan: chunks, output type, saturation, blocks to write",
    )
    a("-V", "--version", dest="report_version", action="store_true", help="print the version")
    a(
        "--scheduler",
        default="auto",
        help="auto (default: threads; a local cluster of processes for --sz3, --zfp, -q "
        "with -H, whose codecs hold a process-wide lock, and --report), threads, processes "
        "(a local cluster, with "
        "the dask dashboard), sync, or a scheduler address",
    )
    a(
        "--chunk-frames",
        type=int,
        default=None,
        help="input frames per dask task (default: about 256 MB of counts, a multiple of -s)",
    )
    a(
        "--cap-sums",
        action="store_true",
        help="cap sums at the single-frame saturation value, as l_bnl_compress did",
    )
    a("--overwrite", action="store_true", help="replace existing output files")
    a(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when on a terminal; in a batch log, a line per data "
        "file instead); --no-progress: neither",
    )
    a(
        "--validate",
        action="store_true",
        help="check the output the way XDS' plugins read it (lbnl-validate)",
    )
    a(
        "--xds-plugin",
        dest="xds_plugins",
        action="append",
        default=[],
        metavar="LIB",
        help="validate the output (--validate) and read it through this XDS plugin too "
        "(dectris-neggia.so, durin-plugin.so: XDS.INP's LIB=), as XDS calls it (repeatable)",
    )
    a("--report", default=None, metavar="FILE.html", help="save dask's performance report")
    a(
        "--no-restore-totals",
        dest="restore_totals",
        action="store_false",
        help="store the lossy round trip's pixels as decoded, as the HDRMX paper and "
        "l_bnl_compress did (default: each 6x6 cell keeps the original's total counts, so "
        "the background is not biased)",
    )
    a(
        "--cbf",
        action="store_true",
        help="also write the output frames as miniCBF files OUT_NNNNN.cbf (PILATUS_1.2 headers "
        "from the output master; for fast_dp and other CBF-only programs), as lbnl-to-cbf does",
    )
    a(
        "--no-fidelity",
        dest="fidelity",
        action="store_false",
        help="skip the estimate a lossy run ends with (background and spot counts out/in on a "
        "few sampled frames)",
    )
    g = p.add_argument_group("SLURM (dask-jobqueue; defaults from dask's jobqueue.slurm config)")
    g.add_argument(
        "--slurm",
        action="store_true",
        help="run on SLURM jobs started by dask_jobqueue.SLURMCluster",
    )
    g.add_argument("--slurm-jobs", type=int, default=1, help="number of SLURM jobs (1)")
    g.add_argument("--cores", type=int, default=None, help="cores per job")
    g.add_argument("--memory", default=None, help="memory per job, e.g. 32GB")
    g.add_argument("--walltime", default=None, help="e.g. 01:00:00")
    g.add_argument("--queue", default=None, help="SLURM partition")
    g.add_argument("--account", default=None, help="SLURM account")
    g.add_argument(
        "--print-job-script",
        action="store_true",
        help="print the job script --slurm would submit, and stop",
    )
    return p


def main(argv=None) -> int:
    one_openmp_thread()
    argv = join_negative_values(list(sys.argv[1:] if argv is None else argv))
    args = parser().parse_args(argv)
    if args.report_version:
        print(VERSION)
        if args.infile is None:
            return 0
    slurm = (
        SlurmOptions(
            jobs=args.slurm_jobs,
            cores=args.cores,
            memory=args.memory,
            walltime=args.walltime,
            queue=args.queue,
            account=args.account,
        )
        if (args.slurm or args.print_job_script)
        else None
    )
    if args.print_job_script:
        try:
            print(slurm_job_script(slurm))
        except LbnlDaskError as e:
            print(f"lbnl-compress: error: {e}", file=sys.stderr)
            return 2
        return 0
    if args.infile is None:
        print("lbnl-compress: error: no input master given (-i MASTER)", file=sys.stderr)
        return 2
    if args.thread is not None:  # l_bnl_compress' -t N fan-out: one run writes, the rest wait
        print("lbnl-compress: note: -t: dask schedules the work; a run that finds another "
              "writing this output waits for it", file=sys.stderr)  # fmt: skip
    if args.omit_frames:
        print(
            "lbnl-compress: note: -0/--omit is ignored (it was never used by l_bnl_compress)",
            file=sys.stderr,
        )
    opts = {k: v for k, v in vars(args).items() if k in option_names()}
    for k in ("keep_grow", "keep_frames"):  # given without --keep-spots: said, not ignored
        if opts[k] is None:
            del opts[k]
        elif args.keep_spots is None:
            flag = "--" + k.replace("_", "-")
            print(f"lbnl-compress: error: {flag} shapes what --keep-spots keeps: give "
                  "--keep-spots too", file=sys.stderr)  # fmt: skip
            return 2
    opts["progress"] = sys.stderr.isatty() if args.progress is None else args.progress
    # a batch log (stdout not a terminal) gets a line per data file, unless --no-progress
    opts["progress_lines"] = args.progress is None and not sys.stdout.isatty()
    opts["slurm"] = slurm
    opts["wait"] = args.thread is not None
    try:
        name = split_options(**opts)[0].compression  # checked before anything starts
        if name not in XDS_READABLE:
            print(f"lbnl-compress: warning: -c {name}: {COMPRESSIONS[name]}", file=sys.stderr)
        with stop_on_sigterm():
            report = compress(args.infile, args.out_file, **opts)
    except Interrupted as e:
        print(f"lbnl-compress: {e}", file=sys.stderr)
        return 128 + e.signal  # 130 for Ctrl-C, 143 for SIGTERM (a batch system's time limit)
    except LbnlDaskError as e:
        print(f"lbnl-compress: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # before the run started: nothing was written
        print("lbnl-compress: interrupted before anything was written", file=sys.stderr)
        return 128 + getattr(e, "signal", signal.SIGINT)
    for line in report.block_messages():
        print(line)
    print(report)
    return 0


#: The console script (pyproject.toml): :func:`main`, then :func:`~lbnl_dask.cluster.console`.
command = console(main)


if __name__ == "__main__":
    sys.exit(command())
