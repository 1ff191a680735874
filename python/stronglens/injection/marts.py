"""What the selection-function dbt models call (each model is a thin wrapper around one function).

Settings arrive as one JSON object (the model config ``injection_settings``, rendered from the dbt
vars ``injection_*`` / ``realism_probe_*``), parsed by :func:`settings_from_json`.  Every function
accepts empty inputs (``dbt build --empty``) and returns a correctly typed empty table.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from stronglens.cutouts.store import resolve_uri
from stronglens.injection import hosts as host_mod
from stronglens.injection import stats
from stronglens.injection.grid import InjectionGrid
from stronglens.injection.pipeline import InjectionSettings, load_host_images, run_injections
from stronglens.injection.priors import load_priors
from stronglens.injection.probe import realism_probe, score_distributions
from stronglens.injection.render import RenderSettings
from stronglens.injection.reports import write_gallery, write_heatmaps
from stronglens.injection.scoring import FinderLike, threshold_name, thresholds


@dataclass(frozen=True)
class SelectionSettings:
    """Every setting of the selection-function models (dbt vars, see dbt_project.yml 'injection')."""

    grid: InjectionGrid
    seed: int
    min_hosts: int
    max_hosts: int
    priors_file: str | None
    finder_class: str
    run: InjectionSettings
    fpr_targets: tuple[float, ...]
    score_thresholds: tuple[float, ...]
    snr_edges: tuple[float, ...]
    lensed_mag_edges: tuple[float, ...]
    probe_folds: int
    probe_boot: int
    probe_l2: float
    probe_max_auc: float
    host_bootstrap_n: int
    cutout_root: str


def settings_from_json(text: str | Mapping[str, Any]) -> SelectionSettings:
    """Parse the ``injection_settings`` config (a JSON string or mapping); a missing key is an error
    naming it."""
    raw = json.loads(text) if isinstance(text, str) else dict(text)
    try:
        render = RenderSettings(
            supersample=int(raw["injection_supersample"]),
            supersample_threshold=float(raw["injection_supersample_threshold"]),
            compile=bool(raw["injection_compile"]),
        )
        run = InjectionSettings(
            seed=int(raw["injection_seed"]),
            batch_size=int(raw["injection_batch_size"]),
            poisson_noise=bool(raw["injection_poisson_noise"]),
            arc_gain_e_per_nmgy=float(raw["injection_arc_gain_e_per_nmgy"]),
            annulus_halfwidth_arcsec=float(raw["injection_annulus_halfwidth_arcsec"]),
            probe_sample=int(raw["realism_probe_max_injections"]),
            gallery_per_cell=int(raw["injection_gallery_per_cell"]),
            device=str(raw["injection_device"]),
            render=render,
        )
        return SelectionSettings(
            grid=InjectionGrid.from_vars(raw),
            seed=int(raw["injection_seed"]),
            min_hosts=int(raw["injection_min_hosts_per_cell"]),
            max_hosts=int(raw["injection_max_hosts_per_cell"]),
            priors_file=raw["injection_priors_file"] or None,
            finder_class=str(raw["injection_finder_class"]),
            run=run,
            fpr_targets=tuple(float(v) for v in raw["injection_fpr_targets"]),
            score_thresholds=tuple(float(v) for v in raw["injection_score_thresholds"]),
            snr_edges=tuple(float(v) for v in raw["injection_arc_snr_edges"]),
            lensed_mag_edges=tuple(float(v) for v in raw["injection_lensed_mag_edges"]),
            probe_folds=int(raw["realism_probe_folds"]),
            probe_boot=int(raw["realism_probe_n_boot"]),
            probe_l2=float(raw["realism_probe_l2"]),
            probe_max_auc=float(raw["realism_probe_max_auc"]),
            host_bootstrap_n=int(raw["injection_host_bootstrap_n"]),
            cutout_root=str(raw["cutout_root"]),
        )
    except KeyError as exc:
        raise KeyError(
            f"injection_settings misses {exc}: add the var to dbt_project.yml (section 'injection')"
        ) from exc


def grid_table(settings: SelectionSettings) -> pa.Table:
    """``injection_grid``: one row per cell."""
    return settings.grid.cells()


def host_slots_table(cells: pa.Table, hosts: pa.Table, settings: SelectionSettings) -> pa.Table:
    """``injection_host_slots``: which (native or degraded) host each cell uses."""
    return host_mod.assign_hosts(
        cells, hosts, settings.grid, settings.min_hosts, settings.max_hosts, settings.seed
    )


def primary_run(finder_runs: pa.Table) -> dict[str, Any] | None:
    """The finder run consumers use (``is_primary``); None when the table is empty."""
    rows = [r for r in finder_runs.to_pylist() if r.get("is_primary")]
    if not rows:
        if finder_runs.num_rows:
            raise ValueError(
                "finder_runs has rows but none with is_primary = true; the training build is broken"
            )
        return None
    if len(rows) > 1:
        raise ValueError(
            f"finder_runs has {len(rows)} primary runs ({[r['run_id'] for r in rows]}); expected one"
        )
    return rows[0]


def load_finder(class_path: str, checkpoint_path: str, device: str) -> FinderLike:
    """Instantiate the finder class ``module:Class`` (var ``injection_finder_class``) from a checkpoint."""
    module_name, _, class_name = class_path.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"injection_finder_class {class_path!r} cannot be imported ({exc})") from exc
    try:
        return cls.load(checkpoint_path, device=device)
    except TypeError:  # a finder whose load takes no device argument
        return cls.load(checkpoint_path)


def thresholds_table(
    finder_runs: pa.Table, finder_scores: pa.Table, negatives: pa.Table, settings: SelectionSettings
) -> pa.Table:
    """``selection_thresholds``: the operating points of the primary run on real validation negatives
    (``negatives``: sample_ids of negatives; only ``split = 'val'`` scores of the primary run count)."""
    run = primary_run(finder_runs)
    empty_schema = pa.schema(
        [
            ("run_id", pa.string()),
            ("threshold_name", pa.string()),
            ("kind", pa.string()),
            ("target_fpr", pa.float64()),
            ("score_threshold", pa.float64()),
            ("n_negatives", pa.int64()),
            ("n_negatives_above", pa.int64()),
            ("achieved_fpr", pa.float64()),
        ]
    )
    if run is None:
        return empty_schema.empty_table()
    scores = finder_scores.to_pandas()
    neg_ids = set(negatives.column("sample_id").to_pylist())
    val = scores[
        (scores["run_id"] == run["run_id"]) & (scores["split"] == "val") & scores["sample_id"].isin(neg_ids)
    ]
    table = thresholds(val["score"].to_numpy(np.float64), settings.fpr_targets, settings.score_thresholds)
    return table.add_column(0, "run_id", pa.array([run["run_id"]] * table.num_rows, pa.string()))


def injections_table(
    cells: pa.Table,
    slots: pa.Table,
    hosts: pa.Table,
    finder_runs: pa.Table,
    threshold_rows: pa.Table,
    settings: SelectionSettings,
    report_dir: str,
) -> pa.Table:
    """``injections``: render, inject and score every planned injection; one row each with truth,
    score and ``recovered_<operating point>``; writes the gallery and a run summary to ``report_dir``."""
    plan = host_mod.plan_injections(cells, slots)
    run = primary_run(finder_runs)
    run_id = run["run_id"] if run else None
    if plan.num_rows and run is None:
        raise ValueError("injections: no primary finder run in finder_runs; train the finder first")
    t0 = time.perf_counter()
    host_paths = [resolve_uri(p, settings.cutout_root) for p in hosts.column("path").to_pylist()]
    host_images = load_host_images(host_paths)
    t_hosts = time.perf_counter() - t0
    finder = (
        load_finder(settings.finder_class, run["checkpoint_path"], settings.run.device)
        if plan.num_rows
        else _NoFinder()
    )
    result = run_injections(
        cells, slots, plan, host_images, load_priors(settings.priors_file), finder, settings.run
    )
    table = result.table
    table = table.add_column(1, "finder_run_id", pa.array([run_id] * table.num_rows, pa.string()))
    score = table.column("score").to_numpy()
    # One column per configured operating point, whatever the data: a threshold that could not be
    # set (or an empty build) gives nulls, so the table's columns never depend on its rows.
    cuts = {row["threshold_name"]: row["score_threshold"] for row in threshold_rows.to_pylist()}
    points = [threshold_name("fpr", f) for f in settings.fpr_targets]
    points += [threshold_name("p", p) for p in settings.score_thresholds]
    for name in points:
        cut = cuts.get(name)
        recovered = pa.nulls(table.num_rows, pa.bool_()) if cut is None else pa.array(score > cut)
        table = table.append_column(f"recovered_{name}", recovered)
    seconds = {"host_loading": t_hosts, **result.seconds}
    _write_run_summary(report_dir, table.num_rows, seconds, result.device, run_id)
    names = threshold_rows.column("threshold_name").to_pylist()
    if table.num_rows and names:
        frame = table.drop_columns(["embedding"]).to_pandas()
        write_gallery(frame, result.thumbnails, names[0], report_dir)
    return table


class _NoFinder:
    """Stands in when there is nothing to score (an empty build): never called with images."""

    def score(self, images: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        if len(images):
            raise RuntimeError("no finder loaded")
        return np.zeros(0), np.zeros((0, 0), np.float32)


def _write_run_summary(
    report_dir: str, n: int, seconds: dict[str, float], device: str, run_id: str | None
) -> None:
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = seconds["render"] + seconds["score"]
    summary = {
        "finder_run_id": run_id,
        "n_injections": n,
        "device": device,
        "seconds": seconds,
        "injections_per_s_render_and_score": n / work if work > 0 else None,
    }
    (out / "injection_run.json").write_text(json.dumps(summary, indent=2))


def selection_function_table(
    injections: pa.Table,
    threshold_rows: pa.Table,
    cells: pa.Table,
    slots: pa.Table,
    probe: pa.Table,
    settings: SelectionSettings,
    report_dir: str,
) -> pa.Table:
    """``selection_function``: per cell and operating point, completeness with Wilson 95%, Jeffreys
    68% and host-cluster bootstrap 95% intervals and the host counts; ``lower_bound_only`` when the
    realism probe failed."""
    coverage = host_mod.coverage(cells, slots)
    names = threshold_rows.column("threshold_name").to_pylist()
    cell_ids = cells.column("cell_id").to_numpy()
    group = np.searchsorted(cell_ids, injections.column("cell_id").to_numpy())
    recovered = (
        np.stack([injections.column(f"recovered_{n}").to_numpy(zero_copy_only=False) for n in names], axis=1)
        if names
        else np.zeros((injections.num_rows, 0), bool)
    )
    n_inj, n_rec = stats.group_completeness(group, cells.num_rows, recovered.astype(bool))
    host_interval = _host_interval(_host_codes(injections), group, cells.num_rows, recovered, settings)
    keys = {
        c: cells.column(c).to_numpy() for c in ("cell_id", "theta_e_arcsec", "psf_fwhm_arcsec", "depth_mag")
    }
    for c in ("n_native_hosts", "n_degraded_hosts", "is_measurable"):
        keys[c] = coverage.column(c).to_numpy(zero_copy_only=False)
    table = stats.long_table(keys, names, n_inj, n_rec.reshape(cells.num_rows, len(names)), host_interval)
    thr = {r["threshold_name"]: r for r in threshold_rows.to_pylist()}
    tn = table.column("threshold_name").to_pylist()
    table = table.append_column(
        "score_threshold", pa.array([thr[n]["score_threshold"] for n in tn], pa.float64())
    )
    table = table.append_column("target_fpr", pa.array([thr[n]["target_fpr"] for n in tn], pa.float64()))
    run_id = threshold_rows.column("run_id")[0].as_py() if threshold_rows.num_rows else None
    table = table.append_column("finder_run_id", pa.array([run_id] * table.num_rows, pa.string()))
    lower_bound = _lower_bound_only(probe)
    table = table.append_column("lower_bound_only", pa.array([lower_bound] * table.num_rows, pa.bool_()))
    if table.num_rows and injections.num_rows:
        write_heatmaps(table.to_pandas(), report_dir)
    return table


def _host_codes(injections: pa.Table) -> np.ndarray:
    """An integer per injection naming its host (``host_sample_id``), for the host bootstrap."""
    host_ids = np.asarray(injections.column("host_sample_id").to_pylist(), dtype=str)
    return np.unique(host_ids, return_inverse=True)[1].ravel() if host_ids.size else np.zeros(0, np.int64)


def _host_interval(
    host: np.ndarray, group: np.ndarray, n_groups: int, recovered: np.ndarray, settings: SelectionSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Host-cluster bootstrap 95% interval per group."""
    return stats.host_bootstrap_interval(
        group, host, n_groups, recovered.astype(bool), settings.host_bootstrap_n, settings.seed
    )


