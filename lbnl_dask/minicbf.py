"""The miniCBF format (PILATUS_1.2 headers), in one place: series names, header text, masks.

A miniCBF series is one file per frame (``<name>_NNNNN.cbf``, optionally ``.gz``/``.bz2``):
a CIF text header whose ``_array_data.header_contents`` block holds PILATUS_1.2 lines
(``# Pixel_size 172e-6 m x 172e-6 m``...), then byte-offset compressed signed 32-bit
pixels, with **-1** for module gaps and **-2** for bad pixels. Pixels are read and written
through FabIO; this module knows the names, the header lines and the pixel markers:

- :func:`find_series` turns a template (``l-cyst_01_#####.cbf.gz``), a first file or a
  folder into the ordered list of files, refusing gaps and mixtures;
- :func:`read_header` reads one file's header text and binary-section sizes without
  decoding its pixels (the first few kB), :func:`parse_header` gives typed values in the
  units :class:`~lbnl_dask.meta.DetectorMeta` uses, :func:`format_header` writes them back;
- :func:`mask_of` / :func:`cbf_pixels` map -1/-2 to Dectris pixel-mask bits and back.
"""

from __future__ import annotations

import base64
import bz2
import gzip
import hashlib
import os
import re
import zlib
from dataclasses import dataclass, field

import numpy as np

from .errors import InputFileError, MetadataError, TruncatedDataError

#: File name endings of a miniCBF file, compressed or not.
SUFFIXES = (".cbf", ".cbf.gz", ".cbf.bz2")
#: Where the pixels start: CBF's binary-section marker.
BINARY_START = b"\x0c\x1a\x04\xd5"
#: Bytes of a header read at most before giving up on finding the binary section.
MAX_HEADER = 1 << 17

#: Dectris pixel-mask bits that -1 and -2 become (bit 0: gap, bit 1: dead/bad).
GAP_BIT, BAD_BIT = 1, 2
GAP_VALUE, BAD_VALUE = -1, -2


def is_cbf_name(path) -> bool:
    """True if ``path`` ends as a miniCBF file or template does (``.cbf``, ``.cbf.gz``...)."""
    return os.fspath(path).lower().endswith(SUFFIXES)


def _open(path: str):
    low = path.lower()
    if low.endswith(".gz"):
        return gzip.open(path, "rb")
    if low.endswith(".bz2"):
        return bz2.open(path, "rb")
    return open(path, "rb")


# --------------------------------------------------------------------------- series
_NUMBERED = re.compile(r"^(?P<stem>.*?)(?P<num>\d+)(?P<ext>\.cbf(?:\.gz|\.bz2)?)$", re.I)
#: The rotation axes a PILATUS header names (``Oscillation_axis``), as NeXus names them.
AXES = ("omega", "phi", "chi", "kappa")


