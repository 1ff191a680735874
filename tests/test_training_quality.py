"""The training quality suites on doctored frames: a galaxy in two splits, a weight outside its
tier's range and a deleted cutout file each fail their expectation; suites whose tables a build did
not make are skipped, not failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml

from stronglens import quality
from tests.pipeline import ROOT
from tests.training_data import write_store

SUITES = {s.name: s for s in quality.load_suites()}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pa.Table]:
    root = tmp_path_factory.mktemp("store")
    manifest = write_store(root, {"train": (2, 4), "val": (1, 2), "test": (1, 2)})
    galaxy = pc.cast(manifest["sample_id"], pa.int64())
    return root, manifest.append_column("galaxy_id", galaxy)


def _params(root: Path) -> dict[str, Any]:
    build_vars = yaml.safe_load((ROOT / "dbt_project.yml").read_text())["vars"]
    return quality.expectation_parameters({**build_vars, "cutout_root": str(root)}, quality.load_thresholds())


def _outcome(root: Path, manifest: pa.Table, home: Path) -> quality.SuiteOutcome:
    con = duckdb.connect()
    con.register("m", manifest)
    con.execute("create table training_manifest as select * from m")
    con.execute("create table cutouts as select sample_id, 'ok' as status, cutout_sha256 as sha256 from m")
    params = _params(root)
    suite = SUITES["training_manifest"]
    frame = quality.compute_frame(con, suite, params)
    (outcome,) = quality.validate_frames({suite.name: frame}, [suite], params, "doctored", home)
    return outcome


def test_clean_manifest_passes(store: tuple[Path, pa.Table], tmp_path: Path) -> None:
    outcome = _outcome(*store, tmp_path)
    assert outcome.success and outcome.evaluated == len(SUITES["training_manifest"].expectations), (
        outcome.lines()
    )


def test_leaks_weights_and_missing_files_fail(store: tuple[Path, pa.Table], tmp_path: Path) -> None:
    root, manifest = store
    galaxy = manifest["galaxy_id"].to_pylist()
    galaxy[-1] = galaxy[0]  # a train galaxy again in test
    weights = manifest["sample_weight"].to_pylist()
    b_row = manifest["tier"].to_pylist().index("B")
    weights[b_row] = 0.9
    doctored = manifest.set_column(
        manifest.schema.get_field_index("galaxy_id"), "galaxy_id", pa.array(galaxy)
    )
    doctored = doctored.set_column(
        doctored.schema.get_field_index("sample_weight"), "sample_weight", pa.array(weights)
    )
    Path(manifest["cutout_path"][2].as_py()).unlink()
    outcome = _outcome(root, doctored, tmp_path)
    failed = {(f.expectation, f.column) for f in outcome.failures}
    assert failed == {
        ("expect_column_values_to_be_between", "n_splits_of_galaxy"),
        ("expect_column_values_to_be_between", "weight_tier_b"),
        ("expect_column_values_to_be_in_set", "cutout_file_present"),
    }, outcome.lines()


def test_suites_of_tables_a_build_did_not_make_are_skipped(tmp_path: Path) -> None:
    training = [SUITES[n] for n in ("training_manifest", "finder_runs", "finder_metrics")]
    assert all("training_manifest" in s.requires or "finder_runs" in s.requires for s in training)
    outcomes = quality.validate_frames({s.name: None for s in training}, training, {}, "t", tmp_path)
    assert all(o.success and o.skipped and o.evaluated == 0 for o in outcomes)
    assert "skip" in outcomes[0].lines()[0]
