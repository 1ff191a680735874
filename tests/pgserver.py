"""A throw-away PostgreSQL server on loopback for the team-catalog tests.

The PostgreSQL 15 server binaries (``initdb``, ``pg_ctl``, ``postgres``) are looked up in
``$STRONGLENS_PG_BIN`` (default ``/usr/local/bin``), then on PATH.  PostgreSQL refuses to run as
root, and CI runs as root: then the server runs as the unprivileged system user ``stronglens-pg``
(created with ``useradd`` if missing) through ``setpriv``.  Trust authentication on 127.0.0.1 only,
a free port, fsync off; the data folder is removed afterwards.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SERVER_USER = "stronglens-pg"


class PostgresUnavailableError(RuntimeError):
    """No way to run a PostgreSQL server here; the message says why (tests skip with it)."""


def _binary(name: str) -> str:
    folder = Path(os.environ.get("STRONGLENS_PG_BIN", "/usr/local/bin"))
    found = folder / name if (folder / name).is_file() else shutil.which(name)
    if not found:
        raise PostgresUnavailableError(f"PostgreSQL server binary {name!r} not found in {folder} or on PATH")
    return str(found)


def _as_server_user() -> tuple[list[str], int | None]:
    """The command prefix that drops root (and the uid owning the data), or nothing when not root."""
    if os.geteuid() != 0:
        return [], None
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError as missing:
        useradd = shutil.which("useradd")
        if not useradd:
            raise PostgresUnavailableError(
                "running as root without useradd: cannot create a user for postgres"
            ) from missing
        subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVER_USER],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(SERVER_USER)
    setpriv = shutil.which("setpriv")
    if not setpriv:
        raise PostgresUnavailableError("running as root without setpriv: cannot drop privileges for postgres")
    prefix = [setpriv, f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"]
    return prefix, entry.pw_uid


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start PostgreSQL on 127.0.0.1 and yield a ``postgresql://`` URL of its ``postgres`` database."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    _binary("postgres")
    prefix, uid = _as_server_user()
    base = Path(tempfile.mkdtemp(prefix="stronglens-pg-"))
    base.chmod(0o755)
    if uid is not None:
        os.chown(base, uid, -1)
    data, port = base / "data", _free_port()

    def run(*args: str) -> None:
        result = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            log = (base / "log").read_text() if (base / "log").exists() else ""
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}{log}")

    try:
        run(initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-p {port} -c listen_addresses=127.0.0.1 -k {base} -c fsync=off"
        run(pg_ctl, "-D", str(data), "-w", "-t", "60", "-l", str(base / "log"), "-o", options, "start")
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            run(pg_ctl, "-D", str(data), "-w", "-m", "immediate", "stop")
    finally:
        shutil.rmtree(base, ignore_errors=True)
