"""fetch_cutouts with the HTTP source against the loopback emulator: failures are recorded, not
raised, and a re-run asks the server again only for what is missing or failed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from stronglens.cutouts.emulator import CutoutEmulator, Html, HttpError, render_cutout
from stronglens.cutouts.pipeline import FetchSettings, fetch_cutouts
from stronglens.cutouts.store import read_cutout

N = 10


def _manifest() -> pa.Table:
    ra = 150.0 + 0.01 * np.arange(N)
    dec = np.full(N, 2.5)
    gid = 10000 * 10**12 + 4242 * 10**6 + np.arange(N, dtype=np.int64)
    return pa.table(
        {
            "sample_id": [str(g) for g in gid],
            "galaxy_id": gid,
            "ra": ra,
            "dec": dec,
            "type": ["DEV"] * N,
            "nobs_z": np.full(N, 4),
            "psfsize_z": np.full(N, 1.2),
            "flux_r": np.full(N, 20.0),
            "path": [f"train/negative/{g}.npz" for g in gid],
        }
    )


def test_http_fetch_records_failures_and_resumes(tmp_path: Path) -> None:
    manifest = _manifest()
    ra = manifest.column("ra").to_pylist()
    faults = {
        (round(ra[1], 6), 2.5): [HttpError(500), HttpError(503)],  # retried, then fine
        (round(ra[2], 6), 2.5): [HttpError(404)],  # not retried: failed this run
        (round(ra[3], 6), 2.5): [Html()],  # a body that is not FITS: failed this run
    }
    with CutoutEmulator(faults_by_position=faults) as server:
        settings = FetchSettings(
            source="legacysurvey",
            root=str(tmp_path / "store"),
            url_template=server.url_template,
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

    image, meta = read_cutout(second.loc[ids[0], "path"])
    expected = render_cutout(ra[0], 2.5, "grz", 101)
    np.testing.assert_array_equal(image, expected)
    assert meta.cutout_url.startswith("http://127.0.0.1")
