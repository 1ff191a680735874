"""The exact reference renderer: grz cutouts of smooth Tractor models, pixel-integrated.

The pipeline's ``synthetic`` source is :mod:`stronglens.cutouts.render` (~10x faster, with galaxy
morphology and faint neighbours); this module stays as the accuracy reference the fast renderer
is tested against and as the baseline of ``python -m bench.cutouts``, and it owns the validation
of catalogue rows both share (:func:`read_sources`, :func:`galaxy_ids`, :func:`read_neighbours`).

Each cutout is what the Legacy Survey viewer would return for a galaxy if the sky were exactly
its Tractor model: ``(101, 101, 3)`` float32, channels g, r, z, nanomaggies per pixel at
0.262"/pixel, oriented as the FITS cutout's data array (axis 0 = FITS y, North up the rows;
axis 1 = FITS x, West along the columns, since ``CD1_1 < 0``).  It holds

* the central galaxy, centred on the central pixel, by TYPE: ``PSF`` a point source; ``REX`` a
  round exponential; ``EXP`` / ``DEV`` / ``SER`` elliptical Sersic profiles with n = 1 / 4 /
  ``sersic``, half-light radius ``shape_r`` along the major axis and ellipticity
  ``shape_e1, shape_e2`` (position angle ``0.5 atan2(e2, e1)`` East of North; ``shape_r = 0``
  renders a point source).  Tractor fits the
  same shape in every band, so one profile is rendered with three fluxes ``flux_g/r/z``
  (exact Sersic profiles, not Tractor's truncated Gaussian mixtures: differences are far below
  the noise);
* its catalogue neighbours (``neighbours`` table: same parameters plus tangent-plane offsets);
* for positives, a lensed source (:class:`LensPriors`): an SIE centred on the galaxy, with its
  mass aligned with the galaxy's light, lensing a blue Sersic source (the formulas of
  :mod:`stronglens.lensing`);
* a Gaussian PSF of FWHM ``psfsize_<band>`` per band (pixelised FWHM, see
  :func:`stronglens.lensing.gaussian_psf_sigma`);
* Gaussian sky noise: ``psfdepth`` is the inverse variance of a point source's flux measured
  with the PSF as a matched filter, ``1 / (sigma_pix^2 / sum_i P_i^2)``, so the per-pixel sigma
  is ``sqrt(sum_i P_i^2 / psfdepth)`` with ``P`` our pixelised PSF (noise-equivalent area
  ``1 / sum P^2`` ~ 4 pi sigma_psf^2).  Sky-dominated regime: sources add no shot noise.

Randomness is a counter-based hash (SplitMix64) of ``(galaxy_id, seed, stream, index)``, so each
cutout depends only on its own row, its neighbours and ``seed``: not on batch composition, order
or chunking.  Rendering is vectorised over chunks of cutouts (no per-row Python work).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.typing import NDArray

from stronglens import lensing
from stronglens.lensing import FloatArray, PixelGrid

BANDS = ("g", "r", "z")
#: Sersic index of each Tractor galaxy TYPE (SER carries its own in ``sersic``).
TYPE_SERSIC_INDEX = {"REX": 1.0, "EXP": 1.0, "DEV": 4.0}
EXTENDED_TYPES = ("REX", "EXP", "DEV", "SER")
#: Tractor types rendered; DUP rows are Gaia sources fit by another row and carry no flux.
RENDERED_TYPES = ("PSF", *EXTENDED_TYPES)
SHAPE_COLUMNS = ("type", "shape_r", "shape_e1", "shape_e2", "sersic")
FLUX_COLUMNS = tuple(f"flux_{b}" for b in BANDS)
GALAXY_COLUMNS = (
    "galaxy_id",
    *SHAPE_COLUMNS,
    *FLUX_COLUMNS,
    *(f"psfsize_{b}" for b in BANDS),
    *(f"psfdepth_{b}" for b in BANDS),
)
NEIGHBOUR_COLUMNS = ("galaxy_id", "offset_east_arcsec", "offset_north_arcsec", *SHAPE_COLUMNS, *FLUX_COLUMNS)

# hash streams: independent random sequences per cutout
_STREAM_LENS = 0
_STREAM_NOISE = 1
_N_LENS_DRAWS = 12


@dataclass(frozen=True)
class LensPriors:
    """Distributions of the injected lens and source for positives (all uniform unless stated).

    Tuned so arcs look like the DESI candidates -- visible, not dominant.  Measured on DEV/SER lens
    galaxies of r = 18.5-20.5 (LRG colours): magnification median 5.8 (10-90%: 4.2-11.7), lensed
    source r median 21.1 (20.0-22.4), the arc adds a median 24% (7-92%) to the galaxy's r flux, and
    total r flux alone separates positives from the same galaxies unlensed with AUC ~0.68 only; the
    signal is the arc's shape and its blue colour (g/z flux ratio alone: AUC ~0.97 among red
    galaxies -- the hard negatives with blue light are what keep that from being a shortcut).

    * ``theta_e``: log-uniform in ``theta_e_range`` (arcsec): small lenses are commoner.
    * lens axis ratio ``q`` in ``lens_q_range``; the mass major axis follows the galaxy's light when
      its ``|e| >= light_e_min`` (else a uniform position angle).
    * source centre: uniform over the disc ``|beta| <= source_offset_max_frac * theta_e`` (inside
      the SIS radial caustic ``theta_e``, so every source is multiply imaged: rings near 0, arcs
      with a counter-image further out).
    * source Sersic: ``r_e`` (major axis, arcsec), ``n``, axis ratio, uniform position angle.
    * source unlensed r magnitude in ``source_mag_r_range``; ``g - r`` and ``r - z`` colours from
      their ranges (blue, star-forming sources at z ~ 1-2, against red lens galaxies).
    """

    theta_e_range: tuple[float, float] = (0.8, 3.0)
    lens_q_range: tuple[float, float] = (0.5, 1.0)
    light_e_min: float = 0.05
    source_offset_max_frac: float = 0.5
    source_r_e_range: tuple[float, float] = (0.1, 0.5)
    source_n_range: tuple[float, float] = (0.5, 1.5)
    source_q_range: tuple[float, float] = (0.4, 1.0)
    source_mag_r_range: tuple[float, float] = (22.0, 24.5)
    source_g_minus_r_range: tuple[float, float] = (0.1, 0.5)
    source_r_minus_z_range: tuple[float, float] = (0.0, 0.5)

    def __post_init__(self) -> None:
        ranges = {
            "theta_e_range": self.theta_e_range,
            "lens_q_range": self.lens_q_range,
            "source_r_e_range": self.source_r_e_range,
            "source_n_range": self.source_n_range,
            "source_q_range": self.source_q_range,
        }
        for name, (lo, hi) in ranges.items():
            if not 0.0 < lo <= hi:
                raise ValueError(f"LensPriors.{name} = {(lo, hi)}: need 0 < low <= high")
        if self.lens_q_range[1] > 1.0 or self.source_q_range[1] > 1.0:
            raise ValueError("LensPriors axis ratios must not exceed 1")

    def window_pix(self, grid: PixelGrid) -> int:
        """Sub-sampling window (pixels) that holds the arcs of every lens these priors can draw."""
        return lensing.lensed_window_pix(
            self.theta_e_range[1],
            self.source_offset_max_frac * self.theta_e_range[1],
            self.source_r_e_range[1],
            grid,
        )


@dataclass(frozen=True)
class RenderConfig:
    """How :func:`render_batch` renders.

    ``galaxy_window_pix``: sub-sampled window around each galaxy (its core; the rest is integrated
    on whole pixels).  ``add_noise``: off for tests that check the noiseless model.
    ``chunk_size``: cutouts rendered together (memory ~ 3 MB per cutout).
    ``positive_column``: boolean column of the input table marking positives (lensed).
    """

    grid: PixelGrid = field(default_factory=PixelGrid)
    priors: LensPriors = field(default_factory=LensPriors)
    galaxy_window_pix: int = 16
    add_noise: bool = True
    chunk_size: int = 32
    positive_column: str = "is_lens"


@dataclass(frozen=True)
class RenderedBatch:
    """``cutouts`` ``(N, n, n, 3)`` float32 (NaN where the row failed) and ``metadata``: one row
    per input row, in input order, with ``status`` (``ok`` / ``failed``), ``error`` (why, naming the
    row and column), the per-band noise sigma, and for positives the injected lens."""

    cutouts: NDArray[np.float32]
    metadata: pa.Table


# --------------------------------------------------------------------------------------------------
# deterministic randomness
# --------------------------------------------------------------------------------------------------

_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)


def _mix64(z: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """SplitMix64's finaliser (Steele, Lea & Flood 2014): a bijective avalanche mix of uint64.
    numpy uint64 array arithmetic wraps modulo 2^64, as the algorithm requires."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def hashed_uniforms(galaxy_id: NDArray[np.int64], seed: int, stream: int, count: int) -> FloatArray:
    """``(N, count)`` uniforms in (0, 1), a pure function of ``(galaxy_id, seed, stream, index)``:
    SplitMix64 outputs ``mix(key + (i + 1) gamma)`` with a per-(galaxy, seed, stream) key, i.e. the
    SplitMix64 generator seeded by the key, evaluated at arbitrary positions at once."""
    if seed < 0 or stream < 0:
        raise ValueError(f"seed ({seed}) and stream ({stream}) must be non-negative")
    base = _mix64(np.array([seed], dtype=np.uint64))
    key = _mix64(
        _mix64(galaxy_id.astype(np.uint64) ^ base) + np.array([stream], dtype=np.uint64) * _GOLDEN_GAMMA
    )
    counter = (np.arange(count, dtype=np.uint64) + np.uint64(1)) * _GOLDEN_GAMMA
    bits = _mix64(key[:, None] + counter[None, :])
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def hashed_normals(galaxy_id: NDArray[np.int64], seed: int, stream: int, count: int) -> FloatArray:
    """``(N, count)`` standard normals from :func:`hashed_uniforms` by the Box-Muller transform."""
    half = (count + 1) // 2
    u = hashed_uniforms(galaxy_id, seed, stream, 2 * half)
    radius = np.sqrt(-2.0 * np.log(u[:, :half]))
    angle = 2.0 * np.pi * u[:, half:]
    return np.concatenate([radius * np.cos(angle), radius * np.sin(angle)], axis=1)[:, :count]


