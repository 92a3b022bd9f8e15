"""The lossy codecs, as numcodecs codecs: HCompress (astropy) and JPEG-2000 (OpenJPEG via glymur).

Each codec encodes one 2-D integer frame to bytes and decodes it back; all are registered
under the ``numcodecs.codecs`` entry point, so ``numcodecs.get_codec({"id": "lbnl_hcompress",
"scale": 12})`` finds them. The per-frame round trip of a block is :mod:`lbnl_dask.roundtrip`.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import os
import struct
import tempfile
import threading
import uuid

import numpy as np
from numcodecs.abc import Codec
from numcodecs.registry import register_codec

from .errors import LbnlDaskError

# astropy's HCompress C code keeps global state: never run two encodes/decodes at once in a
# process: two threads at once give wrong bytes and "qtree_decode: bad format code".
_HCOMPRESS_LOCK = threading.Lock()
#: HCompress' 32-bit wavelet overflows at 2**27 ("qtree_decode: bad format code").
HCOMPRESS_MAX = 2**26 - 1
#: glymur/OpenJPEG take at most 16-bit samples here.
J2K_MAX = 65535


class CodecError(LbnlDaskError, RuntimeError):
    """A codec cannot run (library missing) or was given data it cannot take."""


@functools.cache
def hcompress_c():
    """astropy's HCOMPRESS_1 C functions ``(compress, decompress)``, as its ``HCompress1``
    codec calls them (native int32 bytes, nx = rows, ny = columns, bytepix 4).

    They are loaded from astropy's extension module file itself: importing them by name
    runs ``astropy.io.fits``' package imports (astropy.units and more, ~0.2 s), which every
    lossy HCompress run paid for its sampled size line. Anything unexpected (another astropy
    layout) falls back to that import."""
    name = "astropy.io.fits.hdu.compressed._compression"
    try:
        spec = importlib.util.find_spec("astropy")  # finds the package without importing it
        folder = os.path.join(os.path.dirname(spec.origin), *name.split(".")[1:-1])
        path = next(
            p
            for suffix in importlib.machinery.EXTENSION_SUFFIXES  # the import's
            if os.path.exists(p := os.path.join(folder, "_compression" + suffix))
        )  # order
        mod = importlib.util.module_from_spec(importlib.util.spec_from_file_location(name, path))
        mod.__spec__.loader.exec_module(mod)
    except Exception:  # noqa: BLE001 - any surprise: the documented way
        mod = importlib.import_module(name)
    return mod.compress_hcompress_1_c, mod.decompress_hcompress_1_c


def hcompress_tile_rows(nrows: int) -> int:
    """Tile height astropy's CompImageHDU picks for HCOMPRESS_1, as the published
    tool's FITS round trip does: full-width tiles."""
    if nrows <= 30:
        return nrows
    for h in (16, 24, 20, 30, 28, 26, 22, 18, 14):
        if nrows % h == 0 or nrows % h > 3:
            return h
    return 17


#: Stream header: magic, format version (one byte), then ny, nx, dtype, tile heights and sizes.
#: Streams before versions existed began with b"LBHC" and no version byte (format 0); squash
#: files (-q) keep them on disk, so both still decode (tests/data holds one of each).
_HC_MAGIC = b"LBHV"
_HC_MAGIC_V0 = b"LBHC"
HC_FORMAT = 1


