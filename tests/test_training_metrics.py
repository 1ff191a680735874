"""Finder metrics against independent references: scikit-learn's AUC, scipy's Wilson interval, and
hand-counted thresholds; "not measurable" below 10 negatives above a threshold."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score

from stronglens.training.metrics import (
    auc_with_ci,
    expected_calibration_error,
    recall_above,
    roc_auc,
    threshold_at_fpr,
    tpr_at_false_positives,
    wilson,
)


def test_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(1)
    pos = np.round(rng.uniform(0.2, 1.0, 300), 2)  # rounded: many ties
    neg = np.round(rng.uniform(0.0, 0.8, 2000), 2)
    ref = roc_auc_score(np.r_[np.ones(300), np.zeros(2000)], np.r_[pos, neg])
    assert roc_auc(pos, neg) == pytest.approx(ref, abs=1e-12)


def test_bootstrap_ci_brackets_the_auc_and_shrinks_with_n() -> None:
    rng = np.random.default_rng(2)
    small = auc_with_ci(rng.normal(1, 1, 30), rng.normal(0, 1, 300), n_boot=300)
    large = auc_with_ci(rng.normal(1, 1, 3000), rng.normal(0, 1, 3000), n_boot=300)
    assert small.ci_low < small.value < small.ci_high
    assert large.ci_low < large.value < large.ci_high
    assert (large.ci_high - large.ci_low) < (small.ci_high - small.ci_low) / 3
    # the vectorised bootstrap equals a plain loop over the same resamples
    pos, neg = rng.uniform(size=20), rng.uniform(size=50)
    boot_rng = np.random.default_rng(42)
    p_idx, n_idx = boot_rng.integers(0, 20, (100, 20)), boot_rng.integers(0, 50, (100, 50))
    loop = [roc_auc(pos[p], neg[n]) for p, n in zip(p_idx, n_idx, strict=True)]
    got = auc_with_ci(pos, neg, n_boot=100, seed=42)
    assert got.ci_low == pytest.approx(np.percentile(loop, 2.5))
    assert got.ci_high == pytest.approx(np.percentile(loop, 97.5))


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (45, 50), (500, 1000)])
def test_wilson_matches_scipy(k: int, n: int) -> None:
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson(k, n) == pytest.approx((ref.low, ref.high), abs=1e-9)


def test_threshold_needs_ten_negatives_above() -> None:
    neg = np.linspace(0, 1, 9_999)  # 1e-3 of 9,999 is 9.999 -> 9 negatives: not measurable
    t = threshold_at_fpr(neg, 1e-3)
    assert t.score is None and t.n_above == 9 and "at least 10" in t.reason
    assert recall_above(np.ones(5), t).value is None
    neg = np.arange(20_000) / 20_000.0
    t = threshold_at_fpr(neg, 1e-3)
    assert t.n_above == 20 and (neg > t.score).sum() == 20
    pos = np.array([0.9995, 0.9992, 0.5, 0.1])  # two above the 20th-highest negative (0.999)
    m = recall_above(pos, t)
    assert m.value == 0.5 and (m.ci_low, m.ci_high) == pytest.approx(wilson(2, 4))


def test_tpr0_and_tpr10() -> None:
    neg = np.arange(100) / 100.0  # highest 0.99, 10th highest 0.90
    pos = np.array([0.995, 0.95, 0.92, 0.5])
    assert tpr_at_false_positives(pos, neg, 0).value == 0.25
    assert tpr_at_false_positives(pos, neg, 9).value == 0.75


def test_ece_of_a_calibrated_and_a_miscalibrated_finder() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(size=200_000)
    labels = (rng.uniform(size=p.size) < p).astype(int)
    assert expected_calibration_error(p, labels).value < 0.01
    assert expected_calibration_error(np.full(1000, 0.9), np.zeros(1000)).value == pytest.approx(0.9)
