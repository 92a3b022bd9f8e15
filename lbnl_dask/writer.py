"""Write output datablock files and the new master, in the Dectris FileWriter conventions.

Every file is written under a temporary name (``<name>.part``) in its final folder and
renamed when complete (:func:`lbnl_dask.layout.part_path`), so a crash never leaves a file
that looks finished; a failed write removes its temporary. The master is prepared beside the
frames and put in place last. Layout (:mod:`lbnl_dask.layout`):
``/entry/data/data`` (n, ny, nx) unsigned, chunks (1, ny, nx), lossless filter,
``image_nr_low/high``; master links ``/entry/data/data_NNNNNN`` to each file; pixel_mask
uint32, unchunked, unfiltered; string attributes fixed-length ASCII.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import zlib
from contextlib import contextmanager

import h5py
import numpy as np

from . import layout
from .errorbound import SZ3Storage
from .errors import NoSpaceError, OptionError, OutputError
from .meta import ANGLE, MasterRewriter, bin_pixel_mask, rewritten, saturation_value

#: Lossless choices (``-c``) and what each means for readers; the filters: ``layout.FILTERS``.
COMPRESSIONS = layout.COMPRESSIONS
XDS_READABLE = layout.XDS_READABLE
#: The compressions whose chunks the graph encodes itself (outside HDF5's lock).
PRE_ENCODED = ("bslz4", "bszstd", "bshuf", "zstd", "sz3")


def lossless_filter(name: str, level: int | None = None) -> dict:
    """h5py ``create_dataset`` keyword arguments for a lossless choice of ``-c``/``-l``."""
    name = (name or "bslz4").lower()
    if name not in COMPRESSIONS:
        raise OptionError(f"unknown compression {name!r}: choose from {', '.join(COMPRESSIONS)}")
    c = layout.FILTERS[name]
    if c.levels is None:
        if level is not None:
            leveled = " and ".join(n for n in COMPRESSIONS if layout.FILTERS[n].levels)
            raise OptionError(f"-l/--compression_level applies to {leveled}, not {name}")
        return c.make(None)
    level = layout.DEFAULT_LEVEL if level is None else level
    lo, hi = c.levels
    if not lo <= level <= hi:
        raise OptionError(f"{c.label} compression level must be {lo}..{hi}, not {level}")
    return c.make(level)


ascii_attr = layout.ascii_attr


@contextmanager
def atomic_path(path: str, hdf5: bool = True, rename: bool = True):
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds
    (and, for an ``hdf5`` file, if it opens again). Without ``rename`` a finished temporary
    stays as it is, for :func:`finish_master_task` to rename; a failed one is removed."""
    tmp = layout.part_path(path)
    if os.path.exists(tmp):
        os.unlink(tmp)
    finished = False
    try:
        yield tmp
        if hdf5:
            with h5py.File(tmp, "r"):  # h5py reports a failed close only as a warning: reopen
                pass
        if rename:
            os.replace(tmp, path)
        finished = True
    except (OSError, RuntimeError) as e:
        if not no_space(e):
            raise
        raise refused_write(path, e) from None
    finally:
        if not (finished and not rename) and os.path.exists(tmp):
            os.unlink(tmp)


def refused_write(path: str, e: BaseException) -> OutputError:
    """The one-line error of a write of ``path`` that failed with ``e``: NoSpaceError, with
    the free space left, for a full disk or quota; else OutputError with the system's
    reason."""
    if no_space(e):
        free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
        return NoSpaceError(f"{path}: no space left on the device ({free / 1e6:.1f} MB free "
                            "there)")  # fmt: skip
    return OutputError(f"{path}: cannot be written ({getattr(e, 'strerror', None) or e})")


@contextmanager
def hdf5_file(tmp: str):
    """A new HDF5 file ``tmp`` (an h5py.File, mode "w") whose bytes reach the disk through
    :class:`FailLater`, not through HDF5's own driver: a write the disk refuses (full, or
    over a quota) had failed inside HDF5, which then could not close the file, and its
    clean-up at exit crashed the process (a segfault after the error line, h5py's tracebacks
    before it). Here HDF5 sees every write succeed and closes the file; the block then
    raises the refusal (OSError), for :func:`atomic_path` to report and remove the file,
    also where what HDF5 read back of the unwritten file made it fail. SIGINT and SIGTERM
    wait until the file is closed (:func:`lbnl_dask.cluster.signals_held`)."""
    from .cluster import signals_held  # (a Ctrl-C inside a write is one more failed write)

    if not hasattr(os, "pwrite"):  # (Windows: HDF5's own driver, as before)
        with h5py.File(tmp, "w") as f:
            yield f
        return
    with signals_held():
        raw = FailLater(tmp)
        try:
            with h5py.File(raw, "w") as f:
                yield f
        except Exception as e:  # HDF5 read back what it could not write: the write's error
            if raw.error is not None:
                raise raw.error from e
            raise
        finally:
            raw.close()
        if raw.error is not None:
            raise raw.error


