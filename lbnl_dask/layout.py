"""The Dectris FileWriter / NXmx file layout, in one place: HDF5 paths, names, filters.

A master ``<prefix>_master.h5`` holds the metadata and links ``/entry/data/data_NNNNNN``
(numbered from 000001) to the data files ``<prefix>_data_NNNNNN.h5``, each holding
``/entry/data/data`` (n, ny, nx) chunked one frame per chunk. Readers (eiger, header),
writers (writer, synth) and the checker (validate) take every path and filter from here;
:data:`FILTERS` is the one table of the compressions ``-c`` chooses from, lossless but
one (``sz3``: SZ3's own filter; ``writer.lossless_filter`` checks ``-c``/``-l`` against it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import h5py
import hdf5plugin
import numpy as np

# --------------------------------------------------------------------------- paths
ENTRY = "/entry"
DATA_GROUP = ENTRY + "/data"
DATA = DATA_GROUP + "/data"  # the frames of a data file (or of a master without links)
INSTRUMENT = ENTRY + "/instrument"
DET = INSTRUMENT + "/detector"
SPEC = DET + "/detectorSpecific"
SAMPLE = ENTRY + "/sample"

#: Where the pixel mask is, the one Neggia reads (detectorSpecific) first.
PIXEL_MASK = SPEC + "/pixel_mask"
PIXEL_MASKS = (PIXEL_MASK, DET + "/pixel_mask")

#: Wavelength datasets, in the order a reader prefers them (the last is a misspelling
#: some masters carry).
WAVELENGTHS = (
    SAMPLE + "/beam/incident_wavelength",
    INSTRUMENT + "/beam/incident_wavelength",
    INSTRUMENT + "/beam/wavelength",
    INSTRUMENT + "/monochromator/wavelength",
    INSTRUMENT + "/monochromater/wavelength",
)
DISTANCES = (DET + "/detector_distance", DET + "/distance")
SATURATIONS = (DET + "/saturation_value", SPEC + "/saturation_value")
#: The least value XDS' Neggia plugin reads as invalid (-1) in 2- and 4-byte unsigned pixels
#: (``H5ToXds``: values at or above the signed type's top): saturations stay below it.
NEGGIA_TOP = {2: 32767, 4: 2**31 - 1}
#: Count cutoff (XDS' OVERLOAD): the detector's, else its first module's.
CUTOFFS = (
    SPEC + "/countrate_correction_count_cutoff",
    SPEC + "/detectorModule_000/countrate_correction_count_cutoff",
)


def detector_groups(f) -> list[str]:
    """Where a master's detector is: ``[DET]`` (the Dectris name, the only one XDS' plugins
    read) when that group exists, else the paths of every group of NX_class NXdetector in
    INSTRUMENT (NXmx leaves its name free): one, none or several."""
    if isinstance(f.get(DET), h5py.Group):
        return [DET]
    inst = f.get(INSTRUMENT)
    if not isinstance(inst, h5py.Group):
        return []
    found = []
    for name in inst:
        g = reach(inst, name)
        if isinstance(g, h5py.Group) and nx_class(g) == "NXdetector":
            found.append(f"{INSTRUMENT}/{name}")
    return found


def reach(group: h5py.Group, path: str):
    """``group.get(path)``; None where a link leads to a file or path not at hand (or loops
    back on itself)."""
    try:
        return group.get(path)
    except (KeyError, OSError, ValueError, RuntimeError):
        return None


def on_detector(path: str, det: str) -> str:
    """``path`` with the Dectris detector group (DET) replaced by ``det``, the master's own
    (see :func:`detector_groups`); other paths as they are."""
    if det == DET or not (path == DET or path.startswith(DET + "/")):
        return path
    return det + path[len(DET) :]


def nx_class(group) -> str:
    """A group's NX_class as text ("" without one), however stored (fixed or variable-length
    string, bytes, a 1-element array)."""
    v = group.attrs.get(NX_CLASS)
    if isinstance(v, np.ndarray):
        v = v.flat[0] if v.size else b""
    return v.decode("ascii", "replace") if isinstance(v, bytes) else str(v) if v is not None else ""


#: Groups holding ``omega`` (per-frame start angles, deg): the sample's goniometer (FileWriter),
#: its NXmx transformations, else beside the data.
GONIOMETER = SAMPLE + "/goniometer"
SAMPLE_GONIOMETERS = (GONIOMETER, SAMPLE + "/transformations")
OMEGA_GROUPS = SAMPLE_GONIOMETERS + (DATA_GROUP,)
OMEGA_INCREMENTS = ("omega_increment", "omega_range_average")  # names in an omega group

# --------------------------------------------------------------------------- names
MASTER_SUFFIX = "_master.h5"
BLOCK_RE = re.compile(r"^data_(\d{6})$")


def block_name(k: int) -> str:
    """The master's link to data file ``k`` (1-based): ``block_name(1) == "data_000001"``."""
    return f"data_{int(k):06d}"


