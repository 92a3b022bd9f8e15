"""What a synthetic detector (:class:`lbnl_dask.synth.Detector`) sees in an experiment
(:class:`lbnl_dask.synth.Experiment`): rotation geometry, the reflections crossing the Ewald
sphere, their rocking curves and spot profiles, the background, gaps, dead and hot pixels.
:mod:`lbnl_dask.synth` writes it as Eiger files.

Lengths in metres, angles in degrees, the wavelength and d-spacings in ångström, detector
positions in pixels (x = fast axis).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .synth import Detector, Experiment


def geometry(det: Detector, exp: Experiment) -> tuple[float, float, float, float]:
    """(distance m, beam_center_x px, beam_center_y px, d_min Å at the farthest corner)."""
    bcx, bcy = det.nx / 2 + 11.3, det.ny / 2 - 7.7
    dist = exp.distance
    if dist is None:
        two_theta = 2 * np.arcsin(exp.wavelength / (2 * exp.edge_resolution))
        dist = min(bcx, bcy) * exp.pixel_size / np.tan(two_theta)
    corner = np.hypot(max(bcx, det.nx - bcx), max(bcy, det.ny - bcy)) * exp.pixel_size
    d_min = exp.wavelength / (2 * np.sin(np.arctan(corner / dist) / 2))
    return float(dist), bcx, bcy, float(d_min)


#: Fields of :func:`reflections`: hkl, frame centroid (1-based), x, y (px), d (Å), expected
#: counts, rotation angle (deg).
REFLECTION_FIELDS = [
    ("h", "i4"),
    ("k", "i4"),
    ("l", "i4"),
    ("frame", "f8"),
    ("x", "f8"),
    ("y", "f8"),
    ("d", "f8"),
    ("counts", "f8"),
    ("phi", "f8"),
]


def _rotation_matrix(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 7919)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def reflections(det: Detector, exp: Experiment, nframes: int, seed: int) -> np.ndarray:
    """Reflections crossing the Ewald sphere during the scan, as a structured array.

    Fields: h, k, l, frame (1-based centroid), x, y (pixels), d (Å), counts (expected
    total over the rocking curve), phi (deg). Beam along +z, spindle along +x, detector
    normal to the beam at ``distance``, beam centre at the detector centre plus an offset.
    """
    dist, bcx, bcy, d_min = geometry(det, exp)
    a, b, c = exp.cell
    hmax = [int(np.floor(v / d_min)) for v in (a, b, c)]
    h, k, l = np.meshgrid(*(np.arange(-m, m + 1) for m in hmax), indexing="ij")  # noqa: E741 (Miller indices)
    hkl = np.stack([h.ravel(), k.ravel(), l.ravel()], axis=1)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    r0 = (hkl / np.array([a, b, c])) @ _rotation_matrix(seed).T  # reciprocal vectors, 1/Å
    rsq = np.sum(r0**2, axis=1)
    keep = rsq < 1.0 / d_min**2
    hkl, r0, rsq = hkl[keep], r0[keep], rsq[keep]
    lam = exp.wavelength
    rho = np.hypot(r0[:, 1], r0[:, 2])
    target = -lam * rsq / 2.0  # r_z must equal this on the Ewald sphere
    ok = np.abs(target) < rho
    hkl, r0, rsq, rho, target = hkl[ok], r0[ok], rsq[ok], rho[ok], target[ok]
    # r_z(phi) = r0y sin(phi) + r0z cos(phi) = rho cos(phi - alpha) with alpha = atan2(r0y, r0z)
    alpha = np.arctan2(r0[:, 1], r0[:, 2])
    base = np.arccos(target / rho)
    out = []
    phi0 = np.deg2rad(exp.omega_start)
    span = np.deg2rad(exp.omega_increment * nframes)
    rng = np.random.default_rng(seed + 1)
    for sign in (1.0, -1.0):
        phi = np.mod(sign * base + alpha - phi0, 2 * np.pi) + phi0
        inside = phi < phi0 + span + 3 * np.deg2rad(exp.mosaicity)
        cphi, sphi = np.cos(phi), np.sin(phi)
        ry = r0[:, 1] * cphi - r0[:, 2] * sphi
        rz = r0[:, 1] * sphi + r0[:, 2] * cphi
        s1 = np.stack([r0[:, 0], ry, rz + 1.0 / lam], axis=1)
        fwd = s1[:, 2] > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            x = bcx + dist * s1[:, 0] / s1[:, 2] / exp.pixel_size
            y = bcy + dist * s1[:, 1] / s1[:, 2] / exp.pixel_size
        on = inside & fwd & (x > 5) & (x < det.nx - 6) & (y > 5) & (y < det.ny - 6)
        d = 1.0 / np.sqrt(rsq)
        intensity = (
            exp.mean_intensity * np.exp(-exp.b_factor / (2 * d**2)) * rng.exponential(1.0, len(d))
        )
        frame = (np.rad2deg(phi) - exp.omega_start) / exp.omega_increment + 0.5  # 1-based centroid
        for i in np.nonzero(on)[0]:
            out.append((*hkl[i], frame[i], x[i], y[i], d[i], intensity[i], np.rad2deg(phi[i])))
    arr = np.array(out, dtype=REFLECTION_FIELDS)
    return arr[np.argsort(arr["frame"], kind="stable")]


def _erf(x):
    # Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7): avoids a SciPy dependency.
    s = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = ((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
    y = 1 - (poly + 0.254829592) * t * np.exp(-x * x)
    return s * y


def frame_fraction(refl, exp: Experiment, i: int) -> np.ndarray:
    """Fraction of each reflection's intensity falling in frame i (0-based): Gaussian rocking
    curve."""
    lo = exp.omega_start + i * exp.omega_increment
    hi = lo + exp.omega_increment
    z = np.sqrt(2.0) * exp.mosaicity
    return 0.5 * (_erf((hi - refl["phi"]) / z) - _erf((lo - refl["phi"]) / z))


def masks(det: Detector, seed: int):
    """pixel_mask (uint32, Dectris bits: 1 gap, 2 dead, 8 hot/over-responding) and
    unflagged hot and dead pixel positions."""
    mask = np.ones((det.ny, det.nx), np.uint32)
    for x0, y0 in det.module_origins():
        mask[y0 : y0 + det.module_ny, x0 : x0 + det.module_nx] = 0
    rng = np.random.default_rng(seed + 2)
    valid = np.flatnonzero(mask == 0)
    picks = rng.choice(valid, size=min(len(valid), 8 + det.nx * det.ny // 20000), replace=False)
    flagged, hot, dead = np.array_split(picks, 3)
    mask.flat[flagged[: len(flagged) // 2]] = 2
    mask.flat[flagged[len(flagged) // 2 :]] = 8
    return mask, hot, dead


def background(det: Detector, exp: Experiment, bcx: float, bcy: float) -> np.ndarray:
    """Expected background counts per pixel (ny, nx) float32, falling with radius from the beam."""
    yy, xx = np.ogrid[: det.ny, : det.nx]
    r = np.hypot(xx - bcx, yy - bcy).astype(np.float32)
    fall = np.exp(-r / (0.35 * max(det.nx, det.ny)))
    return (exp.background_floor + exp.background * fall).astype(np.float32)


def add_spots(lam, refl, exp: Experiment, i: int, expected_total):
    """Add to ``lam`` (ny, nx; counts expected per pixel) the reflections' share of frame ``i``
    (0-based), as Gaussian spots 9 x 9 pixels wide; add each one's counts to ``expected_total``."""
    half = 4
    offs = np.arange(-half, half + 1)
    frac = frame_fraction(refl, exp, i)
    for j in np.nonzero(frac > 1e-4)[0]:
        x, y = refl["x"][j], refl["y"][j]
        ix, iy = int(round(x)), int(round(y))
        gx = np.exp(-0.5 * ((ix + offs - x) / exp.spot_sigma) ** 2)
        gy = np.exp(-0.5 * ((iy + offs - y) / exp.spot_sigma) ** 2)
        prof = np.outer(gy, gx)
        prof /= prof.sum()
        counts = refl["counts"][j] * frac[j]
        spot = (counts * prof).astype(np.float32)
        lam[iy - half : iy + half + 1, ix - half : ix + half + 1] += spot
        expected_total[j] += counts
