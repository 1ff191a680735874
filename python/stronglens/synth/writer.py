"""Tiles to Parquet files, and :func:`generate_sky`, the entry point."""

from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from stronglens.schema import SWEEP_SCHEMA
from stronglens.synth.chunks import CHUNK_ROWS, _Context, _generate_chunk, _MapGrid, _Pieces, _tile_pieces
from stronglens.synth.counterparts import DEFAULT_CANDIDATES_CSV
from stronglens.synth.footprint import Footprint, Tile, select_tiles
from stronglens.synth.masks import _Circles, _neighbourhood_circles
from stronglens.synth.model import DEFAULT_DENSITY, DEFAULT_MAG_LIMIT, SkyModel

#: Parquet layout: dictionary-encode only the low-cardinality strings (dictionary attempts on
#: high-entropy floats cost ~4x the write time for nothing), and keep min/max statistics only where
#: rows are spatially ordered so that DuckDB can prune row groups (keys and positions).
_DICTIONARY_COLUMNS = ("release", "brickname", "type", "ref_cat")
#: zstd level -3 ("fast" mode): ~15% less write CPU than the default level 1 for ~20% larger
#: files (~230 vs ~190 bytes per row), still plain zstd for every reader; writing is ~60% of the
#: cost at DR10 density, so this buys most of the throughput margin.
_ZSTD_LEVEL = -3
_STATISTICS_COLUMNS = ("release", "brickid", "brickname", "objid", "type", "ra", "dec")

# --------------------------------------------------------------------------------------------------
# Files


@dataclass
class SynthReport:
    """What :func:`generate_sky` wrote and how fast."""

    files: list[str]
    rows_per_file: dict[str, int]
    total_rows: int
    seconds: float
    rows_per_second: float
    footprint_area_deg2: float
    counterparts_written: int
    counterparts_within_1arcsec: int
    candidates_total: int

    @property
    def candidate_match_fraction(self) -> float:
        """Share of all candidates given a counterpart within 1" (written in these tiles)."""
        return self.counterparts_within_1arcsec / self.candidates_total if self.candidates_total else 0.0


def _tile_tables(ctx: _Context, tile: Tile, pieces: _Pieces) -> Iterator[pa.Table]:
    """The tile's rows in chunks of whole brick rows holding up to ``CHUNK_ROWS`` rows.

    The grouping depends only on the tile's piece counts, and each chunk's generator is seeded by
    ``(seed, tile, first brick row)``, so the content never depends on other tiles or on
    ``row_group_rows``; at low density a chunk is the whole tile (few, large numpy calls), at
    DR10 density one brick row (~175,000 rows, bounded memory).
    """
    circles = _neighbourhood_circles(ctx.seed, ctx.model, tile)
    grid = _MapGrid(ctx, tile)
    rows = np.unique(pieces.row)
    per_row = np.bincount(np.searchsorted(rows, pieces.row), weights=pieces.n_base + pieces.n_cp).astype(
        np.int64
    )
    chunk: list[int] = []
    size = 0
    for r, k in zip(rows.tolist(), per_row.tolist(), strict=True):
        if chunk and size + k > CHUNK_ROWS:
            yield from _chunk_table(ctx, tile, pieces, chunk, circles, grid)
            chunk, size = [], 0
        chunk.append(r)
        size += k
    yield from _chunk_table(ctx, tile, pieces, chunk, circles, grid)


def _chunk_table(
    ctx: _Context, tile: Tile, pieces: _Pieces, rows: list[int], circles: _Circles, grid: _MapGrid
) -> Iterator[pa.Table]:
    sel = np.flatnonzero(np.isin(pieces.row, rows) & (pieces.n_base + pieces.n_cp > 0))
    if sel.size:
        yield _generate_chunk(ctx, tile, pieces, sel, circles, grid)


@dataclass
class _TileResult:
    path: str
    rows: int
    counterparts: int
    counterparts_within_1arcsec: int
    footprint_area_deg2: float


