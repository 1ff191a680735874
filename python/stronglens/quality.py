"""The quality gate: Great Expectations suites over a build's marts, offline Data Docs, promotion.

Why a second gate after dbt's data tests: the dbt tests prove keys, nulls and accepted values row by
row; users trust the training set only if every build also proves the *science* holds -- match rate
and separations of a real crossmatch, a live N2 mix in band, the neg:pos ratio, the spatial split --
judged against the thresholds that build was made with.  A build is served as current only once
its check passed (:func:`stronglens.warehouse.resolve_snapshot`).

Where things live
-----------------
``expectations/`` (versioned with the code) holds one suite per ``<suite>.yml`` with its frame
``<suite>.sql``, ``thresholds.yml`` (bands that are not dbt vars) and the offline stylesheet.
A suite file has ``description``, ``frame`` (the SQL file), ``row_key`` (columns that identify an
unexpected row in reports) and ``expectations``: each an item with ``type`` (a Great Expectations
expectation), optional ``why`` (shown in the Data Docs) and the expectation's arguments.  A string
argument ``$name`` refers to an expectation parameter (:func:`expectation_parameters`); the frame
SQL uses the same names as DuckDB named parameters.  Frames are computed in DuckDB on the build's
DuckLake snapshot -- marts and SQL aggregates, never the 100M-row pool -- and validated in pandas
(the route that works with GE 1.24 here; the SQL route through duckdb-engine does not).

``$STRONGLENS_HOME/gx/`` is the Great Expectations file context (generated state: suites rebuilt from
``expectations/`` on every check, validation results of every check).  ``$STRONGLENS_HOME/reports/``
is the Data Docs site: ``index.html`` lists every check of every build, one page per suite and
check.  The pages are post-processed to work offline (remote scripts and stylesheets removed, a
local stylesheet linked, the JavaScript-drawn index replaced by a static one).  Each check appends
a row to the lake table ``build_checks`` (build_id, checked_at, success, summary JSON).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import yaml

from stronglens import paths

#: Suite definitions, thresholds and stylesheet, relative to the project root.
EXPECTATIONS_DIRNAME = "expectations"
THRESHOLDS_FILE = "thresholds.yml"
OFFLINE_CSS_FILE = "data_docs_offline.css"
#: The Data Docs site under $STRONGLENS_HOME (GE's own state goes to $STRONGLENS_HOME/gx).
REPORTS_DIRNAME = "reports"
#: The lake table recording every check.
CHECKS_TABLE = "build_checks"
#: Names inside the Great Expectations context.
DATASOURCE_NAME = "stronglens_frames"
BATCH_DEFINITION_NAME = "whole_frame"
DATA_DOCS_SITE = "reports"
#: Unexpected rows quoted per failed expectation in the console summary (the Data Docs list 20).
EXAMPLES_PER_FAILURE = 5
#: Marker that a Data Docs page has already been made offline-readable.
OFFLINE_MARKER = '<meta name="stronglens-offline" content="1">'

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


@dataclass(frozen=True)
class Failure:
    """A failed expectation: what was expected of which column, and what was observed."""

    expectation: str
    column: str | None
    expected: str
    observed: str

    def describe(self) -> str:
        return f"{self.expectation}({self.expected}): observed {self.observed}"


@dataclass(frozen=True)
class SuiteOutcome:
    """The result of one suite on one frame (``error`` when the frame could not be computed)."""

    suite: str
    success: bool
    evaluated: int
    passed: int
    failures: tuple[Failure, ...] = ()
    error: str | None = None
    page: str | None = None
    skipped: str | None = None

    def lines(self) -> list[str]:
        """The console summary of this suite: a header line and one line per failure."""
        if self.skipped is not None:
            return [f"{self.suite:<22} skip   {self.skipped}"]
        if self.error is not None:
            return [f"{self.suite:<22} ERROR  {self.error}"]
        status = "ok    " if self.success else "FAILED"
        head = f"{self.suite:<22} {status} {self.passed}/{self.evaluated} expectations passed"
        return [head] + [f"    {f.describe()}" for f in self.failures]


@dataclass
class CheckReport:
    """The outcome of ``stronglens check`` on one build, as printed and as stored in build_checks."""

    build_id: int
    snapshot_id: int
    build_status: str
    checked_at: str
    duration_s: float
    reports_dir: str
    suites: list[SuiteOutcome] = field(default_factory=list)

    @property
    def success(self) -> bool:
        """Passed: the dbt build itself succeeded and every suite passed."""
        return self.build_status == "success" and all(s.success for s in self.suites)

    def format(self) -> str:
        """The concise per-suite summary the CLI prints."""
        lines = [f"Quality check of build {self.build_id} (DuckLake snapshot {self.snapshot_id}):"]
        if self.build_status != "success":
            lines.append(f"  dbt build status is '{self.build_status}': the build cannot pass its check.")
        lines += ["  " + line for s in self.suites for line in s.lines()]
        verdict = "PASSED: served as the current build" if self.success else "FAILED: not served as current"
        lines.append(f"{verdict} ({self.duration_s:.1f} s). Data Docs: {self.reports_dir}/index.html")
        return "\n".join(lines)

    def to_json(self) -> str:
        """The summary JSON recorded in ``build_checks.summary``."""
        return json.dumps({**asdict(self), "success": self.success}, sort_keys=True)


# --- definitions -------------------------------------------------------------------------------


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


def load_thresholds(directory: Path | None = None) -> dict[str, Any]:
    """The bands and settings of ``expectations/thresholds.yml`` that are not dbt vars."""
    path = (directory or expectations_dir()) / THRESHOLDS_FILE
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, Mapping):
        raise QualityConfigError(f"{path}: expected a mapping of threshold names to values")
    return dict(raw)


def expectation_parameters(build_vars: Mapping[str, Any], thresholds: Mapping[str, Any]) -> dict[str, Any]:
    """The values that ``$name`` references resolve to, for one build.

    Every dbt var the build recorded and every threshold, under its own name; every two-number list
    ``x`` (a band) also as ``x_min`` and ``x_max``; and three derived lists: ``split_names`` (the keys
    of split_allocations, sorted), ``split_fractions`` (their allocations, same order) and
    ``n2_categories`` (n2_priority plus 'N1').
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
        params["n2_categories"] = [*build_vars["n2_priority"], "N1"]
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


