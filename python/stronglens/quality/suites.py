"""Quality suite definitions: ``expectations/<suite>.yml`` + frame SQL, thresholds, parameters.

A suite file has ``description``, ``frame`` (the SQL file), ``row_key`` (columns that identify an
unexpected row in reports) and ``expectations``: each an item with ``type`` (a Great Expectations
expectation), optional ``why`` (shown in the Data Docs) and the expectation's arguments.  A string
argument ``$name`` refers to an expectation parameter (:func:`expectation_parameters`); the frame
SQL uses the same names as DuckDB named parameters.  Frames are computed in DuckDB on the build's
DuckLake snapshot -- marts and SQL aggregates, never the 100M-row pool.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import yaml

from stronglens import paths

#: Suite definitions, thresholds and stylesheet, relative to the project root.
EXPECTATIONS_DIRNAME = "expectations"
THRESHOLDS_FILE = "thresholds.yml"
THRESHOLDS_ENV = "STRONGLENS_THRESHOLDS"

_PARAMETER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_SUITE_KEYS = {"description", "frame", "row_key", "expectations"}
#: Optional suite key: lake tables the frame reads that only some builds make (e.g. the training
#: marts, absent from a `--exclude tag:training` build); the suite is skipped when one is missing.
_OPTIONAL_SUITE_KEYS = {"requires"}


class QualityConfigError(ValueError):
    """A suite definition, threshold or build var is unusable; the message names the file and key."""


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation of a suite file: its GE type, arguments (``$name`` = parameter) and why."""

    type: str
    kwargs: dict[str, Any]
    why: str


@dataclass(frozen=True)
class SuiteDefinition:
    """A suite as written in ``expectations/<name>.yml`` with the SQL of its frame."""

    name: str
    description: str
    frame_sql: str
    row_key: tuple[str, ...]
    expectations: tuple[ExpectationSpec, ...]
    path: Path
    frame_path: Path
    requires: tuple[str, ...] = ()

    def frame_parameter_names(self) -> set[str]:
        """The DuckDB named parameters (``$name``) of the frame SQL, comments excluded."""
        return set(_PARAMETER.findall(_strip_sql_comments(self.frame_sql)))

    def parameter_names(self) -> set[str]:
        """Every parameter the frame SQL or an expectation refers to."""
        names = self.frame_parameter_names()
        for spec in self.expectations:
            names |= {v[1:] for v in spec.kwargs.values() if isinstance(v, str) and v.startswith("$")}
        return names


def expectations_dir() -> Path:
    """The versioned suite definitions: ``<project>/expectations``."""
    return paths.project_root() / EXPECTATIONS_DIRNAME


def _strip_sql_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


def _parse_expectation(item: Any, where: str) -> ExpectationSpec:
    if not isinstance(item, Mapping) or not isinstance(item.get("type"), str):
        raise QualityConfigError(
            f"{where}: each expectation needs a `type` (e.g. expect_column_values_to_be_unique)"
        )
    kwargs = {k: v for k, v in item.items() if k not in ("type", "why")}
    return ExpectationSpec(type=item["type"], kwargs=kwargs, why=str(item.get("why", "")))


