"""Drawing injection parameters from the priors (vectorised; one generator per build seed).

The same seed, grid and host assignment give bit-identical parameters (and so identical
injections): every draw comes from one ``numpy.random.Generator(PCG64(seed))`` in a fixed order.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from stronglens.injection.priors import Priors
from stronglens.injection.render import ArcParams
from stronglens.lensing import mag_to_nanomaggies

FloatArray = NDArray[np.float64]


def draw_arc_params(
    theta_e: FloatArray, priors: Priors, seed: int
) -> tuple[ArcParams, dict[str, FloatArray]]:
    """Lens and source parameters for injections of Einstein radii ``theta_e`` (arcsec).

    Returns the renderer's :class:`ArcParams` and the truth columns that are not in it
    (``src_mag_r``, colours, ``beta_arcsec``, ``beta_over_theta_e``).  The source offset is drawn
    uniformly in area between ``beta_over_theta_e`` bounds (``|beta| = theta_E sqrt(U(lo^2, hi^2))``),
    so a cell's sources cover the caustic region as the sky would.
    """
    theta_e = np.asarray(theta_e, dtype=np.float64)
    n = theta_e.size
    rng = np.random.Generator(np.random.PCG64(seed))
    lens, src = priors.lens, priors.source
    lens_q = rng.uniform(*lens.axis_ratio, n)
    lens_phi = rng.uniform(0.0, np.pi, n)
    lens_x0, lens_y0 = rng.normal(0.0, lens.centre_jitter_arcsec, (2, n))
    g1, g2 = rng.normal(0.0, lens.shear_sigma, (2, n))
    mag_r = rng.uniform(*src.mag_r, n)
    r_e = rng.uniform(*src.r_e_arcsec, n)
    sersic_n = rng.uniform(*src.sersic_n, n)
    src_q = rng.uniform(*src.axis_ratio, n)
    src_phi = rng.uniform(0.0, np.pi, n)
    lo, hi = src.beta_over_theta_e
    beta_frac = np.sqrt(rng.uniform(lo * lo, hi * hi, n))
    beta_angle = rng.uniform(0.0, 2.0 * np.pi, n)
    g_r = rng.normal(src.g_minus_r.mean, src.g_minus_r.sigma, n)
    r_z = rng.normal(src.r_minus_z.mean, src.r_minus_z.sigma, n)
    beta = beta_frac * theta_e
    flux_r = mag_to_nanomaggies(mag_r)
    params = ArcParams(
        theta_e=theta_e,
        lens_q=lens_q,
        lens_phi=lens_phi,
        lens_x0=lens_x0,
        lens_y0=lens_y0,
        shear_g1=g1,
        shear_g2=g2,
        src_r_e=r_e,
        src_n=sersic_n,
        src_q=src_q,
        src_phi=src_phi,
        src_x0=lens_x0 + beta * np.cos(beta_angle),
        src_y0=lens_y0 + beta * np.sin(beta_angle),
        flux_g=mag_to_nanomaggies(mag_r + g_r),
        flux_r=flux_r,
        flux_z=mag_to_nanomaggies(mag_r - r_z),
    )
    extra = {
        "src_mag_r": mag_r,
        "src_g_minus_r": g_r,
        "src_r_minus_z": r_z,
        "beta_arcsec": beta,
        "beta_over_theta_e": beta_frac,
    }
    return params, extra
