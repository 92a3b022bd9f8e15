"""Resolution shells: d of pixels and reflections, and the background shell by shell.

The fidelity statistics (:mod:`lbnl_dask.quality`, the explorer) are given per resolution
shell, because what a lossy step does to the weak, high-resolution data hides in an
overall figure. Shells hold equal numbers of strong reflections (lowest resolution
first). The background of a shell is the counts of the background pixels (away from every
reflection) whose d falls in it: each integration pass accumulates them in
:data:`FINE_BINS` fine bins of 1/d^2, and :func:`shell_background` adds the fine bins of a
shell, so shells can be chosen after the pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Fine bins of 1/d^2 (Å^-2) the background is accumulated in, from 0 to the frame's corner.
FINE_BINS = 400


@dataclass(frozen=True)
class Geometry:
    """Flat-detector geometry in output pixels: beam centre (pixels), pixel size and distance
    (m), wavelength (Å). Detector 2-theta is not applied (a shell is then a ring about the
    beam, as for a detector facing the beam)."""

    beam_x: float
    beam_y: float
    pixel_x: float
    pixel_y: float
    distance: float
    wavelength: float

    @classmethod
    def of_meta(cls, meta, b: int = 1) -> Geometry | None:
        """The geometry of ``meta`` binned ``b`` x ``b`` (``b=1`` for an output master's own
        meta); None if an item is missing or not positive. The beam centre is in pixels from
        the first pixel's edge, binned as the master's is (divided by b), so both give the
        same output-pixel index: centre / b - 0.5."""
        items = (meta.beam_center_x, meta.beam_center_y, meta.x_pixel_size,
                 meta.y_pixel_size or meta.x_pixel_size, meta.detector_distance,
                 meta.wavelength)  # fmt: skip
        if any(v is None or not np.isfinite(v) for v in items) or min(items[2:]) <= 0:
            return None
        bx, by, px, py, dist, wl = (float(v) for v in items)
        return cls(bx / b - 0.5, by / b - 0.5, px * b, py * b, dist, wl)

    def inv_d2(self, x, y) -> np.ndarray:
        """1/d^2 (Å^-2) at output pixel centres (x, y) (arrays of any shape)."""
        r = np.hypot((np.asarray(x) - self.beam_x) * self.pixel_x,
                     (np.asarray(y) - self.beam_y) * self.pixel_y)  # fmt: skip
        sin_theta = np.sin(np.arctan2(r, self.distance) / 2)
        return (2 * sin_theta / self.wavelength) ** 2

    def d(self, x, y) -> np.ndarray:
        """d (Å) at output pixel centres (x, y); inf at the beam."""
        with np.errstate(divide="ignore"):
            return 1 / np.sqrt(self.inv_d2(x, y))

    def fine_edges(self, shape) -> np.ndarray:
        """The :data:`FINE_BINS` + 1 edges of 1/d^2 covering a frame of ``shape`` (ny, nx)."""
        ny, nx = shape
        corners = self.inv_d2(np.array([0, nx - 1, 0, nx - 1]), np.array([0, 0, ny - 1, ny - 1]))
        return np.linspace(0.0, float(corners.max()) * (1 + 1e-9), FINE_BINS + 1)


def background_histograms(ref, out, free, geometry: Geometry) -> np.ndarray:
    """Counts of the ``free`` (background) pixels of ``ref`` and ``out`` (n, ny, nx) in the
    fine 1/d^2 bins of ``geometry``: an array (2, FINE_BINS), reference then output."""
    n, ny, nx = ref.shape
    edges = geometry.fine_edges((ny, nx))
    y, x = np.mgrid[0:ny, 0:nx]
    bins = np.clip(np.searchsorted(edges, geometry.inv_d2(x, y), side="right") - 1, 0,
                   FINE_BINS - 1)  # fmt: skip
    hist = np.zeros((2, FINE_BINS))
    for k in range(n):
        sel = free[k]
        for c, data in enumerate((ref, out)):
            hist[c] += np.bincount(bins[sel], weights=data[k][sel], minlength=FINE_BINS)
    return hist


#: Strong reflections (I/sigma >= 3) per resolution shell: as many shells (up to
#: :data:`MAX_SHELLS`) as hold this many each, and each judged as the whole is judged.
MIN_SHELL_REFLECTIONS = 20
MAX_SHELLS = 5


def shell_count(strong: int) -> int:
    """Resolution shells for ``strong`` reflections (I/sigma >= 3): as many, up to
    :data:`MAX_SHELLS`, as hold :data:`MIN_SHELL_REFLECTIONS` each (0 below that). The
    explorer and :func:`lbnl_dask.quality.fidelity` share it, so they judge the same shells."""
    return min(MAX_SHELLS, int(strong) // MIN_SHELL_REFLECTIONS)


def shell_ranges(d: np.ndarray, shells: int) -> list[tuple[np.ndarray, float, float]]:
    """Split reflections of resolution ``d`` (Å) into ``shells`` of equal count, lowest
    resolution first: (indices, d_max, d_min) per shell. Empty if fewer than two per shell
    or a d is not finite."""
    d = np.asarray(d, float)
    if shells < 1 or len(d) < 2 * shells or not np.isfinite(d).all():
        return []
    order = np.argsort(-d)
    return [(part, float(d[part].max()), float(d[part].min()))
            for part in np.array_split(order, shells)]  # fmt: skip


def shell_background(hist: np.ndarray, edges: np.ndarray, d_max: float, d_min: float) -> float:
    """Background out/in over the fine bins overlapping d_min..d_max (the lowest shell
    reaching the beam, the highest the corner: pass inf and 0). NaN if they hold none."""
    lo = 0.0 if not np.isfinite(d_max) else 1 / d_max**2
    hi = np.inf if d_min <= 0 else 1 / d_min**2
    sel = (edges[:-1] < hi) & (edges[1:] > lo)  # the fine bins overlapping the shell
    total_in = hist[0][sel].sum()
    return float(hist[1][sel].sum() / total_in) if total_in > 0 else float("nan")


def shell_bounds(ranges) -> list[tuple[float, float]]:
    """(d_max, d_min) of each shell with the gaps between them closed, the first open to the
    beam and the last to the corner: each background pixel falls in exactly one shell."""
    out = []
    for i, (_, _, d_min) in enumerate(ranges):
        upper = np.inf if i == 0 else out[-1][1]
        lower = 0.0 if i == len(ranges) - 1 else float(np.sqrt(d_min * ranges[i + 1][1]))
        out.append((upper, lower))
    return out
