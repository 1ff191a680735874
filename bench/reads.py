"""Read latency during a build: `stronglens sql`-style reads while `stronglens build` writes.

    python -m bench.reads --home WAREHOUSE [--idle-reads 10] [--build-args ...]

On an existing, checked warehouse (e.g. after `make run`), times a read of the served build (open
the catalog read-only at the served snapshot, count negatives, close) --idle-reads times with no
build running (the baseline), then in a loop for as long as a catalog-only rebuild of the same
warehouse runs.  Prints median and max latency of both phases, their ratio, and how many reads
failed (the DuckDB-file catalog failed every read during a build).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUERY = "select count(*) from negatives"


def _read() -> float:
    from stronglens.warehouse import connect_lake, resolve_snapshot

    started = time.perf_counter()
    con = connect_lake(resolve_snapshot(None))
    try:
        con.execute(QUERY).fetchone()
    finally:
        con.close()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", required=True, help="a built and checked warehouse folder")
    parser.add_argument("--idle-reads", type=int, default=10, help="baseline reads with no build")
    parser.add_argument(
        "--build-args", nargs=argparse.REMAINDER, default=["--exclude", "tag:cutouts"], help="for the build"
    )
    args = parser.parse_args(argv)
    os.environ["STRONGLENS_HOME"] = str(Path(args.home).resolve())
    idle = [_read() for _ in range(args.idle_reads)]
    build = subprocess.Popen(
        [sys.executable, "-m", "stronglens.cli", "build", *args.build_args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    during, failures = [], 0
    while build.poll() is None:
        try:
            during.append(_read())
        except Exception:  # a failed read (any kind) is what this counts
            failures += 1
            time.sleep(0.2)
    print(f"idle:   {len(idle)} reads, median {statistics.median(idle):.3f} s, max {max(idle):.3f} s")
    if during:
        print(
            f"during: {len(during)} reads, median {statistics.median(during):.3f} s, max {max(during):.3f} s "
            f"(median {statistics.median(during) / statistics.median(idle):.1f}x idle); "
            f"{failures} failed; build exit {build.returncode}"
        )
    else:
        print(f"during: no read succeeded, {failures} failed; build exit {build.returncode}")
    return 0 if failures == 0 and build.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
