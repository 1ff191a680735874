"""The ``finder_metrics`` table: every metric of every run, split and population, with intervals.

Populations (positives vs negatives of one split; thresholds always come from *all* the split's
negatives, so "recall at FPR 1e-3" means the same operating point in every population):

* ``all``: every positive vs every negative;
* ``tier_A`` / ``tier_B``: that tier's positives vs every negative (recall per tier);
* ``n2:<category>`` (``n2:N1`` for ordinary galaxies): every positive vs that category's negatives --
  its ``fpr_at_threshold_*`` rows say which confusers fool the finder;
* ``type:<TYPE>``: positives and negatives of one Tractor type;
* ``theta_e:[lo,hi)``: positives whose ``lens_truth.theta_e_arcsec`` lies in the bin vs every
  negative (only when ``lens_truth`` exists).

Metrics: ``auc`` (bootstrap 95% CI); ``recall_at_fpr_<f>`` (Wilson CI) and ``fpr_at_threshold_<f>``
for each target FPR -- both null with the reason in ``note`` when fewer than ``min_negatives_above``
negatives lie above the threshold; ``threshold_at_fpr_<f>`` (the score; ``note`` says how many
negatives pin it); ``tpr0`` and ``tpr10``; ``ece`` for ``all``.  ``n_pos`` / ``n_neg`` are the
population's counts (for recalls, ``n_neg`` is the split's negatives that set the threshold).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd
import pyarrow as pa

from stronglens.training.metrics import (
    Measure,
    auc_with_ci,
    expected_calibration_error,
    fpr_above,
    recall_above,
    threshold_at_fpr,
    tpr_at_false_positives,
)

METRICS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("split", pa.string()),
        pa.field("population", pa.string()),
        pa.field("metric", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("ci_low", pa.float64()),
        pa.field("ci_high", pa.float64()),
        pa.field("n_pos", pa.int64()),
        pa.field("n_neg", pa.int64()),
        pa.field("note", pa.string()),
    ]
)


@dataclass(frozen=True)
class MetricSettings:
    fpr_levels: Sequence[float] = (1e-2, 1e-3, 1e-4)
    min_negatives_above: int = 10
    n_boot: int = 200
    theta_e_bins: Sequence[float] = (0.0, 0.75, 1.0, 1.5, 2.0, 3.0)
    calibration_bins: int = 10
    seed: int = 42


def labelled_scores(scores: pa.Table, manifest: pa.Table, lens_truth: pa.Table | None) -> pd.DataFrame:
    """Scores joined to the manifest's label, tier, N2 category and type (+ theta_E when known)."""
    frame = scores.to_pandas().merge(
        manifest.select(["sample_id", "label", "tier", "n2_category", "type"]).to_pandas(),
        on="sample_id",
        how="inner",
        validate="many_to_one",
    )
    if lens_truth is not None and "theta_e_arcsec" in lens_truth.column_names:
        truth = lens_truth.select(["sample_id", "theta_e_arcsec"]).to_pandas().astype({"sample_id": str})
        frame = frame.merge(truth.drop_duplicates("sample_id"), on="sample_id", how="left")
    return frame


def populations(
    frame: pd.DataFrame, theta_e_bins: Sequence[float]
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, positive mask, negative mask) of every population present in one split's frame."""
    pos, neg = (frame["label"] == 1).to_numpy(), (frame["label"] == 0).to_numpy()
    out = [("all", pos, neg)]
    for tier in ("A", "B"):
        out.append((f"tier_{tier}", pos & (frame["tier"] == tier).to_numpy(), neg))
    for category in sorted(frame.loc[neg, "n2_category"].dropna().unique()):
        out.append((f"n2:{category}", pos, neg & (frame["n2_category"] == category).to_numpy()))
    for kind in sorted(frame["type"].dropna().unique()):
        is_type = (frame["type"] == kind).to_numpy()
        out.append((f"type:{kind}", pos & is_type, neg & is_type))
    if "theta_e_arcsec" in frame.columns:
        theta = frame["theta_e_arcsec"].to_numpy(dtype=float)
        for lo, hi in pairwise(theta_e_bins):
            out.append((f"theta_e:[{lo:g},{hi:g})", pos & (theta >= lo) & (theta < hi), neg))
    return out


