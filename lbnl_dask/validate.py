"""``lbnl-validate MASTER``: check a dataset the way XDS' plugins (Neggia, durin) and DIALS read it.

Prints one ``[ OK ]``, ``[WARN]`` or ``[FAIL]`` line per check and exits 1 on any failure.
The rules are those of the plugins: links ``/entry/data/data_NNNNNN`` to existing files,
3-D unsigned 1/2/4-byte data chunked (1, ny, nx), filters the plugins decode, equal block
sizes but the last, a uint32 unchunked unfiltered ``pixel_mask`` of the frame shape,
fixed-length ASCII ``NX_class`` attributes, nimages x ntrigger equal to the frames, the
geometry fields present; then every frame is decoded. With ``--xds-plugin LIB`` the
dataset is also read through that XDS plugin itself (:mod:`lbnl_dask.xds_plugin`).

Each rule is a function ``check_*(ctx, result)`` of :data:`CHECKS`, run in that order on a
:class:`Context` (the open master and its data blocks); a check returning False stops the
run, as nothing after it could be checked.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from dataclasses import dataclass, field

import h5py
import hdf5plugin
import numpy as np
from dask.threaded import get as threaded_get  # not "threads": the name imports distributed

from .cluster import stop_on_sigterm
from .errors import os_reason
from .header import angle_degrees, text_value
from .layout import (
    BSHUF_CD_COMPRESSOR,
    BSHUF_LZ4,
    BSHUF_NONE,
    CUTOFFS,
    DATA_GROUP,
    DET,
    DISTANCES,
    ENTRY,
    MASTER_SUFFIX,
    NEGGIA_TOP,
    NX_CLASS,
    OMEGA_INCREMENTS,
    PIXEL_MASK,
    SAMPLE,
    SAMPLE_GONIOMETERS,
    SATURATIONS,
    SPEC,
    TRANSFORM_ATTR,
    WAVELENGTHS,
    block_name,
    detector_groups,
    terminated_text,
)
from .validate_context import Block, Context, Result, dataset_filters


# --------------------------------------------------------------------------- the checks
def check_file(ctx: Context, r: Result):
    """The master exists and is HDF5; opens it for the other checks."""
    if not os.path.exists(ctx.master):
        r.add("FAIL", f"{ctx.master}: no such file")
        return False
    if os.path.isdir(ctx.master):
        r.add("FAIL", f"{ctx.master}: is a directory, not an HDF5 master file")
        return False
    try:
        hdf5 = os.path.isfile(ctx.master) and h5py.is_hdf5(ctx.master)
        if hdf5 and ctx.f is None:
            ctx.f = h5py.File(ctx.master, "r")
    except OSError as e:  # unreadable (permissions), truncated
        r.add("FAIL", f"{ctx.master}: cannot open it ({os_reason(e)})")
        return False
    if not hdf5:
        r.add("FAIL", f"{ctx.master}: not an HDF5 file")
        return False


def check_name(ctx: Context, r: Result):
    """XDS finds a master by its name: ``<prefix>_master.h5``."""
    base = os.path.basename(ctx.master)
    if not base.endswith(MASTER_SUFFIX):
        r.add("WARN", f"{base}: XDS' NAME_TEMPLATE finds masters named <prefix>{MASTER_SUFFIX}")


def check_links(ctx: Context, r: Result):
    """``/entry/data`` links ``data_000001``, ``data_000002``, ... with no gap."""
    if DATA_GROUP not in ctx.f:
        r.add("FAIL", f"no {DATA_GROUP} group")
        return False
    names = ctx.names
    if not names:
        r.add("FAIL", f"no {DATA_GROUP}/data_NNNNNN links (Neggia needs {block_name(1)}, ...)")
        return False
    ok = names == [block_name(k) for k in range(1, len(names) + 1)]
    r.add(
        "OK" if ok else "FAIL",
        f"{len(names)} data links"
        + ("" if ok else f", not numbered {block_name(1)}..: {names[:3]}"),
    )


def ok_files(ctx: Context) -> bool:
    """Every block opened and is 3-D, like the first, one frame per chunk."""
    return all(not block_failures(ctx, b) for b in ctx.blocks)


def block_failures(ctx: Context, b: Block) -> list[str]:
    """Why block ``b`` fails: missing or unreadable, not 3-D, frames unlike the first
    block's, or not chunked one frame per chunk; [] if it passes."""
    if b.error:
        return [b.error]
    if b.ndim != 3:
        return [f"{b.name}: data has shape {b.shape}, not (n, ny, nx)"]
    out = []
    if b is not ctx.first and (b.shape[1:] != ctx.shape or b.dtype != ctx.dtype):
        out.append(
            f"{b.name}: frames {b.shape[1:]} {b.dtype} differ from {block_name(1)}'s "
            f"{ctx.shape} {ctx.dtype}"
        )
    if b.chunks != (1,) + b.shape[1:]:
        out.append(f"{b.name}: chunks {b.chunks}, the plugins need (1, {b.shape[1]}, {b.shape[2]})")
    return out


