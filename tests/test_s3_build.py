"""A build reading sweeps from s3:// (moto on loopback) stages exactly the rows of a local build."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stronglens.synth import generate_sky
from tests.pipeline import build_or_fail, lake

TILES = ["sweep-150p000-155p005", "sweep-155p000-160p005", "sweep-160p000-165p005"]
COMPARE = "select * exclude (source_file) from stg_dr10__sweeps order by galaxy_id"


def test_s3_sweeps_stage_the_same_rows(tmp_path: Path, s3_client: Any, s3_bucket: str) -> None:
    sky = tmp_path / "sky"
    generate_sky(str(sky), density=400, seed=11, tiles=TILES, progress=False)
    files = sorted(sky.glob("*.parquet"))
    assert len(files) == 3
    for f in files:
        s3_client.upload_file(str(f), s3_bucket, f"dr10/sweeps/{f.name}")

    local_home, s3_home = tmp_path / "local", tmp_path / "s3"
    build_or_fail(local_home, str(sky / "*.parquet"), "--select", "+stg_dr10__sweeps")
    build_or_fail(s3_home, f"s3://{s3_bucket}/dr10/sweeps/*.parquet", "--select", "+stg_dr10__sweeps")
    with lake(local_home) as con:
        local = con.execute(COMPARE).df()
    with lake(s3_home) as con:
        remote = con.execute(COMPARE).df()
        files_read = con.execute("select distinct source_file from stg_dr10__sweeps order by 1").fetchall()
    assert len(local) > 10_000
    assert [f[0] for f in files_read] == [f"s3://{s3_bucket}/dr10/sweeps/{f.name}" for f in files]
    assert local.equals(remote)


@pytest.mark.usefixtures("s3_server")
def test_lake_data_path_on_s3(tmp_path: Path, s3_bucket: str) -> None:
    """DuckLake can keep its Parquet data on S3: the marts' files land in the bucket."""
    sky = tmp_path / "sky"
    generate_sky(str(sky), density=400, seed=11, tiles=TILES[:1], progress=False)
    home = tmp_path / "home"
    build_or_fail(
        home,
        str(sky / "*.parquet"),
        "--select",
        "+int_galaxies_filtered",
        env={"STRONGLENS_LAKE_DATA": f"s3://{s3_bucket}/lake/"},
    )
    with lake(home) as con:
        n = con.execute("select count(*) from int_galaxies_filtered").fetchone()[0]
        data_files = con.execute(
            "select count(*) from ducklake_list_files('lake', 'int_galaxies_filtered')"
        ).fetchone()[0]
    assert n > 0
    assert data_files >= 1
