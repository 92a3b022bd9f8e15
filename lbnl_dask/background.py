"""The local background of a frame: means of the valid pixels over square cells.

The lossy round trips replace the pixels they do not carry (invalid, saturated, kept
exactly) with the local background before encoding, so a module gap or a kept spot does not
ring into its neighbours; ``--keep-spots`` thresholds against the same background. Frames
are 2-D (ny, nx); cells are ``tile`` x ``tile`` pixels, the last ones partial.
"""

from __future__ import annotations

import numpy as np


def cell_totals(a: np.ndarray, tile: int, dtype=None) -> np.ndarray:
    """Each ``tile`` x ``tile`` cell's sum of ``a`` (ny, nx) -> (cy, cx), as ``dtype`` (default
    ``a``'s), in one fixed order: the cell's rows added one after another from the top
    (column sums), then those columns from the left; partial cells at the edges as far as
    they go. The compiled kernels (:mod:`lbnl_dask.kernels`) add in this order too, so their
    floats agree bit for bit (whole counts sum exactly in any order below 2**24 in float32)."""
    ny, nx = a.shape
    cols = np.zeros((-(-ny // tile), nx), dtype or a.dtype)
    for t in range(tile):
        rows = a[t::tile]  # row t of every cell
        cols[: rows.shape[0]] += rows
    out = np.zeros((cols.shape[0], -(-nx // tile)), cols.dtype)
    for t in range(tile):
        col = cols[:, t::tile]  # column t of every cell
        out[:, : col.shape[1]] += col
    return out


def cell_means(
    frame: np.ndarray, valid: np.ndarray, tile: int = 32, zeroed: bool = False
) -> np.ndarray:
    """Mean of the ``valid`` pixels of each ``tile`` x ``tile`` cell of a frame (ny, nx):
    float64 (ceil(ny/tile), ceil(nx/tile)); cells with no valid pixel get the frame's mean.
    ``zeroed``: the invalid pixels of ``frame`` are 0 already (saves a pass)."""
    tot = cell_totals(frame if zeroed else np.where(valid, frame, 0), tile, np.float64)
    return _means(tot, cell_totals(valid.view(np.uint8), tile, np.int64))


def _means(tot: np.ndarray, cnt: np.ndarray) -> np.ndarray:
    """Per-cell means from sums and counts of valid pixels; empty cells get the frame's mean."""
    fallback = tot.sum() / cnt.sum() if cnt.sum() else 0.0
    return np.where(cnt > 0, tot / np.maximum(cnt, 1), fallback)


def cells_to_pixels(cells: np.ndarray, tile: int, shape: tuple) -> np.ndarray:
    """Each pixel of a frame of ``shape`` (ny, nx).

    Every pixel is given the value of its ``tile`` x ``tile`` cell.
    """
    return np.repeat(np.repeat(cells, tile, axis=0), tile, axis=1)[: shape[0], : shape[1]]


def local_mean(frame: np.ndarray, valid: np.ndarray, tile: int = 32) -> np.ndarray:
    """Per-pixel :func:`cell_means`: float64 (ny, nx).

    Each pixel holds its cell's mean of valid pixels.
    """
    return cells_to_pixels(cell_means(frame, valid, tile), tile, frame.shape)


def fill_at(frame: np.ndarray, idx: np.ndarray, tile: int) -> np.ndarray:
    """Set the pixels at flat indices ``idx`` of the C-contiguous ``frame`` (ny, nx) to the
    mean of the other pixels of their ``tile`` x ``tile`` cell, in place (:func:`cell_means`,
    with the valid counts from the few indices instead of a pass over a mask)."""
    ny, nx = frame.shape
    flat = np.reshape(
        frame, -1, copy=False
    )  # a view, faster to index than frame.flat; raises, never copies
    flat[idx] = 0
    cy, cx = -(-ny // tile), -(-nx // tile)
    ys, xs = np.divmod(idx, nx)
    cells = (ys // tile) * cx + xs // tile
    area = np.outer(
        np.minimum(tile, ny - tile * np.arange(cy)), np.minimum(tile, nx - tile * np.arange(cx))
    )
    cnt = area - np.bincount(cells, minlength=cy * cx).reshape(cy, cx)
    means = _means(cell_totals(frame, tile, np.float64), cnt).reshape(-1)[cells]
    flat[idx] = np.rint(means) if frame.dtype.kind in "ui" else means
    return frame


def fill_invalid(frame: np.ndarray, bad: np.ndarray, tile: int = 32) -> np.ndarray:
    """Copy of ``frame`` (ny, nx) with the ``bad`` pixels set to the mean of the valid pixels
    of their ``tile`` x ``tile`` cell (:func:`cell_means`): a neutral local background that
    keeps module gaps from ringing into valid pixels."""
    idx = np.flatnonzero(bad)
    return fill_at(np.array(frame, order="C"), idx, tile) if idx.size else frame


#: Cells whose totals the lossy round trip keeps: 6 x 6 output pixels, "a region of a few
#: dozen pixels" over which the background's mean must come back unbiased.
TOTALS_TILE = 6
#: Pixels the strong class grows by (4-neighbours, per step): JPEG-2000 spreads a spot's
#: counts a pixel or two beyond its strong pixels; with 2, the background of a low-background
#: dataset comes back within 2% where without it JPEG-2000 left up to ~6% (tests/test_roundtrip).
STRONG_GROW = 2


def with_neighbours(a: np.ndarray, axis: int, op) -> np.ndarray:
    """``op`` of each element with its two neighbours along ``axis`` (none beyond the ends):
    ``np.add`` gives 3-sums, ``np.logical_or`` a one-step dilation."""
    out = a.copy()
    lo, hi = [slice(None)] * a.ndim, [slice(None)] * a.ndim
    lo[axis], hi[axis] = slice(None, -1), slice(1, None)
    lo, hi = tuple(lo), tuple(hi)
    op(out[hi], a[lo], out=out[hi])
    op(out[lo], a[hi], out=out[lo])
    return out


def _grown(mask: np.ndarray, steps: int) -> np.ndarray:
    """A boolean (ny, nx) mask grown by ``steps`` pixels to the 4 neighbours each step."""
    for _ in range(steps):
        mask = with_neighbours(mask, 0, np.logical_or) | with_neighbours(mask, 1, np.logical_or)
    return mask


def _to_cells(a: np.ndarray, tile: int, fill=0) -> np.ndarray:
    """(ny, nx) -> (cells, tile * tile), each row one cell (the edges padded with ``fill``)."""
    ny, nx = a.shape
    py, px = -ny % tile, -nx % tile
    if py or px:
        a = np.pad(a, ((0, py), (0, px)), constant_values=fill)
    cy, cx = a.shape[0] // tile, a.shape[1] // tile
    return np.ascontiguousarray(a.reshape(cy, tile, cx, tile).swapaxes(1, 2)).reshape(
        -1, tile * tile
    )


def _from_cells(c: np.ndarray, shape: tuple, tile: int) -> np.ndarray:
    ny, nx = shape
    cy, cx = -(-ny // tile), -(-nx // tile)
    return c.reshape(cy, cx, tile, tile).swapaxes(1, 2).reshape(cy * tile, cx * tile)[:ny, :nx]


def restore_totals(decoded: np.ndarray, original: np.ndarray, special: np.ndarray | None,
                   tile: int = TOTALS_TILE, grow: int = STRONG_GROW,
                   valid: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """``decoded`` (ny, nx, whole counts after a lossy round trip) changed so that in each
    ``tile`` x ``tile`` cell the valid pixels (all but the flat indices ``special``) sum to
    the ``original``'s, in whole counts, in place: the cell's *strong* pixels (above its
    mean by 3 Poisson sigmas: spots, grown by ``grow`` pixels to take in their halo) and
    its other pixels (the background) separately, so that a spot's counts the codec smeared
    over its surroundings go back to it. Each pixel
    gets its share of its class's total in proportion to its decoded value (clipped at 0;
    evenly where the class decoded to nothing), rounded down or up so that the total is
    exact: the round trip's pattern is kept, its bias on the totals is not. Returns
    ``decoded``.

    Runs the compiled :func:`lbnl_dask.kernels.restore_totals` where it applies
    (:func:`compiled_frames`, as the pipeline's frames are), else
    :func:`restore_totals_numpy`: the two give the same pixels. ``valid``: the mask of the
    pixels not in ``special``, where the caller has it already (``special`` may be None then)."""
    if valid is None:
        valid = np.ones(decoded.size, bool)
        valid[special] = False
        valid = valid.reshape(decoded.shape)
    if compiled_frames(decoded, original, valid) and 0 <= grow <= tile:
        from . import kernels

        return kernels.restore_totals(decoded, original, valid, tile, grow, decoded.dtype.type(0.5))
    return restore_totals_numpy(decoded, original, valid, tile, grow)


def restore_totals_numpy(
    decoded: np.ndarray,
    original: np.ndarray,
    valid: np.ndarray,
    tile: int = TOTALS_TILE,
    grow: int = STRONG_GROW,
) -> np.ndarray:
    """:func:`restore_totals` in numpy (the reference the compiled kernel is held to), with
    the valid pixels given as a boolean (ny, nx) mask."""
    shape = decoded.shape
    strong = _strong(original, valid, tile, grow)
    dec = np.where(valid, np.maximum(decoded, 0), 0)
    cells = None
    for cls in (valid & ~strong, strong):  # each class on its own, its total exact
        want = cell_totals(np.where(cls, original, 0), tile).reshape(-1, 1)
        have = cell_totals(np.where(cls, dec, 0), tile).reshape(-1, 1)
        part = _to_cells(np.where(cls, dec, 0), tile)
        empty = have[:, 0] == 0  # a class that decoded to nothing: its total spread evenly
        if empty.any():
            members = _to_cells(cls, tile, False)
            part[empty] = members[empty]
            count = cell_totals(cls, tile, np.int64).reshape(-1, 1)
            have[empty] = np.maximum(count[empty], 1)
        part *= want / have
        # whole counts by systematic rounding along the cell: each pixel gets its share
        # rounded down or up, and the rounded running totals end exactly at the total
        np.cumsum(part, axis=1, out=part)
        np.floor(part + 0.5, out=part)
        part[:, 1:] -= part[:, :-1].copy()
        cells = part if cells is None else cells + part
    np.copyto(decoded, _from_cells(cells, shape, tile), where=valid)
    return decoded


def _strong(original: np.ndarray, valid: np.ndarray, tile: int, grow: int) -> np.ndarray:
    """:func:`restore_totals`' strong pixels (ny, nx) bool: valid, above their cell's mean
    by 3 Poisson sigmas, grown by ``grow`` pixels (a spot's halo joins it: the codec smears
    spots a pixel or two)."""
    n_ok = np.maximum(cell_totals(valid, tile, np.int64), 1)
    mean = cell_totals(np.where(valid, original, 0), tile) / n_ok  # float64
    limit = cells_to_pixels(mean + 3 * np.sqrt(np.maximum(mean, 1)), tile, original.shape)
    strong = valid & (np.where(valid, original, 0) > limit)
    return valid & _grown(strong, grow) if grow else strong


def keep_within(decoded: np.ndarray, original: np.ndarray, valid: np.ndarray, bound: float,
                tile: int = TOTALS_TILE, grow: int = STRONG_GROW) -> np.ndarray:  # fmt: skip
    """``decoded`` (ny, nx, whole counts after :func:`restore_totals`) brought back to within
    ``floor(bound)`` counts of ``original`` at every ``valid`` pixel, in place, with every
    cell's totals (strong and background pixels apart, as :func:`restore_totals` keeps them)
    unchanged. An error-bounded codec (SZ3, ZFP) promises the bound; spreading a cell's
    correction over its pixels can break it (up to 10 counts at ``--sz3 3``). The counts a
    pixel loses to the clip go to the other pixels of its class and cell that have room
    below the bound, in proportion to that room, in whole counts. There is always room: the
    original itself is within the bound and has the same totals. Returns ``decoded``.

    Compiled (:func:`lbnl_dask.kernels.keep_within`, after a count of the pixels outside
    the bound: none, nothing to do) where :func:`compiled_frames` says so, else
    :func:`keep_within_numpy`: the same pixels."""
    if not compiled_frames(decoded, original, valid):
        return keep_within_numpy(decoded, original, valid, bound, tile, grow)
    from . import kernels

    b = decoded.dtype.type(np.floor(bound))
    if kernels.outside_bound(decoded, original, valid, b):
        strong = np.ascontiguousarray(_strong(original, valid, tile, grow))
        kernels.keep_within(decoded, original, valid, strong, b, tile)
    return decoded


def compiled_frames(decoded: np.ndarray, original: np.ndarray, valid: np.ndarray) -> bool:
    """Whether the compiled kernels take these frames (else their numpy references do, with
    the same pixels): ``decoded`` and ``original`` 2-D, C-contiguous, of one float type,
    ``valid`` a C-contiguous bool mask of their shape (the kernels combine flags with &, as
    bools only can be)."""
    return (
        decoded.dtype == original.dtype
        and decoded.dtype in (np.float32, np.float64)
        and decoded.ndim == 2
        and decoded.shape == original.shape == valid.shape
        and valid.dtype == bool
        and decoded.flags.c_contiguous
        and original.flags.c_contiguous
        and valid.flags.c_contiguous
    )


def keep_within_numpy(decoded: np.ndarray, original: np.ndarray, valid: np.ndarray,
                      bound: float, tile: int = TOTALS_TILE,
                      grow: int = STRONG_GROW) -> np.ndarray:  # fmt: skip
    """:func:`keep_within` in numpy (the reference the compiled kernel is held to)."""
    b = decoded.dtype.type(np.floor(bound)) if decoded.dtype.kind == "f" else np.floor(bound)
    lo, hi = original - b, original + b
    if not np.any(valid & ((decoded < lo) | (decoded > hi))):
        return decoded
    clipped = np.where(valid, np.clip(decoded, lo, hi), 0)
    strong = _strong(original, valid, tile, grow)
    out = None
    for cls in (valid & ~strong, strong):
        # what the clip took from each cell (> 0: to add back), and each pixel's room that way
        excess = cell_totals(np.where(cls, decoded - clipped, 0), tile, np.float64)
        excess = excess.reshape(-1, 1)
        up = _to_cells(np.where(cls, hi - clipped, 0), tile).astype(np.float64)
        down = _to_cells(np.where(cls, clipped - lo, 0), tile).astype(np.float64)
        room = np.where(excess > 0, up, down)
        total = np.maximum(room.sum(axis=1, keepdims=True), 1)
        part = room * (np.abs(excess) / total)  # each share within its room
        np.cumsum(part, axis=1, out=part)  # whole counts, the rounded running total exact
        np.floor(part + 0.5, out=part)
        part[:, 1:] -= part[:, :-1].copy()
        part *= np.sign(excess)
        out = part if out is None else out + part
    clipped += _from_cells(out, decoded.shape, tile).astype(clipped.dtype)
    np.copyto(decoded, clipped, where=valid)
    return decoded
