"""Great Expectations: validate a suite's frame in a file context whose Data Docs are the reports.

The pandas route (the one that works with GE 1.24 here; the SQL route through duckdb-engine does
not).  ``$STRONGLENS_HOME/gx/`` holds the context (generated state, rebuilt from ``expectations/``
on every check).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from stronglens.quality.suites import QualityConfigError, SuiteDefinition, require_parameters

#: Names inside the Great Expectations context.
DATASOURCE_NAME = "stronglens_frames"
BATCH_DEFINITION_NAME = "whole_frame"
DATA_DOCS_SITE = "reports"
#: Unexpected rows quoted per failed expectation in the console summary (the Data Docs list 20).
EXAMPLES_PER_FAILURE = 5


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

        require_parameters(suite.parameter_names(), params, suite)
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
