"""The ``synthetic`` cutout source: grz cutouts of the embedded sky, fast and with real-looking light.

Each cutout is what the Legacy Survey viewer would return for a galaxy of the synthetic sky:
``(101, 101, 3)`` float32, channels g, r, z, nanomaggies per pixel at 0.262"/pixel, oriented as the
FITS cutout's data array (axis 0 = FITS y, North up the rows; axis 1 = FITS x, West along the
columns).  It holds

* the central galaxy as components (:mod:`stronglens.cutouts.morphology`): its Tractor profile plus
  the spiral arms, bars, rings, knots, dust lanes, tidal tails, companions and AGN nuclei its
  catalogue row calls for, with exactly its catalogue flux in every band;
* its catalogue neighbours (``neighbours`` table, smooth Tractor models) and the faint objects below
  the sweep's limit around its position (:mod:`stronglens.cutouts.faint`);
* for positives, the arcs of an SIE + shear lensing a clumpy source (:mod:`stronglens.cutouts.lenses`);
* a Gaussian PSF of FWHM ``psfsize_<band>`` and Gaussian sky noise from ``psfdepth`` (as in
  :mod:`stronglens.cutouts.render_reference`: per-pixel sigma ``sqrt(sum P^2 / psfdepth)``).

Why it is fast (~10x the exact reference renderer): every extended component is sampled once at
pixel centres on a grid padded by ``pad_pix`` (cusps inside half a pixel go to an exact point
source), the images of a cutout are summed per band *before* the PSF, and the PSF is two matrix
products per band (``A S A^T`` with the pixel-integrated Gaussian ``A``); compact components
(points, knots, faint objects) are pixel-integrated Gaussians placed by a rank-``K`` product.
Chunks run in ``workers`` threads (numpy releases the GIL in this work).

Randomness: every draw is a hash of ``(galaxy_id, seed, stream)`` (or of the sky cell, for faint
objects), and the noise of a cutout comes from its own generator seeded by ``(seed, galaxy_id)``;
a cutout depends only on its row, its neighbours and ``seed``, never on batch order or chunking.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute
from numpy.typing import NDArray
from scipy import special
from threadpoolctl import threadpool_limits

from stronglens import lensing
from stronglens.cutouts.faint import FaintSky, faint_sources
from stronglens.cutouts.lenses import WINDOW_PIX, LensModel, draw_visible_lenses, render_arcs, window_class
from stronglens.cutouts.morphology import (
    FEATURES,
    Compact,
    Neighbourhood,
    Templates,
    galaxy_light,
    grid_coordinates,
    smooth_components,
)
from stronglens.cutouts.render_reference import (
    FLUX_COLUMNS,
    NEIGHBOUR_COLUMNS,
    SHAPE_COLUMNS,
    column,
    floats,
    galaxy_ids,
    read_neighbours,
    read_sources,
)
from stronglens.lensing import FloatArray, PixelGrid

BANDS = ("g", "r", "z")
GALAXY_COLUMNS = (
    "galaxy_id",
    "ra",
    "dec",
    *SHAPE_COLUMNS,
    *FLUX_COLUMNS,
    *(f"psfsize_{b}" for b in BANDS),
    *(f"psfdepth_{b}" for b in BANDS),
)
#: Used when present: WISE fluxes give the W1 - W2 colour that marks AGN hosts.
OPTIONAL_COLUMNS = ("flux_w1", "flux_w2")
__all__ = ["BANDS", "GALAXY_COLUMNS", "NEIGHBOUR_COLUMNS", "RenderConfig", "RenderedBatch", "render_batch"]
#: Annulus (pixels from the centre) where arcs live: the lens_truth arc flux fraction is measured here.
ARC_ANNULUS_PIX = (4.0, 16.0)
#: AB minus Vega for W1 and W2 (DOMAIN.md): W1-W2 (Vega) = W1-W2 (AB) + 3.339 - 2.699.
_W1_W2_AB_TO_VEGA = 3.339 - 2.699
#: Pixel weights below this are set to 0 (denormal float32 arithmetic is very slow).
_TINY = 1e-12
#: Seed word of the noise generators (see :func:`_noise`).
_NOISE_STREAM = 13
#: Width (pixels) over which compact components are integrated (see :func:`_place_compact`).
_COMPACT_WINDOW = 49
#: A catalogue neighbour this close (arcsec) can be a merger partner (tidal features).
_PAIR_RADIUS_ARCSEC = 6.0


@dataclass(frozen=True)
class RenderConfig:
    """How :func:`render_batch` renders.

    ``pad_pix``: margin of the pre-PSF grid (>= 3.5 PSF sigma for seeing up to ~1.9").
    ``morphology`` / ``faint_neighbours``: off gives smooth Tractor models on empty sky (tests).
    ``add_noise``: off for tests of the noiseless model.  ``chunk_size`` cutouts per numpy pass
    (~1 MB each), ``workers`` threads.  ``positive_column``: boolean column marking positives.
    """

    n_pix: int = 101
    pixel_scale: float = lensing.DESI_PIXEL_SCALE
    pad_pix: int = 10
    add_noise: bool = True
    morphology: bool = True
    faint_neighbours: bool = True
    faint: FaintSky = field(default_factory=FaintSky)
    lens: LensModel = field(default_factory=LensModel)
    chunk_size: int = 64
    workers: int = 2
    positive_column: str = "is_lens"

    def __post_init__(self) -> None:
        if self.n_pix < 1 or self.pad_pix < 0 or self.chunk_size < 1 or self.workers < 1:
            raise ValueError(f"invalid RenderConfig {self}")

    @property
    def grid(self) -> PixelGrid:
        return PixelGrid(n_pix=self.n_pix, pixel_scale=self.pixel_scale, supersample=1, pad_pix=self.pad_pix)


@dataclass(frozen=True)
class RenderedBatch:
    """``cutouts`` ``(N, n, n, 3)`` float32 (NaN where the row failed) and ``metadata``: one row per
    input row, in input order: ``status``/``error``, noise sigma per band, faint-neighbour counts,
    the morphology features drawn, and for positives the lens truth."""

    cutouts: NDArray[np.float32]
    metadata: pa.Table


@dataclass
class _Inputs:
    """Validated arrays of one batch (see :func:`render_batch`)."""

    galaxy_id: NDArray[np.int64]
    ra: FloatArray
    dec: FloatArray
    is_lens: NDArray[np.bool_]
    main: object
    psf_sigma: FloatArray
    psfdepth: FloatArray
    w1_w2: FloatArray
    nb: object
    nb_owner: NDArray[np.intp]
    neighbourhood: Neighbourhood
    error: NDArray[np.object_]


def _psf_matrices(
    sigma: FloatArray, n: int, pad: int, h: float
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """``A[c, b, i, j]``: share of pre-PSF pixel ``j`` (padded grid, flux at its centre) landing in
    output pixel ``i``, a pixel-integrated Gaussian of sigma ``sigma[c, b]``; Toeplitz in ``i - j``.
    Returns ``A`` and its transpose, both gathered contiguous (BLAS needs contiguous operands)."""
    m = n + 2 * pad
    d = np.arange(pad - (m - 1), pad + n)  # i - j + pad
    lo = (d - 0.5)[None, None, :] * h / sigma[..., None]
    table = lensing._gauss_interval(lo, lo + h / sigma[..., None])
    table[table < _TINY] = 0.0  # float32 denormals make BLAS ~10x slower; 1e-12 of a star is nothing
    table = table.astype(np.float32)
    i = np.arange(n)[:, None]
    j = np.arange(m)[None, :]
    return table[..., i - j + pad - d[0]], table[..., i.T - j.T + pad - d[0]]


def _place_compact(compact: Compact, n_images: int, psf_sigma: FloatArray, grid: PixelGrid) -> FloatArray:
    """Images ``(C, 3, n, n)`` of Gaussian components, pixel-integrated after the PSF: each is the
    outer product of its y and x profiles (CDF differences at the pixel edges, over a window of
    :data:`_COMPACT_WINDOW` pixels around it, beyond which a Gaussian of sigma <= 4 px has < 1e-12),
    summed per image as one rank-K matrix product ``Y^T X``."""
    n = grid.n_pix
    if compact.owner.size == 0:
        return np.zeros((n_images, 3, n, n), np.float32)
    order = np.argsort(compact.owner, kind="stable")
    owner = compact.owner[order]
    rank = np.arange(owner.size) - np.searchsorted(owner, owner, side="left")
    k_max = int(rank.max()) + 1
    sig = np.sqrt(psf_sigma[owner] ** 2 + compact.sigma[order, None] ** 2) / grid.pixel_scale  # (P, 3) px
    w = min(_COMPACT_WINDOW, n)
    ys_t = np.zeros((n_images, 3, n, k_max), np.float32)  # Y^T, built transposed
    xs = np.zeros((n_images, 3, k_max, n), np.float32)
    for transposed, pos, weight in (
        (True, compact.y[order], compact.fluxes[order]),
        (False, compact.x[order], np.ones((owner.size, 3))),
    ):
        centre = pos / grid.pixel_scale + grid.centre  # fractional pixel index
        first = np.clip(np.rint(centre).astype(np.intp) - w // 2, 0, n - w)
        edges = (first[:, None] + np.arange(w + 1)[None, :] - 0.5 - centre[:, None]).astype(np.float32)
        cdf = special.ndtr(edges[:, None, :] / sig[:, :, None].astype(np.float32))  # (P, 3, w + 1)
        prof = np.diff(cdf, axis=-1) * weight[:, :, None].astype(np.float32)
        prof[np.abs(prof) < _TINY] = 0.0
        cols = first[:, None] + np.arange(w)[None, :]
        bands = np.arange(3)[None, :, None]
        if transposed:
            ys_t[owner[:, None, None], bands, cols[:, None, :], rank[:, None, None]] = prof
        else:
            xs[owner[:, None, None], bands, rank[:, None, None], cols[:, None, :]] = prof
    return np.matmul(ys_t, xs)


def _template_canvas(templates: Templates, n_images: int, m: int) -> NDArray[np.float32]:
    """Pre-PSF images ``(C, 3, m, m)``: ``sum_k flux_kb * image_k`` per image, as one batched product
    ``F (3 x K) @ T (K x m^2)`` over each image's template slots (in template order)."""
    if templates.owner.size == 0:
        return np.zeros((n_images, 3, m, m), np.float32)
    order = np.argsort(templates.owner, kind="stable")
    owner = templates.owner[order]
    rank = np.arange(owner.size) - np.searchsorted(owner, owner, side="left")
    k_max = int(rank.max()) + 1
    slots = np.zeros((n_images, k_max, m * m), np.float32)
    slots[owner, rank] = templates.images[order].reshape(owner.size, m * m)
    weights = np.zeros((n_images, 3, k_max), np.float32)
    weights[owner, :, rank] = templates.fluxes[order]
    return np.matmul(weights, slots).reshape(n_images, 3, m, m)


def render_batch(
    table: pa.Table | pd.DataFrame,
    neighbours: pa.Table | pd.DataFrame | None = None,
    *,
    seed: int,
    config: RenderConfig | None = None,
) -> RenderedBatch:
    """Render one synthetic cutout per row of ``table`` (columns :data:`GALAXY_COLUMNS` and
    ``config.positive_column``, optionally :data:`OPTIONAL_COLUMNS`); ``galaxy_id`` unique, >= 0.

    ``neighbours`` (columns :data:`NEIGHBOUR_COLUMNS`): catalogue sources drawn in the cutout of
    galaxy ``galaxy_id`` at tangent-plane offsets East / North (arcsec).  An invalid galaxy or
    neighbour row fails only its own cutout (NaN pixels, ``status = failed``, the reason in
    ``error``).  Deterministic in ``(row, its neighbours, seed)``.
    """
    config = config or RenderConfig()
    inputs = _validate(table, neighbours, config)
    count = inputs.galaxy_id.size
    n = config.n_pix
    cutouts = np.empty((count, n, n, 3), dtype=np.float32)
    cutouts[~np.equal(inputs.error, None)] = np.nan
    noise_sigma = np.full((count, 3), np.nan)
    n_faint = np.zeros(count, np.int64)
    n_faint_detected = np.zeros(count, np.int64)
    features = {name: np.zeros(count, bool) for name in FEATURES}
    pos_all = np.flatnonzero(inputs.is_lens)
    host_mag_z = 22.5 - 2.5 * np.log10(np.clip(inputs.main.fluxes[pos_all, 2], 1e-3, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        pixel_sigma = _pixel_sigma(inputs.psf_sigma[pos_all], inputs.psfdepth[pos_all], config.grid)
    lens = draw_visible_lenses(
        inputs.galaxy_id[pos_all],
        host_mag_z,
        inputs.main.q[pos_all],
        inputs.main.phi[pos_all],
        inputs.main.e[pos_all],
        inputs.psf_sigma[pos_all],
        pixel_sigma,
        seed,
        grid_coordinates(n, config.pad_pix, config.pixel_scale),
        config.pixel_scale,
        config.lens,
    )
    lens_row = np.full(count, -1)
    lens_row[pos_all] = np.arange(pos_all.size)
    truth = {k: np.full(count, np.nan) for k in ("magnification", "arc_snr", "arc_annulus_fraction")}

    rows = np.flatnonzero(np.equal(inputs.error, None))
    chunks = [rows[i : i + config.chunk_size] for i in range(0, rows.size, config.chunk_size)]

    def work(chunk: NDArray[np.intp]) -> None:
        out = _render_chunk(chunk, inputs, lens, lens_row, seed, config)
        cutouts[chunk] = out["images"]
        noise_sigma[chunk] = out["sigma"]
        n_faint[chunk] = out["n_faint"]
        n_faint_detected[chunk] = out["n_faint_detected"]
        for name in FEATURES:
            features[name][chunk] = out["features"][name]
        for k in truth:
            truth[k][chunk] = out[k]

    with threadpool_limits(limits=1, user_api="blas"):
        if config.workers == 1 or len(chunks) <= 1:
            for chunk in chunks:
                work(chunk)
        else:
            with ThreadPoolExecutor(max_workers=config.workers) as pool:
                list(pool.map(work, chunks))
    meta = _metadata(inputs, noise_sigma, n_faint, n_faint_detected, features, lens, lens_row, truth)
    return RenderedBatch(cutouts, meta)


def _pixel_sigma(psf_sigma: FloatArray, psfdepth: FloatArray, grid: PixelGrid) -> FloatArray:
    """Per-pixel sky noise (nanomaggies) of a cutout whose point sources have ``psfdepth``
    (1/flux variance): the depth spread over the PSF's noise-equivalent area."""
    return np.sqrt(lensing.psf_norm_squared(psf_sigma, grid) / psfdepth)


def _noise(galaxy_id: NDArray[np.int64], seed: int, shape: tuple[int, ...]) -> NDArray[np.float32]:
    """Standard normal noise ``(C, *shape)``: each cutout's from its own generator seeded by
    ``(seed, galaxy_id)``, so it never depends on the batch.  One generator per image (a loop over
    the images of a chunk, not over catalogue rows) is ~0.7 ms a cutout; hashing every pixel
    (as the reference renderer does) costs ~7 ms, and a shared table of normals gathered at hashed
    offsets ~1-2.5 ms (cache misses).
    """
    out = np.empty((galaxy_id.size, *shape), np.float32)
    for k, gid in enumerate(galaxy_id):
        np.random.default_rng([seed, int(gid), _NOISE_STREAM]).standard_normal(
            shape, dtype=np.float32, out=out[k]
        )
    return out


def _render_chunk(
    chunk: NDArray[np.intp],
    inputs: _Inputs,
    lens: dict[str, FloatArray],
    lens_row: NDArray[np.intp],
    seed: int,
    config: RenderConfig,
) -> dict:
    grid = config.grid
    n, pad, h = config.n_pix, config.pad_pix, config.pixel_scale
    coords = grid_coordinates(n, pad, h)
    m = coords.size
    c = chunk.size
    psf_sigma = inputs.psf_sigma[chunk]
    main = inputs.main.take(chunk)
    local = np.arange(c)
    if config.morphology:
        hood = Neighbourhood(*(getattr(inputs.neighbourhood, f)[chunk] for f in ("x", "y", "flux_ratio")))
        light = galaxy_light(inputs.galaxy_id[chunk], main, inputs.w1_w2[chunk], hood, coords, h, seed)
        templates, compact, feats = light.templates, light.compact, light.features
    else:
        templates, compact = smooth_components(main, local, coords, h)
        feats = {name: np.zeros(c, bool) for name in FEATURES}
    lo, hi = np.searchsorted(inputs.nb_owner, [chunk[0], chunk[-1] + 1])
    in_chunk = lo + np.flatnonzero(np.isin(inputs.nb_owner[lo:hi], chunk))
    nb_tpl, nb_cmp = smooth_components(
        inputs.nb.take(in_chunk), np.searchsorted(chunk, inputs.nb_owner[in_chunk]), coords, h
    )
    parts = [compact, nb_cmp]
    n_faint = np.zeros(c, np.int64)
    n_detected = np.zeros(c, np.int64)
    if config.faint_neighbours:
        half = 0.5 * n * h
        faint = faint_sources(inputs.ra[chunk], inputs.dec[chunk], half, seed, config.faint)
        parts.append(Compact(faint.owner, faint.x, faint.y, faint.sigma, faint.fluxes))
        inside = (np.abs(faint.x) < half) & (np.abs(faint.y) < half)
        n_faint = np.bincount(faint.owner[inside], minlength=c)
        depth_mag = 22.5 - 2.5 * np.log10(5.0 / np.sqrt(inputs.psfdepth[chunk, 2]))
        detected = inside & (faint.mag_z < depth_mag[faint.owner])
        n_detected = np.bincount(faint.owner[detected], minlength=c)
    canvas = _template_canvas(Templates.concat([templates, nb_tpl], m), c, m)
    positive = np.flatnonzero(inputs.is_lens[chunk])
    truth = {k: np.full(c, np.nan) for k in ("magnification", "arc_snr", "arc_annulus_fraction")}
    arc_groups = []
    if positive.size:
        sel = lens_row[chunk[positive]]
        chunk_lens = {k: v[sel] for k, v in lens.items()}
        size_class = window_class(chunk_lens, h)
        for cls in np.unique(size_class):
            members = np.flatnonzero(size_class == cls)
            arcs = render_arcs(
                inputs.galaxy_id[chunk[positive[members]]],
                {k: v[members] for k, v in chunk_lens.items()},
                seed,
                coords,
                h,
                config.lens,
                window_pix=WINDOW_PIX[cls],
            )
            window = slice(arcs.first, arcs.first + arcs.images.shape[-1])
            canvas[positive[members], :, window, window] += arcs.images.astype(np.float32)
            truth["magnification"][positive[members]] = arcs.magnification
            arc_groups.append((positive[members], arcs, window))
    a, a_t = _psf_matrices(psf_sigma, n, pad, h)
    images = np.matmul(np.matmul(a, canvas), a_t)
    images += _place_compact(Compact.concat(parts), c, psf_sigma, grid)
    sigma = _pixel_sigma(psf_sigma, inputs.psfdepth[chunk], grid)
    yy, xx = np.indices((n, n)) - 0.5 * (n - 1)
    rr = np.hypot(yy, xx)
    ring = (rr >= ARC_ANNULUS_PIX[0]) & (rr < ARC_ANNULUS_PIX[1])
    for members, arcs, window in arc_groups:
        aw = np.ascontiguousarray(a[members][..., window])
        aw_t = np.ascontiguousarray(a_t[members][..., window, :])
        arc_img = np.matmul(np.matmul(aw, arcs.images.astype(np.float32)), aw_t)
        truth["arc_snr"][members] = np.sqrt(
            np.sum((arc_img / sigma[members, :, None, None]) ** 2, axis=(1, 2, 3), dtype=np.float64)
        )
        arc_in = arc_img[:, 1][:, ring].sum(axis=1, dtype=np.float64)
        all_in = images[members, 1][:, ring].sum(axis=1, dtype=np.float64)
        truth["arc_annulus_fraction"][members] = arc_in / np.where(all_in > 0, all_in, np.nan)
    images = images.transpose(0, 2, 3, 1)
    if config.add_noise:
        images += _noise(inputs.galaxy_id[chunk], seed, images.shape[1:]) * sigma[:, None, None, :].astype(
            np.float32
        )
    return {
        "images": images,
        "sigma": sigma,
        "n_faint": n_faint,
        "n_faint_detected": n_detected,
        "features": feats,
        **truth,
    }


def _validate(table: pa.Table | pd.DataFrame, neighbours, config: RenderConfig) -> _Inputs:
    """Columns to arrays; per-row problems become errors naming the row and column."""
    what = "galaxy table"
    required = (*GALAXY_COLUMNS, config.positive_column)
    gid = galaxy_ids(column(table, "galaxy_id", what, required), what)
    if np.unique(gid).size != gid.size:
        ids, counts = np.unique(gid, return_counts=True)
        raise ValueError(f"{what}: galaxy_id must be unique; repeated: {ids[counts > 1][:10].tolist()}")
    count = gid.size
    flags = column(table, config.positive_column, what, required)
    if pd.isna(flags).any():
        raise ValueError(f"{what}: column {config.positive_column!r} has nulls; mark every row lens or not")

    def describe(i: int) -> str:
        return f"{what} row {i} (galaxy_id {gid[i]})"

    zeros = np.zeros(count)
    main = read_sources(table, what, required, zeros, zeros, describe)
    error = main.error.copy()
    ra = floats(table, "ra", what, required)
    dec = floats(table, "dec", what, required)
    psfsize = np.stack([floats(table, f"psfsize_{b}", what, required) for b in BANDS], axis=1)
    psfdepth = np.stack([floats(table, f"psfdepth_{b}", what, required) for b in BANDS], axis=1)
    min_fwhm = lensing.FWHM_PER_SIGMA * config.pixel_scale / np.sqrt(12.0)
    checks = [
        (~(np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)), "ra, dec = {ra}, {dec} must be finite"),
        (
            ~np.all(psfsize > min_fwhm, axis=1),
            f"psfsize_g/r/z = {{psfsize}} must exceed {min_fwhm:.3f} arcsec "
            "(0 or NaN means no coverage in that band: drop the row or fix the sweep)",
        ),
        (
            ~(np.all(psfdepth > 0.0, axis=1) & np.all(np.isfinite(psfdepth), axis=1)),
            "psfdepth_g/r/z = {psfdepth} must be finite and > 0 (1/nanomaggy^2)",
        ),
    ]
    for bad, message in checks:
        for i in np.flatnonzero(bad & np.equal(error, None)):
            error[i] = f"{describe(int(i))}: " + message.format(
                ra=ra[i], dec=dec[i], psfsize=psfsize[i].tolist(), psfdepth=psfdepth[i].tolist()
            )
    ok = np.equal(error, None)
    psf_sigma = np.ones((count, 3))
    psf_sigma[ok] = lensing.gaussian_psf_sigma(psfsize[ok], config.pixel_scale)
    names = table.column_names if isinstance(table, pa.Table) else [str(c_) for c_ in table.columns]
    w1_w2 = np.full(count, np.nan)
    if all(c_ in names for c_ in OPTIONAL_COLUMNS):
        w1 = floats(table, "flux_w1", what, required)
        w2 = floats(table, "flux_w2", what, required)
        with np.errstate(divide="ignore", invalid="ignore"):
            w1_w2 = -2.5 * np.log10(w1 / w2) + _W1_W2_AB_TO_VEGA
    nb, nb_owner = read_neighbours(neighbours, gid)
    for j in np.flatnonzero(~np.equal(nb.error, None)):
        if error[nb_owner[j]] is None:
            error[nb_owner[j]] = f"neighbour of {describe(int(nb_owner[j]))}: {nb.error[j]}"
    return _Inputs(
        galaxy_id=gid,
        ra=np.where(ok, ra, 0.0),
        dec=np.where(ok, dec, 0.0),
        is_lens=flags.astype(bool),
        main=main,
        psf_sigma=psf_sigma,
        psfdepth=np.where(ok[:, None], psfdepth, 1.0),
        w1_w2=w1_w2,
        nb=nb,
        nb_owner=nb_owner,
        neighbourhood=_neighbourhood(nb, nb_owner, main.fluxes[:, 1], count),
        error=error,
    )


def _neighbourhood(nb, nb_owner: NDArray[np.intp], flux_r: FloatArray, count: int) -> Neighbourhood:
    """The brightest catalogue neighbour within :data:`_PAIR_RADIUS_ARCSEC` of each galaxy."""
    x = np.full(count, np.nan)
    y = np.full(count, np.nan)
    ratio = np.full(count, np.nan)
    close = np.flatnonzero((np.hypot(nb.x, nb.y) < _PAIR_RADIUS_ARCSEC) & np.equal(nb.error, None))
    if close.size:
        order = close[np.lexsort((-nb.fluxes[close, 1], nb_owner[close]))]
        first = order[np.r_[True, nb_owner[order][1:] != nb_owner[order][:-1]]]
        own = nb_owner[first]
        x[own] = nb.x[first]
        y[own] = nb.y[first]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio[own] = nb.fluxes[first, 1] / flux_r[own]
    return Neighbourhood(x, y, ratio)


def _metadata(
    inputs: _Inputs,
    noise_sigma: FloatArray,
    n_faint: NDArray[np.int64],
    n_faint_detected: NDArray[np.int64],
    features: dict[str, NDArray[np.bool_]],
    lens: dict[str, FloatArray],
    lens_row: NDArray[np.intp],
    truth: dict[str, FloatArray],
) -> pa.Table:
    """Per-row status, noise, neighbours, features and, for positives, the lens in sky conventions."""
    ok = np.equal(inputs.error, None)
    lensed = inputs.is_lens & ok
    idx = np.maximum(lens_row, 0)

    def lens_column(values: FloatArray) -> pa.Array:
        full = values[idx] if values.shape[0] != lensed.shape[0] else values
        return pa.array(np.where(lensed, full, np.nan), mask=~lensed, type=pa.float64())

    def sky_pa_deg(phi: FloatArray) -> FloatArray:
        return np.mod(np.degrees(phi - 0.5 * np.pi), 180.0)

    empty = np.zeros(0)
    lv = {k: (v if v.size else empty) for k, v in lens.items()}
    if lensed.any():
        mu = truth["magnification"]
        lensed_mag_r = lens["source_mag_r"][idx] - 2.5 * np.log10(np.where(lensed & (mu > 0), mu, 1.0))
    else:
        lensed_mag_r = np.full(lensed.shape, np.nan)
        lv = {k: np.full(lensed.shape, np.nan) for k in lens}
    return pa.table(
        {
            "galaxy_id": pa.array(inputs.galaxy_id, type=pa.int64()),
            "is_lens": pa.array(inputs.is_lens, type=pa.bool_()),
            "status": pa.array(np.where(ok, "ok", "failed"), type=pa.string()),
            "error": pa.array(inputs.error, type=pa.string()),
            **{
                f"noise_sigma_{b}": pa.array(noise_sigma[:, i], mask=~np.isfinite(noise_sigma[:, i]))
                for i, b in enumerate(BANDS)
            },
            "n_faint_neighbours": pa.array(n_faint, type=pa.int64()),
            "n_faint_detected": pa.array(n_faint_detected, type=pa.int64()),
            **{f"has_{name}": pa.array(features[name] & ok, type=pa.bool_()) for name in FEATURES},
            "theta_e_arcsec": lens_column(lv["theta_e"]),
            "sigma_v_km_s": lens_column(lv["sigma_v"]),
            "lens_axis_ratio": lens_column(lv["lens_q"]),
            "lens_pa_deg": lens_column(sky_pa_deg(lv["lens_phi"])),
            "shear_1": lens_column(lv["shear_1"]),
            "shear_2": lens_column(lv["shear_2"]),
            "source_offset_east_arcsec": lens_column(-lv["source_x"]),
            "source_offset_north_arcsec": lens_column(lv["source_y"]),
            "beta_arcsec": lens_column(lv["beta"]),
            "source_r_e_arcsec": lens_column(lv["source_r_e"]),
            "source_sersic_n": lens_column(lv["source_n"]),
            "source_axis_ratio": lens_column(lv["source_q"]),
            "source_pa_deg": lens_column(sky_pa_deg(lv["source_phi"])),
            **{f"source_mag_{b}": lens_column(lv[f"source_mag_{b}"]) for b in BANDS},
            "source_clump_fraction": lens_column(lv["clump_fraction"]),
            "magnification": lens_column(truth["magnification"]),
            "lensed_mag_r": lens_column(lensed_mag_r),
            "arc_snr": lens_column(truth["arc_snr"]),
            "arc_annulus_fraction": lens_column(truth["arc_annulus_fraction"]),
            "visible_arc_snr": lens_column(lv["visible_snr"]),
            "lens_draw_attempt": pa.compute.cast(lens_column(lv["draw_attempt"]), pa.int32()),
        }
    )


#: Revision of what the synthetic renderer draws for a given catalogue row.  Bump it with any change
#: to the rendering code that changes pixels (parameter defaults are hashed anyway):
#: 2 = positives' lenses under the visual selection of :mod:`stronglens.cutouts.lenses`.
RENDER_REVISION = 2


def renderer_fingerprint() -> str:
    """16 hex digits naming the synthetic renderer: :data:`RENDER_REVISION` and every default that
    shapes the pixels (lens priors, faint sky, padding, features, noise; not the threading).  The
    cutout store key (macro ``cutout_params_key``) includes it for the synthetic source, so a build
    with a changed renderer renders into a new store folder instead of reusing stale files, and the
    files of earlier builds stay as they were."""
    import hashlib

    config = RenderConfig()
    shaping = (config.pad_pix, config.add_noise, config.morphology, config.faint_neighbours)
    text = f"{RENDER_REVISION}|{config.lens!r}|{config.faint!r}|{shaping!r}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: Columns of the ``lens_truth`` table, in order (besides ``sample_id``).
LENS_TRUTH_COLUMNS = (
    "galaxy_id",
    "theta_e_arcsec",
    "sigma_v_km_s",
    "lens_axis_ratio",
    "lens_pa_deg",
    "shear_1",
    "shear_2",
    "beta_arcsec",
    "source_offset_east_arcsec",
    "source_offset_north_arcsec",
    "source_r_e_arcsec",
    "source_sersic_n",
    "source_axis_ratio",
    "source_pa_deg",
    "source_mag_g",
    "source_mag_r",
    "source_mag_z",
    "source_clump_fraction",
    "magnification",
    "lensed_mag_r",
    "arc_snr",
    "arc_annulus_fraction",
    "visible_arc_snr",
    "lens_draw_attempt",
)


def lens_truth(
    manifest: pa.Table, neighbours: pa.Table | None, *, seed: int, config: RenderConfig | None = None
) -> pa.Table:
    """The lens of every positive of ``manifest`` (its ``sample_id`` and the render columns), as
    rendered into its cutout: the renderer is deterministic, so drawing the positives again without
    noise gives exactly the lenses, magnifications and arc S/N of the stored cutouts (the S/N uses
    the noise sigma the cutout got).  Rows that fail to render are left out."""
    config = config or RenderConfig()
    positives = manifest.filter(pa.compute.equal(manifest.column(config.positive_column), True))
    config = RenderConfig(
        **{**{f: getattr(config, f) for f in config.__dataclass_fields__}, "add_noise": False}
    )
    meta = render_batch(positives, neighbours, seed=seed, config=config).metadata
    ok = pa.compute.equal(meta.column("status"), "ok")
    table = meta.select(list(LENS_TRUTH_COLUMNS)).add_column(0, "sample_id", positives.column("sample_id"))
    return table.filter(ok)


def arc_free_qa(
    manifest: pa.Table,
    neighbours: pa.Table | None,
    *,
    seed: int,
    config: RenderConfig | None = None,
    batch: int = 512,
) -> pa.Table:
    """QA features (:func:`stronglens.cutouts.qa.qa_features`) of every positive's *arc-free twin*:
    its cutout rendered again without the lensed source -- same host, neighbours, faint sky and noise
    (all seeded by the galaxy), so twin and cutout differ by the arcs alone.  The shortcut audit
    compares the twins with the negatives: what still separates them is the host or the pipeline,
    not the lensing signal.  Rendered in batches, so memory stays bounded; rows that fail to render
    are left out."""
    from stronglens.cutouts.qa import qa_features

    config = config or RenderConfig()
    column = config.positive_column
    positives = manifest.filter(pa.compute.equal(manifest.column(column), True))
    twins = positives.set_column(
        positives.column_names.index(column), column, pa.array(np.zeros(positives.num_rows, bool))
    )
    parts = []
    for start in range(0, twins.num_rows, batch):
        chunk = twins.slice(start, batch)
        rendered = render_batch(chunk, neighbours, seed=seed, config=config)
        ok = np.asarray(rendered.metadata.column("status").to_pylist()) == "ok"
        ids = np.asarray(chunk.column("sample_id").to_pylist(), dtype=object)[ok]
        parts.append(qa_features(rendered.cutouts[ok], ids=ids.tolist()))
    if not parts:
        return qa_features(np.zeros((0, config.n_pix, config.n_pix, 3), np.float32), ids=[])
    return pa.concat_tables(parts)