def find_series(path) -> list[str]:
    """The files of a miniCBF series, in frame order, as absolute paths.

    ``path`` is a template with a run of ``#`` for the frame number
    (``l-cyst_01_#####.cbf.gz``; a single ``#`` stands for numbers of any width), one file of
    the series (its siblings with the same stem and ending are taken, the earlier ones too),
    or a folder holding exactly one series. The numbers must run without a gap, each once;
    anything else is an InputFileError naming the file or folder.
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        return _series_in_folder(path)
    name = os.path.basename(path)
    if "#" in name:
        m = re.match(r"^(?P<stem>[^#]*)(?P<hashes>#+)(?P<ext>[^#]*)$", name)
        if m is None or not is_cbf_name(name):
            raise InputFileError(f"{path}: a template needs one run of # and a .cbf ending")
        stem, ext = m["stem"], m["ext"]
        width = len(m["hashes"]) if len(m["hashes"]) > 1 else None
    else:
        if not os.path.exists(path):
            raise InputFileError(f"{path}: no such file")
        m = _NUMBERED.match(name)
        if m is None:
            raise InputFileError(f"{path}: not a numbered miniCBF file (<name>_NNNNN.cbf)")
        stem, ext = m["stem"], m["ext"]
        padded = len(m["num"]) > 1 and m["num"].startswith("0")
        width = len(m["num"]) if padded else None  # z_0, z_1 ... z_10: any width
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise InputFileError(f"{path}: no folder {folder}")
    numbered = _numbered(folder, stem, ext, width)
    if not numbered:
        raise InputFileError(f"{path}: no file of this series found in {folder}")
    return _consecutive(numbered, os.path.join(folder, stem), ext, width)


def _numbered(folder: str, stem: str, ext: str, width: int | None) -> dict[int, str]:
    """Frame number -> path of the files ``<stem><digits><ext>`` in ``folder`` (``width``
    digits, or any number). Two files of one number (``a_0002.cbf`` and ``a_00002.cbf``),
    whatever their widths, are an InputFileError."""
    pat = re.compile("^" + re.escape(stem) + r"(\d+)" + re.escape(ext) + "$")
    out, seen = {}, {}
    try:
        entries = sorted(os.listdir(folder))
    except OSError as e:
        raise InputFileError(f"{folder}: cannot list the folder ({e.strerror})") from e
    for entry in entries:
        m = pat.match(entry)
        if not m:
            continue
        n = int(m.group(1))
        if n in seen:
            raise InputFileError(f"{os.path.join(folder, entry)}: frame {n} is also "
                                 f"{os.path.basename(seen[n])}: which one?")  # fmt: skip
        seen[n] = os.path.join(folder, entry)
        if not os.path.isfile(seen[n]):  # a pipe would be waited on forever
            raise InputFileError(f"{seen[n]}: not a regular file (a folder, pipe or device)")
        digits = m.group(1)
        # a fixed width, or more digits once the numbers outgrow it (x_99999 -> x_100000)
        if width is None or len(digits) == width or (len(digits) > width and digits[0] != "0"):
            out[n] = seen[n]
    return out


def _series_in_folder(folder: str) -> list[str]:
    series = {}
    for entry in sorted(os.listdir(folder)):
        m = _NUMBERED.match(entry)
        if m:
            series.setdefault((m["stem"], m["ext"]), []).append(entry)
    if not series:
        raise InputFileError(f"{folder}: is a directory with no miniCBF series in it "
                             "(*_NNNNN.cbf[.gz|.bz2]): give a *_master.h5 or a series")  # fmt: skip
    if len(series) > 1:
        names = ", ".join(f"{s}#{e}" for s, e in sorted(series)[:4])
        raise InputFileError(f"{folder}: holds {len(series)} miniCBF series ({names}): "
                             "give a template or a first file")  # fmt: skip
    (stem, ext), _ = series.popitem()
    return _consecutive(_numbered(folder, stem, ext, None), os.path.join(folder, stem), ext, None)


def _consecutive(numbered: dict[int, str], stem: str, ext: str, width: int | None) -> list[str]:
    nums = sorted(numbered)
    missing = sorted(set(range(nums[0], nums[-1] + 1)) - set(nums))
    if missing:
        if width is None:  # the width the names have, if they all have one
            widths = {len(os.path.basename(p)) - len(os.path.basename(stem)) - len(ext)
                      for p in numbered.values()}  # fmt: skip
            width = widths.pop() if len(widths) == 1 else 1
        name = f"{stem}{missing[0]:0{width}d}{ext}"
        raise InputFileError(f"{name}: missing (the series runs {nums[0]}-{nums[-1]} with "
                             f"{len(missing)} gap(s))")  # fmt: skip
    return [numbered[n] for n in nums]


def first_number(files: list[str]) -> int:
    """The frame number in the name of a series' first file (``x_00007.cbf.gz`` -> 7)."""
    m = _NUMBERED.match(os.path.basename(files[0]))
    return int(m["num"]) if m else 1


# --------------------------------------------------------------------------- header text
@dataclass
class RawHeader:
    """What precedes one file's pixels: the PILATUS_1.2 header lines (without ``# ``), the
    frame shape (ny, nx) and the element type of the binary section."""

    path: str
    lines: list[str]
    shape: tuple[int, int]
    element_type: str


def read_header(path: str) -> RawHeader:
    """Read a miniCBF file's header (not its pixels). InputFileError if it is unreadable or
    not a CBF with a PILATUS_1.2 header and a binary section."""
    try:
        with _open(path) as fh:
            head = b""
            while BINARY_START not in head and len(head) < MAX_HEADER:
                more = fh.read(4096)
                if not more:
                    break
                head += more
    except (OSError, EOFError, zlib.error) as e:
        raise InputFileError(f"{path}: cannot read ({e})") from e
    cut = head.find(BINARY_START)
    if not head.startswith(b"###CBF") or cut < 0:
        raise InputFileError(f"{path}: not a CBF file with a binary section (or damaged)")
    text = head[:cut].decode("ascii", "replace")
    sizes = {k: v for k, v in re.findall(r"X-Binary-([\w-]+):\s*\"?([^\"\r\n]*)", text)}
    try:
        shape = (int(sizes["Size-Second-Dimension"]), int(sizes["Size-Fastest-Dimension"]))
    except (KeyError, ValueError):
        raise InputFileError(f"{path}: the binary section gives no frame size (damaged?)") from None
    count = sizes.get("Number-of-Elements", "").strip()
    if count.isdigit() and int(count) != shape[0] * shape[1]:  # (a frame read sheared)
        raise InputFileError(f"{path}: the binary section holds {count} pixels, not its "
                             f"{shape[1]} x {shape[0]} (damaged?)")  # fmt: skip
    return RawHeader(path, header_lines(text), shape, sizes.get("Element-Type", "").strip())


