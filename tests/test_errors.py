"""Bad input: one clear line naming the file and the problem.

Exit status 2, no output left behind.
"""

import glob
import os
import shutil

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest

import lbnl_dask
from lbnl_dask import cli
from lbnl_dask.layout import (
    CHUNK_CRC,
    DATA,
    DATA_GROUP,
    PIXEL_MASK,
    SPEC,
    block_path,
    data_file_name,
)
from tests.helpers import write_master


def run_cli(capsys, args, out_dir):
    rc = cli.main(args + ["-o", str(out_dir / "o"), "--scheduler", "threads"])
    cap = capsys.readouterr()
    return rc, cap.err.strip()


def copy_dataset(tiny, tmp_path):
    d = tmp_path / "in"
    shutil.copytree(os.path.dirname(tiny), d)
    return d, d / "tiny_master.h5"


def case_missing(tmp_path, tiny):
    return tmp_path / "absent_master.h5", "absent_master.h5: no such file"


def case_directory(tmp_path, tiny):
    return tmp_path, "is a directory"


def case_not_hdf5(tmp_path, tiny):
    p = tmp_path / "text_master.h5"
    p.write_text("not hdf5\n")
    return p, "text_master.h5: not an HDF5 file"


def case_not_eiger(tmp_path, tiny):
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f["entry/sample/name"] = b"x"
    return p, f"other.h5: no {DATA_GROUP} group"


def case_missing_data_file(tmp_path, tiny):
    d, m = copy_dataset(tiny, tmp_path)
    (d / data_file_name("tiny", 2)).unlink()
    return m, f"{data_file_name('tiny', 2)}: data file linked from"