def _require(names: Iterable[str], params: Mapping[str, Any], suite: SuiteDefinition) -> None:
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
    _require(names, params, suite)
    return con.execute(suite.frame_sql, {n: params[n] for n in names}).df()


# --- Great Expectations --------------------------------------------------------------------------


class GxRunner:
    """A Great Expectations file context whose Data Docs site is ``reports_dir``.

    Kept under $STRONGLENS_HOME (not the repository): it is generated state.  Suites, validation
    definitions and checkpoints are rebuilt from the definitions on every run, so editing a file in
    ``expectations/`` takes effect at the next check.
    """

    def __init__(self, home: Path, reports_dir: Path) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        home.mkdir(parents=True, exist_ok=True)
        # GE puts its file context in <project_root_dir>/gx, i.e. $STRONGLENS_HOME/gx.
        self.context = gx.get_context(mode="file", project_root_dir=str(home))
        self.context.enable_analytics(False)
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.context.variables.save()
        site = {
            "class_name": "SiteBuilder",
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(reports_dir),
            },
        }
        sites = self.context.list_data_docs_sites()
        for name in list(sites):
            if name != DATA_DOCS_SITE:
                self.context.delete_data_docs_site(name)
        if DATA_DOCS_SITE in sites:
            self.context.update_data_docs_site(DATA_DOCS_SITE, site)
        else:
            self.context.add_data_docs_site(DATA_DOCS_SITE, site)
        try:
            self.datasource = self.context.data_sources.get(DATASOURCE_NAME)
        except KeyError:
            self.datasource = self.context.data_sources.add_pandas(DATASOURCE_NAME)

    def _batch_definition(self, suite_name: str) -> Any:
        try:
            asset = self.datasource.get_asset(suite_name)
        except LookupError:
            asset = self.datasource.add_dataframe_asset(suite_name)
        try:
            return asset.get_batch_definition(BATCH_DEFINITION_NAME)
        except KeyError:
            return asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION_NAME)

    def _gx_suite(self, suite: SuiteDefinition) -> Any:
        import great_expectations as gx
        from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

        gx_suite = gx.ExpectationSuite(name=suite.name, notes=suite.description)
        for i, spec in enumerate(suite.expectations):
            kwargs = {
                k: ({"$PARAMETER": v[1:]} if isinstance(v, str) and v.startswith("$") else v)
                for k, v in spec.kwargs.items()
            }
            try:
                config = ExpectationConfiguration(type=spec.type, kwargs=kwargs, notes=spec.why or None)
                gx_suite.add_expectation(config.to_domain_obj())
            except Exception as exc:  # GE raises many types for a bad type or argument
                raise QualityConfigError(f"{suite.path}, expectation {i + 1} ({spec.type}): {exc}") from exc
        return self.context.suites.add_or_update(gx_suite)

    def validate(
        self,
        suite: SuiteDefinition,
        frame: pd.DataFrame,
        params: Mapping[str, Any],
        run_name: str,
        run_time: datetime,
    ) -> SuiteOutcome:
        """Validate ``frame`` against ``suite`` and write its Data Docs page (one check = one
        ``run_name``/``run_time`` shared by all its suites, so the index groups them)."""
        import great_expectations as gx
        from great_expectations.core.run_identifier import RunIdentifier

        _require(suite.parameter_names(), params, suite)
        missing = [c for c in suite.row_key if c not in frame.columns]
        if missing:
            raise QualityConfigError(f"{suite.path}: row_key column(s) {missing} are not in the frame")
        definition = self.context.validation_definitions.add_or_update(
            gx.ValidationDefinition(
                name=suite.name, data=self._batch_definition(suite.name), suite=self._gx_suite(suite)
            )
        )
        checkpoint = self.context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=suite.name,
                validation_definitions=[definition],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=[DATA_DOCS_SITE])],
                result_format={
                    "result_format": "SUMMARY",
                    "unexpected_index_column_names": list(suite.row_key),
                },
            )
        )
        used = {n: params[n] for n in suite.parameter_names()}
        result = checkpoint.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters=used,
            run_id=RunIdentifier(run_name=run_name, run_time=run_time),
        )
        ((key, validation),) = result.run_results.items()
        failures = tuple(_failure(r) for r in validation.results if not r.success)
        return SuiteOutcome(
            suite=suite.name,
            success=bool(validation.success),
            evaluated=len(validation.results),
            passed=len(validation.results) - len(failures),
            failures=failures,
            page="validations/" + "/".join(str(part) for part in key.to_tuple()) + ".html",
        )

    def list_validations(self) -> list[tuple[tuple[str, ...], bool, int, int]]:
        """(key tuple, success, evaluated, passed) of every validation result in the store."""
        store = self.context.validation_results_store
        rows = []
        for key in store.list_keys():
            result = store.get(key)
            stats = result.statistics
            rows.append(
                (
                    tuple(str(p) for p in key.to_tuple()),
                    bool(result.success),
                    int(stats["evaluated_expectations"]),
                    int(stats["successful_expectations"]),
                )
            )
        return rows


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple | set):
        items = [_fmt(v) for v in value]
        return "[" + ", ".join(items[:8]) + (", ..." if len(items) > 8 else "") + "]"
    return str(value)


