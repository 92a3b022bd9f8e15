"""What a run is asked to do: the output options, checked once, and the settings of the run.

:class:`OutputOptions` holds every option that shapes the output (the names of
l_bnl_compress where it had one) and refuses a bad value when it is made, so everything
downstream takes its values as given. :class:`RunSettings` holds what only changes how the
job runs (scheduler, workers, progress...): a re-run with other settings resumes the same job,
whose identity is :func:`job_token`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from . import layout
from .cluster import SlurmOptions
from .codecs import HCOMPRESS_MAX, J2K_MAX, JPEG2000, HCompress, glymur_ladder, opj_ladder
from .errorbound import FLOAT32_EXACT, SZ3, ZFP, SZ3Storage
from .errors import OptionError
from .writer import COMPRESSIONS, XDS_READABLE, lossless_filter


@dataclass(frozen=True)
class OutputOptions:
    """Every option of ``lbnl-compress`` that shapes the output; raises OptionError if one
    cannot be honoured. Counts are per pixel; ``bin_range`` b means b x b pixels."""

    first_image: int = 1
    last_image: int | None = None
    bin_range: int = 1
    sum_range: int = 1
    data_block_size: int = 100
    compression: str = "bslz4"
    compression_level: int | None = None
    hcomp_scale: int | None = None
    j2k_ratio: float | None = None
    j2k_alt_ratio: float | None = None
    j2k_reversible: bool = False
    sz3_bound: float | None = None  # SZ3 round trip, absolute error bound (counts)
    zfp_accuracy: float | None = None  # ZFP round trip, fixed accuracy (counts)
    out_master: str | None = None
    out_squash: str | None = None
    scale_factor: float = 1.0
    uint: int | None = None
    ufloat: float | None = None
    logarithm_base: str | None = None
    exponent: str | None = None
    regions: list = field(default_factory=list)
    cap_sums: bool = False
    keep_spots: float | None = None  # sigmas: see transform.spot_regions
    keep_grow: int = 3  # output pixels around strong pixels
    keep_frames: int = 2  # output frames before and after
    restore_totals: bool = True  # each 6 x 6 cell keeps its total through the lossy step

    def __post_init__(self):
        object.__setattr__(self, "compression", (self.compression or "bslz4").lower())
        if isinstance(self.keep_spots, (bool, np.bool_)):  # (the API's keep_spots=True: the
            object.__setattr__(self, "keep_spots", KEEP_SPOTS_SIGMA if self.keep_spots else None)
        _check_kinds(self)  # command line's bare --keep-spots, not True == 1 sigma)
        _check_ranges(self)
        _check_stored_lossy(self)  # first: -c sz3 says why -H, -q... cannot go with it
        _check_lossy(self)
        _check_types(self)
        object.__setattr__(self, "level_note", _fit_level(self))
        lossless_filter(self.compression, self.compression_level)  # raises OptionError

    @property
    def lossy_flags(self) -> list[str]:
        """The lossy round trips asked for (at most one is allowed)."""
        return [
            n
            for n, v in (
                ("-H", self.hcomp_scale),
                ("-J", self.j2k_ratio),
                ("-K", self.j2k_alt_ratio),
                ("--sz3", self.sz3_bound),
                ("--zfp", self.zfp_accuracy),
            )
            if v is not None
        ]

    @property
    def lossy(self) -> str | None:
        """'hcomp', 'j2k', 'sz3', 'zfp' or None: the family of the lossy round trip."""
        flags = self.lossy_flags
        families = {"-H": "hcomp", "-J": "j2k", "-K": "j2k", "--sz3": "sz3", "--zfp": "zfp"}
        return families[flags[0]] if flags else None

    @property
    def restores_totals(self) -> bool:
        """The lossy round trip keeps each small cell's total counts (not for -L/-X, nor
        for frames stored with SZ3's own filter: a reader decodes those)."""
        return (self.restore_totals and self.lossy is not None and self.integral
                and not self.stores_lossy)  # fmt: skip

    @property
    def stores_lossy(self) -> bool:
        """``-c sz3``: the frames are stored with the error-bounded codec's own HDF5 filter
        (no round trip: every reader decodes the filter)."""
        return layout.is_lossy(self.compression)

    def storage_filter(self) -> dict:
        """h5py ``create_dataset`` keyword arguments of the data files' filter (``-c``)."""
        if self.stores_lossy:
            return SZ3(self.sz3_bound).filter()
        return lossless_filter(self.compression, self.compression_level)

    @property
    def integral(self) -> bool:
        """Sums, -S's rounding and the codecs give whole counts; -L and -X do not."""
        return self.logarithm_base is None and self.exponent is None

    @property
    def process_lock(self) -> str | None:
        """The stage of this run that holds a process-wide lock (threads would take turns at
        it; see :func:`lbnl_dask.cluster.choose_scheduler`), or None."""
        if self.sz3_bound is not None or self.zfp_accuracy is not None:
            return "SZ3/ZFP run inside h5py's lock"
        if self.out_squash is not None and self.hcomp_scale is not None:
            return "-q runs astropy's HCompress coder under a lock"
        return None

    def codec(self):
        """The lossy codec of ``-H``/``-J``/``-K``/``--sz3``/``--zfp``, or None."""
        if self.hcomp_scale is not None:
            return HCompress(scale=self.hcomp_scale)
        if self.sz3_bound is not None:
            return SZ3(self.sz3_bound)
        if self.zfp_accuracy is not None:
            return ZFP(self.zfp_accuracy)
        ratio = self.j2k_ratio if self.j2k_ratio is not None else self.j2k_alt_ratio
        if ratio is None:
            return None
        if self.j2k_alt_ratio is not None:
            ladder = opj_ladder(int(ratio))
        else:
            ladder = glymur_ladder(int(ratio)) if self.j2k_reversible else None
        return JPEG2000(ratio, irreversible=not self.j2k_reversible, ladder=ladder)

    def notes(self) -> list[str]:
        """Warnings worth a line in the report (choices that work but cost readers, an -l
        fitted to the compression)."""
        notes = [self.level_note] if getattr(self, "level_note", None) else []
        if self.compression not in XDS_READABLE:
            notes.append(f"-c {self.compression}: {COMPRESSIONS[self.compression]}")
        return notes


