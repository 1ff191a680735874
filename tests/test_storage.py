"""Tests for :mod:`stronglens.storage`: env parsing, DuckDB secret SQL, filesystems, atomic writes."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import duckdb
import duckdb_ext
import pyarrow.fs as pafs
import pytest

from stronglens import storage
from stronglens.storage import S3Settings, StorageConfigError, duckdb_secret_sql, s3_settings_from_env

# Characters that break naive SQL quoting or shell-ish parsing.
_NASTY = "'\"\\;-\u2013/*%_\n\t $(){}[]`é字🙂=,"


def _duckdb() -> duckdb.DuckDBPyConnection:
    """A bare connection that may show unredacted secrets, so stored values can be checked."""
    con = duckdb.connect(
        config={
            "extension_directory": duckdb_ext.get_extension_dir(),
            "autoinstall_known_extensions": False,
            "allow_unredacted_secrets": True,
        }
    )
    con.execute("LOAD httpfs")
    return con


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/key", True),
        ("S3://bucket", True),
        ("s3://", True),
        ("s3:/bucket", False),
        ("/data/s3://x", False),
        ("sweeps/s3", False),
        ("gs://bucket/key", False),
        ("", False),
    ],
)
def test_is_s3(uri: str, expected: bool) -> None:
    assert storage.is_s3(uri) is expected


def test_settings_defaults_without_endpoint() -> None:
    s = s3_settings_from_env({})
    assert s == S3Settings(region="us-east-1", url_style="vhost")
    assert s.use_ssl is True and s.endpoint_host is None and s.key_id is None


def test_settings_custom_endpoint() -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "AKIA",
        "AWS_SECRET_ACCESS_KEY": "sekrit",
        "AWS_SESSION_TOKEN": "tok",
        "AWS_DEFAULT_REGION": "eu-west-3",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
    }
    s = s3_settings_from_env(env)
    assert (s.key_id, s.secret, s.session_token, s.region) == ("AKIA", "sekrit", "tok", "eu-west-3")
    assert (s.url_style, s.use_ssl, s.endpoint_host) == ("path", False, "127.0.0.1:5000")
    https = s3_settings_from_env(env | {"AWS_ENDPOINT_URL": "https://minio.example.org/"})
    assert (https.use_ssl, https.endpoint_host, https.url_style) == (True, "minio.example.org", "path")


def test_settings_precedence_and_empty_values() -> None:
    env = {"AWS_REGION": "ap-south-1", "AWS_DEFAULT_REGION": "eu-west-1", "STRONGLENS_S3_URL_STYLE": "vhost"}
    s = s3_settings_from_env(env | {"AWS_ENDPOINT_URL": "http://h:1"})
    assert (s.region, s.url_style) == ("ap-south-1", "vhost")
    blank = s3_settings_from_env({k: "" for k in ("AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID")})
    assert blank == S3Settings()


def test_settings_read_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://objects.example:9000")
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    s = s3_settings_from_env()
    assert (s.endpoint_host, s.region, s.use_ssl) == ("objects.example:9000", "us-west-2", True)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"AWS_ACCESS_KEY_ID": "a"}, "AWS_SECRET_ACCESS_KEY"),
        ({"AWS_SECRET_ACCESS_KEY": "b"}, "AWS_ACCESS_KEY_ID"),
        ({"AWS_SESSION_TOKEN": "t"}, "AWS_SESSION_TOKEN"),
        ({"STRONGLENS_S3_URL_STYLE": "virtual"}, "STRONGLENS_S3_URL_STYLE"),
        ({"AWS_ENDPOINT_URL": "127.0.0.1:5000"}, "AWS_ENDPOINT_URL"),
        ({"AWS_ENDPOINT_URL": "ftp://host"}, "AWS_ENDPOINT_URL"),
        ({"AWS_ENDPOINT_URL": "http://host/bucket"}, "AWS_ENDPOINT_URL"),
    ],
)
def test_settings_errors_name_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(StorageConfigError, match=names):
        s3_settings_from_env(env)


def test_repr_hides_secrets() -> None:
    s = S3Settings(key_id="visible-id", secret="hidden-secret", session_token="hidden-token")
    assert "visible-id" in repr(s)
    assert "hidden" not in repr(s)


def _expected_secret_string(s: S3Settings, name: str) -> str:
    """DuckDB's own rendering of a config S3 secret (keys sorted), built from the raw values."""
    parts = {"endpoint": s.endpoint_host, "key_id": s.key_id, "region": s.region, "secret": s.secret}
    parts |= {"session_token": s.session_token, "url_style": s.url_style}
    body = ";".join(f"{k}={v}" for k, v in sorted(parts.items()) if v is not None)
    head = f"name={name};type=s3;provider=config;serializable=true;scope=s3://,s3n://,s3a://"
    return f"{head};{body};use_ssl={'true' if s.use_ssl else 'false'}"


