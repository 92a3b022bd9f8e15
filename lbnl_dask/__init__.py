"""lbnl_dask: sum, bin and lossy-compress Eiger HDF5 datasets with dask, XDS/DIALS-readable.

The public API in a few names: ``open_dataset``/``read_meta`` (read), ``compress`` (the
whole job, as ``lbnl-compress``), ``read_squash`` (decode ``-q`` files) and the codecs
``HCompress``/``JPEG2000`` (numcodecs).
"""

__version__ = "0.1.0"

import importlib
import importlib.util

# HDF5's filters (bitshuffle-LZ4, ...) for every reader of our files, as before the names
# below were loaded on first use: hdf5plugin is light, dask and numba are not
import hdf5plugin  # noqa: F401, E402

#: Each public name and the module that defines it. They are imported on first use (PEP
#: 562), not with the package: ``import lbnl_dask`` stays light, and a console script
#: (:mod:`lbnl_dask.scripts`) can catch Ctrl-C while dask, numba and astropy load.
_API = {
    "open_dataset": "eiger",
    "read_meta": "eiger",
    "EigerDataset": "eiger",
    "compress": "pipeline",
    "read_squash": "writer",
    "DetectorMeta": "meta",
    "OutputOptions": "options",
    "RunSettings": "options",
    "Report": "report",
    "HCompress": "codecs",
    "JPEG2000": "codecs",
    "LbnlDaskError": "errors",
}

__all__ = list(_API)


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    elif importlib.util.find_spec(f"{__name__}.{name}") is not None:  # lbnl_dask.eiger...
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # found directly from now on
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))