#: The largest HCompress scale: astropy's codec takes it as a C int (a larger one raised
#: OverflowError inside the run; any scale beyond the counts already keeps only the means).
HCOMPRESS_MAX_SCALE = 2**31 - 1


def _fit_level(o) -> str | None:
    """``-l`` as l_bnl_compress takes it, with a note (None: nothing to say): ignored for a
    compression without levels (its default -c was zstd, where -l alone set the level; a
    script's -l had failed here), held to the compression's range (it capped bszstd's at
    22). Sets ``o.compression_level``."""
    from .layout import FILTERS, is_lossy

    level, c = o.compression_level, FILTERS.get(o.compression)
    if level is None or c is None or is_lossy(o.compression):  # (-c sz3: refused, as ever)
        return None
    if c.levels is None:
        object.__setattr__(o, "compression_level", None)
        return (f"-l {level} ignored: -c {o.compression} has no level (l_bnl_compress' default "
                "-c was zstd, whose level -l set: give -c zstd or bszstd for one)")  # fmt: skip
    lo, hi = c.levels
    if not lo <= level <= hi:
        fit = min(max(level, lo), hi)
        object.__setattr__(o, "compression_level", fit)
        return f"-l {level} is outside {c.label}'s levels {lo}..{hi}: {fit} is used"
    return None


#: ``--keep-spots`` given without a value (and the API's ``keep_spots=True``): sigmas.
KEEP_SPOTS_SIGMA = 5.0
#: Options that take whole numbers, and those that take any number (None: not given).
_WHOLE = ("first_image", "last_image", "bin_range", "sum_range", "data_block_size",
          "compression_level", "hcomp_scale", "uint", "keep_grow", "keep_frames")  # fmt: skip
