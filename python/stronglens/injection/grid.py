"""The injection grid: theta_E x PSF FWHM x 5-sigma depth cells, and binning hosts into them.

Each axis is ``min..max`` in ``step`` (dbt vars ``injection_theta_e_arcsec``,
``injection_psf_fwhm_arcsec``, ``injection_depth_mag``); the default 11 x 7 x 5 = 385 cells are the
issue's.  A host's own PSF / depth falls in the cell whose grid value is nearest within half a step
(the bins tile the axis with no gaps: ``[v - step/2, v + step/2)``); outside the outermost half
steps a host belongs to no cell natively (it can still be degraded into one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True)
class GridAxis:
    """One axis of the grid: values ``min, min + step, ..., max``."""

    name: str
    min: float
    max: float
    step: float

    def __post_init__(self) -> None:
        if not (
            np.isfinite([self.min, self.max, self.step]).all() and self.step > 0 and self.max >= self.min
        ):
            raise ValueError(f"grid axis {self.name}: need finite min <= max and step > 0, got {self}")
        count = (self.max - self.min) / self.step
        if abs(count - round(count)) > 1e-6:
            raise ValueError(
                f"grid axis {self.name}: (max - min) / step = {count:.6f} is not an integer; "
                "fix the var so the step tiles the range"
            )

    @staticmethod
    def from_var(name: str, raw: Mapping[str, Any]) -> GridAxis:
        """From a dbt var ``{min: .., max: .., step: ..}``."""
        if not isinstance(raw, Mapping) or set(raw) != {"min", "max", "step"}:
            raise ValueError(f"var {name}: expected {{min: .., max: .., step: ..}}, got {raw!r}")
        return GridAxis(name, float(raw["min"]), float(raw["max"]), float(raw["step"]))

    @property
    def values(self) -> NDArray[np.float64]:
        count = round((self.max - self.min) / self.step) + 1
        return np.round(self.min + self.step * np.arange(count), 6)

    def bin_index(self, x: ArrayLike) -> NDArray[np.int64]:
        """Index of the value whose half-step bin holds ``x``; -1 outside the axis (or non-finite)."""
        x = np.asarray(x, dtype=np.float64)
        idx = np.floor((x - self.min) / self.step + 0.5)
        ok = np.isfinite(idx) & (idx >= 0) & (idx < len(self.values))
        return np.where(ok, np.nan_to_num(idx, nan=-1.0), -1).astype(np.int64)


@dataclass(frozen=True)
class InjectionGrid:
    """The three axes and the injections each cell receives."""

    theta_e: GridAxis
    psf_fwhm: GridAxis
    depth: GridAxis
    injections_per_cell: int

    def __post_init__(self) -> None:
        if self.injections_per_cell < 1:
            raise ValueError(f"injections_per_cell must be >= 1, got {self.injections_per_cell}")

    @staticmethod
    def from_vars(variables: Mapping[str, Any]) -> InjectionGrid:
        """From the dbt vars (see dbt_project.yml, section 'injection')."""
        return InjectionGrid(
            GridAxis.from_var("injection_theta_e_arcsec", variables["injection_theta_e_arcsec"]),
            GridAxis.from_var("injection_psf_fwhm_arcsec", variables["injection_psf_fwhm_arcsec"]),
            GridAxis.from_var("injection_depth_mag", variables["injection_depth_mag"]),
            int(variables["injections_per_cell"]),
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.theta_e.values), len(self.psf_fwhm.values), len(self.depth.values)

    def cells(self) -> pa.Table:
        """One row per cell: ``cell_id`` (row-major over theta_E, PSF, depth), its indices, values and
        the PSF / depth bins that hosts fall in natively."""
        it, ip, idp = np.meshgrid(*(np.arange(n) for n in self.shape), indexing="ij")
        it, ip, idp = it.ravel(), ip.ravel(), idp.ravel()
        psf, depth = self.psf_fwhm.values[ip], self.depth.values[idp]
        return pa.table(
            {
                "cell_id": pa.array(np.arange(it.size), pa.int32()),
                "theta_e_index": pa.array(it, pa.int16()),
                "psf_index": pa.array(ip, pa.int16()),
                "depth_index": pa.array(idp, pa.int16()),
                "theta_e_arcsec": self.theta_e.values[it],
                "psf_fwhm_arcsec": psf,
                "depth_mag": depth,
                "psf_bin_low": psf - self.psf_fwhm.step / 2,
                "psf_bin_high": psf + self.psf_fwhm.step / 2,
                "depth_bin_low": depth - self.depth.step / 2,
                "depth_bin_high": depth + self.depth.step / 2,
                "n_injections": pa.array(np.full(it.size, self.injections_per_cell), pa.int32()),
            }
        )


def depth_mag_from_psfdepth(psfdepth: ArrayLike) -> NDArray[np.float64]:
    """5-sigma point-source depth (AB mag) from ``psfdepth`` (1/nanomaggy^2):
    ``-2.5 (log10(5 / sqrt(psfdepth)) - 9)`` (DOMAIN.md); NaN where psfdepth <= 0."""
    d = np.asarray(psfdepth, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 0, -2.5 * (np.log10(5.0 / np.sqrt(d)) - 9.0), np.nan)


def psfdepth_from_depth_mag(mag: ArrayLike) -> NDArray[np.float64]:
    """Inverse of :func:`depth_mag_from_psfdepth`."""
    return (5.0 / np.power(10.0, 9.0 - np.asarray(mag, dtype=np.float64) / 2.5)) ** 2
