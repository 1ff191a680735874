"""The headline of a finder run as text (``stronglens finder``): what was trained, its AUC, recall at
each fixed FPR with the number of negatives pinning the threshold (or why it is not measurable),
TPR0/TPR10 per tier, and which N2 confusers fool it."""

from __future__ import annotations

import duckdb
import pandas as pd


class NoFinderRunError(ValueError):
    """The build has no (such) finder run."""


def _interval(row: pd.Series, digits: int = 3) -> str:
    if pd.isna(row.value):
        return f"not measurable ({row.note})"
    text = f"{row.value:.{digits}f}"
    if pd.notna(row.ci_low):
        text += f" [{row.ci_low:.{digits}f}, {row.ci_high:.{digits}f}]"
    return text


def headline(con: duckdb.DuckDBPyConnection, run_id: str | None = None, split: str = "test") -> str:
    """The headline text of run ``run_id`` (default: the primary run) on ``split``."""
    runs = con.execute("select * from finder_runs order by is_primary desc, run_id").df()
    if runs.empty:
        raise NoFinderRunError("this build has no finder runs: build with the training models (tag:training)")
    chosen = runs[runs.run_id == run_id] if run_id else runs.head(1)
    if chosen.empty:
        raise NoFinderRunError(f"no finder run {run_id!r} in this build; runs: {', '.join(runs.run_id)}")
    run = chosen.iloc[0]
    metrics = con.execute(
        "select * from finder_metrics where run_id = ? and split = ? order by population, metric",
        [run.run_id, split],
    ).df()
    if metrics.empty:
        raise NoFinderRunError(f"run {run.run_id} has no metrics on split {split!r}")
    speed = f"{run.train_images_per_s:.0f} img/s" if pd.notna(run.train_images_per_s) else "n/a"
    lines = [
        f"Finder run {run.run_id} ({run.arch}, {run.n_params:,} parameters, crop {run.crop} px, "
        f"{run.device})",
        f"  epochs {run.epochs_run} (best {run.best_epoch}), val AUC {run.best_val_auc:.4f}, "
        f"training {speed}, {run.wall_s:.0f} s{' (reused)' if run.reused else ''}",
        f"  checkpoint {run.checkpoint_path}",
        f"Split {split}:",
    ]
    for population in ("all", "tier_A", "tier_B"):
        part = metrics[metrics.population == population].set_index("metric")
        if part.empty:
            continue
        auc = part.loc["auc"] if "auc" in part.index else None
        n_pos = int(auc.n_pos) if auc is not None else 0
        n_neg = int(auc.n_neg) if auc is not None else 0
        lines.append(f"  {population}: {n_pos} positives, {n_neg} negatives")
        if auc is not None:
            lines.append(f"    AUC {_interval(auc)}")
        for metric in sorted(m for m in part.index if m.startswith("recall_at_fpr_")):
            lines.append(
                f"    recall at FPR {metric.removeprefix('recall_at_fpr_')}: {_interval(part.loc[metric])}"
            )
        for metric in ("tpr0", "tpr10"):
            if metric in part.index:
                lines.append(f"    {metric.upper()} {_interval(part.loc[metric])}")
    thresholds = metrics[metrics.metric.str.startswith("threshold_at_fpr_")]
    for row in thresholds.itertuples():
        lines.append(f"  threshold at FPR {row.metric.removeprefix('threshold_at_fpr_')}: {row.note}")
    n2 = metrics[
        metrics.population.str.startswith("n2:") & metrics.metric.str.startswith("fpr_at_threshold_")
    ]
    measurable = n2[n2.value.notna()]
    if measurable.empty:
        lines.append("  FPR per N2 category: not measurable at any threshold on this split")
    for row in measurable.itertuples():
        lines.append(
            f"  FPR of {row.population} at the FPR {row.metric.removeprefix('fpr_at_threshold_')} threshold: "
            f"{row.value:.4f} [{row.ci_low:.4f}, {row.ci_high:.4f}] (n={row.n_neg})"
        )
    return "\n".join(lines)