def _row(
    run: str, split: str, pop: str, metric: str, m: Measure, n_pos: int, n_neg: int, note: str | None = None
) -> dict:
    return {
        "run_id": run,
        "split": split,
        "population": pop,
        "metric": metric,
        "value": m.value,
        "ci_low": m.ci_low,
        "ci_high": m.ci_high,
        "n_pos": n_pos,
        "n_neg": n_neg,
        "note": note or m.reason,
    }


def split_metrics(run: str, split: str, frame: pd.DataFrame, settings: MetricSettings) -> list[dict]:
    """Every metric row of one run and split."""
    score = frame["score"].to_numpy(dtype=float)
    all_neg = score[(frame["label"] == 0).to_numpy()]
    thresholds = [threshold_at_fpr(all_neg, f, settings.min_negatives_above) for f in settings.fpr_levels]
    rows = []
    for t in thresholds:
        note = t.reason or f"{t.n_above} of {t.n_neg} negatives above"
        rows.append(
            _row(run, split, "all", f"threshold_at_fpr_{t.fpr:g}", Measure(t.score), 0, t.n_neg, note)
        )
    for name, pos_mask, neg_mask in populations(frame, settings.theta_e_bins):
        pos, neg = score[pos_mask], score[neg_mask]
        n_pos, n_neg = len(pos), len(neg)
        rows.append(
            _row(run, split, name, "auc", auc_with_ci(pos, neg, settings.n_boot, settings.seed), n_pos, n_neg)
        )
        for t in thresholds:
            if n_pos:
                rows.append(
                    _row(run, split, name, f"recall_at_fpr_{t.fpr:g}", recall_above(pos, t), n_pos, t.n_neg)
                )
            if n_neg and not name.startswith(("tier_", "theta_e:")):  # those share the split's negatives
                rows.append(
                    _row(run, split, name, f"fpr_at_threshold_{t.fpr:g}", fpr_above(neg, t), 0, n_neg)
                )
        if n_pos:
            rows.append(
                _row(run, split, name, "tpr0", tpr_at_false_positives(pos, all_neg, 0), n_pos, len(all_neg))
            )
            rows.append(
                _row(run, split, name, "tpr10", tpr_at_false_positives(pos, all_neg, 9), n_pos, len(all_neg))
            )
    labels = frame["label"].to_numpy()
    rows.append(
        _row(
            run,
            split,
            "all",
            "ece",
            expected_calibration_error(score, labels, settings.calibration_bins),
            int((labels == 1).sum()),
            int((labels == 0).sum()),
        )
    )
    return rows


def metrics_table(
    scores: pa.Table, manifest: pa.Table, lens_truth: pa.Table | None, settings: MetricSettings
) -> pa.Table:
    """``finder_metrics`` for every run and split in ``scores``."""
    if scores.num_rows == 0:
        return METRICS_SCHEMA.empty_table()
    frame = labelled_scores(scores, manifest, lens_truth)
    rows: list[dict] = []
    for (run, split), part in frame.groupby(["run_id", "split"], sort=True):
        rows.extend(split_metrics(str(run), str(split), part, settings))
    return pa.Table.from_pylist(rows, schema=METRICS_SCHEMA)


def finder_metrics_model(
    runs: pa.Table,
    scores: pa.Table,
    manifest: pa.Table,
    lens_truth: pa.Table | None,
    settings_json: str,
    report_dir: str,
) -> pa.Table:
    """What the ``finder_metrics`` model does: metrics of every run, then its PNG reports.

    ``lens_truth`` (the synthetic positives' theta_E; empty for real-data sources, then passed as
    None) adds the theta_E populations."""
    from stronglens.training.reports import write_reports
    from stronglens.training.runs import settings_from_json

    finder = settings_from_json(settings_json)
    settings = MetricSettings(
        fpr_levels=finder.fpr_levels,
        min_negatives_above=finder.min_negatives_above,
        n_boot=finder.n_boot,
        theta_e_bins=finder.theta_e_bins,
        calibration_bins=finder.calibration_bins,
        seed=finder.configs[0].seed,
    )
    truth = lens_truth if lens_truth is not None and lens_truth.num_rows else None
    table = metrics_table(scores, manifest, truth, settings)
    if table.num_rows:
        frame = labelled_scores(scores, manifest, None)
        write_reports(
            frame,
            table.to_pandas(),
            runs.to_pandas(),
            manifest.to_pandas(),
            report_dir,
            finder.gallery_size,
            finder.calibration_bins,
            finder.options.cutout_root,
            finder.options.cutout_size,
        )
    return table