def _lower_bound_only(probe: pa.Table) -> bool | None:
    """True when the probe on all real positives beat its AUC threshold (null without a probe)."""
    rows = [r for r in probe.to_pylist() if r["population"] == "all"]
    return None if not rows or rows[0]["auc"] is None else bool(rows[0]["lower_bound_only"])


def marginals_table(
    injections: pa.Table, threshold_rows: pa.Table, cells: pa.Table, settings: SelectionSettings
) -> pa.Table:
    """``selection_marginals``: completeness marginalised over all but one axis -- theta_E, PSF,
    depth (grid values) and arc S/N, lensed r magnitude (bins from the vars)."""
    names = threshold_rows.column("threshold_name").to_pylist()
    recovered = (
        np.stack([injections.column(f"recovered_{n}").to_numpy(zero_copy_only=False) for n in names], axis=1)
        if names
        else np.zeros((injections.num_rows, 0), bool)
    )
    hosts = _host_codes(injections)
    parts = []
    axes = {
        "theta_e_arcsec": settings.grid.theta_e,
        "psf_fwhm_arcsec": settings.grid.psf_fwhm,
        "depth_mag": settings.grid.depth,
    }
    for axis, grid_axis in axes.items():
        values = grid_axis.values
        idx = grid_axis.bin_index(injections.column(axis).to_numpy())
        lows, highs = values - grid_axis.step / 2, values + grid_axis.step / 2
        parts.append(_marginal(axis, idx, lows, highs, values, names, recovered, hosts, settings))
    for axis, edges in (("arc_snr", settings.snr_edges), ("lensed_mag_r", settings.lensed_mag_edges)):
        e = np.asarray(edges)
        idx = stats.bin_edges_index(injections.column(axis).to_numpy(), e)
        centres = 0.5 * (e[:-1] + e[1:])
        parts.append(_marginal(axis, idx, e[:-1], e[1:], centres, names, recovered, hosts, settings))
    return pa.concat_tables(parts)


