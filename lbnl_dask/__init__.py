"""lbnl_dask: sum, bin and lossy-compress Eiger HDF5 datasets with dask, XDS/DIALS-readable."""
from .eiger import EigerDataset, open_dataset, read_meta
from .errors import LbnlDaskError
from .meta import DetectorMeta

__all__ = ["open_dataset", "read_meta", "EigerDataset", "DetectorMeta", "LbnlDaskError"]
__version__ = "0.1.0"
