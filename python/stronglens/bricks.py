"""The Legacy Surveys brick grid, vectorised.

Tractor catalogues are cut into 0.25 x 0.25 deg *bricks*; every sweep row carries the ``brickid``
and ``brickname`` of the brick it was fitted in, and ``(release, brickid, objid)`` is the row key.
The synthetic sky (``synth``) must therefore place objects on exactly the grid the real survey
uses, so that brick-level joins, names and IDs behave as on DR10.

Construction (the one used for ``survey-bricks.fits.gz``; reference implementation
``desiutil.brick.Bricks``, DESI, BSD licence -- re-derived here, not copied):

* brick *rows* are centred on Dec = -90, -89.75, ..., +90 (721 rows), each 0.25 deg tall, so row
  edges fall on x.125 / x.375 deg (the DR10 north/south boundary Dec = 32.375 is a row edge);
* a row is split in RA into ``n = 2 * ceil(360 cos(dec_lo) / 0.25 / 2)`` equal bricks, where
  ``dec_lo = |dec_centre| - 0.125`` is the row edge nearest the equator, so no brick is wider than
  0.25 deg on the sky and every row has an even count; the two polar rows are single bricks;
* ``brickid`` runs from 1 upwards, row by row from the south pole, west to east from RA = 0;
* ``brickname`` is ``RRRR[p|m]DDD``: the first four digits of the centre RA x 10 and three digits of
  |Dec| x 10 (truncated, after rounding the centre to 1e-4 deg), ``p`` for Dec >= 0.

This reproduces the documented total of 662,174 bricks and the documented brickid range
[1, 662174] (legacysurvey.org DR9/DR10 catalogue pages); a test checks both.  As the survey
documentation notes, a name cannot be inverted to the exact centre (centres are not on the 0.1 deg
grid), but the truncated name coordinates always fall inside the named brick, which
:func:`brick_from_name` exploits.

Bounds convention: a brick holds ``ra1 <= ra < ra2`` and ``dec1 <= dec < dec2`` with RA taken modulo
360; the polar rows are clipped to |Dec| <= 90 and the north-polar row also holds Dec = +90 exactly.
:func:`brick_index` corrects the float rounding of the ``floor`` so that every point satisfies the
bounds that :func:`brick_bounds` reports, bit for bit.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

#: Brick height (and maximum width) in degrees.
BRICK_SIZE = 0.25

#: Number of bricks in the full-sky grid (legacysurvey.org: BRICKID in [1, 662174]).
N_BRICKS = 662_174


class _Grid:
    """Per-row arrays of the brick grid (721 rows), built once."""

    def __init__(self, size: float) -> None:
        half = size / 2.0
        self.centre_dec = np.arange(-90.0, 90.0 + half, size)
        nrow = self.centre_dec.size
        dec_lo = np.abs(self.centre_dec) - half
        ncol = (np.ceil(360.0 / size * np.cos(np.radians(dec_lo)) / 2.0) * 2.0).astype(np.int64)
        ncol[0] = ncol[-1] = 1
        self.ncol = ncol
        self.dec1 = np.maximum(self.centre_dec - half, -90.0)
        self.dec2 = np.minimum(self.centre_dec + half, 90.0)
        # First brickid of each row minus one (brickid = row_start + col + 1).
        self.row_start = np.concatenate([[0], np.cumsum(ncol)[:-1]])
        self.nrow = nrow
        self.size = size
        self.total = int(ncol.sum())


@lru_cache(maxsize=1)
def _grid() -> _Grid:
    return _Grid(BRICK_SIZE)


def _as_float_array(x: npt.ArrayLike, name: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(x, dtype=np.float64))
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; drop those rows before brick lookup")
    return arr


def brick_row(dec: npt.ArrayLike) -> np.ndarray:
    """Row index (0 = south pole .. 720 = north pole) of each Dec, consistent with the row bounds."""
    g = _grid()
    d = _as_float_array(dec, "dec")
    if np.any((d < -90.0) | (d > 90.0)):
        raise ValueError("dec outside [-90, 90] deg: fix the input coordinates")
    row = np.floor((d + 90.0 + g.size / 2.0) / g.size).astype(np.int64)
    row = np.clip(row, 0, g.nrow - 1)
    # Repair floor() rounding at the row edges so that dec1 <= dec < dec2 holds exactly.
    row = np.where(d < g.dec1[row], row - 1, row)
    row = np.where((d >= g.dec2[row]) & (row < g.nrow - 1), row + 1, row)
    return row


def _column(ra: np.ndarray, ncol: np.ndarray) -> np.ndarray:
    col = np.floor(ra * ncol / 360.0).astype(np.int64)
    col = np.clip(col, 0, ncol - 1)
    col = np.where(ra < 360.0 * col / ncol, col - 1, col)
    col = np.where((ra >= 360.0 * (col + 1) / ncol) & (col < ncol - 1), col + 1, col)
    return col


def brick_id(ra: npt.ArrayLike, dec: npt.ArrayLike) -> np.ndarray:
    """``brickid`` (int32) of each (ra, dec) in degrees; RA is taken modulo 360."""
    g = _grid()
    r = np.mod(_as_float_array(ra, "ra"), 360.0)
    r[r >= 360.0] = 0.0  # np.mod(-1e-17, 360) rounds to 360.0
    d = _as_float_array(dec, "dec")
    if r.shape != d.shape:
        raise ValueError(f"ra and dec differ in shape: {r.shape} vs {d.shape}")
    row = brick_row(d)
    col = _column(r, g.ncol[row])
    return (g.row_start[row] + col + 1).astype(np.int32)


def brick_row_col(brickid: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``(row, column)`` of each brickid (row 0 = south pole; column 0 starts at RA = 0)."""
    g = _grid()
    bid = np.atleast_1d(np.asarray(brickid)).astype(np.int64)
    if np.any((bid < 1) | (bid > g.total)):
        bad = bid[(bid < 1) | (bid > g.total)][:5]
        raise ValueError(f"brickid outside [1, {g.total}]: {bad.tolist()} (first few shown)")
    row = np.searchsorted(g.row_start, bid - 1, side="right") - 1
    col = bid - 1 - g.row_start[row]
    return row, col


