"""A synthetic DR10-south sky written as sweep Parquet files: the warehouse's embedded default data.

Why synthetic: the real DR10 sweeps are ~3e9 rows / several TB; the warehouse, its tests and its
benchmarks need a sky that *behaves* like DR10 (crossmatch, negative pools with hard confusers,
HEALPix splits, stratified sampling, cutouts, injection-recovery) and can be regenerated anywhere
in seconds, bit for bit.

Layout (as the real sweeps, DOMAIN.md): one file per 5 x 5 deg tile named by
:func:`stronglens.schema.sweep_filename`, ``SWEEP_SCHEMA`` exactly, zstd, fixed-size row groups,
only tiles that touch the footprint.  Rows are ordered brick by brick, ``objid`` ascending.

Determinism and independence of tiles
-------------------------------------
Every random quantity is derived from ``seed`` plus *where* it lives, never from the order of work:

* the number of objects in each piece ``brick x tile`` is a Poisson draw whose uniform variate is a
  counter-based hash of ``(seed, brickid, tile)`` (splitmix64), so any tile can compute the counts of
  the pieces of its bricks that lie in *neighbouring* tiles; ``objid`` of a piece starts after the
  pieces of the same brick in earlier tiles, which makes ``(release, brickid, objid)`` unique over the
  whole sky and a tile's content independent of which other tiles are requested;
* the objects of one chunk of a tile (whole brick rows, grouped by the tile's own piece counts)
  come from ``numpy.random.SeedSequence([seed, tile, first brick row])``;
* sky maps (seeing, depth, passes, dust) are sums of random plane waves on the sphere drawn once
  from the seed and evaluated on a global 0.25 deg node grid, so they are continuous across tiles;
* mask sources (bright stars, large galaxies, clusters) are drawn per tile and every tile also
  applies those of its 8 neighbours, so masks are seamless;
* lens counterparts are drawn per candidate from ``(seed, candidate list)``.

Each object lies in the tile of its own position (as real sweeps cut by RA/Dec), and inside the
bounds of its brick as :mod:`stronglens.bricks` reports them.

The ``tiles`` argument
----------------------
A list whose items are tile names (``sweep-000m010-005m005`` with or without ``.parquet``) or
compact boxes ``'RAMIN,RAMAX,DECMIN,DECMAX'`` in degrees (e.g. ``'150,160,0,5'``), which select every
footprint tile overlapping ``[RAMIN, RAMAX) x [DECMIN, DECMAX)``; ``RAMIN > RAMAX`` wraps through
RA = 0.  A named tile outside the footprint is an error.

Physical model
--------------
Every number is a field of :class:`SkyModel` (or :class:`Footprint`) whose docstring gives its source.
Magnitudes are intrinsic (extinction-corrected) AB; the catalogue fluxes are
``10**(-0.4 (m - 22.5)) * MW_TRANSMISSION`` plus noise, so ``flux / mw_transmission`` recovers the
extinction-corrected magnitude that ``mag_limit`` and the pool cut ``z < 20`` refer to.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import healpy as hp
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import special, stats

from stronglens import bricks
from stronglens.schema import MASKBITS, SWEEP_SCHEMA, TRACTOR_TYPES, sweep_filename

#: Sweep tiles are 5 x 5 deg (DOMAIN.md, DR10).
TILE_DEG = 5
N_TILE_RA = 360 // TILE_DEG
#: Tile Dec index runs from -18 (Dec -90..-85) to 17 (Dec 85..90).
TILE_DEC_INDEX_MIN = -90 // TILE_DEG
TILE_DEC_INDEX_MAX = 90 // TILE_DEG - 1

#: The lens-candidate seed shipped with the project (lenscat 1.1.3, DESI- names).
DEFAULT_CANDIDATES_CSV = str(Path(__file__).resolve().parents[2] / "seeds" / "lenscat_desi_candidates.csv")

#: Default density (objects / deg^2 down to ``DEFAULT_MAG_LIMIT``) and magnitude limit.  Chosen so
#: that the full-footprint default run writes ~11.8M rows in 1,054 files (~40 CPU-seconds: well
#: under a minute on 2 cores) and the negative pool (SER/DEV/REX, z < 20, 3+ passes in g, r and z,
#: no BRIGHT/MEDIUM/GALAXY/CLUSTER) holds ~2.0M galaxies (measured 2,045,119 at seed 42), a few x
#: the 480K that 100 negatives per matched positive need: a thinned sky (~1/8 of DR10's bright-
#: galaxy density) with DR10's magnitude-dependent type mix.
DEFAULT_DENSITY = 600.0
DEFAULT_MAG_LIMIT = 20.5

#: Rows generated per numpy pass (whole brick rows are grouped up to this size): large enough to
#: amortise per-call overhead, small enough to keep a worker's memory at a few hundred MB.
CHUNK_ROWS = 250_000

_ARCSEC = 1.0 / 3600.0
_TYPE_CODE = {t: i for i, t in enumerate(TRACTOR_TYPES)}
T_PSF, T_REX, T_DEV, T_EXP, T_SER, T_DUP = (_TYPE_CODE[t] for t in ("PSF", "REX", "DEV", "EXP", "SER", "DUP"))
#: Physical populations: what the object *is* (the TYPE is what Tractor fitted).
P_STAR, P_QSO, P_GAL, P_DUP = 0, 1, 2, 3
#: Galaxy spectral classes: passive (red sequence), intermediate disk, blue star-former.
S_RED, S_MID, S_SF = 0, 1, 2

#: Hash streams (arbitrary distinct constants) for the counter-based draws.
_STREAM_COUNT = 0x51_0C_0001
_STREAM_CLUSTER = 0x51_0C_0002
_STREAM_RELEASE = 0x51_0C_0003
_STREAM_FIELDS = 0x51_0C_0004
_STREAM_MASKS = 0x51_0C_0005
_STREAM_CANDIDATES = 0x51_0C_0006

#: Parquet layout: dictionary-encode only the low-cardinality strings (dictionary attempts on
#: high-entropy floats cost ~4x the write time for nothing), and keep min/max statistics only where
#: rows are spatially ordered so that DuckDB can prune row groups (keys and positions).
_DICTIONARY_COLUMNS = ("release", "brickname", "type", "ref_cat")
#: zstd level -3 ("fast" mode): ~15% less write CPU than the default level 1 for ~20% larger
#: files (~230 vs ~190 bytes per row), still plain zstd for every reader; writing is ~60% of the
#: cost at DR10 density, so this buys most of the throughput margin.
_ZSTD_LEVEL = -3
_STATISTICS_COLUMNS = ("release", "brickid", "brickname", "objid", "type", "ra", "dec")

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


# --------------------------------------------------------------------------------------------------
# The physical model


@dataclass(frozen=True)
class SkyModel:
    """Every number of the synthetic sky, with where it comes from.

    Populations (index order: star, qso, compact galaxy fitted as PSF, REX, EXP, DEV, SER, DUP).
    ``class_fraction_ref`` is the share of each at ``ref_mag_limit`` = 24.5 (the depth at which DR10
    holds ~140,000 objects / deg^2): the DR10 TYPE totals of DOMAIN.md (PSF 1.35e9, REX 1.12e9,
    EXP 2.25e8, DEV 8.4e7, SER 4.9e7, DUP 2.9e5 of 2.83e9), with PSF split into stars (~5%, high
    latitude star counts to z ~ 24), QSOs (~0.3%) and unresolved galaxies (the rest).
    ``class_slope`` is d log10 N / dm of each population's z-band counts between ``mag_bright`` and
    the limit: galaxies 0.28-0.45 (faint galaxy counts, e.g. Yasuda et al. 2001; Metcalfe et al.
    2001: ~0.45 at r ~ 20 flattening to ~0.3 fainter), early types flatter than late types (so that
    bright galaxies are more often DEV/SER/EXP, as in DR9/DR10), stars 0.12 (high-latitude star
    counts are much flatter; Bahcall & Soneira 1980), QSOs 0.3.
    """

    mag_bright: float = 14.0
    ref_mag_limit: float = 24.5
    class_fraction_ref: tuple[float, ...] = (
        0.050,
        0.003,
        1.35 / 2.83 - 0.053,
        1.12 / 2.83,
        0.225 / 2.83,
        0.084 / 2.83,
        0.049 / 2.83,
        0.00029 / 2.83,
    )
    class_slope: tuple[float, ...] = (0.12, 0.30, 0.45, 0.42, 0.33, 0.28, 0.28, 0.10)

    #: Galaxy spectral-class probabilities (red, intermediate, star-forming) per TYPE fitted
    #: (PSF-compact, REX, EXP, DEV, SER): early types are mostly passive; ~8% of the pool-like
    #: (SER/DEV/REX) galaxies are blue star-formers with g-r <= 0.4 (N2 "blue clumpy" confusers).
    sed_prob_compact: tuple[float, float, float] = (0.20, 0.50, 0.30)
    sed_prob_rex: tuple[float, float, float] = (0.42, 0.48, 0.10)
    sed_prob_exp: tuple[float, float, float] = (0.20, 0.65, 0.15)
    sed_prob_dev: tuple[float, float, float] = (0.88, 0.07, 0.05)
    sed_prob_ser: tuple[float, float, float] = (0.70, 0.22, 0.08)
    #: Redshift-like latent x = x0 + x1 (m_z - 18) + N(0, xs), clipped: fainter galaxies lie further.
    x_latent: tuple[float, float, float] = (0.25, 0.09, 0.06)
    x_range: tuple[float, float] = (0.02, 1.2)
    #: Red-sequence colours vs x (BOSS/DESI LRG loci: g-r 1.2-1.9, r-z 0.6-1.2 for z ~ 0.1-0.7):
    #: g-r = gr_max - gr_amp exp(-gr_k x), r-z = rz0 + rz1 x, Gaussian scatter.
    red_gr: tuple[float, float, float, float] = (1.95, 1.0, 3.2, 0.08)
    red_rz: tuple[float, float, float] = (0.50, 1.0, 0.06)
    #: Intermediate and star-forming colours: (gr0, gr1, gr_sigma, rz0, rz1, rz_sigma).
    mid_colour: tuple[float, ...] = (0.45, 1.1, 0.12, 0.35, 0.9, 0.10)
    sf_colour: tuple[float, ...] = (0.18, 0.35, 0.10, 0.20, 0.6, 0.12)
    #: i - z = iz_slope (r - z) (+ scatter): i sits ~45% of the way from z to r for smooth SEDs.
    iz_slope: float = 0.45
    iz_sigma: float = 0.03
    #: Stellar locus (SDSS, Covey et al. 2007): g-r mixture of halo turn-off, disk and M dwarfs;
    #: r-z = a (g-r) + b max(0, g-r - 1.1).
    star_gr_weight: tuple[float, float, float] = (0.5, 0.25, 0.25)
    star_gr_mean: tuple[float, float, float] = (0.38, 0.75, 1.40)
    star_gr_sigma: tuple[float, float, float] = (0.08, 0.15, 0.10)
    star_rz: tuple[float, float, float] = (0.42, 2.0, 0.04)
    qso_colour: tuple[float, float, float, float] = (0.20, 0.12, 0.30, 0.15)

    #: WISE (AB) colours: z - W1 by population/spectral class (mean, slope in x, sigma); Vega
    #: W1-W2, W2-W3, W3-W4 (Wright et al. 2010 colour-colour diagram); AGN (Stern et al. 2012:
    #: W1 - W2 >= 0.8 Vega) are ``agn_fraction`` of galaxies, IR-brightened by ``agn_w1_boost``.
    zw1_star: tuple[float, float, float] = (-1.45, 0.8, 0.08)
    zw1_red: tuple[float, float, float] = (-0.30, 1.5, 0.15)
    zw1_mid: tuple[float, float, float] = (-0.45, 1.4, 0.20)
    zw1_sf: tuple[float, float, float] = (-0.55, 1.3, 0.25)
    zw1_qso: tuple[float, float] = (1.5, 0.4)
    w12_star: tuple[float, float] = (-0.03, 0.04)
    w12_gal: tuple[float, float, float] = (0.02, 0.30, 0.08)
    w12_agn: tuple[float, float] = (0.80, 0.30)
    w12_qso: tuple[float, float] = (1.10, 0.20)
    w23_by_sed: tuple[float, float, float] = (1.0, 2.6, 3.3)
    w23_agn: float = 2.9
    w23_sigma: float = 0.4
    w34: tuple[float, float] = (2.3, 0.4)
    agn_fraction: float = 0.03
    agn_w1_boost: float = 0.7
    #: Vega -> AB offsets (Jarrett et al. 2011) for W1..W4.
    wise_ab_offset: tuple[float, float, float, float] = (2.699, 3.339, 5.174, 6.620)

    #: Half-light radius: log10 r = log10 r0 - s (m_z - 20) + N(0, scatter dex), per TYPE
    #: (REX, EXP, DEV, SER); REX are small (0.3-0.6"), bright EXP/DEV/SER reach 1-5".
    radius_r0: tuple[float, float, float, float] = (0.42, 0.85, 0.75, 0.85)
    radius_slope: tuple[float, float, float, float] = (0.06, 0.16, 0.16, 0.16)
    radius_scatter: float = 0.17
    radius_range: tuple[float, float] = (0.05, 30.0)
    #: Intrinsic thickness q0 of the oblate-spheroid axis-ratio model q^2 = cos^2 i (1 - q0^2) + q0^2
    #: with cos i uniform (random orientations): disks (EXP) thin -> edge-on tail down to q0 = 0.15
    #: (|e| <= 0.74); SER, which in DR10 fits bulges and disk-dominated galaxies alike, reaches
    #: q0 = 0.20 (|e| <= 0.67): about a fifth of SER galaxies then have |e| >= 0.55, the edge-on
    #: hard confusers a real DR10 pool holds; DEV round.
    q0_exp: float = 0.15
    q0_ser: float = 0.20
    q0_dev: float = 0.55
    #: SER Sersic index: lognormal, median 2.2, clipped to the Tractor limits [0.5, 6].
    sersic_median: float = 2.2
    sersic_sigma: float = 0.45

    #: Seeing: median FWHM in z and band ratios (DECam, DECaLS DR9: median z ~1.2", g worse);
    #: ln-scatter of the smooth sky map.  Range ~0.9-1.8".
    psf_fwhm_z: float = 1.18
    psf_band_ratio: tuple[float, float, float, float] = (1.17, 1.08, 1.03, 1.0)
    psf_ln_sigma: float = 0.10
    psf_band_ln_sigma: float = 0.03
    #: How strongly each band (g, r, i, z) follows the band-tilt map: blue bands degrade more.
    psf_band_tilt: tuple[float, float, float, float] = (1.0, 0.5, 0.0, -0.5)
    #: Passes: lambda = exp(ln(median) + sigma (rho f_common + sqrt(1 - rho^2) f_band)), then stochastic
    #: rounding and ``chip_gap_fraction`` losing one pass (DECaLS: 3 passes, DES: ~8-10; some 1-2).
    nobs_median: tuple[float, float, float, float] = (4.8, 4.8, 3.5, 5.0)
    nobs_sigma: float = 0.45
    nobs_rho: float = 0.85
    nobs_max: int = 15
    chip_gap_fraction: float = 0.08
    #: i-band coverage: DR10 added DECam i where it exists; the smooth map is above this quantile
    #: of N(0,1) over ~70% of the sky.
    i_coverage_threshold: float = -0.52
    #: Single-epoch 5-sigma point-source depth at FWHM 1.1" (g, r, i, z); with N passes
    #: m5 = m5_1 + 1.25 log10 N - 2.5 log10(FWHM / 1.1) + sky term: 3 passes give DECaLS' ~24.0,
    #: 23.4, 22.6 (Dey et al. 2019); sky/transparency map scatter ``sky_sigma`` mag; per-object
    #: depth jitter ``depth_jitter`` (fractional).
    m5_single: tuple[float, float, float, float] = (23.45, 22.95, 22.55, 22.05)
    m5_ref_fwhm: float = 1.1
    sky_sigma: float = 0.15
    depth_jitter: float = 0.05
    #: unWISE 5-sigma point-source depth (AB) in W1..W4 and the map scatter (mag).
    wise_m5: tuple[float, float, float, float] = (20.6, 19.95, 16.5, 14.6)
    wise_sigma: float = 0.25
    #: Source (Poisson) noise: variance += flux / gain, in nanomaggy (S/N ~ 1000 at z = 16).
    source_gain: float = 2500.0
    #: Dust: E(B-V) = ebv0 * |csc b|^gamma * exp(sigma f - sigma^2 / 2) (cosecant law with SFD-like
    #: patchiness; ~0.02 at the poles, ~0.1 at |b| = 15).  R_b per band (DR9/DR10 catalogue pages).
    ebv0: float = 0.018
    ebv_gamma: float = 1.3
    ebv_sigma: float = 0.4
    extinction_r: tuple[float, ...] = (3.214, 2.165, 1.592, 1.211, 0.184, 0.113, 0.0241, 0.00910)
    #: Sky maps: ``field_modes`` random plane waves per map with wavelengths log-uniform in
    #: ``field_wavelength_deg`` and amplitude ~ wavelength^``field_power`` (smooth, large-scale).
    field_modes: int = 16
    field_wavelength_deg: tuple[float, float] = (2.0, 40.0)
    field_power: float = 0.5
    field_node_deg: float = 0.25

    #: Mild clustering: each brick's density is multiplied by a lognormal of this ln-sigma.
    brick_density_sigma: float = 0.2
    #: DR10.1 re-processing (release 10002): all bricks whose centre falls in a randomly chosen
    #: ``release_dr10_1_fraction`` of the HEALPix pixels at ``release_nside`` (~3.7 deg patches).
    release_dr10_1_fraction: float = 0.03
    release_nside: int = 16

    #: Masks.  Gaia-like stars 6 < G < 16 with d log N / dG = 0.32 and N(G < 16) = star_density16
    #: |csc b| per deg^2; radius R(G) = 1630" 1.396^-G (legacypipe reference.mask_radius_for_mag);
    #: BRIGHT = G < 13 within R/2, MEDIUM = G < 16 within R (legacysurvey DR10 bitmasks page);
    #: SATUR in all bands within ``satur_radius_frac`` R for G < 15; WISEM1 (G < 13, R) and WISEM2
    #: (G < 12, 0.7 R).  Large galaxies (SGA-2020: ~380,000 over ~20,000 deg^2, ~19 / deg^2) set GALAXY
    #: within a circle of lognormal radius; globular clusters / PNe set CLUSTER.
    star_density16: float = 180.0
    star_mag_range: tuple[float, float] = (6.0, 16.0)
    star_count_slope: float = 0.32
    satur_radius_frac: float = 0.1
    galaxy_mask_density: float = 19.0
    galaxy_mask_radius: tuple[float, float, float, float] = (15.0, 0.3, 5.0, 600.0)
    cluster_mask_density: float = 0.01
    cluster_mask_radius: tuple[float, float, float, float] = (90.0, 0.3, 30.0, 600.0)
    #: Sprinkled per-object flags (fractions): ALLMASK per band, SUB_BLOB, BAILOUT.
    allmask_fraction: float = 0.003
    anymask_fraction: float = 0.03
    sub_blob_fraction: float = 0.003
    bailout_fraction: float = 1e-4
    #: fracflux: ~0 (exponential, mean ``fracflux_scale``) with a tail of ``fracflux_tail`` objects
    #: log-uniform in [0.03, 1]; fracmasked non-zero for ``fracmasked_fraction``; fracin near 1.
    fracflux_scale: float = 0.01
    fracflux_tail: float = 0.12
    fracmasked_fraction: float = 0.10
    fracin_tail: float = 0.02
    #: fitbits: ITERATIVE (bit 13) sprinkle; GAIA (bit 7) on Gaia-matched rows; HIT_SERSIC_LIMIT (3).
    iterative_fraction: float = 0.03
    #: Gaia-matched (ref_cat 'G2') when PSF and G ~ z + 0.4 + 0.3 (g - r) < gaia_g_limit.
    gaia_g_limit: float = 20.7

    #: Close galaxy pairs (mergers): this fraction of galaxies brighter than ``pair_bright_mag``
    #: gets a companion ``pair_sep_arcsec`` away, at most ``pair_max_dmag`` fainter (N2 mergers).
    pair_fraction: float = 0.02
    pair_bright_mag: float = 20.0
    pair_sep_arcsec: tuple[float, float] = (1.0, 3.0)
    pair_max_dmag: float = 1.0

    #: Lens counterparts: 2-D Gaussian astrometric offset with this median (DOMAIN.md: real
    #: median 0.059"); ``displaced_fraction`` put 1.5-3" away (blended / mis-centred).
    counterpart_median_offset: float = 0.06
    displaced_fraction: float = 0.01
    displaced_range: tuple[float, float] = (1.5, 3.0)
    #: Lens-host z mag = a + b z_lens + N(0, s), clipped to [lo, hi] (SLACS/DESI lens hosts are
    #: luminous red galaxies at z_l ~ 0.2-0.8); missing z_lens drawn from N(mean, sigma).
    counterpart_mag: tuple[float, float, float, float, float] = (17.2, 3.0, 0.4, 16.5, 19.5)
    counterpart_zlens: tuple[float, float, float, float] = (0.45, 0.15, 0.1, 1.0)
    #: TYPE shares of lens hosts (PSF, REX, DEV, EXP, SER): mostly DEV/SER, some REX, few EXP/PSF.
    counterpart_type_prob: tuple[float, float, float, float, float] = (0.04, 0.16, 0.43, 0.07, 0.30)

    def class_probabilities(self, mag_limit: float) -> np.ndarray:
        """Share of each population among objects brighter than ``mag_limit`` (z, intrinsic)."""
        f = np.asarray(self.class_fraction_ref, np.float64)
        a = np.asarray(self.class_slope, np.float64)
        grow = np.expm1(np.log(10.0) * a * (mag_limit - self.mag_bright))
        ref = np.expm1(np.log(10.0) * a * (self.ref_mag_limit - self.mag_bright))
        p = f * grow / ref
        return p / p.sum()


#: Population, TYPE and SED-probability row of each drawn class (see :class:`SkyModel`).
_CLASS_POP = np.array([P_STAR, P_QSO, P_GAL, P_GAL, P_GAL, P_GAL, P_GAL, P_DUP], np.int8)
_CLASS_TYPE = np.array([T_PSF, T_PSF, T_PSF, T_REX, T_EXP, T_DEV, T_SER, T_DUP], np.int8)


# --------------------------------------------------------------------------------------------------
# Counter-based hashing (order-free randomness)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (Steele et al. 2014), element-wise on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _hash_uniform(seed: int, stream: int, *keys: np.ndarray) -> np.ndarray:
    """Uniform variates in (0, 1), a pure function of ``(seed, stream, keys...)``."""
    shape = np.broadcast_shapes(*(np.shape(k) for k in keys))
    h = _mix64(np.full(shape, (seed ^ (stream << 32)) & 0xFFFFFFFFFFFFFFFF, np.uint64))
    for k in keys:
        h = _mix64(h ^ np.asarray(k).astype(np.int64).astype(np.uint64))
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


# --------------------------------------------------------------------------------------------------
# Smooth sky maps


class _SkyMaps:
    """Random plane waves on the sphere, evaluated on a global node grid and interpolated."""

    #: Map order: seeing common, seeing band tilt, passes common, passes g r i z, i coverage,
    #: sky/transparency, WISE depth, dust patchiness.
    N_MAPS = 11

    def __init__(self, seed: int, model: SkyModel) -> None:
        rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_FIELDS]))
        k = model.field_modes
        d = rng.standard_normal((self.N_MAPS, k, 3))
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        lo, hi = np.log(model.field_wavelength_deg)
        wavelength = np.exp(rng.uniform(lo, hi, (self.N_MAPS, k)))
        amp = wavelength**model.field_power
        amp *= np.sqrt(2.0 / (amp**2).sum(axis=1, keepdims=True))
        self.wavevec = d * (2.0 * np.pi / np.radians(wavelength))[..., None]
        self.phase = rng.uniform(0.0, 2.0 * np.pi, (self.N_MAPS, k))
        self.amp = amp
        self.model = model

    def raw(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        """Unit-variance maps, shape (N_MAPS, *ra.shape)."""
        v = _unit(np.ravel(ra), np.ravel(dec))
        arg = v @ self.wavevec.reshape(-1, 3).T + self.phase.reshape(-1)
        # float32 cos is vectorised (~30x faster than float64 here); |arg| < ~1000, so the float32
        # phase error stays < 1e-4 rad, far below what a smooth map needs.
        wave = np.cos(arg.astype(np.float32)) * self.amp.reshape(-1).astype(np.float32)
        maps = wave.reshape(-1, self.N_MAPS, self.amp.shape[1]).sum(axis=2)
        return maps.T.reshape((self.N_MAPS, *np.shape(ra)))

    def physical(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        """Observing-condition maps (float32, shape (12, *ra.shape)).

        Rows: psfsize g, r, i, z; pass-count lambda g, r, i, z; i-coverage map; sky depth offset (mag);
        WISE depth offset (mag); E(B-V).
        """
        m = self.model
        f = self.raw(ra, dec)
        out = np.empty((12, *np.shape(ra)), np.float32)
        for b in range(4):
            tilt = m.psf_band_ln_sigma * m.psf_band_tilt[b]
            out[b] = m.psf_fwhm_z * m.psf_band_ratio[b] * np.exp(m.psf_ln_sigma * f[0] + tilt * f[1])
        rho = m.nobs_rho
        for b in range(4):
            out[4 + b] = np.exp(
                np.log(m.nobs_median[b]) + m.nobs_sigma * (rho * f[2] + math.sqrt(1 - rho**2) * f[3 + b])
            )
        out[8] = f[7]
        out[9] = m.sky_sigma * f[8]
        out[10] = m.wise_sigma * f[9]
        _, b_gal = icrs_to_galactic(ra, dec)
        csc = 1.0 / np.maximum(np.abs(np.sin(np.radians(b_gal))), np.sin(np.radians(5.0)))
        out[11] = m.ebv0 * csc**m.ebv_gamma * np.exp(m.ebv_sigma * f[10] - m.ebv_sigma**2 / 2)
        return out


# --------------------------------------------------------------------------------------------------
# Context shared by all tiles of one run


@dataclass
class _Counterparts:
    """Lens counterparts inside the footprint, sorted by (piece key, candidate index)."""

    key: np.ndarray
    cand: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    bid: np.ndarray
    mag: np.ndarray
    zl: np.ndarray
    typ: np.ndarray
    displaced: np.ndarray
    n_candidates: int


def _piece_key(bid: np.ndarray, ira: np.ndarray, idec: np.ndarray) -> np.ndarray:
    return (
        (np.asarray(bid, np.int64) << 16)
        | ((np.asarray(idec, np.int64) + 90) << 8)
        | np.asarray(ira, np.int64)
    )


#: Accepted spellings of the candidate-list columns, matched case-insensitively (published tables
#: write RA/DEC, ra/dec or lenscat's ra_deg/dec_deg); zlens is optional (missing = drawn).
_CANDIDATE_COLUMNS = {"ra_deg": ("ra_deg", "ra", "ra [deg]"), "dec_deg": ("dec_deg", "dec", "dec [deg]")}


def _read_candidates(path: str | Sequence[str]) -> pd.DataFrame:
    """Every candidate list in the seed's layout (ra_deg, dec_deg, zlens), concatenated in order,
    so that the generator places a counterpart for every positive list it is given (extra lists
    the warehouse reads through the var ``extra_candidates`` match on this sky only so)."""
    frames = []
    for one in [path] if isinstance(path, str) else path:
        if not os.path.exists(one):
            raise FileNotFoundError(
                f"candidates_csv {one!r} not found: pass candidates_csv=None to skip lens counterparts"
            )
        df = pd.read_csv(one, dtype={"zlens": str})
        by_lower = {str(c).lower(): c for c in df.columns}
        renames = {}
        for want, aliases in _CANDIDATE_COLUMNS.items():
            hit = next((by_lower[a] for a in aliases if a in by_lower), None)
            if hit is None:
                raise ValueError(f"{one}: missing columns ['{want}'] (any of {list(aliases)}, any case)")
            renames[hit] = want
        df = df.rename(columns=renames)
        if "zlens" not in df.columns:
            df["zlens"] = None
        df = df[["ra_deg", "dec_deg", "zlens"]]
        bad = ~(np.isfinite(df["ra_deg"]) & np.isfinite(df["dec_deg"]) & (df["dec_deg"].abs() <= 90))
        if bad.any():
            raise ValueError(f"{one}: rows {np.flatnonzero(bad)[:5].tolist()} have invalid ra_deg/dec_deg")
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _build_counterparts(
    path: str | Sequence[str], seed: int, model: SkyModel, fp: _FootprintIndex
) -> _Counterparts:
    """One lens-galaxy row per candidate in the footprint (see :class:`SkyModel` counterpart fields)."""
    df = _read_candidates(path)
    n = len(df)
    rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_CANDIDATES]))
    # z_lens: first number of the 'a | b' alias list; missing -> drawn.
    zl = pd.to_numeric(
        df["zlens"].fillna("nan").str.split("|").str[0].str.strip(), errors="coerce"
    ).to_numpy()
    zmean, zsig, zlo, zhi = model.counterpart_zlens
    zl = np.where(np.isfinite(zl), zl, rng.normal(zmean, zsig, n))
    zl = np.clip(zl, zlo, zhi)
    sigma = model.counterpart_median_offset / math.sqrt(2.0 * math.log(2.0))
    off = rng.normal(0.0, sigma, (2, n))
    displaced = rng.random(n) < model.displaced_fraction
    sep = rng.uniform(*model.displaced_range, n)
    ang = rng.uniform(0.0, 2.0 * np.pi, n)
    off[0] = np.where(displaced, sep * np.cos(ang), off[0])
    off[1] = np.where(displaced, sep * np.sin(ang), off[1])
    dec0 = df["dec_deg"].to_numpy(np.float64)
    dec = np.clip(dec0 + off[1] * _ARCSEC, -90.0, 90.0)
    ra = np.mod(df["ra_deg"].to_numpy(np.float64) + off[0] * _ARCSEC / np.cos(np.radians(dec0)), 360.0)
    ra = np.where(ra >= 360.0, 0.0, ra)  # np.mod(-1e-17, 360) rounds to 360.0
    a, b, s, lo, hi = model.counterpart_mag
    mag = np.clip(a + b * zl + rng.normal(0.0, s, n), lo, hi)
    typ_codes = np.array([T_PSF, T_REX, T_DEV, T_EXP, T_SER])
    typ = typ_codes[
        rng.choice(5, n, p=np.asarray(model.counterpart_type_prob) / sum(model.counterpart_type_prob))
    ]
    bid = bricks.brick_id(ra, dec)
    keep = fp.in_footprint(bid)
    key = _piece_key(bid, np.floor(ra / TILE_DEG), np.floor(dec / TILE_DEG))
    cand = np.arange(n)
    order = np.lexsort((cand[keep], key[keep]))
    sel = np.flatnonzero(keep)[order]
    return _Counterparts(
        key=key[sel],
        cand=cand[sel],
        ra=ra[sel],
        dec=dec[sel],
        bid=bid[sel],
        mag=mag[sel].astype(np.float32),
        zl=zl[sel].astype(np.float32),
        typ=typ[sel].astype(np.int8),
        displaced=displaced[sel],
        n_candidates=n,
    )


class _Context:
    """Immutable run-wide state: parameters, maps, footprint, counterparts."""

    def __init__(
        self,
        seed: int,
        density: float,
        mag_limit: float,
        model: SkyModel,
        footprint: Footprint,
        candidates_csv: str | Sequence[str] | None,
    ) -> None:
        self.seed = seed
        self.density = density
        self.mag_limit = mag_limit
        self.model = model
        self.fp = _footprint_index(footprint)
        self.maps = _SkyMaps(seed, model)
        self.class_cdf = np.cumsum(model.class_probabilities(mag_limit))
        self.tables = _Tables(model)
        self.cp = _build_counterparts(candidates_csv, seed, model, self.fp) if candidates_csv else None

    @cached_property
    def cp_counts(self) -> tuple[np.ndarray, np.ndarray]:
        if self.cp is None:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        keys, counts = np.unique(self.cp.key, return_counts=True)
        return keys, counts

    def counterparts_in(self, key: np.ndarray) -> np.ndarray:
        keys, counts = self.cp_counts
        if keys.size == 0:
            return np.zeros(np.shape(key), np.int64)
        pos = np.clip(np.searchsorted(keys, key), 0, keys.size - 1)
        return np.where(keys[pos] == key, counts[pos], 0)


# --------------------------------------------------------------------------------------------------
# Pieces: brick x tile


@dataclass
class _Pieces:
    """The pieces (brick intersected with this tile) of one tile, in brickid order."""

    bid: np.ndarray
    row: np.ndarray
    ra1: np.ndarray
    ra2: np.ndarray
    dec1: np.ndarray
    dec2: np.ndarray
    n_base: np.ndarray
    n_cp: np.ndarray
    offset: np.ndarray
    area_in_footprint: float


def _poisson_quantile(u: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Poisson quantile of ``u`` at mean ``lam`` (0 where ``lam`` is 0), one scipy call."""
    out = np.zeros(lam.shape, np.int64)
    pos = lam > 0.0
    out[pos] = stats.poisson.ppf(u[pos], lam[pos]).astype(np.int64)
    return out