def _filter_verdict(filters) -> tuple[str, str]:
    """(level, message) for a dataset's [(filter id, cd_values)]: what XDS' plugins decode."""
    if not filters:
        return "OK", "no filter"
    ids = [f[0] for f in filters]
    bs, lz4 = hdf5plugin.BSHUF_ID, hdf5plugin.LZ4_ID
    if ids == [bs]:
        cd = filters[0][1]
        comp = cd[BSHUF_CD_COMPRESSOR] if len(cd) > BSHUF_CD_COMPRESSOR else BSHUF_NONE
        if comp == BSHUF_LZ4:
            return "OK", f"bitshuffle+LZ4 ({bs}): Neggia, durin and DIALS read it"
        if comp == BSHUF_NONE:
            return "FAIL", (
                f"bitshuffle only ({bs}, no LZ4): Neggia does not read it, and durin "
                "(its source at 0f27832) fails on it: it reads an LZ4 header that "
                "such chunks do not have"
            )
        return "FAIL", f"bitshuffle+Zstandard ({bs}): neither Neggia nor durin reads it"
    if ids == [lz4]:
        return "OK", f"LZ4 ({lz4}): Neggia reads it"
    if ids == [hdf5plugin.SZ3_ID]:
        sz3 = f"SZ3 ({hdf5plugin.SZ3_ID}, lossy, as -c sz3 writes it)"
        return "FAIL", f"{sz3}: Neggia does not read it; durin only with HDF5_PLUGIN_PATH"
    return "FAIL", f"HDF5 filter(s) {ids}: XDS' plugins do not read them"


def _check_type_and_filter(b: Block, r: Result):
    if b.dtype.kind != "u" or b.dtype.itemsize not in (1, 2, 4):
        r.add("FAIL", f"data type {b.dtype}: the plugins read unsigned 1, 2 or 4-byte integers")
    else:
        r.add("OK", f"data type {b.dtype}, frames {b.shape[1]} x {b.shape[2]}")
    level, msg = _filter_verdict(b.filters)
    r.add(level, f"filter: {msg}")


def check_data_files(ctx: Context, r: Result):
    """Every block passes :func:`block_failures`; the first block's pixel type and filter
    (the others must match it) are ones the plugins read."""
    for b in ctx.blocks:
        if b is ctx.first:
            _check_type_and_filter(b, r)
        for msg in block_failures(ctx, b):
            r.add("FAIL", msg)
    if ok_files(ctx):
        r.add("OK", f"all {len(ctx.blocks)} data files present, chunked one frame per chunk")


def check_block_sizes(ctx: Context, r: Result):
    """Every data file but the last holds the same number of frames (Neggia's assumption)."""
    sizes = ctx.sizes
    if not sizes:
        return
    if len(set(sizes[:-1])) <= 1 and (len(sizes) == 1 or sizes[-1] <= sizes[0]):
        r.add("OK", f"block sizes {sizes[0]} (last {sizes[-1]}): equal but the last")
    else:
        r.add(
            "FAIL",
            f"block sizes {sizes}: every data file but the last must hold the same "
            "number of frames",
        )


