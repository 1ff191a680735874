"""Faint objects below the sweep's magnitude limit, generated on the fly around each cutout.

The embedded sky keeps its sweeps small with a magnitude limit (``synth`` default z < 20.5,
~600 objects/deg^2), but a real DR10 cutout holds every object to the survey depth: DR10 has
2.83e9 Tractor sources over ~20,000 deg^2, ~1.4e5 /deg^2 (DOMAIN.md), i.e. ~7-8 in a 26.5" cutout.
Without them a CNN sees empty sky around negatives and an arc as the only extra light.

Determinism by position, not by cutout: the sky is cut into cells ``cell_arcsec`` high (Dec zones)
and about as wide (each zone has ``floor(360 cos(dec_zone) / width)`` RA cells); the objects of a
cell are a pure function of ``(seed, zone, cell)`` (SplitMix64 hashes), so two overlapping cutouts
show the same faint objects at the same places.  A cutout gathers the 3 x 3 cells around it (a cell
is wider than the cutout's half-size plus margin, so nothing is missed).

Population (z band, intrinsic AB): the synthetic sky's own :class:`~stronglens.synth.SkyModel`
class fractions and count slopes (DR10 TYPE totals; galaxy counts 0.28-0.45 dex/mag, stars 0.12),
normalised to ``density_ref`` objects/deg^2 brighter than ``mag_ref`` (DR10: 1.4e5 at 24.5), drawn
between ``mag_min`` (the sweep limit, so nothing is counted twice) and ``mag_max``.  Objects fainter
than a cutout's 5-sigma depth are still drawn: real images hold them too, as noise-level blobs.

Shapes: galaxies are rendered as round Gaussians of sigma ``0.6 r_e`` (an exponential's half-light
radius to the Gaussian of equal second moment, close enough below the PSF) with ``r_e`` log-normal,
median ``re_median_arcsec`` at ``mag_ref_re`` shrinking ``re_slope`` dex per magnitude fainter (faint
galaxies are small: e.g. Bernstein et al. 1995 / HST size-magnitude relations); stars and QSOs are
points.  Colours: galaxies ``g-r ~ N(0.75, 0.35)``, ``r-z ~ N(0.55, 0.35)`` (the blue cloud dominates
faint counts), stars ``g-r ~ N(1.0, 0.35)``, ``r-z ~ N(0.7, 0.4)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from stronglens.lensing import FloatArray, tangent_plane_offsets
from stronglens.synth.model import SkyModel

_STREAM_CELL_COUNT = 0x4641_0001
_STREAM_CELL_OBJECTS = 0x4641_0002
_N_OBJECT_DRAWS = 9
_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)

#: SkyModel class order: star, qso, compact galaxy (PSF), REX, EXP, DEV, SER, DUP.
_POINT_CLASSES = (0, 1, 2)


@dataclass(frozen=True)
class FaintSky:
    """Parameters of the faint population (see the module docstring for the sources)."""

    density_ref: float = 1.4e5
    mag_ref: float = 24.5
    mag_min: float = 20.5
    mag_max: float = 25.0
    cell_arcsec: float = 40.0
    re_median_arcsec: float = 0.45
    mag_ref_re: float = 21.0
    re_slope: float = 0.06
    re_scatter_dex: float = 0.2

    def __post_init__(self) -> None:
        if not self.mag_min < self.mag_max:
            raise ValueError(f"FaintSky: mag_min {self.mag_min} must be below mag_max {self.mag_max}")
        if not (self.density_ref > 0 and self.cell_arcsec > 0):
            raise ValueError("FaintSky: density_ref and cell_arcsec must be positive")

    def class_densities(self) -> FloatArray:
        """Objects/deg^2 of each SkyModel class between ``mag_min`` and ``mag_max``."""
        model = SkyModel()
        f = np.asarray(model.class_fraction_ref, np.float64)
        a = np.asarray(model.class_slope, np.float64)

        def cumulative(m: float) -> FloatArray:
            return np.expm1(np.log(10.0) * a * (m - model.mag_bright))

        ref = cumulative(self.mag_ref)
        n = self.density_ref * f * (cumulative(self.mag_max) - cumulative(self.mag_min)) / ref
        n[-1] = 0.0  # DUP rows carry no light
        return n


def _mix64(z: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """SplitMix64 finaliser (as :func:`stronglens.cutouts.render_reference.hashed_uniforms`)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _cell_uniforms(key: NDArray[np.uint64], seed: int, stream: int, count: int) -> FloatArray:
    """``(len(key), count)`` uniforms in (0, 1), a pure function of ``(seed, stream, key, index)``."""
    base = _mix64(np.array([seed * 0x100000001 + stream], dtype=np.uint64))
    k = _mix64(key ^ base)
    bits = _mix64(k[:, None] + (np.arange(count, dtype=np.uint64) + np.uint64(1)) * _GOLDEN_GAMMA)
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


@dataclass(frozen=True)
class FaintSources:
    """Faint objects inside the cutouts: ``owner`` (row of the batch), frame offsets ``x`` (West),
    ``y`` (North) in arcsec, Gaussian ``sigma`` before the PSF (0 = point), fluxes (N, 3) g, r, z
    nanomaggies, z magnitude and whether it is a point source."""

    owner: NDArray[np.intp]
    x: FloatArray
    y: FloatArray
    sigma: FloatArray
    fluxes: FloatArray
    mag_z: FloatArray
    is_point: NDArray[np.bool_]