def block_path(k: int) -> str:
    """The link to data file ``k`` by path: ``block_path(1) == "/entry/data/data_000001"``."""
    return f"{DATA_GROUP}/{block_name(k)}"


def block_number(name: str) -> int | None:
    """``k`` of a ``data_NNNNNN`` link name, or None for any other name."""
    m = BLOCK_RE.match(name)
    return int(m.group(1)) if m else None


def output_file_name(prefix: str, k: int) -> str:
    """lbnl-compress's (and l_bnl_compress') name of output data file ``k``:
    ``<prefix>_NNNNNN.h5``."""
    return f"{prefix}_{int(k):06d}.h5"


#: A glob of every output data file name of a prefix (``glob.escape(prefix) + OUTPUT_GLOB``).
OUTPUT_GLOB = "_" + "[0-9]" * 6 + ".h5"
#: The detector module groups inside detectorSpecific (``detectorModule_000``...).
MODULE_PREFIX = "detectorModule_"


def data_file_name(prefix: str, k: int) -> str:
    """The Dectris FileWriter's name of data file ``k``: ``<prefix>_data_NNNNNN.h5``."""
    return f"{prefix}_{block_name(k)}.h5"


def part_path(path: str) -> str:
    """The temporary name a file is written under until complete (``<path>.part``): a
    crash never leaves a file under its final name that looks finished."""
    return f"{path}.part"


#: Output job token attribute (on ``/entry`` of a master and on each data file's dataset).
JOB_ATTR = "lbnl_dask_job"
#: On ``/entry`` of an output master whose pixels are not counts (-S, -L, -X): what they are.
TRANSFORM_ATTR = "lbnl_pixel_transform"
#: ``-c sz3``: on each data file's dataset, its valid pixels that decode as no count
#: (negative or at the saturation), so a resumed run still reports them.
LOST_ATTR = "lbnl_lost_pixels"
#: Beside the frames in each output data file: the CRC-32 of every stored chunk (one per
#: frame), so damage HDF5 cannot see is found. XDS' plugins read only the ``data`` dataset.
CHUNK_CRC = DATA_GROUP + "/lbnl_chunk_crc32"

#: The first miniCBF header of a series read as input (its PILATUS_1.2 lines, newline
#: separated): what ``lbnl-to-cbf`` writes back, with the values the output changed.
MINICBF_HEADER = SPEC + "/lbnl_minicbf_header"

NX_CLASS = "NX_class"
#: NX_class of each group the writers create.
NX_CLASSES = {
    ENTRY: "NXentry",
    DATA_GROUP: "NXdata",
    INSTRUMENT: "NXinstrument",
    INSTRUMENT + "/beam": "NXbeam",
    INSTRUMENT + "/monochromator": "NXmonochromator",
    DET: "NXdetector",
    DET + "/goniometer": "NXtransformations",
    SPEC: "NXcollection",
    SAMPLE: "NXsample",
    GONIOMETER: "NXtransformations",
}


def write_dataset(group, name: str, value, units: str | None = None, dtype=None):
    """Create dataset ``name`` in ``group``: text as a terminated fixed-length ASCII string
    (:func:`set_text_attr`), numbers as ``dtype`` (default: numpy's), with a ``units``
    attribute if given."""
    if isinstance(value, str):
        t, space, data = _stored_text(value)
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_obj_track_times(False)  # as h5py's create_dataset: the same bytes every run
        h5py.h5d.create(group.id, name.encode(), t, space, dcpl=dcpl).write(
            h5py.h5s.ALL, h5py.h5s.ALL, data, mtype=t
        )
        d = group[name]
    else:
        d = group.create_dataset(name, data=np.asarray(value, dtype=dtype))
    if units is not None:
        set_text_attr(d, "units", units)
    return d


