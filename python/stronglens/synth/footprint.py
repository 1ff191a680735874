"""Footprint of the synthetic DR10-south sky: sweep tiles, the bricks inside it, tile selection."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stronglens import bricks
from stronglens.schema import sweep_filename

#: Sweep tiles are 5 x 5 deg (DOMAIN.md, DR10).
TILE_DEG = 5
N_TILE_RA = 360 // TILE_DEG
#: Tile Dec index runs from -18 (Dec -90..-85) to 17 (Dec 85..90).
TILE_DEC_INDEX_MIN = -90 // TILE_DEG
TILE_DEC_INDEX_MAX = 90 // TILE_DEG - 1

_ARCSEC = 1.0 / 3600.0

_TILE_RE = re.compile(r"^sweep-(\d{3})([pm])(\d{3})-(\d{3})([pm])(\d{3})(?:\.parquet)?$")
_BOX_RE = re.compile(r"^\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*$")


# --------------------------------------------------------------------------------------------------
# Galactic coordinates


def _galactic_matrix() -> np.ndarray:
    """ICRS -> Galactic rotation built from the IAU (1958) pole in J2000 coordinates.

    North Galactic pole (RA, Dec) = (192.85948, 27.12825) deg and Galactic longitude of the north
    celestial pole 122.93192 deg (the J2000 values astropy uses for its FK5 <-> Galactic matrix);
    the columns are the images of the three ICRS unit vectors.  It differs from astropy's
    ICRS -> Galactic by the ~20 mas FK5 frame bias only (a test checks it).
    """
    ra_gp, dec_gp, l_ncp = np.radians([192.85948, 27.12825, 122.93192])
    ra = np.radians([0.0, 90.0, 0.0])
    dec = np.radians([0.0, 0.0, 90.0])
    sin_b = np.sin(dec) * np.sin(dec_gp) + np.cos(dec) * np.cos(dec_gp) * np.cos(ra - ra_gp)
    b = np.arcsin(np.clip(sin_b, -1.0, 1.0))
    lon = l_ncp - np.arctan2(
        np.cos(dec) * np.sin(ra - ra_gp),
        np.sin(dec) * np.cos(dec_gp) - np.cos(dec) * np.sin(dec_gp) * np.cos(ra - ra_gp),
    )
    return np.stack([np.cos(b) * np.cos(lon), np.cos(b) * np.sin(lon), np.sin(b)])


_GAL = _galactic_matrix()


def _unit(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    cd = np.cos(dec)
    return np.stack([cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)], axis=-1)


def icrs_to_galactic(ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Galactic ``(l, b)`` in degrees of ICRS ``(ra, dec)`` in degrees, vectorised, astropy-free."""
    v = _unit(np.asarray(ra, np.float64), np.asarray(dec, np.float64)) @ _GAL.T
    lon = np.degrees(np.arctan2(v[..., 1], v[..., 0])) % 360.0
    lat = np.degrees(np.arcsin(np.clip(v[..., 2], -1.0, 1.0)))
    return lon, lat


# --------------------------------------------------------------------------------------------------
# Footprint and tiles