def _tile_pieces(ctx: _Context, tile: Tile) -> _Pieces:
    """Pieces of a tile with their object counts and objid offsets (see module doc).

    Every brick overlapping the tile is split by the tile grid into at most 2 x 2 pieces (bricks are
    narrower than a tile up to |Dec| ~ 87 deg); all four candidate pieces are evaluated, in the fixed
    order (Dec low/high) x (RA low/high), so the objid offset of this tile's piece is the number of
    objects in the pieces before it, whichever tile generates them.
    """
    ra0, d0 = float(tile.ra_min), float(tile.dec_min)
    bid = bricks.bricks_in_box(ra0, ra0 + TILE_DEG, d0, d0 + TILE_DEG).astype(np.int64)
    row, _ = bricks.brick_row_col(bid)
    bra1, bra2, bd1, bd2 = bricks.brick_bounds(bid)
    foot = ctx.fp.in_footprint(bid)
    s = ctx.model.brick_density_sigma
    weight = np.exp(s * special.ndtri(_hash_uniform(ctx.seed, _STREAM_CLUSTER, bid)) - s * s / 2.0) * foot
    ira_lo = np.floor(bra1 / TILE_DEG).astype(np.int64)
    ira_hi = np.floor(np.nextafter(bra2, -np.inf) / TILE_DEG).astype(np.int64)
    idec_lo = np.floor(bd1 / TILE_DEG).astype(np.int64)
    idec_hi = np.floor(np.nextafter(bd2, -np.inf) / TILE_DEG).astype(np.int64)
    step = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])[:, :, None]
    idec = idec_lo + step[:, 0]
    ira = ira_lo + step[:, 1]
    valid = (idec <= idec_hi) & (ira <= ira_hi)
    p_ra1 = np.maximum(bra1, ira * TILE_DEG)
    p_ra2 = np.minimum(bra2, (ira + 1) * TILE_DEG)
    p_d1 = np.maximum(bd1, idec * TILE_DEG)
    p_d2 = np.minimum(bd2, (idec + 1) * TILE_DEG)
    area = valid * (p_ra2 - p_ra1) * np.degrees(np.sin(np.radians(p_d2)) - np.sin(np.radians(p_d1)))
    u = _hash_uniform(ctx.seed, _STREAM_COUNT, bid, ira, idec + 90)
    n_base_all = _poisson_quantile(u, ctx.density * area * weight)
    n_cp_all = valid * ctx.counterparts_in(_piece_key(bid, ira, idec))
    own = valid & (ira == tile.ira) & (idec == tile.idec)
    if not np.all(own.sum(axis=0) == 1):
        raise AssertionError(f"tile {tile.name}: a brick overlapping the tile has no piece in it")
    k = np.argmax(own, axis=0)
    cols = np.arange(bid.size)
    before = np.cumsum(n_base_all + n_cp_all, axis=0) - (n_base_all + n_cp_all)
    return _Pieces(
        bid=bid,
        row=row,
        ra1=p_ra1[k, cols],
        ra2=p_ra2[k, cols],
        dec1=p_d1[k, cols],
        dec2=p_d2[k, cols],
        n_base=n_base_all[k, cols],
        n_cp=n_cp_all[k, cols],
        offset=before[k, cols],
        area_in_footprint=float((area[k, cols] * foot).sum()),
    )


