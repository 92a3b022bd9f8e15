import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from lbnl_dask.synth import make_dataset

HERE = Path(__file__).resolve().parent
REALDATA = Path(os.environ.get("LBNL_REALDATA", HERE.parent.parent / "shared" / "realdata"))


@pytest.fixture(scope="session")
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.fail(f"real test files not found at {REALDATA} (set LBNL_REALDATA)")
    return REALDATA


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> str:
    """A 20-frame synthetic dataset on the 'tiny' detector, uint16, 2 data files of 10."""
    return make_dataset(tmp_path_factory.mktemp("tiny") / "tiny", "tiny", nframes=20, frames_per_file=10)


@pytest.fixture(scope="session")
def tiny32(tmp_path_factory) -> str:
    """A 14-frame synthetic uint32 dataset, data files of 5, 5 and 4 frames."""
    return make_dataset(tmp_path_factory.mktemp("tiny32") / "t32", "tiny", nframes=14,
                        frames_per_file=5, dtype="uint32", seed=3)


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
