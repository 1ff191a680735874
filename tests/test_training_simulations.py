"""Simulated training lenses: arcs from the injection priors rendered into train-split negatives,
kept by the arc S/N they actually add, stored as cutout files under a settings key (deterministic,
earlier keys untouched), trained on as train positives only and never scored; gc keeps their files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from stronglens.cutouts.store import read_cutout, resolve_uri
from stronglens.injection.grid import psfdepth_from_depth_mag
from stronglens.injection.hosts import pixel_noise_sigma
from stronglens.training.data import TrainingDataError
from stronglens.training.simulations import SimulationError, SimulationSettings, simulate_lenses
from stronglens.training.train import RunOptions, TrainConfig, train_finders
from tests.training_data import write_store

SETTINGS = SimulationSettings(count=8, theta_e_range=(1.0, 3.0), min_arc_snr=12.0, weight=0.5, seed=3)


def _hosts(manifest: pa.Table) -> pa.Table:
    """The manifest's train negatives as simulation hosts, with a PSF and depth per band."""
    negatives = manifest.filter(
        pc.and_(pc.equal(manifest.column("split"), "train"), pc.equal(manifest.column("label"), 0))
    )
    n = negatives.num_rows
    psf = np.linspace(1.0, 1.6, n)
    return pa.table(
        {
            "sample_id": negatives.column("sample_id"),
            "galaxy_id": pa.array(np.arange(n, dtype=np.int64) + 1000),
            "cutout_path": negatives.column("cutout_path"),
            "cutout_sha256": negatives.column("cutout_sha256"),
            "psfsize_g": psf + 0.1,
            "psfsize_r": psf,
            "psfsize_z": psf - 0.1,
            "psfdepth_r": psfdepth_from_depth_mag(np.full(n, 24.0)),
        }
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pa.Table]:
    root = tmp_path_factory.mktemp("store")
    return root, write_store(root, {"train": (6, 40), "val": (4, 12), "test": (2, 4)})


@pytest.fixture(scope="module")
def lenses(store: tuple[Path, pa.Table]) -> pa.Table:
    root, manifest = store
    return simulate_lenses(_hosts(manifest), SETTINGS, str(root), progress=lambda _: None)


def test_lenses_are_the_arcs_they_claim_on_their_hosts(
    store: tuple[Path, pa.Table], lenses: pa.Table
) -> None:
    """Each file is its host plus an arc whose r flux and S/N are the table's truth; the S/N cut and
    the theta_E range hold, and hosts are used in their given order."""
    root, manifest = store
    hosts = _hosts(manifest)
    assert lenses.num_rows == SETTINGS.count
    frame = lenses.to_pandas()
    assert (frame.split == "train").all() and (frame.label == 1).all() and (frame.sample_weight == 0.5).all()
    assert frame.theta_e_arcsec.between(1.0, 3.0).all() and (frame.arc_snr >= 12.0).all()
    order = [hosts.column("sample_id").to_pylist().index(h) for h in frame.host_sample_id]
    assert order == sorted(order)
    ids = hosts.column("sample_id").to_pylist()
    host_path = dict(zip(ids, hosts.column("cutout_path").to_pylist(), strict=True))
    sigma = pixel_noise_sigma(hosts.column("psfsize_r").to_numpy(), hosts.column("psfdepth_r").to_numpy())
    noise = dict(zip(ids, sigma, strict=True))
    for row in frame.itertuples():
        image, meta = read_cutout(resolve_uri(row.cutout_path, str(root)))
        host, _ = read_cutout(host_path[row.host_sample_id])
        arc = (image - host).astype(np.float64)
        assert arc.min() > -1e-5 and meta.cutout_url.startswith("simulated:")
        flux_r = 10 ** ((22.5 - row.src_mag_r) / 2.5)
        assert arc[..., 1].sum() == pytest.approx(row.magnification * flux_r, rel=0.02)
        snr = np.sqrt((arc[..., 1] ** 2).sum()) / noise[row.host_sample_id]
        assert snr == pytest.approx(row.arc_snr, rel=1e-3)


def test_same_inputs_same_lenses_other_settings_keep_earlier_files(
    store: tuple[Path, pa.Table], lenses: pa.Table
) -> None:
    root, manifest = store
    hosts = _hosts(manifest)
    again = simulate_lenses(hosts, SETTINGS, str(root), progress=lambda _: None)
    assert again.equals(lenses)
    before = {p: (root / p).stat().st_mtime_ns for p in lenses.column("cutout_path").to_pylist()}
    other = simulate_lenses(hosts, replace(SETTINGS, seed=4), str(root), progress=lambda _: None)
    assert set(other.column("simulation_key").to_pylist()).isdisjoint(
        lenses.column("simulation_key").to_pylist()
    )
    assert {p: (root / p).stat().st_mtime_ns for p in before} == before  # earlier files untouched