# --------------------------------------------------------------------------------------------------
# Masks


@dataclass
class _Circles:
    ra: np.ndarray
    dec: np.ndarray
    radius: np.ndarray
    bits: np.ndarray

    @staticmethod
    def concat(items: Sequence[_Circles]) -> _Circles:
        return _Circles(
            *(np.concatenate([getattr(c, f.name) for c in items]) for f in dataclasses.fields(_Circles))
        )


def _uniform_in_tile(rng: np.random.Generator, tile: Tile, n: int) -> tuple[np.ndarray, np.ndarray]:
    s1, s2 = np.sin(np.radians([tile.dec_min, tile.dec_min + TILE_DEG]))
    ra = tile.ra_min + TILE_DEG * rng.random(n)
    dec = np.degrees(np.arcsin(s1 + (s2 - s1) * rng.random(n)))
    return ra, dec


@lru_cache(maxsize=256)
def _tile_mask_circles(seed: int, model: SkyModel, tile: Tile) -> _Circles:
    """Mask sources drawn in one tile (stars, large galaxies, clusters) as circles with bits."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_MASKS, tile.ira, tile.idec + 90]))
    s1, s2 = np.sin(np.radians([tile.dec_min, tile.dec_min + TILE_DEG]))
    area = TILE_DEG * np.degrees(s2 - s1)
    _, b = icrs_to_galactic(np.array([tile.ra_min + TILE_DEG / 2]), np.array([tile.dec_min + TILE_DEG / 2]))
    csc = 1.0 / max(abs(math.sin(math.radians(float(b[0])))), math.sin(math.radians(5.0)))
    n_star = rng.poisson(model.star_density16 * csc * area)
    ra, dec = _uniform_in_tile(rng, tile, n_star)
    g_lo, g_hi = model.star_mag_range
    k = model.star_count_slope * math.log(10.0)
    u = rng.random(n_star)
    g = g_hi + np.log(np.exp(-k * (g_hi - g_lo)) + u * (1.0 - np.exp(-k * (g_hi - g_lo)))) / k
    r = 1630.0 * 1.396 ** (-g) * _ARCSEC
    bit = {name: np.int32(1 << MASKBITS[name]) for name in MASKBITS}
    satur = bit["SATUR_G"] | bit["SATUR_R"] | bit["SATUR_Z"] | bit["SATUR_I"]
    parts = [
        _Circles(ra, dec, r, np.full(n_star, bit["MEDIUM"])),
        _Circles(ra[g < 13], dec[g < 13], 0.5 * r[g < 13], np.full(int((g < 13).sum()), bit["BRIGHT"])),
        _Circles(
            ra[g < 15], dec[g < 15], model.satur_radius_frac * r[g < 15], np.full(int((g < 15).sum()), satur)
        ),
        _Circles(ra[g < 13], dec[g < 13], r[g < 13], np.full(int((g < 13).sum()), bit["WISEM1"])),
        _Circles(ra[g < 12], dec[g < 12], 0.7 * r[g < 12], np.full(int((g < 12).sum()), bit["WISEM2"])),
    ]
    for density, (median, dex, lo, hi), name in (
        (model.galaxy_mask_density, model.galaxy_mask_radius, "GALAXY"),
        (model.cluster_mask_density, model.cluster_mask_radius, "CLUSTER"),
    ):
        n = rng.poisson(density * area)
        gra, gdec = _uniform_in_tile(rng, tile, n)
        rad = np.clip(median * 10.0 ** (dex * rng.standard_normal(n)), lo, hi) * _ARCSEC
        parts.append(_Circles(gra, gdec, rad, np.full(n, bit[name])))
    return _Circles.concat(parts)


@lru_cache(maxsize=256)
def _tile_edge_circles(seed: int, model: SkyModel, tile: Tile) -> _Circles:
    """The circles of a tile that reach beyond its edges: all that neighbouring tiles need."""
    c = _tile_mask_circles(seed, model, tile)
    cos_d = np.maximum(np.cos(np.radians(c.dec)), 1e-3)
    out = (c.dec - c.radius < tile.dec_min) | (c.dec + c.radius > tile.dec_min + TILE_DEG)
    out |= (c.ra - c.radius / cos_d < tile.ra_min) | (c.ra + c.radius / cos_d > tile.ra_min + TILE_DEG)
    return _Circles(c.ra[out], c.dec[out], c.radius[out], c.bits[out])


def _neighbourhood_circles(seed: int, model: SkyModel, tile: Tile) -> _Circles:
    """Circles that touch the tile: its own and those of its 8 neighbours reaching over the edge.

    Masks therefore continue seamlessly across tile edges.  Circle RAs are shifted by +-360 deg
    where needed so that they sit next to the tile in plain RA arithmetic.
    """
    parts = [_tile_mask_circles(seed, model, tile)]
    lo_ra, hi_ra = tile.ra_min, tile.ra_min + TILE_DEG
    lo_dec, hi_dec = tile.dec_min, tile.dec_min + TILE_DEG
    cos_min = max(math.cos(math.radians(max(abs(lo_dec), abs(hi_dec)))), 1e-3)
    for didx in (-1, 0, 1):
        idec = tile.idec + didx
        if not TILE_DEC_INDEX_MIN <= idec <= TILE_DEC_INDEX_MAX:
            continue
        for dra in (-1, 0, 1):
            if didx == dra == 0:
                continue
            c = _tile_edge_circles(seed, model, Tile(idec=idec, ira=(tile.ira + dra) % N_TILE_RA))
            ra = c.ra + 360.0 * np.round((lo_ra + TILE_DEG / 2 - c.ra) / 360.0)
            near = (c.dec + c.radius > lo_dec) & (c.dec - c.radius < hi_dec)
            near &= (ra + c.radius / cos_min > lo_ra) & (ra - c.radius / cos_min < hi_ra)
            parts.append(_Circles(ra[near], c.dec[near], c.radius[near], c.bits[near]))
    return _Circles.concat(parts)


def _equal_pairs(a: np.ndarray, b: np.ndarray, n_keys: int) -> tuple[np.ndarray, np.ndarray]:
    """All index pairs ``(i, j)`` with ``a[i] == b[j]`` for integer keys in ``[0, n_keys)``.

    The smaller side is grouped by key (counting sort: bincount + stable argsort); the larger side
    only gathers its key's start and count, so the cost is linear in the larger side.
    """
    swap = a.size > b.size
    small, large = (b, a) if swap else (a, b)
    order = np.argsort(small, kind="stable")
    count = np.bincount(small, minlength=n_keys)
    start = np.cumsum(count) - count
    cnt = count[large]
    j_large = np.repeat(np.arange(large.size), cnt)
    rank = np.arange(j_large.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    i_small = order[start[large][j_large] + rank]
    return (j_large, i_small) if swap else (i_small, j_large)


def _apply_circles(
    circ: _Circles, ra: np.ndarray, dec: np.ndarray, dec_lo: float, dec_hi: float
) -> np.ndarray:
    """OR of the bits of every circle containing each object.

    Circles are rasterised onto 0.02 deg cells (their bounding boxes), objects are matched to the
    circles of their cell, and the exact test uses the local cos(Dec) of each circle.
    """
    n = ra.size
    bits = np.zeros(n, np.int32)
    keep = (circ.dec - circ.radius < dec_hi) & (circ.dec + circ.radius > dec_lo)
    if n == 0 or not keep.any():
        return bits
    c_ra, c_dec, c_r, c_bits = circ.ra[keep], circ.dec[keep], circ.radius[keep], circ.bits[keep]
    c_cos = np.cos(np.radians(c_dec))
    ra_lo = float(ra.min())
    cos_d = math.cos(math.radians(0.5 * (dec_lo + dec_hi)))
    cell = 0.02
    x_obj = ((ra - ra_lo) * cos_d / cell).astype(np.int64)
    y_obj = ((dec - dec_lo) / cell).astype(np.int64)
    nx, ny = int(x_obj.max()) + 1, int(y_obj.max()) + 1
    cx = (c_ra - ra_lo) * cos_d / cell
    cy = (c_dec - dec_lo) / cell
    rx = c_r / np.maximum(c_cos, 1e-3) * cos_d / cell
    ry = c_r / cell
    x0 = np.clip(np.floor(cx - rx).astype(np.int64), 0, nx)
    x1 = np.clip(np.floor(cx + rx).astype(np.int64) + 1, 0, nx)
    y0 = np.clip(np.floor(cy - ry).astype(np.int64), 0, ny)
    y1 = np.clip(np.floor(cy + ry).astype(np.int64) + 1, 0, ny)
    w, h = x1 - x0, y1 - y0
    ncell = np.where((w > 0) & (h > 0), w * h, 0)
    circle_of = np.repeat(np.arange(c_ra.size), ncell)
    local = np.arange(circle_of.size) - np.repeat(np.cumsum(ncell) - ncell, ncell)
    cell_id = (y0[circle_of] + local // w[circle_of]) * nx + x0[circle_of] + local % w[circle_of]
    obj_cell = y_obj * nx + x_obj
    occupied = np.zeros(nx * ny, bool)
    occupied[obj_cell] = True
    live = occupied[cell_id]  # sparse skies: most circle cells hold no object
    pair_obj, pair_entry = _equal_pairs(obj_cell, cell_id[live], nx * ny)
    pair_c = circle_of[live][pair_entry]
    dx = (ra[pair_obj] - c_ra[pair_c]) * c_cos[pair_c]
    dy = dec[pair_obj] - c_dec[pair_c]
    inside = dx * dx + dy * dy < c_r[pair_c] ** 2
    np.bitwise_or.at(bits, pair_obj[inside], c_bits[pair_c[inside]])
    return bits


# --------------------------------------------------------------------------------------------------
# One chunk (the pieces of one brick row inside one tile)


class _MapGrid:
    """Physical sky maps on the global node grid over one tile (evaluated once per tile).

    ``corners[i]`` holds the maps at the four corners of the node cell whose lower-left node is
    ``i``, so one row gather per object feeds the bilinear weights (4x fewer gathers than one per
    map and corner).
    """

    def __init__(self, ctx: _Context, tile: Tile) -> None:
        step = ctx.model.field_node_deg
        n = round(TILE_DEG / step)
        ra_n = tile.ra_min + np.arange(n + 1) * step
        dec_n = np.clip(tile.dec_min + np.arange(n + 1) * step, -90.0, 90.0)
        nodes = ctx.maps.physical(*np.meshgrid(ra_n, dec_n))  # (maps, ny, nx)
        self.n_maps, ny, nx = nodes.shape
        flat = np.ascontiguousarray(nodes.reshape(self.n_maps, -1).T)  # (nodes, maps)
        last = flat.shape[0] - nx - 1
        self.corners = np.stack(
            [flat[:last], flat[1 : last + 1], flat[nx : nx + last], flat[nx + 1 :]], axis=1
        )
        self.nx, self.ny = nx, ny
        self.ra0, self.dec0, self.step = float(tile.ra_min), float(tile.dec_min), step

    def at(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        """Bilinear interpolation at each row, shape (maps, n): continuous across chunks and tiles."""
        tx = ((ra - self.ra0) * (1.0 / self.step)).astype(np.float32)
        ty = ((dec - self.dec0) * (1.0 / self.step)).astype(np.float32)
        ix = np.clip(tx.astype(np.int32), 0, self.nx - 2)
        iy = np.clip(ty.astype(np.int32), 0, self.ny - 2)
        wx = tx - ix
        wy = ty - iy
        w = np.stack([(1 - wx) * (1 - wy), wx * (1 - wy), (1 - wx) * wy, wx * wy], axis=1)
        return np.ascontiguousarray(
            np.einsum("nk,nkm->mn", w, self.corners[iy * self.nx + ix], optimize=False)
        )


@dataclass
class _Rows:
    """The primary attributes of a chunk's rows, fixed before the physics is derived from them."""

    ra: np.ndarray
    dec: np.ndarray
    pop: np.ndarray
    typ: np.ndarray
    mag: np.ndarray
    #: Latent x of lens counterparts (their z_lens); NaN elsewhere.
    x_override: np.ndarray
    pair_host: np.ndarray
    pair_donor: np.ndarray
    pair_fracflux: np.ndarray