def faint_sources(
    ra: FloatArray, dec: FloatArray, half_size_arcsec: float, seed: int, sky: FaintSky
) -> FaintSources:
    """The faint objects within ``half_size_arcsec`` (+ 3" for PSF wings) of each ``(ra, dec)``."""
    ra = np.asarray(ra, np.float64)
    dec = np.asarray(dec, np.float64)
    n = ra.size
    cell_deg = sky.cell_arcsec / 3600.0
    n_zones = int(np.ceil(180.0 / cell_deg))
    zone0 = np.clip(np.floor((dec + 90.0) / cell_deg).astype(np.int64), 0, n_zones - 1)
    zones = zone0[:, None] + np.array([-1, 0, 1])[None, :]  # (N, 3)
    zones = np.clip(zones, 0, n_zones - 1)
    zone_dec = (zones + 0.5) * cell_deg - 90.0
    n_ra = np.maximum(1, np.floor(360.0 * np.cos(np.radians(zone_dec)) / cell_deg)).astype(np.int64)
    width = 360.0 / n_ra
    ira0 = np.floor(np.mod(ra, 360.0)[:, None] / width).astype(np.int64)
    ira = np.mod(ira0[:, :, None] + np.array([-1, 0, 1])[None, None, :], n_ra[:, :, None])  # (N, 3, 3)
    zz = np.broadcast_to(zones[:, :, None], ira.shape)
    # a zone narrower than 3 cells would repeat a cell: keep each (zone, cell) once per cutout
    key = (zz.astype(np.uint64) << np.uint64(32)) | ira.astype(np.uint64)
    flat_key = key.reshape(n, 9)
    sorted_key = np.sort(flat_key, axis=1)
    first = np.ones_like(sorted_key, dtype=bool)
    first[:, 1:] = sorted_key[:, 1:] != sorted_key[:, :-1]
    owner_cell = np.repeat(np.arange(n), 9)[first.ravel()]
    cell_key = sorted_key.ravel()[first.ravel()]
    cell_zone = (cell_key >> np.uint64(32)).astype(np.int64)
    cell_ira = (cell_key & np.uint64(0xFFFFFFFF)).astype(np.int64)
    cz_dec = (cell_zone + 0.5) * cell_deg - 90.0
    cell_nra = np.maximum(1, np.floor(360.0 * np.cos(np.radians(cz_dec)) / cell_deg)).astype(np.int64)
    cell_w = 360.0 / cell_nra
    dec_lo = cell_zone * cell_deg - 90.0
    area = (
        np.radians(cell_w)
        * (np.sin(np.radians(np.minimum(dec_lo + cell_deg, 90.0))) - np.sin(np.radians(dec_lo)))
        * (180.0 / np.pi) ** 2
    )
    densities = sky.class_densities()
    total = densities.sum()
    lam = total * area
    u_count = _cell_uniforms(cell_key, seed, _STREAM_CELL_COUNT, 1)[:, 0]
    counts = stats.poisson.ppf(u_count, lam).astype(np.int64)
    obj_cell = np.repeat(np.arange(cell_key.size), counts)
    index = np.arange(obj_cell.size) - np.repeat(np.cumsum(counts) - counts, counts)
    obj_key = _mix64(cell_key[obj_cell] ^ (index.astype(np.uint64) * _GOLDEN_GAMMA))
    u = _cell_uniforms(obj_key, seed, _STREAM_CELL_OBJECTS, _N_OBJECT_DRAWS)
    obj_ra = cell_ira[obj_cell] * cell_w[obj_cell] + u[:, 0] * cell_w[obj_cell]
    sin_lo = np.sin(np.radians(dec_lo[obj_cell]))
    sin_hi = np.sin(np.radians(np.minimum(dec_lo[obj_cell] + cell_deg, 90.0)))
    obj_dec = np.degrees(np.arcsin(sin_lo + u[:, 1] * (sin_hi - sin_lo)))  # uniform in area
    owner = owner_cell[obj_cell]
    east, north = tangent_plane_offsets(ra[owner], dec[owner], obj_ra, obj_dec)
    reach = half_size_arcsec + 3.0
    inside = (np.abs(east) < reach) & (np.abs(north) < reach)
    u = u[inside]
    owner = owner[inside]
    x, y = -east[inside], north[inside]
    # class by its share of the counts, then a magnitude from that class's truncated exponential
    cls = np.searchsorted(np.cumsum(densities) / total, u[:, 2], side="right").clip(0, densities.size - 2)
    slope = np.asarray(SkyModel().class_slope, np.float64)[cls] * np.log(10.0)
    span = sky.mag_max - sky.mag_min
    mag_z = sky.mag_min + np.log1p(u[:, 3] * np.expm1(slope * span)) / slope
    is_point = np.isin(cls, _POINT_CLASSES)
    z1, z2, z3 = (stats.norm.ppf(u[:, k]) for k in (4, 5, 6))
    star = cls == 0
    g_r = np.where(star, 1.0 + 0.35 * z1, 0.75 + 0.35 * z1).clip(-0.3, 2.0)
    r_z = np.where(star, 0.7 + 0.4 * z2, 0.55 + 0.35 * z2).clip(-0.3, 1.8)
    mag = np.stack([mag_z + r_z + g_r, mag_z + r_z, mag_z], axis=1)
    fluxes = 10.0 ** (-0.4 * (mag - 22.5))
    log_re = (
        np.log10(sky.re_median_arcsec) - sky.re_slope * (mag_z - sky.mag_ref_re) + sky.re_scatter_dex * z3
    )
    sigma = np.where(is_point, 0.0, 0.6 * 10.0**log_re)
    order = np.lexsort((y, x, owner))
    return FaintSources(
        owner=owner[order].astype(np.intp),
        x=x[order],
        y=y[order],
        sigma=sigma[order],
        fluxes=fluxes[order],
        mag_z=mag_z[order],
        is_point=is_point[order],
    )
