"""The functions the selection-function dbt models call, end to end on a small fixture: blank-sky
hosts written through the cutout store, a stand-in finder class loaded by name (the Finder contract),
finder_runs / finder_scores shaped like the training marts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml

from stronglens.injection import marts
from tests.injection_fixtures import MatchedFilterFinder, blank_hosts
from tests.pipeline import ROOT


def _settings(tmp_path: Path, **overrides) -> marts.SelectionSettings:
    variables = yaml.safe_load((ROOT / "dbt_project.yml").read_text())["vars"]
    raw = {k: v for k, v in variables.items() if k.startswith(("injection", "realism_probe"))}
    raw.update(
        injection_theta_e_arcsec={"min": 1.0, "max": 2.0, "step": 1.0},
        injection_psf_fwhm_arcsec={"min": 1.2, "max": 1.2, "step": 0.15},
        injection_depth_mag={"min": 23.5, "max": 23.5, "step": 0.5},
        injections_per_cell=24,
        injection_finder_class="tests.injection_fixtures:MatchedFilterFinder",
        injection_compile=False,
        realism_probe_n_boot=50,
        cutout_root=str(tmp_path),
        **overrides,
    )
    return marts.settings_from_json(json.dumps(raw))


@pytest.fixture
def world(tmp_path: Path):
    hosts = blank_hosts(tmp_path / "cutouts", np.full(4, 1.2), np.full(4, 23.5), seed=3)
    # the cutouts table may hold paths relative to the cutout root (INTERFACES.md)
    rel = [str(Path(p).relative_to(tmp_path)) for p in hosts.column("path").to_pylist()]
    hosts = hosts.set_column(hosts.schema.get_field_index("path"), "path", pa.array(rel))
    checkpoint = tmp_path / "finder.pt"
    checkpoint.write_bytes(b"stand-in")
    runs = pa.table(
        {"run_id": ["run-a", "run-b"], "is_primary": [True, False], "checkpoint_path": [str(checkpoint)] * 2}
    )
    rng = np.random.default_rng(0)
    val_ids = [f"v{i}" for i in range(300)]
    scores = pa.table(
        {
            "run_id": ["run-a"] * 300 + ["run-b"] * 300,
            "sample_id": val_ids * 2,
            "split": ["val"] * 600,
            "score": np.r_[rng.uniform(0, 0.3, 300), rng.uniform(0.9, 1.0, 300)],
        }
    )
    negatives = pa.table({"sample_id": val_ids})
    positives = blank_hosts(tmp_path / "positives", np.full(6, 1.2), np.full(6, 23.5), seed=4, split="val")
    positives = positives.append_column("tier", pa.array(["A", "A", "A", "B", "B", "B"]))
    return {"hosts": hosts, "runs": runs, "scores": scores, "negatives": negatives, "positives": positives}


def test_selection_marts_end_to_end(tmp_path: Path, world) -> None:
    settings = _settings(tmp_path)
    cells = marts.grid_table(settings)
    slots = marts.host_slots_table(cells, world["hosts"], settings)
    thresholds = marts.thresholds_table(world["runs"], world["scores"], world["negatives"], settings)
    assert set(thresholds.column("run_id").to_pylist()) == {"run-a"}  # the primary run only
    assert thresholds.column("n_negatives").to_pylist() == [300, 300, 300]
    report = tmp_path / "reports"
    injections = marts.injections_table(
        cells, slots, world["hosts"], world["runs"], thresholds, settings, str(report)
    )
    assert injections.num_rows == 2 * 24
    assert set(injections.column("finder_run_id").to_pylist()) == {"run-a"}
    names = thresholds.column("threshold_name").to_pylist()
    for name, value in zip(names, thresholds.column("score_threshold").to_pylist(), strict=True):
        np.testing.assert_array_equal(
            injections.column(f"recovered_{name}").to_numpy(zero_copy_only=False),
            injections.column("score").to_numpy() > value,
        )
    assert (report / f"gallery_{names[0]}.html").read_text().count("<figure>") >= 2
    summary = json.loads((report / "injection_run.json").read_text())
    assert summary["n_injections"] == 48 and summary["finder_run_id"] == "run-a"

    probe = marts.realism_probe_table(injections, world["positives"], world["runs"], settings).to_pandas()
    assert list(probe.population) == ["all", "tier_A"]
    assert probe.n_real.tolist() == [6, 3] and (probe.n_injected == 48).all()
    assert probe.auc.between(0, 1).all()
    assert (probe.lower_bound_only == (probe.auc > settings.probe_max_auc)).all()

    selection = marts.selection_function_table(
        injections,
        thresholds,
        cells,
        slots,
        pa.Table.from_pandas(probe, preserve_index=False),
        settings,
        str(report),
    ).to_pandas()
    assert len(selection) == cells.num_rows * len(names)
    assert (selection.n_injected == 24).all() and (selection.n_native_hosts == 4).all()
    assert (selection.wilson95_low <= selection.completeness).all()
    assert (selection.completeness <= selection.wilson95_high).all()
    measured = selection.dropna(subset=["host_boot95_low"])
    assert len(measured) > 0
    assert (measured.host_boot95_low <= measured.completeness + 1e-12).all()
    assert (measured.completeness <= measured.host_boot95_high + 1e-12).all()
    assert selection.lower_bound_only.eq(bool(probe.lower_bound_only.iloc[0])).all()
    assert len(list(report.glob("completeness_depth23.5_*.png"))) == len(names)

    real = marts.real_tier_a_scores(
        pa.table(
            {
                "run_id": ["run-a"] * 4 + ["run-b"],
                "sample_id": ["p1", "p2", "p3", "p4", "p1"],
                "score": [0.9, 0.8, 0.2, 0.7, 0.1],
            }
        ),
        pa.table({"sample_id": ["p1", "p2", "p3", "p4"], "tier": ["A", "A", "A", "B"]}),
        pa.table({"sample_id": ["p1", "p2", "p3", "p4"], "theta_e_arcsec": [1.1, 0.9, 2.2, 1.0]}),
        thresholds,
    )
    assert sorted(real.column("score").to_pylist()) == [0.2, 0.8, 0.9]  # run-a, Tier-A only
    dist = marts.score_distributions_table(injections, real, thresholds, settings).to_pandas()
    by = dist.set_index(["population", "theta_e_low"])
    assert by.loc[("real", 0.5), "n"] == 2 and by.loc[("real", 1.5), "n"] == 1
    assert by.loc[("injected", 0.5), "n"] == 24 and by.loc[("injected", 1.5), "n"] == 24
    assert (dist.finder_run_id == "run-a").all()

    marginals = marts.marginals_table(injections, thresholds, cells, settings).to_pandas()
    assert set(marginals.axis) == {
        "theta_e_arcsec",
        "psf_fwhm_arcsec",
        "depth_mag",
        "arc_snr",
        "lensed_mag_r",
    }
    for axis, part in marginals.groupby("axis"):
        per_thr = part.groupby("threshold_name").n_injected.sum()
        if axis in ("theta_e_arcsec", "psf_fwhm_arcsec", "depth_mag"):
            assert (per_thr == 48).all()
        else:
            assert (per_thr <= 48).all()


def test_selection_marts_on_an_empty_build(tmp_path: Path) -> None:
    """``dbt build --empty``: every input empty, every output a typed empty table."""
    settings = _settings(tmp_path)
    cells = marts.grid_table(settings)
    empty_hosts = blank_hosts(tmp_path / "none", np.zeros(0), np.zeros(0))
    slots = marts.host_slots_table(cells, empty_hosts, settings)
    assert slots.num_rows == 0
    runs = pa.table(
        {
            "run_id": pa.array([], pa.string()),
            "is_primary": pa.array([], pa.bool_()),
            "checkpoint_path": pa.array([], pa.string()),
        }
    )
    scores = pa.table(
        {
            "run_id": pa.array([], pa.string()),
            "sample_id": pa.array([], pa.string()),
            "split": pa.array([], pa.string()),
            "score": pa.array([], pa.float64()),
        }
    )
    thresholds = marts.thresholds_table(
        runs, scores, pa.table({"sample_id": pa.array([], pa.string())}), settings
    )
    assert thresholds.num_rows == 0
    injections = marts.injections_table(
        cells, slots, empty_hosts, runs, thresholds, settings, str(tmp_path / "r")
    )
    assert injections.num_rows == 0 and "score" in injections.column_names
    probe = marts.realism_probe_table(
        injections, empty_hosts.append_column("tier", pa.array([], pa.string())), runs, settings
    )
    assert probe.num_rows == 0
    selection = marts.selection_function_table(
        injections, thresholds, cells, slots, probe, settings, str(tmp_path / "r")
    )
    assert selection.num_rows == 0
    assert marts.marginals_table(injections, thresholds, cells, settings).num_rows == 0


def test_finder_class_errors_name_the_var(tmp_path: Path) -> None:
    with pytest.raises(ImportError, match="injection_finder_class"):
        marts.load_finder("stronglens.nowhere:Finder", "x", "cpu")
    assert isinstance(
        marts.load_finder("tests.injection_fixtures:MatchedFilterFinder", __file__, "cpu"),
        MatchedFilterFinder,
    )
    with pytest.raises(KeyError, match="injection_settings misses"):
        marts.settings_from_json("{}")
