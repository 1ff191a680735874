"""Injection grid, priors file and host assignment / degradation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
import yaml

from stronglens import lensing
from stronglens.injection import hosts as host_mod
from stronglens.injection.grid import (
    GridAxis,
    InjectionGrid,
    depth_mag_from_psfdepth,
    psfdepth_from_depth_mag,
)
from stronglens.injection.priors import DEFAULT_PRIORS_FILE, Priors, PriorsError, load_priors
from tests.pipeline import ROOT

DEFAULT_GRID = InjectionGrid(
    GridAxis("theta_e", 0.5, 3.0, 0.25),
    GridAxis("psf", 0.9, 1.8, 0.15),
    GridAxis("depth", 22.5, 24.5, 0.5),
    200,
)


def test_priors_file_is_the_code_default_and_the_issue_anchor() -> None:
    priors = load_priors()
    assert priors == Priors()
    assert priors.to_dict() == yaml.safe_load(DEFAULT_PRIORS_FILE.read_text())
    # the 2026 DR10 study's priors (issue 12 anchor, DOMAIN.md)
    assert priors.lens.axis_ratio == (0.5, 1.0) and priors.lens.shear_sigma == 0.05
    assert priors.source.mag_r == (23.0, 26.0) and priors.source.r_e_arcsec == (0.15, 0.5)
    assert priors.source.sersic_n == (0.5, 2.0) and priors.source.beta_over_theta_e == (0.1, 0.4)
    assert (priors.source.g_minus_r.mean, priors.source.g_minus_r.sigma) == (1.15, 0.30)
    assert (priors.source.r_minus_z.mean, priors.source.r_minus_z.sigma) == (0.85, 0.20)


def test_dbt_vars_default_to_the_issue_grid() -> None:
    variables = yaml.safe_load((ROOT / "dbt_project.yml").read_text())["vars"]
    grid = InjectionGrid.from_vars(variables)
    for ours, issue in zip(
        (grid.theta_e, grid.psf_fwhm, grid.depth),
        (DEFAULT_GRID.theta_e, DEFAULT_GRID.psf_fwhm, DEFAULT_GRID.depth),
        strict=True,
    ):
        assert (ours.min, ours.max, ours.step) == (issue.min, issue.max, issue.step)
    assert grid.cells().num_rows == 385
    assert variables["injections_per_cell"] >= 200
    assert variables["injection_priors_file"] is None  # the packaged, versioned file


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["lens"].pop("shear_sigma"), "misses keys"),
        (lambda d: d["source"].update(mag_r=[26, 23]), "low <= high"),
        (lambda d: d["source"].update(g_minus_r={"mean": 1.0}), "mean: ..., sigma"),
        (lambda d: d["lens"].update(extra=1), "unknown keys"),
    ],
)
def test_bad_priors_file_names_file_and_key(tmp_path: Path, edit, message: str) -> None:
    data = yaml.safe_load(DEFAULT_PRIORS_FILE.read_text())
    edit(data)
    path = tmp_path / "priors.yml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PriorsError, match=message) as info:
        load_priors(path)
    assert str(path) in str(info.value)


def test_grid_cells_and_binning() -> None:
    cells = DEFAULT_GRID.cells()
    assert cells.column("cell_id").to_pylist() == list(range(385))
    assert sorted(set(cells.column("theta_e_arcsec").to_pylist())) == pytest.approx(
        np.arange(0.5, 3.01, 0.25)
    )
    axis = DEFAULT_GRID.psf_fwhm
    np.testing.assert_array_equal(
        axis.bin_index([0.82, 0.83, 0.97, 0.98, 1.87, 1.88, np.nan]), [-1, 0, 0, 1, 6, -1, -1]
    )
    with pytest.raises(ValueError, match="not an integer"):
        GridAxis("x", 0.0, 1.0, 0.3)
    np.testing.assert_allclose(depth_mag_from_psfdepth(psfdepth_from_depth_mag([22.5, 24.0])), [22.5, 24.0])
    # DOMAIN.md: m = -2.5 (log10(5 / sqrt(depth)) - 9)
    assert depth_mag_from_psfdepth(100.0) == pytest.approx(-2.5 * (np.log10(0.5) - 9))


def _hosts(psf_r, depth_r, split="test") -> pa.Table:
    psf_r, depth_r = np.asarray(psf_r, float), np.asarray(depth_r, float)
    n = psf_r.size
    ivar = psfdepth_from_depth_mag(depth_r)
    cols = {"sample_id": [f"h{i:03d}" for i in range(n)], "split": [split] * n, "path": ["x"] * n}
    for band, f in zip("grz", (1.1, 1.0, 0.9), strict=True):
        cols[f"psfsize_{band}"] = psf_r * f
        cols[f"psfdepth_{band}"] = ivar
    return pa.table(cols)


def test_assign_hosts_natives_first_then_nearest_better_hosts() -> None:
    cells = DEFAULT_GRID.cells()
    # 10 hosts native to (psf 1.2, depth 23.5), 3 sharp deep hosts, 1 poor shallow host
    hosts = _hosts([1.2] * 10 + [0.9, 0.95, 1.0] + [1.8], [23.5] * 10 + [24.5, 24.4, 24.0] + [22.5])
    slots = host_mod.assign_hosts(cells, hosts, DEFAULT_GRID, min_hosts=4, max_hosts=6, seed=1).to_pandas()
    cell = cells.to_pandas().set_index(["theta_e_arcsec", "psf_fwhm_arcsec", "depth_mag"]).cell_id
    native_cell = slots[slots.cell_id == cell[(1.0, 1.2, 23.5)]]
    assert len(native_cell) == 6 and not native_cell.degraded.any()  # natives capped at max_hosts
    # (psf 1.5, depth 23.0) has no native: filled with the 4 nearest better hosts, all degraded
    filled = slots[slots.cell_id == cell[(1.0, 1.5, 23.0)]]
    assert len(filled) == 4 and filled.degraded.all()
    assert (filled.host_psf_fwhm_r <= 1.5).all() and (filled.host_depth_mag_r >= 23.0).all()
    np.testing.assert_allclose(filled.psf_fwhm_r, 1.5)
    # the sharpest, deepest cell: its two natives (0.9"/24.5, 0.95"/24.4) and nothing better to degrade
    best = slots[slots.cell_id == cell[(1.0, 0.9, 24.5)]]
    assert len(best) == 2 and not best.degraded.any()
    # never degrade towards better seeing or greater depth: the poor host is used only natively
    poor = slots[slots.sample_id == "h013"]
    assert set(poor.cell_id) <= set(
        cells.to_pandas().query("psf_fwhm_arcsec == 1.8 and depth_mag == 22.5").cell_id
    )
    assert not poor.degraded.any()
    coverage = host_mod.coverage(cells, pa.Table.from_pandas(slots, preserve_index=False)).to_pandas()
    assert (
        coverage.is_measurable.sum()
        == coverage[(coverage.n_native_hosts + coverage.n_degraded_hosts) > 0].shape[0]
    )
    # same seed -> same slots; host table order does not matter
    again = host_mod.assign_hosts(
        cells, hosts.take(np.arange(14)[::-1].copy()), DEFAULT_GRID, 4, 6, 1
    ).to_pandas()
    pairs = sorted(zip(slots.cell_id, slots.sample_id, strict=True))
    assert sorted(zip(again.cell_id, again.sample_id, strict=True)) == pairs


def test_hosts_must_be_test_split() -> None:
    with pytest.raises(host_mod.HostError, match="split 'train'"):
        host_mod.assign_hosts(
            DEFAULT_GRID.cells(), _hosts([1.0], [23.0], split="train"), DEFAULT_GRID, 1, 2, 0
        )


def test_plan_spreads_injections_round_robin() -> None:
    cells = DEFAULT_GRID.cells()
    hosts = _hosts([1.2] * 3, [23.5] * 3)
    slots = host_mod.assign_hosts(cells, hosts, DEFAULT_GRID, 3, 3, 0)
    plan = host_mod.plan_injections(cells, slots).to_pandas()
    measured = set(slots.column("cell_id").to_pylist())
    assert set(plan.cell_id) == measured
    assert (plan.groupby("cell_id").size() == 200).all()
    counts = plan.groupby(["cell_id", "slot_id"]).size()
    assert counts.max() - counts.min() <= 1


def test_degradation_reaches_the_cell_psf_and_noise() -> None:
    """A star and pure noise through the degradation: the star's FWHM becomes the cell's and the noise
    the per-pixel noise of the cell's depth at the cell's PSF."""
    cells = DEFAULT_GRID.cells()
    hosts = _hosts([0.95], [24.4])
    slots = host_mod.assign_hosts(cells, hosts, DEFAULT_GRID, 1, 1, 0).to_pandas()
    slot = slots[(slots.cell_id == 2 * 35 + 4 * 5 + 1) & slots.degraded].iloc[
        0
    ]  # theta 1.0, psf 1.5, depth 23.0
    assert slot.psf_fwhm_r == pytest.approx(1.5)
    grid = lensing.PixelGrid()
    sigma_host = lensing.gaussian_psf_sigma(0.95)
    star = lensing.render_points([0.0], [0.0], [0], [[1.0, 1.0, 1.0]], np.full((1, 3), sigma_host), grid)
    out = host_mod.degrade(
        torch.as_tensor(star), [slot.kernel_sigma_arcsec], np.zeros((1, 3)), [None]
    ).numpy()[0, ..., 1]
    c = 50
    profile = out[c]
    half_max = profile.max() / 2
    above = np.flatnonzero(profile >= half_max)
    left = above[0] - (profile[above[0]] - half_max) / (profile[above[0]] - profile[above[0] - 1])
    right = above[-1] + (profile[above[-1]] - half_max) / (profile[above[-1]] - profile[above[-1] + 1])
    assert (right - left) * lensing.DESI_PIXEL_SCALE == pytest.approx(1.5, rel=0.03)
    assert out.sum() == pytest.approx(1.0, rel=1e-3)
    # noise: white noise of the host's level, degraded, has the slot's noise level
    rng = np.random.default_rng(0)
    noise = (
        rng.standard_normal((1, 101, 101, 3))
        * host_mod.pixel_noise_sigma(
            np.array([[0.95 * 1.1, 0.95, 0.95 * 0.9]]), np.full((1, 3), psfdepth_from_depth_mag(24.4))
        )[:, None, None, :]
    )
    gen = torch.Generator().manual_seed(3)
    added = np.array([[slot.added_noise_sigma_g, slot.added_noise_sigma_r, slot.added_noise_sigma_z]])
    degraded = host_mod.degrade(torch.as_tensor(noise), [slot.kernel_sigma_arcsec], added, [gen]).numpy()
    assert degraded[0, 10:-10, 10:-10, 1].std() == pytest.approx(slot.noise_sigma_r, rel=0.05)
    expected = host_mod.pixel_noise_sigma(np.array([1.5]), np.array([psfdepth_from_depth_mag(23.0)]))[0]
    assert slot.noise_sigma_r == pytest.approx(expected, rel=1e-6)
