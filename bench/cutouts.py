"""Cutout benchmark: cutouts/s from the HTTP source (against the loopback emulator), the coadd
source and the synthetic renderers (the fast one of the pipeline against the exact reference).

    python -m bench.cutouts [--only-synthetic] [--latency 1.0] [--levels 1 4 16 32] [--max-requests 64]
                            [--repeats 3] [--coadd-cutouts 200] [--synthetic-cutouts 1000]
                            [--workdir DIR] [--json PATH]

HTTP: the emulator answers every request after ``--latency`` seconds (the real service took ~1 s a
cutout for one client, DOMAIN.md); the client fetches ``min(--max-requests, 8 x concurrency)``
cutouts at each concurrency level (at least 8, so the sequential level takes seconds, not minutes)
with the rate limit switched off -- so the table shows what the concurrency buys and the client's
own overhead -- plus one row with the default polite limit (5 requests/s) to show the cap it sets.
Ratios are against the sequential level (concurrency 1).

Coadd: 2 x 2 DR10-sized bricks (3600 x 3600 px, 0.262"/px, each with its own TAN centre, RICE_1
tile-compressed row by row like the survey's ``.fits.fz``) are written to a temporary folder once;
``--coadd-cutouts`` random cutouts inside them (many straddling brick edges) are cut with a fresh
cutter per run in each decompression mode, and once more with a warm cache.

Every figure is the median of ``--repeats`` runs; all work shares this machine's cores (the emulator
renders and serialises a FITS cube per request on the same CPUs as the client parses it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from astropy.io import fits
from astropy.wcs import WCS

from stronglens import bricks
from stronglens.cutouts.coadd import CoaddCutter
from stronglens.cutouts.emulator import CutoutEmulator
from stronglens.cutouts.http import LegacySurveyClient
from stronglens.cutouts.settings import CutoutSettings

BRICK_PX = 3600
PIXSCALE = 0.262
#: A corner where four bricks of equal width meet (the rows either side of Dec 0.125 both have 1440).
CORNER = (150.0, 0.125)
POLITE_RATE_PER_S = 5.0


def median_rate(run: Callable[[], int], repeats: int) -> tuple[float, float]:
    """Median cutouts/s and median seconds over ``repeats`` runs of ``run`` (returns the count done)."""
    rates, seconds = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        n = run()
        elapsed = time.perf_counter() - start
        rates.append(n / elapsed)
        seconds.append(elapsed)
    return statistics.median(rates), statistics.median(seconds)


@dataclass(frozen=True)
class HttpRow:
    concurrency: int
    rate_limit_per_s: float | None
    n: int
    per_s: float
    seconds: float


@dataclass(frozen=True)
class SyntheticRow:
    renderer: str
    n: int
    per_s: float
    seconds: float


@dataclass(frozen=True)
class CoaddRow:
    mode: str
    n: int
    per_s: float
    seconds: float


def http_run(server: CutoutEmulator, concurrency: int, n: int, rate: float | None) -> int:
    """Fetch ``n`` distinct cutouts; fail loudly if any fails (a benchmark of errors measures nothing)."""
    todo = [(i, server.url_for(150.0 + i * 1e-3, 2.0)) for i in range(n)]
    settings = CutoutSettings.project_defaults()
    with LegacySurveyClient.from_settings(
        settings, concurrency=concurrency, rate_limit_per_s=rate, timeout_s=30.0
    ) as client:
        results = list(client.fetch_many(todo))
    bad = [r for r in results if r.status != "ok"]
    if bad or len(results) != n:
        raise RuntimeError(f"{len(bad)} of {n} HTTP cutouts failed, e.g. {bad[0].reason if bad else 'lost'}")
    return n


def bench_http(latency: float, levels: list[int], max_requests: int, repeats: int) -> list[HttpRow]:
    rows = []
    cases: list[tuple[int, float | None]] = [(c, None) for c in levels] + [(max(levels), POLITE_RATE_PER_S)]
    with CutoutEmulator(latency_s=latency, max_lifetime_s=3600.0) as server:
        for concurrency, rate in cases:
            n = max(8, min(max_requests, 8 * concurrency))
            per_s, seconds = median_rate(
                lambda c=concurrency, r=rate, k=n: http_run(server, c, k, r), repeats
            )
            rows.append(HttpRow(concurrency, rate, n, per_s, seconds))
    return rows


def write_bricks(root: Path, seed: int = 0) -> list[str]:
    """The 2 x 2 DR10-sized bricks around :data:`CORNER`, each with its own TAN centre, RICE_1 rows."""
    ra0, dec0 = CORNER
    ids = np.unique(
        bricks.brick_id([ra0 - 0.1, ra0 + 0.1, ra0 - 0.1, ra0 + 0.1], [dec0 - 0.1] * 2 + [dec0 + 0.1] * 2)
    )
    rng = np.random.default_rng(seed)
    names = []
    for bid in ids:
        name = str(bricks.brick_name(bid)[0])
        ra_c, dec_c = (float(v[0]) for v in bricks.brick_center(bid))
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crval = [ra_c, dec_c]
        wcs.wcs.crpix = [(BRICK_PX + 1) / 2.0] * 2
        wcs.wcs.cd = [[-PIXSCALE / 3600.0, 0.0], [0.0, PIXSCALE / 3600.0]]
        folder = root / "coadd" / name[:3] / name
        folder.mkdir(parents=True, exist_ok=True)
        for k, band in enumerate("grz"):
            header = wcs.to_header()
            header["BAND"] = band
            data = rng.normal(0.0, 0.01 * (k + 1), (BRICK_PX, BRICK_PX)).astype(np.float32)
            hdu = fits.CompImageHDU(data, header=header, compression_type="RICE_1", tile_shape=(1, BRICK_PX))
            fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(
                folder / f"legacysurvey-{name}-image-{band}.fits.fz"
            )
        names.append(name)
    return names


def bench_coadd(root: Path, n: int, repeats: int) -> list[CoaddRow]:
    rng = np.random.default_rng(1)
    ra0, dec0 = CORNER
    todo = [
        (i, float(ra), float(dec))
        for i, (ra, dec) in enumerate(
            zip(rng.uniform(ra0 - 0.2, ra0 + 0.2, n), rng.uniform(dec0 - 0.2, dec0 + 0.2, n), strict=True)
        )
    ]

    def cut_all(cutter: CoaddCutter) -> int:
        results = list(cutter.cut_many(todo))
        bad = [r for r in results if r.status != "ok"]
        if bad:
            raise RuntimeError(f"{len(bad)} of {n} coadd cutouts failed, e.g. {bad[0].reason}")
        return len(results)

    rows = []
    for mode in ("section", "full"):

        def cold(m: str = mode) -> int:
            with CoaddCutter(str(root), decompress=m) as cutter:  # type: ignore[arg-type]
                return cut_all(cutter)

        per_s, seconds = median_rate(cold, repeats)
        rows.append(CoaddRow(f"{mode}, cold cache", n, per_s, seconds))
    with CoaddCutter(str(root), decompress="full") as warm:
        cut_all(warm)
        per_s, seconds = median_rate(lambda: cut_all(warm), repeats)
    rows.append(CoaddRow("full, warm cache", n, per_s, seconds))
    return rows


def bench_synthetic(workdir: Path, n: int, repeats: int) -> list[SyntheticRow]:
    """Synthetic renderers on ``n`` galaxies of a synthetic sky tile (1 in 101 lensed, as in the
    training set, no catalogue neighbours), one batch each: the fast renderer the pipeline uses
    (features, faint neighbours, 2 threads) and the exact reference renderer it replaced, in the
    same run so the ratio holds whatever else loads the machine."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from stronglens.cutouts import render, render_reference
    from stronglens.synth import generate_sky

    generate_sky(str(workdir / "sky"), tiles=["sweep-150p000-155p005"], progress=False)
    table = pq.read_table(next((workdir / "sky").glob("*.parquet")))
    table = table.filter(pc.is_in(table["type"], value_set=pa.array(["REX", "DEV", "SER", "EXP"])))
    key = pc.add(
        pc.multiply(pc.cast(table["brickid"], pa.int64()), 1_000_000), pc.cast(table["objid"], pa.int64())
    )
    table = table.append_column("galaxy_id", key).slice(0, n)
    table = table.append_column("is_lens", pa.array(np.arange(table.num_rows) % 101 == 0))
    fast = table.select([*render.GALAXY_COLUMNS, *render.OPTIONAL_COLUMNS, "is_lens"])
    reference = table.select([*render_reference.GALAXY_COLUMNS, "is_lens"])
    rows = []
    for name, run in (
        ("fast (pipeline)", lambda: render.render_batch(fast, None, seed=1).cutouts.shape[0]),
        (
            "reference (exact)",
            lambda: render_reference.render_batch(reference, None, seed=1).cutouts.shape[0],
        ),
    ):
        per_s, seconds = median_rate(run, repeats)
        rows.append(SyntheticRow(name, n, per_s, seconds))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency", type=float, default=1.0, help="emulator latency per request, seconds")
    parser.add_argument(
        "--levels", type=int, nargs="+", default=[1, 4, 16, 32], help="HTTP concurrency levels"
    )
    parser.add_argument("--max-requests", type=int, default=64, help="most HTTP requests per level and run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (the median is reported)")
    parser.add_argument("--coadd-cutouts", type=int, default=200, help="coadd cutouts per run")
    parser.add_argument("--synthetic-cutouts", type=int, default=1000, help="synthetic cutouts per run")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where to write the bricks (default: temp)"
    )
    parser.add_argument(
        "--only-synthetic", action="store_true", help="skip the HTTP and coadd sources (renderers only)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    http_rows: list[HttpRow] = []
    coadd_rows: list[CoaddRow] = []
    if not args.only_synthetic:
        levels = sorted(args.levels)
        http_rows = bench_http(args.latency, levels, args.max_requests, args.repeats)
        base = next(r.per_s for r in http_rows if r.concurrency == levels[0] and r.rate_limit_per_s is None)
        print(f"\nHTTP source vs emulator, latency {args.latency:.2f} s, median of {args.repeats} runs")
        print(
            f"{'concurrency':>11} {'rate limit':>10} {'cutouts':>7} {'seconds':>8} "
            f"{'cutouts/s':>10} {'ratio':>7}"
        )
        for r in http_rows:
            limit = "none" if r.rate_limit_per_s is None else f"{r.rate_limit_per_s:g}/s"
            print(
                f"{r.concurrency:>11} {limit:>10} {r.n:>7} {r.seconds:>8.2f} {r.per_s:>10.2f} "
                f"{r.per_s / base:>6.1f}x"
            )

        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            start = time.perf_counter()
            names = write_bricks(Path(tmp))
            elapsed = time.perf_counter() - start
            print(
                f"\nwrote {len(names)} bricks x 3 bands ({BRICK_PX}x{BRICK_PX} px, RICE_1) in {elapsed:.1f} s"
            )
            coadd_rows = bench_coadd(Path(tmp), args.coadd_cutouts, args.repeats)
        print(
            f"Coadd source: {args.coadd_cutouts} random 101x101 grz cutouts over 2x2 bricks, "
            f"median of {args.repeats} runs"
        )
        print(f"{'mode':>18} {'seconds':>8} {'cutouts/s':>10} {'vs HTTP c=' + str(levels[0]):>14}")
        for c in coadd_rows:
            print(f"{c.mode:>18} {c.seconds:>8.2f} {c.per_s:>10.1f} {c.per_s / base:>13.0f}x")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        synth_rows = bench_synthetic(Path(tmp), args.synthetic_cutouts, args.repeats)
    ref = synth_rows[-1].per_s
    print(
        f"Synthetic renderers: {args.synthetic_cutouts} cutouts (1 in 101 lensed), "
        f"median of {args.repeats} runs"
    )
    print(f"{'renderer':>18} {'seconds':>8} {'cutouts/s':>10} {'vs reference':>13}")
    for r in synth_rows:
        print(f"{r.renderer:>18} {r.seconds:>8.2f} {r.per_s:>10.1f} {r.per_s / ref:>12.1f}x")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "http": [asdict(r) for r in http_rows],
            "coadd": [asdict(c) for c in coadd_rows],
            "synthetic": [asdict(r) for r in synth_rows],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
