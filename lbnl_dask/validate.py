"""``lbnl-validate MASTER``: check a dataset the way XDS' plugins (Neggia, durin) and DIALS read it.

Prints one ``[ OK ]``, ``[WARN]`` or ``[FAIL]`` line per check and exits 1 on any failure.
The rules are SPEC A3 and B 10.1: links ``/entry/data/data_NNNNNN`` to existing files,
3-D unsigned 1/2/4-byte data chunked (1, ny, nx), filters the plugins decode, equal block
sizes but the last, a uint32 unchunked unfiltered ``pixel_mask`` of the frame shape,
fixed-length ASCII ``NX_class`` attributes, nimages x ntrigger equal to the frames, the
geometry fields present; then every frame is decoded.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass, field

import h5py
import hdf5plugin  # noqa: F401
import numpy as np

DET = "/entry/instrument/detector"
SPEC = DET + "/detectorSpecific"


@dataclass
class Result:
    """Lines of a validation: (level, message) with level OK, WARN or FAIL."""

    lines: list = field(default_factory=list)

    def add(self, level: str, msg: str):
        self.lines.append((level, msg))

    @property
    def failed(self) -> bool:
        return any(level == "FAIL" for level, _ in self.lines)

    def __str__(self):
        tag = {"OK": "[ OK ]", "WARN": "[WARN]", "FAIL": "[FAIL]"}
        return "\n".join(f"{tag[level]} {msg}" for level, msg in self.lines)


def _filters(d: h5py.Dataset) -> list[tuple[int, tuple]]:
    plist = d.id.get_create_plist()
    return [(plist.get_filter(i)[0], tuple(plist.get_filter(i)[2])) for i in range(plist.get_nfilters())]


def _filter_verdict(filters) -> tuple[str, str]:
    if not filters:
        return "OK", "no filter"
    ids = [f[0] for f in filters]
    if ids == [32008]:
        cd = filters[0][1]
        comp = cd[4] if len(cd) > 4 else 0
        if comp == 2:
            return "OK", "bitshuffle+LZ4 (32008): Neggia, durin and DIALS read it"
        if comp == 0:
            return "WARN", "bitshuffle only (32008, no LZ4): durin reads it, Neggia does not"
        return "FAIL", "bitshuffle+Zstandard (32008): neither Neggia nor durin reads it"
    if ids == [32004]:
        return "OK", "LZ4 (32004): Neggia reads it"
    return "FAIL", f"HDF5 filter(s) {ids}: XDS' plugins do not read them"


def _ascii_attr_problems(f: h5py.File) -> list[str]:
    bad = []

    def visit(name, obj):
        if "NX_class" in obj.attrs:
            t = obj.attrs.get_id("NX_class").get_type()
            if t.get_class() == h5py.h5t.STRING and (t.is_variable_str() or t.get_cset() != h5py.h5t.CSET_ASCII):
                bad.append(name)

    f.visititems(visit)
    return bad


def validate(master, decode: bool = True) -> Result:
    """Validate ``master`` and its data files; return a :class:`Result` (``.failed``, ``str()``)."""
    r = Result()
    master = os.fspath(master)
    if not os.path.isfile(master) or not h5py.is_hdf5(master):
        r.add("FAIL", f"{master}: not an HDF5 file")
        return r
    mdir = os.path.dirname(os.path.abspath(master))
    if not os.path.basename(master).endswith("_master.h5"):
        r.add("WARN", f"{os.path.basename(master)}: XDS' NAME_TEMPLATE finds masters named <prefix>_master.h5")
    with h5py.File(master, "r") as f:
        if "/entry/data" not in f:
            r.add("FAIL", "no /entry/data group")
            return r
        names = sorted(k for k in f["/entry/data"] if re.match(r"^data_\d{6}$", k))
        if not names:
            r.add("FAIL", "no /entry/data/data_NNNNNN links (Neggia needs data_000001, ...)")
            return r
        expected = [f"data_{k:06d}" for k in range(1, len(names) + 1)]
        r.add("OK" if names == expected else "FAIL",
              f"{len(names)} data links" + ("" if names == expected else f", not numbered data_000001..: {names[:3]}"))
        sizes, shape, dtype, ok_files = [], None, None, True
        for k in names:
            link = f["/entry/data"].get(k, getlink=True)
            path = os.path.join(mdir, link.filename) if isinstance(link, h5py.ExternalLink) else master
            if not os.path.exists(path):
                r.add("FAIL", f"{k}: data file {path} is missing")
                ok_files = False
                continue
            try:
                d = f["/entry/data"][k]
            except (KeyError, OSError) as e:
                r.add("FAIL", f"{k}: cannot open {link.path if hasattr(link, 'path') else k} in {path} ({e})")
                ok_files = False
                continue
            sizes.append(d.shape[0] if d.ndim == 3 else 0)
            if d.ndim != 3:
                r.add("FAIL", f"{k}: data has shape {d.shape}, not (n, ny, nx)")
                ok_files = False
                continue
            if shape is None:
                shape, dtype = d.shape[1:], d.dtype
                if d.dtype.kind != "u" or d.dtype.itemsize not in (1, 2, 4):
                    r.add("FAIL", f"data type {d.dtype}: the plugins read unsigned 1, 2 or 4-byte integers")
                else:
                    r.add("OK", f"data type {d.dtype}, frames {shape[0]} x {shape[1]}")
                level, msg = _filter_verdict(_filters(d))
                r.add(level, f"filter: {msg}")
            elif d.shape[1:] != shape or d.dtype != dtype:
                r.add("FAIL", f"{k}: frames {d.shape[1:]} {d.dtype} differ from data_000001's {shape} {dtype}")
                ok_files = False
            if d.chunks != (1,) + tuple(d.shape[1:]):
                r.add("FAIL", f"{k}: chunks {d.chunks}, the plugins need (1, {d.shape[1]}, {d.shape[2]})")
                ok_files = False
        if ok_files:
            r.add("OK", f"all {len(names)} data files present, chunked one frame per chunk")
        if sizes:
            if len(set(sizes[:-1])) <= 1 and (len(sizes) == 1 or sizes[-1] <= sizes[0]):
                r.add("OK", f"block sizes {sizes[0]} (last {sizes[-1]}): equal but the last")
            else:
                r.add("FAIL", f"block sizes {sizes}: every data file but the last must hold the same number of frames")
        total = sum(sizes)

        n, t = f.get(SPEC + "/nimages"), f.get(SPEC + "/ntrigger")
        if not ok_files:
            pass  # the frame count cannot be checked against missing files
        elif n is None:
            r.add("FAIL", "detectorSpecific/nimages is missing")
        else:
            prod = int(n[()]) * (int(t[()]) if t is not None else 1)
            r.add("OK" if prod == total else "FAIL",
                  f"nimages x ntrigger = {prod}" + ("" if prod == total else f", but the data files hold {total} frames"))

        m = f.get(SPEC + "/pixel_mask")
        if m is None:
            r.add("WARN", "no detectorSpecific/pixel_mask")
        else:
            probs = []
            if m.dtype != np.uint32:
                probs.append(f"type {m.dtype} (Neggia needs uint32)")
            if shape is not None and m.shape != tuple(shape):
                probs.append(f"shape {m.shape} differs from the frames {tuple(shape)}")
            if m.chunks is not None or _filters(m):
                probs.append("chunked or filtered (Neggia aborts on that)")
            r.add("FAIL" if probs else "OK", "pixel_mask " + ("; ".join(probs) if probs else "uint32, frame shape, plain"))

        bad = _ascii_attr_problems(f)
        r.add("FAIL" if bad else "OK", "NX_class attributes " + (f"not fixed-length ASCII in {bad[:3]} (durin cannot read them)" if bad else "fixed-length ASCII"))

        for item, need in ((DET + "/x_pixel_size", True), (DET + "/y_pixel_size", True), (DET + "/beam_center_x", True),
                           (DET + "/beam_center_y", True), (DET + "/count_time", False), (DET + "/frame_time", False),
                           (DET + "/sensor_thickness", False), (DET + "/bit_depth_image", False)):
            if item not in f:
                r.add("FAIL" if need else "WARN", f"{item.rsplit('/', 1)[-1]} is missing")
        if not any(p in f for p in (DET + "/detector_distance", DET + "/distance")):
            r.add("FAIL", "detector_distance is missing")
        if not any(p in f for p in ("/entry/instrument/beam/incident_wavelength", "/entry/sample/beam/incident_wavelength",
                                    "/entry/instrument/beam/wavelength", "/entry/instrument/monochromator/wavelength")):
            r.add("FAIL", "no wavelength")
        if not any(p in f for p in (SPEC + "/countrate_correction_count_cutoff", DET + "/saturation_value", SPEC + "/saturation_value")):
            r.add("WARN", "no saturation value / count cutoff (XDS' OVERLOAD)")
        if DET + "/bit_depth_image" in f and dtype is not None and int(f[DET + "/bit_depth_image"][()]) != 8 * dtype.itemsize:
            r.add("WARN", f"bit_depth_image {int(f[DET + '/bit_depth_image'][()])} but the data are {dtype}")
        if "/entry/sample/goniometer/omega" not in f and "/entry/sample/transformations/omega" not in f:
            r.add("WARN", "no omega angles in /entry/sample")
        else:
            r.add("OK", "geometry fields present")

    if decode and not r.failed:
        from .eiger import open_dataset

        try:
            frames = open_dataset(master).frames
            counts = frames.map_blocks(lambda b: np.array([b.shape[0]])[:, None, None], chunks=((1,) * frames.numblocks[0], (1,), (1,)),
                                       dtype=int).compute(scheduler="threads")
            r.add("OK", f"decoded all {int(counts.sum())} frames")
        except Exception as e:  # noqa: BLE001 - any decode failure is a validation failure
            r.add("FAIL", f"decoding frames failed: {e}")
    return r


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="lbnl-validate", description=__doc__.splitlines()[0])
    p.add_argument("master", help="the *_master.h5 file to check")
    p.add_argument("--no-decode", action="store_true", help="skip decoding every frame")
    a = p.parse_args(argv)
    r = validate(a.master, decode=not a.no_decode)
    print(r)
    print(f"{a.master}: {'FAILED' if r.failed else 'valid'}")
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
