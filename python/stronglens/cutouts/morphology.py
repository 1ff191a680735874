"""Galaxy light as components: a smooth Sersic plus features drawn from the catalogue parameters.

Tractor fits smooth profiles, but the sky behind them is not smooth: spiral arms and bars in discs,
rings (resonant in discs, collisional around bright early types), star-forming knots in blue
galaxies, dust lanes across edge-on discs, tidal tails and companions in mergers, a point-like
nucleus in AGN hosts.  These are what make hard negatives hard -- a ring or a blue arm at 1-3" looks
like an Einstein ring or an arc -- so every galaxy gets them with probabilities that are smooth
functions of its own catalogue row (TYPE, Sersic n, half-light radius, ellipticity, g-r colour,
r flux, W1-W2 colour, a close bright neighbour), not of any N2 category threshold: the N2 categories
pick galaxies by those same columns, so each category shows its feature often and the positives'
hosts get the features their parameters call for, exactly as negatives with the same parameters.

All draws come from SplitMix64 hashes of ``(galaxy_id, seed, stream)``: a galaxy looks the same in
every batch.  Each feature has a fraction of the galaxy's flux and a colour offset; the smooth
component carries the rest, so the galaxy's flux in every band equals its catalogue flux exactly
(templates are normalised to unit sum; dust lanes remove light from the smooth component and the
component is rescaled to keep its band flux).

Components come in two kinds for the renderer: *templates* (images on the padded pixel grid,
convolved with the PSF by matrix products) and *compact* Gaussians (clumps, nuclei, small
companions: convolved analytically, so sub-pixel sizes are exact).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import special

from stronglens.cutouts.render_reference import Sources, hashed_uniforms
from stronglens.lensing import FloatArray, sersic_b, sersic_total_flux

_STREAM_MORPH = 7
_STREAM_CLUMPS = 8
_N_MORPH_DRAWS = 32
_MAX_CLUMPS = 8
#: Smallest half-light radius rendered as an image; smaller ones are compact Gaussians.
MIN_TEMPLATE_RE_ARCSEC = 0.15
#: Largest share of a band's flux the features may take (the smooth body keeps the rest).
_MAX_FEATURE_SHARE = 0.75
FEATURES = ("spiral", "bar", "ring", "clumps", "dust_lane", "tidal", "companion", "agn_core")


@dataclass(frozen=True)
class Templates:
    """Images on the padded grid (``(K, M, M)`` float32, share of a unit flux per pixel: unit sum for
    features, less for Sersic bodies whose cusp or far wings lie elsewhere), the row each belongs
    to and its flux per band (``(K, 3)`` nanomaggies, negative for light a dust lane removes)."""

    images: NDArray[np.float32]
    owner: NDArray[np.intp]
    fluxes: FloatArray

    @staticmethod
    def concat(parts: list[Templates], m: int) -> Templates:
        parts = [p for p in parts if p.owner.size]
        if not parts:
            return Templates(np.zeros((0, m, m), np.float32), np.zeros(0, np.intp), np.zeros((0, 3)))
        return Templates(
            np.concatenate([p.images for p in parts]),
            np.concatenate([p.owner for p in parts]),
            np.concatenate([p.fluxes for p in parts]),
        )


@dataclass(frozen=True)
class Compact:
    """Gaussian components: frame offsets ``x, y`` (arcsec), ``sigma`` before the PSF (0 = point),
    fluxes ``(P, 3)``, and the row each belongs to."""

    owner: NDArray[np.intp]
    x: FloatArray
    y: FloatArray
    sigma: FloatArray
    fluxes: FloatArray

    @staticmethod
    def concat(parts: list[Compact]) -> Compact:
        parts = [p for p in parts if p.owner.size]
        if not parts:
            z = np.zeros(0)
            return Compact(np.zeros(0, np.intp), z, z, z, np.zeros((0, 3)))
        return Compact(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in ("owner", "x", "y", "sigma", "fluxes"))
        )


@dataclass(frozen=True)
class Neighbourhood:
    """The brightest catalogue neighbour within 6" of each galaxy (NaN where none): its frame
    offset (arcsec) and r-flux ratio to the galaxy; mergers are pairs like this."""

    x: FloatArray
    y: FloatArray
    flux_ratio: FloatArray


def grid_coordinates(n_pix: int, pad_pix: int, pixel_scale: float) -> FloatArray:
    """Frame coordinates (arcsec) of the padded grid's pixel centres along one axis."""
    return (np.arange(n_pix + 2 * pad_pix) - pad_pix - 0.5 * (n_pix - 1)) * pixel_scale