def check_frame_count(ctx: Context, r: Result):
    """nimages x ntrigger equals the frames of the data files (when they all opened)."""
    if not ok_files(ctx):
        return
    n, t = ctx.f.get(SPEC + "/nimages"), ctx.f.get(SPEC + "/ntrigger")
    if n is None:
        r.add("FAIL", "detectorSpecific/nimages is missing")
        return
    odd = [d.name.rsplit("/", 1)[1] for d in (n, t) if d is not None and not _one_whole(d)]
    if odd:
        r.add("FAIL", f"{' and '.join(odd)} not one whole number (the plugins read one)")
        return
    prod, total = _first(n) * (_first(t) if t is not None else 1), sum(ctx.sizes)
    r.add(
        "OK" if prod == total else "FAIL",
        f"nimages x ntrigger = {prod}"
        + ("" if prod == total else f", but the data files hold {total} frames"),
    )


def _value(d):
    """The first value of dataset ``d`` (a one-element array: as read_meta reads it)."""
    return np.asarray(d[()]).reshape(-1)[0]


def _first(d) -> int:
    """The one value of a dataset :func:`_one_whole` accepts."""
    return int(_value(d))


def _one_whole(d) -> bool:
    """Whether ``d`` is a dataset of one whole number (a count)."""
    if not isinstance(d, h5py.Dataset) or d.size != 1 or d.dtype.kind not in "iuf":
        return False
    v = _value(d)
    return bool(np.isfinite(v) and v == int(v)) if d.dtype.kind == "f" else True


def check_pixel_mask(ctx: Context, r: Result):
    """detectorSpecific/pixel_mask is uint32, of the frame shape, unchunked and unfiltered;
    NXmx' detector/pixel_mask (DIALS') is of the frame shape too."""
    nxmx = ctx.f.get(DET + "/pixel_mask")
    if isinstance(nxmx, h5py.Dataset) and ctx.shape is not None and nxmx.shape != ctx.shape:
        r.add("FAIL", f"detector/pixel_mask: shape {nxmx.shape} differs from the frames "
                      f"{tuple(ctx.shape)}")  # fmt: skip
    m = ctx.f.get(PIXEL_MASK)
    if m is None:
        r.add("WARN", "no detectorSpecific/pixel_mask")
        return
    probs = []
    if m.dtype != np.uint32:
        probs.append(f"type {m.dtype} (Neggia needs uint32)")
    if ctx.shape is not None and m.shape != tuple(ctx.shape):
        probs.append(f"shape {m.shape} differs from the frames {tuple(ctx.shape)}")
    if m.chunks is not None or dataset_filters(m):
        probs.append("chunked or filtered (Neggia aborts on that)")
    r.add(
        "FAIL" if probs else "OK",
        "pixel_mask " + ("; ".join(probs) if probs else "uint32, frame shape, plain"),
    )


def check_nx_class_ascii(ctx: Context, r: Result):
    """Every NX_class attribute is a fixed-length ASCII string (durin reads no other); those
    of the NXdata and NXdetector groups should have room for a terminating null: durin reads
    them into a buffer of the stored size with a null in its last byte, so "NXdata" stored
    in 6 bytes reads as "NXdat", and durin finds no NXdata group and cannot open the file
    (h5py writes bytes so; lbnl_dask writes them as Dectris' EIGER2 does, in 7 bytes)."""
    bad, cut = [], []

    def visit(name, obj):
        if NX_CLASS in obj.attrs:
            t = obj.attrs.get_id(NX_CLASS).get_type()
            if t.get_class() == h5py.h5t.STRING and (
                t.is_variable_str() or t.get_cset() != h5py.h5t.CSET_ASCII
            ):
                bad.append(name)
            elif text_value(obj.attrs[NX_CLASS]) in DURIN_CLASSES and not terminated_text(
                obj, NX_CLASS
            ):
                cut.append(name)

    ctx.f.visititems(visit)
    if bad:
        r.add("FAIL", f"NX_class attributes not fixed-length ASCII in {bad[:3]} (durin cannot "
                      "read them)")  # fmt: skip
    if cut:  # a warning: durin's source does so, but not every durin may be that one
        r.add("WARN", f"NX_class of {cut[:3]} stored without room for a terminating null: "
                      "durin (its source at 0f27832) reads it one character short and cannot "
                      "open the file")  # fmt: skip
    if not bad and not cut:
        r.add("OK", "NX_class attributes fixed-length ASCII, terminated where durin needs it")


#: The NX_class values durin looks for (it opens a file by its NXdata and NXdetector groups).
DURIN_CLASSES = ("NXdata", "NXdetector")