def ascii_attr(text: str) -> np.bytes_:
    """``text`` as ASCII bytes: µ (the micro of "µm" units) as u, Å as angstrom (NeXus'
    name of the unit), other non-ASCII characters as ?. What :func:`set_text_attr` stores,
    and what h5py reads back from it."""
    text = str(text).replace("µ", "u").replace("μ", "u")
    text = text.replace("\u00c5", "angstrom").replace("\u212b", "angstrom")  # (Å and Å)
    return np.bytes_(text.encode("ascii", "replace"))


def _stored_text(text, shape: tuple = ()):
    """(HDF5 type, dataspace, array) that store ``text`` as :func:`set_text_attr` says: a str
    through :func:`ascii_attr`; bytes (as h5py reads a stored string) byte for byte, as
    UTF-8 where they are not ASCII. ``shape``: () or (1,)."""
    if isinstance(text, bytes):
        data = bytes(text).rstrip(b"\0")
        cset = h5py.h5t.CSET_ASCII if data.isascii() else h5py.h5t.CSET_UTF8
    else:
        data, cset = ascii_attr(text), h5py.h5t.CSET_ASCII
    t = h5py.h5t.C_S1.copy()
    t.set_size(len(data) + 1)  # room for the null
    t.set_strpad(h5py.h5t.STR_NULLTERM)
    t.set_cset(cset)
    space = h5py.h5s.create_simple(shape) if shape else h5py.h5s.create(h5py.h5s.SCALAR)
    return t, space, np.full(shape, data, dtype=f"S{len(data) + 1}")


def set_text_attr(obj, name: str, text, shape: tuple = ()) -> None:
    """Set attribute ``name`` of ``obj`` (a group, dataset or file) to ``text`` as Dectris'
    EIGER2 writes NX_class: fixed-length, null terminated, with room for the terminator.
    durin (XDS' plugin) reads a string into a buffer of its stored size and puts a null in
    the last byte: a string stored without that room (h5py's default for bytes) loses its
    last character, and durin then finds no "NXdata" or "NXdetector" group and cannot open
    the file. Variable-length strings it does not read at all. ``text``: a str (stored as
    :func:`ascii_attr` gives it) or bytes (kept byte for byte); ``shape`` () or (1,)."""
    if name in obj.attrs:
        del obj.attrs[name]
    t, space, data = _stored_text(text, shape)
    h5py.h5a.create(obj.id, name.encode(), t, space).write(data, mtype=t)


def terminated_text(obj, name: str) -> bool:
    """Whether ``obj``'s attribute ``name`` is text as :func:`set_text_attr` stores it (or no
    text: numbers, arrays): what durin reads whole."""
    attr = obj.attrs.get_id(name)
    t = attr.get_type()
    if t.get_class() != h5py.h5t.STRING or attr.shape not in ((), (1,)):
        return True
    if t.is_variable_str():
        return False
    value = np.ravel(obj.attrs[name])[0]
    return t.get_size() > len(value.rstrip(b"\0"))


def nx_group(parent, name: str, nx_class: str | None = None):
    """Group ``name`` of ``parent`` (created if absent) with its NX_class (default: from
    :data:`NX_CLASSES` by the group's path) as :func:`set_text_attr` stores text."""
    g = parent.require_group(name)
    set_text_attr(g, NX_CLASS, nx_class or NX_CLASSES[g.name])
    return g


# --------------------------------------------------------------------------- filters
#: Bitshuffle's compressor code, the 5th of the filter's cd_values.
BSHUF_CD_COMPRESSOR = 4
BSHUF_NONE, BSHUF_LZ4, BSHUF_ZSTD = 0, 2, 3
#: Pixels per bitshuffle block in the chunks lbnl_dask writes with a compressor (bslz4,
#: bszstd). Each chunk's header records its block size, and every decoder takes it from
#: there (Neggia's ``readLz4Header``, durin's ``bslz4_decompress``, the HDF5 filter that
#: h5py and DIALS load); the filter's cd_values stay as Dectris writes them (block 0, the
#: default: 8 kB, 2048 uint32 pixels). Larger blocks store the same pixels in 2-22% fewer
#: bytes (``benchmarks/bench_bslz4_block.py``): LZ4 matches whole bit planes within a block
#: (an output's gaps at all bits set repeat in every upper plane of uint32 pixels), and a
#: block's own overhead is paid less often. ``-c bshuf`` (no header: its decoder takes the
#: block from cd_values) keeps the default.
BSHUF_BLOCK = 65536


