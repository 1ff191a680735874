"""Injection priors: the distributions lens and source parameters are drawn from.

The versioned file ``priors.yml`` next to this module is the one source of truth; the dataclass
defaults below restate it only so that code and file can be checked against each other (a test
fails if they differ).  A build reads the file named by the var ``injection_priors_file`` (default:
the packaged one), so a study with other priors is a new file, not an edit of code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PRIORS_FILE = Path(__file__).with_name("priors.yml")


class PriorsError(ValueError):
    """The priors file is missing a key, has an unknown key or an invalid value; names file and key."""


@dataclass(frozen=True)
class Normal:
    """A normal distribution."""

    mean: float
    sigma: float


@dataclass(frozen=True)
class LensPriors:
    """SIE + external shear: q ~ U(axis_ratio), gamma_1,2 ~ N(0, shear_sigma), centre ~ N(0, jitter)."""

    axis_ratio: tuple[float, float] = (0.5, 1.0)
    shear_sigma: float = 0.05
    centre_jitter_arcsec: float = 0.05


@dataclass(frozen=True)
class SourcePriors:
    """Sersic source: uniform ranges, area-weighted offset in units of theta_E, normal colours."""

    mag_r: tuple[float, float] = (23.0, 26.0)
    r_e_arcsec: tuple[float, float] = (0.15, 0.5)
    sersic_n: tuple[float, float] = (0.5, 2.0)
    axis_ratio: tuple[float, float] = (0.3, 1.0)
    beta_over_theta_e: tuple[float, float] = (0.1, 0.4)
    g_minus_r: Normal = field(default_factory=lambda: Normal(1.15, 0.30))
    r_minus_z: Normal = field(default_factory=lambda: Normal(0.85, 0.20))


@dataclass(frozen=True)
class Priors:
    """All injection priors (see ``priors.yml``)."""

    lens: LensPriors = field(default_factory=LensPriors)
    source: SourcePriors = field(default_factory=SourcePriors)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (ranges as lists), the shape of the YAML file; recorded per build."""
        return _listify(asdict(self))


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _listify(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_listify(v) for v in value]
    return value


def _range(raw: Any, where: str, low: float, high: float) -> tuple[float, float]:
    if not (isinstance(raw, list | tuple) and len(raw) == 2 and all(isinstance(v, int | float) for v in raw)):
        raise PriorsError(f"{where}: expected [low, high] numbers, got {raw!r}")
    lo, hi = float(raw[0]), float(raw[1])
    if not (low <= lo <= hi <= high):
        raise PriorsError(f"{where}: [{lo}, {hi}] must satisfy {low} <= low <= high <= {high}")
    return lo, hi


def _positive(raw: Any, where: str, allow_zero: bool = True) -> float:
    if not isinstance(raw, int | float) or raw < 0 or (raw == 0 and not allow_zero):
        raise PriorsError(f"{where}: expected a number {'>=' if allow_zero else '>'} 0, got {raw!r}")
    return float(raw)


def _normal(raw: Any, where: str) -> Normal:
    if not isinstance(raw, dict) or set(raw) != {"mean", "sigma"}:
        raise PriorsError(f"{where}: expected {{mean: ..., sigma: ...}}, got {raw!r}")
    if not isinstance(raw["mean"], int | float):
        raise PriorsError(f"{where}.mean: expected a number, got {raw['mean']!r}")
    return Normal(float(raw["mean"]), _positive(raw["sigma"], f"{where}.sigma"))


def _section(raw: dict[str, Any], name: str, cls: type, where: str) -> dict[str, Any]:
    section = raw.get(name)
    if not isinstance(section, dict):
        raise PriorsError(f"{where}: missing section '{name}'")
    expected = {f.name for f in fields(cls)}
    unknown, missing = sorted(set(section) - expected), sorted(expected - set(section))
    if unknown or missing:
        raise PriorsError(f"{where}: section '{name}' has unknown keys {unknown} / misses keys {missing}")
    return section


def load_priors(path: str | Path | None = None) -> Priors:
    """Read and validate a priors file (default: the packaged ``priors.yml``)."""
    path = Path(path) if path else DEFAULT_PRIORS_FILE
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PriorsError(f"{path}: cannot read the injection priors ({exc})") from exc
    if not isinstance(raw, dict) or set(raw) != {"lens", "source"}:
        raise PriorsError(f"{path}: expected exactly the sections 'lens' and 'source'")
    lens = _section(raw, "lens", LensPriors, str(path))
    src = _section(raw, "source", SourcePriors, str(path))
    w = f"{path}: "
    return Priors(
        lens=LensPriors(
            axis_ratio=_range(lens["axis_ratio"], w + "lens.axis_ratio", 1e-3, 1.0),
            shear_sigma=_positive(lens["shear_sigma"], w + "lens.shear_sigma"),
            centre_jitter_arcsec=_positive(lens["centre_jitter_arcsec"], w + "lens.centre_jitter_arcsec"),
        ),
        source=SourcePriors(
            mag_r=_range(src["mag_r"], w + "source.mag_r", 10.0, 35.0),
            r_e_arcsec=_range(src["r_e_arcsec"], w + "source.r_e_arcsec", 1e-3, 10.0),
            sersic_n=_range(src["sersic_n"], w + "source.sersic_n", 0.2, 8.0),
            axis_ratio=_range(src["axis_ratio"], w + "source.axis_ratio", 1e-3, 1.0),
            beta_over_theta_e=_range(src["beta_over_theta_e"], w + "source.beta_over_theta_e", 0.0, 10.0),
            g_minus_r=_normal(src["g_minus_r"], w + "source.g_minus_r"),
            r_minus_z=_normal(src["r_minus_z"], w + "source.r_minus_z"),
        ),
    )