def _add_pairs(
    rng: np.random.Generator,
    m: SkyModel,
    rows: _Rows,
    is_cp: np.ndarray,
    piece: np.ndarray,
    start: np.ndarray,
    local: np.ndarray,
    size: np.ndarray,
    bounds: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Close pairs: another row of the same piece becomes the companion of a bright galaxy.

    The donor keeps its brick, objid and piece (the companion must stay inside the piece bounds,
    else the pair is dropped), so counts and keys are untouched; only its position, class and
    magnitude change.  Companions copy the host's latent redshift and SED later (same group).
    """
    ra1, ra2, d1, d2 = bounds
    ra, dec, pop, typ, mag = rows.ra, rows.dec, rows.pop, rows.typ, rows.mag
    bright_gal = (pop == P_GAL) & (typ != T_PSF) & (mag < m.pair_bright_mag)
    host = np.flatnonzero(bright_gal & ~is_cp & (size > 1))
    host = host[rng.random(host.size) < m.pair_fraction]
    if host.size == 0:
        return
    hp_ = piece[host]
    shift = 1 + np.floor(rng.random(host.size) * (size[host] - 1)).astype(np.int64)
    donor = start[hp_] + (local[host] + shift) % size[host]
    sep = rng.uniform(*m.pair_sep_arcsec, host.size) * _ARCSEC
    ang = rng.uniform(0.0, 2.0 * np.pi, host.size)
    dmag = rng.uniform(0.0, m.pair_max_dmag, host.size).astype(np.float32)
    same_type = rng.random(host.size) < 0.5
    other_type = np.array([T_REX, T_EXP, T_DEV, T_SER], np.int8)[rng.integers(0, 4, host.size)]
    new_dec = dec[host] + sep * np.sin(ang)
    new_ra = ra[host] + sep * np.cos(ang) / np.cos(np.radians(dec[host]))
    ok = ~is_cp[donor] & ~bright_gal[donor] & ~np.isin(donor, host)
    ok &= (new_ra >= ra1[hp_]) & (new_ra < ra2[hp_]) & (new_dec >= d1[hp_]) & (new_dec < d2[hp_])
    first = np.zeros(host.size, bool)
    first[np.unique(donor, return_index=True)[1]] = True
    ok &= first
    h, d = host[ok], donor[ok]
    ra[d], dec[d] = new_ra[ok], new_dec[ok]
    pop[d] = P_GAL
    typ[d] = np.where(same_type[ok], typ[h], other_type[ok])
    mag[d] = mag[h] + dmag[ok]
    ratio = _exp10(dmag[ok], -0.4)
    rows.pair_fracflux[h] = 0.5 * ratio
    rows.pair_fracflux[d] = np.minimum(0.5 / ratio, 1.5)
    rows.pair_host, rows.pair_donor = h, d


def _brick_release(ctx: _Context, bid: np.ndarray) -> np.ndarray:
    """Release of each brick: 10002 (DR10.1) in a hashed subset of coarse HEALPix pixels, else 10000.

    A pure function of the brick, so a brick split over two tiles has one release in both files.
    """
    m = ctx.model
    pix = hp.ang2pix(m.release_nside, *bricks.brick_center(bid), nest=True, lonlat=True)
    redo = _hash_uniform(ctx.seed, _STREAM_RELEASE, pix) < m.release_dr10_1_fraction
    return np.where(redo, 10002, 10000).astype(np.int16)


def _generate_chunk(
    ctx: _Context, tile: Tile, pieces: _Pieces, sel: np.ndarray, circles: _Circles, grid: _MapGrid
) -> pa.Table:
    """All rows of the pieces ``sel`` (whole brick rows of the tile) as a SWEEP_SCHEMA table."""
    m = ctx.model
    row = int(pieces.row[sel[0]])
    rng = np.random.default_rng(np.random.SeedSequence([ctx.seed, tile.ira, tile.idec + 90, row]))
    n_base = pieces.n_base[sel]
    n_piece = n_base + pieces.n_cp[sel]
    n = int(n_piece.sum())
    start = np.cumsum(n_piece) - n_piece
    ra1, ra2 = pieces.ra1[sel], pieces.ra2[sel]
    d1, d2 = pieces.dec1[sel], pieces.dec2[sel]

    # ---- identity and position of every row (piece-major, base rows first, counterparts after)
    piece = np.repeat(np.arange(sel.size), n_piece)
    local = np.arange(n) - start[piece]
    is_cp = local >= n_base[piece]
    base = np.flatnonzero(~is_cp)
    pb = piece[base]
    u = rng.random((2, base.size))
    rows = _Rows(
        ra=np.empty(n),
        dec=np.empty(n),
        pop=np.empty(n, np.int8),
        typ=np.empty(n, np.int8),
        mag=np.empty(n, np.float32),
        x_override=np.full(n, np.nan, np.float32),
        pair_host=np.zeros(0, np.int64),
        pair_donor=np.zeros(0, np.int64),
        pair_fracflux=np.zeros(n, np.float32),
    )
    rows.ra[base] = np.minimum(ra1[pb] + u[0] * (ra2 - ra1)[pb], np.nextafter(ra2, -np.inf)[pb])
    s1, s2 = np.sin(np.radians(d1)), np.sin(np.radians(d2))
    dec_b = np.degrees(np.arcsin(s1[pb] + u[1] * (s2 - s1)[pb]))
    rows.dec[base] = np.clip(dec_b, d1[pb], np.nextafter(d2, -np.inf)[pb])
    cls = np.searchsorted(ctx.class_cdf, rng.random(base.size), side="right").clip(0, len(_CLASS_POP) - 1)
    rows.pop[base] = _CLASS_POP[cls]
    rows.typ[base] = _CLASS_TYPE[cls]
    rows.mag[base] = _mag_draw(rng, m, ctx.mag_limit, cls)
    cp_rows = np.flatnonzero(is_cp)
    if cp_rows.size:
        cp = ctx.cp
        keys = _piece_key(pieces.bid[sel], tile.ira, tile.idec)
        src = (
            np.searchsorted(cp.key, keys[piece[cp_rows]], side="left")
            + local[cp_rows]
            - n_base[piece[cp_rows]]
        )
        rows.ra[cp_rows], rows.dec[cp_rows] = cp.ra[src], cp.dec[src]
        rows.pop[cp_rows] = P_GAL
        rows.typ[cp_rows] = cp.typ[src]
        rows.mag[cp_rows] = cp.mag[src]
        rows.x_override[cp_rows] = cp.zl[src]
    _add_pairs(rng, m, rows, is_cp, piece, start, local, n_piece[piece], (ra1, ra2, d1, d2))

    cols = _physics(ctx, rng, rows, circles, grid, float(d1.min()), float(d2.max()))

    bid = pieces.bid[sel]
    release = _brick_release(ctx, bid)
    name_bytes = np.frombuffer("".join(bricks.brick_name(bid)).encode(), np.uint8).reshape(bid.size, 8)
    cols["release"] = release[piece]
    cols["brickid"] = bid.astype(np.int32)[piece]
    cols["brickname"] = _fixed_width_strings(name_bytes, piece)
    cols["objid"] = (pieces.offset[sel][piece] + local).astype(np.int32)
    cols["type"] = _fixed_width_strings(ctx.tables.type_bytes, rows.typ)
    cols["ra"] = rows.ra
    cols["dec"] = rows.dec
    missing = [f.name for f in SWEEP_SCHEMA if f.name not in cols]
    if missing:
        raise AssertionError(f"synth chunk lacks columns {missing}")
    arrays = [
        cols[f.name] if isinstance(cols[f.name], pa.Array) else pa.array(cols[f.name], type=f.type)
        for f in SWEEP_SCHEMA
    ]
    return pa.Table.from_arrays(arrays, schema=SWEEP_SCHEMA)


def _mag_draw(rng: np.random.Generator, model: SkyModel, mag_limit: float, cls: np.ndarray) -> np.ndarray:
    """Truncated exponential counts dN/dm ~ 10^(alpha m) on [mag_bright, mag_limit], per class."""
    k = (np.asarray(model.class_slope, np.float64) * math.log(10.0))[cls]
    span = mag_limit - model.mag_bright
    u = rng.random(cls.size)
    return (model.mag_bright + np.log1p(u * np.expm1(k * span)) / k).astype(np.float32)


def _uniforms(rng: np.random.Generator, k: int, n: int) -> np.ndarray:
    """``(k, n)`` float32 uniforms on (0, 1) with 16-bit resolution, from the raw bit stream.

    Four variates per 64 random bits at ~1 ns each, against ~1.8 ns for ``Generator.random``; a
    resolution of 1.5e-5 is far below every probability and scale this model draws with.
    """
    raw = rng.bit_generator.random_raw((k * n + 3) // 4).view(np.uint16)[: k * n].reshape(k, n)
    out = raw.astype(np.float32)
    out += np.float32(0.5)
    out *= np.float32(1.0 / 65536.0)
    return out


def _normals(rng: np.random.Generator, k: int, n: int) -> np.ndarray:
    """``(k, n)`` float32 standard normals by Box-Muller on :func:`_uniforms`.

    numpy's ziggurat costs ~9 ns per float32 normal here, this ~2.5 ns; tails are cut at 4.8 sigma
    (16-bit uniforms), irrelevant for photometric noise and population scatter.
    """
    pairs = (k + 1) // 2
    u = _uniforms(rng, 2 * pairs, n)
    r = np.sqrt(np.float32(-2.0) * np.log(u[:pairs]))
    t = u[pairs:] * np.float32(2.0 * np.pi)
    out = np.empty((2 * pairs, n), np.float32)
    np.multiply(r, np.cos(t), out=out[:pairs])
    np.multiply(r, np.sin(t), out=out[pairs:])
    return out[:k]


def _exp10(x: np.ndarray, scale: float) -> np.ndarray:
    """``10 ** (scale * x)`` through exp (3x faster than float32 power)."""
    return np.exp(x * np.float32(scale * math.log(10.0)))


class _Tables:
    """Per-class parameter tables, so the per-row code is gathers and arithmetic, not branches.

    Random-mask ``np.where`` costs ~4 ns per element on this hardware (branch mispredictions), a
    table gather ~1-2 ns and a multiply ~0.2 ns; the physics is written accordingly.

    Colour classes: 0 red, 1 intermediate, 2 star-forming galaxy, 3-5 the three stellar-locus
    components, 6 QSO, 7 DUP.
    """

    N_CC = 8

    def __init__(self, m: SkyModel) -> None:
        f32 = np.float32
        gmax, gamp, gk, gsig = m.red_gr
        mid, sfc = m.mid_colour, m.sf_colour
        # g-r = a + b x + c exp(-k x) + s N
        gr = [(gmax, 0, -gamp, gk, gsig), (mid[0], mid[1], 0, 0, mid[2]), (sfc[0], sfc[1], 0, 0, sfc[2])]
        gr += [(mu, 0, 0, 0, sd) for mu, sd in zip(m.star_gr_mean, m.star_gr_sigma, strict=True)]
        gr += [(m.qso_colour[0], 0, 0, 0, m.qso_colour[1]), (0, 0, 0, 0, 0)]
        self.gr = np.array(gr, f32).T
        # r-z = p0 + p1 x + p2 (g-r) + p3 max(g-r - 1.1, 0) + s N
        sa, sb, ss = m.star_rz
        rz = [(m.red_rz[0], m.red_rz[1], 0, 0, m.red_rz[2]), (mid[3], mid[4], 0, 0, mid[5])]
        rz += [(sfc[3], sfc[4], 0, 0, sfc[5])] + [(0, 0, sa, sb, ss)] * 3
        rz += [(m.qso_colour[2], 0, 0, 0, m.qso_colour[3]), (0, 0, 0, 0, 0)]
        self.rz = np.array(rz, f32).T
        # z - W1 (AB) = p0 + p1 x + p2 (g-r) + s N
        zw1 = [m.zw1_red, m.zw1_mid, m.zw1_sf]
        zw1 = [(a, b, 0, s) for a, b, s in zw1] + [(m.zw1_star[0], 0, m.zw1_star[1], m.zw1_star[2])] * 3
        zw1 += [(m.zw1_qso[0], 0, 0, m.zw1_qso[1]), (0, 0, 0, 0)]
        self.zw1 = np.array(zw1, f32).T
        # Vega W1-W2 = a + b x + s N; W2-W3 = a + s N; W3-W4 = a + s N
        g0, g1, gs = m.w12_gal
        w12 = [(g0, g1, gs)] * 3 + [(m.w12_star[0], 0, m.w12_star[1])] * 3 + [(m.w12_qso[0], 0, m.w12_qso[1])]
        self.w12 = np.array([*w12, (0, 0, 0)], f32).T
        w23 = (
            [(v, m.w23_sigma) for v in m.w23_by_sed] + [(0.0, 0.05)] * 3 + [(m.w23_agn, m.w23_sigma), (0, 0)]
        )
        self.w23 = np.array(w23, f32).T
        w34 = [m.w34] * 3 + [(0.0, 0.0)] * 3 + [m.w34, (0.0, 0.0)]
        self.w34 = np.array(w34, f32).T
        self.star_cdf = np.cumsum(m.star_gr_weight)[:2].astype(f32)
        # Per TYPE (PSF, REX, DEV, EXP, SER, DUP).
        radius_index = {T_REX: 0, T_EXP: 1, T_DEV: 2, T_SER: 3}
        self.extended = np.zeros(6, f32)
        self.elliptical = np.zeros(6, f32)
        self.r0 = np.zeros(6, f32)
        self.r_slope = np.zeros(6, f32)
        for t, i in radius_index.items():
            self.extended[t] = 1.0
            self.elliptical[t] = float(t != T_REX)
            self.r0[t] = m.radius_r0[i]
            self.r_slope[t] = m.radius_slope[i]
        self.q0 = np.ones(6, f32)
        self.q0[[T_EXP, T_SER, T_DEV]] = (m.q0_exp, m.q0_ser, m.q0_dev)
        self.sersic_fixed = np.array([0.0, 1.0, 4.0, 1.0, 0.0, 0.0], f32)
        sed = np.zeros((6, 3))
        sed[[T_PSF, T_REX, T_DEV, T_EXP, T_SER]] = (
            m.sed_prob_compact,
            m.sed_prob_rex,
            m.sed_prob_dev,
            m.sed_prob_exp,
            m.sed_prob_ser,
        )
        sed[T_DUP] = (1.0, 0.0, 0.0)
        self.sed_cdf = np.cumsum(sed / sed.sum(axis=1, keepdims=True), axis=1)[:, :2].astype(f32)
        #: Population -> colour-class base (galaxies add their SED, stars their locus component).
        self.pop_base = np.array([3, 6, 0, 7], np.int8)
        self.anymask_values = np.array([1, 4, 16, 64, 256, 2048, 0], np.int16)
        self.type_bytes = np.frombuffer("".join(TRACTOR_TYPES).encode(), np.uint8).reshape(
            len(TRACTOR_TYPES), 3
        )


def _fixed_width_strings(table: np.ndarray, index: np.ndarray) -> pa.Array:
    """A string array whose row i is the bytes of ``table[index[i]]`` (all entries the same width).

    Building the buffers with numpy is ~10x faster than ``pyarrow.compute.take`` on strings.
    """
    width = table.shape[1]
    data = table[index].reshape(-1)
    offsets = np.arange(index.size + 1, dtype=np.int32) * np.int32(width)
    return pa.StringArray.from_buffers(index.size, pa.py_buffer(offsets), pa.py_buffer(data))


def _ref_cat_strings(gaia: np.ndarray) -> pa.Array:
    """'G2' where ``gaia`` else '' (legacysurvey ref_cat for Gaia DR2 matches)."""
    offsets = np.zeros(gaia.size + 1, np.int32)
    np.cumsum(gaia.astype(np.int32) * 2, out=offsets[1:])
    data = np.tile(np.frombuffer(b"G2", np.uint8), int(gaia.sum()))
    return pa.StringArray.from_buffers(gaia.size, pa.py_buffer(offsets), pa.py_buffer(data))


def _physics(
    ctx: _Context,
    rng: np.random.Generator,
    rows: _Rows,
    circles: _Circles,
    grid: _MapGrid,
    dec_lo: float,
    dec_hi: float,
) -> dict[str, np.ndarray | pa.Array]:
    """Colours, shapes, observing conditions, photometry and flags of every row (see SkyModel)."""
    m = ctx.model
    tab = ctx.tables
    ra, dec, pop, typ, mag = rows.ra, rows.dec, rows.pop, rows.typ, rows.mag
    n = ra.size
    f32 = np.float32
    cols: dict[str, np.ndarray | pa.Array] = {}
    z = _normals(rng, 18, n)
    u = _uniforms(rng, 28, n)
    not_dup = (pop != P_DUP).astype(f32)

    # ---- galaxy latent redshift, spectral class, AGN; colour class of every row
    x0, x1, xs = m.x_latent
    x = np.clip(x0 + x1 * (mag - f32(18.0)) + xs * z[0], *m.x_range).astype(f32)
    lens = ~np.isnan(rows.x_override)
    x[lens] = rows.x_override[lens]
    cdf = tab.sed_cdf[typ]
    sed = (u[0] > cdf[:, 0]).astype(np.int8) + (u[0] > cdf[:, 1])
    sed[lens] = S_RED
    comp = (u[1] > tab.star_cdf[0]).astype(np.int8) + (u[1] > tab.star_cdf[1])
    x[rows.pair_donor] = x[rows.pair_host]
    sed[rows.pair_donor] = sed[rows.pair_host]
    is_gal = pop == P_GAL
    cc = tab.pop_base[pop] + sed * is_gal + comp * (pop == P_STAR)
    agn = (is_gal & (u[2] < m.agn_fraction)).astype(f32)
    qso_like = np.maximum(agn, (pop == P_QSO).astype(f32))

    # ---- intrinsic colours
    p = tab.gr[:, cc]
    gr = p[0] + p[1] * x + p[2] * np.exp(-p[3] * x) + p[4] * z[1]
    p = tab.rz[:, cc]
    rz = p[0] + p[1] * x + p[2] * gr + p[3] * np.maximum(gr - f32(1.1), f32(0.0)) + p[4] * z[2]
    iz = m.iz_slope * rz + m.iz_sigma * z[3]
    p = tab.zw1[:, cc]
    zw1 = p[0] + p[1] * x + p[2] * gr + p[3] * z[4] + f32(m.agn_w1_boost) * agn
    p = tab.w12[:, cc]
    w12 = p[0] + p[1] * x + p[2] * z[5]
    w12 += agn * (f32(m.w12_agn[0]) + f32(m.w12_agn[1]) * np.abs(z[5]) - w12)
    p = tab.w23[:, cc]
    w23 = p[0] + p[1] * z[6]
    w23 += qso_like * (f32(m.w23_agn) + f32(m.w23_sigma) * z[6] - w23)
    p = tab.w34[:, cc]
    w34 = p[0] + p[1] * z[7]
    ab1, ab2, ab3, ab4 = m.wise_ab_offset
    mag_r = mag + rz
    mag_w1 = mag - zw1
    mag_w2 = mag_w1 - w12 + f32(ab2 - ab1)
    mag_w3 = mag_w2 - w23 + f32(ab3 - ab2)
    mags = {
        "g": mag_r + gr,
        "r": mag_r,
        "i": mag + iz,
        "z": mag,
        "w1": mag_w1,
        "w2": mag_w2,
        "w3": mag_w3,
        "w4": mag_w3 - w34 + f32(ab4 - ab3),
    }

    # ---- shapes (Tractor conventions: REX round, e = (1-q)/(1+q), PSF/DUP zero)
    ext = tab.extended[typ]
    radius = tab.r0[typ] * _exp10(-tab.r_slope[typ] * (mag - f32(20.0)) + f32(m.radius_scatter) * z[8], 1.0)
    shape_r = np.clip(radius, *m.radius_range) * ext
    q0 = tab.q0[typ]
    q = np.sqrt(u[3] * u[3] * (1 - q0 * q0) + q0 * q0)
    e_mod = (1 - q) / (1 + q) * tab.elliptical[typ]
    phi = u[4] * f32(2.0 * np.pi)
    e1 = e_mod * np.cos(2 * phi)
    e2 = e_mod * np.sin(2 * phi)
    is_ser = typ == T_SER
    ser_n = np.clip(f32(m.sersic_median) * np.exp(f32(m.sersic_sigma) * z[9]), f32(0.5), f32(6.0))
    sersic = tab.sersic_fixed[typ] + ser_n * is_ser
    sigma_src2 = (shape_r / f32(1.1774)) ** 2

    # ---- observing conditions from the sky maps
    cond = grid.at(ra, dec)
    ebv = cond[11]
    cols["ebv"] = ebv
    i_cov = (cond[8] > m.i_coverage_threshold).astype(f32)
    snr2 = np.zeros(n, f32)
    fwhm_z = cond[3]
    sqrt12 = f32(math.sqrt(12.0) * m.depth_jitter)
    for b, band in enumerate(("g", "r", "i", "z")):
        cov = i_cov if band == "i" else None
        nobs = np.floor(cond[4 + b] + u[5 + b]) - (u[9 + b] < m.chip_gap_fraction)
        nobs = np.clip(nobs, 1, m.nobs_max)
        fwhm = cond[b]
        if cov is not None:
            nobs *= cov
            fwhm = fwhm * cov
        m5 = f32(m.m5_single[b]) + f32(1.25) * np.log10(np.maximum(nobs, f32(1.0)))
        m5 -= f32(2.5) * np.log10(np.maximum(fwhm, f32(0.1)) / f32(m.m5_ref_fwhm))
        m5 += cond[9]
        depth = f32(25.0) * _exp10(m5 - f32(22.5), 0.8) * (1 + sqrt12 * (u[13 + b] - f32(0.5)))
        sig_p2 = (fwhm / f32(2.3548)) ** 2
        galdepth = depth * sig_p2 / (sig_p2 + f32((0.45 / 1.1774) ** 2))
        trans = _exp10(ebv, -0.4 * m.extinction_r[b])
        true = _exp10(mags[band] - f32(22.5), -0.4) * trans * not_dup
        var = (1 + sigma_src2 / np.maximum(sig_p2, f32(1e-3))) / np.maximum(depth, f32(1e-12))
        var += true / f32(m.source_gain)
        flux = true + np.sqrt(var) * z[10 + b]
        ivar = not_dup / var
        if cov is not None:
            depth, galdepth, flux, ivar = depth * cov, galdepth * cov, flux * cov, ivar * cov
        flux *= not_dup
        fiber_frac = 1 - np.exp(f32(-(0.75**2) / 2.0) / np.maximum(sig_p2 + sigma_src2, f32(1e-6)))
        cols[f"flux_{band}"] = flux
        cols[f"flux_ivar_{band}"] = ivar
        cols[f"mw_transmission_{band}"] = trans
        cols[f"nobs_{band}"] = nobs.astype(np.int16)
        cols[f"psfsize_{band}"] = fwhm
        cols[f"psfdepth_{band}"] = depth
        cols[f"galdepth_{band}"] = galdepth
        cols[f"fiberflux_{band}"] = flux * fiber_frac
        if band != "i":
            snr2 += true * true * ivar
    for w, band in enumerate(("w1", "w2", "w3", "w4")):
        trans = _exp10(ebv, -0.4 * m.extinction_r[4 + w])
        depth = f32(25.0) * _exp10(f32(m.wise_m5[w] - 22.5) + cond[10], 0.8)
        true = _exp10(mags[band] - f32(22.5), -0.4) * trans * not_dup
        var = 1 / depth + true / f32(m.source_gain)
        cols[f"flux_{band}"] = (true + np.sqrt(var) * z[14 + w]) * not_dup
        cols[f"flux_ivar_{band}"] = not_dup / var
        cols[f"mw_transmission_{band}"] = trans
        if band in ("w1", "w2"):
            cols[f"psfdepth_{band}"] = depth

    # ---- astrometric and shape uncertainties from the total g+r+z S/N
    snr = np.sqrt(np.maximum(snr2, f32(1.0)))
    sig_p = fwhm_z / f32(2.3548)
    pos_sig = (np.sqrt(sig_p * sig_p + sigma_src2) / snr + f32(0.002)) * f32(_ARCSEC)
    pos_ivar = 1 / (pos_sig * pos_sig)
    cols["ra_ivar"] = pos_ivar
    cols["dec_ivar"] = pos_ivar
    blur = 1 + sig_p / np.maximum(np.sqrt(sigma_src2), f32(0.01))
    cols["shape_r"] = shape_r
    cols["shape_r_ivar"] = ext * (snr / (shape_r + sig_p)) ** 2
    e_ivar = tab.elliptical[typ] * (snr / blur) ** 2
    cols["shape_e1"] = e1
    cols["shape_e1_ivar"] = e_ivar
    cols["shape_e2"] = e2
    cols["shape_e2_ivar"] = e_ivar
    cols["sersic"] = sersic
    cols["sersic_ivar"] = is_ser * (snr / (f32(2.0) * np.maximum(sersic, f32(0.5)) * blur)) ** 2

    # ---- blending and pixel-level flags (conditional uniforms reused where independent)
    tail = (u[17] < m.fracflux_tail).astype(f32)
    ff_core = f32(-m.fracflux_scale) * np.log1p(-u[18])
    fracflux = ff_core + tail * (_exp10(u[18] - f32(1.0), 1.5) - ff_core)
    fracflux = np.maximum(fracflux, rows.pair_fracflux)
    in_fm = (u[19] < m.fracmasked_fraction).astype(f32)
    fm_value = f32(-0.03) * np.log(np.maximum(u[19], f32(1e-7)) / f32(m.fracmasked_fraction))
    fracmasked = in_fm * np.minimum(fm_value, f32(0.99))
    fi_tail = (u[20] < m.fracin_tail).astype(f32)
    fi_core = 1 + f32(0.002) * np.log1p(-u[21])
    fracin = np.clip(fi_core + fi_tail * (f32(0.5) + f32(0.48) * u[21] - fi_core), 0, 1)
    maskbits = _apply_circles(circles, ra, dec, dec_lo, dec_hi)
    for b, band in enumerate(("g", "r", "i", "z")):
        cov = i_cov if band == "i" else f32(1.0)
        factor = f32((1.1, 1.0, 0.97, 0.95)[b])
        cols[f"fracflux_{band}"] = fracflux * (factor * cov)
        cols[f"fracmasked_{band}"] = fracmasked * cov
        cols[f"fracin_{band}"] = fracin * cov
        u_m = u[24 + b]
        idx = np.minimum(u_m / f32(m.anymask_fraction) * 6, 6).astype(np.int8)
        anymask = tab.anymask_values[idx] * (cov != 0)
        allmask = anymask * (u_m < m.allmask_fraction)
        cols[f"anymask_{band}"] = anymask.astype(np.int16)
        cols[f"allmask_{band}"] = allmask.astype(np.int16)
        maskbits |= (allmask != 0).astype(np.int32) << MASKBITS[f"ALLMASK_{band.upper()}"]
    maskbits |= (u[22] < m.sub_blob_fraction).astype(np.int32) << MASKBITS["SUB_BLOB"]
    maskbits |= (u[22] > 1 - m.bailout_fraction).astype(np.int32) << MASKBITS["BAILOUT"]
    cols["maskbits"] = maskbits

    # ---- Gaia reference and fit flags
    gaia = ((typ == T_PSF) & (mag + f32(0.4) + f32(0.3) * gr < m.gaia_g_limit)) | (pop == P_DUP)
    ref_id = np.zeros(n, np.int64)
    if gaia.any():
        hpx = hp.ang2pix(4096, ra[gaia], dec[gaia], nest=True, lonlat=True).astype(np.int64)
        ref_id[gaia] = (hpx << 35) + rng.integers(1, 1 << 35, int(gaia.sum()))
    cols["ref_id"] = ref_id
    cols["ref_cat"] = _ref_cat_strings(gaia)
    fitbits = (u[23] < m.iterative_fraction).astype(np.int16) << 13
    fitbits |= gaia.astype(np.int16) << 7
    fitbits |= (is_ser & ((sersic <= 0.5) | (sersic >= 6.0))).astype(np.int16) << 3
    cols["fitbits"] = fitbits
    return cols


# --------------------------------------------------------------------------------------------------
# Files


@dataclass
class SynthReport:
    """What :func:`generate_sky` wrote and how fast."""

    files: list[str]
    rows_per_file: dict[str, int]
    total_rows: int
    seconds: float
    rows_per_second: float
    footprint_area_deg2: float
    counterparts_written: int
    counterparts_within_1arcsec: int
    candidates_total: int

    @property
    def candidate_match_fraction(self) -> float:
        """Share of all candidates given a counterpart within 1" (written in these tiles)."""
        return self.counterparts_within_1arcsec / self.candidates_total if self.candidates_total else 0.0


def _tile_tables(ctx: _Context, tile: Tile, pieces: _Pieces) -> Iterator[pa.Table]:
    """The tile's rows in chunks of whole brick rows holding up to ``CHUNK_ROWS`` rows.

    The grouping depends only on the tile's piece counts, and each chunk's generator is seeded by
    ``(seed, tile, first brick row)``, so the content never depends on other tiles or on
    ``row_group_rows``; at low density a chunk is the whole tile (few, large numpy calls), at
    DR10 density one brick row (~175,000 rows, bounded memory).
    """
    circles = _neighbourhood_circles(ctx.seed, ctx.model, tile)
    grid = _MapGrid(ctx, tile)
    rows = np.unique(pieces.row)
    per_row = np.bincount(np.searchsorted(rows, pieces.row), weights=pieces.n_base + pieces.n_cp).astype(
        np.int64
    )
    chunk: list[int] = []
    size = 0
    for r, k in zip(rows.tolist(), per_row.tolist(), strict=True):
        if chunk and size + k > CHUNK_ROWS:
            yield from _chunk_table(ctx, tile, pieces, chunk, circles, grid)
            chunk, size = [], 0
        chunk.append(r)
        size += k
    yield from _chunk_table(ctx, tile, pieces, chunk, circles, grid)


def _chunk_table(
    ctx: _Context, tile: Tile, pieces: _Pieces, rows: list[int], circles: _Circles, grid: _MapGrid
) -> Iterator[pa.Table]:
    sel = np.flatnonzero(np.isin(pieces.row, rows) & (pieces.n_base + pieces.n_cp > 0))
    if sel.size:
        yield _generate_chunk(ctx, tile, pieces, sel, circles, grid)


@dataclass
class _TileResult:
    path: str
    rows: int
    counterparts: int
    counterparts_within_1arcsec: int
    footprint_area_deg2: float


def _write_tile(ctx: _Context, tile: Tile, out_dir: Path, row_group_rows: int) -> _TileResult:
    """Write one tile to a temporary file and rename it into place (readers never see a partial file)."""
    pieces = _tile_pieces(ctx, tile)
    final = out_dir / tile.name
    tmp = out_dir / f".{tile.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    rows = 0
    try:
        with pq.ParquetWriter(
            tmp,
            SWEEP_SCHEMA,
            compression="zstd",
            compression_level=_ZSTD_LEVEL,
            use_dictionary=list(_DICTIONARY_COLUMNS),
            write_statistics=list(_STATISTICS_COLUMNS),
            # CRC32 per page: sweep validation then detects a corrupt page even where the bytes
            # still decode (zstd stores incompressible float pages raw)
            write_page_checksum=True,
        ) as writer:
            buffer: list[pa.Table] = []
            buffered = 0
            for table in _tile_tables(ctx, tile, pieces):
                buffer.append(table)
                buffered += table.num_rows
                if buffered >= row_group_rows:
                    merged = pa.concat_tables(buffer)
                    full = (buffered // row_group_rows) * row_group_rows
                    writer.write_table(merged.slice(0, full), row_group_size=row_group_rows)
                    buffer = [merged.slice(full)]
                    buffered -= full
                    rows += full
            if buffered or rows == 0:
                writer.write_table(
                    pa.concat_tables(buffer) if buffer else SWEEP_SCHEMA.empty_table(),
                    row_group_size=row_group_rows,
                )
                rows += buffered
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    n_cp = int(pieces.n_cp.sum())
    within = 0
    if ctx.cp is not None and n_cp:
        in_tile = (ctx.cp.key & 0xFFFF) == ((tile.idec + 90) << 8 | tile.ira)
        within = int((in_tile & ~ctx.cp.displaced).sum())
    return _TileResult(str(final), rows, n_cp, within, pieces.area_in_footprint)


def generate_sky(
    out: str,
    density: float = DEFAULT_DENSITY,
    seed: int = 42,
    tiles: list[str] | None = None,
    mag_limit: float = DEFAULT_MAG_LIMIT,
    candidates_csv: str | Sequence[str] | None = DEFAULT_CANDIDATES_CSV,
    row_group_rows: int = 500_000,
    progress: bool = True,
    *,
    workers: int = 2,
    model: SkyModel | None = None,
    footprint: Footprint | None = None,
) -> SynthReport:
    """Write the synthetic DR10-south sweeps into the local directory ``out``.

    ``density`` is objects per deg^2 (all types) down to ``mag_limit``, the faintest intrinsic z-band
    AB magnitude generated; ``tiles`` restricts the run (see the module doc; ``None`` = the whole
    footprint).  Tiles are generated ``workers`` at a time (threads: numpy and Arrow release the GIL),
    each in chunks of whole brick rows of at most ``CHUNK_ROWS`` rows (one brick row at DR10
    density), so memory stays below ~1 GB per worker whatever the density.  The same arguments
    always give byte-identical files, whatever ``workers`` is.  ``model`` and ``footprint`` replace
    the physical model and the footprint (defaults: :class:`SkyModel`, :class:`Footprint`).
    """
    if density <= 0 or not math.isfinite(density):
        raise ValueError(f"density must be a positive number of objects per deg^2, got {density}")
    model = model or SkyModel()
    if not model.mag_bright + 1.0 <= mag_limit <= 30.0:
        raise ValueError(f"mag_limit must lie in [{model.mag_bright + 1}, 30] (z AB), got {mag_limit}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if row_group_rows < 1:
        raise ValueError(f"row_group_rows must be positive, got {row_group_rows}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    footprint = footprint or Footprint()
    t0 = time.perf_counter()
    chosen = select_tiles(tiles, footprint)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = _Context(seed, density, mag_limit, model, footprint, candidates_csv)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(chosen), unit="tile", desc="synth sweeps")
    results: list[_TileResult] = []
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        for res in pool.map(lambda t: _write_tile(ctx, t, out_dir, row_group_rows), chosen):
            results.append(res)
            if bar is not None:
                bar.update(1)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # stop queued tiles; running ones clean up
        raise
    finally:
        pool.shutdown(wait=True)
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    total = sum(r.rows for r in results)
    return SynthReport(
        files=[r.path for r in results],
        rows_per_file={os.path.basename(r.path): r.rows for r in results},
        total_rows=total,
        seconds=seconds,
        rows_per_second=total / seconds if seconds > 0 else float("inf"),
        footprint_area_deg2=sum(r.footprint_area_deg2 for r in results),
        counterparts_written=sum(r.counterparts for r in results),
        counterparts_within_1arcsec=sum(r.counterparts_within_1arcsec for r in results),
        candidates_total=ctx.cp.n_candidates if ctx.cp is not None else 0,
    )
