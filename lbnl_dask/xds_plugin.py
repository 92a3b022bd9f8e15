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
- :func:`expected_frame`: what XDS gets for a frame as stored, through Neggia 1.2
  (pixel-mask bit 0 -> -1, bits 1-4 -> -2, uint16 65535 -> -1);
- :func:`frame_differences`: where a plugin's frame departs from what is stored, allowing
  for what the plugins (and their versions) do differently.

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

#: How the child process starts: this file run as a script, without the folder it is
#: started in on sys.path (a file there could shadow a standard module) and without
#: importing lbnl_dask (h5py).
_RUN_CHILD = (
    "import sys; del sys.path[0]; import runpy; sys.argv[:] = sys.argv[1:]; "
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
    that failed and the plugin's own message (:func:`_first_message`; on stderr: Neggia
    prints a banner on stdout). The frames are read from a file the child wrote
    (memory-mapped), so that only the pixels compared are in memory."""
    name = os.path.basename(plugin)
    with tempfile.TemporaryDirectory(prefix="lbnl-xds-") as tmp:
        paths = [os.path.abspath(p) if p else p for p in (__file__, plugin, master)]
        cmd = [sys.executable, "-c", _RUN_CHILD, *paths, tmp, *map(str, numbers)]
        # its own session: a plugin that hangs is stopped with whatever it started
        pipe = subprocess.PIPE
        child = subprocess.Popen(cmd, stdout=pipe, stderr=pipe, encoding="utf-8",
                                 errors="replace", start_new_session=True)  # fmt: skip
        try:
            _, stderr = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(child)
            doing = f"reading {master}" if master else "loading it"
            raise PluginError(f"{name}: no answer in {timeout:g} s {doing}") from None
        except BaseException:  # Ctrl-C, a batch system's SIGTERM: the plugin stops too
            _stop(child)
            raise
        status = _load_status(tmp)
        said = _first_message(stderr)
        where = status.get("stage", "loading it")
        if "frame" in status:
            where += f" (frame {status['frame']})"
        if child.returncode < 0:
            raise PluginError(f"{name} crashed ({_signal_name(-child.returncode)}) in {where}"
                              + (f": {said}" if said else ""))  # fmt: skip
        if status.get("stage") != "done":
            why = status.get("why") or f"exit status {child.returncode}"
            raise PluginError(f"{name} failed in {where}: {why}" + (f": {said}" if said else ""))
        read = PluginRead(**status["header"])
        frames = np.load(os.path.join(tmp, _FRAMES), mmap_mode="r")  # (kept after the unlink)
        read.frames = dict(zip(status["numbers"], frames, strict=True))
    return read


def _stop(child: subprocess.Popen) -> None:
    """Kill the child and whatever it started (its own session), and wait for it."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child.communicate()


def path_problem(plugin: str) -> str | None:
    """Why ``plugin`` cannot be a plugin's library (for ``--xds-plugin``), or None."""
    if os.path.isdir(plugin):
        return f"--xds-plugin {plugin}: a folder, not the plugin's library"
    if not os.path.isfile(plugin):
        return f"--xds-plugin {plugin}: no such file"
    return None


def check_loadable(plugin: str) -> None:
    """Raise :class:`PluginError` unless ``plugin`` loads and has the four functions of XDS'
    plugin interface (in a child process, as :func:`read_frames` calls it): before a run
    whose output it is to read."""
    read_frames(plugin, "", [], timeout=60)


