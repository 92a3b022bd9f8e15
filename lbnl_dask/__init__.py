"""lbnl_dask: sum, bin and lossy-compress Eiger HDF5 datasets with dask, XDS/DIALS-readable.

The public API in a few names: ``open_dataset``/``read_meta`` (read), ``compress`` (the
whole job, as ``lbnl-compress``), ``read_squash`` (decode ``-q`` files) and the codecs
``HCompress``/``JPEG2000`` (numcodecs).
"""
import os

# bitshuffle's OpenMP threads fight dask's own threads (measured 10x slower on 2 threads):
# one OpenMP thread per task unless the user chose otherwise.
os.environ.setdefault("OMP_NUM_THREADS", "1")

__version__ = "0.1.0"

from .codecs import HCompress, JPEG2000
from .eiger import EigerDataset, open_dataset, read_meta
from .errors import LbnlDaskError
from .meta import DetectorMeta
from .options import OutputOptions, RunSettings
from .pipeline import compress
from .report import Report
from .writer import read_squash

__all__ = ["open_dataset", "read_meta", "compress", "read_squash", "EigerDataset", "DetectorMeta",
           "OutputOptions", "RunSettings", "Report", "HCompress", "JPEG2000", "LbnlDaskError"]
