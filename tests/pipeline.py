"""Helpers for tests that run real dbt builds in a throw-away warehouse folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from stronglens import paths

ROOT = Path(__file__).resolve().parents[1]


def run_build(
    home: Path, sweeps: str, *dbt_args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`stronglens build` in a subprocess (dbt keeps global state in-process)."""
    home.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ, **(env or {}), STRONGLENS_HOME=str(home), STRONGLENS_SWEEPS=sweeps)
    return subprocess.run(
        [sys.executable, "-m", "stronglens.cli", "build", *dbt_args],
        env=full_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )


def build_or_fail(home: Path, sweeps: str, *dbt_args: str, env: dict[str, str] | None = None) -> None:
    result = run_build(home, sweeps, *dbt_args, env=env)
    assert result.returncode == 0, f"build failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"


@contextmanager
def lake(home: Path, snapshot_id: int | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the warehouse in ``home`` at a snapshot (default: latest)."""
    from stronglens.warehouse import connect_lake

    old = os.environ.get(paths.HOME_ENV)
    os.environ[paths.HOME_ENV] = str(home)
    try:
        con = connect_lake(snapshot_id)
        try:
            yield con
        finally:
            con.close()
    finally:
        if old is None:
            os.environ.pop(paths.HOME_ENV, None)
        else:
            os.environ[paths.HOME_ENV] = old


def dbt_show(
    home: Path, sql: str, env: dict[str, str] | None = None, dbt_vars: dict | None = None
) -> list[dict]:
    """Rows of ``dbt show --inline sql`` run plainly (no stronglens CLI) from the project root, with
    the warehouse in ``home``; ``sql`` may use the project's macros and vars."""
    dbt = Path(sys.executable).with_name("dbt")
    full_env = dict(
        os.environ, **(env or {}), STRONGLENS_HOME=str(home), DBT_TARGET_PATH=str(home / "target")
    )
    flags = ["--output", "json", "--log-format", "json", "--limit", "1000", "--profiles-dir", "."]
    if dbt_vars:
        flags += ["--vars", json.dumps(dbt_vars)]
    out = subprocess.run(
        [str(dbt), "show", "--inline", sql, *flags],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    for line in out.stdout.splitlines():
        data = json.loads(line).get("data", {})
        if "preview" in data:
            preview = data["preview"]
            return json.loads(preview) if isinstance(preview, str) else preview
    raise AssertionError(f"no preview in dbt show output:\n{out.stdout[-3000:]}")
