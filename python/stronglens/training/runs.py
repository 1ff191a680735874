"""The finder's dbt Python models, as functions: settings from the vars, and the ``finder_runs`` and
``finder_scores`` tables.  The models under ``models/marts/training/`` only call these.

The vars reach a Python model as one JSON string (config ``finder_settings``, rendered with
``tojson`` in ``_training__models.yml``), parsed and validated here into typed settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from stronglens import paths
from stronglens.training.train import RunOptions, TrainConfig, train_finders

#: ``finder_runs`` schema (one row per run of this build).
RUNS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("invocation_id", pa.string()),
        pa.field("arch", pa.string()),
        pa.field("is_primary", pa.bool_()),
        pa.field("reused", pa.bool_()),
        pa.field("crop", pa.int32()),
        pa.field("hyperparameters_json", pa.string()),
        pa.field("manifest_hash", pa.string()),
        pa.field("n_params", pa.int64()),
        pa.field("device", pa.string()),
        pa.field("epochs_run", pa.int32()),
        pa.field("best_epoch", pa.int32()),
        pa.field("best_val_auc", pa.float64()),
        pa.field("wall_s", pa.float64()),
        pa.field("train_images_per_s", pa.float64()),
        pa.field("resumed_from_epoch", pa.int32()),
        pa.field("n_train", pa.int64()),
        pa.field("n_train_simulated", pa.int64()),
        pa.field("n_val", pa.int64()),
        pa.field("n_test", pa.int64()),
        pa.field("run_dir", pa.string()),
        pa.field("checkpoint_path", pa.string()),
        pa.field("checkpoint_sha256", pa.string()),
        pa.field("history_json", pa.string()),
        pa.field("finished_at", pa.string()),
    ]
)

#: ``finder_scores`` schema (one row per run and sample).
SCORES_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("sample_id", pa.string()),
        pa.field("split", pa.string()),
        pa.field("score", pa.float64()),
        pa.field("embedding_path", pa.string()),
        pa.field("embedding_row", pa.int64()),
    ]
)


@dataclass(frozen=True)
class FinderSettings:
    """Every ``finder_*`` var, typed."""

    configs: list[TrainConfig]
    options: RunOptions
    fpr_levels: tuple[float, ...]
    min_negatives_above: int
    n_boot: int
    theta_e_bins: tuple[float, ...]
    calibration_bins: int
    gallery_size: int


def settings_from_json(text: str) -> FinderSettings:
    """Parse the ``finder_settings`` JSON the models' config renders from the vars."""
    raw: dict[str, Any] = json.loads(text)
    archs = raw["archs"]
    if isinstance(archs, str):
        archs = [archs]
    if not archs or len(set(archs)) != len(archs):
        raise ValueError(f"finder_archs must list distinct architectures, got {archs!r}")
    configs = [
        TrainConfig(
            arch=arch,
            crop=int(raw["crop"]),
            shift=int(raw["shift_px"]),
            max_epochs=int(raw["max_epochs"]),
            patience=int(raw["patience"]),
            batch_size=int(raw["batch_size"]),
            lr=float(raw["lr"]),
            weight_decay=float(raw["weight_decay"]),
            seed=int(raw["seed"]),
            epoch_negatives=None if raw["epoch_negatives"] is None else int(raw["epoch_negatives"]),
            positive_repeats=int(raw["positive_repeats"]),
            max_nonfinite_frac=float(raw["max_nonfinite_frac"]),
        )
        for arch in archs
    ]
    root = Path(raw["root"]) if raw.get("root") else paths.warehouse_home() / "finder"
    options = RunOptions(
        root=root,
        cutout_root=raw.get("cutout_root"),
        cutout_size=int(raw["cutout_size"]),
        device=str(raw["device"]),
        threads=None if raw.get("threads") is None else int(raw["threads"]),
        retrain=bool(raw["retrain"]),
    )
    return FinderSettings(
        configs=configs,
        options=options,
        fpr_levels=tuple(float(f) for f in raw["fpr_levels"]),
        min_negatives_above=int(raw["min_negatives_above"]),
        n_boot=int(raw["n_boot"]),
        theta_e_bins=tuple(float(b) for b in raw["theta_e_bins"]),
        calibration_bins=int(raw["calibration_bins"]),
        gallery_size=int(raw["gallery_size"]),
    )


def runs_table(
    manifest: pa.Table,
    settings: FinderSettings,
    invocation_id: str,
    simulated: pa.Table | None = None,
) -> pa.Table:
    """Train or reuse the configured runs on the manifest plus the simulated lenses; one
    ``finder_runs`` row each.  An empty manifest (e.g. ``dbt build --empty``) yields an empty table:
    there is nothing to train, and the quality gate (training_manifest row count, metrics present)
    fails such a build."""
    if manifest.num_rows == 0:
        return RUNS_SCHEMA.empty_table()
    runs = train_finders(manifest, settings.configs, settings.options, simulated)
    primary = runs[-1]["run_id"]
    rows = [
        {
            "run_id": r["run_id"],
            "invocation_id": invocation_id,
            "arch": r["arch"],
            "is_primary": r["run_id"] == primary,
            "reused": bool(r["reused"]),
            "crop": r["crop"],
            "hyperparameters_json": json.dumps(r["config"], sort_keys=True),
            "manifest_hash": r["manifest_hash"],
            "n_params": r["n_params"],
            "device": r["device"],
            "epochs_run": r["epochs_run"],
            "best_epoch": r["best_epoch"],
            "best_val_auc": r["best_val_auc"],
            "wall_s": r["wall_s"],
            "train_images_per_s": r["train_images_per_s"],
            "resumed_from_epoch": r["resumed_from_epoch"],
            "n_train": r["n_train"],
            "n_train_simulated": r.get("n_train_simulated", 0),
            "n_val": r["n_val"],
            "n_test": r["n_test"],
            "run_dir": str(Path(r["checkpoint_path"]).parent),
            "checkpoint_path": r["checkpoint_path"],
            "checkpoint_sha256": r["checkpoint_sha256"],
            "history_json": json.dumps(r["history"]),
            "finished_at": r["finished_at"],
        }
        for r in runs
    ]
    return pa.Table.from_pylist(rows, schema=RUNS_SCHEMA)


def scores_table(runs: pa.Table) -> pa.Table:
    """Every run's scores (written by the trainer next to its checkpoint), with where each sample's
    embedding lies in the run's ``embeddings.npz`` (row ``embedding_row`` of ``embedding``)."""
    parts = []
    for run_id, run_dir in zip(
        runs.column("run_id").to_pylist(), runs.column("run_dir").to_pylist(), strict=True
    ):
        scores = pq.read_table(Path(run_dir) / "scores.parquet")
        n = scores.num_rows
        parts.append(
            pa.table(
                {
                    "run_id": pa.array([run_id] * n, pa.string()),
                    "sample_id": scores.column("sample_id").cast(pa.string()),
                    "split": scores.column("split").cast(pa.string()),
                    "score": scores.column("score").cast(pa.float64()),
                    "embedding_path": pa.array([str(Path(run_dir) / "embeddings.npz")] * n, pa.string()),
                    "embedding_row": pa.array(np.arange(n, dtype=np.int64)),
                },
                schema=SCORES_SCHEMA,
            )
        )
    return pa.concat_tables(parts) if parts else SCORES_SCHEMA.empty_table()
