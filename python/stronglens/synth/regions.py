"""Survey regions of DR10 south: DECaLS-like and DES-like footprints with their own observing.

DR10 south is mainly two surveys (DOMAIN.md; Dey et al. 2019 for DECaLS, Abbott et al. 2018 / DES
DR1 for the wide field): DECaLS, typically 2-4 passes per band in median seeing ~1.2" (z), and the
~5,000 deg^2 DES wide field in the southern Galactic cap -- RA ~300 deg through 0 to ~100 deg,
Dec -65 to +5 deg -- with ~8-10 passes, better seeing and ~0.5-1 mag more depth.  The synthetic sky's
pass-count and seeing maps take their medians from the region of each position; the depth follows
from the passes and the seeing through the sky model's ``m5 = m5_1 + 1.25 log10 N - 2.5 log10(FWHM
/ 1.1)``, so point-source and galaxy depths stay consistent (both are computed from the same passes,
seeing and sky).  The boundary is softened over ``edge_deg`` (DES tiling dithers its edge).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SurveyRegion:
    """Median passes (g, r, i, z) and median z seeing FWHM (arcsec) of one survey."""

    name: str
    nobs_median: tuple[float, float, float, float]
    psf_fwhm_z: float


#: DECaLS: designed for 3 passes per band (2-4 typical), z seeing ~1.2" (Dey et al. 2019).
DECALS = SurveyRegion("decals", (3.8, 3.8, 3.0, 4.0), 1.20)
#: DES wide: 10 tilings planned, ~8-10 reached over most of the area; median z seeing ~0.95-1.0"
#: (DES DR1/DR2 papers: Abbott et al. 2018, 2021).
DES = SurveyRegion("des", (8.5, 8.5, 8.0, 8.5), 1.00)


@dataclass(frozen=True)
class DesFootprint:
    """The DES-like box: RA from ``ra_min`` (negative = degrees before 360) to ``ra_max``, Dec from
    ``dec_min`` to ``dec_max``, edges softened over ``edge_deg``."""

    ra_min: float = -60.0
    ra_max: float = 100.0
    dec_min: float = -65.0
    dec_max: float = 5.0
    edge_deg: float = 0.5

    def weight(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        """DES share in [0, 1] at each position (1 inside, 0 outside, smooth across the edges)."""
        ra_w = np.mod(np.asarray(ra, np.float64) - self.ra_min, 360.0) + self.ra_min  # [ra_min, ra_min+360)
        dec = np.asarray(dec, np.float64)

        def inside(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
            return np.clip(0.5 + np.minimum(x - lo, hi - x) / self.edge_deg, 0.0, 1.0)

        return inside(ra_w, self.ra_min, self.ra_max) * inside(dec, self.dec_min, self.dec_max)


def region_medians(ra: np.ndarray, dec: np.ndarray, footprint: DesFootprint | None = None):
    """Log-blended median passes ``(4, *shape)`` and median z seeing ``shape`` at each position,
    and the DES weight."""
    w = (footprint or DesFootprint()).weight(ra, dec)
    ln_nobs = np.stack(
        [
            (1 - w) * np.log(a) + w * np.log(b)
            for a, b in zip(DECALS.nobs_median, DES.nobs_median, strict=True)
        ]
    )
    fwhm = np.exp((1 - w) * np.log(DECALS.psf_fwhm_z) + w * np.log(DES.psf_fwhm_z))
    return np.exp(ln_nobs), fwhm, w