class HCompress(Codec):
    """HCompress (Haar wavelet, astropy's HCOMPRESS_1) of one 2-D integer frame.

    ``scale`` is the absolute quantisation step in counts (0 = lossless); ``tile_rows``
    the tile height (default: astropy's FITS choice, so pixels equal the published tool's).
    Encoded form: a small header (magic, format version, ny, nx, dtype, tile heights and
    sizes) then one HCompress stream per tile. Values must lie in [-HCOMPRESS_MAX,
    HCOMPRESS_MAX].

    Example::

        codec = HCompress(scale=12)
        approx = codec.decode(codec.encode(frame))   # frame: 2-D integers, at least 4 x 4
    """

    codec_id = "lbnl_hcompress"

    def __init__(self, scale: int = 12, smooth: bool = False, tile_rows: int | None = None):
        if not _whole(scale) or scale < 0:  # (2.7 had been taken as 2)
            raise ValueError(f"HCompress scale must be a whole number >= 0, not {scale!r}")
        if tile_rows is not None and (not _whole(tile_rows) or tile_rows < 4):
            raise ValueError(f"HCompress tile_rows must be None (the rule) or a whole number "
                             f">= 4, not {tile_rows!r}")  # fmt: skip
        self.scale = int(scale)
        self.smooth = bool(smooth)
        self.tile_rows = None if tile_rows is None else int(tile_rows)

    def get_config(self):
        return {
            "id": self.codec_id,
            "scale": self.scale,
            "smooth": self.smooth,
            "tile_rows": self.tile_rows,
        }

    def encode(self, buf):
        compress, _ = hcompress_c()
        a = np.asarray(buf)
        if a.ndim != 2 or a.dtype.kind not in "ui" or a.shape[0] < 4 or a.shape[1] < 4:
            raise CodecError(
                f"HCompress takes a 2-D integer frame of at least 4x4, not {a.shape} {a.dtype}"
            )
        if a.size and (a.max() > HCOMPRESS_MAX or a.min() < -HCOMPRESS_MAX):
            raise CodecError(
                f"HCompress takes values within +-{HCOMPRESS_MAX}, got {a.min()}..{a.max()}"
            )
        ny, nx = a.shape
        h = self.tile_rows or hcompress_tile_rows(ny)
        edges = list(range(0, ny, h)) + [ny]
        if (
            len(edges) > 2 and edges[-1] - edges[-2] < 4
        ):  # HCompress needs 4 rows: merge a short tail
            del edges[-2]
        a32 = a.astype(np.int32, copy=False)
        heights = [y1 - y0 for y0, y1 in zip(edges, edges[1:], strict=False)]
        with _HCOMPRESS_LOCK:
            streams = [
                compress(a32[y0:y1].tobytes(), y1 - y0, nx, self.scale, 4)
                for y0, y1 in zip(edges, edges[1:], strict=False)
            ]
        dt = a.dtype.str.encode("ascii").ljust(4, b" ")
        head = _HC_MAGIC + bytes([HC_FORMAT]) + struct.pack("<II4sI", ny, nx, dt, len(heights))
        head += b"".join(
            struct.pack("<II", hh, len(s)) for hh, s in zip(heights, streams, strict=False)
        )
        return head + b"".join(streams)

    def decode(self, buf, out=None):
        _, decompress = hcompress_c()
        b = memoryview(np.frombuffer(buf, dtype=np.uint8)).cast("B")
        pos = _hc_body_offset(b)
        ny, nx, dt, ntiles = struct.unpack_from("<II4sI", b, pos)
        dtype = np.dtype(dt.decode("ascii").strip())
        pos += 16
        tiles = [struct.unpack_from("<II", b, pos + 8 * i) for i in range(ntiles)]
        pos += 8 * ntiles
        # tiles straight into ``out`` when given (one pass less), else into a new array
        result = np.empty((ny, nx), dtype) if out is None else np.reshape(out, (ny, nx), copy=False)
        lo, hi = _decoded_range(dtype, result.dtype)
        y0 = 0
        with _HCOMPRESS_LOCK:
            for h, n in tiles:
                raw = decompress(bytes(b[pos : pos + n]), h, nx, self.scale, self.smooth, 4)
                tile = np.frombuffer(raw, dtype="i4")  # 4-byte integers whatever bytepix
                if lo is not None or hi is not None:  # lossy decoding may overshoot the type
                    tile = np.clip(tile, lo, hi)
                result[y0 : y0 + h] = tile.reshape(h, nx)
                pos += n
                y0 += h
        return out if out is not None else result


def _whole(v) -> bool:
    """Whether ``v`` is a whole number (an int, or a float with no fraction; not bool)."""
    if isinstance(v, bool):
        return False
    try:
        return float(v) == int(v)
    except (TypeError, ValueError, OverflowError):
        return False


def _decoded_range(stream: np.dtype, dest: np.dtype) -> tuple[int | None, int | None]:
    """The bounds (None: none) a lossy HCompress decode (int32) is clipped to: the overlap
    of the stream's own type's range and an integer destination's (a uint16 pixel decoded to
    65540 had wrapped to 4, an int16 one past 32767 to -32768, an int32 -998 into uint32 to
    4294966298); bounds at or beyond int32's are none."""
    info = np.iinfo(stream)
    lo, hi = int(info.min), int(info.max)
    if dest.kind in "iu":
        info = np.iinfo(dest)
        lo, hi = max(lo, int(info.min)), min(hi, int(info.max))
    i32 = np.iinfo(np.int32)
    return (None if lo <= i32.min else lo), (None if hi >= i32.max else hi)


def _hc_body_offset(b) -> int:
    """Where an lbnl_hcompress stream's header fields start, after its magic and version."""
    magic = bytes(b[:4])
    if magic == _HC_MAGIC_V0:
        return 4
    if magic != _HC_MAGIC:
        raise CodecError("not an lbnl_hcompress stream (bad magic)")
    if b[4] > HC_FORMAT:
        raise CodecError(
            f"lbnl_hcompress stream format {b[4]} is newer than this lbnl_dask "
            f"reads ({HC_FORMAT}): upgrade lbnl_dask"
        )
    return 5


def glymur_ladder(ratio: int) -> list[int]:
    """The published tool's -J quality-layer ladder: 75 -> [4800, ..., 150, 75]."""
    ladder = [int(ratio)]
    if ratio < 4000:
        while ladder[0] * 2 < 8000:
            ladder.insert(0, ladder[0] * 2)
    return ladder