def brick_bounds(brickid: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(ra1, ra2, dec1, dec2)`` in degrees of each brick (``ra1 <= ra < ra2``, ``dec1 <= dec < dec2``)."""
    g = _grid()
    row, col = brick_row_col(brickid)
    n = g.ncol[row]
    return 360.0 * col / n, 360.0 * (col + 1) / n, g.dec1[row], g.dec2[row]


def brick_center(brickid: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Centre ``(ra, dec)`` in degrees of each brick (polar bricks: RA 180, Dec +-90)."""
    g = _grid()
    row, col = brick_row_col(brickid)
    n = g.ncol[row]
    ra = 360.0 * (col + 0.5) / n
    return ra, g.centre_dec[row]


def brick_name(brickid: npt.ArrayLike) -> np.ndarray:
    """``brickname`` (``RRRR[p|m]DDD``) of each brick, as a numpy unicode array."""
    ra, dec = brick_center(brickid)
    ra4 = np.round(ra * 1e4).astype(np.int64) // 1000
    dec3 = np.round(np.abs(dec) * 1e4).astype(np.int64) // 1000
    sign = np.where(dec >= 0.0, "p", "m")
    return np.char.add(
        np.char.add(np.char.zfill(ra4.astype(str), 4), sign), np.char.zfill(dec3.astype(str), 3)
    )


def brick_index(ra: npt.ArrayLike, dec: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``(brickid int32, brickname str)`` of each (ra, dec); names are built once per distinct brick."""
    bid = brick_id(ra, dec)
    uniq, inverse = np.unique(bid, return_inverse=True)
    return bid, brick_name(uniq)[inverse]


def brick_from_name(name: npt.ArrayLike) -> np.ndarray:
    """``brickid`` of each brick name; raises on a malformed name or one that names no brick.

    The truncated name coordinates (RA = RRRR / 10, Dec = +-DDD / 10) always lie inside the named
    brick (truncation error < 0.1 deg < half a brick), so a lookup there and a name comparison
    recovers the brick exactly.
    """
    names = np.atleast_1d(np.asarray(name, dtype=str))
    codes = np.char.ljust(names, 9).astype("U9").view(np.uint32).reshape(names.size, 9)
    digits = codes - ord("0")
    is_digit = (digits >= 0) & (digits <= 9)
    sign_ok = (codes[:, 4] == ord("p")) | (codes[:, 4] == ord("m"))
    ok = is_digit[:, [0, 1, 2, 3, 5, 6, 7]].all(axis=1) & sign_ok & (codes[:, 8] == ord(" "))
    if not np.all(ok):
        raise ValueError(
            f"malformed brick name(s) {names[~ok][:3].tolist()}: expected RRRR[p|m]DDD, e.g. 1126p222"
        )
    weights = np.array([1000, 100, 10, 1])
    ra = (digits[:, :4] @ weights) / 10.0
    dec = np.where(codes[:, 4] == ord("m"), -1.0, 1.0) * (digits[:, 5:8] @ weights[1:]) / 10.0
    if np.any(ra >= 360.0) or np.any(np.abs(dec) > 90.0):
        raise ValueError(
            f"brick name(s) {names[(ra >= 360) | (np.abs(dec) > 90)][:3].tolist()} are off the sky"
        )
    bid = brick_id(ra, dec)
    back = brick_name(bid)
    mismatch = back != names
    if np.any(mismatch):
        raise ValueError(
            f"brick name(s) {names[mismatch][:3].tolist()} name no brick of the Legacy Surveys grid "
            f"(nearest: {back[mismatch][:3].tolist()}); check the spelling"
        )
    return bid


def bricks_in_box(ra_min: float, ra_max: float, dec_min: float, dec_max: float) -> np.ndarray:
    """All brickids whose area overlaps the box ``[ra_min, ra_max) x [dec_min, dec_max)``, in id order.

    Requires ``0 <= ra_min < ra_max <= 360``; the loop runs over brick *rows* (at most a few dozen
    for a sweep tile), each row handled with array arithmetic.
    """
    if not (0.0 <= ra_min < ra_max <= 360.0) or not (-90.0 <= dec_min < dec_max <= 90.0):
        raise ValueError(
            f"invalid box ra [{ra_min}, {ra_max}) dec [{dec_min}, {dec_max}): need 0<=ramin<ramax<=360"
        )
    g = _grid()
    rows = np.flatnonzero((g.dec2 > dec_min) & (g.dec1 < dec_max))
    out = []
    for row in rows:
        n = int(g.ncol[row])
        first = int(np.floor(ra_min * n / 360.0))
        last = int(np.ceil(ra_max * n / 360.0))
        cols = np.arange(max(first - 1, 0), min(last + 1, n))
        ra1 = 360.0 * cols / n
        ra2 = 360.0 * (cols + 1) / n
        cols = cols[(ra2 > ra_min) & (ra1 < ra_max)]
        out.append(g.row_start[row] + cols + 1)
    return np.concatenate(out).astype(np.int32) if out else np.zeros(0, np.int32)


def brick_area(brickid: npt.ArrayLike) -> np.ndarray:
    """Solid angle of each brick in deg^2 (exact spherical rectangle)."""
    ra1, ra2, dec1, dec2 = brick_bounds(brickid)
    return (ra2 - ra1) * np.degrees(np.sin(np.radians(dec2)) - np.sin(np.radians(dec1)))