def _marginal(axis, idx, lows, highs, centres, names, recovered, hosts, settings) -> pa.Table:
    n_inj, n_rec = stats.group_completeness(idx, len(lows), recovered.astype(bool))
    host_interval = _host_interval(hosts, idx, len(lows), recovered, settings)
    keys = {
        "axis": np.array([axis] * len(lows), dtype=object),
        "bin_low": np.asarray(lows, np.float64),
        "bin_high": np.asarray(highs, np.float64),
        "bin_centre": np.asarray(centres, np.float64),
    }
    table = stats.long_table(keys, names, n_inj, n_rec.reshape(len(lows), len(names)), host_interval)
    return table.set_column(0, "axis", pa.array(table.column("axis").to_pylist(), pa.string()))


def realism_probe_table(
    injections: pa.Table, positives: pa.Table, finder_runs: pa.Table, settings: SelectionSettings
) -> pa.Table:
    """``realism_probe``: out-of-fold AUC (bootstrap CI) of a linear probe on the finder's embeddings,
    real positives (``positives``: sample_id, path, tier) vs the sampled injections, for all
    positives and for Tier-A; ``lower_bound_only`` when the AUC exceeds ``realism_probe_max_auc``."""
    schema = pa.schema(
        [
            ("finder_run_id", pa.string()),
            ("population", pa.string()),
            ("n_real", pa.int64()),
            ("n_injected", pa.int64()),
            ("n_folds", pa.int64()),
            ("n_boot", pa.int64()),
            ("auc", pa.float64()),
            ("auc_low", pa.float64()),
            ("auc_high", pa.float64()),
            ("ci_level", pa.float64()),
            ("max_auc", pa.float64()),
            ("lower_bound_only", pa.bool_()),
            ("note", pa.string()),
        ]
    )
    run = primary_run(finder_runs)
    emb_col = injections.column("embedding").to_pylist() if injections.num_rows else []
    injected = np.array([e for e in emb_col if e is not None], dtype=np.float64)
    if run is None or injected.size == 0 or positives.num_rows == 0:
        return schema.empty_table()
    finder = load_finder(settings.finder_class, run["checkpoint_path"], settings.run.device)
    positive_paths = [resolve_uri(p, settings.cutout_root) for p in positives.column("path").to_pylist()]
    images = load_host_images(positive_paths)
    _, real = finder.score(images, batch_size=settings.run.batch_size)
    tiers = np.asarray(positives.column("tier").to_pylist(), dtype=object)
    rows = []
    for population, mask in (("all", np.ones(len(tiers), bool)), ("tier_A", tiers == "A")):
        row: dict[str, Any] = {
            "finder_run_id": run["run_id"],
            "population": population,
            "n_real": int(mask.sum()),
            "n_injected": len(injected),
            "max_auc": settings.probe_max_auc,
        }
        if mask.sum() < 2:
            row.update(note="fewer than 2 real positives: no probe")
        else:
            res = realism_probe(
                real[mask],
                injected,
                settings.probe_folds,
                settings.probe_boot,
                settings.probe_l2,
                settings.seed,
            )
            row.update(
                n_folds=res.n_folds,
                n_boot=res.n_boot,
                auc=res.auc,
                auc_low=res.auc_low,
                auc_high=res.auc_high,
                ci_level=res.ci_level,
                lower_bound_only=res.auc > settings.probe_max_auc,
                note=(
                    "the probe tells real lenses from injections: completeness is a lower bound"
                    if res.auc > settings.probe_max_auc
                    else "injections pass the realism gate"
                ),
            )
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=schema)