def test_secret_sql_survives_hostile_values() -> None:
    """Random strings full of quotes, backslashes, SQL comments and unicode reach DuckDB verbatim."""
    rng = random.Random(20240611)
    con = _duckdb()
    con.execute("CREATE TABLE canary AS SELECT 1 AS x")
    cases = ["'); DROP TABLE canary; --", "''", "\\'", "a'b'c'", "--", "/*", "x' OR '1'='1"]
    cases += ["".join(rng.choice(_NASTY + "abc") for _ in range(rng.randint(1, 40))) for _ in range(60)]
    for i, value in enumerate(cases):
        s = S3Settings(
            key_id=value,
            secret=value[::-1] or "x",
            session_token=value + "t",
            region=value,
            endpoint_url=None if i % 2 else "http://127.0.0.1:5000",
            url_style="path" if i % 3 else "vhost",
        )
        con.execute(duckdb_secret_sql(s, name=f"s{i}"))
        got = con.execute(
            "SELECT secret_string FROM duckdb_secrets(redact := false) WHERE name = ?", [f"s{i}"]
        ).fetchone()
        assert got is not None and got[0] == _expected_secret_string(s, f"s{i}"), value
    assert con.execute("SELECT count(*) FROM canary").fetchone() == (1,)
    assert con.execute("SELECT count(*) FROM duckdb_secrets()").fetchone() == (len(cases),)


def test_secret_sql_anonymous_and_rejects() -> None:
    sql = duckdb_secret_sql(S3Settings())
    assert "KEY_ID" not in sql and "SECRET '" not in sql and "USE_SSL true" in sql
    _duckdb().execute(sql)
    for bad in ("x; DROP", "1abc", "", "a-b"):
        with pytest.raises(ValueError, match="secret name"):
            duckdb_secret_sql(S3Settings(), name=bad)
    with pytest.raises(StorageConfigError, match="NUL"):
        duckdb_secret_sql(S3Settings(key_id="a\x00b", secret="s"))


def test_connect_duckdb_settings(tmp_path: Path) -> None:
    con = connect_and_check(str(tmp_path / "w.duckdb"))
    con.execute("CREATE TABLE t AS SELECT 42 AS x")
    con.close()
    ro = storage.connect_duckdb(str(tmp_path / "w.duckdb"), read_only=True)
    assert ro.execute("SELECT x FROM t").fetchone() == (42,)
    with pytest.raises(duckdb.Error):
        ro.execute("CREATE TABLE u (x INT)")


def connect_and_check(database: str) -> duckdb.DuckDBPyConnection:
    """Open through connect_duckdb and check the offline-extension settings took effect."""
    con = storage.connect_duckdb(database)
    row = con.execute(
        "SELECT current_setting('extension_directory'), current_setting('autoinstall_known_extensions')"
    ).fetchone()
    assert row == (duckdb_ext.get_extension_dir(), False)
    loaded = con.execute("SELECT loaded FROM duckdb_extensions() WHERE extension_name = 'httpfs'").fetchone()
    assert loaded == (True,)
    assert con.execute("SELECT count(*) FROM duckdb_secrets() WHERE type = 's3'").fetchone() == (1,)
    return con


