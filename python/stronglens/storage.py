"""One storage layer for local paths and ``s3://`` URIs, configured only from the environment.

The warehouse reads and writes the same files from three clients -- this package (pyarrow), DuckDB
(httpfs) and dbt-duckdb -- and against two kinds of S3: AWS itself and S3-compatible servers (a
loopback moto server in tests, MinIO/Ceph in deployments).  Each client spells the same settings
differently (``endpoint_override`` + ``scheme`` for pyarrow, ``ENDPOINT`` + ``USE_SSL`` for DuckDB),
so they are derived here from one :class:`S3Settings`, built from the standard ``AWS_*`` variables,
and nowhere else.

Environment variables read by :func:`s3_settings_from_env`:

``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``
    Credentials; both or neither (neither = anonymous access to public buckets).
``AWS_SESSION_TOKEN``
    Optional, for temporary (STS) credentials.
``AWS_REGION`` or ``AWS_DEFAULT_REGION``
    Region, default ``us-east-1``.
``AWS_ENDPOINT_URL``
    Optional S3-compatible endpoint with scheme, e.g. ``http://127.0.0.1:5000``; ``http`` turns SSL off.
``STRONGLENS_S3_URL_STYLE``
    ``path`` or ``vhost``; default ``path`` when a custom endpoint is set (local servers rarely
    resolve ``bucket.host`` names), else ``vhost`` (what AWS expects).

Atomic publication (:func:`atomic_output`): a reader must never see a half-written file under its
final name.  Local files are written to a hidden ``.<name>.part`` sibling, fsynced and moved into
place with :func:`os.replace` (atomic within one filesystem).  S3 objects are staged in a complete
local temporary file first and uploaded to the final key in one transfer only after the block
succeeded: S3 makes an object visible only when its single PUT, or the CompleteMultipartUpload of a
large one, finishes, so a killed run leaves no object at all.  (No temp key + server-side copy: that
would double the transfer and CopyObject is limited to 5 GB.)
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import duckdb_ext
import pyarrow.fs as pafs

S3_SCHEME = "s3://"
DEFAULT_REGION = "us-east-1"
URL_STYLES = ("path", "vhost")
#: Name of the DuckDB secret :func:`connect_duckdb` creates (temporary: never persisted to disk).
DEFAULT_SECRET_NAME = "stronglens_s3"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class StorageConfigError(ValueError):
    """The S3 environment is inconsistent; the message names the variable to fix."""


def is_s3(uri: str) -> bool:
    """True for ``s3://`` URIs (scheme matched case-insensitively, as AWS tools do)."""
    return uri[: len(S3_SCHEME)].lower() == S3_SCHEME


