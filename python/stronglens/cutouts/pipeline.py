"""Fetch the cutouts of a manifest from one of three sources into the NPZ store, resumably.

This is what the dbt Python model ``cutouts`` calls.  The three sources share one interface -- an
iterator of :class:`~stronglens.cutouts.http.FetchResult` -- so the store, the resume logic and the
``cutouts`` table are the same whichever the source:

* ``legacysurvey``: FITS cutouts over HTTP from the Legacy Survey viewer (real data).
* ``coadd``: cut from DR10 brick coadd images, local or ``s3://`` (real data, bulk).
* ``synthetic``: rendered from the Tractor parameters (the embedded default sky).

Resuming: a cutout whose file exists is kept (and validated against the sha256 recorded by the
previous build, when there is one); only missing, invalid or failed cutouts are fetched again.
Each file is written atomically as soon as it arrives, so a run killed half-way loses nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from stronglens import storage
from stronglens.cutouts.http import DEFAULT_URL_TEMPLATE, FetchResult, utc_now_iso
from stronglens.cutouts.store import CutoutMeta, plan_refetch, read_bytes, write_cutout

SOURCES = ("synthetic", "legacysurvey", "coadd")

#: Schema of the ``cutouts`` table.
CUTOUTS_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string()),
        pa.field("galaxy_id", pa.int64()),
        pa.field("path", pa.string()),
        pa.field("source", pa.string()),
        pa.field("status", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("attempts", pa.int32()),
        pa.field("bytes", pa.int64()),
        pa.field("sha256", pa.string()),
        pa.field("fetched_at", pa.string()),
    ]
)

#: Manifest columns every source needs; the synthetic source also needs the render columns.
MANIFEST_COLUMNS = ("sample_id", "galaxy_id", "ra", "dec", "type", "nobs_z", "psfsize_z", "flux_r", "path")


@dataclass(frozen=True)
class FetchSettings:
    """How to fetch: the source, where the store is, and each source's knobs (dbt vars)."""

    source: str
    root: str
    seed: int = 42
    url_template: str = DEFAULT_URL_TEMPLATE
    layer: str = "ls-dr10-south"
    size: int = 101
    pixscale: float = 0.262
    bands: str = "grz"
    concurrency: int = 8
    rate_limit_per_s: float = 5.0
    max_attempts: int = 5
    backoff_base_s: float = 1.0
    coadd_root: str | None = None
    batch_size: int = 256

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"cutout_source must be one of {', '.join(SOURCES)}, not {self.source!r}")
        if self.source == "coadd" and not self.coadd_root:
            raise ValueError(
                "cutout_source 'coadd' needs the cutout_coadd_root var (a folder or s3:// prefix)"
            )


def _absolute_paths(manifest: pa.Table, root: str) -> list[str]:
    return [storage.join_uri(root, rel) for rel in manifest.column("path").to_pylist()]


def _previous_ok(previous: pa.Table | None) -> dict[str, dict]:
    """Rows of the previous ``cutouts`` table whose cutout was stored, by path."""
    if previous is None or previous.num_rows == 0:
        return {}
    ok = previous.filter(pc.equal(previous.column("status"), "ok"))
    return {row["path"]: row for row in ok.to_pylist()}


def _kept_row(row: dict, path: str, source: str, previous: dict[str, dict]) -> dict:
    """A ``cutouts`` row for a file kept from an earlier run (its hash read back when unknown)."""
    if path in previous:
        return {**previous[path], "sample_id": row["sample_id"], "galaxy_id": row["galaxy_id"]}
    import hashlib

    body = read_bytes(path)
    return {
        "sample_id": row["sample_id"],
        "galaxy_id": row["galaxy_id"],
        "path": path,
        "source": source,
        "status": "ok",
        "reason": "found complete from an earlier run",
        "attempts": 0,
        "bytes": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "fetched_at": utc_now_iso(),
    }


def _render_results(
    manifest: pa.Table, neighbours: pa.Table | None, settings: FetchSettings
) -> Iterator[FetchResult]:
    """The synthetic source as FetchResults, rendered ``batch_size`` cutouts at a time."""
    from stronglens.cutouts.render import render_batch

    for start in range(0, manifest.num_rows, settings.batch_size):
        batch = manifest.slice(start, settings.batch_size)
        rendered = render_batch(batch, neighbours, seed=settings.seed)
        status = rendered.metadata.column("status").to_pylist()
        errors = rendered.metadata.column("error").to_pylist()
        now = utc_now_iso()
        for i, sample_id in enumerate(batch.column("sample_id").to_pylist()):
            ok = status[i] == "ok"
            yield FetchResult(
                sample_id=sample_id,
                status="ok" if ok else "failed",
                reason=None if ok else errors[i],
                attempts=1,
                cutout=rendered.cutouts[i] if ok else None,
                bytes=0,
                url=f"synthetic:galaxy_id={batch.column('galaxy_id')[i].as_py()}&seed={settings.seed}",
                fetched_at=now,
            )


