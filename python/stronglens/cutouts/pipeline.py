"""Fetch the cutouts of a manifest from a cutout source into the NPZ store, resumably.

This is what the dbt Python model ``cutouts`` calls.  Every source (:mod:`stronglens.cutouts.sources`:
synthetic, legacysurvey, coadd) yields :class:`~stronglens.cutouts.http.FetchResult` s, so the store,
the resume logic and the ``cutouts`` table are the same whichever the source; the settings are one
:class:`~stronglens.cutouts.settings.CutoutSettings`, and the store checks every array against its
shape ``(cutout_size, cutout_size, len(cutout_bands))``.

Resuming: a cutout whose file exists is kept (and validated against the sha256 recorded by the
previous build, when there is one); only missing, invalid or failed cutouts are fetched again.
Each file is written atomically as soon as it arrives, so a run killed half-way loses nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from stronglens import storage
from stronglens.cutouts.http import utc_now_iso
from stronglens.cutouts.settings import CutoutSettings
from stronglens.cutouts.sources import SOURCES
from stronglens.cutouts.store import CutoutMeta, plan_refetch, read_bytes, resolve_uri, write_cutout

#: Cutouts a source makes per batch (the synthetic renderer's and the coadd cutter's unit of work).
BATCH_SIZE = 256

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


def _absolute_paths(manifest: pa.Table, root: str) -> list[str]:
    return [storage.join_uri(root, rel) for rel in manifest.column("path").to_pylist()]


def _previous_ok(previous: pa.Table | None, root: str) -> dict[str, dict]:
    """Rows of the previous ``cutouts`` table whose cutout was stored, by resolved location (older
    builds stored absolute paths, newer ones paths relative to the root)."""
    if previous is None or previous.num_rows == 0:
        return {}
    ok = previous.filter(pc.equal(previous.column("status"), "ok"))
    return {resolve_uri(row["path"], root): row for row in ok.to_pylist()}


def _kept_row(row: dict, uri: str, source: str, previous: dict[str, dict]) -> dict:
    """A ``cutouts`` row for a file kept from an earlier run (its hash read back when unknown)."""
    if uri in previous:
        kept = {"sample_id": row["sample_id"], "galaxy_id": row["galaxy_id"], "path": row["path"]}
        return {**previous[uri], **kept}
    import hashlib

    body = read_bytes(uri)
    return {
        "sample_id": row["sample_id"],
        "galaxy_id": row["galaxy_id"],
        "path": row["path"],
        "source": source,
        "status": "ok",
        "reason": "found complete from an earlier run",
        "attempts": 0,
        "bytes": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "fetched_at": utc_now_iso(),
    }


def fetch_cutouts(
    manifest: pa.Table,
    settings: CutoutSettings,
    neighbours: pa.Table | None = None,
    previous: pa.Table | None = None,
    progress: bool = True,
    batch_size: int = BATCH_SIZE,
) -> pa.Table:
    """Make sure every manifest row has a stored cutout; return the ``cutouts`` table.

    ``manifest`` needs :data:`MANIFEST_COLUMNS` (``path`` relative to ``settings.root``; the synthetic
    source also needs the render columns); ``previous`` is the last build's ``cutouts`` table. The
    returned ``path`` stays relative to the root (:func:`~stronglens.cutouts.store.resolve_uri`), so
    a warehouse copied with its store reads the copy.
    One failed cutout is a row with ``status = 'failed'`` and its reason, never an exception.
    """
    source = SOURCES[settings.source]
    missing = [c for c in (*MANIFEST_COLUMNS, *source.columns) if c not in manifest.column_names]
    if missing:
        raise ValueError(f"cutout manifest lacks columns {missing}")
    if manifest.num_rows == 0:
        return CUTOUTS_SCHEMA.empty_table()
    paths = _absolute_paths(manifest, settings.root)
    previous_ok = _previous_ok(previous, settings.root)
    recorded = {p: r["sha256"] for p, r in previous_ok.items()}
    plan = plan_refetch(
        manifest.column("sample_id"),
        paths,
        check="read",
        recorded_sha256=recorded,
        expected_shape=settings.shape,
    )
    refetch = set(plan.column("sample_id").to_pylist())

    rows: list[dict] = []
    by_id = {}
    for row, uri in zip(manifest.select(list(MANIFEST_COLUMNS)).to_pylist(), paths, strict=True):
        by_id[row["sample_id"]] = row
        if row["sample_id"] not in refetch:
            rows.append(_kept_row(row, uri, settings.source, previous_ok))

    todo_mask = pc.is_in(manifest.column("sample_id"), value_set=plan.column("sample_id"))
    todo = manifest.filter(todo_mask)
    previous_attempts = {}
    if previous is not None and previous.num_rows:
        previous_attempts = dict(
            zip(
                previous.column("sample_id").to_pylist(), previous.column("attempts").to_pylist(), strict=True
            )
        )
    results = source.fetch(todo, settings, neighbours, batch_size)
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
                pixels = np.asarray(result.cutout, dtype=np.float32)
                uri = resolve_uri(row["path"], settings.root)
                written = write_cutout(uri, pixels, meta, expected_shape=settings.shape)
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
