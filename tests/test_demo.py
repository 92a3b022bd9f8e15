"""lbnl-demo, the README's first command: makes a dataset, compresses it, prints the report."""

from lbnl_dask import demo


def test_demo_makes_compresses_and_reports(tmp_path, capsys):
    folder = tmp_path / "demo"
    argv = ["--dir", str(folder), "--detector", "tiny", "-n", "8", "--scheduler", "threads"]
    assert demo.main(argv) == 0
    out = capsys.readouterr().out
    assert "making a synthetic tiny dataset of 8 frames" in out
    assert "lbnl-compress -i" in out and "-b 2 -s 2 -H 12" in out
    assert "frames         8 in (102, 132) -> 4 out (51, 66)" in out
    assert (folder / "b2s2h12_master.h5").exists()
    assert demo.main(argv) == 0  # again: the dataset is reused, the output replaced
    assert "making a synthetic" not in capsys.readouterr().out
