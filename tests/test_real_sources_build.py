"""The real-data cutout sources end to end through `stronglens build`, as a user switches to them:

* ``cutout_source: legacysurvey`` against the loopback fits-cutout emulator, into an ``s3://`` store
  on the loopback S3 server: the manifest's URL is the one requested, the pixels are the served ones;
* ``cutout_source: coadd`` against DR10-style brick coadds written here, one of them bad: the samples
  that need the bad brick fail with a reason naming its file, the build still finishes, and once the
  brick is repaired a re-run cuts only those samples.

The catalogue and the sample selection are built once (module fixture); each test rebuilds only the
cutout models with its source's vars.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd
import pytest

from stronglens import bricks
from stronglens.cutouts.emulator import CutoutEmulator, render_cutout
from stronglens.cutouts.store import read_cutout, resolve_uri
from tests.pipeline import build_or_fail, lake
from tests.test_cutouts_coadd import COARSE, COARSE_SIZE, analytic_sky, pixel_grid, tan_wcs, write_brick

#: Two positives and four negatives each: enough to see every path, cheap to cut.
SAMPLES = {"cutout_max_positives": 2, "cutout_negatives_per_positive": 4}
CUTOUT_MODELS = ("--select", "int_cutout_samples_selected", "cutout_manifest", "cutouts")
ROWS_SQL = (
    "select c.sample_id, c.path, c.status, c.source, c.reason, c.attempts, c.fetched_at,"
    " m.ra, m.dec, m.cutout_url from cutouts c join cutout_manifest m using (sample_id)"
    " order by c.sample_id"
)


@pytest.fixture(scope="module")
def home(sweeps_glob: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("real-sources")
    selection = ("--select", "+int_cutout_samples_selected")
    build_or_fail(home, sweeps_glob, *selection, "--vars", json.dumps(SAMPLES))
    return home


def _rows(home: Path) -> pd.DataFrame:
    with lake(home) as con:
        return con.execute(ROWS_SQL).df()


def test_legacysurvey_source_into_an_s3_store(
    home: Path, sweeps_glob: str, s3_bucket: str, s3_client: Any
) -> None:
    root = f"s3://{s3_bucket}/cutouts"
    with CutoutEmulator(idle_timeout_s=900.0, max_lifetime_s=900.0) as server:
        dbt_vars = {
            **SAMPLES,
            "cutout_source": "legacysurvey",
            "cutout_url_template": server.url_template,
            "cutout_root": root,
            "cutout_rate_limit_per_s": 1000.0,
            "cutout_backoff_base_s": 0.01,
        }
        build_or_fail(home, sweeps_glob, *CUTOUT_MODELS, "--vars", json.dumps(dbt_vars))
        requests = server.request_count
    rows = _rows(home)
    assert len(rows) == 2 * (1 + 4) and requests == len(rows)
    assert (rows.status == "ok").all(), rows.reason.tolist()
    assert (rows.source == "legacysurvey").all()
    assert not any(p.startswith(("/", "s3://")) for p in rows.path)  # relative to the store
    listed = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="cutouts/")
    assert sorted(o["Key"] for o in listed["Contents"]) == sorted(f"cutouts/{p}" for p in rows.path)
    for row in rows.itertuples():
        image, meta = read_cutout(resolve_uri(row.path, root), expected_shape=(101, 101, 3))
        assert meta.cutout_url == row.cutout_url and row.cutout_url.startswith("http://127.0.0.1")
        # the server sees the URL's 7-decimal coordinates (and keys them to 6 decimals): rounding the
        # exact position straight to 6 decimals can land one step away, so compare at the URL's
        query = parse_qs(urlparse(row.cutout_url).query)
        served = render_cutout(float(query["ra"][0]), float(query["dec"][0]), "grz", 101)
        np.testing.assert_array_equal(image, served)


def _write_bricks(root: Path, positions: list[tuple[float, float]]) -> None:
    """Coarse DR10-style bricks (9"/px, 100 px plus overlap, each with its own TAN centre) filled
    from the analytic sky, covering every cutout around ``positions``."""
    n = 112
    xx, yy = pixel_grid(n)
    wanted = set()
    for ra, dec in positions:
        wanted |= set(bricks.bricks_in_box(ra - 0.3, ra + 0.3, dec - 0.3, dec + 0.3).tolist())
    for bid in sorted(wanted):
        ra_c, dec_c = (float(v[0]) for v in bricks.brick_center(bid))
        wcs = tan_wcs(ra_c, dec_c, ((n + 1) / 2, (n + 1) / 2), COARSE)
        ra, dec = wcs.pixel_to_world_values(xx, yy)
        for band in "grz":
            write_brick(root, str(bricks.brick_name(bid)[0]), band, analytic_sky(ra, dec, band), wcs)


def test_coadd_source_with_a_bad_brick_fails_its_samples_and_resumes(
    home: Path, sweeps_glob: str, tmp_path: Path
) -> None:
    coadds = tmp_path / "coadds"
    dbt_vars = json.dumps(
        {
            **SAMPLES,
            "cutout_source": "coadd",
            "cutout_coadd_root": str(coadds),
            "cutout_size": COARSE_SIZE,
            "cutout_pixscale": COARSE,
        }
    )
    with lake(home) as con:
        manifest = con.execute(
            "select sample_id, ra, dec from int_cutout_samples_selected order by sample_id"
        ).df()
    _write_bricks(coadds, list(zip(manifest.ra, manifest.dec, strict=True)))
    first = manifest.iloc[0]
    bad = str(bricks.brick_name(bricks.brick_id(first.ra, first.dec))[0])
    bad_file = coadds / "coadd" / bad[:3] / bad / f"legacysurvey-{bad}-image-z.fits.fz"
    good_bytes = bad_file.read_bytes()
    bad_file.write_bytes(good_bytes[: len(good_bytes) // 3])  # a truncated download

    build_or_fail(home, sweeps_glob, *CUTOUT_MODELS, "--vars", dbt_vars)
    before = _rows(home).set_index("sample_id")
    failed = before[before.status == "failed"]
    assert first.sample_id in failed.index and len(failed) < len(before)
    assert failed.reason.str.contains(bad).all(), failed.reason.tolist()
    store = str(home / "cutouts")
    xx, yy = pixel_grid(COARSE_SIZE)
    c = (COARSE_SIZE + 1) / 2
    for sample_id, row in before[before.status == "ok"].iterrows():
        image, _ = read_cutout(resolve_uri(row.path, store), expected_shape=(COARSE_SIZE, COARSE_SIZE, 3))
        ra_pix, dec_pix = tan_wcs(row.ra, row.dec, (c, c), COARSE).pixel_to_world_values(xx, yy)
        for b, band in enumerate("grz"):
            err = np.abs(image[..., b] - analytic_sky(ra_pix, dec_pix, band))
            assert err.max() <= 0.036, (sample_id, band, err.max())  # the cutter's interpolation bound

    bad_file.write_bytes(good_bytes)  # repaired: the re-run cuts only what failed
    build_or_fail(home, sweeps_glob, "--select", "cutouts", "--vars", dbt_vars)
    after = _rows(home).set_index("sample_id")
    assert (after.status == "ok").all(), after.reason.tolist()
    redone = after.index[after.fetched_at != before.fetched_at]
    assert sorted(redone) == sorted(failed.index)
