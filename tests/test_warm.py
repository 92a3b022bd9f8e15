"""The set-up's kernel warm-up (python -m lbnl_dask.warm) covers the types runs meet."""

import subprocess
import sys

from lbnl_dask import kernels, warm


def _types(dispatcher) -> set[str]:
    return {str(t) for sig in dispatcher.signatures for t in sig}


def test_warm_compiles_the_kernels_for_every_frame_and_sum_type(tmp_path):
    assert warm.warm(str(tmp_path)) == len(warm.RUNS)
    raw = _types(kernels.summed_binned)
    assert any("uint16" in t for t in raw) and any("uint32" in t for t in raw)
    sums = _types(kernels.restore_totals)
    assert any("float32" in t for t in sums) and any("float64" in t for t in sums)
    codec_out = _types(kernels.codec_input)
    assert {"int32", "uint16", "float32"} <= {
        t.split("(")[1].split(",")[0] for t in codec_out if t.startswith("array(")
    }


def test_warm_runs_as_a_module_and_says_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "lbnl_dask.warm"], capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert out.stdout.startswith("lbnl_dask: numba kernels ready for 6 kind(s) of run")
    assert len(out.stdout.splitlines()) == 1