class FailLater:
    """A new file, read and written by offset (``os.pwrite``/``os.pread``) for h5py's
    file-object driver. The first write that fails is kept in ``error`` and the file's
    writes stop there; the writer goes on as if they had been made (its later reads of
    them read zeros), so that it can close the file and the caller can raise ``error``."""

    def __init__(self, path: str):
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
        self.pos = self.size = 0
        self.error: OSError | None = None

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.pos, os.SEEK_END: self.size}[whence]
        self.pos = base + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while self.error is None and done < len(view):
            try:
                wrote = os.pwrite(self.fd, view[done:], self.pos + done)
                if wrote <= 0:  # (a file system that takes nothing more, without an error)
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                done += wrote
            except OSError as e:
                self.error = e
        self.pos += len(view)
        self.size = max(self.size, self.pos)
        return len(view)

    def readinto(self, buf) -> int:
        """Fill ``buf`` from the position: zeros past the end, as HDF5's own driver reads
        (h5py asks for the whole buffer and does not look at the count)."""
        view = memoryview(buf).cast("B")
        n = max(0, min(len(view), self.size - self.pos))
        got = 0
        if self.error is None and hasattr(os, "preadv"):
            got = os.preadv(self.fd, [view[:n]], self.pos)
        elif self.error is None:  # (macOS before 11: a copy)
            data = os.pread(self.fd, n, self.pos)
            got = len(data)
            view[:got] = data
        view[got:] = bytes(len(view) - got)  # (after a failed write too)
        self.pos += n
        return n

    def read(self, size: int = -1) -> bytes:
        n = max(0, self.size - self.pos) if size is None or size < 0 else size
        buf = bytearray(n)
        return bytes(buf[: self.readinto(buf)])

    def truncate(self, size: int | None = None) -> int:
        size = self.pos if size is None else size
        if self.error is None:
            try:
                os.ftruncate(self.fd, size)
            except OSError as e:
                self.error = e
        self.size = size
        return size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def no_space(e: BaseException) -> bool:
    """Whether an error from writing (h5py's, or the OS's) is a full file system."""
    text = str(e)
    return (getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
            or "No space left" in text or "Disk quota exceeded" in text
            or "errno = 28" in text or f"errno = {errno.EDQUOT}" in text)  # fmt: skip


JOB_ATTR = layout.JOB_ATTR


def _data_group(f: h5py.File) -> h5py.Group:
    """``/entry/data`` of a new file, with the NX_class attributes readers look for."""
    return layout.nx_group(layout.nx_group(f, layout.ENTRY), layout.DATA_GROUP)


def _frame_count_attrs(d: h5py.Dataset, first_frame: int, n: int, token: str) -> None:
    d.attrs["image_nr_low"] = np.uint64(first_frame)
    d.attrs["image_nr_high"] = np.uint64(first_frame + n - 1)
    layout.set_text_attr(d, JOB_ATTR, token)


