"""fetch_cutouts: with the HTTP source against the loopback emulator, failures are recorded, not
raised, a re-run asks the server again only for what is missing or failed, and the URL fetched is
the manifest's (built once, in SQL); with any cutout_size / cutout_bands the store takes the cutouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from stronglens.cutouts.emulator import CutoutEmulator, Html, HttpError, render_cutout
from stronglens.cutouts.pipeline import fetch_cutouts
from stronglens.cutouts.settings import CutoutSettings
from stronglens.cutouts.store import read_cutout, resolve_uri
from tests.pipeline import dbt_show

N = 10
#: Positions with more decimals than a URL carries, so the URL's rounding is visible.
RA = 150.0 + 0.01 * np.arange(N) + 1.234567e-7
DEC = np.full(N, 2.5 - 3.21e-8)


def _manifest(urls: list[str] | None = None) -> pa.Table:
    gid = 10000 * 10**12 + 4242 * 10**6 + np.arange(N, dtype=np.int64)
    columns = {
        "sample_id": [str(g) for g in gid],
        "galaxy_id": gid,
        "ra": RA,
        "dec": DEC,
        "type": ["DEV"] * N,
        "nobs_z": np.full(N, 4),
        "psfsize_z": np.full(N, 1.2),
        "flux_r": np.full(N, 20.0),
        "path": [f"train/negative/{g}.npz" for g in gid],
    }
    if urls is not None:
        columns["cutout_url"] = urls
    return pa.table(columns)


def _sql_urls(home: Path, url_template: str) -> list[str]:
    """cutout_manifest's URLs for RA/DEC: the project's cutout_url macro, through dbt."""
    values = ", ".join(
        f"({i}, {float(r)!r}, {float(d)!r})" for i, (r, d) in enumerate(zip(RA, DEC, strict=True))
    )
    url = "{{ cutout_url('ra', 'dec') }}"
    sql = f"select i, {url} as url from (values {values}) as t(i, ra, dec) order by i"
    rows = dbt_show(home, sql, dbt_vars={"cutout_url_template": url_template})
    return [str(r["url"]) for r in rows]


def test_http_fetch_records_failures_resumes_and_fetches_the_manifest_url(tmp_path: Path) -> None:
    ra = RA.tolist()
    faults = {
        (round(ra[1], 6), 2.5): [HttpError(500), HttpError(503)],  # retried, then fine
        (round(ra[2], 6), 2.5): [HttpError(404)],  # not retried: failed this run
        (round(ra[3], 6), 2.5): [Html()],  # a body that is not FITS: failed this run
    }
    with CutoutEmulator(faults_by_position=faults) as server:
        urls = _sql_urls(tmp_path / "home", server.url_template)
        assert len(urls) == N and urls[0].startswith("http://127.0.0.1")
        manifest = _manifest(urls)
        settings = CutoutSettings.project_defaults(
            source="legacysurvey",
            root=str(tmp_path / "store"),
            concurrency=4,
            rate_limit_per_s=1000.0,
            backoff_base_s=0.01,
        )
        first = fetch_cutouts(manifest, settings, progress=False).to_pandas().set_index("sample_id")
        ids = manifest.column("sample_id").to_pylist()
        assert set(first.index[first.status == "failed"]) == {ids[2], ids[3]}
        assert "404" in first.loc[ids[2], "reason"]
        assert first.loc[ids[1], "attempts"] == 3
        requests_before = server.request_count

        second = (
            fetch_cutouts(
                manifest, settings, previous=pa.Table.from_pandas(first.reset_index()), progress=False
            )
            .to_pandas()
            .set_index("sample_id")
        )
        assert (second.status == "ok").all()
        assert server.request_count - requests_before == 2  # only the two failures asked again
        assert second.loc[ids[2], "attempts"] == first.loc[ids[2], "attempts"] + 1
        kept = [i for i in ids if i not in (ids[2], ids[3])]
        assert (second.loc[kept, "sha256"] == first.loc[kept, "sha256"]).all()

    for i, sample_id in enumerate(ids):
        image, meta = read_cutout(resolve_uri(second.loc[sample_id, "path"], settings.root))
        assert meta.cutout_url == urls[i]  # the URL fetched is the manifest's, to the last digit
    image, _ = read_cutout(resolve_uri(second.loc[ids[0], "path"], settings.root))
    np.testing.assert_array_equal(image, render_cutout(ra[0], DEC[0], "grz", 101))


def test_store_takes_any_cutout_size_and_bands(tmp_path: Path) -> None:
    """The store's expected shape is the settings' (cutout_size, cutout_size, len(cutout_bands)):
    a 33-pixel r/z run stores every cutout (a fixed (101, 101, 3) used to reject them all)."""
    manifest = _manifest().append_column("is_lens", pa.array([i % 3 == 0 for i in range(N)]))
    for name in ("shape_r", "shape_e1", "shape_e2", "sersic"):
        manifest = manifest.append_column(
            name, pa.array(np.full(N, {"shape_r": 1.0, "sersic": 4.0}.get(name, 0.1)))
        )
    for band in "grz":
        if band != "r":  # flux_r is a manifest column already
            manifest = manifest.append_column(f"flux_{band}", pa.array(np.full(N, 20.0)))
        if band != "z":  # psfsize_z too
            manifest = manifest.append_column(f"psfsize_{band}", pa.array(np.full(N, 1.2)))
        manifest = manifest.append_column(f"psfdepth_{band}", pa.array(np.full(N, 3000.0)))
    settings = CutoutSettings.project_defaults(root=str(tmp_path / "store"), size=33, bands="rz")
    assert settings.source == "synthetic" and settings.shape == (33, 33, 2)
    table = fetch_cutouts(manifest, settings, progress=False).to_pandas()
    assert (table.status == "ok").all(), table.reason.tolist()
    assert not any(p.startswith("/") for p in table.path)  # relative: the store can move
    for path in table.path:
        image, _ = read_cutout(resolve_uri(path, settings.root), expected_shape=settings.shape)
        assert image.shape == (33, 33, 2) and np.isfinite(image).all()