def header_lines(text: str) -> list[str]:
    """The PILATUS_1.2 lines of a CIF header's ``_array_data.header_contents`` text field
    (between the lines ``;``), without the leading ``# ``."""
    m = re.search(r"_array_data\.header_contents\s*\r?\n;(.*?)\r?\n;", text, re.S)
    if m is None:
        return []
    return [ln.strip()[1:].strip() for ln in m.group(1).splitlines() if ln.strip().startswith("#")]


_NUM = r"([-+0-9.eE]+)"
#: PILATUS_1.2 lines this project reads and rewrites: name -> pattern of its values.
KEYS = {
    "Detector": r"^Detector:\s*(.*)$",
    "sensor": rf"^(\w+) sensor, thickness {_NUM} m",
    "Pixel_size": rf"^Pixel_size {_NUM} m x {_NUM} m",
    "Exposure_time": rf"^Exposure_time {_NUM} s",
    "Exposure_period": rf"^Exposure_period {_NUM} s",
    "Count_cutoff": rf"^Count_cutoff {_NUM} counts",
    "N_excluded_pixels": rf"^N_excluded_pixels\s*=\s*{_NUM}",
    "Wavelength": rf"^Wavelength {_NUM} A",
    "Detector_distance": rf"^Detector_distance {_NUM} m",
    "Beam_xy": rf"^Beam_xy \(\s*{_NUM},\s*{_NUM}\s*\) pixels",
    "Start_angle": rf"^Start_angle {_NUM} deg",
    "Angle_increment": rf"^Angle_increment {_NUM} deg",
    "Detector_2theta": rf"^Detector_2theta {_NUM} deg",
    "Omega": rf"^Omega {_NUM} deg",
    "Omega_increment": rf"^Omega_increment {_NUM} deg",
    "Chi": rf"^Chi {_NUM} deg",
    "Chi_increment": rf"^Chi_increment {_NUM} deg",
    "Kappa": rf"^Kappa {_NUM} deg",
    "Phi": rf"^Phi {_NUM} deg",
    "Phi_increment": rf"^Phi_increment {_NUM} deg",
    "Oscillation_axis": r"^Oscillation_axis\s+(\S+)",
    "N_oscillations": rf"^N_oscillations {_NUM}",
}
_TEXT_KEYS = ("Detector", "Oscillation_axis")


#: Lengths in other units than the metres of PILATUS_1.2 (``Detector_distance 250.00 mm``,
#: as some writers give it): their factor to metres.
_TO_METRES = {"mm": 1e-3, "um": 1e-6, "µm": 1e-6, "μm": 1e-6}
_LENGTH = re.compile(rf"{_NUM} (mm|um|µm|μm)(?!\w)")


def in_metres(line: str) -> str:
    """``line`` with its lengths in mm or µm written in metres, as the :data:`KEYS` patterns
    read them (``Detector_distance 250.00 mm`` -> ``Detector_distance 0.25 m``)."""

    def metres(m):
        try:
            return f"{float(m.group(1)) * _TO_METRES[m.group(2)]!r} m"
        except ValueError:
            return m.group(0)

    if " mm" not in line and "um" not in line and "µm" not in line and "μm" not in line:
        return line  # (most lines: no regular expression run for them)
    return _LENGTH.sub(metres, line)


def numbers_of(lines: list[str], key: str) -> tuple | None:
    """The numbers a line of :data:`KEYS` holds (``Beam_xy``: two), or None: one pattern, not
    a whole :func:`parse_header`, for a value read from every file."""
    pat = re.compile(KEYS[key])
    for line in lines:
        if key != "sensor" and not line.startswith(key):  # (the others' lines: skipped fast)
            continue
        line = in_metres(line)
        m = pat.match(line)
        if m:
            return tuple(float(g) for g in m.groups())
        if _unparsed_key(line) == key:
            raise ValueError(f"header line {line!r} does not hold a number")
    return None


