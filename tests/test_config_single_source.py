"""Each setting has one source: S3 settings come from stronglens.storage for dbt as for Python, and
the paths dbt uses are the ones stronglens.paths resolves."""

from __future__ import annotations

from pathlib import Path

from stronglens import paths
from stronglens.storage import connect_duckdb
from tests.pipeline import ROOT, dbt_show

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIATEST",
    "AWS_SECRET_ACCESS_KEY": "test-secret",
    "AWS_SESSION_TOKEN": "test-session-token",
    "AWS_REGION": "eu-west-3",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
}
SECRETS_SQL = "select name, secret_string from duckdb_secrets() where type = 's3' order by name"


def test_dbt_s3_secret_is_storage_secret(tmp_path: Path, monkeypatch: object) -> None:
    """dbt's DuckDB connection holds exactly the S3 secret stronglens.storage builds, session token
    included (the profile's own secret block used to drop AWS_SESSION_TOKEN)."""
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)  # type: ignore[attr-defined]
    monkeypatch.delenv("STRONGLENS_S3_URL_STYLE", raising=False)  # type: ignore[attr-defined]
    con = connect_duckdb()
    try:
        expected = con.execute(SECRETS_SQL).fetchall()
    finally:
        con.close()
    assert "session_token=redacted" in expected[0][1]
    rows = dbt_show(tmp_path, SECRETS_SQL, S3_ENV)
    assert [(r["name"], r["secret_string"]) for r in rows] == expected


def test_dbt_resolves_the_paths_stronglens_paths_resolves(tmp_path: Path, monkeypatch: object) -> None:
    """A plain dbt run (no CLI exports) finds the sweeps where stronglens.paths puts them, in the
    warehouse the profile names; the profile's default home is paths.py's."""
    home = tmp_path / "home"
    for name in (paths.SWEEPS_ENV, paths.CUTOUTS_ENV, paths.LAKE_DATA_ENV):
        monkeypatch.delenv(name, raising=False)  # type: ignore[attr-defined]
    monkeypatch.setenv(paths.HOME_ENV, str(home))  # type: ignore[attr-defined]
    sql = "select '{{ sweeps_location() }}' as sweeps, '{{ target.path }}' as duckdb_file"
    (row,) = dbt_show(home, sql)
    assert row["sweeps"] == paths.sweeps_glob()
    assert Path(str(row["duckdb_file"])).parent == paths.warehouse_home()
    profile = (ROOT / "profiles.yml").read_text()
    assert f"env_var('{paths.HOME_ENV}', '{paths.DEFAULT_HOME_DIRNAME}')" in profile
