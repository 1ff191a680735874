"""The physical model of the synthetic sky: populations, counts, colours, shapes, observing maps.

Every number is a field of :class:`SkyModel` whose docstring gives its source; the helpers here
draw from it (order-free hashes, smooth sky maps, magnitudes, lookup tables)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from stronglens.schema import TRACTOR_TYPES
from stronglens.synth.footprint import _unit, icrs_to_galactic
from stronglens.synth.regions import region_medians

#: Default density (objects / deg^2 down to ``DEFAULT_MAG_LIMIT``) and magnitude limit.  Chosen so
#: that the full-footprint default run writes ~11.8M rows in 1,054 files (~40 CPU-seconds: well
#: under a minute on 2 cores) and the negative pool (SER/DEV/REX, z < 20, 3+ passes in g, r and z,
#: no BRIGHT/MEDIUM/GALAXY/CLUSTER) holds ~2.0M galaxies (measured 2,045,119 at seed 42), a few x
#: the 480K that 100 negatives per matched positive need: a thinned sky (~1/8 of DR10's bright-
#: galaxy density) with DR10's magnitude-dependent type mix.
DEFAULT_DENSITY = 600.0
DEFAULT_MAG_LIMIT = 20.5

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
    #: The scatter is the spread in redshift at fixed apparent magnitude, ~0.1 for bright galaxies
    #: (DESI BGS Bright, r < 19.5, spans z 0.05-0.4: Hahn et al. 2023, AJ 165, 253). At 0.06 the red
    #: sequence at a given magnitude was too narrow to hold the lens hosts (x = z_lens ~0.45 at
    #: z ~ 18.5, luminous galaxies further away than typical): hardly any negative had a lens host's
    #: colour at its brightness, so no choice of negatives could match them in colour.
    x_latent: tuple[float, float, float] = (0.25, 0.09, 0.10)
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
    #: hard confusers a real DR10 pool holds; DEV (ellipticals, E0-E7: apparent axis ratios down to
    #: ~0.3) q0 = 0.30, |e| <= 0.54, where the old 0.55 capped |e| at 0.29.
    q0_exp: float = 0.15
    q0_ser: float = 0.20
    q0_dev: float = 0.30
    #: SER Sersic index: lognormal, median 2.2, clipped to the Tractor limits [0.5, 6].
    sersic_median: float = 2.2
    sersic_sigma: float = 0.45

    #: Seeing: band ratios (DECam: g worse) and ln-scatter of the smooth sky map; the median z FWHM
    #: is the survey region's (:mod:`stronglens.synth.regions`: DECaLS ~1.2", DES ~1.0").
    psf_band_ratio: tuple[float, float, float, float] = (1.17, 1.08, 1.03, 1.0)
    psf_ln_sigma: float = 0.10
    psf_band_ln_sigma: float = 0.03
    #: How strongly each band (g, r, i, z) follows the band-tilt map: blue bands degrade more.
    psf_band_tilt: tuple[float, float, float, float] = (1.0, 0.5, 0.0, -0.5)
    #: Passes: lambda = exp(ln(median) + sigma (rho f_common + sqrt(1 - rho^2) f_band)), then stochastic
    #: rounding and ``chip_gap_fraction`` losing one pass; the medians are the survey region's
    #: (:mod:`stronglens.synth.regions`: DECaLS ~3-4, DES ~8-9), the scatter within a region.
    nobs_sigma: float = 0.25
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
    #: luminous red galaxies at z_l ~ 0.2-0.8; the DR9/DR10 training lenses reach z = 20, Storfer
    #: et al. 2024); missing z_lens drawn from N(mean, sigma).
    counterpart_mag: tuple[float, float, float, float, float] = (17.2, 3.0, 0.5, 15.5, 20.0)
    counterpart_zlens: tuple[float, float, float, float] = (0.45, 0.15, 0.1, 1.0)
    #: TYPE shares of lens hosts (PSF, REX, DEV, EXP, SER): the Tractor TYPEs of published DR9/DR10
    #: candidates' hosts, the mean of Storfer et al. 2024 (1,895: SER 54%, DEV 24%, REX 16%, EXP 6%)
    #: and Inchausti et al. 2025 (811: SER 61%, REX 20%, DEV 15%, EXP 4%); PSF ~0 (DOMAIN.md).
    counterpart_type_prob: tuple[float, float, float, float, float] = (0.0, 0.18, 0.195, 0.05, 0.575)

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
        # medians of the survey region (DECaLS-like or DES-like) at each position
        nobs_median, fwhm_z, _ = region_medians(ra, dec)
        for b in range(4):
            tilt = m.psf_band_ln_sigma * m.psf_band_tilt[b]
            out[b] = fwhm_z * m.psf_band_ratio[b] * np.exp(m.psf_ln_sigma * f[0] + tilt * f[1])
        rho = m.nobs_rho
        for b in range(4):
            out[4 + b] = np.exp(
                np.log(nobs_median[b]) + m.nobs_sigma * (rho * f[2] + math.sqrt(1 - rho**2) * f[3 + b])
            )
        out[8] = f[7]
        out[9] = m.sky_sigma * f[8]
        out[10] = m.wise_sigma * f[9]
        _, b_gal = icrs_to_galactic(ra, dec)
        csc = 1.0 / np.maximum(np.abs(np.sin(np.radians(b_gal))), np.sin(np.radians(5.0)))
        out[11] = m.ebv0 * csc**m.ebv_gamma * np.exp(m.ebv_sigma * f[10] - m.ebv_sigma**2 / 2)
        return out


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
