"""Read a dataset through an XDS plugin, as XDS does: the shared library named by XDS'
``LIB=`` keyword that reads Eiger HDF5 (Dectris' Neggia, Diamond's durin).

XDS' plugin interface is four C functions (the XDS wiki's "LIB" page; durin's ``plugin.h``)::

    plugin_open(filename, info[1024], &error)
    plugin_get_header(&nx, &ny, &nbytes, &qx, &qy, &number_of_frames, info, &error)
    plugin_get_data(&frame_number, &nx, &ny, data, info, &error)   # frames from 1, int32 data
    plugin_close(&error)

A plugin keeps one open file per process and may link an HDF5 library of its own, so it is
called in a child process that imports only numpy and ctypes (never h5py: two HDF5 libraries
in one process clash), and a plugin that crashes takes only that process down.

- :func:`read_frames`: the header and frames (``ny`` x ``nx`` int32) a plugin returns;
- :func:`expected_frame`: what XDS should get for a frame as stored, by Neggia's rules
  (pixel-mask bit 0 -> -1, bits 1-4 -> -2, counts at or above the pixel type's signed
  maximum -> -1);
- :func:`frame_differences`: where a plugin's frame departs from that.

``lbnl-validate --xds-plugin PATH`` runs them on the first and last frame of every data file.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

import numpy as np

#: How the child process starts: this file run as a script, without adding its folder to
#: sys.path (it would shadow standard modules) and without importing lbnl_dask (h5py).
_RUN_CHILD = (
    "import runpy, sys; sys.argv[:] = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)
#: The child's files in its scratch folder.
_STATUS, _FRAMES = "status.json", "frames.npy"


class PluginError(RuntimeError):
    """The plugin could not be loaded, failed (non-zero error flag) or crashed: one line."""


@dataclass
class PluginRead:
    """What an XDS plugin returned: its header and the frames asked for, by frame number
    (from 1) -> (ny, nx) int32."""

    nx: int
    ny: int
    nbytes: int
    qx: float
    qy: float
    nframes: int
    frames: dict = field(default_factory=dict)


def read_frames(plugin: str, master: str, numbers, timeout: float = 600) -> PluginRead:
    """The header of ``master`` and its frames ``numbers`` (from 1; those past the plugin's
    frame count are skipped), read through the XDS plugin ``plugin`` (a path to the shared
    library) in a child process. Raises :class:`PluginError` naming the plugin, the call
    that failed and the plugin's last message."""
    name = os.path.basename(plugin)
    with tempfile.TemporaryDirectory(prefix="lbnl-xds-") as tmp:
        paths = [os.path.abspath(p) for p in (__file__, plugin, master)]
        cmd = [sys.executable, "-I", "-c", _RUN_CHILD, *paths, tmp, *map(str, numbers)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise PluginError(f"{name}: no answer in {timeout:g} s reading {master}") from None
        status = _load_status(tmp)
        said = _last_line(done.stderr) or _last_line(done.stdout)
        where = status.get("stage", "loading it")
        if "frame" in status:
            where += f" (frame {status['frame']})"
        if done.returncode < 0:
            raise PluginError(f"{name} crashed ({_signal_name(-done.returncode)}) in {where}"
                              + (f": {said}" if said else ""))  # fmt: skip
        if status.get("stage") != "done":
            why = status.get("why") or f"exit status {done.returncode}"
            raise PluginError(f"{name} failed in {where}: {why}" + (f": {said}" if said else ""))
        read = PluginRead(**status["header"])
        frames = np.load(os.path.join(tmp, _FRAMES))
        read.frames = dict(zip(status["numbers"], frames, strict=True))
    return read


def _load_status(folder: str) -> dict:
    try:
        with open(os.path.join(folder, _STATUS)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _last_line(text: str) -> str:
    lines = [s.strip() for s in (text or "").splitlines() if s.strip()]
    return lines[-1] if lines else ""


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def expected_frame(frame: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """What XDS should get for ``frame`` (ny, nx, unsigned, as stored) with the master's
    ``detectorSpecific/pixel_mask`` (or None), by Neggia's rules: int32 counts; -1 where
    the mask's bit 0 is set or the count is at or above the type's signed maximum (32767
    for uint16), -2 where only bits 1-4 are set."""
    top = np.iinfo(np.dtype(f"i{frame.dtype.itemsize}")).max
    out = np.where(frame >= top, -1, frame.astype(np.int64)).astype(np.int32)
    if mask is not None:
        out[(mask & 30) != 0] = -2
        out[(mask & 1) != 0] = -1
    return out


def frame_differences(got: np.ndarray, frame: np.ndarray, mask: np.ndarray | None):
    """Pixels where a plugin's frame ``got`` (int32) departs from :func:`expected_frame`:
    (count, the first as (y, x, got, expected)) or (0, None). The plugins differ where it
    does not matter to XDS, and so does this comparison: a masked pixel may come back as any
    negative value (durin gives -1 where Neggia gives -2 for bit 0 with bits 1-4), and a
    count at or above the signed maximum as a negative value or itself (durin reads the
    type as signed)."""
    want = expected_frame(frame, mask)
    masked = np.zeros(frame.shape, bool) if mask is None else (mask & 31) != 0
    high = (want == -1) & ~masked
    ok = np.where(masked, got < 0, got == want)
    ok |= high & ((got < 0) | (got.astype(np.int64) == frame))
    bad = np.flatnonzero(~ok)
    if not bad.size:
        return 0, None
    y, x = np.unravel_index(bad[0], frame.shape)
    return int(bad.size), (int(y), int(x), int(got[y, x]), int(want[y, x]))


# ------------------------------------------------------------------- the child process
def _child(plugin: str, master: str, folder: str, numbers: list[int]) -> int:
    """Call the plugin as XDS does; write the status (the stage reached, the header, the
    frame numbers read) to ``folder``/status.json before each call, and the frames to
    ``folder``/frames.npy. Returns the exit status."""
    status: dict = {"stage": "loading it"}

    def save(**kw):
        status.update(kw)
        with open(os.path.join(folder, _STATUS), "w") as f:
            json.dump(status, f)

    save()
    try:
        lib = ctypes.CDLL(plugin)
        calls = [getattr(lib, n) for n in ("plugin_open", "plugin_get_header",
                                             "plugin_get_data", "plugin_close")]  # fmt: skip
    except (OSError, AttributeError) as e:
        save(why=str(e).splitlines()[0])
        return 1
    p_open, p_header, p_data, p_close = calls
    c_int, c_float, ref = ctypes.c_int, ctypes.c_float, ctypes.byref
    info, err = (c_int * 1024)(), c_int(0)

    save(stage="plugin_open")
    p_open(ctypes.c_char_p(os.fsencode(master)), info, ref(err))
    if err.value:
        save(why=f"error {err.value}")
        return 1
    nx, ny, nbytes, nframes, qx, qy = c_int(), c_int(), c_int(), c_int(), c_float(), c_float()
    save(stage="plugin_get_header")
    p_header(ref(nx), ref(ny), ref(nbytes), ref(qx), ref(qy), ref(nframes), info, ref(err))
    if err.value:
        save(why=f"error {err.value}")
        return 1
    header = dict(nx=nx.value, ny=ny.value, nbytes=nbytes.value, qx=qx.value, qy=qy.value,
                  nframes=nframes.value)  # fmt: skip
    wanted = [n for n in numbers if 1 <= n <= nframes.value]
    frames = np.zeros((len(wanted), max(ny.value, 0), max(nx.value, 0)), np.int32)
    for i, n in enumerate(wanted):
        save(stage="plugin_get_data", frame=n)
        p_data(ref(c_int(n)), ref(nx), ref(ny), frames[i].ctypes.data_as(ctypes.c_void_p), info,
               ref(err))  # fmt: skip
        if err.value:
            save(why=f"error {err.value}")
            return 1
    status.pop("frame", None)
    save(stage="plugin_close")
    p_close(ref(err))
    np.save(os.path.join(folder, _FRAMES), frames)
    save(stage="done", header=header, numbers=wanted)
    return 0


if __name__ == "__main__":
    plugin_, master_, folder_, *rest = sys.argv[1:]
    sys.exit(_child(plugin_, master_, folder_, [int(n) for n in rest]))
