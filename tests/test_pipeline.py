"""The whole pipeline against a recorded fixture: refactors must not change a single output byte.

``tests/data/golden_outputs.json`` holds, for each setting below, a SHA-256 of every output
frame's pixels and of every master dataset and attribute (the job token aside: it names the
paths). It was recorded before the pipeline was split into modules; regenerate it only for a
change that is meant to alter the output::

    python tests/test_pipeline.py --record

The synthetic input is hashed too: if numpy ever draws different random numbers, the test
skips with that reason instead of blaming the pipeline.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest

from lbnl_dask import compress
from lbnl_dask.eiger import open_dataset
from lbnl_dask.layout import DATA_GROUP
from lbnl_dask.synth import make_dataset

GOLDEN = Path(__file__).resolve().parent / "data" / "golden_outputs.json"

#: (dataset name, options of compress): the chain's branches, each at least once.
#: The lossy round trip as the HDRMX paper has it (the decoded pixels as they come): how the
#: settings below were recorded, before the split.
HDRMX = dict(restore_totals=False)

SETTINGS = {
    "tiny-b1s1": ("tiny16", dict()),
    "tiny-b2s2h12": ("tiny16", dict(bin_range=2, sum_range=2, hcomp_scale=12, **HDRMX)),
    "tiny-b2s3j60-d3": (
        "tiny16",
        dict(bin_range=2, sum_range=3, j2k_ratio=60, data_block_size=3, **HDRMX),
    ),
    "tiny-b3s2-S2-u4": ("tiny32", dict(bin_range=3, sum_range=2, scale_factor=2.0, uint=4)),
    "tiny-b2-f4-L": ("tiny16", dict(bin_range=2, ufloat=4, logarithm_base="e")),
    "tiny-b2s2h8-keep": (
        "tiny16",
        dict(bin_range=2, sum_range=2, hcomp_scale=8, keep_spots=5.0, **HDRMX),
    ),
    "tiny-b1s2-R-range": (
        "tiny32",
        dict(sum_range=2, regions=["10,20"], first_image=3, last_image=12),
    ),
    "tiny-b2s2k60-q": (
        "tiny16",
        dict(bin_range=2, sum_range=2, j2k_alt_ratio=60, **HDRMX, out_squash="out_file"),
    ),
    "tiny-bszstd-cap": (
        "tiny32",
        dict(bin_range=2, sum_range=2, compression="bszstd", cap_sums=True),
    ),
    "eiger_1m-b2s2h12": ("eiger_1m", dict(bin_range=2, sum_range=2, hcomp_scale=12, **HDRMX)),
    "eiger2_4m-b2s2h12": ("eiger2_4m", dict(bin_range=2, sum_range=2, hcomp_scale=12, **HDRMX)),
    # the default since the lossy round trip keeps each 6 x 6 cell's total (recorded then)
    "tiny-b2s2h12-totals": ("tiny16", dict(bin_range=2, sum_range=2, hcomp_scale=12)),
    "tiny-b2s2j60-totals": ("tiny16", dict(bin_range=2, sum_range=2, j2k_ratio=60)),
}


def _make(name: str, folder: Path) -> str:
    prefix = folder / name
    if name == "tiny16":
        return make_dataset(prefix, "tiny", nframes=20, frames_per_file=10)
    if name == "tiny32":
        return make_dataset(prefix, "tiny", nframes=14, frames_per_file=5, dtype="uint32", seed=3)
    return make_dataset(prefix, name, nframes=4, frames_per_file=2, dtype="uint32", seed=1)


def _sha(a) -> str:
    a = np.ascontiguousarray(a)
    return hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes()).hexdigest()[
        :20
    ]


def _attrs(obj) -> dict:
    return {k: _sha(np.asarray(v)) for k, v in obj.attrs.items() if k != "lbnl_dask_job"}


def master_digest(path: str) -> dict:
    """SHA-256 of every dataset and attribute of a master (links by target)."""
    out = {}
    with h5py.File(path, "r") as f:
        out["/"] = _attrs(f)

        def visit(name, link):
            if isinstance(link, h5py.ExternalLink):
                out[name] = f"external:{os.path.basename(link.filename)}:{link.path}"
            elif isinstance(link, h5py.SoftLink):
                out[name] = f"soft:{link.path}"
            else:
                obj = f[name]
                entry = {"attrs": _attrs(obj)}
                if isinstance(obj, h5py.Dataset):
                    entry["value"] = _sha(obj[()])
                out[name] = entry

        f.visititems_links(visit)
    return out


def output_digest(master: str) -> dict:
    """Per output frame a hash of its pixels, and the master's :func:`master_digest`."""
    hashes = []
    with h5py.File(master, "r") as f:  # h5py, not open_dataset: float output is not Eiger data
        g = f[DATA_GROUP]
        for name in sorted(k for k in g if k.startswith("data_")):
            d = g[name]
            hashes += [_sha(d[i]) for i in range(d.shape[0])]
    return {"frames": hashes, "master": master_digest(master)}


