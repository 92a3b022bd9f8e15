"""Options: the one list of bad options, checked on construction.

Each bad option gives one line, exit 2, nothing written.
"""

import os
import re

import numpy as np
import pytest

from lbnl_dask import cli
from lbnl_dask.errors import OptionError
from lbnl_dask.options import OutputOptions, RunSettings, job_token, output_dtype, split_options

#: Every option value lbnl-compress refuses, with the words its one-line error must hold
#: (on the 20-frame 'tiny' dataset of conftest).
BAD_OPTIONS = [
    (["-1", "12", "-N", "11"], "first image 12 is after last image 11"),
    (["-N", "21"], "last image 21 is beyond the 20 frames"),
    (["-1", "0"], "before image 1"),
    (["-b", "0"], "bin (-b) must be at least 1"),
    (["-b", "-2"], "bin (-b) must be at least 1"),
    (["-s", "0"], "sum (-s) must be at least 1"),
    (["-s", "-1"], "sum (-s) must be at least 1"),
    (["-s", "21"], "sum (-s 21) is larger than the 20 frames selected"),
    (["-1", "15", "-s", "8"], "sum (-s 8) is larger than the 6 frames selected"),
    (["-d", "0"], "data block size (-d) must be at least 1"),
    (["-H", "4", "-J", "50"], "choose one lossy round trip, not -H and -J"),
    (["-H", "4", "-K", "50"], "choose one lossy round trip, not -H and -K"),
    (["-H", "-3"], "HCompress scale (-H) must be 0 (lossless) to 2147483647, not -3"),
    (["-J", "1"], "JPEG-2000 ratio (-J) must be greater than 1"),
    (["-K", "0.5"], "JPEG-2000 ratio (-K) must be greater than 1"),
    (["-J", "inf"], "JPEG-2000 ratio (-J) must be greater than 1, not inf"),
    (["-p", "-1"], "number of workers (-p) must be at least 1, not -1"),
    (["--chunk-frames", "0"], "--chunk-frames must be at least 1"),
    (["-b", "103"], "bin (-b 103) is larger than the frames (102 x 132)"),
    (["-c", "gzip"], "unknown compression 'gzip'"),
    (["-R", "1,2,3"], "give 2 numbers"),
    (["-R", "5000,6000"], "region '5000,6000' names no pixel of the output frames (102 x 132"),
    (["-b", "2", "-R", "0,5,60,80"], "names no pixel of the output frames (51 x 66"),
    (["-q", "sq"], "-q (squash) needs a lossy round trip"),
    (["-H", "99999999999"], "HCompress scale (-H) must be 0 (lossless) to 2147483647"),
    (["-S", "0"], "scale (-S) must be a positive number, not 0"),
    (["-S", "inf"], "scale (-S) must be a positive number, not inf"),  # (a traceback before)
    (
        ["-S", "0.00003"],
        "-S 3e-05 scales the saturation (12440 counts) to 1: no count could be "
        "told from an overload",
    ),  # (all-zero frames, saturation 0, before)
    (["-u", "3"], "-u takes"),
    (["-f", "8"], "-f takes"),
    (["-u", "2", "-f", "4"], "choose one output type, not -u and -f"),
    (["-L", "1.5"], "base >= 2"),
    (["-X", "ten"], "-X needs a number >= 2 or e"),
    (["--keep-spots"], "--keep-spots needs a lossy round trip"),
    (["-H", "16", "--keep-spots", "0"], "threshold in sigmas > 0"),
    (["-H", "16", "--keep-spots", "-q", "out_file"], "-q cannot go with --keep-spots"),
    (["-H", "16", "--keep-spots", "-L"], "cannot go with -L or -X"),
    (["--cbf", "-L", "2", "-u", "4"], "--cbf writes counts: it cannot go with -S, -L or -X"),
    (["-H", "16", "--keep-spots", "--keep-frames=-1"], "must be >= 0"),
    (["-H", "16", "--keep-spots", "--keep-grow", "-1"], "must be >= 0"),
]