#: Detector fields XDS and DIALS use: (name, needed); a missing one fails if needed, else warns.
GEOMETRY = (
    ("x_pixel_size", True),
    ("y_pixel_size", True),
    ("beam_center_x", True),
    ("beam_center_y", True),
    ("count_time", False),
    ("frame_time", False),
    ("sensor_thickness", False),
    ("bit_depth_image", False),
)


def check_geometry(ctx: Context, r: Result):
    """The detector's :data:`GEOMETRY` fields, its distance and a wavelength are present
    where XDS' plugins read them (the Dectris detector group)."""
    elsewhere = [g for g in detector_groups(ctx.f) if g != DET]
    if elsewhere:
        where = ", ".join(elsewhere)
        r.add("FAIL", f"the detector group is {where}, not {DET}: XDS' Neggia plugin reads "
                      "none of its fields (DIALS finds it by its NX_class)")  # fmt: skip
    for name, need in GEOMETRY:
        if f"{DET}/{name}" not in ctx.f:
            r.add("FAIL" if need else "WARN", f"{name} is missing")
        else:
            _check_value(ctx, r, f"{DET}/{name}", need, positive=name not in BEAM_CENTRE)
    for paths, what in ((DISTANCES, "detector_distance is missing"),
                        (WAVELENGTHS, "no wavelength")):  # fmt: skip
        there = [p for p in paths if p in ctx.f]
        if not there:
            r.add("FAIL", what)
        else:
            _check_value(ctx, r, there[0], True, positive=True)


#: The beam centre's fields: any finite number (a beam off the detector is one).
BEAM_CENTRE = ("beam_center_x", "beam_center_y")


def _check_value(ctx: Context, r: Result, path: str, need: bool, positive: bool) -> None:
    """The geometry field at ``path`` is one finite number (above 0 if ``positive``), as the
    plugins read it: else FAIL (``need``) or WARN. A dangling link counts as missing."""
    try:
        d = ctx.f.get(path)
        v = np.asarray(d[()]) if isinstance(d, h5py.Dataset) else None
    except (OSError, KeyError, RuntimeError):
        v = None
    name = path.rsplit("/", 1)[1]
    if v is None:
        why = "cannot be read (a link to a file or dataset not there?)"
    elif v.dtype.kind not in "iuf" or v.size != 1:
        why = f"is not one number ({v.dtype}, {v.size} value(s))"
    elif not np.isfinite(v.reshape(-1)[0]) or (positive and not v.reshape(-1)[0] > 0):
        why = f"is {v.reshape(-1)[0]:g}" + (": it must be above 0" if positive else "")
    else:
        return
    r.add("FAIL" if need else "WARN", f"{name} {why}")


def check_frame_size(ctx: Context, r: Result):
    """detectorSpecific/x_pixels_in_detector and y_ (where present) are the frames' width
    and height: readers size their images by them."""
    if ctx.shape is None:
        return
    wrong = []
    for axis, n in (("y", ctx.shape[0]), ("x", ctx.shape[1])):
        d = ctx.f.get(f"{SPEC}/{axis}_pixels_in_detector")
        if isinstance(d, h5py.Dataset) and d.shape == () and d.dtype.kind in "iu" and d[()] != n:
            wrong.append(f"{axis}_pixels_in_detector {d[()]} is not the frames' {n}")
    if wrong:
        r.add("FAIL", "; ".join(wrong))


def check_saturation(ctx: Context, r: Result):
    """A saturation value or count cutoff (XDS' OVERLOAD), and a bit depth of the data type."""
    if not any(p in ctx.f for p in (CUTOFFS[0],) + SATURATIONS):
        r.add("WARN", "no saturation value / count cutoff (XDS' OVERLOAD)")
    top = NEGGIA_TOP.get(ctx.dtype.itemsize) if ctx.dtype is not None else None
    sat = next((ctx.f[p] for p in SATURATIONS + (CUTOFFS[0],) if p in ctx.f), None)
    if top is not None and ctx.dtype.kind == "u" and _one_whole(sat) and _first(sat) >= top:
        r.add("WARN", f"{sat.name.rsplit('/', 1)[1]} {_first(sat)} is at or above {top}, which "
                      f"XDS' Neggia plugin reads in {ctx.dtype} pixels as invalid: its "
                      "overloads reach XDS as invalid pixels")  # fmt: skip
    bits = ctx.f.get(DET + "/bit_depth_image")
    if bits is not None and ctx.dtype is not None and int(bits[()]) != 8 * ctx.dtype.itemsize:
        r.add("WARN", f"bit_depth_image {int(bits[()])} but the data are {ctx.dtype}")