_NUMBER = ("j2k_ratio", "j2k_alt_ratio", "sz3_bound", "zfp_accuracy", "scale_factor", "ufloat",
           "keep_spots")  # fmt: skip


def _check_kinds(o: OutputOptions) -> None:
    """OptionError for an option of the wrong kind (from the Python API: the command line
    parses them): ``bin_range="2"`` or ``sum_range=2.5`` had raised a TypeError from deep
    inside the run, or been taken as something else."""
    for name in _WHOLE + _NUMBER:
        v = getattr(o, name)
        if v is None or isinstance(v, (bool, np.bool_)) and name in _NUMBER:
            continue
        whole = isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
        if name in _WHOLE and not whole:
            raise OptionError(f"{name} takes a whole number, not {v!r}")
        if name in _NUMBER and not (whole or isinstance(v, (float, np.floating))):
            raise OptionError(f"{name} takes a number, not {v!r}")
    given = [n for n in ("keep_grow", "keep_frames") if getattr(o, n) != _DEFAULTS[n]]
    if o.keep_spots is None and given:
        raise OptionError("keep_grow and keep_frames shape what keep_spots keeps: give "
                          "keep_spots too")  # fmt: skip


_DEFAULTS = {n: f.default for n, f in OutputOptions.__dataclass_fields__.items()}


def _check_ranges(o: OutputOptions) -> None:
    for name, v in (
        ("bin (-b)", o.bin_range),
        ("sum (-s)", o.sum_range),
        ("data block size (-d)", o.data_block_size),
    ):
        if v is None or int(v) < 1:
            raise OptionError(f"{name} must be at least 1, not {v}")
    if o.scale_factor is None or not 0 < o.scale_factor < np.inf:
        raise OptionError(f"scale (-S) must be a positive number, not {o.scale_factor}")


def _check_lossy(o: OutputOptions) -> None:
    lossy = o.lossy_flags
    if len(lossy) > 1:
        raise OptionError(f"choose one lossy round trip, not {' and '.join(lossy)}")
    if o.out_squash is not None and not lossy:
        raise OptionError(
            "-q (squash) needs a lossy round trip (-H, -J, -K, --sz3 or --zfp) to take codec "
            "bytes from"
        )
    if o.hcomp_scale is not None and not 0 <= o.hcomp_scale <= HCOMPRESS_MAX_SCALE:
        raise OptionError(f"HCompress scale (-H) must be 0 (lossless) to {HCOMPRESS_MAX_SCALE}, "
                          f"not {o.hcomp_scale}")  # fmt: skip
    for flag, e in (("--sz3", o.sz3_bound), ("--zfp", o.zfp_accuracy)):
        if e is not None and not (np.isfinite(e) and e > 0):
            raise OptionError(f"error bound ({flag}) must be a positive number of counts, not {e}")
    for flag, r in (("-J", o.j2k_ratio), ("-K", o.j2k_alt_ratio)):
        if r is not None and not (np.isfinite(r) and r > 1):
            raise OptionError(f"JPEG-2000 ratio ({flag}) must be greater than 1, not {r}")
    if o.keep_spots is None:
        return
    if not lossy:
        raise OptionError(
            "--keep-spots needs a lossy round trip (-H, -J, -K, --sz3 or --zfp): without one "
            "every pixel is kept"
        )
    if not o.keep_spots > 0:
        raise OptionError(f"--keep-spots takes a threshold in sigmas > 0, not {o.keep_spots}")
    if o.out_squash is not None:
        raise OptionError(
            "-q cannot go with --keep-spots: the squash files' codec bytes "
            "would not hold the spots kept exactly"
        )
    if not o.integral:
        raise OptionError("--keep-spots finds spots in counts: it cannot go with -L or -X")
    if o.keep_grow < 0 or o.keep_frames < 0:
        raise OptionError(
            f"--keep-grow and --keep-frames must be >= 0, not {o.keep_grow} and {o.keep_frames}"
        )