def _failure(result: Any) -> Failure:
    """Turn a failed GE expectation result into the one line a person needs."""
    config = result.expectation_config
    kwargs = dict(config.kwargs)
    column = kwargs.get("column")
    shown = ("column", "value_set", "min_value", "max_value", "strict_min", "strict_max")
    expected = ", ".join(f"{k}={_fmt(kwargs[k])}" for k in shown if kwargs.get(k) is not None)
    info = result.exception_info or {}
    if info.get("raised_exception"):
        observed = f"error: {info.get('exception_message')}"
    elif "observed_value" in result.result:
        observed = _fmt(result.result["observed_value"])
    else:
        res = result.result
        examples = res.get("partial_unexpected_index_list") or [
            {column: v} for v in res.get("partial_unexpected_list", [])
        ]
        shown_rows = "; ".join(
            ", ".join(f"{k}={_fmt(v)}" for k, v in row.items()) for row in examples[:EXAMPLES_PER_FAILURE]
        )
        observed = (
            f"{res.get('unexpected_count')} of {res.get('element_count')} rows unexpected, e.g. {shown_rows}"
        )
    return Failure(expectation=config.type, column=column, expected=expected, observed=observed)


# --- offline Data Docs --------------------------------------------------------------------------

_REMOTE = r"""["']https?://[^"']*["']"""
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script\s*>", re.DOTALL | re.IGNORECASE)
_REMOTE_LINK = re.compile(rf"<link\b[^>]*\bhref\s*=\s*{_REMOTE}[^>]*>", re.IGNORECASE)
_REMOTE_IMG = re.compile(r"<img\b[^>]*?\bsrc\s*=\s*[\"'](https?://[^\"']*)[\"'][^>]*>", re.IGNORECASE)
#: A reference into the site's static/ folder; GE writes some with the wrong depth (favicon links).
_STATIC_REF = re.compile(r"""((?:src|href)\s*=\s*["'])(?:\.\.?/)*static/""", re.IGNORECASE)
_CSS_REMOTE_URL = re.compile(r"url\(\s*[\"']?(https?://[^\"')]*)[\"']?\s*\)", re.IGNORECASE)