def _unparsed_key(line: str) -> str | None:
    """The number-holding :data:`KEYS` name a line begins with where its pattern does not
    match the line (``Start_angle abc deg.``), else None: such a line is damaged, not
    absent. A NaN or infinite value (``Beam_xy (nan, 43.30) pixels``, as lbnl-to-cbf
    writes a master's unknown value) is an unknown value: absent, as before."""
    word = re.split(r"[\s=:]", line, maxsplit=1)[0]
    if word in KEYS and word not in _TEXT_KEYS and not re.match(KEYS[word], line):
        return None if _NOT_FINITE.search(line) else word
    return None


#: The number-holding keys, for a quick look at a line's start.
_NUMBER_KEYS = tuple(k for k in KEYS if k not in _TEXT_KEYS)


def damaged_line(lines: list[str]) -> str | None:
    """The first of a header's ``lines`` that names a number-holding key but does not parse
    (lengths in mm or µm read as :func:`parse_header` reads them), or None."""
    named = (ln for ln in lines if ln.startswith(_NUMBER_KEYS))
    return next((ln for ln in named if _unparsed_key(in_metres(ln))), None)


_NOT_FINITE = re.compile(r"(?i)(?<![\w.])[-+]?(nan|inf|infinity)(?![\w.])")


def key_of(line: str) -> str | None:
    """The :data:`KEYS` name a header line sets, or None."""
    for key, pat in KEYS.items():
        if re.match(pat, line):
            return key
    return None


@dataclass
class Header:
    """Typed PILATUS_1.2 values: SI lengths (m), seconds, degrees, ångström, pixels;
    ``lines`` the header as read (the lines no key names are written back as they are)."""

    values: dict = field(default_factory=dict)
    lines: list = field(default_factory=list)

    def get(self, key, default=None):
        return self.values.get(key, default)


def parse_header(raw: RawHeader | list[str], path: str = "") -> Header:
    """Typed values of a header's lines. A known line whose numbers do not parse is a
    MetadataError naming the file (a pixel size that is text is never carried on)."""
    lines = raw.lines if isinstance(raw, RawHeader) else list(raw)
    path = raw.path if isinstance(raw, RawHeader) else path
    values = {}
    for line in map(in_metres, lines):
        key = key_of(line)
        if key is None:
            if _unparsed_key(line):
                raise MetadataError(f"{path}: header line {line!r} does not hold a number")
            continue
        groups = re.match(KEYS[key], line).groups()
        if key in _TEXT_KEYS:
            values[key] = groups[0].strip()
            continue
        try:
            nums = [float(g) for g in groups[-2:] if g is not None] if key in (
                "Pixel_size", "Beam_xy") else [float(groups[-1])]  # fmt: skip
        except ValueError:
            raise MetadataError(f"{path}: header line {line!r} does not hold a number") from None
        if key == "sensor":  # (material, thickness in m), as format_line takes it
            values[key] = (groups[0], nums[0])
            continue
        values[key] = tuple(nums) if len(nums) > 1 else nums[0]
    return Header(values, lines)


def detector_name(header: Header) -> tuple[str | None, str | None]:
    """(description, serial number) of ``# Detector: PILATUS 2M, S/N 24-0107 Diamond``."""
    text = header.get("Detector")
    if text is None:
        return None, None
    m = re.match(r"^(.*?),?\s*S/N\s+(\S+)", text)
    return (m.group(1).strip(), m.group(2)) if m else (text, None)


def _number(v: float, digits: int) -> str:
    """``v`` with ``digits`` decimals, more when that would not give ``v`` back closely."""
    text = f"{v:.{digits}f}"
    if abs(float(text) - v) > 1e-9 * max(1.0, abs(v)):
        text = f"{v:.10g}"
    return text


def _micro(v: float) -> str:
    return f"{_number(v * 1e6, 0) if float(v * 1e6).is_integer() else f'{v * 1e6:.10g}'}e-6"


def format_line(key: str, value) -> str:
    """One PILATUS_1.2 header line (without ``# ``) for a :data:`KEYS` name and its value."""
    if key == "Detector":
        return f"Detector: {value}"
    if key == "sensor":
        material, thickness = value
        return f"{material} sensor, thickness {_number(thickness, 6)} m"
    if key == "Pixel_size":
        return f"Pixel_size {_micro(value[0])} m x {_micro(value[1])} m"
    if key == "Count_cutoff":
        return f"Count_cutoff {int(round(value))} counts"
    if key == "N_excluded_pixels":
        return f"N_excluded_pixels = {int(value)}"
    if key == "Beam_xy":
        return f"Beam_xy ({_number(value[0], 2)}, {_number(value[1], 2)}) pixels"
    if key == "Oscillation_axis":
        return f"Oscillation_axis {value}"
    if key == "N_oscillations":
        return f"N_oscillations {int(value)}"
    unit, digits = _UNITS.get(key, ("deg.", 4))  # the angles
    return f"{key} {_number(value, digits)} {unit}"


