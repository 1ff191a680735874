"""Rows of one tile: run-wide context, pieces (brick x tile), chunks of whole brick rows and the
physics that turns drawn classes into Tractor columns."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import healpy as hp
import numpy as np
import pyarrow as pa
from scipy import special, stats

from stronglens import bricks
from stronglens.schema import MASKBITS, SWEEP_SCHEMA
from stronglens.synth.counterparts import _build_counterparts, _piece_key
from stronglens.synth.footprint import _ARCSEC, TILE_DEG, Footprint, Tile, _footprint_index
from stronglens.synth.masks import _apply_circles, _Circles
from stronglens.synth.model import (
    _CLASS_POP,
    _CLASS_TYPE,
    _STREAM_CLUSTER,
    _STREAM_COUNT,
    _STREAM_RELEASE,
    P_DUP,
    P_GAL,
    P_QSO,
    P_STAR,
    S_RED,
    T_DEV,
    T_EXP,
    T_PSF,
    T_REX,
    T_SER,
    SkyModel,
    _exp10,
    _fixed_width_strings,
    _hash_uniform,
    _mag_draw,
    _normals,
    _ref_cat_strings,
    _SkyMaps,
    _Tables,
    _uniforms,
)

#: Rows generated per numpy pass (whole brick rows are grouped up to this size): large enough to
#: amortise per-call overhead, small enough to keep a worker's memory at a few hundred MB.
CHUNK_ROWS = 250_000


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
