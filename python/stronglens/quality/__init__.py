"""The quality gate: Great Expectations suites over a build's marts, offline Data Docs, promotion.

Why a second gate after dbt's data tests: the dbt tests prove keys, nulls and accepted values row by
row; users trust the training set only if every build also proves the *science* holds -- match rate
and separations of a real crossmatch, a live N2 mix in band, the neg:pos ratio, the spatial split.
A build is served as current only once its check passed (:func:`stronglens.warehouse.resolve_snapshot`).

A gate no build can loosen: the bands a build is judged with come from ``expectations/thresholds.yml``
and the project defaults of the vars whose role is ``band`` in ``vars_schema.yml`` -- never from the
build's own vars.  A build whose target vars differ from the defaults (``--vars``) is reported as
custom, and passes (is served as current) only with ``stronglens check --accept-custom-vars``; the
acceptance is recorded in ``build_checks``.

The package: :mod:`~stronglens.quality.suites` (definitions, thresholds, parameters, frames),
:mod:`~stronglens.quality.gx` (Great Expectations), :mod:`~stronglens.quality.datadocs` (offline
Data Docs); this module runs a check.  ``$STRONGLENS_HOME/reports/`` is the Data Docs site; each
check appends a row to the lake table ``build_checks`` (:func:`stronglens.warehouse.record_check`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from stronglens import paths, varschema
from stronglens.quality.datadocs import OFFLINE_CSS_FILE, REPORTS_DIRNAME, make_offline, write_index
from stronglens.quality.gx import Failure, GxRunner, SuiteOutcome
from stronglens.quality.suites import (
    THRESHOLDS_FILE,
    ExpectationSpec,
    QualityConfigError,
    SuiteDefinition,
    compute_frame,
    expectation_parameters,
    expectations_dir,
    load_suite,
    load_suites,
    load_thresholds,
)
from stronglens.warehouse import CHECKS_TABLE

__all__ = [
    "CHECKS_TABLE",
    "REPORTS_DIRNAME",
    "THRESHOLDS_FILE",
    "CheckReport",
    "ExpectationSpec",
    "Failure",
    "QualityConfigError",
    "SuiteDefinition",
    "SuiteOutcome",
    "compute_frame",
    "expectation_parameters",
    "gate_vars",
    "load_suite",
    "load_suites",
    "load_thresholds",
    "run_check",
    "validate_frames",
]


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
    #: Target/band vars of the build that differ from the project defaults (name -> build value).
    custom_vars: dict[str, Any] = field(default_factory=dict)
    #: Whether the check was run with --accept-custom-vars.
    accepted_custom_vars: bool = False

    @property
    def success(self) -> bool:
        """Passed: the dbt build succeeded, every suite passed, and any custom vars were accepted."""
        return (
            self.build_status == "success"
            and all(s.success for s in self.suites)
            and (not self.custom_vars or self.accepted_custom_vars)
        )

    def format(self) -> str:
        """The concise per-suite summary the CLI prints."""
        lines = [f"Quality check of build {self.build_id} (DuckLake snapshot {self.snapshot_id}):"]
        if self.build_status != "success":
            lines.append(f"  dbt build status is '{self.build_status}': the build cannot pass its check.")
        if self.custom_vars:
            shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(self.custom_vars.items()))
            state = (
                "accepted (--accept-custom-vars)"
                if self.accepted_custom_vars
                else "served as current only with `stronglens check --accept-custom-vars`"
            )
            lines.append(f"  custom build: non-default vars {shown}; {state}")
        lines += ["  " + line for s in self.suites for line in s.lines()]
        verdict = "PASSED: served as the current build" if self.success else "FAILED: not served as current"
        lines.append(f"{verdict} ({self.duration_s:.1f} s). Data Docs: {self.reports_dir}/index.html")
        return "\n".join(lines)

    def to_json(self) -> str:
        """The summary JSON recorded in ``build_checks.summary``."""
        return json.dumps({**asdict(self), "success": self.success}, sort_keys=True, default=str)


def gate_vars(
    build_vars: Mapping[str, Any], thresholds: Mapping[str, Any], root: Path | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(vars, thresholds) the gate judges a build with.  The build's own vars, except every ``band``
    var of vars_schema.yml (a tolerance), which takes the thresholds file's value if it has one,
    else the project default -- never the build's; the thresholds without those band entries."""
    schema = varschema.load_schema(root)
    defaults = varschema.project_defaults(root)
    bands = {n for n, spec in schema.items() if spec.role == "band"}
    judged = {n: thresholds.get(n, defaults.get(n)) for n in bands if n in thresholds or n in defaults}
    rest = {k: v for k, v in thresholds.items() if k not in bands}
    return {**build_vars, **judged}, rest


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


def run_check(build_id: int | None = None, accept_custom_vars: bool = False) -> CheckReport:
    """Run every suite against build ``build_id`` (default: the newest), write the Data Docs and
    record the outcome in ``build_checks``.  The report says whether the build may be served."""
    from stronglens.warehouse import build_record, connect_lake, record_check

    started = time.perf_counter()
    build, snapshot, status, build_vars = build_record(build_id)
    suites = load_suites()
    params = expectation_parameters(*gate_vars(build_vars, load_thresholds()))
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
        custom_vars=varschema.custom_targets(build_vars),
        accepted_custom_vars=accept_custom_vars,
    )
    record_check(report.build_id, report.checked_at, report.success, report.to_json())
    return report