def test_duckdb_round_trip_through_s3(s3_bucket: str) -> None:
    """DuckDB writes and reads s3:// through the secret built from the (moto) environment."""
    con = connect_and_check(":memory:")
    uri = f"s3://{s3_bucket}/dir/numbers.parquet"
    con.execute(f"COPY (SELECT range AS i, range * 0.5 AS f FROM range(1000)) TO '{uri}' (FORMAT parquet)")
    assert storage.exists(uri)
    got = con.execute(f"SELECT count(*), sum(i), sum(f) FROM read_parquet('{uri}')").fetchone()
    assert got == (1000, 499500, 249750.0)


def test_filesystem_for_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    fs, path = storage.filesystem_for("rel/file.txt")
    assert isinstance(fs, pafs.LocalFileSystem)
    assert path == str(tmp_path / "rel" / "file.txt")


def test_filesystem_for_s3(s3_server: str) -> None:
    fs, path = storage.filesystem_for("s3://bucket/a/b.parquet")
    assert isinstance(fs, pafs.S3FileSystem) and path == "bucket/a/b.parquet"
    assert storage.filesystem_for("s3://bucket/")[1] == "bucket"
    with pytest.raises(ValueError, match="names no bucket"):
        storage.filesystem_for("s3:///key")


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_listing_exists_remove(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    base = f"s3://{request.getfixturevalue('s3_bucket')}/pre" if kind == "s3" else str(tmp_path / "pre")
    assert storage.list_files(base) == []
    names = ["b.parquet", "a.parquet", "c.txt", ".hidden.parquet.part"]
    for n in names:
        with storage.atomic_output(storage.join_uri(base, n)) as tmp, open(tmp, "wb") as fh:
            fh.write(n.encode())
    assert storage.list_files(base, ".parquet") == [
        storage.join_uri(base, n) for n in ("a.parquet", "b.parquet")
    ]
    assert len(storage.list_files(base)) == 4
    target = storage.join_uri(base, "c.txt")
    assert storage.exists(target) and not storage.exists(storage.join_uri(base, "zz"))
    storage.remove(target)
    storage.remove(target)
    assert not storage.exists(target)


def test_atomic_output_local(tmp_path: Path) -> None:
    final = tmp_path / "sub" / "out.bin"
    with storage.atomic_output(str(final)) as tmp:
        assert Path(tmp).parent == final.parent and not Path(tmp).name.endswith(".bin")
        Path(tmp).write_bytes(b"v1")
        assert not final.exists()
    assert final.read_bytes() == b"v1"

    with pytest.raises(RuntimeError, match="boom"), storage.atomic_output(str(final)) as tmp:
        Path(tmp).write_bytes(b"half-written v2")
        raise RuntimeError("boom")
    assert final.read_bytes() == b"v1"
    assert sorted(p.name for p in final.parent.iterdir()) == ["out.bin"]

    with pytest.raises(FileNotFoundError, match="nothing was written"), storage.atomic_output(str(final)):
        pass
    assert final.read_bytes() == b"v1"


def test_atomic_output_s3(s3_bucket: str, s3_client: Any, tmp_path: Path) -> None:
    uri = f"s3://{s3_bucket}/k/obj.bin"
    payload = os.urandom(3_000_000)
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(RuntimeError, match="boom"), storage.atomic_output(uri, str(staging)) as tmp:
        Path(tmp).write_bytes(payload[:1000])
        raise RuntimeError("boom")
    assert s3_client.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0
    with storage.atomic_output(uri, str(staging)) as tmp:
        Path(tmp).write_bytes(payload)
        assert not storage.exists(uri)
    assert s3_client.get_object(Bucket=s3_bucket, Key="k/obj.bin")["Body"].read() == payload
    assert list(staging.iterdir()) == []
    with (
        pytest.raises(FileNotFoundError, match="nothing was written"),
        storage.atomic_output(uri, str(staging)),
    ):
        pass
    assert s3_client.get_object(Bucket=s3_bucket, Key="k/obj.bin")["Body"].read() == payload
