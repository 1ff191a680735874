"""The cutouts wing's settings: one object, read from the dbt vars, with no defaults of its own.

Every default lives in ``dbt_project.yml`` (the ``cutouts`` section) and nowhere else.  dbt hands
them to the Python models as ONE config, ``cutout_settings`` (a JSON object built from the vars
once, in ``models/marts/cutouts/_cutouts__models.yml``); :meth:`CutoutSettings.from_config` turns
it into this object, checking every key and type.  Code outside dbt (tests, benchmarks, notebooks)
gets the same values with :meth:`CutoutSettings.project_defaults`, which reads the vars from
``dbt_project.yml`` itself, so there is no second copy of a default to drift (the cutout size used
to live in four places, and the store rejected every cutout of any size but 101).

The request URL of a ``legacysurvey`` cutout is built once, in SQL (macro ``cutout_url``), and
carried by ``cutout_manifest.cutout_url``; the fetcher requests exactly that URL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from stronglens import paths

#: Settings field -> the dbt var it comes from (``dbt_project.yml``).
VARS = {
    "source": "cutout_source",
    "root": "cutout_root",
    "seed": "cutout_seed",
    "size": "cutout_size",
    "pixscale": "cutout_pixscale",
    "bands": "cutout_bands",
    "concurrency": "cutout_concurrency",
    "rate_limit_per_s": "cutout_rate_limit_per_s",
    "max_attempts": "cutout_max_attempts",
    "backoff_base_s": "cutout_backoff_base_s",
    "coadd_root": "cutout_coadd_root",
    "mosaic_per_group": "mosaic_per_group",
    "gallery_per_group": "gallery_per_group",
    "audit_n_boot": "audit_n_boot",
    "audit_flag_threshold": "audit_flag_threshold",
}


class CutoutSettingsError(ValueError):
    """A cutout setting is missing or invalid; the message names the dbt var to fix."""


@dataclass(frozen=True)
class CutoutSettings:
    """How the cutouts are made and checked; each field is the dbt var named in :data:`VARS`.

    ``root`` and ``coadd_root`` are folders or ``s3://`` prefixes; ``bands`` is a string of distinct
    band letters in channel order; ``rate_limit_per_s`` may be None (no limit).
    """

    source: str
    root: str
    seed: int
    size: int
    pixscale: float
    bands: str
    concurrency: int
    rate_limit_per_s: float | None
    max_attempts: int
    backoff_base_s: float
    coadd_root: str | None
    mosaic_per_group: int
    gallery_per_group: int
    audit_n_boot: int
    audit_flag_threshold: float

    def __post_init__(self) -> None:
        from stronglens.cutouts.sources import SOURCES

        if self.source not in SOURCES:
            raise CutoutSettingsError(
                f"cutout_source must be one of {', '.join(sorted(SOURCES))}, not {self.source!r}"
            )
        if not self.root:
            raise CutoutSettingsError("cutout_root is empty: name a folder or s3:// prefix")
        if self.size < 1 or self.pixscale <= 0:
            raise CutoutSettingsError(
                f"cutout_size must be >= 1 and cutout_pixscale > 0 (got {self.size}, {self.pixscale})"
            )
        if not self.bands or len(set(self.bands)) != len(self.bands):
            raise CutoutSettingsError(f"cutout_bands must name distinct bands, e.g. grz; got {self.bands!r}")
        if self.concurrency < 1 or self.max_attempts < 1:
            raise CutoutSettingsError("cutout_concurrency and cutout_max_attempts must be >= 1")
        SOURCES[self.source].check(self)

    @property
    def shape(self) -> tuple[int, int, int]:
        """The stored array's shape: ``(size, size, len(bands))``."""
        return (self.size, self.size, len(self.bands))

    @classmethod
    def from_config(cls, config: str | Mapping[str, Any]) -> CutoutSettings:
        """Build from the ``cutout_settings`` model config (JSON text or a mapping keyed by field)."""
        values = json.loads(config) if isinstance(config, str) else dict(config)
        missing = sorted(set(VARS) - set(values))
        unknown = sorted(set(values) - set(VARS))
        if missing or unknown:
            raise CutoutSettingsError(
                f"cutout_settings config: missing {[VARS[k] for k in missing]}, unknown keys {unknown}; "
                "it is built from the vars in models/marts/cutouts/_cutouts__models.yml"
            )
        if values["root"] is None:  # the cutout_root var's null: the store stronglens.paths resolves
            values["root"] = paths.cutout_root()
        return cls(**{f.name: _typed(f.name, f.type, values[f.name]) for f in fields(cls)})

    @classmethod
    def from_vars(cls, dbt_vars: Mapping[str, Any]) -> CutoutSettings:
        """Build from dbt var values keyed by var name (``cutout_size``, ...)."""
        missing = sorted(v for v in VARS.values() if v not in dbt_vars)
        if missing:
            raise CutoutSettingsError(f"dbt vars {missing} are not set")
        return cls.from_config({field: dbt_vars[var] for field, var in VARS.items()})

    @classmethod
    def project_defaults(cls, project_dir: Path | None = None, **overrides: Any) -> CutoutSettings:
        """The defaults of ``dbt_project.yml``, with ``overrides`` by field name on top."""
        project = paths.project_root() if project_dir is None else project_dir
        dbt_vars = yaml.safe_load((project / "dbt_project.yml").read_text())["vars"]
        values = {field: dbt_vars.get(var) for field, var in VARS.items()}
        values.update(overrides)
        return cls.from_config(values)


def _typed(name: str, annotation: object, value: Any) -> Any:
    """Cast one config value to its field's type; an error names the var and the bad value."""
    optional = "None" in str(annotation)
    if value is None:
        if optional:
            return None
        raise CutoutSettingsError(f"{VARS[name]} is null; it needs a value")
    kind = str(annotation).replace(" | None", "")
    try:
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("not a whole number")
            return int(value)
        if kind == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise CutoutSettingsError(f"{VARS[name]}={value!r} is not a valid {kind} ({exc})") from exc