def _load_status(folder: str) -> dict:
    try:
        with open(os.path.join(folder, _STATUS)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _first_message(text: str) -> str:
    """The first line a plugin wrote that is not indented: its own message ("WARNING: Could
    not locate an NXdata entry"), not the HDF5 error stack durin indents below it."""
    lines = [s.strip() for s in (text or "").splitlines() if s.strip() and not s[0].isspace()]
    return lines[0] if lines else ""


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


#: Image rows compared at a time: the comparison's memory stays small on a 16M frame.
BAND = 256


def expected_frame(frame: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """What XDS gets for ``frame`` (ny, nx, unsigned, as stored) with the master's
    ``detectorSpecific/pixel_mask`` (or None) through Neggia 1.2: int32 counts; -1 where
    the mask's bit 0 is set, -2 where only bits 1-4 are; -1 for the type's all-bits-set
    value (uint8 255, uint16 65535: a module gap's marker) and, in 4-byte pixels, for
    counts above int32's range."""
    f = frame.astype(np.int64)
    top = np.iinfo(np.int32).max if frame.dtype.itemsize >= 4 else np.iinfo(frame.dtype).max - 1
    out = np.where(f > top, -1, f).astype(np.int32)
    if mask is not None:
        out[(mask & 30) != 0] = -2
        out[(mask & 1) != 0] = -1
    return out


@dataclass
class Differences:
    """How a plugin's frame compares with what is stored (:func:`frame_differences`)."""

    count: int = 0  # pixels read otherwise than any plugin may
    first: tuple | None = None  # the first: (y, x, plugin's value, expected_frame's)
    unread: int = 0  # unmasked counts in 1-2 byte pixels, from the signed maximum up, read < 0


def frame_differences(got: np.ndarray, frame: np.ndarray, mask: np.ndarray | None):
    """Where a plugin's frame ``got`` (int32) departs from what is stored, as a
    :class:`Differences`. The plugins differ where XDS does not mind, and so does this:

    - a pixel the mask's bits 0-4 mark may come back as any negative value (durin gives -1
      where Neggia gives -2); one only bits 5-7 or bit 31 mark, as its count or negative
      (durin masks the whole low byte, and reads the mask as int: bit 31 clamps to a value
      with bits 1-4 set; Neggia looks at bits 0-4 alone);
    - in 1- and 2-byte pixels, the all-bits-set value must come back negative; counts from
      the signed maximum up (uint16 32767-65534) as themselves (Neggia 1.2) or negative
      (earlier Neggia: -1; durin reads the type as signed): those are counted as ``unread``,
      counts XDS does not get;
    - in 4-byte pixels, counts above int32's range must come back negative.

    Compared :data:`BAND` rows at a time."""
    out = Differences()
    small = frame.dtype.itemsize < 4
    allbits = np.iinfo(frame.dtype).max
    signed_max = np.iinfo(np.dtype(f"i{frame.dtype.itemsize}")).max
    for y0 in range(0, frame.shape[0], BAND):
        g = got[y0 : y0 + BAND].astype(np.int64)
        v = frame[y0 : y0 + BAND].astype(np.int64)
        m = np.zeros(v.shape, np.uint32) if mask is None else mask[y0 : y0 + BAND]
        # durin masks the low byte's bits, and any value past int's range (it reads the
        # mask as int: HDF5 clamps 2**31 and above to 2**31 - 1, whose bits 1-4 are set)
        both = (m & 0x1F) != 0
        durin = (((m & 0xE0) != 0) | (m > np.iinfo(np.int32).max)) & ~both
        gone = (v == allbits) if small else (v > np.iinfo(np.int32).max)
        contested = small & (v >= signed_max) & ~gone & ~both
        ok = np.where(both | gone, g < 0, g == v)
        ok |= (durin | contested) & (g < 0)
        out.unread += int(np.count_nonzero(contested & (g < 0) & ~durin))
        bad = np.flatnonzero(~ok)
        if bad.size and out.first is None:
            y, x = np.unravel_index(bad[0], v.shape)
            at = (slice(y0 + y, y0 + y + 1), slice(x, x + 1))
            want = expected_frame(frame[at], None if mask is None else mask[at])
            out.first = (int(y0 + y), int(x), int(g[y, x]), int(want[0, 0]))
        out.count += int(bad.size)
    return out


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
    path = os.path.join(folder, _FRAMES)
    if not master:  # (check_loadable: loaded, the four functions there)
        np.save(path, np.zeros((0, 0, 0), np.int32))
        save(stage="done", header=dict(nx=0, ny=0, nbytes=0, qx=0, qy=0, nframes=0), numbers=[])
        return 0
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
    shape = (len(wanted), max(ny.value, 0), max(nx.value, 0))
    if not np.prod(shape):  # (a file of no pixels cannot be mapped)
        np.save(path, np.zeros(shape, np.int32))
        wanted = []
    else:
        frames = np.lib.format.open_memmap(path, "w+", np.int32, shape)
        for i, n in enumerate(wanted):
            save(stage="plugin_get_data", frame=n)
            p_data(ref(c_int(n)), ref(nx), ref(ny), frames[i].ctypes.data_as(ctypes.c_void_p),
                   info, ref(err))  # fmt: skip
            if err.value:
                save(why=f"error {err.value}")
                return 1
        status.pop("frame", None)
        frames.flush()
        del frames
    save(stage="plugin_close")
    p_close(ref(err))
    save(stage="done", header=header, numbers=wanted)
    return 0


if __name__ == "__main__":
    plugin_, master_, folder_, *rest = sys.argv[1:]
    sys.exit(_child(plugin_, master_, folder_, [int(n) for n in rest]))