@dataclass(frozen=True)
class S3Settings:
    """S3 connection settings shared by pyarrow, DuckDB and dbt.

    Secrets are excluded from ``repr`` so settings can be logged without leaking credentials.
    """

    key_id: str | None = None
    secret: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    region: str = DEFAULT_REGION
    endpoint_url: str | None = None
    url_style: str = "vhost"

    def __post_init__(self) -> None:
        if (self.key_id is None) != (self.secret is None):
            raise StorageConfigError(
                "S3 credentials are half set: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or neither for anonymous access"
            )
        if self.session_token is not None and self.key_id is None:
            raise StorageConfigError(
                "AWS_SESSION_TOKEN is set without AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
            )
        if self.url_style not in URL_STYLES:
            raise StorageConfigError(
                f"STRONGLENS_S3_URL_STYLE={self.url_style!r} is not one of {', '.join(URL_STYLES)}"
            )
        if not self.region:
            raise StorageConfigError("AWS_REGION is empty: unset it (default us-east-1) or name a region")
        if self.endpoint_url is not None:
            parts = urlsplit(self.endpoint_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise StorageConfigError(
                    f"AWS_ENDPOINT_URL={self.endpoint_url!r} must be a URL with scheme, "
                    "e.g. http://127.0.0.1:5000 or https://s3.example.org"
                )
            if parts.path not in ("", "/") or parts.query or parts.fragment:
                raise StorageConfigError(
                    f"AWS_ENDPOINT_URL={self.endpoint_url!r} has a path or query; give only scheme://host[:port]"
                )

    @property
    def use_ssl(self) -> bool:
        """HTTPS unless a custom endpoint says ``http://`` (AWS itself is always HTTPS)."""
        return self.endpoint_url is None or urlsplit(self.endpoint_url).scheme == "https"

    @property
    def endpoint_host(self) -> str | None:
        """``host[:port]`` of the custom endpoint: the form DuckDB and pyarrow expect."""
        return None if self.endpoint_url is None else urlsplit(self.endpoint_url).netloc


def s3_settings_from_env(env: Mapping[str, str] | None = None) -> S3Settings:
    """Build :class:`S3Settings` from ``env`` (default: ``os.environ``); empty values count as unset."""
    source = os.environ if env is None else env

    def get(name: str) -> str | None:
        value = source.get(name)
        return value if value else None

    endpoint = get("AWS_ENDPOINT_URL")
    return S3Settings(
        key_id=get("AWS_ACCESS_KEY_ID"),
        secret=get("AWS_SECRET_ACCESS_KEY"),
        session_token=get("AWS_SESSION_TOKEN"),
        region=get("AWS_REGION") or get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
        endpoint_url=endpoint,
        url_style=get("STRONGLENS_S3_URL_STYLE") or ("path" if endpoint else "vhost"),
    )


def _sql_string(value: str) -> str:
    """Quote ``value`` as a DuckDB string literal; DuckDB has no backslash escapes in '' literals."""
    if "\x00" in value:
        raise StorageConfigError("an S3 setting contains a NUL character; check the AWS_* variables")
    return "'" + value.replace("'", "''") + "'"


def duckdb_secret_sql(settings: S3Settings, name: str = DEFAULT_SECRET_NAME) -> str:
    """Return ``CREATE OR REPLACE SECRET`` SQL for ``settings``.

    Every value is a quoted literal (quotes doubled), so credentials containing quotes or SQL
    cannot break out of the statement; the secret name is an identifier and is validated instead.
    """
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"DuckDB secret name {name!r} must match {_IDENTIFIER.pattern}")
    options = ["TYPE S3"]
    if settings.key_id is not None and settings.secret is not None:
        options += [f"KEY_ID {_sql_string(settings.key_id)}", f"SECRET {_sql_string(settings.secret)}"]
    if settings.session_token is not None:
        options.append(f"SESSION_TOKEN {_sql_string(settings.session_token)}")
    options.append(f"REGION {_sql_string(settings.region)}")
    if settings.endpoint_host is not None:
        options.append(f"ENDPOINT {_sql_string(settings.endpoint_host)}")
    options.append(f"URL_STYLE {_sql_string(settings.url_style)}")
    options.append(f"USE_SSL {'true' if settings.use_ssl else 'false'}")
    return f"CREATE OR REPLACE SECRET {name} ({', '.join(options)})"


def connect_duckdb(database: str = ":memory:", read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open DuckDB with the offline httpfs extension loaded and the S3 secret from the environment.

    The extension directory points at the ``duckdb-ext`` wheels because the DuckDB extension
    repository is unreachable here; autoinstall is switched off so a missing extension fails
    loudly instead of hanging on a download.
    """
    con = duckdb.connect(
        database,
        read_only=read_only,
        config={"extension_directory": duckdb_ext.get_extension_dir(), "autoinstall_known_extensions": False},
    )
    try:
        con.execute("LOAD httpfs")
        con.execute(duckdb_secret_sql(s3_settings_from_env()))
    except Exception:
        con.close()
        raise
    return con


def split_s3(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into ``(bucket, key)``; the key may be empty."""
    if not is_s3(uri):
        raise ValueError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[len(S3_SCHEME) :].partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} names no bucket; expected s3://bucket/key")
    return bucket, key


