"""Fixtures: synthetic datasets, and the folder of real test files (skipped where absent).

Helpers that tests import live in :mod:`tests.helpers`, not here.
"""

import os
from pathlib import Path

import pytest

from lbnl_dask.synth import make_dataset

HERE = Path(__file__).resolve().parent
#: The real Dectris/NeXus/PILATUS files (not in the repository: see README "Tests").
REALDATA = Path(os.environ.get("LBNL_REALDATA", HERE.parent.parent / "shared" / "realdata"))


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The folder of real test files; tests using it skip where it is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real test files not found at {REALDATA} (set LBNL_REALDATA; see README)")
    return REALDATA


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> str:
    """A 20-frame synthetic dataset on the 'tiny' detector, uint16, 2 data files of 10."""
    return make_dataset(
        tmp_path_factory.mktemp("tiny") / "tiny", "tiny", nframes=20, frames_per_file=10
    )


@pytest.fixture(scope="session")
def tiny32(tmp_path_factory) -> str:
    """A 14-frame synthetic uint32 dataset, data files of 5, 5 and 4 frames."""
    return make_dataset(
        tmp_path_factory.mktemp("tiny32") / "t32",
        "tiny",
        nframes=14,
        frames_per_file=5,
        dtype="uint32",
        seed=3,
    )