def write_datablock(
    path: str,
    parts,
    first_frame: int,
    compression: str = "bslz4",
    level: int | None = None,
    token: str = "",
    frame_shape=None,
    dtype=None,
    filters: dict | None = None,
    attrs: dict | None = None,
) -> dict:
    """Write one output data file from ``parts``, in order: arrays (n_i, ny, nx), or object
    arrays of n_i chunks already encoded for the filter (``PRE_ENCODED``: by
    :func:`lbnl_dask.lossless.storage_codec`'s codec, sz3 by
    :class:`~lbnl_dask.errorbound.SZ3Storage`; then ``frame_shape`` and ``dtype`` are
    needed), written with ``write_direct_chunk``.
    ``filters``: the h5py filter arguments, for a compression whose filter needs more than
    ``-l`` (sz3: :meth:`~lbnl_dask.options.OutputOptions.storage_filter`); ``attrs``: more
    attributes of the frames dataset.

    ``first_frame`` is the 1-based output number of its first frame (image_nr_low);
    ``token`` identifies the job (:func:`lbnl_dask.resume.block_is_done`). The CRC-32 of
    every stored chunk goes beside the frames (:data:`lbnl_dask.layout.CHUNK_CRC`).
    Returns {"path", "frames", "bytes"}.
    """
    parts = [np.asarray(p) for p in parts]
    encoded = parts[0].dtype == object
    n = sum(p.shape[0] for p in parts)
    if encoded and compression not in PRE_ENCODED:
        raise ValueError(f"pre-encoded chunks are {' or '.join(PRE_ENCODED)} only")
    if layout.is_lossy(compression) and (filters is None or not encoded):  # moved markers
        raise ValueError(f"-c {compression} takes chunks SZ3Storage encoded, and its filters=")
    if filters is None:
        filters = lossless_filter(compression, level)
    ny, nx = frame_shape if encoded else parts[0].shape[1:]
    dtype = dtype if encoded else parts[0].dtype
    with atomic_path(path) as tmp:
        with hdf5_file(tmp) as f:
            d = _data_group(f).create_dataset(
                layout.DATA.rsplit("/", 1)[1],
                shape=(n, ny, nx),
                maxshape=(None, ny, nx),
                dtype=dtype,
                chunks=(1, ny, nx),
                **filters,
            )
            _frame_count_attrs(d, first_frame, n, token)
            for k, v in (attrs or {}).items():
                d.attrs[k] = v
            i, crcs = 0, []
            for p in parts:
                if encoded:  # (stored as they are: their checksums need no read back)
                    for chunk in p.reshape(-1):
                        d.id.write_direct_chunk((i, 0, 0), chunk)
                        crcs.append(zlib.crc32(chunk))
                        i += 1
                else:
                    d[i : i + p.shape[0]] = p
                    i += p.shape[0]
            crcs = np.array(crcs, np.uint32) if encoded else chunk_checksums(d)
            f.create_dataset(layout.CHUNK_CRC, data=crcs)
            f.flush()
    return {"path": path, "frames": n, "bytes": os.path.getsize(path)}


def chunk_checksums(d: h5py.Dataset) -> np.ndarray:
    """CRC-32 of each stored (filtered) chunk of a frames dataset (n, ny, nx): uint32 (n,)."""
    return np.array(
        [zlib.crc32(d.id.read_direct_chunk((i, 0, 0))[1]) for i in range(d.shape[0])], np.uint32
    )


def damaged_frames(path: str) -> list[int] | None:
    """1-based frames of an output data file whose stored chunk no longer has its recorded
    CRC-32 (or is missing); None if the file records no checksums (not written by us)."""
    with h5py.File(path, "r") as f:
        return damaged_in(f)


def damaged_in(f: h5py.File) -> list[int] | None:
    """:func:`damaged_frames` of an open output data file."""
    crc = f.get(layout.CHUNK_CRC)
    if crc is None:
        return None
    d, want = f[layout.DATA], crc[()]
    if len(want) != d.shape[0]:
        return list(range(1, d.shape[0] + 1))
    bad = []
    for i in range(d.shape[0]):
        try:
            ok = zlib.crc32(d.id.read_direct_chunk((i, 0, 0))[1]) == want[i]
        except (OSError, KeyError, ValueError):  # a chunk that is not there
            ok = False
        if not ok:
            bad.append(i + 1)
    return bad


def write_squash(path: str, parts, first_frame: int, codec_config: dict, token: str = "") -> dict:
    """Write the raw codec bytes of every frame to a squash file.

    ``parts`` holds the frames' lists of bytes, in order.

    ``/entry/data/data`` is a variable-length uint8 dataset, one entry per frame, with the
    codec's numcodecs config (JSON) in its ``codec`` attribute; read back by :func:`read_squash`.
    """
    frames = [b for part in parts for b in part]
    with atomic_path(path) as tmp:
        with hdf5_file(tmp) as f:
            d = _data_group(f).create_dataset(
                layout.DATA.rsplit("/", 1)[1], shape=(len(frames),), dtype=h5py.vlen_dtype(np.uint8)
            )
            for i, b in enumerate(frames):
                d[i] = np.frombuffer(b, np.uint8)
            layout.set_text_attr(d, "codec", json.dumps(codec_config))
            _frame_count_attrs(d, first_frame, len(frames), token)
            f.flush()
    return {"path": path, "frames": len(frames), "bytes": os.path.getsize(path)}