def opj_ladder(ratio: int) -> list[int]:
    """The published tool's -K ladder: 75 -> [9600, ..., 150, 75]."""
    ladder = [max(int(ratio), 1)]
    while ladder[0] < 5001 and len(ladder) < 10:
        ladder.insert(0, ladder[0] * 2)
    return ladder


def scratch_dir() -> str:
    """Where glymur's temporary codestreams go: /dev/shm when usable, else the temp dir."""
    env = os.environ.get("LBNL_DASK_SCRATCH")
    if env:
        return env
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        return "/dev/shm"
    return tempfile.gettempdir()


def check_openjpeg() -> str:
    """Return OpenJPEG's version as glymur sees it, or raise CodecError with the fix."""
    import glymur

    v = glymur.version.openjpeg_version
    if tuple(int(x) for x in v.split(".")[:2]) < (2, 4):
        raise CodecError(
            f"glymur found OpenJPEG {v}: install OpenJPEG >= 2.4 "
            "(Debian/Ubuntu: apt-get install libopenjp2-7)"
        )
    return v


def _without_thread_pool(glymur) -> None:
    """glymur's default (``lib.num_threads`` 1) gives OpenJPEG a pool of one thread, to which
    every code block is handed and waited for (~470 context switches per 4M frame's encode
    and decode); 0 runs them in the calling thread, the same bytes. A user's own choice of
    more threads is kept. glymur refuses the option where OpenJPEG has no thread support
    (older than 2.4): nothing to change there."""
    if glymur.get_option("lib.num_threads") == 1:
        try:
            glymur.set_option("lib.num_threads", 0)
        except RuntimeError:
            pass


class JPEG2000(Codec):
    """JPEG-2000 (OpenJPEG through glymur) of one 2-D uint8/uint16 frame.

    ``ratio`` is the target compression ratio counted against the declared precision (16
    bits for uint16). ``irreversible`` selects the 9/7 (Daubechies) wavelet of the HDRMX
    paper; False gives the reversible 5/3 of the published tool. ``ladder`` lists the
    quality layers' ratios (default: just ``[ratio]``; see :func:`glymur_ladder`). glymur
    only writes files, so codestreams pass through unique scratch files, removed at once.

    Example::

        codec = JPEG2000(ratio=120)
        approx = codec.decode(codec.encode(frame))   # frame: 2-D uint16 (ny, nx)
    """

    codec_id = "lbnl_jpeg2000"

    def __init__(self, ratio: float = 120, irreversible: bool = True, ladder=None, numres: int = 6):
        if not (ratio > 1 and np.isfinite(ratio)):
            raise ValueError(f"JPEG-2000 ratio must be a finite number > 1, not {ratio!r}")
        if not _whole(numres) or numres < 1:
            raise ValueError(f"JPEG-2000 numres must be a whole number >= 1, not {numres!r}")
        self.ratio = float(ratio)
        self.irreversible = bool(irreversible)
        self.ladder = None if ladder is None else [int(x) for x in ladder]
        self.numres = int(numres)

    def get_config(self):
        return {
            "id": self.codec_id,
            "ratio": self.ratio,
            "irreversible": self.irreversible,
            "ladder": self.ladder,
            "numres": self.numres,
        }

    def _path(self):
        return os.path.join(scratch_dir(), f"lbnl-{os.getpid()}-{uuid.uuid4().hex}.j2k")

    def encode(self, buf):
        import glymur

        a = np.asarray(buf)
        if a.ndim != 2 or a.dtype not in (np.uint8, np.uint16) or a.size == 0:
            raise CodecError(f"JPEG-2000 takes a 2-D uint8/uint16 frame of at least 1x1, not "
                             f"{a.shape} {a.dtype}")  # fmt: skip
        check_openjpeg()
        _without_thread_pool(glymur)
        numres = max(1, min(self.numres, int(np.log2(min(a.shape))) + 1))
        path = self._path()
        try:
            glymur.Jp2k(
                path,
                data=np.ascontiguousarray(a),
                cratios=self.ladder or [self.ratio],
                irreversible=self.irreversible,
                numres=numres,
            )
            with open(path, "rb") as fh:
                return fh.read()
        finally:
            if os.path.exists(path):
                os.unlink(path)

    def decode(self, buf, out=None):
        import glymur

        _without_thread_pool(glymur)
        path = self._path()
        try:
            with open(path, "wb") as fh:
                fh.write(bytes(np.frombuffer(buf, dtype=np.uint8)))
            result = glymur.Jp2k(path)[:]
        finally:
            if os.path.exists(path):
                os.unlink(path)
        if out is not None:
            out[...] = result
            return out
        return result


register_codec(HCompress)
register_codec(JPEG2000)
