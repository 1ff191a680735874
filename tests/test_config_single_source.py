"""Each setting has one source: S3 settings come from stronglens.storage for dbt as for Python, and
the paths dbt uses are the ones stronglens.paths resolves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from stronglens.storage import connect_duckdb
from tests.pipeline import ROOT

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIATEST",
    "AWS_SECRET_ACCESS_KEY": "test-secret",
    "AWS_SESSION_TOKEN": "test-session-token",
    "AWS_REGION": "eu-west-3",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
}
FLAGS = ("--output", "json", "--log-format", "json", "--profiles-dir", ".")
SECRETS_SQL = "select name, secret_string from duckdb_secrets() where type = 's3' order by name"


def _dbt_show(home: Path, sql: str, env: dict[str, str]) -> list[dict[str, object]]:
    """Rows of ``dbt show --inline`` run plainly (no stronglens CLI) from the project root."""
    dbt = Path(sys.executable).with_name("dbt")
    full_env = dict(os.environ, **env, STRONGLENS_HOME=str(home), DBT_TARGET_PATH=str(home / "target"))
    out = subprocess.run(
        [str(dbt), "show", "--inline", sql, *FLAGS],
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
    rows = _dbt_show(tmp_path, SECRETS_SQL, S3_ENV)
    assert [(r["name"], r["secret_string"]) for r in rows] == expected