@dataclass(frozen=True)
class Footprint:
    """DR10-south-like footprint, decided per brick from its centre (real footprints are sets of bricks).

    * ``dec_max`` 32.375: DR10 south is DECam below the BASS/MzLS boundary (DOMAIN.md); it is a
      brick-row edge, so the cut is exact.
    * ``dec_min_sgc`` -68: DES reaches about -65..-68 (brief); the 5,104 lens candidates reach -66.9.
    * ``dec_min_ngc`` -11: in the north Galactic cap DECaLS stops near Dec -10; no candidate there
      lies below -9.73 (measured on the seed).
    * ``b_min`` 15: the Galactic plane is not surveyed; the closest candidate has |b| = 16.3.

    The resulting area is ~19,700 deg^2, the area the DR10-south lens candidates actually span
    (HEALPix nside-4 occupancy of the seed: ~19,500 deg^2).  DOMAIN.md quotes ~14,000 deg^2, which is
    the DR9-era Legacy Surveys figure (Dey et al. 2019, north + south); cutting to that area would
    drop ~1,000 real candidates outside the synthetic sky.
    """

    dec_max: float = 32.375
    dec_min_sgc: float = -68.0
    dec_min_ngc: float = -11.0
    b_min: float = 15.0

    def contains(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        """Boolean mask of points inside the footprint (used on brick centres)."""
        _, b = icrs_to_galactic(ra, dec)
        dec = np.asarray(dec)
        lower = np.where(b < 0.0, self.dec_min_sgc, self.dec_min_ngc)
        return (dec < self.dec_max) & (dec > lower) & (np.abs(b) >= self.b_min)


@dataclass(frozen=True, order=True)
class Tile:
    """One 5 x 5 deg sweep tile: RA index 0..71, Dec index -18..17 (Dec = 5 * idec)."""

    idec: int
    ira: int

    @property
    def ra_min(self) -> int:
        return self.ira * TILE_DEG

    @property
    def dec_min(self) -> int:
        return self.idec * TILE_DEG

    @property
    def name(self) -> str:
        return sweep_filename(self.ra_min, self.dec_min, self.ra_min + TILE_DEG, self.dec_min + TILE_DEG)

    @property
    def stem(self) -> str:
        return self.name.removesuffix(".parquet")


def parse_tile(name: str) -> Tile:
    """The :class:`Tile` of a sweep name (``sweep-000m010-005m005`` with or without ``.parquet``)."""
    m = _TILE_RE.match(os.path.basename(name.strip()))
    if not m:
        raise ValueError(f"tile {name!r} is not a sweep name like 'sweep-000m010-005m005[.parquet]'")
    ra0, s0, d0, ra1, s1, d1 = m.groups()
    ra_min, ra_max = int(ra0), int(ra1)
    dec_min = int(d0) * (-1 if s0 == "m" else 1)
    dec_max = int(d1) * (-1 if s1 == "m" else 1)
    ok = (
        ra_min % TILE_DEG == 0
        and dec_min % TILE_DEG == 0
        and ra_max == ra_min + TILE_DEG
        and dec_max == dec_min + TILE_DEG
        and 0 <= ra_min < 360
        and -90 <= dec_min < 90
    )
    if not ok:
        raise ValueError(f"tile {name!r} is not a {TILE_DEG}x{TILE_DEG} deg tile on the {TILE_DEG}-deg grid")
    return Tile(idec=dec_min // TILE_DEG, ira=ra_min // TILE_DEG)


class _FootprintIndex:
    """Footprint bricks over the whole sky and the tiles they touch (built once per footprint)."""

    def __init__(self, footprint: Footprint) -> None:
        ids = np.arange(1, bricks.N_BRICKS + 1, dtype=np.int64)
        ra_c, dec_c = bricks.brick_center(ids)
        near = (dec_c < footprint.dec_max + 1.0) & (
            dec_c > min(footprint.dec_min_sgc, footprint.dec_min_ngc) - 1.0
        )
        inside = np.zeros(ids.size, bool)
        inside[near] = footprint.contains(ra_c[near], dec_c[near])
        self.brick_mask = inside
        self.area = float(bricks.brick_area(ids[inside]).sum())
        ra1, ra2, d1, d2 = bricks.brick_bounds(ids[inside])
        ra_last, dec_last = np.nextafter(ra2, -np.inf), np.nextafter(d2, -np.inf)
        # Tile key (idec - TILE_DEC_INDEX_MIN) * N_TILE_RA + ira of the tiles under each brick corner
        # (a brick spans at most 2 x 2 tiles, so its corners find them all).
        keys = np.unique(
            np.concatenate(
                [
                    (np.floor(dd / TILE_DEG).astype(np.int64) - TILE_DEC_INDEX_MIN) * N_TILE_RA
                    + np.floor(rr / TILE_DEG).astype(np.int64)
                    for rr in (ra1, ra_last)
                    for dd in (d1, dec_last)
                ]
            )
        )
        self.tiles = [
            Tile(idec=int(k // N_TILE_RA + TILE_DEC_INDEX_MIN), ira=int(k % N_TILE_RA)) for k in keys
        ]

    def in_footprint(self, brickid: np.ndarray) -> np.ndarray:
        return self.brick_mask[np.asarray(brickid, np.int64) - 1]


_FOOTPRINT_CACHE: dict[Footprint, _FootprintIndex] = {}


def _footprint_index(footprint: Footprint) -> _FootprintIndex:
    if footprint not in _FOOTPRINT_CACHE:
        _FOOTPRINT_CACHE[footprint] = _FootprintIndex(footprint)
    return _FOOTPRINT_CACHE[footprint]


def footprint_tiles(footprint: Footprint | None = None) -> list[Tile]:
    """Every tile that overlaps at least one footprint brick, sorted by (Dec, RA)."""
    return list(_footprint_index(footprint or Footprint()).tiles)


def footprint_bricks(footprint: Footprint | None = None) -> np.ndarray:
    """Brickids of every footprint brick, ascending."""
    return np.flatnonzero(_footprint_index(footprint or Footprint()).brick_mask) + 1


def footprint_area(footprint: Footprint | None = None) -> float:
    """Footprint area in deg^2 (sum of the exact areas of its bricks)."""
    return _footprint_index(footprint or Footprint()).area


def select_tiles(tiles: Sequence[str] | None, footprint: Footprint | None = None) -> list[Tile]:
    """Resolve the ``tiles`` argument of :func:`generate_sky` into footprint tiles (see module doc)."""
    available = footprint_tiles(footprint)
    if tiles is None:
        return available
    if isinstance(tiles, str):
        raise TypeError("tiles must be a list of names or boxes, e.g. ['150,160,0,5'], not a bare string")
    chosen: set[Tile] = set()
    avail = set(available)
    for item in tiles:
        box = _BOX_RE.match(item)
        if box:
            ra_lo, ra_hi, dec_lo, dec_hi = (float(v) for v in box.groups())
            if not (-90.0 <= dec_lo < dec_hi <= 90.0) or not (
                0.0 <= ra_lo <= 360.0 and 0.0 <= ra_hi <= 360.0
            ):
                raise ValueError(f"box {item!r}: need 0 <= RA <= 360 and -90 <= DECMIN < DECMAX <= 90")
            for t in available:
                t_ra0, t_ra1 = t.ra_min, t.ra_min + TILE_DEG
                if ra_lo < ra_hi:
                    ra_hit = t_ra1 > ra_lo and t_ra0 < ra_hi
                elif ra_lo > ra_hi:
                    ra_hit = t_ra1 > ra_lo or t_ra0 < ra_hi
                else:
                    raise ValueError(f"box {item!r} has RAMIN == RAMAX: it selects nothing")
                if ra_hit and t.dec_min + TILE_DEG > dec_lo and t.dec_min < dec_hi:
                    chosen.add(t)
            continue
        tile = parse_tile(item)
        if tile not in avail:
            raise ValueError(
                f"tile {item!r} does not overlap the synthetic DR10-south footprint "
                f"(Dec < {Footprint().dec_max}, |b| >= {Footprint().b_min}); "
                "footprint_tiles() lists the valid tiles"
            )
        chosen.add(tile)
    return sorted(chosen)
