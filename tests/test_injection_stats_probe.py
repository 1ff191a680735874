"""Completeness intervals, thresholds and the realism probe."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from stronglens.injection import stats
from stronglens.injection.probe import auc, fit_logistic, realism_probe
from stronglens.injection.scoring import threshold_name, thresholds


def test_wilson_interval_known_values_and_edges() -> None:
    lo, hi = stats.wilson_interval(np.array([0, 5, 100, 10]), np.array([10, 10, 200, 10]))
    # Wilson (1927) score interval, z = 1.959964: 0/10 -> [0, 0.2775], 5/10 -> [0.2366, 0.7634]
    np.testing.assert_allclose(lo[:2], [0.0, 0.236593], atol=1e-5)
    np.testing.assert_allclose(hi[:2], [0.277534, 0.763407], atol=1e-5)
    assert hi[2] - lo[2] == pytest.approx(2 * 0.0688, abs=2e-3)  # DOMAIN.md: n = 200, C ~ 0.5: +-7 points
    assert hi[3] == pytest.approx(1.0)
    lo, hi = stats.wilson_interval(0, 0)
    assert np.isnan(lo) and np.isnan(hi)


def test_jeffreys_interval_is_the_beta_posterior() -> None:
    k, n = np.array([0, 3, 50, 20]), np.array([20, 20, 200, 20])
    lo, hi = stats.jeffreys_interval(k, n, 0.68)
    np.testing.assert_allclose(lo[1:3], sps.beta.ppf(0.16, k[1:3] + 0.5, n[1:3] - k[1:3] + 0.5))
    np.testing.assert_allclose(hi[:3], sps.beta.ppf(0.84, k[:3] + 0.5, n[:3] - k[:3] + 0.5))
    assert lo[0] == 0.0 and hi[3] == 1.0


def test_group_completeness_and_long_table() -> None:
    group = np.array([0, 0, 1, 1, 1, -1])
    rec = np.array([[True, False], [False, False], [True, True], [True, False], [False, False], [True, True]])
    n_inj, n_rec = stats.group_completeness(group, 3, rec)
    np.testing.assert_array_equal(n_inj, [2, 3, 0])
    np.testing.assert_array_equal(n_rec, [[1, 0], [2, 1], [0, 0]])
    bounds = (np.zeros((3, 2)), np.ones((3, 2)))
    table = stats.long_table({"cell_id": np.arange(3)}, ["a", "b"], n_inj, n_rec, bounds).to_pandas()
    assert (table.host_boot95_low == 0).all() and (table.host_boot95_high == 1).all()
    assert len(table) == 6
    assert table.loc[
        (table.cell_id == 1) & (table.threshold_name == "a"), "completeness"
    ].item() == pytest.approx(2 / 3)
    assert table.loc[table.cell_id == 2, "completeness"].isna().all()
    np.testing.assert_array_equal(
        stats.bin_edges_index([0.5, 1.0, 3.0, np.nan, -1], [0, 1, 2]), [0, 1, -1, -1, -1]
    )


def test_host_bootstrap_interval_carries_between_host_variance() -> None:
    """Two cells of 400 injections on 40 hosts, both at completeness 0.1: in one every host recovers
    10% of its arcs, in the other 4 hosts recover everything and 36 nothing. Wilson cannot tell them
    apart; the host bootstrap must be about as wide as Wilson for the first and much wider for the
    second, contain the point value, and be reproducible from its seed."""
    rng = np.random.default_rng(0)
    host = np.tile(np.repeat(np.arange(40), 10), 2)
    group = np.repeat([0, 1], 400)
    even = rng.permutation(np.tile(np.r_[True, np.zeros(9, bool)], 40))
    lumpy = np.repeat(np.arange(40) < 4, 10)
    rec = np.r_[even, lumpy][:, None]
    lo, hi = stats.host_bootstrap_interval(group, host + 100 * group, 3, rec, n_boot=1000, seed=1)
    w_lo, w_hi = stats.wilson_interval(40, 400)
    assert hi[0, 0] - lo[0, 0] == pytest.approx(w_hi - w_lo, rel=0.35)
    assert hi[1, 0] - lo[1, 0] > 2.5 * (w_hi - w_lo)
    assert (lo[:2, 0] <= 0.1).all() and (hi[:2, 0] >= 0.1).all()
    assert np.isnan(lo[2, 0]) and np.isnan(hi[2, 0])  # a group without injections
    again = stats.host_bootstrap_interval(group, host + 100 * group, 3, rec, n_boot=1000, seed=1)
    np.testing.assert_array_equal(again[0], lo)
    np.testing.assert_array_equal(again[1], hi)


def test_thresholds_from_validation_negatives() -> None:
    neg = np.linspace(0.0, 0.999, 1000)  # 1,000 distinct scores
    table = thresholds(neg, [1e-2, 1e-3], [0.5]).to_pandas().set_index("threshold_name")
    assert list(table.index) == [threshold_name("fpr", 1e-2), threshold_name("fpr", 1e-3), "p_0p5"]
    assert list(table.index)[:2] == ["fpr_1em02", "fpr_1em03"]
    assert table.loc["fpr_1em02", "n_negatives_above"] == 10
    assert table.loc["fpr_1em03", "n_negatives_above"] == 1
    assert table.loc["fpr_1em02", "achieved_fpr"] <= 1e-2
    assert table.loc["p_0p5", "n_negatives_above"] == (neg > 0.5).sum()
    few = thresholds(np.array([0.1, 0.2, 0.3]), [1e-3], []).to_pandas()
    assert few.n_negatives_above.item() == 0 and few.score_threshold.item() == 0.3  # pinned by the maximum
    with pytest.raises(ValueError, match="no validation negatives"):
        thresholds(np.array([]), [1e-2], [])


def test_auc_is_the_pairwise_probability() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random(300) < 0.3
    scores = rng.normal(labels * 0.8, 1.0).round(1)  # ties on purpose
    pos, neg = scores[labels], scores[~labels]
    pairwise = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert auc(labels, scores) == pytest.approx(pairwise)


def test_logistic_fit_recovers_a_known_model() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20000, 3))
    w_true = np.array([1.5, -2.0, 0.0])
    y = rng.random(20000) < 1 / (1 + np.exp(-(x @ w_true - 0.3)))
    w = fit_logistic(x, y, l2=1e-6)
    # balanced class weights shift only the intercept
    np.testing.assert_allclose(w[:3], w_true, atol=0.08)


def test_probe_separates_different_populations_and_not_identical_ones() -> None:
    rng = np.random.default_rng(2)
    real = rng.normal(0, 1, (60, 8))
    same = rng.normal(0, 1, (400, 8))
    shifted = rng.normal(0, 1, (400, 8)) + np.r_[1.5, np.zeros(7)]
    alike = realism_probe(real, same, n_folds=5, n_boot=200, seed=3)
    apart = realism_probe(real, shifted, n_folds=5, n_boot=200, seed=3)
    assert alike.auc_low < 0.5 + 0.02 < alike.auc_high or abs(alike.auc - 0.5) < 0.12
    assert apart.auc > 0.8 and apart.auc_low > 0.7
    assert apart.auc_low <= apart.auc <= apart.auc_high
    again = realism_probe(real, shifted, n_folds=5, n_boot=200, seed=3)
    assert again == apart  # seeded
    with pytest.raises(ValueError, match=">= 2 real"):
        realism_probe(real[:1], same)


def test_score_distributions_compare_at_matched_theta_e() -> None:
    from stronglens.injection.probe import score_distributions

    rng = np.random.default_rng(4)
    real_theta = rng.uniform(0.5, 3.0, 200)
    inj_theta = rng.choice([0.5, 1.0, 1.5, 2.0, 2.5, 3.0], 3000)
    rows = score_distributions(
        real_theta / 3, real_theta, inj_theta / 6, inj_theta, np.array([0.5, 1.5, 3.01])
    )
    by = {(r["population"], r["theta_e_low"]): r for r in rows}
    assert by[("real", 0.5)]["n"] == int(((real_theta >= 0.5) & (real_theta < 1.5)).sum())
    assert by[("injected", 1.5)]["n"] == int((inj_theta >= 1.5).sum())
    # the real scores are twice the injected ones at every theta_E: the medians say so bin by bin
    assert by[("real", 1.5)]["q50"] > by[("injected", 1.5)]["q50"]
    assert by[("injected", 0.5)]["q50"] == pytest.approx(np.median(inj_theta[inj_theta < 1.5] / 6))