def read_squash(path) -> np.ndarray:
    """Decode every frame of a squash file (``-q``) back to counts (n, ny, nx).

    Example::

        approx = read_squash("out/b2s2h12_squash_000001.h5")   # the codec's own decoding
    """
    import numcodecs

    from .errors import InputFileError, os_reason

    try:
        with h5py.File(path, "r") as f:
            d = f.get(layout.DATA)
            if not isinstance(d, h5py.Dataset) or "codec" not in d.attrs:
                raise InputFileError(f"{path}: not a squash file (-q): no {layout.DATA} with "
                                     "its codec")  # fmt: skip
            codec = numcodecs.get_codec(json.loads(d.attrs["codec"]))
            return np.stack([codec.decode(d[i]) for i in range(d.shape[0])])
    except OSError as e:
        if isinstance(e, InputFileError):
            raise
        raise InputFileError(f"{path}: cannot read it as a squash file ({os_reason(e)})") from None


# ---------------------------------------------------------------- the master
def _terminate_text_attrs(obj):
    """Every text attribute of ``obj`` that durin could not read whole, as
    :func:`layout.set_text_attr` stores text (an input's are copied as h5py reads them:
    variable-length, or fixed-length without room for the terminator): fixed-length text
    byte for byte, variable-length text as ASCII (:func:`layout.ascii_attr`)."""
    for k in list(obj.attrs):
        if not layout.terminated_text(obj, k):  # (text of shape () or (1,))
            layout.set_text_attr(obj, k, np.ravel(obj.attrs[k])[0], obj.attrs.get_id(k).shape)


def _create_like(group: h5py.Group, name: str, value, like: h5py.Dataset, plain: bool = False):
    """Create dataset ``name`` = ``value`` with the attributes of ``like`` (and its chunking and
    filters when the shape is unchanged, unless ``plain``)."""
    kwargs = {}
    if not plain and like.chunks is not None and np.ndim(value) > 0:
        same = np.shape(value) == like.shape
        kwargs = dict(
            chunks=like.chunks if same else True,
            compression=like.compression,
            compression_opts=like.compression_opts,
        )
    d = group.create_dataset(name, data=value, **kwargs)
    for k, v in like.attrs.items():
        d.attrs[k] = v
    return d


def write_master(
    path: str,
    src_master: str | bytes,
    data_files: list[str],
    rewriter: MasterRewriter,
    pixel_mask: np.ndarray | None,
    token: str = "",
    rename: bool = True,
) -> dict:
    """Write the output master ``path`` from ``src_master`` (a path, or an HDF5 file image
    as bytes, as :meth:`~lbnl_dask.cbf_input.CbfSeries.master_source` gives): every group
    and dataset copied, the values summing and binning change rewritten (``rewriter``),
    ``pixel_mask`` (binned uint32, unchunked, unfiltered) replaced, and
    ``/entry/data/data_NNNNNN`` external links to ``data_files`` (paths relative to the
    master's folder) instead of the source's data. Without ``rename`` it is left complete
    as ``<path>.part`` (:func:`finish_master_task` renames it)."""
    with atomic_path(path, rename=rename) as tmp:
        source = io.BytesIO(src_master) if isinstance(src_master, bytes) else src_master
        with h5py.File(source, "r") as src, hdf5_file(tmp) as dst:
            starts = {}  # per-frame angle dataset -> its first output value
            found = layout.detector_groups(src)  # NXmx may name it otherwise: kept so
            det = found[0] if len(found) == 1 else layout.DET
            rules = _CopyRules(src, det, pixel_mask)
            _copy_group(src, dst, rewriter, rules, starts)
            _write_data_group(src, dst, rewriter, data_files)
            _drop_dangling_links(dst)
            _add_saturation(dst, rewriter.saturation, det)
            _add_image_count(dst, rewriter.n_out, det)
            _add_nexus_classes(dst)
            for p, start in starts.items():  # <axis>_start = the first output frame's start
                if p + "_start" in dst:
                    like = dst[p + "_start"]
                    like[()] = np.asarray(start, like.dtype)
            layout.set_text_attr(dst[layout.ENTRY], JOB_ATTR, token)
            dst[layout.ENTRY].attrs.pop(layout.TRANSFORM_ATTR, None)  # (an input's: not ours)
            if rewriter.transform:
                layout.set_text_attr(dst[layout.ENTRY], layout.TRANSFORM_ATTR, rewriter.transform)
            dst.flush()
            _terminate_text_attrs(dst)
            dst.visititems(lambda p, o: _terminate_text_attrs(o))
    return {"path": path, "bytes": os.path.getsize(path if rename else tmp)}