def real_tier_a_scores(
    finder_scores: pa.Table, manifest: pa.Table, lens_truth: pa.Table, threshold_rows: pa.Table
) -> pa.Table:
    """Scores of the primary run (the one the thresholds came from) for Tier-A positives, with
    their theta_E from lens_truth: columns ``score, theta_e_arcsec``."""
    run_id = threshold_rows.column("run_id")[0].as_py() if threshold_rows.num_rows else None
    scores = finder_scores.to_pandas()
    tier_a = manifest.to_pandas().query("tier == 'A'")[["sample_id"]]
    merged = (
        scores[scores["run_id"] == run_id]
        .merge(tier_a, on="sample_id")
        .merge(lens_truth.to_pandas(), on="sample_id")
    )
    return pa.table(
        {
            "score": merged["score"].to_numpy(np.float64),
            "theta_e_arcsec": merged["theta_e_arcsec"].to_numpy(np.float64),
        }
    )


def score_distributions_table(
    injections: pa.Table, real: pa.Table, threshold_rows: pa.Table, settings: SelectionSettings
) -> pa.Table:
    """``realism_score_distributions``: finder scores of real Tier-A lenses (``real``: score,
    theta_e_arcsec of the primary run) and of injections in the same theta_E bins (the grid's)."""
    axis = settings.grid.theta_e
    edges = np.r_[axis.values - axis.step / 2, axis.values[-1] + axis.step / 2]
    rows = score_distributions(
        real.column("score").to_numpy(zero_copy_only=False).astype(np.float64),
        real.column("theta_e_arcsec").to_numpy(zero_copy_only=False).astype(np.float64),
        injections.column("score").to_numpy(zero_copy_only=False).astype(np.float64),
        injections.column("theta_e_arcsec").to_numpy(zero_copy_only=False).astype(np.float64),
        edges,
    )
    run_id = threshold_rows.column("run_id")[0].as_py() if threshold_rows.num_rows else None
    table = pa.Table.from_pylist(rows) if rows else pa.table({})
    return table.append_column("finder_run_id", pa.array([run_id] * table.num_rows, pa.string()))