@dataclass(frozen=True)
class Compression:
    """A lossless HDF5 compression: the filter h5py records (None: none) and who reads it."""

    name: str
    filter_id: int | None
    note: str  # what choosing it means for readers
    make: Callable[[int | None], dict]  # level -> h5py create_dataset keyword arguments
    xds: bool  # XDS' plugins read it
    output: bool = True  # a choice of lbnl-compress -c
    synth: bool = False  # lbnl-synth writes it (the Dectris FileWriter's choices, and none)
    levels: tuple[int, int] | None = None  # range of -l, inclusive
    label: str = ""  # its name in level messages
    lossy: bool = False  # stores values within an error bound, not the values themselves


_BS, _LZ4, _BLOSC = hdf5plugin.BSHUF_ID, hdf5plugin.LZ4_ID, hdf5plugin.BLOSC_ID
FILTERS: dict[str, Compression] = {
    c.name: c
    for c in (
        Compression(
            "bslz4",
            _BS,
            f"bitshuffle + LZ4 (HDF5 filter {_BS}): read by XDS (Neggia, durin) and DIALS",
            lambda lv: dict(hdf5plugin.Bitshuffle(nelems=0, cname="lz4")),
            xds=True,
            synth=True,
        ),
        Compression(
            "bszstd",
            _BS,
            f"bitshuffle + Zstandard (HDF5 filter {_BS}): NOT read by XDS' Neggia or durin",
            lambda lv: dict(hdf5plugin.Bitshuffle(nelems=0, cname="zstd", clevel=lv)),
            xds=False,
            levels=(1, 22),
            label="bszstd",
        ),
        Compression(
            "bshuf",
            _BS,
            f"bitshuffle only (HDF5 filter {_BS}): NOT read by XDS' plugins (Neggia has no "
            "such decoder; durin expects the LZ4 header these chunks lack)",
            lambda lv: dict(hdf5plugin.Bitshuffle(nelems=0, cname="none")),
            xds=False,
        ),
        Compression(
            "zstd",
            _BLOSC,
            f"Blosc with Zstandard, no shuffle (HDF5 filter {_BLOSC}), as "
            "l_bnl_compress' zstd: NOT read by XDS' plugins",
            lambda lv: dict(
                hdf5plugin.Blosc(cname="zstd", clevel=lv, shuffle=hdf5plugin.Blosc.NOSHUFFLE)
            ),
            xds=False,
            levels=(0, 9),
            label="zstd (Blosc)",
        ),
        Compression("none", None, "no compression", lambda lv: {}, xds=True, synth=True),
        Compression(
            "sz3",
            hdf5plugin.SZ3_ID,
            f"SZ3's own filter (HDF5 filter {hdf5plugin.SZ3_ID}), LOSSY within --sz3's bound, "
            "int32: read by h5py with hdf5plugin and DIALS, by durin only with HDF5_PLUGIN_PATH; "
            "NOT by Neggia (XDS' usual plugin)",
            lambda lv: {},  # the filter needs the bound: OutputOptions.storage_filter
            xds=False,
            lossy=True,
        ),
        Compression(
            "lz4",
            _LZ4,
            f"LZ4 (HDF5 filter {_LZ4}), as older Dectris firmware writes: read by Neggia",
            lambda lv: dict(hdf5plugin.LZ4(nbytes=0)),
            xds=True,
            output=False,
            synth=True,
        ),
    )
}
DEFAULT_LEVEL = 3  # -l when not given, for the compressions that take one


def is_lossy(name: str) -> bool:
    """A ``-c`` choice whose filter stores values within a bound (``sz3``), not the values."""
    c = FILTERS.get(name)
    return bool(c and c.lossy)


#: The -c choices and what each means for readers.
COMPRESSIONS = {n: c.note for n, c in FILTERS.items() if c.output}
XDS_READABLE = {n for n, c in FILTERS.items() if c.output and c.xds}
SYNTH_COMPRESSIONS = tuple(n for n, c in FILTERS.items() if c.synth)