def _add_nexus_classes(dst: h5py.File) -> None:
    """NeXus' attributes where the input master gave none: the NX_class of each Dectris
    group present (dxtbx finds the entry and the detector by their classes; a hand-made
    master without them had kept none), and the default plot (``/@default``,
    ``/entry@default``, ``/entry/data@signal``), as l_bnl_compress wrote them."""
    for path, kind in layout.NX_CLASSES.items():
        g = layout.reach(dst, path)
        if isinstance(g, h5py.Group) and layout.NX_CLASS not in g.attrs:
            layout.set_text_attr(g, layout.NX_CLASS, kind)
    for where, name, value in (("/", "default", layout.ENTRY.strip("/")),
                               (layout.ENTRY, "default", layout.DATA_GROUP.rsplit("/", 1)[1]),
                               (layout.DATA_GROUP, "signal", layout.block_name(1))):  # fmt: skip
        if name not in dst[where].attrs:
            layout.set_text_attr(dst[where], name, value)


def _add_image_count(dst: h5py.File, n_out: int, det: str = layout.DET) -> None:
    """Where the input master gave no nimages (or ntrigger), the output's own are written:
    readers take the frame count from nimages x ntrigger. ``det``: the detector group."""
    spec = layout.on_detector(layout.SPEC, det)
    for name, value in (("nimages", n_out), ("ntrigger", 1)):
        group = _group_for(dst, spec, "NXcollection")
        if group is not None and name not in group:
            group.create_dataset(name, data=np.uint64(value))


def _group_for(dst: h5py.File, path: str, kind: str):
    """The output's group at ``path`` (created, of NX_class ``kind``, if absent); None
    where a link that cannot be followed holds its place (a meta file's group not at
    hand: nothing can be written into it)."""
    if dst.get(path, getlink=True) is None:
        return layout.nx_group(dst, path, kind)
    group = layout.reach(dst, path)
    return group if isinstance(group, h5py.Group) else None


def _add_saturation(dst: h5py.File, saturation, det: str = layout.DET) -> None:
    """The output's saturation written where the input master gave none at that place
    (NXmx' ``detector/saturation_value``, Dectris' ``detectorSpecific/saturation_value``, in
    the detector group ``det``): its pixels are clipped there, and readers must know they are
    not counts. DIALS (dxtbx) takes its trusted range from ``detector/saturation_value``
    alone: a master with only the count cutoff had given it none, and overloads read as
    counts."""
    if saturation is None:
        return
    value = saturation_value(saturation, np.uint32)
    for dectris in layout.SATURATIONS:
        folder, name = layout.on_detector(dectris, det).rsplit("/", 1)
        group = _group_for(dst, folder, layout.NX_CLASSES[dectris.rsplit("/", 1)[0]])
        if group is not None and group.get(name, getlink=True) is None:
            group.create_dataset(name, data=value)


#: What :meth:`_CopyRules.replace` gives for a dataset the output master leaves out.
_LEFT_OUT = object()


class _CopyRules:
    """What the output master holds instead of some of the source master's datasets:
    ``replace(path, dataset)`` gives the binned ``pixel_mask`` at a pixel mask (by its path
    in the detector group ``det``, or the same dataset reached by another name: a
    soft-linked detector group), :data:`_LEFT_OUT` for the input frames reached by another
    link (NXmx' ``detector/data``: the output master would carry them whole, unbinned),
    else None."""

    def __init__(self, src: h5py.File, det: str, pixel_mask):
        self.pixel_mask = pixel_mask
        self.mask_paths = {layout.on_detector(p, det) for p in layout.PIXEL_MASKS}
        found = (layout.reach(src, p) for p in self.mask_paths)
        self.masks = [o for o in found if isinstance(o, h5py.Dataset)]
        self.frames = layout.reach(src, layout.DATA)

    def replace(self, path: str, d: h5py.Dataset):
        if self.pixel_mask is not None and (
            path in self.mask_paths or any(d == m for m in self.masks)
        ):
            return self.pixel_mask
        if d.ndim == 3 and isinstance(self.frames, h5py.Dataset) and d == self.frames:
            return _LEFT_OUT
        return None