def _source_results(
    todo: pa.Table, neighbours: pa.Table | None, settings: FetchSettings
) -> Iterator[FetchResult]:
    requests_ = zip(
        todo.column("sample_id").to_pylist(),
        todo.column("ra").to_pylist(),
        todo.column("dec").to_pylist(),
        strict=True,
    )
    if settings.source == "synthetic":
        yield from _render_results(todo, neighbours, settings)
    elif settings.source == "legacysurvey":
        from stronglens.cutouts.http import LegacySurveyClient

        with LegacySurveyClient(
            url_template=settings.url_template,
            layer=settings.layer,
            size=settings.size,
            pixscale=settings.pixscale,
            bands=settings.bands,
            concurrency=settings.concurrency,
            rate_limit_per_s=settings.rate_limit_per_s,
            max_attempts=settings.max_attempts,
            backoff_base_s=settings.backoff_base_s,
        ) as client:
            yield from client.fetch_many(requests_)
    else:
        from stronglens.cutouts.coadd import CoaddCutter

        cutter = CoaddCutter(
            settings.coadd_root,
            bands=settings.bands,
            size=settings.size,
            pixscale=settings.pixscale,
            batch_size=settings.batch_size,
        )
        yield from cutter.cut_many(requests_)


def fetch_cutouts(
    manifest: pa.Table,
    settings: FetchSettings,
    neighbours: pa.Table | None = None,
    previous: pa.Table | None = None,
    progress: bool = True,
) -> pa.Table:
    """Make sure every manifest row has a stored cutout; return the ``cutouts`` table.

    ``manifest`` needs :data:`MANIFEST_COLUMNS` (``path`` relative to ``settings.root``; the synthetic
    source also needs the render columns); ``previous`` is the last build's ``cutouts`` table.
    One failed cutout is a row with ``status = 'failed'`` and its reason, never an exception.
    """
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.column_names]
    if missing:
        raise ValueError(f"cutout manifest lacks columns {missing}")
    if manifest.num_rows == 0:
        return CUTOUTS_SCHEMA.empty_table()
    paths = _absolute_paths(manifest, settings.root)
    previous_ok = _previous_ok(previous)
    recorded = {p: r["sha256"] for p, r in previous_ok.items()}
    plan = plan_refetch(manifest.column("sample_id"), paths, check="read", recorded_sha256=recorded)
    refetch = set(plan.column("sample_id").to_pylist())

    rows: list[dict] = []
    by_id = {}
    for row, path in zip(manifest.select(list(MANIFEST_COLUMNS)).to_pylist(), paths, strict=True):
        row["path"] = path
        by_id[row["sample_id"]] = row
        if row["sample_id"] not in refetch:
            rows.append(_kept_row(row, path, settings.source, previous_ok))

    todo_mask = pc.is_in(manifest.column("sample_id"), value_set=plan.column("sample_id"))
    todo = manifest.filter(todo_mask)
    previous_attempts = {}
    if previous is not None and previous.num_rows:
        previous_attempts = dict(
            zip(
                previous.column("sample_id").to_pylist(), previous.column("attempts").to_pylist(), strict=True
            )
        )
    results = _source_results(todo, neighbours, settings)
    for result in tqdm(
        results, total=todo.num_rows, disable=not progress, unit="cutout", desc=f"cutouts ({settings.source})"
    ):
        row = by_id[result.sample_id]
        attempts = int(result.attempts) + int(previous_attempts.get(result.sample_id) or 0)
        record = {
            "sample_id": row["sample_id"],
            "galaxy_id": row["galaxy_id"],
            "path": row["path"],
            "source": settings.source,
            "status": result.status,
            "reason": result.reason,
            "attempts": attempts,
            "bytes": None,
            "sha256": None,
            "fetched_at": result.fetched_at,
        }
        if result.status == "ok":
            meta = CutoutMeta(
                galaxy_id=int(row["galaxy_id"]),
                ra=float(row["ra"]),
                dec=float(row["dec"]),
                type=str(row["type"]),
                nobs_z=int(row["nobs_z"]),
                psfsize_z=float(row["psfsize_z"]),
                flux_r=float(row["flux_r"]),
                cutout_url=result.url,
                download_timestamp=result.fetched_at,
            )
            try:
                written = write_cutout(row["path"], np.asarray(result.cutout, dtype=np.float32), meta)
            except (OSError, ValueError) as exc:
                record.update(status="failed", reason=f"store: {exc}")
            else:
                record.update(bytes=written.bytes, sha256=written.sha256)
        rows.append(record)
    table = pa.Table.from_pylist(rows, schema=CUTOUTS_SCHEMA)
    return table.sort_by("sample_id")


def neighbour_offsets(pairs: pa.Table) -> pa.Table:
    """Tangent-plane offsets (arcsec, East and North) of neighbours from their cutout centre.

    ``pairs`` holds ``galaxy_id, ra0, dec0`` (the centre) and the neighbour's ``ra, dec`` plus its
    shape and flux columns; returns the renderer's neighbour table.
    """
    from stronglens.lensing import tangent_plane_offsets

    east, north = tangent_plane_offsets(
        pairs.column("ra0").to_numpy(),
        pairs.column("dec0").to_numpy(),
        pairs.column("ra").to_numpy(),
        pairs.column("dec").to_numpy(),
    )
    keep: Sequence[str] = [c for c in pairs.column_names if c not in ("ra0", "dec0", "ra", "dec")]
    return (
        pairs.select(keep)
        .append_column("offset_east_arcsec", pa.array(east))
        .append_column("offset_north_arcsec", pa.array(north))
    )
