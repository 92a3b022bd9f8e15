"""lbnl_dask: sum, bin and lossy-compress Eiger HDF5 datasets with dask, XDS/DIALS-readable.

The public API in a few names: ``open_dataset``/``read_meta`` (read), ``compress`` (the
whole job, as ``lbnl-compress``), ``read_squash`` (decode ``-q`` files) and the codecs
``HCompress``/``JPEG2000`` (numcodecs).
"""

__version__ = "0.1.0"

from .codecs import JPEG2000, HCompress
from .eiger import EigerDataset, open_dataset, read_meta
from .errors import LbnlDaskError
from .meta import DetectorMeta
from .options import OutputOptions, RunSettings
from .pipeline import compress
from .report import Report
from .writer import read_squash

__all__ = [
    "open_dataset",
    "read_meta",
    "compress",
    "read_squash",
    "EigerDataset",
    "DetectorMeta",
    "OutputOptions",
    "RunSettings",
    "Report",
    "HCompress",
    "JPEG2000",
    "LbnlDaskError",
]
