"""Sanity of the injection-recovery run on a controlled fixture: blank-sky hosts of known seeing and
depth, compact sources, and a fixed matched-filter detector that ignores the central 1.2" (the test
double of the finder, tests/injection_fixtures.py).  Completeness must rise with theta_E and fall
with worse seeing and shallower depth (monotone within the Wilson intervals), a source with zero
flux must never be recovered above the FPR it was thresholded at, and the same seed must give
identical injections."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import yaml

from stronglens.injection import hosts as host_mod
from stronglens.injection import stats
from stronglens.injection.grid import GridAxis, InjectionGrid
from stronglens.injection.pipeline import InjectionSettings, load_host_images, run_injections
from stronglens.injection.priors import DEFAULT_PRIORS_FILE, load_priors
from stronglens.injection.scoring import thresholds
from tests.injection_fixtures import MatchedFilterFinder, blank_hosts

GRID = InjectionGrid(
    GridAxis("t", 0.5, 3.0, 0.5), GridAxis("p", 0.9, 1.8, 0.9), GridAxis("d", 23.0, 24.5, 1.5), 60
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("injection_hosts")
    # 3 hosts native to each of the 4 (PSF, depth) corners
    psf = np.repeat([0.9, 0.92, 0.95, 1.8, 1.78, 1.82], 2)
    depth = np.tile([23.0, 24.5], 6)
    hosts = blank_hosts(root / "test", psf, depth, seed=1)
    val = blank_hosts(root / "val", np.full(40, 1.3), np.full(40, 23.7), seed=2, split="val")
    data = yaml.safe_load(DEFAULT_PRIORS_FILE.read_text())
    data["source"].update(mag_r=[24.5, 26.0], r_e_arcsec=[0.05, 0.08])  # compact, point-like sources
    priors_file = root / "compact_priors.yml"
    priors_file.write_text(yaml.safe_dump(data))
    cells = GRID.cells()
    slots = host_mod.assign_hosts(cells, hosts, GRID, min_hosts=3, max_hosts=3, seed=0)
    plan = host_mod.plan_injections(cells, slots)
    finder = MatchedFilterFinder(smooth_sigma_pix=0.7, centre_mask_arcsec=1.2)
    val_scores = finder.score(load_host_images(val.column("path").to_pylist()))[0]
    host_scores = finder.score(load_host_images(hosts.column("path").to_pylist()))[0]
    return {
        "cells": cells,
        "slots": slots,
        "plan": plan,
        "images": load_host_images(hosts.column("path").to_pylist()),
        "priors": load_priors(priors_file),
        "finder": finder,
        "thresholds": thresholds(np.r_[val_scores, host_scores], [1e-2], [0.5]),
    }


def _run(setup, seed: int = 42, zero_flux=None, rows: int | None = None) -> pa.Table:
    settings = InjectionSettings(seed=seed, batch_size=128, gallery_per_cell=0, probe_sample=50)
    plan = (
        setup["plan"]
        if rows is None
        else setup["plan"].take(np.linspace(0, setup["plan"].num_rows - 1, rows).astype(int))
    )
    return run_injections(
        setup["cells"],
        setup["slots"],
        plan,
        setup["images"],
        setup["priors"],
        setup["finder"],
        settings,
        zero_flux,
    ).table


def test_every_cell_is_measured_with_native_hosts(setup) -> None:
    coverage = host_mod.coverage(setup["cells"], setup["slots"]).to_pandas()
    assert coverage.is_measurable.all() and (coverage.n_native_hosts == 3).all()
    assert setup["plan"].num_rows == setup["cells"].num_rows * 60


def test_completeness_rises_with_theta_e_and_falls_with_seeing_and_depth(setup) -> None:
    table = _run(setup).to_pandas()
    threshold = setup["thresholds"].to_pandas().score_threshold.iloc[0]
    table["recovered"] = table.score > threshold

    def marginal(axis: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        g = table.groupby(axis).recovered.agg(["sum", "count"]).sort_index()
        lo, hi = stats.wilson_interval(g["sum"], g["count"])
        return (g["sum"] / g["count"]).to_numpy(), lo, hi

    comp, lo, hi = marginal("theta_e_arcsec")
    assert np.all(hi[1:] >= lo[:-1]), f"completeness vs theta_E not monotone within intervals: {comp}"
    assert lo[-1] > hi[0], f"completeness must rise from theta_E 0.5 to 3.0: {comp}"
    comp, lo, hi = marginal("psf_fwhm_arcsec")
    assert lo[0] > hi[1], f"completeness must fall with worse seeing: {comp}"
    comp, lo, hi = marginal("depth_mag")
    assert lo[1] > hi[0], f"completeness must fall with shallower depth: {comp}"
    # and within every (PSF, depth) slice, monotone in theta_E within the intervals
    for _, part in table.groupby(["psf_fwhm_arcsec", "depth_mag"]):
        g = part.groupby("theta_e_arcsec").recovered.agg(["sum", "count"]).sort_index()
        lo, hi = stats.wilson_interval(g["sum"], g["count"])
        assert np.all(hi[1:] >= lo[:-1])


def test_zero_flux_source_is_never_recovered_above_its_fpr(setup) -> None:
    n = 600
    table = _run(setup, zero_flux=np.ones(n, bool), rows=n).to_pandas()
    assert (table.magnification >= 0).all() and np.all(table.arc_snr == 0)
    thr = setup["thresholds"].to_pandas().iloc[0]
    recovered = (table.score > thr.score_threshold).sum()
    # injections of nothing are the hosts themselves: recovered at most at the FPR (+3 sigma binomial)
    bound = thr.target_fpr * n + 3 * np.sqrt(thr.target_fpr * n)
    assert recovered <= bound
    host_scores = setup["finder"].score(setup["images"])[0]
    slot_host = setup["slots"].column("host_index").to_numpy()[table.slot_id.to_numpy()]
    np.testing.assert_allclose(table.score, host_scores[slot_host], rtol=1e-6)


def test_same_seed_gives_identical_injections(setup) -> None:
    first = _run(setup, seed=7, rows=200)
    again = _run(setup, seed=7, rows=200)
    assert first.equals(again)
    other = _run(setup, seed=8, rows=200).to_pandas()
    assert not np.allclose(first.to_pandas().src_mag_r, other.src_mag_r)