def _drop_dangling_links(dst: h5py.File) -> None:
    """Remove the output's soft links that lead nowhere (NXmx' ``detector/data`` ->
    ``/entry/data/data``, which the output holds as ``data_NNNNNN`` links): a reader
    following one fails."""
    dangling = []

    def check(name, link):
        if isinstance(link, h5py.SoftLink) and layout.reach(dst, name) is None:
            dangling.append(name)

    dst.visititems_links(check)
    for name in dangling:
        del dst[name]


def _copy_group(sg: h5py.Group, dg: h5py.Group, rewriter, rules, starts: dict) -> None:
    """Copy ``sg`` into ``dg`` (but ``/entry/data``), rewriting what ``rewriter`` names and
    what ``rules`` (:class:`_CopyRules`) replace, and recording in ``starts`` the first
    value of every per-frame angle dataset it rewrote."""
    for k, v in sg.attrs.items():
        dg.attrs[k] = v
    for name in sg:
        link = sg.get(name, getlink=True)
        p = f"{sg.name.rstrip('/')}/{name}"
        if p == layout.DATA_GROUP:
            continue
        if isinstance(link, h5py.SoftLink):
            dg[name] = link
            continue
        if isinstance(link, h5py.ExternalLink):
            obj = layout.reach(sg, name)
            if obj is None:  # a file or path not at hand: the link as it was, unless the
                if not rewritten(p):  # output's value differs (a binned mask: the link
                    dg[name] = h5py.ExternalLink(link.filename, link.path)  # gave the
                continue  # unbinned one once the file was there; header.link_notes)
            if isinstance(obj, h5py.Dataset) and obj.ndim > 2:
                continue  # frames (NXdetector/data -> a data file): not the output's
            # a group or dataset from a meta file (NXmx: pixel mask, flatfield, bit depths):
            # written into the output, rewritten (binned) as the master's own; the link would
            # name the unbinned values, and dangle from an output written elsewhere
        else:
            obj = sg[name]
        if isinstance(obj, h5py.Group):
            _copy_group(obj, dg.create_group(name), rewriter, rules, starts)
        elif (other := rules.replace(p, obj)) is not None:
            if other is not _LEFT_OUT:  # the binned pixel mask
                _create_like(dg, name, other.astype(np.uint32), obj, plain=True)
        else:
            new = rewriter.new_value(p, obj)
            if new is None:
                sg.copy(obj, dg, name=name)
                continue
            _create_like(dg, name, new, obj)
            m = ANGLE.match(name)
            if m and not m.group(2) and np.ndim(new) >= 1 and len(new) == rewriter.n_out:
                starts[p] = new[0]


def _write_data_group(src: h5py.File, dst: h5py.File, rewriter, data_files: list[str]) -> None:
    """``/entry/data``: the source's attributes and per-frame axes, links to ``data_files``."""
    data = dst.require_group(layout.ENTRY).create_group(layout.DATA_GROUP)
    sdata = src[layout.DATA_GROUP]
    for k, v in sdata.attrs.items():
        data.attrs[k] = v
    layout.set_text_attr(data, layout.NX_CLASS, layout.NX_CLASSES[layout.DATA_GROUP])
    if "signal" in data.attrs:
        layout.set_text_attr(data, "signal", layout.block_name(1))
    for name in sdata:  # NXmx keeps per-frame axes (omega, ...) beside the data
        if name == "data" or name.startswith("data_"):
            continue
        link = sdata.get(name, getlink=True)
        if isinstance(link, h5py.SoftLink):  # (NXmx: /entry/data/omega -> the goniometer's)
            data[name] = h5py.SoftLink(link.path)
        elif isinstance(link, h5py.HardLink) and isinstance(sdata[name], h5py.Dataset):
            d = sdata[name]
            new = rewriter.new_value(f"{layout.DATA_GROUP}/{name}", d)
            per_frame = d.ndim == 1 and d.dtype.kind in "iuf" and len(d) >= rewriter.n_total > 1
            if new is None and per_frame:  # another axis (image_id, start_time): the value of
                new = rewriter.per_frame(d[: rewriter.n_total], end=False)  # each first frame
            if new is None:
                src.copy(d, data, name=name)
            else:
                _create_like(data, name, new, d)
    for k, fname in enumerate(data_files, start=1):
        data[layout.block_name(k)] = h5py.ExternalLink(fname, layout.DATA)