def _check_stored_lossy(o: OutputOptions) -> None:
    """``-c sz3`` stores every pixel through SZ3's filter at ``--sz3``'s bound, as int32."""
    if not o.stores_lossy:
        return
    c = o.compression
    others = [f for f in o.lossy_flags if f != "--sz3"]
    if others:
        raise OptionError(f"-c {c} cannot go with {others[0]}: -c {c} is the lossy step "
                          "itself (SZ3's own filter at --sz3's bound), no round trip")  # fmt: skip
    if o.sz3_bound is None:
        raise OptionError(f"-c {c} stores the frames with SZ3's own filter: give its error "
                          "bound with --sz3 BOUND (counts)")  # fmt: skip
    if o.sz3_bound > SZ3Storage.MAX_BOUND:
        raise OptionError(f"-c {c} takes an error bound (--sz3) up to {SZ3Storage.MAX_BOUND} "
                          f"counts, not {o.sz3_bound!r}")  # fmt: skip
    for flag, asked, why in (
        ("--keep-spots", o.keep_spots is not None, "no pixel escapes SZ3's filter"),
        ("-q", o.out_squash is not None, "the data files hold SZ3's bytes already"),
        ("-u/-f", o.uint is not None or o.ufloat is not None, "its frames are int32"),
        ("-L/-X", not o.integral, "it stores counts (int32)"),
    ):
        if asked:
            raise OptionError(f"-c {c} cannot go with {flag}: {why}")


def _check_types(o: OutputOptions) -> None:
    if o.uint is not None and o.ufloat is not None:
        raise OptionError(f"choose one output type, not -u and -f (-u {o.uint}, -f {o.ufloat:g})")
    if o.uint is not None and o.uint not in (2, -2, 4, -4):
        raise OptionError(f"-u takes 2, -2, 4 or -4 (bytes; negative = signed), not {o.uint}")
    if o.ufloat is not None and o.ufloat not in (2, -2, 4, -4):
        raise OptionError(f"-f takes 2, -2, 4 or -4 (bytes; negative = signed), not {o.ufloat}")
    for flag, base in (("-L", o.logarithm_base), ("-X", o.exponent)):
        if base is not None and log_base(base, flag) < 2:
            raise OptionError(f"{flag} needs a base >= 2 (or e), not {base}")


def log_base(text, flag: str) -> float:
    """The base of ``-L``/``-X``: a number, or ``e``."""
    if str(text).lower() == "e":
        return float(np.e)
    try:
        return float(text)
    except ValueError:
        raise OptionError(f"{flag} needs a number >= 2 or e, not {text!r}") from None


def pixel_transform(o, values: str = "counts") -> str | None:
    """What the output pixels hold where they are not the (summed, binned) input ``values``
    (counts): -S, -L and -X in the order they apply (``ln(1 + counts x 0.5) / ln(2)``), else
    None where the input ``values`` are counts. The output master records it
    (:data:`lbnl_dask.layout.TRANSFORM_ATTR`): XDS and DIALS take pixels as counts."""
    v = values
    if o.scale_factor != 1:
        v = f"{values} x {o.scale_factor:.15g}"
    if o.logarithm_base is not None:
        v = f"ln(1 + {v}) / ln({log_base(o.logarithm_base, '-L'):.6g})"
    if o.exponent is not None:
        v = f"{log_base(o.exponent, '-X'):.6g}**({v}) - 1"
    if v == "counts":
        return None
    return v[1:-1] if v == values else v  # (the input's values, as an earlier run made them)