def _local_image(url: str, static_images: Path, relative_to: Path) -> str | None:
    """The relative path of the local copy of a remote image (GE ships its logos), if any."""
    name = url.split("?", 1)[0].rsplit("/", 1)[-1]
    local = static_images / name
    return os.path.relpath(local, relative_to) if local.is_file() else None


def make_offline(reports_dir: Path, stylesheet: Path) -> int:
    """Make every Data Docs page under ``reports_dir`` readable without a network; return pages changed.

    References into the site's ``static/`` folder are re-pointed from each page's own depth (GE
    writes some one level short).  Scripts are dropped (all of them: the inline ones only drive the
    CDN libraries), remote stylesheets are replaced by ``stylesheet`` (copied into the site), remote
    images by GE's local copies where they exist (else removed), and remote ``url()`` in the site's
    CSS files, ``<style>`` blocks and style attributes likewise (else ``none``).
    """
    styles = reports_dir / "static" / "styles"
    images = reports_dir / "static" / "images"
    styles.mkdir(parents=True, exist_ok=True)
    local_css = styles / stylesheet.name
    shutil.copyfile(stylesheet, local_css)

    def css_urls(text: str, folder: Path) -> str:
        """Remote url(...) in CSS (files, <style> blocks, style attributes) -> local copy or none."""

        def replace(match: re.Match[str]) -> str:
            local = _local_image(match.group(1), images, folder)
            return f"url('{local}')" if local else "none"

        return _CSS_REMOTE_URL.sub(replace, text)

    for css in styles.glob("*.css"):
        text = css.read_text()
        fixed = css_urls(text, css.parent)
        if fixed != text:
            css.write_text(fixed)
    changed = 0
    for page in reports_dir.rglob("*.html"):
        text = page.read_text()
        if OFFLINE_MARKER in text:
            continue

        def img(match: re.Match[str], page: Path = page) -> str:
            local = _local_image(match.group(1), images, page.parent)
            return match.group(0).replace(match.group(1), local) if local else ""

        static = os.path.relpath(reports_dir / "static", page.parent)
        text = _STATIC_REF.sub(lambda m, static=static: f"{m.group(1)}{static}/", text)
        text = _SCRIPT.sub("", text)
        text = _REMOTE_LINK.sub("", text)
        text = _REMOTE_IMG.sub(img, text)
        text = css_urls(text, page.parent)
        link = f'<link rel="stylesheet" href="{os.path.relpath(local_css, page.parent)}">'
        text = re.sub(r"<head>", f"<head>\n{OFFLINE_MARKER}\n{link}", text, count=1, flags=re.IGNORECASE)
        page.write_text(text)
        changed += 1
    return changed