def check_pixel_transform(ctx: Context, r: Result):
    """Pixels that are not counts (lbnl-compress -S, -L, -X record what they are)."""
    what = ctx.f[ENTRY].attrs.get(TRANSFORM_ATTR) if ENTRY in ctx.f else None
    if what is not None:
        r.add("WARN", f"the pixels are {text_value(what)}, not counts (lbnl-compress -S/-L/-X): "
                      "XDS and DIALS take them as counts")  # fmt: skip


def check_omega(ctx: Context, r: Result):
    """The sample's goniometer holds omega angles (the last of the geometry): one per frame
    where there are several, stepping by its omega_increment where it gives one (DIALS
    takes the scan from the angles; a master cut short gives fewer, copied as they were)."""
    group = next((g for g in SAMPLE_GONIOMETERS if f"{g}/omega" in ctx.f), None)
    if group is None:
        r.add("WARN", f"no omega angles in {SAMPLE}")
        return
    r.add("OK", "geometry fields present")
    d = ctx.f[f"{group}/omega"]
    if not isinstance(d, h5py.Dataset) or d.dtype.kind not in "iuf" or d.size < 2:
        return
    omega = np.asarray(d[()], float).reshape(-1) * angle_degrees(d)
    if ok_files(ctx) and ctx.sizes and omega.size != sum(ctx.sizes):
        r.add("WARN", f"{group}/omega holds {omega.size} angles for {sum(ctx.sizes)} frames")
    inc = next((ctx.f[f"{group}/{n}"] for n in OMEGA_INCREMENTS if f"{group}/{n}" in ctx.f), None)
    if isinstance(inc, h5py.Dataset) and inc.dtype.kind in "iuf" and inc.size == 1:
        want = float(np.ravel(inc[()])[0]) * angle_degrees(inc)
        step = float(np.median(np.diff(omega)))
        if np.isfinite(want) and np.isfinite(step) and abs(step - want) > 0.01 * abs(want) + 1e-9:
            r.add("WARN", f"{group}/omega steps by {step:g} degrees a frame, but "
                          f"{inc.name.rsplit('/', 1)[1]} is {want:g}")  # fmt: skip


def check_decode(ctx: Context, r: Result):
    """Every frame decodes, read as lbnl_dask reads it; only if decoding was asked for and
    nothing failed before."""
    if not ctx.decode or r.failed:
        return
    from .eiger import open_dataset

    ctx.close()  # the reader opens every file again by path
    try:
        frames = open_dataset(ctx.master).frames
        counts = frames.map_blocks(
            lambda b: np.array([b.shape[0]])[:, None, None],
            chunks=((1,) * frames.numblocks[0], (1,), (1,)),
            dtype=int,
        ).compute(scheduler=threaded_get)
        r.add("OK", f"decoded all {int(counts.sum())} frames")
    except Exception as e:  # noqa: BLE001 - any decode failure is a validation failure
        r.add("FAIL", f"decoding frames failed: {e}")


def check_checksums(ctx: Context, r: Result):
    """Every stored chunk still has the CRC-32 lbnl_dask recorded when it wrote the file:
    damage HDF5 cannot see (a flipped byte inside a compressed chunk). Only with decoding,
    and even where the files failed a check of what XDS reads (a ``-c sz3`` output can be
    damaged too), as long as they are all there."""
    if not ctx.decode or not ok_files(ctx):
        return
    from .writer import damaged_frames

    recorded, bad = 0, []
    for path in dict.fromkeys(b.path for b in ctx.blocks):
        frames = damaged_frames(path)
        recorded += frames is not None
        bad += [f"{os.path.basename(path)} frame {k}" for k in frames or ()]
    if bad:
        r.add("FAIL", f"{len(bad)} stored chunk(s) changed since written: {', '.join(bad[:5])}")
    elif recorded:
        r.add("OK", f"checksums of {recorded} data file(s) match what was written")


