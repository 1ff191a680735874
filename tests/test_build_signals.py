"""A killed `stronglens build` stops everything it started, and the next build recovers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from stronglens import paths
from tests.pipeline import ROOT, build_or_fail, lake

CATALOG_ONLY = ("--exclude", "tag:cutouts")


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_until(predicate: Callable[[], object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def _kill_mid_build(home: Path, sweeps: str, signum: signal.Signals) -> None:
    env = dict(os.environ, STRONGLENS_HOME=str(home), STRONGLENS_SWEEPS=sweeps)
    env.pop(paths.CATALOG_ENV, None)
    build = subprocess.Popen(
        [sys.executable, "-m", "stronglens.cli", "build", *CATALOG_ONLY],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert _wait_until(lambda: _children(build.pid), 120), "dbt never started"
        (dbt,) = _children(build.pid)
        # Let dbt get into the build (catalog attached, models running) before the signal.
        assert _wait_until(lambda: (home / "target" / "manifest.json").exists(), 180)
        time.sleep(3)
        os.kill(build.pid, signum)
        build.wait(timeout=120)
        gone = _wait_until(lambda: not _alive(dbt), 60)
        assert gone, f"dbt (pid {dbt}) outlived its build after {signum.name}"
    finally:
        if build.poll() is None:
            os.killpg(build.pid, signal.SIGKILL)
            build.wait()


def test_killed_builds_leave_no_dbt_and_the_next_build_recovers(
    home: Path, sweeps_glob: str, tmp_path: Path
) -> None:
    wh = tmp_path / "wh"
    shutil.copytree(home, wh)
    (wh / "target" / "manifest.json").unlink(missing_ok=True)
    _kill_mid_build(wh, sweeps_glob, signal.SIGKILL)
    (wh / "target" / "manifest.json").unlink(missing_ok=True)
    _kill_mid_build(wh, sweeps_glob, signal.SIGTERM)
    # The recovery build also proves quoting: a sweeps folder with a quote and a space, and a
    # candidate list named o'neil.csv (both were pasted into SQL raw and broke the build).
    odd = tmp_path / "sky o'brien"
    shutil.copytree(Path(sweeps_glob).parent, odd)
    seed = pd.read_csv(ROOT / "seeds" / "lenscat_desi_candidates.csv").head(3)
    extra = odd / "o'neil.csv"
    names = [f"ONEIL-{i}" for i in range(len(seed))]
    pd.DataFrame({"name": names, "ra": seed.ra_deg + 1e-5, "dec": seed.dec_deg, "grade": "A"}).to_csv(
        extra, index=False
    )
    vars_arg = json.dumps({"extra_candidates": [str(extra)]})
    build_or_fail(wh, str(odd / "*.parquet"), *CATALOG_ONLY, "--vars", vars_arg)
    with lake(wh) as con:
        rows = con.execute("select build_id, status, vars_json from build_runs order by build_id").fetchall()
        (listed,) = con.execute(
            "select count(*) from positives where contains(catalogs, ?)", [str(extra)]
        ).fetchone()
    assert rows[-1][1] == "success"
    assert json.loads(rows[-1][2])["extra_candidates"] == [str(extra)]
    assert listed == len(names)
