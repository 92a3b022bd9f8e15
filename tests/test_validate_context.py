"""What validate's checks share: the master's data links resolved to blocks, with why a
block cannot be opened."""

import h5py
import numpy as np

from lbnl_dask.layout import DATA, SPEC, block_path
from lbnl_dask.validate_context import Context, Result


def test_context_resolves_links_and_says_why_one_cannot_open(tmp_path):
    with h5py.File(tmp_path / "d1.h5", "w") as f:
        f.create_dataset(DATA, data=np.zeros((3, 4, 5), np.uint16), chunks=(1, 4, 5))
    with h5py.File(tmp_path / "x_master.h5", "w") as m:
        m[block_path(1)] = h5py.ExternalLink("d1.h5", DATA)
        m[block_path(2)] = h5py.ExternalLink("gone.h5", DATA)
        m[SPEC + "/nimages"] = np.uint32(3)
    with h5py.File(tmp_path / "x_master.h5", "r") as f:
        ctx = Context(tmp_path / "x_master.h5", f)
        assert ctx.names == ["data_000001", "data_000002"]
        first, second = ctx.blocks
        assert first.shape == (3, 4, 5) and first.chunks == (1, 4, 5) and first.error is None
        assert ctx.shape == (4, 5) and ctx.dtype == np.uint16 and ctx.sizes == [3]
        assert second.error.endswith("gone.h5 is missing")
    r = Result()
    r.add("OK", "fine")
    r.add("WARN", "odd")
    assert not r.failed and str(r) == "[ OK ] fine\n[WARN] odd"
    r.add("FAIL", "bad")
    assert r.failed