@pytest.mark.parametrize("args,msg", BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_bad_options_one_line_and_no_output(args, msg, tmp_path, tiny, capsys):
    rc = cli.main(["-i", tiny, "-o", str(tmp_path / "o"), "--scheduler", "threads"] + args)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and msg in err, err
    assert err.startswith("lbnl-compress: error: ") and len(err.splitlines()) == 1, err
    assert os.listdir(tmp_path) == []


def test_output_options_are_checked_when_made():
    with pytest.raises(OptionError, match="bin"):
        OutputOptions(bin_range=0)
    o = OutputOptions(compression="BSLZ4", hcomp_scale=12)
    assert o.compression == "bslz4" and o.lossy == "hcomp" and o.integral
    assert OutputOptions(j2k_alt_ratio=60).codec().ladder[-1] == 60
    assert OutputOptions(logarithm_base="e").integral is False


def test_split_options_names_an_unknown_option():
    out, run = split_options(bin_range=2, scheduler="threads")
    assert out.bin_range == 2 and isinstance(run, RunSettings) and run.scheduler == "threads"
    with pytest.raises(OptionError, match="unknown option.*bin_rnage"):
        split_options(bin_rnage=2)


def test_job_token_ignores_run_settings_but_not_output_options(tiny, tmp_path):
    out = str(tmp_path / "o")
    a = job_token(tiny, out, OutputOptions(bin_range=2))
    assert a == job_token(tiny, out, split_options(bin_range=2, workers=7, overwrite=True)[0])
    assert a != job_token(tiny, out, OutputOptions(bin_range=3))


@pytest.mark.parametrize(
    "kw,sat,dtype,cap",
    [
        (dict(), 30000, np.uint16, 30000),
        (dict(), 40000, np.uint32, 40000),
        (dict(), 2**33, np.uint32, 2**31 - 2),  # Neggia reads 2**31-1 and above as invalid
        # -u too: Neggia reads uint16 from 32767 on as invalid (65534 had been the cap)
        (dict(uint=2), 70000, np.uint16, 32766),
        (dict(uint=-2), 70000, np.int16, 32766),
        (dict(uint=4), 2**33, np.uint32, 2**31 - 2),
        (dict(ufloat=4), 1e40, np.float32, float(np.finfo(np.float32).max)),
    ],
)
def test_output_dtype_keeps_the_saturation_readable(kw, sat, dtype, cap):
    notes = []
    dt, s = output_dtype(OutputOptions(**kw), sat, notes)
    assert dt == dtype and s == cap
    assert bool(notes) == (s != sat or dt.kind == "f")


def test_the_python_api_refuses_options_of_the_wrong_kind():
    """From the API (the command line parses them): bin_range="2" or sum_range=2.5 raised a
    TypeError from deep inside the run; keep_spots=True was one sigma (True == 1), not the
    command line's bare --keep-spots (5); keep_grow without keep_spots was ignored."""
    assert OutputOptions(hcomp_scale=12, keep_spots=True).keep_spots == 5.0
    assert OutputOptions(hcomp_scale=12, keep_spots=False).keep_spots is None
    for kw, msg in ((dict(bin_range="2"), "bin_range takes a whole number, not '2'"),
                    (dict(sum_range=2.5), "sum_range takes a whole number, not 2.5"),
                    (dict(bin_range=True), "bin_range takes a whole number, not True"),
                    (dict(hcomp_scale=12, keep_spots="5"), "keep_spots takes a number"),
                    (dict(hcomp_scale=12, keep_grow=4), "give keep_spots too")):  # fmt: skip
        with pytest.raises(OptionError, match=re.escape(msg)):
            OutputOptions(**kw)
    assert OutputOptions(bin_range=np.int64(2), j2k_ratio=120).bin_range == 2


def test_read_squash_and_the_scheduler_refuse_in_one_line(tmp_path, tiny):
    from lbnl_dask import compress
    from lbnl_dask.errors import InputFileError
    from lbnl_dask.writer import read_squash

    with pytest.raises(InputFileError, match="nope.h5: cannot read it as a squash file"):
        read_squash(str(tmp_path / "nope.h5"))
    rep = compress(tiny, str(tmp_path / "o"), scheduler="threads")
    with pytest.raises(InputFileError, match="not a squash file"):
        read_squash(rep.data_files[0])
    with pytest.raises(OptionError, match="unknown scheduler None"):
        compress(tiny, str(tmp_path / "p"), scheduler=None)


@pytest.mark.parametrize("args,note,level", [
    (["-l", "3"], "-l 3 ignored: -c bslz4 has no level (l_bnl_compress' default -c was zstd", None),
    (["-c", "bshuf", "-l", "3"], "-l 3 ignored: -c bshuf has no level", None),
    (["-c", "bszstd", "-l", "30"], "-l 30 is outside bszstd's levels 1..22: 22 is used", 22),
    (["-c", "bszstd", "-l", "0"], "-l 0 is outside bszstd's levels 1..22: 1 is used", 1),
    (["-c", "zstd", "-l", "12"], "-l 12 is outside zstd (Blosc)'s levels 0..9: 9 is used", 9),
])  # fmt: skip
def test_compression_levels_l_bnl_compress_took_run_with_a_note(args, note, level, tiny,
                                                                tmp_path, capsys):  # fmt: skip
    """Command lines the published tool ran (-l alone set its default zstd's level; it
    capped bszstd at 22) run here too, the level fitted and said, not refused."""
    rc = cli.main(["-i", tiny, "-o", str(tmp_path / "o"), "--scheduler", "sync", *args])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert note in out.out, out.out
    o = split_options(compression=args[1] if args[0] == "-c" else None,
                      compression_level=int(args[-1]))[0]  # fmt: skip
    assert o.compression_level == level and o.notes()[0].startswith(note[:12])


def test_workers_0_is_the_default_as_in_l_bnl_compress():
    """-p 0, the published tool's own default: all the cores here (it had been refused)."""
    assert RunSettings(workers=0).workers is None
    with pytest.raises(OptionError, match="must be at least 1, not -1"):
        RunSettings(workers=-1)


def test_the_scale_keeps_its_l_bnl_compress_abbreviation():
    """--sc was l_bnl_compress' --scale; --scheduler had made it ambiguous here."""
    a = cli.parser().parse_args(["-i", "m", "--sc", "2"])
    assert a.scale_factor == 2.0 and a.scheduler == "auto"