def input_digest(master: str) -> str:
    return _sha(open_dataset(master).frames.compute(scheduler="sync"))


def run_all(folder: Path) -> dict:
    inputs, result = {}, {}
    for key, (name, opts) in SETTINGS.items():
        if name not in inputs:
            inputs[name] = _make(name, folder / "in")
        out = folder / key / "out"
        compress(inputs[name], str(out), scheduler="sync", **opts)
        master = f"{out}_master.h5"
        result[key] = output_digest(master)
        if opts.get("out_squash"):
            sq = sorted((folder / key).glob("out_squash_*.h5"))
            result[key]["squash"] = [_sha(lbnl_read_squash(p)) for p in sq]
    result["inputs"] = {n: input_digest(m) for n, m in inputs.items()}
    return result


def lbnl_read_squash(path):
    from lbnl_dask import read_squash

    return read_squash(path)


@pytest.fixture(scope="module")
def recorded():
    if not GOLDEN.exists():
        pytest.fail(f"{GOLDEN} is missing: record it with python tests/test_pipeline.py --record")
    return json.loads(GOLDEN.read_text())


@pytest.fixture(scope="module")
def current(tmp_path_factory):
    return run_all(tmp_path_factory.mktemp("golden"))


def test_inputs_as_recorded(recorded, current):
    if current["inputs"] != recorded["inputs"]:
        pytest.skip(
            "the synthetic input differs from the recording (another numpy?): "
            "the output comparison would say nothing"
        )


@pytest.mark.parametrize("key", sorted(SETTINGS))
def test_output_unchanged(key, recorded, current):
    if current["inputs"] != recorded["inputs"]:
        pytest.skip("the synthetic input differs from the recording (another numpy?)")
    want, got = recorded[key], current[key]
    changed = [
        i for i, (a, b) in enumerate(zip(want["frames"], got["frames"], strict=False)) if a != b
    ]
    assert len(got["frames"]) == len(want["frames"])
    assert not changed, f"{key}: frames {changed[:5]} differ from the recording"
    diff = sorted(
        k
        for k in set(want["master"]) | set(got["master"])
        if want["master"].get(k) != got["master"].get(k)
    )
    assert not diff, f"{key}: master items differ: {diff[:8]}"
    assert got.get("squash") == want.get("squash")


if __name__ == "__main__" and "--record" in sys.argv:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(run_all(Path(tmp)), indent=1, sort_keys=True) + "\n")
    print(f"recorded {GOLDEN}")


def test_a_mask_of_most_pixels_and_signed_frames_are_said(tiny, tmp_path):
    """Both had made output pixels invalid without a word: a pixel_mask of all ones (every
    pixel), and int32 frames whose negative values (pedestal-subtracted data) are invalid."""
    import shutil

    from lbnl_dask.layout import DATA, PIXEL_MASK

    d = tmp_path / "in"
    shutil.copytree(os.path.dirname(tiny), d)
    master = str(d / os.path.basename(tiny))
    rep = compress(master, str(tmp_path / "a"), bin_range=2, scheduler="threads")
    assert not [n for n in rep.notes if "pixel mask masks" in n or "negative value" in n]
    with h5py.File(master, "r+") as f:
        f[PIXEL_MASK][...] = 1
    rep = compress(master, str(tmp_path / "b"), bin_range=2, scheduler="threads")
    assert "the pixel mask masks 100% of the output's pixels: they are all written as invalid " \
        "(is the master's pixel_mask right?)" in rep.notes  # fmt: skip
    for p in sorted(d.glob("*_data_*.h5")):
        with h5py.File(p, "r+") as f:
            a = f[DATA][()].astype(np.int32)
            del f[DATA]
            f.create_dataset(DATA, data=a, chunks=(1,) + a.shape[1:])
    rep = compress(master, str(tmp_path / "c"), bin_range=2, scheduler="threads")
    assert "master: the frames are int32: a negative value is taken as an invalid pixel " \
        "(Dectris marks gaps with -1), not as a count" in rep.notes  # fmt: skip