def _build_number(run_name: str) -> int:
    match = re.fullmatch(r"build-(\d+)", run_name)
    return int(match.group(1)) if match else -1


def _readable_time(run_time: str) -> str:
    """GE's run-time key '20261127T121620.955150Z' as '2026-11-27 12:16:20'."""
    try:
        return datetime.strptime(run_time, "%Y%m%dT%H%M%S.%fZ").strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return run_time


def write_index(reports_dir: Path, validations: list[tuple[tuple[str, ...], bool, int, int]]) -> Path:
    """Replace GE's JavaScript-drawn index with a static table of every check: newest build first,
    then newest check of that build first, suites in name order."""
    rows = []
    ordered = sorted(validations, key=lambda v: v[0][0])
    ordered.sort(key=lambda v: v[0][2], reverse=True)  # run time keys sort chronologically as text
    ordered.sort(key=lambda v: _build_number(v[0][1]), reverse=True)
    for (suite, run_name, run_time, *batch), success, evaluated, passed in ordered:
        page = "validations/" + "/".join([suite, run_name, run_time, *batch]) + ".html"
        status = "passed" if success else "failed"
        rows.append(
            "<tr>"
            f"<td>{html.escape(run_name)}</td><td>{html.escape(_readable_time(run_time))}</td>"
            f'<td><a href="expectations/{html.escape(suite)}.html">{html.escape(suite)}</a></td>'
            f'<td class="{status}">{status}</td><td>{passed}/{evaluated}</td>'
            f'<td><a href="{html.escape(page)}">results</a></td>'
            "</tr>"
        )
    document = f"""<!DOCTYPE html>
<html>
<head>
{OFFLINE_MARKER}
<meta charset="utf-8">
<title>stronglens quality checks</title>
<link rel="stylesheet" href="static/styles/{OFFLINE_CSS_FILE}">
</head>
<body>
<div class="stronglens-index">
<h1>stronglens quality checks</h1>
<p>Every <code>stronglens check</code> of every build: one row per suite. A build is served as current
only when all its suites passed (see <code>stronglens builds</code>). Suite definitions live in
<code>expectations/</code> in the repository.</p>
<table class="table table-sm table-bordered">
<thead><tr><th>Build</th><th>Checked (UTC)</th><th>Suite</th><th>Result</th><th>Expectations passed</th>
<th>Details</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
</div>
</body>
</html>
"""
    index = reports_dir / "index.html"
    index.write_text(document)
    return index


# --- the check ----------------------------------------------------------------------------------


def validate_frames(
    frames: Mapping[str, pd.DataFrame | str | None],
    suites: Iterable[SuiteDefinition],
    params: Mapping[str, Any],
    run_name: str,
    home: Path,
) -> list[SuiteOutcome]:
    """Validate each suite's frame (a string = the error that prevented computing it; None = skipped,
    the build has no table the suite requires) and write the offline Data Docs under ``home/reports``.
    Tests call this directly with doctored frames."""
    site = home / REPORTS_DIRNAME
    runner = GxRunner(home, site)
    run_time = datetime.now(UTC)
    outcomes = []
    for suite in suites:
        frame = frames[suite.name]
        if frame is None:
            missing = ", ".join(suite.requires)
            outcomes.append(
                SuiteOutcome(suite.name, True, 0, 0, skipped=f"the build has no {missing} (not selected)")
            )
        elif isinstance(frame, str):
            outcomes.append(SuiteOutcome(suite=suite.name, success=False, evaluated=0, passed=0, error=frame))
        else:
            outcomes.append(runner.validate(suite, frame, params, run_name, run_time))
    make_offline(site, expectations_dir() / OFFLINE_CSS_FILE)
    write_index(site, runner.list_validations())
    return outcomes


