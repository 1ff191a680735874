"""Mask sources (bright stars, large galaxies, clusters) and the MASKBITS circles they set."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from stronglens.schema import MASKBITS
from stronglens.synth.footprint import (
    _ARCSEC,
    N_TILE_RA,
    TILE_DEC_INDEX_MAX,
    TILE_DEC_INDEX_MIN,
    TILE_DEG,
    Tile,
    icrs_to_galactic,
)
from stronglens.synth.model import _STREAM_MASKS, SkyModel

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
