"""Helpers the tests share (imported as ``tests.helpers``; fixtures stay in conftest.py)."""
from pathlib import Path

import h5py
import numpy as np

DATA = Path(__file__).resolve().parent / "data"
#: The nexgen NXmx master committed with the tests (BSD-3, see data/nexgen/README.md).
NEXGEN_MASTER = DATA / "nexgen" / "xrc_209_master.h5"


def write_master(path, data_files, nimages, ntrigger=1, dset="/entry/data/data", extra=None):
    """A minimal FileWriter-style master linking ``data_files`` (absolute paths)."""
    with h5py.File(path, "w") as f:
        g = f.create_group("entry/data")
        for k, df in enumerate(data_files, start=1):
            g[f"data_{k:06d}"] = h5py.ExternalLink(str(df), dset)
        s = f.create_group("entry/instrument/detector/detectorSpecific")
        s["nimages"] = np.uint32(nimages)
        s["ntrigger"] = np.uint32(ntrigger)
        for k, v in (extra or {}).items():
            f[k] = v
    return str(path)