def _build_row(build_id: int | None) -> tuple[int, int, str, dict[str, Any]]:
    """(build_id, snapshot_id, status, vars) of ``build_id``, default the newest build."""
    from stronglens.warehouse import WarehouseError, connect_lake

    con = connect_lake()
    try:
        rows = con.execute(
            "select build_id, snapshot_id, status, vars_json from build_runs order by build_id"
        ).fetchall()
    except duckdb.Error as exc:
        raise WarehouseError(
            f"Cannot read build_runs ({exc}): build the warehouse with `stronglens build`."
        ) from exc
    finally:
        con.close()
    if not rows:
        raise WarehouseError("No builds recorded yet: run `stronglens build` first.")
    chosen = rows[-1] if build_id is None else next((r for r in rows if r[0] == build_id), None)
    if chosen is None:
        known = ", ".join(str(r[0]) for r in rows)
        raise WarehouseError(
            f"No build {build_id} in this warehouse (builds: {known}). See `stronglens builds`."
        )
    return int(chosen[0]), int(chosen[1]), str(chosen[2]), json.loads(chosen[3])


def record_check(report: CheckReport) -> None:
    """Append the check to the lake table ``build_checks`` (a new DuckLake snapshot)."""
    from stronglens.storage import connect_duckdb
    from stronglens.warehouse import LAKE_ALIAS, WarehouseError

    con = connect_duckdb()
    try:
        con.execute("LOAD ducklake")
        con.execute(f"ATTACH 'ducklake:{paths.catalog_path()}' AS {LAKE_ALIAS}")
        con.execute(
            f"create table if not exists {LAKE_ALIAS}.main.{CHECKS_TABLE} "
            "(build_id integer, checked_at timestamp with time zone, success boolean, summary json)"
        )
        con.execute(
            f"insert into {LAKE_ALIAS}.main.{CHECKS_TABLE} "
            "values (?, cast(? as timestamp with time zone), ?, ?)",
            [report.build_id, report.checked_at, report.success, report.to_json()],
        )
    except duckdb.Error as exc:
        raise WarehouseError(
            f"Cannot record the check in {paths.catalog_path()} ({exc}). Is a build running? Retry after it."
        ) from exc
    finally:
        con.close()


def run_check(build_id: int | None = None) -> CheckReport:
    """Run every suite against build ``build_id`` (default: the newest), write the Data Docs and
    record the outcome in ``build_checks``.  The report says whether the build may be served."""
    from stronglens.warehouse import connect_lake

    started = time.perf_counter()
    build, snapshot, status, build_vars = _build_row(build_id)
    suites = load_suites()
    params = expectation_parameters(build_vars, load_thresholds())
    frames: dict[str, pd.DataFrame | str | None] = {}
    con = connect_lake(snapshot)
    try:
        listed = con.execute("select table_name from information_schema.tables").fetchall()
        tables = {row[0] for row in listed}
        for suite in suites:
            if not set(suite.requires) <= tables:
                frames[suite.name] = None
                continue
            try:
                frames[suite.name] = compute_frame(con, suite, params)
            except duckdb.Error as exc:
                frames[suite.name] = f"cannot compute the frame {suite.frame_path.name}: {exc}"
    finally:
        con.close()
    home = paths.warehouse_home()
    outcomes = validate_frames(frames, suites, params, f"build-{build}", home)
    report = CheckReport(
        build_id=build,
        snapshot_id=snapshot,
        build_status=status,
        checked_at=datetime.now(UTC).isoformat(),
        duration_s=time.perf_counter() - started,
        reports_dir=str(home / REPORTS_DIRNAME),
        suites=outcomes,
    )
    record_check(report)
    return report
