"""The DuckLake catalog serves readers while a build writes, and a warehouse can move.

Each test works on a copy of the session warehouse (``cp -r``), which is itself the first check of
a movable warehouse: the copy must read its own Parquet files, never the original's.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stronglens import paths
from tests.pipeline import ROOT, build_or_fail, dbt_show, lake

CATALOG_ONLY = ("--exclude", "tag:cutouts")


def _copy(home: Path, dest: Path) -> Path:
    shutil.copytree(home, dest, symlinks=True)
    return dest


def _cli(home: Path, *args: str, sweeps: str | None = None, **popen: object) -> subprocess.Popen[str]:
    env = dict(os.environ, STRONGLENS_HOME=str(home))
    if sweeps:
        env["STRONGLENS_SWEEPS"] = sweeps
    env.pop(paths.CATALOG_ENV, None)
    return subprocess.Popen(
        [sys.executable, "-m", "stronglens.cli", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,  # type: ignore[arg-type]
    )


def _sql(home: Path, query: str, *extra: str) -> tuple[int, str, str]:
    proc = _cli(home, "sql", query, "--format", "csv", *extra)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def test_reads_succeed_during_a_build(home: Path, sweeps_glob: str, tmp_path: Path) -> None:
    """`stronglens sql` in a loop while `stronglens build` runs, with a notebook-style connection
    held open the whole time: every read succeeds and sees the served build, and the build
    commits.  (With the DuckDB-file catalog every read failed with "Could not set lock".)"""
    wh = _copy(home, tmp_path / "wh")
    check = _cli(wh, "check")
    out, err = check.communicate(timeout=600)
    assert check.returncode == 0, out + err
    rc, before, err = _sql(wh, "select count(*) as n from negatives")
    assert rc == 0, err

    with lake(wh) as notebook:  # held open across the whole build
        build = _cli(wh, "build", *CATALOG_ONLY, sweeps=sweeps_glob)
        reads: list[tuple[int, str, str, float]] = []
        while build.poll() is None or len(reads) < 3:
            started = time.perf_counter()
            rc, out, err = _sql(wh, "select count(*) as n from negatives")
            reads.append((rc, out, err, time.perf_counter() - started))
        build_out, build_err = build.communicate()
        assert notebook.execute("select count(*) from build_runs").fetchone()[0] >= 1
    assert build.returncode == 0, build_out[-3000:] + build_err[-3000:]
    failed = [(out, err) for rc, out, err, _ in reads if rc != 0]
    assert not failed, f"{len(failed)} of {len(reads)} reads failed during the build: {failed[:2]}"
    assert {out for _, out, _, _ in reads} == {before}  # always the served build
    latencies = [s for *_, s in reads]
    print(
        f"\n{len(reads)} reads during the build: median {statistics.median(latencies):.2f} s, "
        f"max {max(latencies):.2f} s"
    )
    builds = _cli(wh, "builds", "--format", "csv")
    out, err = builds.communicate(timeout=120)
    assert builds.returncode == 0 and len(out.strip().splitlines()) == 3, out + err  # header + 2


def test_copied_warehouse_reads_its_own_files(home: Path, tmp_path: Path) -> None:
    """`cp -r warehouse elsewhere && STRONGLENS_HOME=elsewhere stronglens sql ...` reads the copy:
    with the original's data gone, the copy still answers (no absolute path into the original)."""
    first = _copy(home, tmp_path / "first")
    rc, expected, err = _sql(first, "select count(*) as n from positives", "--build", "1")
    assert rc == 0, err
    moved = _copy(first, tmp_path / "moved elsewhere")  # a space in the path, too
    shutil.rmtree(first / "lake")
    rc, out, err = _sql(moved, "select count(*) as n from positives", "--build", "1")
    assert rc == 0, err
    assert out == expected


def test_plain_dbt_build_after_a_cli_build(home: Path, sweeps_glob: str, tmp_path: Path) -> None:
    """The README's plain `dbt build` (relative STRONGLENS_HOME, no CLI) on a warehouse the CLI
    built with absolute paths: the catalog's stored data path must not stop it."""
    wh = _copy(home, tmp_path / "wh")
    env = dict(os.environ, STRONGLENS_HOME=os.path.relpath(wh, ROOT), STRONGLENS_SWEEPS=sweeps_glob)
    env.pop(paths.CATALOG_ENV, None)
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), "build", "--select", "build_runs"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    with lake(wh) as con:
        assert con.execute("select count(*) from build_runs").fetchone()[0] == 2


def test_plain_dbt_creates_a_wal_catalog(tmp_path: Path) -> None:
    """A plain dbt command on a fresh warehouse creates the SQLite catalog in WAL mode (through the
    dbt plugin), as `stronglens build` does: readers then keep working during a plain `dbt build`."""
    import sqlite3

    env = {paths.CATALOG_ENV: ""}
    assert dbt_show(tmp_path, "select 1 as one", env) == [{"one": 1}]
    with sqlite3.connect(tmp_path / paths.CATALOG_FILENAME) as db:
        assert db.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_legacy_duckdb_catalog_gets_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / paths.LEGACY_CATALOG_FILENAME).write_bytes(b"")
    rc, _, err = _sql(tmp_path, "select 1")
    assert rc == 2
    assert "Rebuild" in err and "stronglens run" in err and paths.LEGACY_CATALOG_FILENAME in err


def test_catalog_env_must_be_a_postgres_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path))
    monkeypatch.setenv(paths.CATALOG_ENV, "mysql://db")
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        paths.catalog_target()
    monkeypatch.setenv(paths.CATALOG_ENV, "postgresql://me:secret@127.0.0.1:5/db")
    assert paths.catalog_target() == "postgres:postgresql://me:secret@127.0.0.1:5/db"
    assert "secret" not in paths.catalog_label()


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    from tests.pgserver import PostgresUnavailableError, postgres_server

    try:
        with postgres_server() as url:
            yield url
    except PostgresUnavailableError as exc:
        pytest.skip(f"no PostgreSQL server can run here: {exc}")


def test_postgres_catalog_builds_and_serves_reads(
    postgres_url: str, sweeps_glob: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """STRONGLENS_CATALOG=postgresql://...: the build writes its catalog into PostgreSQL (no SQLite
    file appears), the data stays in the warehouse folder, and readers see the build."""
    monkeypatch.setenv(paths.CATALOG_ENV, postgres_url)
    wh = tmp_path / "team"
    build_or_fail(
        wh, sweeps_glob, "--select", "+positives", "+build_runs", env={paths.CATALOG_ENV: postgres_url}
    )
    assert not (wh / paths.CATALOG_FILENAME).exists()
    assert any((wh / "lake").rglob("*.parquet"))
    with lake(wh) as con:
        (builds,) = con.execute("select count(*) from build_runs where status = 'success'").fetchone()
        (positives,) = con.execute("select count(*) from positives").fetchone()
    assert builds == 1 and positives > 0
    proc = subprocess.run(
        [sys.executable, "-m", "stronglens.cli", "sql", "select count(*) from positives", "--build", "1"],
        env=dict(os.environ, STRONGLENS_HOME=str(wh)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == str(positives)