def _write_tile(ctx: _Context, tile: Tile, out_dir: Path, row_group_rows: int) -> _TileResult:
    """Write one tile to a temporary file and rename it into place (readers never see a partial file)."""
    pieces = _tile_pieces(ctx, tile)
    final = out_dir / tile.name
    tmp = out_dir / f".{tile.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    rows = 0
    try:
        with pq.ParquetWriter(
            tmp,
            SWEEP_SCHEMA,
            compression="zstd",
            compression_level=_ZSTD_LEVEL,
            use_dictionary=list(_DICTIONARY_COLUMNS),
            write_statistics=list(_STATISTICS_COLUMNS),
            # CRC32 per page: sweep validation then detects a corrupt page even where the bytes
            # still decode (zstd stores incompressible float pages raw)
            write_page_checksum=True,
        ) as writer:
            buffer: list[pa.Table] = []
            buffered = 0
            for table in _tile_tables(ctx, tile, pieces):
                buffer.append(table)
                buffered += table.num_rows
                if buffered >= row_group_rows:
                    merged = pa.concat_tables(buffer)
                    full = (buffered // row_group_rows) * row_group_rows
                    writer.write_table(merged.slice(0, full), row_group_size=row_group_rows)
                    buffer = [merged.slice(full)]
                    buffered -= full
                    rows += full
            if buffered or rows == 0:
                writer.write_table(
                    pa.concat_tables(buffer) if buffer else SWEEP_SCHEMA.empty_table(),
                    row_group_size=row_group_rows,
                )
                rows += buffered
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    n_cp = int(pieces.n_cp.sum())
    within = 0
    if ctx.cp is not None and n_cp:
        in_tile = (ctx.cp.key & 0xFFFF) == ((tile.idec + 90) << 8 | tile.ira)
        within = int((in_tile & ~ctx.cp.displaced).sum())
    return _TileResult(str(final), rows, n_cp, within, pieces.area_in_footprint)


def generate_sky(
    out: str,
    density: float = DEFAULT_DENSITY,
    seed: int = 42,
    tiles: list[str] | None = None,
    mag_limit: float = DEFAULT_MAG_LIMIT,
    candidates_csv: str | Sequence[str] | None = DEFAULT_CANDIDATES_CSV,
    row_group_rows: int = 500_000,
    progress: bool = True,
    *,
    workers: int = 2,
    model: SkyModel | None = None,
    footprint: Footprint | None = None,
) -> SynthReport:
    """Write the synthetic DR10-south sweeps into the local directory ``out``.

    ``density`` is objects per deg^2 (all types) down to ``mag_limit``, the faintest intrinsic z-band
    AB magnitude generated; ``tiles`` restricts the run (see the module doc; ``None`` = the whole
    footprint).  Tiles are generated ``workers`` at a time (threads: numpy and Arrow release the GIL),
    each in chunks of whole brick rows of at most ``CHUNK_ROWS`` rows (one brick row at DR10
    density), so memory stays below ~1 GB per worker whatever the density.  The same arguments
    always give byte-identical files, whatever ``workers`` is.  ``model`` and ``footprint`` replace
    the physical model and the footprint (defaults: :class:`SkyModel`, :class:`Footprint`).
    """
    if density <= 0 or not math.isfinite(density):
        raise ValueError(f"density must be a positive number of objects per deg^2, got {density}")
    model = model or SkyModel()
    if not model.mag_bright + 1.0 <= mag_limit <= 30.0:
        raise ValueError(f"mag_limit must lie in [{model.mag_bright + 1}, 30] (z AB), got {mag_limit}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if row_group_rows < 1:
        raise ValueError(f"row_group_rows must be positive, got {row_group_rows}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    footprint = footprint or Footprint()
    t0 = time.perf_counter()
    chosen = select_tiles(tiles, footprint)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = _Context(seed, density, mag_limit, model, footprint, candidates_csv)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(chosen), unit="tile", desc="synth sweeps")
    results: list[_TileResult] = []
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        for res in pool.map(lambda t: _write_tile(ctx, t, out_dir, row_group_rows), chosen):
            results.append(res)
            if bar is not None:
                bar.update(1)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # stop queued tiles; running ones clean up
        raise
    finally:
        pool.shutdown(wait=True)
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    total = sum(r.rows for r in results)
    return SynthReport(
        files=[r.path for r in results],
        rows_per_file={os.path.basename(r.path): r.rows for r in results},
        total_rows=total,
        seconds=seconds,
        rows_per_second=total / seconds if seconds > 0 else float("inf"),
        footprint_area_deg2=sum(r.footprint_area_deg2 for r in results),
        counterparts_written=sum(r.counterparts for r in results),
        counterparts_within_1arcsec=sum(r.counterparts_within_1arcsec for r in results),
        candidates_total=ctx.cp.n_candidates if ctx.cp is not None else 0,
    )