@dataclass
class RunSettings:
    """How a job runs; none of these changes a byte of the output."""

    overwrite: bool = False
    # threads, or processes for a locked codec (cluster.choose_scheduler); a Client: its address
    scheduler: str = "auto"
    workers: int | None = None
    chunk_frames: int | None = None  # input frames per dask task (default: plan.chunk_frames)
    progress: bool = False
    progress_lines: bool = False  # a line per data file written (batch logs: no bar there)
    verbose: bool = False
    slurm: SlurmOptions | None = None
    report: str | None = None  # dask performance report (HTML)
    validate: bool = False
    # XDS plugin libraries the output is read through at the end (lbnl-validate --xds-plugin)
    xds_plugins: tuple = ()
    fidelity: bool = True  # a lossy run ends with an estimate of what it did (a few frames)
    cbf: bool = False  # also write the output frames as miniCBF files <out>_NNNNN.cbf
    wait: bool = False  # another run writing this output: wait for it (l_bnl_compress' -t N)

    def __post_init__(self):
        if self.workers == 0:  # l_bnl_compress' own default for -p: the default
            self.workers = None
        address = getattr(getattr(self.scheduler, "scheduler", None), "address", None)
        if isinstance(address, str):  # a distributed.Client: the scheduler it is connected to
            self.scheduler = address
        self.xds_plugins = (
            (self.xds_plugins,) if isinstance(self.xds_plugins, str) else tuple(self.xds_plugins)
        )
        from .xds_plugin import path_problem

        for lib in self.xds_plugins:
            if why := path_problem(lib):
                raise OptionError(why)
        for flag, v in (("number of workers (-p)", self.workers),
                        ("--chunk-frames", self.chunk_frames)):  # fmt: skip
            if v is not None and not v >= 1:
                raise OptionError(f"{flag} must be at least 1, not {v}")