#: Unit and decimals of the one-number lines that are not angles.
_UNITS = {"Exposure_time": ("s", 7), "Exposure_period": ("s", 7), "Wavelength": ("A", 5),
          "Detector_distance": ("m", 5)}  # fmt: skip


def format_header(values: dict, base: list[str] = ()) -> str:
    """The ``_array_data.header_contents`` text: the lines of ``base`` with each line a key
    of ``values`` names rewritten, then the keys ``base`` lacks; ``# `` before each, CRLF."""
    out, done = [], set()
    for line in base:
        key = key_of(in_metres(line))  # (Pixel_size 0.172 mm x 0.172 mm: rewritten too)
        if key in values:
            out.append(format_line(key, values[key]))
            done.add(key)
        else:
            out.append(line)
    out += [format_line(k, v) for k, v in values.items() if k not in done and v is not None]
    return "\r\n".join("# " + line for line in out)


# --------------------------------------------------------------------------- whole files
def read_checked(path: str) -> bytes:
    """A miniCBF file's bytes, checked: a .gz/.bz2 stream must decompress whole (its CRC
    holds), the binary section must be as long as its X-Binary-Size and match its
    Content-MD5. TruncatedDataError naming the file otherwise (FabIO would decode damaged
    pixels with only a log line)."""
    try:
        with _open(path) as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as e:  # gzip: CRC, length, the stream; bz2
        raise TruncatedDataError(f"{path}: damaged or cut short ({e})") from e
    start = raw.find(BINARY_START)
    if start < 0:
        raise TruncatedDataError(f"{path}: no binary section (not a CBF file, or cut short)")
    head = raw[:start].decode("ascii", "replace")
    size = re.search(r"X-Binary-Size:\s*(\d+)", head)
    payload = raw[start + len(BINARY_START) :]
    if size is not None:
        n = int(size.group(1))
        if len(payload) < n:
            raise TruncatedDataError(f"{path}: the pixel data is cut short ({len(payload)} of "
                                     f"{n} bytes)")  # fmt: skip
        payload = payload[:n]
    md5 = re.search(r"Content-MD5:\s*(\S+)", head)
    if md5 is not None and base64.b64encode(hashlib.md5(payload).digest()).decode() != md5[1]:
        raise TruncatedDataError(f"{path}: the pixel data does not match its Content-MD5 "
                                 "(damaged)")  # fmt: skip
    return raw


# --------------------------------------------------------------------------- pixel markers
def mask_of(pixels: np.ndarray) -> np.ndarray:
    """The Dectris pixel mask (uint32 (ny, nx)) of a frame's markers: -1 (module gap) sets
    bit 0, any other negative value (-2: bad pixel) bit 1."""
    mask = np.zeros(pixels.shape, np.uint32)
    mask[pixels == GAP_VALUE] = GAP_BIT
    mask[pixels < GAP_VALUE] = BAD_BIT
    return mask


def cbf_pixels(frame: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """A frame (unsigned integers, invalid pixels all bits set; or signed, invalid pixels
    negative, as ``-c sz3`` decodes) as miniCBF int32: pixels flagged in ``mask`` become -1
    (gap bit) or -2 (other bits), unflagged invalid pixels -1; counts above int32's range
    are an error, never wrapped."""
    frame = np.asarray(frame)
    invalid = None
    if frame.dtype.kind == "u":
        invalid = frame == np.iinfo(frame.dtype).max
    elif frame.dtype.kind == "i":
        invalid = frame < 0
    if frame.dtype.kind == "u" and frame.size:
        top = frame.max(where=~invalid, initial=0)
        if top > np.iinfo(np.int32).max:
            raise ValueError(f"a count of {top} does not fit miniCBF's signed 32-bit pixels")
    out = frame.astype(np.int32)
    if invalid is not None:
        out[invalid] = GAP_VALUE
    if mask is not None:
        out[(mask & GAP_BIT) != 0] = GAP_VALUE
        out[(mask != 0) & ((mask & GAP_BIT) == 0)] = BAD_VALUE
    return out
