"""Documentation coverage: every model, seed, source, column, macro (and macro argument) and exposure
of the project carries a description, and the dbt docs site works offline.

The columns a model really has come from the catalog of an empty build (``dbt build --empty`` on a
one-tile sky, then ``stronglens docs``), not from the YAML, so a column that a model gained but its
YAML never mentioned is caught as well as a YAML entry without text; a YAML column the model does not
have (stale documentation) fails too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stronglens.synth import generate_sky
from tests.pipeline import ROOT

PACKAGE = "stronglens"
EXPOSURES = {"cutouts", "cnn_training", "selection_function", "quality_gate"}
OWNER = "stronglens team"
#: One sparse tile is enough: the build is --empty, the sky only has to satisfy the sweep checks.
TILE = "sweep-010m025-015m020"


def _run(home: Path, sweeps: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, STRONGLENS_HOME=str(home), STRONGLENS_SWEEPS=sweeps)
    return subprocess.run(
        [sys.executable, "-m", "stronglens.cli", *argv],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dbt docs site of an empty build: <home>/docs with manifest.json and catalog.json.

    A model that fails to build is not fatal here: it is missing from the catalog, and
    test_every_column_is_documented names it; every other check still runs.
    """
    sky = tmp_path_factory.mktemp("docs_sky")
    generate_sky(str(sky), density=20, tiles=[TILE], progress=False)
    home = tmp_path_factory.mktemp("docs_home")
    sweeps = str(sky / "*.parquet")
    # Build into the docs target so that `stronglens docs` reuses the parse (partial parsing).
    _run(home, sweeps, "build", "--empty", "--exclude", "test_type:data", "--target-path", str(home / "docs"))
    docs = _run(home, sweeps, "docs")
    assert docs.returncode == 0, f"stronglens docs failed:\n{docs.stdout[-5000:]}\n{docs.stderr[-3000:]}"
    return home / "docs"


@pytest.fixture(scope="module")
def manifest(site: Path) -> dict[str, Any]:
    return json.loads((site / "manifest.json").read_text())


@pytest.fixture(scope="module")
def catalog(site: Path) -> dict[str, Any]:
    return json.loads((site / "catalog.json").read_text())


def _ours(items: dict[str, Any]) -> dict[str, Any]:
    return {uid: item for uid, item in items.items() if item.get("package_name") == PACKAGE}


def test_every_model_and_seed_is_described(manifest: dict[str, Any]) -> None:
    nodes = _ours(manifest["nodes"])
    missing = sorted(
        uid
        for uid, n in nodes.items()
        if n["resource_type"] in ("model", "seed") and not n["description"].strip()
    )
    assert len([n for n in nodes.values() if n["resource_type"] == "model"]) >= 20
    assert missing == [], f"add a description to: {missing}"


def test_every_model_has_a_primary_key_test(manifest: dict[str, Any]) -> None:
    """Every model has a key test: ``unique`` on a column or ``unique_combination`` of columns."""
    nodes = _ours(manifest["nodes"])
    keyed = {
        parent
        for n in nodes.values()
        if n["resource_type"] == "test"
        and (n.get("test_metadata") or {}).get("name") in ("unique", "unique_combination")
        for parent in n["depends_on"]["nodes"]
    }
    models = {uid for uid, n in nodes.items() if n["resource_type"] == "model"}
    assert sorted(models - keyed) == [], "add a unique / unique_combination test to these models"


def test_every_column_is_documented(manifest: dict[str, Any], catalog: dict[str, Any]) -> None:
    """Every column a model or seed really has is described in YAML, and YAML lists no other column."""
    problems = []
    for uid, node in sorted(_ours(manifest["nodes"]).items()):
        if node["resource_type"] not in ("model", "seed"):
            continue
        if uid not in catalog["nodes"]:
            problems.append(f"{uid}: not built by `dbt build --empty`, so its columns cannot be checked")
            continue
        documented = {name.lower(): col["description"].strip() for name, col in node["columns"].items()}
        actual = [name.lower() for name in catalog["nodes"][uid]["columns"]]
        undocumented = [c for c in actual if not documented.get(c)]
        stale = sorted(set(documented) - set(actual))
        if undocumented:
            problems.append(f"{uid} ({node['patch_path']}): no description for column(s) {undocumented}")
        if stale:
            problems.append(f"{uid} ({node['patch_path']}): documents column(s) it does not have: {stale}")
    assert problems == [], "\n".join(problems)


def test_every_source_and_source_column_is_documented(
    manifest: dict[str, Any], catalog: dict[str, Any]
) -> None:
    """Sources, their tables and columns are described; the sweeps source documents every column the
    models require (seed sweep_required_columns), the build_log source every column it has."""
    problems = []
    sources = _ours(manifest["sources"])
    for uid, source in sorted(sources.items()):
        if not source["description"].strip() or not source["source_description"].strip():
            problems.append(f"{uid}: source or table description missing")
        documented = {name.lower(): col["description"].strip() for name, col in source["columns"].items()}
        problems += [f"{uid}: empty description for column {c}" for c, d in documented.items() if not d]
        if uid in catalog["sources"]:
            actual = [c.lower() for c in catalog["sources"][uid]["columns"]]
            problems += [f"{uid}: column {c} not documented" for c in actual if not documented.get(c)]
    sweeps = next(s for s in sources.values() if s["name"] == "sweeps")
    required = (ROOT / "seeds" / "sweep_required_columns.csv").read_text().splitlines()[1:]
    documented = {name.lower() for name, col in sweeps["columns"].items() if col["description"].strip()}
    problems += [
        f"source dr10.sweeps: required column {line.split(',')[0]} not documented"
        for line in required
        if line.split(",")[0] not in documented
    ]
    assert {s["name"] for s in sources.values()} >= {"sweeps", "build_log"}
    assert problems == [], "\n".join(problems)