def at_least_1(text: str) -> int:
    """argparse type: a whole number of at least 1 (a factor, a count of frames, windows or
    workers)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def option_names() -> set[str]:
    """Every keyword ``compress`` takes (the fields of both classes)."""
    return {f.name for cls in (OutputOptions, RunSettings) for f in fields(cls)}


def split_options(**options) -> tuple[OutputOptions, RunSettings]:
    """``compress``'s keywords as (OutputOptions, RunSettings).

    An unknown name is an OptionError.
    """
    unknown = sorted(set(options) - option_names())
    if unknown:
        raise OptionError(f"unknown option(s): {', '.join(unknown)}")
    out = {f.name for f in fields(OutputOptions)}
    return (
        OutputOptions(**{k: v for k, v in options.items() if k in out}),
        RunSettings(**{k: v for k, v in options.items() if k not in out}),
    )


def job_token(master: str, out: str, o: OutputOptions, files=(), frames=None) -> str:
    """A short hash of the input (path, size, mtime; of each of ``files`` too: the data files,
    or a miniCBF series' files) and every output option: written into each output file, so
    a re-run resumes only its own job's files, and a changed input is another job.
    ``frames``: the (first, last) input frames the range options select, so that
    ``-N`` given as the default it is names the same job."""
    st = os.stat(master)
    options = asdict(o)
    if frames is not None:
        options["first_image"], options["last_image"] = (int(f) for f in frames)
    key = dict(
        master=os.path.abspath(master),
        size=st.st_size,
        mtime=st.st_mtime_ns,
        out=os.path.abspath(out),
        options=options,
    )
    if files:
        key["files"] = [(os.path.abspath(p), os.stat(p).st_size, os.stat(p).st_mtime_ns)
                        for p in files]  # fmt: skip
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- output type and saturation
def output_saturation(o: OutputOptions, per_pixel: int, notes: list) -> float:
    """The saturation value of the output pixels: the input's per-pixel cutoff
    times s x b x b (or not, with --cap-sums) and -S, within the codec's range, then
    through -L/-X. Appends a note when a limit lowers it."""
    s, b = o.sum_range, o.bin_range
    factor = 1 if o.cap_sums else s * b * b
    # rounded up: rounded to the nearest, -S 0.21 put 12440 x 0.21 = 2612.4 at 2612, where
    # a valid 12439 x 0.21 = 2612.19 lands too (only an overload may read as the saturation)
    saturation = int(np.ceil(per_pixel * factor * o.scale_factor - 1e-9))
    if saturation < 2:  # no count below it, or only 0: every pixel would be 0 or an overload
        raise OptionError(f"-S {o.scale_factor:g} scales the saturation "
                          f"({per_pixel * factor} counts) to {saturation}: no count could be "
                          "told from an overload")  # fmt: skip
    if o.hcomp_scale is not None and saturation > HCOMPRESS_MAX:
        notes.append(
            f"HCompress takes values up to {HCOMPRESS_MAX}: saturation lowered from {saturation}"
        )
        saturation = HCOMPRESS_MAX
    if o.stores_lossy:  # int32 counts, and room above the saturation for the overload marker
        if saturation > SZ3Storage.MAX_SATURATION:
            notes.append(f"-c {o.compression} stores int32 with room for its markers: "
                         f"saturation lowered from {saturation} to "
                         f"{SZ3Storage.MAX_SATURATION}")  # fmt: skip
            saturation = SZ3Storage.MAX_SATURATION
    elif o.lossy in ("sz3", "zfp") and saturation > FLOAT32_EXACT:
        notes.append(f"SZ3/ZFP take float32 counts, exact up to {FLOAT32_EXACT}: saturation "
                     f"lowered from {saturation}")  # fmt: skip
        saturation = FLOAT32_EXACT
    if o.lossy == "j2k" and saturation > J2K_MAX - 1:
        notes.append(
            f"JPEG-2000 (glymur) takes 16 bits: sums from {J2K_MAX - 1} up are overloads "
            f"(saturation was {saturation})"
        )
        saturation = J2K_MAX - 1
    if o.logarithm_base is not None:
        saturation = float(np.log1p(saturation) / np.log(log_base(o.logarithm_base, "-L")))
    if o.exponent is not None:
        with np.errstate(over="ignore"):
            grown = np.expm1(saturation * np.log(log_base(o.exponent, "-X")))
        saturation = float(min(grown, np.finfo(np.float32).max))
    return saturation


def output_dtype(o: OutputOptions, saturation, notes: list) -> tuple[np.dtype, float]:
    """The output pixel type and the saturation value it can hold: Neggia reads the
    top values of uint16/uint32 as invalid, so the saturation stays below them."""
    if o.stores_lossy:  # below SZ3Storage.MAX_SATURATION (output_saturation): markers fit
        return SZ3Storage.dtype, saturation
    if o.ufloat is not None:
        dt = np.dtype(np.float16 if abs(o.ufloat) == 2 else np.float32)
        notes.append(f"float output ({dt}): XDS' plugins read only unsigned integer data")
        top = float(np.finfo(dt).max)
        if saturation > top:
            notes.append(f"output saturation {saturation:.10g} capped at {top:g} by the {dt} "
                         "output type")  # fmt: skip
        exact = 2.0 ** (np.finfo(dt).nmant + 1)  # whole numbers are exact up to here
        if min(saturation, top) > exact:
            notes.append(f"{dt} holds whole counts exactly only up to {exact:g}: larger ones "
                         "are rounded")  # fmt: skip
        return dt, min(float(saturation), top)
    if o.uint is not None:
        dt = np.dtype({2: np.uint16, -2: np.int16, 4: np.uint32, -4: np.int32}[o.uint])
    elif not o.integral:
        notes.append("-L/-X without -f/-u: float32 output (integers would keep only a few levels)")
        return np.dtype(np.float32), float(saturation)
    else:
        # Neggia reads uint16 >= 32767 and uint32 >= 2**31-1 as invalid: keep saturation below.
        dt = np.dtype(np.uint16 if saturation < layout.NEGGIA_TOP[2] else np.uint32)
    # -u too: an overload at 65534 (or a count from 32767 on) would reach XDS as invalid
    cap = layout.NEGGIA_TOP[dt.itemsize] - 1
    if saturation > cap:
        why = f" (XDS' Neggia plugin reads {dt} values from {cap + 1} on as invalid)"
        notes.append(f"output saturation {saturation} capped at {cap} by the {dt} output "
                     f"type{why if dt.kind == 'u' else ''}")  # fmt: skip
        saturation = cap
    if saturation != int(saturation):  # -L into integers: what a saturated pixel holds, the
        up = int(np.ceil(saturation))  # next whole number (below it, valid values would read
        notes.append(f"output saturation {saturation:.6g} is {up} in {dt} pixels")  # as it)
        saturation = up
    return dt, int(saturation)