# --------------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------------


def column(table: pa.Table | pd.DataFrame, name: str, what: str, required: Sequence[str]) -> np.ndarray:
    """One column as numpy (nulls as NaN / None); a missing column is an error naming it."""
    names = table.column_names if isinstance(table, pa.Table) else [str(c) for c in table.columns]
    if name not in names:
        raise KeyError(
            f"{what} has no column {name!r} (it has {sorted(names)}); "
            f"the synthetic renderer needs {list(required)}"
        )
    if isinstance(table, pa.Table):
        return table.column(name).to_numpy(zero_copy_only=False)
    return table[name].to_numpy()


def floats(table: pa.Table | pd.DataFrame, name: str, what: str, required: Sequence[str]) -> FloatArray:
    """A numeric column as float64, nulls as NaN (numpy maps None to NaN for float dtype)."""
    return np.asarray(column(table, name, what, required), dtype=np.float64)


@dataclass(frozen=True)
class Sources:
    """Tractor sources (central galaxies or neighbours) as arrays, in the renderer's frame."""

    kind: NDArray[np.str_]
    x: FloatArray  # frame x (West), arcsec
    y: FloatArray  # frame y (North), arcsec
    r_e: FloatArray  # 0 for point sources
    n: FloatArray
    q: FloatArray
    phi: FloatArray  # frame angle of the major axis
    e: FloatArray  # |e| (0 for round or point sources)
    fluxes: FloatArray  # (E, 3), zero where the row is invalid
    error: NDArray[np.object_]  # None, or why the row cannot be rendered

    def take(self, index: NDArray[np.intp]) -> Sources:
        return Sources(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @property
    def is_extended(self) -> NDArray[np.bool_]:
        return self.r_e > 0.0


def read_sources(
    table: pa.Table | pd.DataFrame,
    what: str,
    required: Sequence[str],
    x: FloatArray,
    y: FloatArray,
    describe_row: Callable[[int], str],
) -> Sources:
    """Shapes and fluxes of Tractor rows, validated per row: an invalid row gets an error naming
    the column and what to check (rendered as NaN and recorded) instead of failing the batch."""
    raw_type = column(table, "type", what, required)
    kind = pd.Series(raw_type, dtype=object).fillna("").astype(str).str.strip().to_numpy(dtype=str)
    shape_r = floats(table, "shape_r", what, required)
    e1 = floats(table, "shape_e1", what, required)
    e2 = floats(table, "shape_e2", what, required)
    sersic = floats(table, "sersic", what, required)
    fluxes = np.stack([floats(table, c, what, required) for c in FLUX_COLUMNS], axis=1)
    extended = np.isin(kind, EXTENDED_TYPES)
    e = np.hypot(e1, e2)
    checks = [
        (~np.isin(kind, RENDERED_TYPES), "type {type!r} is not one of " + "/".join(RENDERED_TYPES)),
        (~np.all(np.isfinite(fluxes), axis=1), "flux_g/r/z = {fluxes} must be finite"),
        (~(np.isfinite(x) & np.isfinite(y)), "offset_east/north_arcsec must be finite"),
        (
            extended & ~(np.isfinite(shape_r) & (shape_r >= 0.0)),
            "shape_r = {shape_r} must be finite and >= 0",
        ),
        (extended & (kind != "REX") & ~(e < 1.0), "shape_e1, shape_e2 = {e1}, {e2}: need e1^2 + e2^2 < 1"),
        (
            (kind == "SER") & ~(np.isfinite(sersic) & (sersic > 0.0)),
            "sersic = {sersic} must be finite and > 0",
        ),
    ]
    error = np.full(kind.shape[0], None, dtype=object)
    for bad, message in checks:  # a handful of checks; only failing rows are formatted
        for i in np.flatnonzero(bad & np.equal(error, None)):
            error[i] = f"{describe_row(int(i))}: " + message.format(
                type=str(kind[i]),
                fluxes=fluxes[i].tolist(),
                shape_r=shape_r[i],
                e1=e1[i],
                e2=e2[i],
                sersic=sersic[i],
            )
    ok = np.equal(error, None)
    elliptical = ok & extended & (kind != "REX")
    e = np.where(elliptical, e, 0.0)
    sky_pa = 0.5 * np.arctan2(np.where(elliptical, e2, 0.0), np.where(elliptical, e1, 0.0))
    n = np.where(kind == "SER", sersic, 1.0)
    for tractor_type, index in TYPE_SERSIC_INDEX.items():
        n = np.where(kind == tractor_type, index, n)
    return Sources(
        kind=kind,
        x=np.where(ok, x, 0.0),
        y=np.where(ok, y, 0.0),
        r_e=np.where(ok & extended, shape_r, 0.0),
        n=np.where(ok, n, 1.0),
        q=(1.0 - e) / (1.0 + e),
        phi=lensing.sky_pa_to_frame_angle(sky_pa),
        e=e,
        fluxes=np.where(ok[:, None], fluxes, 0.0),
        error=error,
    )


# --------------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------------


def _draw_lenses(
    galaxy_id: NDArray[np.int64], light_phi: FloatArray, light_e: FloatArray, seed: int, priors: LensPriors
) -> dict[str, FloatArray]:
    """Lens and source parameters of positives, each from its own draw of the galaxy's hash stream."""
    u = hashed_uniforms(galaxy_id, seed, _STREAM_LENS, _N_LENS_DRAWS)

    def uniform(col: int, bounds: tuple[float, float]) -> FloatArray:
        return bounds[0] + (bounds[1] - bounds[0]) * u[:, col]

    log_lo, log_hi = np.log(priors.theta_e_range)
    theta_e = np.exp(log_lo + (log_hi - log_lo) * u[:, 0])
    beta = priors.source_offset_max_frac * theta_e * np.sqrt(u[:, 3])
    beta_angle = 2.0 * np.pi * u[:, 4]
    mag_r = uniform(9, priors.source_mag_r_range)
    return {
        "theta_e": theta_e,
        "lens_q": uniform(1, priors.lens_q_range),
        "lens_phi": np.where(light_e >= priors.light_e_min, light_phi, np.pi * u[:, 2]),
        "source_x": beta * np.cos(beta_angle),
        "source_y": beta * np.sin(beta_angle),
        "source_r_e": uniform(5, priors.source_r_e_range),
        "source_n": uniform(6, priors.source_n_range),
        "source_q": uniform(7, priors.source_q_range),
        "source_phi": np.pi * u[:, 8],
        "source_mag_g": mag_r + uniform(10, priors.source_g_minus_r_range),
        "source_mag_r": mag_r,
        "source_mag_z": mag_r - uniform(11, priors.source_r_minus_z_range),
    }


def _render_chunk(
    main: Sources,
    neighbours: Sources,
    neighbour_owner: NDArray[np.intp],
    psf_sigma: FloatArray,
    lens: dict[str, FloatArray],
    positive: NDArray[np.intp],
    config: RenderConfig,
) -> tuple[FloatArray, FloatArray]:
    """Noiseless images ``(C, n, n, 3)`` of one chunk (main galaxy ``i`` in image ``i``), and the
    magnification of each positive's source (``positive`` indexes the chunk)."""
    grid = config.grid
    own = np.arange(main.kind.shape[0])
    owner = np.concatenate([own, neighbour_owner])
    allsrc = Sources(
        **{f.name: np.concatenate([getattr(main, f.name), getattr(neighbours, f.name)]) for f in fields(main)}
    )
    ext = np.flatnonzero(allsrc.is_extended)
    pts = np.flatnonzero(~allsrc.is_extended)
    images = lensing.render_sersic(
        lensing.SersicSources.of(
            allsrc.r_e[ext], allsrc.n[ext], allsrc.q[ext], allsrc.phi[ext], allsrc.x[ext], allsrc.y[ext]
        ),
        owner[ext],
        allsrc.fluxes[ext],
        psf_sigma,
        grid,
        config.galaxy_window_pix,
    )
    images += lensing.render_points(
        allsrc.x[pts], allsrc.y[pts], owner[pts], allsrc.fluxes[pts], psf_sigma, grid
    )
    if positive.size == 0:
        return images, np.zeros(0)
    lenses = lensing.SIELenses.of(lens["theta_e"], lens["lens_q"], lens["lens_phi"], 0.0, 0.0)
    sources = lensing.SersicSources.of(
        lens["source_r_e"],
        lens["source_n"],
        lens["source_q"],
        lens["source_phi"],
        lens["source_x"],
        lens["source_y"],
    )
    source_fluxes = lensing.mag_to_nanomaggies(np.stack([lens[f"source_mag_{b}"] for b in BANDS], axis=1))
    arcs, magnification = lensing.render_lensed_sersic(
        lenses, sources, source_fluxes, psf_sigma[positive], grid, config.priors.window_pix(grid)
    )
    images[positive] += arcs
    return images, magnification


def render_batch(
    table: pa.Table | pd.DataFrame,
    neighbours: pa.Table | pd.DataFrame | None = None,
    *,
    seed: int,
    config: RenderConfig | None = None,
) -> RenderedBatch:
    """Render one synthetic cutout per row of ``table`` (columns :data:`GALAXY_COLUMNS` plus
    ``config.positive_column``); ``galaxy_id`` must be unique and non-negative.

    ``neighbours`` (columns :data:`NEIGHBOUR_COLUMNS`): catalogue sources to draw in the cutout of
    the galaxy ``galaxy_id``, at tangent-plane offsets East / North of it in arcsec (see
    :func:`stronglens.lensing.tangent_plane_offsets`); rows for galaxies not in ``table`` are
    ignored, DUP rows skipped.  An invalid galaxy or neighbour row fails only its own cutout
    (NaN pixels, ``status = failed`` and the reason in ``error``).

    Deterministic in ``(row, its neighbours, seed)``; independent of batch order and chunking.
    """
    config = config or RenderConfig()
    grid = config.grid
    what = "galaxy table"
    required = (*GALAXY_COLUMNS, config.positive_column)
    galaxy_id = galaxy_ids(column(table, "galaxy_id", what, required), what)
    if np.unique(galaxy_id).size != galaxy_id.size:
        ids, counts = np.unique(galaxy_id, return_counts=True)
        raise ValueError(f"{what}: galaxy_id must be unique; repeated: {ids[counts > 1][:10].tolist()}")
    count = galaxy_id.size
    flags = column(table, config.positive_column, what, required)
    if pd.isna(flags).any():
        raise ValueError(f"{what}: column {config.positive_column!r} has nulls; mark every row lens or not")
    is_lens = flags.astype(bool)

    def describe_main(i: int) -> str:
        return f"{what} row {i} (galaxy_id {galaxy_id[i]})"

    zeros = np.zeros(count)
    main = read_sources(table, what, required, zeros, zeros, describe_main)
    error = main.error.copy()
    psfsize = np.stack([floats(table, f"psfsize_{b}", what, required) for b in BANDS], axis=1)
    psfdepth = np.stack([floats(table, f"psfdepth_{b}", what, required) for b in BANDS], axis=1)
    min_fwhm = lensing.FWHM_PER_SIGMA * grid.pixel_scale / np.sqrt(12.0)
    row_checks = [
        (
            ~np.all(psfsize > min_fwhm, axis=1),
            f"psfsize_g/r/z = {{psfsize}} must exceed {min_fwhm:.3f} arcsec "
            "(0 or NaN means no coverage in that band: drop the row or fix the sweep)",
        ),
    ]
    if config.add_noise:
        row_checks.append(
            (
                ~np.all(psfdepth > 0.0, axis=1) | ~np.all(np.isfinite(psfdepth), axis=1),
                "psfdepth_g/r/z = {psfdepth} must be finite and > 0 (1/nanomaggy^2)",
            )
        )
    for bad, message in row_checks:
        for i in np.flatnonzero(bad & np.equal(error, None)):
            error[i] = f"{describe_main(int(i))}: " + message.format(
                psfsize=psfsize[i].tolist(), psfdepth=psfdepth[i].tolist()
            )

    nb, nb_owner = read_neighbours(neighbours, galaxy_id)
    for j in np.flatnonzero(~np.equal(nb.error, None)):
        owner = nb_owner[j]
        if error[owner] is None:
            error[owner] = f"neighbour of {describe_main(int(owner))}: {nb.error[j]}"

    ok = np.equal(error, None)
    lens = _draw_lenses(galaxy_id, main.phi, main.e, seed, config.priors)
    magnification = np.full(count, np.nan)
    noise_sigma = np.full((count, len(BANDS)), np.nan)
    cutouts = np.full((count, grid.n_pix, grid.n_pix, len(BANDS)), np.nan, dtype=np.float32)
    rows = np.flatnonzero(ok)
    for start in range(0, rows.size, config.chunk_size):
        chunk = rows[start : start + config.chunk_size]  # ascending, as nb_owner is
        lo, hi = np.searchsorted(nb_owner, [chunk[0], chunk[-1] + 1])
        in_chunk = lo + np.flatnonzero(ok[nb_owner[lo:hi]])
        positive = np.flatnonzero(is_lens[chunk])
        psf_sigma = lensing.gaussian_psf_sigma(psfsize[chunk], grid.pixel_scale)
        images, mu = _render_chunk(
            main.take(chunk),
            nb.take(in_chunk),
            np.searchsorted(chunk, nb_owner[in_chunk]),
            psf_sigma,
            {k: v[chunk[positive]] for k, v in lens.items()},
            positive,
            config,
        )
        magnification[chunk[positive]] = mu
        if config.add_noise:
            sigma = np.sqrt(lensing.psf_norm_squared(psf_sigma, grid) / psfdepth[chunk])
            noise_sigma[chunk] = sigma
            noise = hashed_normals(
                galaxy_id[chunk], seed, _STREAM_NOISE, grid.n_pix * grid.n_pix * len(BANDS)
            )
            images += noise.reshape(images.shape) * sigma[:, None, None, :]
        cutouts[chunk] = images
    return RenderedBatch(cutouts, _metadata(galaxy_id, is_lens, error, noise_sigma, lens, magnification))


def galaxy_ids(values: np.ndarray, what: str) -> NDArray[np.int64]:
    """``galaxy_id`` as int64, which the hash seeds need to be non-null and non-negative."""
    if pd.isna(values).any():
        raise ValueError(f"{what}: galaxy_id has nulls; every row needs its warehouse galaxy_id")
    if not np.issubdtype(np.asarray(values).dtype, np.integer):
        floats = np.asarray(values, dtype=np.float64)
        if np.any(floats != np.round(floats)):
            raise ValueError(f"{what}: galaxy_id must be integers")
    ids = np.asarray(values).astype(np.int64)
    if ids.size and ids.min() < 0:
        raise ValueError(f"{what}: galaxy_id must be non-negative (min {ids.min()})")
    return ids


def read_neighbours(
    neighbours: pa.Table | pd.DataFrame | None, galaxy_id: NDArray[np.int64]
) -> tuple[Sources, NDArray[np.intp]]:
    """Neighbour sources of the galaxies in the batch and the row each belongs to, sorted by
    (row, position): chunks find theirs by bisection, and the summation order -- so the pixels --
    never depends on input order."""
    what = "neighbour table"
    if neighbours is None:
        neighbours = pd.DataFrame(
            {c: pd.Series(dtype=object if c == "type" else float) for c in NEIGHBOUR_COLUMNS}
        )
    nb_id = galaxy_ids(column(neighbours, "galaxy_id", what, NEIGHBOUR_COLUMNS), what)
    east = floats(neighbours, "offset_east_arcsec", what, NEIGHBOUR_COLUMNS)
    north = floats(neighbours, "offset_north_arcsec", what, NEIGHBOUR_COLUMNS)

    def describe(j: int) -> str:
        return f"{what} row {j} (galaxy_id {nb_id[j]})"

    sources = read_sources(neighbours, what, NEIGHBOUR_COLUMNS, -east, north, describe)
    order = np.argsort(galaxy_id, kind="stable")
    found = np.zeros(nb_id.size, dtype=bool)
    pos = np.zeros(nb_id.size, dtype=np.intp)
    if galaxy_id.size:
        pos = np.minimum(np.searchsorted(galaxy_id[order], nb_id), galaxy_id.size - 1)
        found = galaxy_id[order][pos] == nb_id
    keep = np.flatnonzero(found & (sources.kind != "DUP"))
    owner = order[pos[keep]]
    sort = np.lexsort((sources.x[keep], sources.y[keep], owner))
    return sources.take(keep[sort]), owner[sort]


def _metadata(
    galaxy_id: NDArray[np.int64],
    is_lens: NDArray[np.bool_],
    error: NDArray[np.object_],
    noise_sigma: FloatArray,
    lens: dict[str, FloatArray],
    magnification: FloatArray,
) -> pa.Table:
    """Per-row status, noise level and, for positives, the injected lens in sky conventions."""
    ok = np.equal(error, None)
    lensed = is_lens & ok

    def lenscolumn(values: FloatArray) -> pa.Array:
        return pa.array(values, mask=~lensed, type=pa.float64())

    def sky_pa_deg(phi: FloatArray) -> FloatArray:
        return np.mod(np.degrees(phi - 0.5 * np.pi), 180.0)

    columns = {
        "galaxy_id": pa.array(galaxy_id, type=pa.int64()),
        "is_lens": pa.array(is_lens, type=pa.bool_()),
        "status": pa.array(np.where(ok, "ok", "failed"), type=pa.string()),
        "error": pa.array(error, type=pa.string()),
        **{
            f"noise_sigma_{b}": pa.array(noise_sigma[:, i], mask=~np.isfinite(noise_sigma[:, i]))
            for i, b in enumerate(BANDS)
        },
        "theta_e_arcsec": lenscolumn(lens["theta_e"]),
        "lens_axis_ratio": lenscolumn(lens["lens_q"]),
        "lens_pa_deg": lenscolumn(sky_pa_deg(lens["lens_phi"])),
        "source_offset_east_arcsec": lenscolumn(-lens["source_x"]),
        "source_offset_north_arcsec": lenscolumn(lens["source_y"]),
        "source_r_e_arcsec": lenscolumn(lens["source_r_e"]),
        "source_sersic_n": lenscolumn(lens["source_n"]),
        "source_axis_ratio": lenscolumn(lens["source_q"]),
        "source_pa_deg": lenscolumn(sky_pa_deg(lens["source_phi"])),
        **{f"source_mag_{b}": lenscolumn(lens[f"source_mag_{b}"]) for b in BANDS},
        "magnification": lenscolumn(magnification),
        "lensed_mag_r": lenscolumn(
            lens["source_mag_r"] - 2.5 * np.log10(np.where(lensed, magnification, 1.0))
        ),
    }
    return pa.table(columns)
