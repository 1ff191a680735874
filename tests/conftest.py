"""Shared pytest fixtures: a loopback S3 server (moto) and fresh buckets on it.

Everything S3 in the project reads its configuration from the ``AWS_*`` environment
(:mod:`stronglens.storage`), so the server fixture points that environment at the local server for
the rest of the test session; no test can reach real AWS, and the credentials are fake.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

#: Fake credentials the moto server accepts (any values work; these make logs recognisable).
FAKE_KEY_ID = "stronglens-test-key"
FAKE_SECRET = "stronglens-test-secret"
REGION = "us-east-1"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Start moto on 127.0.0.1 (free port) once per session and yield its endpoint URL.

    Sets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and AWS_ENDPOINT_URL (and clears
    AWS_SESSION_TOKEN, AWS_DEFAULT_REGION and STRONGLENS_S3_URL_STYLE, so path-style URLs without SSL
    follow from the http endpoint) until the session ends, when the previous values are restored.
    """
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one INFO line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    patch = pytest.MonkeyPatch()
    patch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    patch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    patch.setenv("AWS_REGION", REGION)
    patch.setenv("AWS_ENDPOINT_URL", endpoint)
    for name in ("AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "STRONGLENS_S3_URL_STYLE"):
        patch.delenv(name, raising=False)
    try:
        yield endpoint
    finally:
        patch.undo()
        server.stop()


@pytest.fixture
def s3_client(s3_server: str) -> Any:
    """A boto3 S3 client on the moto server, to arrange and inspect buckets independently (boto3
    clients have no importable static type, hence ``Any``)."""
    return boto3.client(
        "s3",
        endpoint_url=s3_server,
        aws_access_key_id=FAKE_KEY_ID,
        aws_secret_access_key=FAKE_SECRET,
        region_name=REGION,
    )


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    """Create a fresh, uniquely named bucket (tests never see each other's objects); return its name."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=name)
    return name


#: A full-footprint synthetic sky, sparse enough to build in seconds yet holding every lens candidate.
TEST_SKY_DENSITY = 60.0


@pytest.fixture(scope="session")
def sky(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test sky's sweep folder (generated once per session)."""
    from stronglens.synth import generate_sky

    out = tmp_path_factory.mktemp("sky")
    generate_sky(str(out), density=TEST_SKY_DENSITY, seed=7, progress=False)
    return out


@pytest.fixture(scope="session")
def sweeps_glob(sky: Path) -> str:
    return str(sky / "*.parquet")


@pytest.fixture(scope="session")
def home(sweeps_glob: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse built once per session from the test sky: the catalog DAG, no cutouts."""
    from tests.pipeline import build_or_fail

    home = tmp_path_factory.mktemp("warehouse")
    build_or_fail(home, sweeps_glob, "--exclude", "tag:cutouts")
    return home