def load_suite(path: Path) -> SuiteDefinition:
    """Read one suite file and its frame SQL; raise :class:`QualityConfigError` naming what is wrong."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise QualityConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, Mapping) or set(raw) - _OPTIONAL_SUITE_KEYS != _SUITE_KEYS:
        found = sorted(raw) if isinstance(raw, Mapping) else type(raw).__name__
        raise QualityConfigError(
            f"{path}: a suite file has exactly the keys {sorted(_SUITE_KEYS)}; found {found}"
        )
    frame_path = path.parent / str(raw["frame"])
    if not frame_path.is_file():
        raise QualityConfigError(f"{path}: frame SQL {frame_path} does not exist")
    items = raw["expectations"]
    if not isinstance(items, list) or not items:
        raise QualityConfigError(f"{path}: `expectations` must be a non-empty list")
    specs = tuple(_parse_expectation(item, f"{path}, expectation {i + 1}") for i, item in enumerate(items))
    return SuiteDefinition(
        name=path.stem,
        description=" ".join(str(raw["description"]).split()),
        frame_sql=frame_path.read_text(),
        row_key=tuple(raw["row_key"]),
        expectations=specs,
        path=path,
        frame_path=frame_path,
        requires=tuple(raw.get("requires") or ()),
    )


def load_suites(directory: Path | None = None) -> list[SuiteDefinition]:
    """Every suite in ``directory`` (default ``expectations/``), sorted by name."""
    folder = directory or expectations_dir()
    files = sorted(p for p in folder.glob("*.yml") if p.name != THRESHOLDS_FILE)
    if not files:
        raise QualityConfigError(f"No suite definitions (*.yml) in {folder}")
    return [load_suite(p) for p in files]


def thresholds_path(directory: Path | None = None) -> Path:
    """The thresholds file: ``directory``'s, else ``$STRONGLENS_THRESHOLDS`` (a versioned file of
    another sky, say), else ``expectations/thresholds.yml``."""
    if directory is not None:
        return directory / THRESHOLDS_FILE
    env = os.environ.get(THRESHOLDS_ENV)
    return Path(env) if env else expectations_dir() / THRESHOLDS_FILE


def load_thresholds(directory: Path | None = None) -> dict[str, Any]:
    """The bands and settings of the thresholds file (:func:`thresholds_path`): keys that are not
    dbt vars, plus optionally a value for a ``band`` var (vars_schema.yml) that replaces its default."""
    path = thresholds_path(directory)
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, Mapping):
        raise QualityConfigError(f"{path}: expected a mapping of threshold names to values")
    return dict(raw)


def n2_priority(build_vars: Mapping[str, Any]) -> list[str]:
    """The N2 categories of a build, in priority order: the priority of the preset its var
    ``n2_definitions`` names in ``n2_presets`` (builds made before presets existed recorded
    ``n2_priority`` itself)."""
    if "n2_definitions" in build_vars:
        return list(build_vars["n2_presets"][build_vars["n2_definitions"]]["priority"])
    return list(build_vars["n2_priority"])


def expectation_parameters(build_vars: Mapping[str, Any], thresholds: Mapping[str, Any]) -> dict[str, Any]:
    """The values that ``$name`` references resolve to, for one build.

    Every dbt var the build recorded and every threshold, under its own name; every two-number list
    ``x`` (a band) also as ``x_min`` and ``x_max``; and three derived lists: ``split_names`` (the keys
    of split_allocations, sorted), ``split_fractions`` (their allocations, same order) and
    ``n2_categories`` (the active N2 preset's priority plus 'N1', see :func:`n2_priority`).
    """
    shadowed = sorted(set(build_vars) & set(thresholds))
    if shadowed:
        raise QualityConfigError(f"{THRESHOLDS_FILE} redefines dbt var(s) {shadowed}: rename them there")
    params: dict[str, Any] = {**build_vars, **thresholds}
    for name, value in list(params.items()):
        if (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        ):
            params[f"{name}_min"], params[f"{name}_max"] = value
    try:
        allocations = build_vars["split_allocations"]
        params["n2_categories"] = [*n2_priority(build_vars), "N1"]
        if thresholds["nearest_candidate_search_arcsec"] < build_vars["exclusion_radius_arcsec"]:
            raise QualityConfigError(
                f"{THRESHOLDS_FILE}: nearest_candidate_search_arcsec must be >= the build's "
                f"exclusion_radius_arcsec ({build_vars['exclusion_radius_arcsec']})"
            )
    except KeyError as exc:
        raise QualityConfigError(f"the build's vars or {THRESHOLDS_FILE} lack {exc}") from exc
    params["split_names"] = sorted(allocations)
    params["split_fractions"] = [float(allocations[k]) for k in params["split_names"]]
    return params


def require_parameters(names: Iterable[str], params: Mapping[str, Any], suite: SuiteDefinition) -> None:
    missing = sorted(set(names) - set(params))
    if missing:
        raise QualityConfigError(
            f"{suite.path}: unknown parameter(s) {['$' + m for m in missing]}; known: dbt vars, "
            f"{THRESHOLDS_FILE} keys, their _min/_max, split_names, split_fractions, n2_categories"
        )


def compute_frame(
    con: duckdb.DuckDBPyConnection, suite: SuiteDefinition, params: Mapping[str, Any]
) -> pd.DataFrame:
    """Run the suite's frame SQL on ``con`` (the build's snapshot) with its named parameters."""
    names = suite.frame_parameter_names()
    require_parameters(names, params, suite)
    return con.execute(suite.frame_sql, {n: params[n] for n in names}).df()