def s3_filesystem(settings: S3Settings | None = None) -> pafs.S3FileSystem:
    """A pyarrow S3 filesystem for ``settings`` (default: from the environment)."""
    s = s3_settings_from_env() if settings is None else settings
    return pafs.S3FileSystem(
        access_key=s.key_id,
        secret_key=s.secret,
        session_token=s.session_token,
        anonymous=s.key_id is None,
        region=s.region,
        scheme="https" if s.use_ssl else "http",
        endpoint_override=s.endpoint_host,
        force_virtual_addressing=s.url_style == "vhost",
    )


def filesystem_for(uri: str) -> tuple[pafs.FileSystem, str]:
    """Return ``(filesystem, path)`` for a local path or an ``s3://`` URI.

    S3 paths come back as ``bucket/key`` (pyarrow's form); local paths as absolute paths.
    """
    if is_s3(uri):
        bucket, key = split_s3(uri)
        return s3_filesystem(), f"{bucket}/{key}".rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def join_uri(base: str, name: str) -> str:
    """Append one path component to a directory path or ``s3://`` prefix."""
    if is_s3(base):
        return base.rstrip("/") + "/" + name
    return os.path.join(base, name)


def exists(uri: str) -> bool:
    """True if a file (not a directory) exists at ``uri``."""
    fs, path = filesystem_for(uri)
    return fs.get_file_info(path).type == pafs.FileType.File


def remove(uri: str) -> None:
    """Delete the file at ``uri``; a missing file is not an error (the goal state holds)."""
    fs, path = filesystem_for(uri)
    if fs.get_file_info(path).type == pafs.FileType.File:
        fs.delete_file(path)


def list_files(prefix: str, suffix: str = "") -> list[str]:
    """Sorted URIs of the files directly under ``prefix`` whose names end with ``suffix``.

    A missing directory or prefix lists as empty, which is what "nothing converted yet" means.
    """
    fs, path = filesystem_for(prefix)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=False))
    names = sorted(
        Path(i.path).name for i in infos if i.type == pafs.FileType.File and i.path.endswith(suffix)
    )
    return [join_uri(prefix, n) for n in names]


def upload_file(local_path: str, uri: str) -> None:
    """Copy a finished local file to ``uri`` in one pyarrow transfer (see the module docstring)."""
    fs, path = filesystem_for(uri)
    pafs.copy_files(local_path, path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


@contextmanager
def atomic_output(uri: str, staging_dir: str | None = None) -> Iterator[str]:
    """Yield a local path to write; publish it at ``uri`` only if the block exits without error.

    Local: the temporary file is ``<dir>/.<name>.part`` (same filesystem, so :func:`os.replace`
    is atomic; a stable name means a rerun overwrites the leftovers of a killed run instead of
    piling them up; it is hidden and not ``*.parquet`` so globs never pick it up).
    S3: the file is staged as ``<staging_dir>/.stronglens-<hash of uri>-<name>.part`` (default: the
    system temp dir; stable per URI for the same reason) and uploaded once complete.
    On error the temporary file is removed and nothing is published.
    """
    if is_s3(uri):
        split_s3(uri)
        staging = tempfile.gettempdir() if staging_dir is None else staging_dir
        os.makedirs(staging, exist_ok=True)
        digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
        tmp = os.path.join(staging, f".stronglens-{digest}-{uri.rsplit('/', 1)[-1]}.part")
        try:
            yield tmp
            if not os.path.exists(tmp):
                raise FileNotFoundError(f"nothing was written to {tmp} for {uri}; the writer must create it")
            upload_file(tmp, uri)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return

    final = os.path.abspath(uri)
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(final)}.part")
    try:
        yield tmp
        if not os.path.exists(tmp):
            raise FileNotFoundError(f"nothing was written to {tmp} for {final}; the writer must create it")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
