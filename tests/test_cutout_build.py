"""The cutout models end to end on the synthetic sky: manifest -> stored NPZ cutouts -> QA ->
shortcut audit and PNG reports, and a re-run that refetches only what is missing or broken."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stronglens.cutouts.store import read_cutout
from tests.pipeline import build_or_fail, lake

SMALL = ("--vars", json.dumps({"cutout_max_positives": 2}))
#: Two positives cannot train a finder (test_training_build covers training end to end).
NO_TRAINING = ("--exclude", "tag:training")


@pytest.fixture(scope="module")
def cutout_home(sweeps_glob: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("cutout-warehouse")
    build_or_fail(home, sweeps_glob, *SMALL, *NO_TRAINING)
    return home


def _frame(home: Path, sql: str) -> pd.DataFrame:
    with lake(home) as con:
        return con.execute(sql).df()


def test_every_manifest_sample_has_a_valid_cutout(cutout_home: Path) -> None:
    manifest = _frame(cutout_home, "select * from cutout_manifest")
    cutouts = _frame(cutout_home, "select * from cutouts")
    assert (manifest.label == "positive").sum() == 2
    assert (manifest.label == "negative").sum() >= 100  # 100 per positive, within their strata
    assert sorted(cutouts.sample_id) == sorted(manifest.sample_id)
    assert (cutouts.status == "ok").all(), cutouts[cutouts.status != "ok"].reason.tolist()
    row = cutouts.iloc[0]
    image, meta = read_cutout(row.path)
    assert image.shape == (101, 101, 3) and image.dtype == np.float32
    assert str(meta.galaxy_id) == row.sample_id
    assert Path(row.path).stat().st_size == row.bytes


def test_qa_audit_and_reports(cutout_home: Path) -> None:
    qa = _frame(cutout_home, "select * from cutout_qa")
    n = _frame(cutout_home, "select count(*) as n from cutouts").n[0]
    assert len(qa) == 3 * n and set(qa.band) == {"g", "r", "z"}
    assert qa.is_usable.all()
    audit = _frame(cutout_home, "select * from shortcut_audit")
    assert {"all", "split"} <= set(audit.scope_kind)
    assert audit.auc.between(0, 1).all()
    reports = list((cutout_home / "reports" / "cutouts").glob("*/*.png"))
    assert {p.name for p in reports} == {"cutout_mosaic.png", "shortcut_audit.png"}


def test_rerun_refetches_only_missing_or_broken(cutout_home: Path, sweeps_glob: str) -> None:
    before = _frame(cutout_home, "select * from cutouts order by sample_id")
    removed, corrupted = before.path.iloc[:3].tolist(), before.path.iloc[3]
    for path in removed:
        Path(path).unlink()
    Path(corrupted).write_bytes(b"not an npz")
    build_or_fail(cutout_home, sweeps_glob, "--select", "cutouts", *SMALL)
    after = _frame(cutout_home, "select * from cutouts order by sample_id")
    assert (after.status == "ok").all()
    changed = after.fetched_at != before.fetched_at
    assert set(after.path[changed]) == {*removed, corrupted}
    assert (after.sha256[~changed] == before.sha256[~changed]).all()
    assert (after.attempts[changed] == before.attempts[changed] + 1).all()
    for path in [*removed, corrupted]:
        read_cutout(path)