def case_truncated_data_file(tmp_path, tiny):
    d, m = copy_dataset(tiny, tmp_path)
    p = d / data_file_name("tiny", 2)
    with open(p, "r+b") as fh:
        fh.truncate(os.path.getsize(p) // 2)
    return m, f"{p.name}: cannot"


def case_data_shorter_than_master(tmp_path, tiny):
    d, m = copy_dataset(tiny, tmp_path)
    with h5py.File(m, "r+") as f:
        f[SPEC + "/nimages"][()] = 25
    return m, "hold 20 frames but the master"


def case_corrupt_chunk(tmp_path, tiny):
    d, m = copy_dataset(tiny, tmp_path)
    p = d / data_file_name("tiny", 2)
    with h5py.File(p, "r") as f:
        info = f[DATA].id.get_chunk_info(6)
    with open(p, "r+b") as fh:
        fh.seek(info.byte_offset)
        fh.write(b"\xff" * 100)
    return m, f"{p.name}: cannot read frame 7 of {DATA}"


def case_corrupt_block_size(tmp_path, tiny):
    """Only the block size in a chunk's header changed, to one that still looks valid: the
    blocks' sizes then point outside the chunk (bitshuffle's decoder crashed on such)."""
    d, m = copy_dataset(tiny, tmp_path)
    p = d / data_file_name("tiny", 1)
    with h5py.File(p, "r") as f:
        info = f[DATA].id.get_chunk_info(2)
    with open(p, "r+b") as fh:
        fh.seek(info.byte_offset + 8)
        block = int.from_bytes(fh.read(4), "big")
        fh.seek(info.byte_offset + 8)
        fh.write((block - 512).to_bytes(4, "big"))  # still a multiple of 8 elements
    return m, f"{p.name}: cannot read frame 3 of {DATA} (corrupt bitshuffle-LZ4"


def case_float_data(tmp_path, tiny):
    data = tmp_path / data_file_name("f", 1)
    with h5py.File(data, "w") as f:
        f[DATA] = np.zeros((3, 8, 8), np.float32)
    return write_master(tmp_path / "f_master.h5", [data], 3), "holds float32 data"


def case_empty_dataset(tmp_path, tiny):
    data = tmp_path / data_file_name("e", 1)
    with h5py.File(data, "w") as f:
        f.create_dataset(
            DATA, shape=(0, 8, 8), dtype=np.uint16, chunks=(1, 8, 8), maxshape=(None, 8, 8)
        )
    return write_master(tmp_path / "e_master.h5", [data], 0), "hold no frames"


def case_data_file_linked_twice(tmp_path, tiny):
    d, m = copy_dataset(tiny, tmp_path)
    with h5py.File(m, "a") as f:
        del f[DATA_GROUP]["data_000002"]
        f[DATA_GROUP]["data_000002"] = h5py.ExternalLink(data_file_name("tiny", 1), DATA)
    return m, f"{data_file_name('tiny', 1)}: linked twice from"


def case_image_numbers_out_of_order(tmp_path, tiny):
    d, m = copy_dataset(tiny, tmp_path)
    p = d / data_file_name("tiny", 2)
    with h5py.File(p, "a") as f:
        n = f[DATA].shape[0]
        f[DATA].attrs.update(image_nr_low=np.uint64(1), image_nr_high=np.uint64(n))
    return m, f"{p.name}: records images 1-{n} after"


def case_data_file_is_a_directory(tmp_path, tiny):
    d, m = copy_dataset(tiny, tmp_path)
    p = d / data_file_name("tiny", 2)
    p.unlink()
    p.mkdir()
    return m, f"{p.name}: is a directory, not a data file (linked from"


def case_master_is_a_pipe(tmp_path, tiny):
    p = tmp_path / "pipe_master.h5"
    os.mkfifo(p)  # opening it would wait for a writer forever
    return p, "pipe_master.h5: not a regular file (a pipe or device)"


def case_data_file_is_a_pipe(tmp_path, tiny):
    d, m = copy_dataset(tiny, tmp_path)
    p = d / data_file_name("tiny", 2)
    p.unlink()
    os.mkfifo(p)
    return m, f"{p.name}: not a regular file (a pipe or device; linked from"


def case_soft_link_loop_to_a_data_file(tmp_path, tiny):
    d, m = copy_dataset(tiny, tmp_path)
    with h5py.File(m, "r+") as f:
        del f[DATA_GROUP]["data_000002"]
        f[DATA_GROUP]["data_000002"] = h5py.SoftLink(DATA_GROUP + "/data_000002")
    return m, "/entry/data/data_000002: a link that cannot be followed"


def case_soft_link_loop_in_the_master(tmp_path, tiny):
    d, m = copy_dataset(tiny, tmp_path)
    with h5py.File(m, "r+") as f:
        del f[PIXEL_MASK]
        f[PIXEL_MASK] = h5py.SoftLink(PIXEL_MASK)  # (a RuntimeError from HDF5 had crashed)
    return m, "tiny_master.h5: /entry/instrument/detector/detectorSpecific/pixel_mask: a link " \
        "that cannot be followed"  # fmt: skip


INPUT_CASES = [
    case_soft_link_loop_to_a_data_file,
    case_soft_link_loop_in_the_master,
    case_missing,
    case_directory,
    case_not_hdf5,
    case_not_eiger,
    case_missing_data_file,
    case_truncated_data_file,
    case_data_shorter_than_master,
    case_data_file_linked_twice,
    case_data_file_is_a_directory,
    case_master_is_a_pipe,
    case_data_file_is_a_pipe,
    case_image_numbers_out_of_order,
    case_corrupt_chunk,
    case_corrupt_block_size,
    case_float_data,
    case_empty_dataset,
]


@pytest.mark.parametrize("case", INPUT_CASES, ids=[c.__name__[5:] for c in INPUT_CASES])
def test_bad_input(case, tmp_path, tiny, capsys):
    master, msg = case(tmp_path, tiny)
    out = tmp_path / "out"
    out.mkdir()
    rc, err = run_cli(capsys, ["-i", str(master), "-d", "3"], out)
    assert rc == 2
    assert err.startswith("lbnl-compress: error: ") and len(err.splitlines()) == 1, err
    assert msg in err
    assert os.listdir(out) == []  # nothing left behind, not even finished blocks


def test_a_failed_lossy_run_ends_its_fidelity_thread_before_it_returns(
    tmp_path, tiny, capsys, monkeypatch
):
    """The fidelity line's thread reads the input while the run writes; a run that fails
    waits for it to end. Left running, the interpreter cut it off mid-call at exit: a
    segfault (1 of 20 failed runs) or a hang. Its work is made slow here, so that it is
    still running when the damaged frame stops the run."""
    import threading
    import time

    from lbnl_dask import quality

    reference = quality.fidelity_reference

    def slow(*args, **kwargs):
        time.sleep(0.5)
        return reference(*args, **kwargs)

    monkeypatch.setattr(quality, "fidelity_reference", slow)
    master, msg = case_corrupt_chunk(tmp_path, tiny)
    out = tmp_path / "out"
    out.mkdir()
    rc, err = run_cli(capsys, ["-i", str(master), "-d", "3", "-H", "12"], out)
    assert rc == 2 and msg in err and len(err.splitlines()) == 1, err
    alive = [t for t in threading.enumerate() if t.name == "lbnl-fidelity" and t.is_alive()]
    assert alive == []


def test_output_folder_cannot_be_written(tmp_path, tiny, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = cli.main(["-i", tiny, "-o", str(blocker / "sub" / "o"), "--scheduler", "threads"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "cannot create the output folder" in err and len(err.splitlines()) == 1


def test_output_would_overwrite_input(tmp_path, tiny, capsys):
    d, m = copy_dataset(tiny, tmp_path)
    rc = cli.main(
        [
            "-i",
            str(m),
            "-o",
            str(d / "tiny_data"),
            "-d",
            "10",
            "--overwrite",
            "--scheduler",
            "threads",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "would overwrite the input" in err
    with h5py.File(d / data_file_name("tiny", 1), "r") as f:  # untouched
        assert f[DATA].shape == (10, 102, 132)


def _two_frame_chunks(tmp_path, tiny):
    """The tiny dataset rewritten with bitshuffle-LZ4 chunks of two frames (read through
    HDF5's filter, not the one-frame raw-chunk path), 1-s bitshuffle blocks."""

    frames = lbnl_dask.open_dataset(tiny).frames.compute()
    data = tmp_path / data_file_name("two", 1)
    with h5py.File(data, "w") as f:
        f.create_dataset(DATA, data=frames, chunks=(2,) + frames.shape[1:],
                         **hdf5plugin.Bitshuffle(nelems=0, cname="lz4"))  # fmt: skip
    with h5py.File(tiny, "r") as src, h5py.File(tmp_path / "two_master.h5", "w") as m:
        src.copy(src["entry/instrument"], m.require_group("entry"), name="instrument")
        m[block_path(1)] = h5py.ExternalLink(data.name, DATA)
    return frames, data, tmp_path / "two_master.h5"


def test_two_frame_chunks_read_as_stored(tmp_path, tiny):
    frames, _, master = _two_frame_chunks(tmp_path, tiny)
    ds = lbnl_dask.open_dataset(master, datablock=3)  # chunks of 3 frames: across stored chunks
    assert ds.blocks[0].check_chunks and not ds.blocks[0].direct
    np.testing.assert_array_equal(ds.frames.compute(), frames)


def test_garbage_in_a_multi_frame_chunk_is_one_line_not_a_crash(tmp_path, tiny):
    """8 KiB of garbage inside a (2, ny, nx) chunk: HDF5's bitshuffle filter would follow its
    block sizes out of the chunk and kill the worker (a segfault). Run in a child process."""
    import subprocess
    import sys

    _, data, master = _two_frame_chunks(tmp_path, tiny)
    with h5py.File(data, "r") as f:
        info = f[DATA].id.get_chunk_info(1)  # frames 3-4
    with open(data, "r+b") as fh:
        fh.seek(info.byte_offset + 12)
        fh.write(np.random.default_rng(1).integers(0, 256, 8192, dtype=np.uint8).tobytes())
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lbnl_dask", "-i", str(master), "-o", str(out / "o"), "-d", "3",
           "--scheduler", "processes", "-p", "1"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in r.stderr.splitlines() if not ln.startswith("dask dashboard:")]
    err = "\n".join(lines)
    assert r.returncode == 2, err
    assert len(lines) == 1 and data.name in err and "chunk at (2, 0, 0)" in err, err
    assert "corrupt bitshuffle-LZ4 chunk" in err
    assert not out.exists() or os.listdir(out) == []


@pytest.fixture()
def small_disk(tmp_path, request):
    """A 3 MB file system (tmpfs; another size as the test's parameter), where one can be
    mounted here (root in a container that allows it); skips with the reason elsewhere."""
    import subprocess

    mnt = tmp_path / "small"
    mnt.mkdir()
    size = getattr(request, "param", "3m")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                       capture_output=True, text=True)  # fmt: skip
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip() or r.returncode})")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_full_disk_is_one_line_and_resumes_when_there_is_room(tmp_path, small_disk, scheduler):
    import subprocess
    import sys

    from lbnl_dask.synth import make_dataset
    from lbnl_dask.writer import damaged_frames

    master = make_dataset(tmp_path / "in" / "big", "eiger_1m", nframes=16, frames_per_file=8)
    cmd = [sys.executable, "-m", "lbnl_dask", "-i", master, "-o", str(small_disk / "o"),
           "-d", "4", "--scheduler", scheduler, "-p", "1"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in r.stderr.splitlines() if not ln.startswith("dask dashboard:")]
    assert r.returncode == 2, r.stderr
    assert lines[0].startswith(f"lbnl-compress: warning: {small_disk}: ") and "may need" in lines[0]
    assert len(lines) == 2 and lines[1].startswith("lbnl-compress: error: "), r.stderr
    assert "no space left on the device" in lines[1] and "this output needs about" in lines[1]
    left = os.listdir(small_disk)
    assert not [p for p in left if p.endswith((".part", ".lock")) or "master" in p], left
    assert f"({len(left)} of 4 data file(s) finished and kept: run the same" in lines[1]
    for p in left:  # whatever is left is finished (every chunk as written)
        assert damaged_frames(str(small_disk / p)) == [], p
    subprocess.run(["mount", "-o", "remount,size=40m", str(small_disk)], check=True)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    ref = lbnl_dask.compress(master, str(tmp_path / "ref"), data_block_size=4, scheduler="threads")
    np.testing.assert_array_equal(lbnl_dask.open_dataset(small_disk / "o_master.h5").frames,
                                  lbnl_dask.open_dataset(ref.master).frames)  # fmt: skip


@pytest.mark.parametrize("small_disk", ["60k", "200k"], indirect=True)
def test_a_disk_full_of_small_files_ends_in_one_line_not_a_crash(tmp_path, small_disk, tiny):
    """Ten 4-frame data files and the master, written side by side onto a disk that fills:
    HDF5 had failed the writes itself and could not close those files; h5py printed
    tracebacks and the process crashed at exit (status 139) after its error line. The
    writes now reach the disk outside HDF5 (writer.hdf5_file), and the run ends as any."""
    import subprocess
    import sys

    from lbnl_dask.synth import make_dataset
    from lbnl_dask.writer import damaged_frames

    master = make_dataset(tmp_path / "in" / "t", "tiny", nframes=40, frames_per_file=8)
    cmd = [sys.executable, "-m", "lbnl_dask", "-i", master, "-o", str(small_disk / "x"),
           "-b", "1", "-s", "1", "-d", "4", "--no-progress", "--scheduler", "threads"]  # fmt: skip
    for _ in range(3):  # (the failing write was not the same one every time)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.splitlines()
        assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr
        assert lines[-1].startswith("lbnl-compress: error: ") and "no space left" in lines[-1]
        assert "about 0 MB" not in r.stderr  # (sizes below 10 MB get a decimal)
        left = os.listdir(small_disk)
        assert not [p for p in left if p.endswith((".part", ".lock")) or "master" in p], left
        for p in left:
            assert damaged_frames(str(small_disk / p)) == [], p


def _hostile(tmp_path, tiny, n, ny, nx, allocated=False):
    """A master claiming ``n`` frames of ny x nx, its data file as large (HDF5 allocates
    nothing until chunks are written: a few kB on disk). ``allocated``: every chunk
    allocated, none written (a sparse file: its chunk index on disk), so that the frames
    can be read (a chunk never allocated is refused)."""
    data = tmp_path / data_file_name("huge", 1)
    with h5py.File(data, "w") as f:
        if not allocated:
            f.create_dataset(DATA, shape=(n, ny, nx), dtype=np.uint16, chunks=(1, ny, nx))
        else:
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_chunk((1, ny, nx))
            dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
            dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
            f.require_group(DATA_GROUP)
            h5py.h5d.create(f.id, DATA.encode(), h5py.h5t.NATIVE_UINT16,
                            h5py.h5s.create_simple((n, ny, nx)), dcpl=dcpl)  # fmt: skip
    master = tmp_path / "huge_master.h5"
    shutil.copy(tiny, master)
    with h5py.File(master, "r+") as f:
        for k in [k for k in f[DATA_GROUP] if k.startswith("data_")]:
            del f[f"{DATA_GROUP}/{k}"]
        f[block_path(1)] = h5py.ExternalLink(data.name, DATA)
        f[SPEC + "/nimages"][()] = n
        del f[SPEC + "/pixel_mask"]
    return master


@pytest.mark.parametrize("n,ny,nx,msg", [
    (10**9, 4096, 4096, "1000000000 frames make 500000000 dask tasks, more than one run plans"),
    (10, 30000, 30000, "frames of 30000 x 30000 pixels need about"),
])  # fmt: skip
def test_hostile_sizes_are_refused_up_front(tmp_path, tiny, n, ny, nx, msg):
    import subprocess
    import sys
    import time

    master = _hostile(tmp_path, tiny, n, ny, nx)
    out = tmp_path / "out"
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "lbnl_dask", "-i", str(master), "-o", str(out / "o")],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, (
        r.stderr
    )
    assert time.perf_counter() - t0 < 120  # refused before any graph grows with the frames
    assert not out.exists() or os.listdir(out) == []


def test_a_million_frames_start_writing(tmp_path, tiny):
    """10^6 (small) frames: the graph is built without per-file merges, so data files come
    out soon; the run is then stopped (SIGTERM) and says what it kept."""
    import signal
    import subprocess
    import sys
    import time

    master = _hostile(tmp_path, tiny, 10**6, 102, 132, allocated=True)
    out = tmp_path / "out"
    out.mkdir()
    cmd = [sys.executable, "-m", "lbnl_dask", "-i", str(master), "-o", str(out / "o"), "-b", "2",
           "-s", "2", "--scheduler", "threads"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    written = []
    while time.time() < deadline and proc.poll() is None:
        written = [p for p in os.listdir(out) if p.endswith("1.h5")]
        if written:
            break
        time.sleep(0.1)
    assert proc.poll() is None and written, "no data file written in time"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "interrupted: " in err, err


def test_an_error_is_one_line_whatever_a_library_said():
    from lbnl_dask.errors import InputFileError

    e = InputFileError(
        "x.h5: cannot open data file (read failed: time = Mon Dec  7 2026\n, errno = 21)"
    )
    assert (
        str(e) == "x.h5: cannot open data file (read failed: time = Mon Dec  7 2026 , errno = 21)"
    )
    assert isinstance(e, OSError)


def test_a_sigterm_while_the_fidelity_is_estimated_is_status_143(tmp_path, tiny, capsys,
                                                                 monkeypatch):  # fmt: skip
    """SIGTERM (a batch system's time limit) once the output is written: the status says
    SIGTERM (143), not Ctrl-C (130), and the line says the output is complete."""
    from lbnl_dask import quality
    from lbnl_dask.cluster import Terminated

    def stopped(*args, **kwargs):
        raise Terminated()

    monkeypatch.setattr(quality, "compare_fidelity", stopped)
    out = tmp_path / "out"
    out.mkdir()
    rc, err = run_cli(capsys, ["-i", tiny, "-H", "12"], out)
    assert rc == 143, err
    assert err.startswith("lbnl-compress: interrupted while estimating the fidelity; the "
                          "output is complete: ")  # fmt: skip


def test_a_forged_block_in_bitshuffle_zstd_input_is_one_line_not_a_crash(tmp_path, tiny,
                                                                          capsys):  # fmt: skip
    """-c bszstd output read back as input goes through HDF5's bitshuffle filter, which
    follows each block's stored size: a forged one (1 GB) is refused before it, as for LZ4."""
    src = tmp_path / "z"
    rc, err = run_cli(capsys, ["-i", tiny, "-c", "bszstd", "-N", "6"], src.parent)
    os.rename(tmp_path / "o_master.h5", tmp_path / "z_master.h5")
    for p in glob.glob(str(tmp_path / "o_0*.h5")):
        os.rename(p, p.replace("/o_0", "/z_0"))
    with h5py.File(tmp_path / "z_master.h5", "r+") as f:  # its links, renamed
        for k in list(f["entry/data"]):
            if k.startswith("data_"):
                link = f["entry/data"].get(k, getlink=True)
                del f["entry/data"][k]
                f["entry/data"][k] = h5py.ExternalLink(link.filename.replace("o_0", "z_0"),
                                                       link.path)  # fmt: skip
    data = tmp_path / "z_000001.h5"
    with h5py.File(data, "r+") as f:  # as another writer's file: no CRC-32s to catch it
        del f[CHUNK_CRC]
        info = f[DATA].id.get_chunk_info(1)
    with open(data, "r+b") as fh:
        fh.seek(info.byte_offset + 12)
        fh.write((10**9).to_bytes(4, "big"))
    out = tmp_path / "out"
    out.mkdir()
    rc, err = run_cli(capsys, ["-i", str(tmp_path / "z_master.h5")], out)
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "z_000001.h5: cannot read frames" in err and "corrupt bitshuffle-Zstd chunk" in err
    assert os.listdir(out) == []


def test_an_unreadable_master_is_one_line(tmp_path, tiny):
    """h5py.is_hdf5 raised PermissionError (a traceback from both tools)."""
    import subprocess
    import sys

    d, m = copy_dataset(tiny, tmp_path)
    os.chmod(m, 0)
    run = [sys.executable, "-m", "lbnl_dask.cli", "-i", str(m), "-o", str(tmp_path / "o")]
    check = [sys.executable, "-m", "lbnl_dask.validate", str(m)]
    if os.geteuid() == 0:  # root reads anything: drop the capabilities that let it
        if shutil.which("capsh") is None:
            pytest.skip("running as root without capsh: cannot make a file unreadable")
        drop = ["capsh", "--drop=cap_dac_override,cap_dac_read_search", "--", "-c"]
        run, check = (drop + [" ".join(map(str, c))] for c in (run, check))
    r = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == (
        f"lbnl-compress: error: {m}: cannot read it (Permission denied)"), r.stderr  # fmt: skip
    r = subprocess.run(check, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and f"[FAIL] {m}: cannot open it (Permission denied)" in r.stdout
    assert "Traceback" not in r.stderr