def _frame(
    coords: FloatArray, x0: FloatArray, y0: FloatArray, phi: FloatArray
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Coordinates along each source's major and minor axes on the grid, ``(K, M, M)`` float32."""
    c32 = coords.astype(np.float32)
    dx = c32[None, None, :] - x0.astype(np.float32)[:, None, None]
    dy = c32[None, :, None] - y0.astype(np.float32)[:, None, None]
    c = np.cos(phi).astype(np.float32)[:, None, None]
    s = np.sin(phi).astype(np.float32)[:, None, None]
    return c * dx + s * dy, -s * dx + c * dy


def _normalise(images: NDArray[np.float32], total: FloatArray | float = 1.0) -> NDArray[np.float32]:
    """Images scaled to sum to ``total``, with values below 1e-12 of the peak flushed to zero: float32
    denormals in the tails would make the renderer's matrix products ~10x slower."""
    images = np.where(images > 1e-12 * images.max(axis=(1, 2), keepdims=True), images, np.float32(0.0))
    sums = images.sum(axis=(1, 2), dtype=np.float64)
    scale = np.divide(np.asarray(total, np.float64), sums, out=np.zeros_like(sums), where=sums > 0)
    return images * scale.astype(np.float32)[:, None, None]


def sersic_templates(
    coords: FloatArray,
    x0: FloatArray,
    y0: FloatArray,
    r_e: FloatArray,
    n: FloatArray,
    q: FloatArray,
    phi: FloatArray,
    pixel_scale: float,
) -> tuple[NDArray[np.float32], FloatArray]:
    """Unit-flux Sersic profiles sampled at pixel centres (``(K, M, M)`` float32, flux per pixel),
    with the cusp inside half a pixel flattened; returns (images, ``core``).  The cusp's share
    ``core`` (exact: ``P(2n, b_n (r_c/r_e)^(1/n))`` minus the flattened part) is for the renderer to
    add as a point.  Each image is scaled so that its sum inside the largest ellipse that fits the
    grid equals the analytic flux there: exact fluxes despite pixel-centre sampling, and big
    galaxies still lose the wings that fall outside the grid, as the reference renderer's do."""
    if r_e.size == 0:
        m = coords.size
        return np.zeros((0, m, m), np.float32), np.zeros(0)
    xp, yp = _frame(coords, x0, y0, phi)
    r_c = 0.5 * pixel_scale / np.sqrt(q)
    b = sersic_b(n)
    radius = np.sqrt(xp * xp + (yp / q.astype(np.float32)[:, None, None]) ** 2)
    radius = np.maximum(radius, r_c.astype(np.float32)[:, None, None]) / r_e.astype(np.float32)[:, None, None]
    inv_n = (1.0 / n).astype(np.float32)[:, None, None]
    # r^(1/n) as exp(log(r) / n): numpy's float32 exp and log are SIMD, its pow is not (~5x slower)
    images = np.exp(-b.astype(np.float32)[:, None, None] * (np.exp(np.log(radius) * inv_n) - 1.0))
    i_e = 1.0 / sersic_total_flux(1.0, r_e, n, q)
    i_c = i_e * np.exp(-b * ((r_c / r_e) ** (1.0 / n) - 1.0))
    core = special.gammainc(2.0 * n, b * (r_c / r_e) ** (1.0 / n)) - i_c * np.pi * q * r_c * r_c
    core = np.clip(core, 0.0, 1.0)
    half = 0.5 * (coords[-1] - coords[0])
    edge = np.minimum(half - np.abs(x0), half - np.abs(y0))  # the ellipse R < L fits when L <= edge
    limit = np.maximum(edge, 0.5 * pixel_scale)
    inside = radius * r_e.astype(np.float32)[:, None, None] < limit.astype(np.float32)[:, None, None]
    sum_in = np.where(inside, images, 0.0).sum(axis=(1, 2), dtype=np.float64)
    analytic_in = special.gammainc(2.0 * n, b * (limit / r_e) ** (1.0 / n)) - core
    scale = np.divide(np.maximum(analytic_in, 0.0), sum_in, out=np.zeros_like(sum_in), where=sum_in > 0)
    images *= scale.astype(np.float32)[:, None, None]
    images[images < 1e-12 * images.max(axis=(1, 2), keepdims=True)] = 0.0
    return images, core


def smooth_components(src: Sources, owner: NDArray[np.intp], coords: FloatArray, pixel_scale: float):
    """Templates and compact parts of plain Tractor models (catalogue neighbours; galaxies without
    features): Sersic images plus their cusps, and points for PSF / tiny sources."""
    big = src.r_e >= MIN_TEMPLATE_RE_ARCSEC
    i = np.flatnonzero(big)
    images, core = sersic_templates(
        coords, src.x[i], src.y[i], src.r_e[i], src.n[i], src.q[i], src.phi[i], pixel_scale
    )
    templates = Templates(images, owner[i], src.fluxes[i])
    j = np.flatnonzero(~big)
    sig = 0.6 * src.r_e[j]  # tiny galaxies: Gaussian of about the same second moment
    compact = Compact(
        np.concatenate([owner[i], owner[j]]),
        np.concatenate([src.x[i], src.x[j]]),
        np.concatenate([src.y[i], src.y[j]]),
        np.concatenate([np.zeros(i.size), sig]),
        np.concatenate([src.fluxes[i] * core[:, None], src.fluxes[j]]),
    )
    return templates, compact


def _colour_factors(d_gr: FloatArray, d_rz: FloatArray) -> FloatArray:
    """Band flux factors (g, r, z) of a component ``d_gr`` bluer/redder in g-r and ``d_rz`` in r-z
    than its galaxy: ``10^(-0.4 dm_b)`` with dm = (d_gr, 0, -d_rz)."""
    dm = np.stack([d_gr, np.zeros_like(d_gr), -d_rz], axis=1)
    return 10.0 ** (-0.4 * dm)


def _clip01(v: FloatArray) -> FloatArray:
    return np.clip(np.nan_to_num(v, nan=0.0), 0.0, 1.0)


@dataclass(frozen=True)
class GalaxyLight:
    """Every component of the central galaxies of a chunk and which features each got."""

    templates: Templates
    compact: Compact
    features: dict[str, NDArray[np.bool_]]


def feature_probabilities(
    src: Sources, w1_w2_vega: FloatArray, neighbourhood: Neighbourhood
) -> dict[str, FloatArray]:
    """Probability of each feature from the catalogue row (smooth in every parameter)."""
    f = src.fluxes
    with np.errstate(divide="ignore", invalid="ignore"):
        g_r = -2.5 * np.log10(f[:, 0] / f[:, 1])
    g_r = np.nan_to_num(g_r, nan=1.0)
    flux_r = f[:, 1]
    extended = src.r_e >= MIN_TEMPLATE_RE_ARCSEC
    disc = np.isin(src.kind, ("EXP", "REX")) | ((src.kind == "SER") & (src.n < 2.5))
    early = (src.kind == "DEV") | ((src.kind == "SER") & (src.n >= 2.5))
    face_on = 1.0 - _clip01((src.e - 0.35) / 0.2)
    large = _clip01((src.r_e - 1.2) / 1.5)
    spiral = extended * face_on * np.maximum(disc * _clip01((src.r_e - 0.4) / 1.0), 0.8 * large)
    spiral = spiral * (0.5 + 0.5 * _clip01((1.4 - g_r) / 0.6))
    ring = extended * (0.6 * early * _clip01((flux_r - 2.0) / 4.0) + 0.12 * disc)
    clumps = extended * _clip01((1.0 - g_r) / 0.5) * _clip01((src.r_e - 0.25) / 0.6)
    dust = extended * _clip01((src.e - 0.35) / 0.2) * _clip01((src.r_e - 0.3) / 0.5)
    has_pair = np.isfinite(neighbourhood.flux_ratio) & (neighbourhood.flux_ratio >= 0.15)
    tidal = extended * np.where(has_pair, 0.75, 0.04)
    agn = _clip01((np.nan_to_num(w1_w2_vega, nan=-1.0) - 0.5) / 0.4)
    return {
        "spiral": 0.85 * spiral,
        "bar": 0.35 * spiral,
        "ring": np.clip(ring, 0, 0.7),
        "clumps": 0.85 * clumps,
        "dust_lane": 0.85 * dust,
        "tidal": tidal,
        "agn_core": 0.9 * agn,
    }


def galaxy_light(
    galaxy_id: NDArray[np.int64],
    src: Sources,
    w1_w2_vega: FloatArray,
    neighbourhood: Neighbourhood,
    coords: FloatArray,
    pixel_scale: float,
    seed: int,
) -> GalaxyLight:
    """The central galaxies of a chunk (row ``i`` = image ``i``) as components, with features."""
    count = galaxy_id.size
    rows = np.arange(count)
    u = hashed_uniforms(galaxy_id, seed, _STREAM_MORPH, _N_MORPH_DRAWS)
    prob = feature_probabilities(src, w1_w2_vega, neighbourhood)
    has = {name: u[:, k] < p for k, (name, p) in enumerate(prob.items())}
    extended = src.r_e >= MIN_TEMPLATE_RE_ARCSEC
    has["companion"] = has["tidal"] & ~(
        np.isfinite(neighbourhood.flux_ratio) & (neighbourhood.flux_ratio >= 0.15)
    )
    f = src.fluxes
    # deprojected (disc-plane) coordinates of each galaxy
    qd = np.maximum(src.q, 0.05)
    templates: list[Templates] = []
    compact: list[Compact] = []
    share = np.zeros((count, 3))

    def add_template(idx, images, frac, d_gr, d_rz):
        fl = f[idx] * frac[:, None] * _colour_factors(d_gr, d_rz)
        np.add.at(share, idx, fl / np.where(f[idx] != 0, f[idx], 1.0))
        templates.append(Templates(_normalise(images), idx, fl))

    def add_compact(idx, x, y, sigma, fl):
        np.add.at(share, idx, fl / np.where(f[idx] != 0, f[idx], 1.0))  # knots repeat rows
        compact.append(Compact(idx, x, y, sigma, fl))

    def polar(idx):
        xp, yp = _frame(coords, src.x[idx], src.y[idx], src.phi[idx])
        yd = yp / qd[idx].astype(np.float32)[:, None, None]
        return xp, yp, np.sqrt(xp * xp + yd * yd), np.arctan2(yd, xp)

    r_e = np.maximum(src.r_e, MIN_TEMPLATE_RE_ARCSEC)
    # spiral arms: logarithmic spirals on an exponential disc, bluer than the body
    i = np.flatnonzero(has["spiral"])
    if i.size:
        _, _, rad, theta = polar(i)
        m_arms = np.where(u[i, 8] < 0.8, 2.0, 3.0).astype(np.float32)[:, None, None]
        pitch = np.radians(12.0 + 18.0 * u[i, 9]).astype(np.float32)[:, None, None]
        rs = (1.1 * r_e[i]).astype(np.float32)[:, None, None]
        arg = (
            m_arms * (theta - np.log(np.maximum(rad, 1e-3) / rs) / np.tan(pitch))
            + np.float32(2 * np.pi) * u[i, 10].astype(np.float32)[:, None, None]
        )
        arms = (
            np.maximum(np.cos(arg), 0.0) ** 4 * np.exp(-rad / rs) * (1.0 - np.exp(-((rad / (0.5 * rs)) ** 2)))
        )
        add_template(i, arms, 0.2 + 0.25 * u[i, 11], np.full(i.size, -0.35), np.full(i.size, -0.2))
    # bars: an elongated Gaussian in the disc plane, a little redder
    i = np.flatnonzero(has["bar"] & has["spiral"])
    if i.size:
        xp, yp, _, _ = polar(i)
        yd = yp / qd[i].astype(np.float32)[:, None, None]
        ang = (np.pi * u[i, 12]).astype(np.float32)[:, None, None]
        xb = np.cos(ang) * xp + np.sin(ang) * yd
        yb = -np.sin(ang) * xp + np.cos(ang) * yd
        a = (0.9 * r_e[i]).astype(np.float32)[:, None, None]
        bar = np.exp(-0.5 * ((xb / a) ** 2 + (yb / (0.25 * a)) ** 2))
        add_template(i, bar, 0.08 + 0.08 * u[i, 13], np.full(i.size, 0.1), np.full(i.size, 0.05))
    # rings: a Gaussian ring of radius 1.5-4" (lens-like scales), lopsided, blue
    i = np.flatnonzero(has["ring"])
    if i.size:
        _, _, rad, theta = polar(i)
        radius = np.maximum(1.2 + 1.0 * u[i, 14], 0.0) * np.maximum(r_e[i], 1.2)
        radius = np.minimum(radius, 5.0).astype(np.float32)[:, None, None]
        width = (0.06 + 0.06 * u[i, 15]).astype(np.float32)[:, None, None] * radius
        lop = (0.8 * u[i, 16]).astype(np.float32)[:, None, None]
        ring = np.exp(-0.5 * ((rad - radius) / width) ** 2) * (
            1.0 + lop * np.cos(theta - np.float32(2 * np.pi) * u[i, 17].astype(np.float32)[:, None, None])
        )
        add_template(i, ring, 0.25 + 0.2 * u[i, 18], np.full(i.size, -0.5), np.full(i.size, -0.3))
    # tidal tails: a fading curved stream leaving the galaxy, away from its companion when it has one
    i = np.flatnonzero(has["tidal"])
    if i.size:
        dx = np.nan_to_num(neighbourhood.x[i], nan=0.0) - src.x[i]
        dy = np.nan_to_num(neighbourhood.y[i], nan=0.0) - src.y[i]
        base = np.where(np.hypot(dx, dy) > 0, np.arctan2(dy, dx) + np.pi, 2 * np.pi * u[i, 19])
        c32 = coords.astype(np.float32)
        ddx = c32[None, None, :] - src.x[i].astype(np.float32)[:, None, None]
        ddy = c32[None, :, None] - src.y[i].astype(np.float32)[:, None, None]
        rad = np.sqrt(ddx * ddx + ddy * ddy)
        dtheta = np.mod(np.arctan2(ddy, ddx) - base.astype(np.float32)[:, None, None], np.float32(2 * np.pi))
        sense = np.where(u[i, 20] < 0.5, -1.0, 1.0).astype(np.float32)[:, None, None]
        dtheta = np.where(sense > 0, dtheta, np.float32(2 * np.pi) - dtheta)
        r0 = (1.5 * r_e[i] + 1.0).astype(np.float32)[:, None, None]
        track = r0 * np.exp(np.float32(0.45) * dtheta)
        tail = np.exp(-0.5 * ((rad - track) / np.float32(0.45)) ** 2) * np.exp(-dtheta / np.float32(1.2))
        tail = np.where(dtheta < np.float32(3.0), tail, 0.0).astype(np.float32)
        add_template(i, tail, 0.06 + 0.1 * u[i, 21], np.zeros(i.size), np.zeros(i.size))
    # companion: a small galaxy 2-5" away for tidal galaxies that have no catalogue partner
    i = np.flatnonzero(has["companion"])
    if i.size:
        sep = 2.0 + 3.0 * u[i, 22]
        ang = 2 * np.pi * u[i, 23]
        fl = f[i] * (0.08 + 0.22 * u[i, 24])[:, None]
        add_compact(i, src.x[i] + sep * np.cos(ang), src.y[i] + sep * np.sin(ang), 0.25 + 0.3 * u[i, 25], fl)
    # AGN nucleus: a point source at the centre, bluer than the host
    i = np.flatnonzero(has["agn_core"])
    if i.size:
        fl = (
            f[i]
            * (0.1 + 0.25 * u[i, 26])[:, None]
            * _colour_factors(np.full(i.size, -0.3), np.full(i.size, -0.1))
        )
        add_compact(i, src.x[i], src.y[i], np.zeros(i.size), fl)
    # star-forming knots: compact blue Gaussians scattered over the disc
    i = np.flatnonzero(has["clumps"])
    if i.size:
        v = hashed_uniforms(galaxy_id[i], seed, _STREAM_CLUMPS, 3 * _MAX_CLUMPS + 2)
        n_clumps = (3 + np.floor(6 * v[:, -1])).astype(int)
        slot = np.arange(_MAX_CLUMPS)[None, :] < n_clumps[:, None]
        w = v[:, :_MAX_CLUMPS] * slot
        w = w / w.sum(axis=1, keepdims=True)
        total = 0.15 + 0.25 * v[:, -2]
        rad = r_e[i, None] * np.sqrt(-2.0 * np.log(v[:, _MAX_CLUMPS : 2 * _MAX_CLUMPS])) * 0.8
        ang = 2 * np.pi * v[:, 2 * _MAX_CLUMPS : 3 * _MAX_CLUMPS]
        xd, yd = rad * np.cos(ang), rad * np.sin(ang) * qd[i, None]
        c, s = np.cos(src.phi[i])[:, None], np.sin(src.phi[i])[:, None]
        cx = src.x[i, None] + c * xd - s * yd
        cy = src.y[i, None] + s * xd + c * yd
        k_row, k_slot = np.nonzero(slot)
        colour = _colour_factors(np.full(k_row.size, -0.45), np.full(k_row.size, -0.3))
        fl = f[i[k_row]] * (total[k_row] * w[k_row, k_slot])[:, None] * colour
        add_compact(i[k_row], cx[k_row, k_slot], cy[k_row, k_slot], 0.08 + 0.12 * v[k_row, k_slot], fl)
    # the smooth body carries the rest of each band's flux (features capped at 75%)
    over = np.max(share, axis=1) / _MAX_FEATURE_SHARE
    scale = np.where(over > 1.0, 1.0 / np.maximum(over, 1e-12), 1.0)
    templates = [Templates(t.images, t.owner, t.fluxes * scale[t.owner, None]) for t in templates]
    compact = [Compact(c.owner, c.x, c.y, c.sigma, c.fluxes * scale[c.owner, None]) for c in compact]
    body_flux = f * (1.0 - share * scale[:, None])
    body_tpl, body_cmp = smooth_components(
        Sources(**{**{k: getattr(src, k) for k in src.__dataclass_fields__}, "fluxes": body_flux}),
        rows,
        coords,
        pixel_scale,
    )
    # dust lanes: dim the body along the major axis (more in g than z), keeping its band flux
    i = np.flatnonzero(has["dust_lane"] & extended)
    if i.size:
        _, yp, _, _ = polar(i)
        width = (0.25 * src.q[i] * r_e[i] + 0.05).astype(np.float32)[:, None, None]
        offset = ((u[i, 27] - 0.5) * 0.6).astype(np.float32)[:, None, None] * width
        lane = np.exp(-0.5 * ((yp - offset) / width) ** 2)
        strength = (0.5 + 0.5 * u[i, 28])[:, None] * np.array([0.9, 0.7, 0.45])[None, :]
        pos = np.searchsorted(body_tpl.owner, i)  # body templates are in row order
        body = body_tpl.images[pos]
        dimmed = body * lane
        s_l = dimmed.sum(axis=(1, 2), dtype=np.float64) / np.maximum(
            body.sum(axis=(1, 2), dtype=np.float64), 1e-30
        )
        keep = 1.0 / (1.0 - strength * s_l[:, None])
        body_fl = body_tpl.fluxes.copy()
        lane_fl = -body_fl[pos] * keep * strength  # on the body's own image times the lane profile
        body_fl[pos] = body_fl[pos] * keep
        body_tpl = Templates(body_tpl.images, body_tpl.owner, body_fl)
        templates.append(Templates(dimmed, i, lane_fl))
    m = coords.size
    return GalaxyLight(
        Templates.concat([body_tpl, *templates], m),
        Compact.concat([body_cmp, *compact]),
        {name: has.get(name, np.zeros(count, bool)) for name in FEATURES},
    )