def _xds_sample(ctx: Context) -> list[tuple[int, Block, int]]:
    """The frames an XDS plugin reads back: the first and last of every data file, as
    (frame number from 1, its block, index in the block)."""
    out, start = [], 0
    for b in ctx.blocks:
        for i in sorted({0, b.shape[0] - 1} if b.shape[0] else ()):
            out.append((start + i + 1, b, i))
        start += b.shape[0]
    return out


#: Frames read through a plugin at a time (one child process), and compared one at a time.
XDS_BATCH = 8


@dataclass
class _PluginSeen:
    """What :func:`check_xds_plugins` found for one plugin."""

    failed: str | None = None  # its one-line PluginError
    head: object = None  # the first PluginRead: the header
    bad: tuple | None = None  # (frame number, Differences) of the first frame read otherwise
    unread: dict = field(default_factory=dict)  # frame number -> unmasked counts read as < 0


def check_xds_plugins(ctx: Context, r: Result):
    """Read the dataset through each XDS plugin asked for (``--xds-plugin``), as XDS calls
    it: its header (frame size, pixel type, pixel size, frame count) agrees with the files,
    and the first and last frame of every data file come back as stored (the pixel mask
    applied: :func:`lbnl_dask.xds_plugin.frame_differences`). Only where every data file
    opened (a line says so otherwise). Each frame is read from the files once, for every
    plugin. Runs last: its failures do not stop the other checks."""
    if not ctx.plugins:
        return
    why = None if ok_files(ctx) else "the data files failed the checks above"
    if why is None and ctx.dtype.kind != "u":
        why = f"its pixels are {ctx.dtype}, and XDS' plugins read unsigned integers"
    if why:
        for plugin in ctx.plugins:
            r.add("WARN", f"{os.path.basename(plugin)}: not run, as {why}")
        return
    with h5py.File(ctx.master, "r") as f:  # (check_decode closed the master)
        _read_through_plugins(ctx, r, f)


def _read_through_plugins(ctx: Context, r: Result, f: h5py.File) -> None:
    from .xds_plugin import PluginError, frame_differences, read_frames

    m = f.get(PIXEL_MASK)
    mask = m[()] if isinstance(m, h5py.Dataset) and m.shape == tuple(ctx.shape) else None
    sample = _xds_sample(ctx)
    seen = {p: _PluginSeen() for p in ctx.plugins}
    for k in range(0, max(len(sample), 1), XDS_BATCH):  # (no frames: the header alone)
        part = sample[k : k + XDS_BATCH]
        reads = {}
        for plugin, s in seen.items():
            if s.failed is None and s.bad is None:
                try:
                    reads[plugin] = read_frames(plugin, ctx.master, [n for n, _, _ in part])
                    s.head = s.head or reads[plugin]
                except PluginError as e:
                    s.failed = str(e)
        for n, b, i in part:
            frame = None
            for plugin, got in reads.items():
                s = seen[plugin]
                # (past its frame count, or another frame size: the header says so)
                if s.bad or n not in got.frames or got.frames[n].shape != ctx.shape:
                    continue
                frame = f[DATA_GROUP][b.name][i] if frame is None else frame
                diff = frame_differences(got.frames[n], frame, mask)
                if diff.count:
                    s.bad = (n, diff)
                if diff.unread:
                    s.unread[n] = diff.unread
    # the header the files give: its sizes, and the pixel sizes where the master has them
    want = dict(nx=ctx.shape[1], ny=ctx.shape[0], nbytes=ctx.dtype.itemsize,
                nframes=sum(ctx.sizes))  # fmt: skip
    for axis in "xy":
        d = f.get(f"{DET}/{axis}_pixel_size")
        if isinstance(d, h5py.Dataset) and d.dtype.kind in "iuf":
            want[f"q{axis}"] = float(_value(d))
    for plugin, s in seen.items():
        _report_plugin(ctx, r, os.path.basename(plugin), s, len(sample), want)


