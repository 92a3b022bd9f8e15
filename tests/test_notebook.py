"""The example notebook runs top to bottom (nbclient, a real kernel), on a small dataset."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "explore.ipynb"


def test_explore_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the kernel's tempfile.mkdtemp: cleaned up
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the ratio/fidelity plot and the before/after frames
    text = "".join(o.get("text", "") for o in outputs)
    assert "ratio" in text and "CC" in text
    # "best" is E.best_setting's choice: CC >= 0.99, intensities and background within 2%
    best = next(line for line in text.splitlines() if line.startswith("best: "))
    mean_ratio = float(best.split("mean intensity ratio ")[1].split(",")[0])
    background = float(best.split("background ")[1].split(";")[0])
    assert abs(mean_ratio - 1) <= 0.02 and abs(background - 1) <= 0.02
