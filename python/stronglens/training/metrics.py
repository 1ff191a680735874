"""Evaluation metrics of a lens finder, with intervals and an honest "not measurable".

Why fixed-FPR metrics: the negative:positive ratio barely moves the AUC but sets the operating point,
and a survey runs a finder at a fixed false-positive budget.  A threshold "at FPR 1e-3" is the score
above which 1e-3 of the negatives lie; with n_neg negatives that is k = floor(1e-3 n_neg) of them,
and a threshold pinned by fewer than ``min_negatives_above`` (10) negatives is noise (+-10 recall
points), so such a recall is reported as ``None`` with the reason, never as a number.

All functions are vectorised numpy; the bootstrap draws its resamples as one index matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata

#: The z of a two-sided 95% interval.
Z95 = float(norm.ppf(0.975))


@dataclass(frozen=True)
class Measure:
    """One metric value with its 95% interval, or ``value=None`` and the reason it is not measurable."""

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    reason: str | None = None


def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied scores counted half)."""
    n_pos, n_neg = len(pos), len(neg)
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUC needs both classes (got {n_pos} positives, {n_neg} negatives)")
    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc_with_ci(pos: np.ndarray, neg: np.ndarray, n_boot: int = 200, seed: int = 42) -> Measure:
    """AUC with a percentile bootstrap 95% interval (positives and negatives resampled separately)."""
    if len(pos) == 0 or len(neg) == 0:
        return Measure(None, reason=f"needs both classes ({len(pos)} positives, {len(neg)} negatives)")
    value = roc_auc(pos, neg)
    rng = np.random.default_rng(seed)
    pos_draw = pos[rng.integers(0, len(pos), size=(n_boot, len(pos)))]
    neg_draw = neg[rng.integers(0, len(neg), size=(n_boot, len(neg)))]
    # AUC of each resample = P(pos > neg) + P(tie)/2, from the ranks of the positives among the
    # negatives: searchsorted over the sorted negatives of each resample.
    neg_sorted = np.sort(neg_draw, axis=1)
    # Shift each resample's values into its own disjoint interval, so one sorted array serves all.
    span = float(max(pos.max(), neg.max()) - min(pos.min(), neg.min())) + 1.0
    offsets = (np.arange(n_boot) * span)[:, None]
    flat_neg = (neg_sorted + offsets).ravel()
    shifted = pos_draw + offsets
    below = np.searchsorted(flat_neg, shifted, side="left") - np.arange(n_boot)[:, None] * len(neg)
    below_eq = np.searchsorted(flat_neg, shifted, side="right") - np.arange(n_boot)[:, None] * len(neg)
    boot = (below + 0.5 * (below_eq - below)).sum(axis=1) / (len(pos) * len(neg))
    low, high = np.percentile(boot, [2.5, 97.5])
    return Measure(value, float(low), float(high))


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion k/n."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * np.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))


def proportion(k: int, n: int) -> Measure:
    """k/n with its Wilson interval (not measurable when n = 0)."""
    if n == 0:
        return Measure(None, reason="no samples in this population")
    low, high = wilson(k, n)
    return Measure(k / n, low, high)


@dataclass(frozen=True)
class Threshold:
    """A score threshold at a target FPR: ``score`` (None when not measurable) and how many of the
    ``n_neg`` negatives lie above it."""

    fpr: float
    score: float | None
    n_above: int
    n_neg: int
    reason: str | None = None


def threshold_at_fpr(neg: np.ndarray, fpr: float, min_above: int = 10) -> Threshold:
    """The score above which floor(fpr * n_neg) negatives lie, if that is at least ``min_above``."""
    n_neg = len(neg)
    k = int(np.floor(fpr * n_neg + 1e-9))
    if k < min_above:
        return Threshold(
            fpr,
            None,
            k,
            n_neg,
            f"only {k} of {n_neg} negatives would lie above the FPR {fpr:g} threshold; at least "
            f"{min_above} are needed (>= {int(np.ceil(min_above / fpr)):,} negatives)",
        )
    ordered = np.sort(neg)[::-1]
    return Threshold(fpr, float(ordered[k]), k, n_neg)


def recall_above(pos: np.ndarray, threshold: Threshold) -> Measure:
    """Share of positives scoring above the threshold, with its Wilson interval."""
    if threshold.score is None:
        return Measure(None, reason=threshold.reason)
    return proportion(int((pos > threshold.score).sum()), len(pos))


def fpr_above(neg: np.ndarray, threshold: Threshold) -> Measure:
    """Share of (a subset of) negatives scoring above the threshold -- which confusers fool it."""
    if threshold.score is None:
        return Measure(None, reason=threshold.reason)
    return proportion(int((neg > threshold.score).sum()), len(neg))


def tpr_at_false_positives(pos: np.ndarray, neg: np.ndarray, n_false: int) -> Measure:
    """Recall before the (n_false + 1)-th false positive: TPR0 (n_false = 0), TPR10 (n_false = 9,
    fewer than 10 false positives) of the lens-finding challenge."""
    if len(neg) <= n_false:
        return Measure(None, reason=f"needs more than {n_false} negatives (got {len(neg)})")
    if len(pos) == 0:
        return Measure(None, reason="no positives in this population")
    cut = np.sort(neg)[::-1][n_false]
    return proportion(int((pos > cut).sum()), len(pos))


def reliability(scores: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Reliability curve: per equal-width score bin, count, mean score and observed positive share."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    score_sum = np.bincount(which, weights=scores, minlength=n_bins)
    pos_sum = np.bincount(which, weights=labels.astype(float), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "edges": edges,
            "count": count,
            "mean_score": score_sum / count,
            "positive_share": pos_sum / count,
        }


def expected_calibration_error(scores: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> Measure:
    """ECE: count-weighted mean |observed positive share - mean score| over the reliability bins.

    Measured on the evaluated class mix; with ~1:100 negatives it is dominated by the negatives, so
    read it with the reliability curve."""
    if len(scores) == 0:
        return Measure(None, reason="no samples")
    curve = reliability(scores, labels, n_bins)
    filled = curve["count"] > 0
    gap = np.abs(curve["positive_share"][filled] - curve["mean_score"][filled])
    return Measure(float((gap * curve["count"][filled]).sum() / len(scores)))