# ---------------------------------------------------------------- the graph's write tasks
def package_frames(final_block, encoded_block, store, lossy_bytes=False):
    """What one chunk of output frames (n, ny, nx) gives the files: an object array (n, 1, 1)
    of (stored, size, lossy, lost) per frame. ``stored`` is the chunk ``store`` encoded
    (:func:`lbnl_dask.lossless.storage_codec`'s or :class:`~lbnl_dask.errorbound.SZ3Storage`)
    as a uint8 array, or the frame itself (``store`` None: ``-c none``); ``size`` the
    length of the lossy codec's bytes (None without one); ``lossy`` those bytes if
    ``lossy_bytes`` (for -q), else None; ``lost`` the valid pixels a reader will not read as
    counts (SZ3Storage), else None. Arrays, not bytes: dask sends them to the writer's worker
    out of band, without a copy through pickle."""
    out = np.empty((final_block.shape[0], 1, 1), dtype=object)
    for i in range(final_block.shape[0]):
        frame, lost = final_block[i], None
        if store is None:
            stored = frame
        elif isinstance(store, SZ3Storage):
            chunk, lost = store.encode(frame)
            stored = np.frombuffer(chunk, np.uint8)
        else:
            stored = np.frombuffer(store.encode(frame), np.uint8)
        lossy = None if encoded_block is None else encoded_block[i].item()
        size = lossy if lossy is None or isinstance(lossy, int) else len(lossy)  # a count: sampled
        out[i, 0, 0] = (stored, size, lossy if lossy_bytes else None, lost)
    return out


def write_block_task(path, packages, first_frame, compression, level, token, shape, dtype,
                     filters=None, after=None):  # fmt: skip
    """Write one data file from its chunks' :func:`package_frames`; the record gets the
    mean lossy codec bytes per frame (the report's per-block line) and, for sz3, the valid
    pixels that decode as no count (``lost_pixels``). ``after``: what a task that must run
    first gave (the prepared master's path), for the order only."""
    items = [p for pk in packages for p in pk.ravel()]
    if compression in PRE_ENCODED:
        stored = np.empty((len(items), 1, 1), dtype=object)
        stored[:, 0, 0] = [it[0] for it in items]
    else:
        stored = np.stack([it[0] for it in items])
    counts = [it[3] for it in items if it[3] is not None]
    lost = int(sum(counts)) if counts else None
    attrs = None if lost is None else {layout.LOST_ATTR: np.int64(lost)}
    rec = write_datablock(path, [stored], first_frame, compression, level, token, shape, dtype,
                          filters, attrs)  # fmt: skip
    sizes = [it[1] for it in items if it[1] is not None]
    if sizes:
        rec["lossy_bytes_mean"] = float(np.mean(sizes))
    if lost is not None:
        rec["lost_pixels"] = lost
    return rec


def write_squash_task(path, packages, first_frame, config, token):
    """Write one squash file (-q) from its chunks' :func:`package_frames`."""
    frames = [[it[2] for it in pk.ravel()] for pk in packages]
    return write_squash(path, frames, first_frame, config, token)


def prepare_master_task(path, src, links, rewriter, mask, b, token) -> str:
    """Write the master as ``<path>.part``, complete but not yet where readers look: a task
    that needs no frames, so it runs beside them instead of after them. The pixel mask is
    binned here. Returns the temporary's path for :func:`finish_master_task`."""
    binned = None if mask is None else bin_pixel_mask(np.asarray(mask), b)
    if binned is not None:
        rewriter.set_mask(binned)  # number_of_excluded_pixels counts the mask written
    write_master(path, src, links, rewriter, binned, token, rename=False)
    return layout.part_path(path)


def finish_master_task(prepared: str, path: str, blocks, squash):
    """The last task: it takes every data file's record (``blocks``, ``squash``), so it runs
    only once they are complete, and only then puts the master in place (the master is what
    makes an output look finished). Run twice (a retried task), it finds the master in
    place already."""
    if os.path.exists(prepared) or not os.path.exists(path):
        os.replace(prepared, path)
    return blocks