def test_fewer_hosts_than_asked_says_so_and_zero_is_empty(store: tuple[Path, pa.Table]) -> None:
    root, manifest = store
    hosts = _hosts(manifest)
    said: list[str] = []
    few = simulate_lenses(hosts, replace(SETTINGS, count=1000), str(root), progress=said.append)
    assert 0 < few.num_rows < hosts.num_rows and "of 1000 asked for" in said[0]
    assert simulate_lenses(hosts, replace(SETTINGS, count=0), str(root)).num_rows == 0


def test_bad_host_psf_is_named(store: tuple[Path, pa.Table]) -> None:
    root, manifest = store
    hosts = _hosts(manifest)
    psf = hosts.column("psfsize_r").to_numpy().copy()
    psf[3] = 0.0
    bad = hosts.set_column(hosts.column_names.index("psfsize_r"), "psfsize_r", pa.array(psf))
    with pytest.raises(SimulationError, match=str(hosts.column("sample_id")[3])):
        simulate_lenses(bad, SETTINGS, str(root))
    with pytest.raises(SimulationError, match="theta_e"):
        SimulationSettings(theta_e_range=(2.0, 1.0))


def test_finder_trains_on_them_but_scores_only_catalogue_samples(
    store: tuple[Path, pa.Table], lenses: pa.Table, tmp_path: Path
) -> None:
    root, manifest = store
    config = TrainConfig(crop=32, shift=2, max_epochs=1, patience=1, batch_size=8)
    opts = RunOptions(root=tmp_path, cutout_root=str(root), device="cpu", threads=1, progress=lambda _: None)
    (plain,) = train_finders(manifest, [config], opts)
    (run,) = train_finders(manifest, [config], opts, simulated=lenses)
    assert run["manifest_hash"] != plain["manifest_hash"] and run["run_id"] != plain["run_id"]
    assert run["n_train_simulated"] == lenses.num_rows and plain["n_train_simulated"] == 0
    assert run["n_train"] == plain["n_train"] + lenses.num_rows
    run_dir = Path(run["checkpoint_path"]).parent
    scored = pq.read_table(run_dir / "scores.parquet").column("sample_id").to_pylist()
    assert sorted(scored) == sorted(manifest.column("sample_id").to_pylist())
    trained = set(pq.read_table(run_dir / "train_samples.parquet").column("sample_id").to_pylist())
    assert set(lenses.column("sample_id").to_pylist()) <= trained
    leaked = lenses.set_column(
        lenses.column_names.index("split"), "split", pa.array(["val"] * lenses.num_rows)
    )
    with pytest.raises(TrainingDataError, match="outside the train split"):
        train_finders(manifest, [config], opts, simulated=leaked)


def test_gc_keeps_the_files_simulated_lenses_references() -> None:
    from stronglens.retention import _cutout_paths
    from stronglens.warehouse import LAKE_ALIAS

    con = duckdb.connect()
    con.execute(f"attach ':memory:' as {LAKE_ALIAS}")
    con.execute(f"use {LAKE_ALIAS}")
    con.execute("create table cutouts as select 'a/1.npz' as path")
    con.execute("create table simulated_lenses as select 'simulated/k/sim-1.npz' as cutout_path")
    count, found = _cutout_paths(con, {"/root"})
    assert count == 2 and found == {"/root/a/1.npz", "/root/simulated/k/sim-1.npz"}


def test_gallery_shows_each_theta_e_bin(
    store: tuple[Path, pa.Table], lenses: pa.Table, tmp_path: Path
) -> None:
    import matplotlib.image

    from stronglens.training.reports import plot_simulated_lenses

    root, _ = store
    path = plot_simulated_lenses(lenses.to_pandas(), str(root), 101, str(tmp_path), per_row=3)
    assert path is not None and path.name == "simulated_lenses.png"
    n_bins = len(set(np.floor(lenses.column("theta_e_arcsec").to_numpy() / 0.5)))
    height, width = matplotlib.image.imread(path).shape[:2]
    assert height == pytest.approx(n_bins * 1.25 * 110, abs=2) and width == pytest.approx(
        3 * 1.1 * 110, abs=2
    )
    assert plot_simulated_lenses(lenses.to_pandas().iloc[:0], str(root), 101, str(tmp_path)) is None