def _signature(macro_sql: str) -> list[str]:
    """Argument names of a ``{% macro name(...) %}`` / ``{% test name(...) %}`` block, in order."""
    match = re.match(r"\{%-?\s*(?:macro|test)\s+\w+\s*\((.*?)\)\s*-?%\}", macro_sql, re.DOTALL)
    assert match, macro_sql[:200]
    names, depth, quote, current = [], 0, "", ""
    for char in match.group(1) + ",":
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth == 0 and not quote:
            if current.strip():
                names.append(current.split("=")[0].strip())
            current = ""
        else:
            current += char
    return names


def test_signature_parser() -> None:
    assert _signature("{% macro m() -%} x {%- endmacro %}") == []
    assert _signature("{% test t(model, column_name, min_value=none) %}") == [
        "model",
        "column_name",
        "min_value",
    ]
    assert _signature("{%- macro z(a, b=[1, 2], c={'k': (3, 4)},\n d='x,y') -%}") == ["a", "b", "c", "d"]


def test_every_macro_and_argument_is_documented(manifest: dict[str, Any]) -> None:
    """Every macro and generic test of the project, and each of its arguments, has a description."""
    problems = []
    macros = _ours(manifest["macros"])
    assert len(macros) >= 30
    for uid, macro in sorted(macros.items()):
        where = f"{uid} ({macro['original_file_path']})"
        if not macro["description"].strip():
            problems.append(f"{where}: no description")
        documented = [a["name"] for a in macro["arguments"]]
        expected = _signature(macro["macro_sql"])
        if documented != expected:
            problems.append(f"{where}: arguments documented {documented}, signature has {expected}")
        problems += [
            f"{where}: argument {a['name']} has no description"
            for a in macro["arguments"]
            if not a["description"].strip()
        ]
    assert problems == [], f"{len(problems)} undocumented macro items:\n" + "\n".join(problems)


def test_exposures_declare_the_consumers(manifest: dict[str, Any]) -> None:
    exposures = {e["name"]: e for e in _ours(manifest["exposures"]).values()}
    assert set(exposures) == EXPOSURES
    for exposure in exposures.values():
        assert exposure["owner"]["name"] == OWNER and exposure["description"].strip()
        parents = {n.split(".")[-1] for n in exposure["depends_on"]["nodes"]}
        assert parents >= {"negatives", "positives"}, exposure["name"]


def _relations_read(sql: str) -> set[str]:
    """Tables a frame reads: names after FROM / JOIN that are not its own CTEs or functions."""
    sql = re.sub(r"--[^\n]*", "", sql)
    ctes = set(re.findall(r"^\s*(\w+)\s+as\s*\(", sql, re.IGNORECASE | re.MULTILINE))
    names = re.findall(r"\b(?:from|join)\s+(\w+)\b(?!\s*\()", sql, re.IGNORECASE)
    return {n.lower() for n in names} - {c.lower() for c in ctes}


def test_quality_gate_reads_only_what_it_declares(manifest: dict[str, Any]) -> None:
    """The gate's frames (expectations/*.sql) read marts, plus exactly the intermediates its
    exposure declares, so dbt's lineage shows every model the gate depends on."""
    gate = next(e for e in _ours(manifest["exposures"]).values() if e["name"] == "quality_gate")
    declared = {uid.split(".")[-1] for uid in gate["depends_on"]["nodes"]}
    nodes = _ours(manifest["nodes"])
    layer = {
        n["name"]: n["original_file_path"].split("/")[1]
        for n in nodes.values()
        if n["resource_type"] == "model"
    }
    read = set().union(
        *(_relations_read(f.read_text()) for f in sorted((ROOT / "expectations").glob("*.sql")))
    )
    assert read <= set(layer), f"frames read relations that are not models: {sorted(read - set(layer))}"
    undeclared = sorted(n for n in read if layer[n] != "marts" and n not in declared)
    assert undeclared == [], (
        f"declare these in the quality_gate exposure (models/exposures.yml): {undeclared}"
    )
    stale = sorted(n for n in declared if layer[n] != "marts" and n not in read)
    assert stale == [], f"the quality_gate exposure declares models no frame reads: {stale}"


def test_docs_site_is_complete_and_offline(site: Path) -> None:
    """Both pages exist, and neither loads a script, stylesheet or image from the network (dbt's
    bundle only mentions URLs inside its JavaScript)."""
    for page in ("index.html", "static_index.html"):
        text = (site / page).read_text()
        tags = re.findall(r"<(?:script|link|img)\b[^>]*>", text, re.IGNORECASE)
        remote = [
            t for t in tags if re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", t, re.IGNORECASE)
        ]
        assert tags and remote == [], remote
    static = (site / "static_index.html").read_text()
    assert '"model.stronglens.negatives"' in static and '"exposure.stronglens.cutouts"' in static
