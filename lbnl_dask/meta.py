"""Detector, beam and goniometer metadata of a dataset, and how summing and binning change it.

:class:`DetectorMeta` holds plain typed fields (SI units as named in each field). The
functions below compute the metadata of the *output* of ``sum s`` / ``bin b`` / ``scale S``,
following SPEC Part A2; the writer applies them to the master, so each rule lives here once.
"""
from __future__ import annotations

import dataclasses

from dataclasses import dataclass, field

import numpy as np


@dataclass
class DetectorMeta:
    """Metadata of an Eiger/NXmx master file.

    Lengths are in metres, angles in degrees, times in seconds, the wavelength in
    ångström, the beam centre in pixels from the first pixel's edge. ``None`` when the
    master does not carry the item.
    """

    master: str
    nimages: int
    ntrigger: int = 1
    nx: int | None = None  # x_pixels_in_detector (fast axis)
    ny: int | None = None  # y_pixels_in_detector (slow axis)
    x_pixel_size: float | None = None
    y_pixel_size: float | None = None
    beam_center_x: float | None = None
    beam_center_y: float | None = None
    detector_distance: float | None = None
    sensor_thickness: float | None = None
    wavelength: float | None = None
    count_time: float | None = None
    frame_time: float | None = None
    omega: np.ndarray | None = None  # start angle of every frame (deg), or None
    omega_increment: float | None = None
    saturation_value: int | None = None
    countrate_cutoff: int | None = None
    bit_depth_image: int | None = None
    bit_depth_readout: int | None = None
    description: str | None = None
    detector_number: str | None = None
    eiger_fw_version: str | None = None
    software_version: str | None = None
    pixel_mask_path: str | None = None  # HDF5 path of the pixel mask in the master
    extra: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        """Frames the master announces: nimages x ntrigger."""
        return int(self.nimages) * int(self.ntrigger)

    @property
    def overload(self) -> int | None:
        """The count at and above which a pixel is saturated (cutoff, else saturation value)."""
        for v in (self.countrate_cutoff, self.saturation_value):
            if v is not None:
                return int(v)
        return None

    def replace(self, **changes) -> "DetectorMeta":
        return dataclasses.replace(self, **changes)


def binned_size(n: int, b: int) -> int:
    """Pixels along an axis of n pixels after b x b binning (partial edge kept): ceil(n/b)."""
    return -(-int(n) // int(b))


def output_frame_count(n_in: int, s: int) -> int:
    """Output frames from n_in input frames summed s at a time (partial last group kept)."""
    return -(-int(n_in) // int(s))


def summed_angles(start: np.ndarray, increment: float, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-frame (start, end) angles in degrees for input start angles summed s at a time.

    ``start`` holds one start angle per selected input frame; the output frame k begins at
    the start of its group's first frame and ends at the end of its group's last frame
    (start + increment). With 7 frames 0, 0.5, ... and s=2: starts 0,1,2,3; ends 1,2,3,3.5.
    """
    start = np.asarray(start, dtype=np.float64)
    first = start[::s]
    last = start[s - 1 :: s]
    if len(last) < len(first):
        last = np.append(last, start[-1])
    return first, last + float(increment)


def output_meta(meta: DetectorMeta, *, first_image: int, last_image: int, s: int, b: int,
                saturation_value: int | None, bit_depth: int) -> DetectorMeta:
    """Metadata of the output of summing ``s`` frames and binning ``b`` x ``b`` pixels.

    Pixel size x b; beam centre / b; pixel counts ceil(/b); count and frame time x s;
    nimages = output frames, ntrigger = 1; omega starts of each group's first frame,
    increment x s; the saturation value and bit depth as the transform chose them.
    """
    n_in = last_image - first_image + 1
    n_out = output_frame_count(n_in, s)
    omega = None
    inc = meta.omega_increment
    if meta.omega is not None:
        sel = np.asarray(meta.omega, dtype=np.float64)[first_image - 1 : last_image]
        omega = sel[::s].copy()
    mul = lambda v, k: None if v is None else v * k  # noqa: E731
    return meta.replace(
        nimages=n_out,
        ntrigger=1,
        nx=None if meta.nx is None else binned_size(meta.nx, b),
        ny=None if meta.ny is None else binned_size(meta.ny, b),
        x_pixel_size=mul(meta.x_pixel_size, b),
        y_pixel_size=mul(meta.y_pixel_size, b),
        beam_center_x=None if meta.beam_center_x is None else meta.beam_center_x / b,
        beam_center_y=None if meta.beam_center_y is None else meta.beam_center_y / b,
        count_time=mul(meta.count_time, s),
        frame_time=mul(meta.frame_time, s),
        omega=omega,
        omega_increment=mul(inc, s),
        saturation_value=saturation_value,
        countrate_cutoff=saturation_value,
        bit_depth_image=bit_depth,
    )


def bin_pixel_mask(mask: np.ndarray, b: int) -> np.ndarray:
    """Bin a 2-D pixel mask b x b by bitwise OR (zero-padded edges): shape (ceil(ny/b), ceil(nx/b)), uint32."""
    mask = np.asarray(mask).astype(np.uint32, copy=False)
    if b == 1:
        return mask.copy()
    ny, nx = mask.shape
    py, px = binned_size(ny, b) * b, binned_size(nx, b) * b
    padded = np.zeros((py, px), np.uint32)
    padded[:ny, :nx] = mask
    blocks = padded.reshape(py // b, b, px // b, b)
    return np.bitwise_or.reduce(np.bitwise_or.reduce(blocks, axis=3), axis=1)


def smallest_uint(max_value: int) -> np.dtype:
    """The narrowest unsigned dtype (uint16 at least) whose range holds ``max_value`` below all-bits-set."""
    for dt in (np.uint16, np.uint32, np.uint64):
        if max_value < np.iinfo(dt).max:
            return np.dtype(dt)
    raise ValueError(f"no unsigned integer type holds {max_value}")