def _report_plugin(ctx: Context, r: Result, name: str, s: _PluginSeen, sampled: int, want):
    """:func:`check_xds_plugins`' lines for one plugin, whose header should be ``want``."""
    if s.failed:
        hint, filters = "", ctx.first.filters
        durin_data = "durin" in name and "plugin_get_data" in s.failed
        if durin_data and filters and hdf5plugin.BSHUF_ID not in dict(filters):
            hint = (" (durin decodes bitshuffle itself, other filters through HDF5's plugins: "
                    "set HDF5_PLUGIN_PATH to hdf5plugin's, python -c 'import hdf5plugin; "
                    "print(hdf5plugin.PLUGIN_PATH)')")  # fmt: skip
        r.add("FAIL", s.failed + hint)
        return
    head = s.head
    odd = [f"{k} {_num(getattr(head, k))} (files: {_num(v)})" for k, v in want.items()
           if not np.isclose(getattr(head, k), v, rtol=1e-6 * isinstance(v, float),
                             atol=0)]  # (float32 pixel sizes; counts exactly)  # fmt: skip
    if odd:
        r.add("FAIL", f"{name}: header " + ", ".join(odd))
    if s.bad:
        n, d = s.bad
        y, x, g, w = d.first
        r.add("FAIL", f"{name}: frame {n}: {d.count} pixel(s) read otherwise than stored "
                      f"(first at y {y}, x {x}: {g} where Neggia 1.2 gives {w})")  # fmt: skip
    if s.unread:
        top = np.iinfo(np.dtype(f"i{ctx.dtype.itemsize}")).max
        frames = ", ".join(map(str, s.unread))
        r.add("WARN", f"{name} reads {sum(s.unread.values())} unmasked count(s) of {top} and "
                      f"above in frame(s) {frames} as invalid: XDS leaves them out (Neggia 1.2 "
                      "reads them; durin and earlier Neggia do not)")  # fmt: skip
    if not odd and not s.bad:
        r.add("OK", f"{name}: a header of {head.nframes} frames, NX {head.nx} x NY {head.ny}, "
                    f"{head.nbytes}-byte pixels of {head.qx * 1e3:g} x {head.qy * 1e3:g} mm; "
                    f"the first and last frame of each data file ({sampled} frames) read as "
                    "stored")  # fmt: skip


def _num(x) -> str:
    """A header value as the lines give it: pixel sizes (floats) in 6 digits."""
    return f"{x:g}" if isinstance(x, float) else str(x)


CHECKS = [
    check_file,
    check_name,
    check_links,
    check_data_files,
    check_block_sizes,
    check_frame_count,
    check_pixel_mask,
    check_nx_class_ascii,
    check_geometry,
    check_frame_size,
    check_saturation,
    check_pixel_transform,
    check_omega,
    check_checksums,
    check_decode,
    check_xds_plugins,
]


def validate(master, decode: bool = True, xds_plugins=()) -> Result:
    """Validate ``master`` and its data files; return a :class:`Result` (``.failed``, ``str()``).
    ``xds_plugins``: paths of XDS plugin libraries to read the dataset through as well."""
    r = Result()
    ctx = Context(master, decode=decode, plugins=tuple(xds_plugins))
    try:
        for check in CHECKS:
            if check(ctx, r) is False:
                break
    finally:
        ctx.close()
    return r


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="lbnl-validate",
        description="Check a dataset the way XDS' plugins (Neggia, durin) and DIALS read it: "
        "one [ OK ]/[WARN]/[FAIL] line per rule; exit status 1 on any failure.",
    )
    p.add_argument("master", help="the *_master.h5 file to check")
    p.add_argument(
        "--no-decode",
        action="store_true",
        help="skip decoding every frame and checking the chunks' checksums",
    )
    p.add_argument(
        "--xds-plugin",
        action="append",
        default=[],
        metavar="LIB",
        help="also read the dataset through this XDS plugin (the library XDS.INP's LIB= names, "
        "e.g. dectris-neggia.so or durin-plugin.so), as XDS calls it: its header and the first "
        "and last frame of every data file must agree with the files (repeatable)",
    )
    a = p.parse_args(argv)
    from .xds_plugin import path_problem

    for lib in a.xds_plugin:
        if why := path_problem(lib):
            p.error(why)
    try:
        with stop_on_sigterm():  # a batch system's time limit: the same line as Ctrl-C
            r = validate(a.master, decode=not a.no_decode, xds_plugins=a.xds_plugin)
    except KeyboardInterrupt as e:
        print(f"lbnl-validate: interrupted: {a.master} was not checked", file=sys.stderr)
        return 128 + getattr(e, "signal", signal.SIGINT)  # 130 for Ctrl-C, 143 for SIGTERM
    print(r)
    print(f"{a.master}: {'FAILED' if r.failed else 'valid'}")
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
