"""Tests of the shortcut audit (:mod:`stronglens.cutouts.audit`) and its plot
(:func:`stronglens.cutouts.plots.audit_png`).

The AUC is checked against brute-force pairwise comparison (ties count 1/2) on many small random and
tie-heavy samples, with and without bootstrap weights, and per scope; its rank invariances (monotone
transforms, mirroring) exactly; the bootstrap CI's coverage on data with a known AUC; determinism and
independence of the seeded streams; that a planted shortcut -- overall, in one split, in one N2
category, in one band -- is flagged where it is and nowhere else while null features are not; and the
handling of NaNs, empty classes and malformed input.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from stronglens.cutouts import audit, plots

N2 = ["ring_proxy", "edge_on_proxy", "blue_clumpy_proxy"]


def brute_auc(values: np.ndarray, positive: np.ndarray, weights: np.ndarray | None = None) -> float:
    """P(pos > neg) + P(pos = neg) / 2 over every weighted pair."""
    w = np.ones(values.size) if weights is None else weights.astype(float)
    p, q = values[positive], values[~positive]
    wp, wq = w[positive], w[~positive]
    score = (p[:, None] > q[None, :]) + 0.5 * (p[:, None] == q[None, :])
    total = wp.sum() * wq.sum()
    return float((score * wp[:, None] * wq[None, :]).sum() / total) if total > 0 else np.nan


def catalogue(rng: np.random.Generator, n: int, pos_frac: float = 0.1) -> pd.DataFrame:
    """Labels, splits and N2 categories (null = N1 for negatives) like the warehouse's."""
    label = (rng.random(n) < pos_frac).astype(np.int64)
    return pd.DataFrame(
        {
            "sample_id": np.arange(n),
            "label": label,
            "split": rng.choice(["train", "val", "test"], n, p=[0.7, 0.15, 0.15]),
            "n2_category": np.where(label == 0, rng.choice(np.array([None, *N2], dtype=object), n), None),
        }
    )


# --------------------------------------------------------------------------------------------------
# the AUC itself
# --------------------------------------------------------------------------------------------------


def test_auc_matches_brute_force_on_random_and_tied_samples() -> None:
    rng = np.random.default_rng(1)
    for trial in range(400):
        n = int(rng.integers(2, 60))
        kind = trial % 4
        if kind == 0:
            values = rng.normal(size=n)
        elif kind == 1:
            values = rng.integers(0, 4, n).astype(float)  # heavy ties
        elif kind == 2:
            values = np.full(n, 3.0)  # all tied: AUC 0.5 exactly
        else:
            values = np.r_[rng.normal(size=n - 2), -1e308, 1e308]
        positive = rng.random(n) < rng.uniform(0.05, 0.95)
        if positive.all() or not positive.any():
            assert np.isnan(audit.weighted_auc(values, positive)[0])
            continue
        assert audit.weighted_auc(values, positive)[0] == pytest.approx(
            brute_auc(values, positive), abs=1e-12
        )
        weights = rng.integers(0, 3, (5, n))
        got = audit.weighted_auc(values, positive, weights)
        expected = [brute_auc(values, positive, w) for w in weights]
        np.testing.assert_allclose(got, expected, atol=1e-12)


def test_huge_multiplicities_switch_to_64_bit_counts() -> None:
    rng = np.random.default_rng(13)
    values = rng.integers(0, 6, 40).astype(float)
    positive = np.arange(40) < 10
    weights = rng.integers(0, 3, (3, 40)) * np.array([[1], [10**8], [10**9]])  # row 2 overflows int32
    expected = [brute_auc(values, positive, w) for w in weights]
    np.testing.assert_allclose(audit.weighted_auc(values, positive, weights), expected, rtol=1e-12)


def test_auc_equals_mann_whitney_u_statistic() -> None:
    rng = np.random.default_rng(2)
    values = np.round(rng.normal(size=3000), 1)
    positive = rng.random(3000) < 0.03
    u = stats.mannwhitneyu(values[positive], values[~positive]).statistic
    expected = u / (positive.sum() * (~positive).sum())
    assert audit.weighted_auc(values, positive)[0] == pytest.approx(expected, abs=1e-12)
    # a majority of positives takes the other branch (positives sorted, negatives searched)
    assert audit.weighted_auc(values, ~positive)[0] == pytest.approx(1 - expected, abs=1e-12)


def test_weighted_auc_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="finite"):
        audit.weighted_auc(np.array([0.0, np.nan]), np.array([True, False]))
    with pytest.raises(ValueError, match="integer"):
        audit.weighted_auc(np.array([0.0, 1.0]), np.array([True, False]), np.ones((2, 2)))
    with pytest.raises(ValueError, match="do not match"):
        audit.weighted_auc(np.array([0.0, 1.0]), np.array([True, False]), np.ones((2, 3), int))


def test_stratified_bootstrap_keeps_class_sizes() -> None:
    rng = np.random.default_rng(3)
    positive = rng.random(500) < 0.1
    weights = audit.stratified_bootstrap_weights(positive, 50, np.random.default_rng(0))
    assert weights.shape == (50, 500) and weights.min() >= 0
    np.testing.assert_array_equal(weights[:, positive].sum(axis=1), positive.sum())
    np.testing.assert_array_equal(weights[:, ~positive].sum(axis=1), (~positive).sum())
    assert weights.mean() == pytest.approx(1.0) and weights.var() == pytest.approx(1.0, rel=0.1)


# --------------------------------------------------------------------------------------------------
# the audit table
# --------------------------------------------------------------------------------------------------


def test_point_aucs_per_scope_match_brute_force() -> None:
    rng = np.random.default_rng(4)
    frame = catalogue(rng, 400, 0.2)
    frame["f_cont"] = rng.normal(size=400) + 0.5 * frame["label"]
    frame["f_int"] = rng.integers(0, 5, 400)
    result = audit.shortcut_audit(frame, n_boot=20, seed=0)
    assert list(result.columns) == list(audit.AUDIT_COLUMNS)
    assert set(result["feature"]) == {"f_cont", "f_int"}  # sample_id excluded by default
    assert result["band"].isna().all()
    expected_scopes = [("all", "all"), ("split", "test"), ("split", "train"), ("split", "val"),
                       ("negative_class", "N1"), *(("negative_class", c) for c in sorted(N2))]  # fmt: skip
    assert list(dict.fromkeys(zip(result["scope_kind"], result["scope"], strict=True))) == expected_scopes
    positive = frame["label"].to_numpy() == 1
    masks = {
        "all": np.ones(400, bool),
        **{s: (frame["split"] == s).to_numpy() for s in ("train", "val", "test")},
        "N1": positive | (~positive & frame["n2_category"].isna().to_numpy()),
        **{c: positive | (frame["n2_category"] == c).to_numpy() for c in N2},
    }
    for row in result.itertuples():
        mask = masks[row.scope]
        values = frame[row.feature].to_numpy(dtype=float)[mask]
        assert row.auc == pytest.approx(brute_auc(values, positive[mask]), abs=1e-12)
        assert (row.n_pos, row.n_neg) == (positive[mask].sum(), (~positive[mask]).sum())


def test_rank_invariances_are_exact() -> None:
    rng = np.random.default_rng(5)
    frame = catalogue(rng, 600)
    frame["x"] = rng.normal(size=600) + 0.3 * frame["label"]
    frame["exp_x"] = np.exp(frame["x"])
    frame["minus_x"] = -frame["x"]
    result = audit.shortcut_audit(frame, ["x", "exp_x", "minus_x"], n_boot=100, seed=7)
    x, e, m = (result[result["feature"] == f].reset_index(drop=True) for f in ("x", "exp_x", "minus_x"))
    pd.testing.assert_frame_equal(x.drop(columns="feature"), e.drop(columns="feature"))
    np.testing.assert_allclose(m["auc"], 1 - x["auc"], atol=1e-12)
    np.testing.assert_allclose(m["auc_lo"], 1 - x["auc_hi"], atol=1e-12)
    np.testing.assert_allclose(m["auc_hi"], 1 - x["auc_lo"], atol=1e-12)


def test_bootstrap_ci_covers_the_true_auc() -> None:
    """300 independent data sets with a known AUC, Phi(d / sqrt 2) for unit Gaussians d apart: the
    95% percentile interval should cover it about 95% of the time (binomial sd ~1.3%)."""
    rng = np.random.default_rng(6)
    n_pos, n_neg, reps, d = 80, 400, 300, 0.6
    label = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    columns = {f"x{k}": rng.normal(size=n_pos + n_neg) + d * label for k in range(reps)}
    frame = pd.DataFrame({"label": label, **columns})
    result = audit.shortcut_audit(frame, split_column=None, n2_column=None, n_boot=300, seed=11)
    truth = stats.norm.cdf(d / np.sqrt(2))
    coverage = ((result["auc_lo"] <= truth) & (truth <= result["auc_hi"])).mean()
    assert 0.90 <= coverage <= 0.985, coverage
    # the width matches the standard error of the AUC (Hanley & McNeil 1982) to ~15%
    q1, q2 = truth / (2 - truth), 2 * truth**2 / (1 + truth)
    se = np.sqrt(
        (truth * (1 - truth) + (n_pos - 1) * (q1 - truth**2) + (n_neg - 1) * (q2 - truth**2))
        / (n_pos * n_neg)
    )
    width = (result["auc_hi"] - result["auc_lo"]).mean()
    assert width == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_determinism_and_independent_streams() -> None:
    rng = np.random.default_rng(7)
    frame = catalogue(rng, 800)
    frame["a"] = rng.normal(size=800)
    frame["b"] = rng.normal(size=800)
    first = audit.shortcut_audit(frame, ["a"], n_boot=50, seed=3)
    pd.testing.assert_frame_equal(first, audit.shortcut_audit(frame, ["a"], n_boot=50, seed=3))
    other = audit.shortcut_audit(frame, ["a"], n_boot=50, seed=4)
    np.testing.assert_array_equal(other["auc"], first["auc"])  # the point estimate has no randomness
    assert not np.array_equal(other["auc_lo"], first["auc_lo"])
    # another feature, or dropping the N2 scopes, leaves every other number unchanged
    both = audit.shortcut_audit(frame, ["a", "b"], n_boot=50, seed=3)
    pd.testing.assert_frame_equal(both[both["feature"] == "a"].reset_index(drop=True), first)
    fewer = audit.shortcut_audit(frame, ["a"], n2_column=None, n_boot=50, seed=3)
    pd.testing.assert_frame_equal(fewer, first[first["scope_kind"] != "negative_class"])


def test_planted_shortcuts_are_flagged_where_they_are() -> None:
    """Positives 20% brighter (0.18 in log against a 0.15 scatter: AUC ~0.8) are flagged everywhere;
    a null feature nowhere; a shortcut confined to the ring_proxy confusers or to the test split only
    in that scope."""
    rng = np.random.default_rng(8)
    n = 20_000
    frame = catalogue(rng, n, pos_frac=0.02)
    positive = frame["label"].to_numpy() == 1
    frame["core_flux"] = np.exp(rng.normal(np.log(10.0), 0.15, n)) * np.where(positive, 1.2, 1.0)
    frame["null"] = np.exp(rng.normal(np.log(10.0), 0.15, n))
    frame["ring_only"] = rng.normal(size=n) - 1.5 * (frame["n2_category"] == "ring_proxy")
    frame["test_only"] = rng.normal(size=n) + 1.5 * (positive & (frame["split"] == "test"))
    result = audit.shortcut_audit(frame, n_boot=200, seed=1).set_index(["feature", "scope"])
    brighter = result.loc["core_flux"]
    assert brighter["flagged"].all() and (brighter["auc"] > 0.75).all()
    assert brighter["note"].str.startswith("SHORTCUT: positives higher").all()
    null = result.loc["null"]
    assert not null["flagged"].any() and (null["auc_lo"] < 0.5 + 0.2).all()
    assert (null["auc"] - 0.5).abs().max() < 0.1
    ring = result.loc["ring_only"]
    assert ring["flagged"].to_dict() == {s: s == "ring_proxy" for s in ring.index}
    assert ring.loc["ring_proxy", "auc"] > 0.8  # ring confusers lower -> positives higher
    test = result.loc["test_only"]
    assert test["flagged"].to_dict() == {s: s == "test" for s in test.index}


def test_long_form_audits_each_band_on_its_own_rows() -> None:
    rng = np.random.default_rng(9)
    base = catalogue(rng, 3000)
    frames = []
    for band in "grz":
        part = base.copy()
        part["band"] = band
        part["mad"] = rng.normal(size=3000) + (1.5 * part["label"] if band == "z" else 0.0)
        frames.append(part)
    long = pd.concat(frames, ignore_index=True)
    result = audit.shortcut_audit(long, n_boot=50, seed=2)
    assert list(dict.fromkeys(result["band"])) == ["g", "r", "z"]
    flagged = result[result["flagged"]]
    assert set(flagged["band"]) == {"z"} and len(flagged) == len(result) // 3
    assert (result.groupby("band")["n_pos"].max() == base["label"].sum()).all()


def test_nan_values_empty_classes_and_small_scopes() -> None:
    rng = np.random.default_rng(10)
    frame = catalogue(rng, 500, pos_frac=0.2)
    frame.loc[frame["split"] == "val", "label"] = 0  # val: no positives
    frame.loc[:22, "split"] = "tiny"  # 3 positives, 20 negatives
    frame.loc[:22, "label"] = np.r_[1, 1, 1, np.zeros(20, int)]
    frame["x"] = rng.normal(size=500)
    frame.loc[30::7, "x"] = np.nan
    frame.loc[31, "x"] = np.inf
    result = audit.shortcut_audit(frame, ["x"], n_boot=30, seed=0).set_index("scope")
    keep = np.isfinite(frame["x"].to_numpy())
    positive = frame["label"].to_numpy() == 1
    assert result.loc["all", "auc"] == pytest.approx(brute_auc(frame["x"].to_numpy()[keep], positive[keep]))
    assert result.loc["all", "n_pos"] + result.loc["all", "n_neg"] == keep.sum()
    assert result.loc["all", "note"].endswith(f"; {(~keep).sum()} non-finite values left out")
    val = result.loc["val"]
    assert np.isnan(val["auc"]) and np.isnan(val["auc_lo"]) and not val["flagged"]
    assert val["note"].startswith("no positives in scope")
    tiny = result.loc["tiny"]
    assert (tiny["n_pos"], tiny["n_neg"]) == (3, 20) and np.isfinite(tiny["auc_lo"])
    assert tiny["note"].endswith("; fewer than 10 rows in a class: CI unreliable")


def test_default_features_and_input_errors() -> None:
    rng = np.random.default_rng(11)
    frame = catalogue(rng, 100)
    frame["x"] = rng.normal(size=100)
    frame["is_usable"] = True  # booleans are not features
    frame["galaxy_id"] = np.arange(100) + 10**15  # nor identifiers
    frame["text"] = "a"
    assert set(audit.shortcut_audit(frame, n_boot=5)["feature"]) == {"x"}
    with pytest.raises(ValueError, match="'label' must be 0 or 1 on every row; 1 rows"):
        audit.shortcut_audit(frame.assign(label=np.r_[2, frame["label"].to_numpy()[1:]]), n_boot=5)
    with pytest.raises(ValueError, match="must be 0 or 1"):
        audit.shortcut_audit(frame.assign(label=np.r_[np.nan, frame["label"].to_numpy()[1:]]), n_boot=5)
    with pytest.raises(ValueError, match="no label column 'is_lens'"):
        audit.shortcut_audit(frame, label_column="is_lens", n_boot=5)
    with pytest.raises(ValueError, match="no column 'split'"):
        audit.shortcut_audit(frame.drop(columns="split"), n_boot=5)
    with pytest.raises(ValueError, match=r"missing \['nope'\], not numeric \['text'\]"):
        audit.shortcut_audit(frame, ["x", "nope", "text"], n_boot=5)
    with pytest.raises(ValueError, match="'band' has nulls on 1 rows"):
        audit.shortcut_audit(frame.assign(band=["g"] * 99 + [None]), n_boot=5)
    with pytest.raises(ValueError, match="flag_threshold"):
        audit.shortcut_audit(frame, flag_threshold=0.0)
    with pytest.raises(ValueError, match="no numeric feature columns"):
        audit.shortcut_audit(frame[["label", "split", "n2_category", "text"]])


# --------------------------------------------------------------------------------------------------
# plot
# --------------------------------------------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_audit_png_is_written_and_grows_with_the_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    frame = catalogue(rng, 2000)
    for k in range(6):
        frame[f"f{k}"] = rng.normal(size=2000) + (1.2 * frame["label"] if k == 2 else 0.0)
    result = audit.shortcut_audit(frame, n_boot=50, seed=0)
    small = plots.audit_png(result[result["feature"].isin(["f0", "f1"])], tmp_path / "small.png", dpi=60)
    large = plots.audit_png(result, tmp_path / "deep" / "large.png", dpi=60)
    (w_small, h_small), (w_large, h_large) = png_size(small), png_size(large)
    assert w_small == w_large == round((3.0 + 4.2 * 3) * 60)
    assert abs((h_large - h_small) - 4 * 0.24 * 60) <= 1  # 0.24 inch per (feature, band) row
    assert 10_000 < large.stat().st_size < 2_000_000
    only_all = plots.audit_png(result[result["scope_kind"] == "all"], tmp_path / "all.png", dpi=60)
    assert png_size(only_all)[0] == round((3.0 + 4.2) * 60)
    with pytest.raises(ValueError, match=r"lacks columns \['auc_hi', 'auc_lo'\]"):
        plots.audit_png(result.drop(columns=["auc_lo", "auc_hi"]), tmp_path / "x.png")
    with pytest.raises(ValueError, match="empty"):
        plots.audit_png(result.iloc[:0], tmp_path / "x.png")


def test_flags_need_the_whole_interval_past_the_threshold_and_spare_signal_features() -> None:
    """A modest shift (AUC ~0.62) is flagged with 2,000 positives but not with 30, where its interval
    reaches back past 0.6; a signal feature separating the classes completely is reported, not flagged."""
    rng = np.random.default_rng(21)
    for n_pos, expect in ((2_000, True), (30, False)):
        n = 4 * n_pos
        positive = np.arange(n) < n_pos
        frame = pd.DataFrame(
            {
                "label": positive.astype(int),
                "shift": rng.normal(size=n) + 0.43 * positive,
                "annulus_colour_excess": rng.normal(size=n) - 5.0 * positive,
            }
        )
        result = audit.shortcut_audit(
            frame,
            split_column=None,
            n2_column=None,
            n_boot=300,
            seed=2,
            signal_features=["annulus_colour_excess"],
        ).set_index("feature")
        assert bool(result.loc["shift", "flagged"]) is expect, result.loc["shift"].to_dict()
        signal = result.loc["annulus_colour_excess"]
        assert signal["is_signal"] and not signal["flagged"] and signal["auc"] < 0.05


def test_arc_free_twins_tell_the_arc_from_a_host_shortcut() -> None:
    """Positives differ from negatives in two features: ``arc_only`` through their arcs (their twins
    look like negatives) and ``host_only`` through their hosts (the twins differ too). The twins'
    audit flags only the host one; the arc one stays flagged with arcs and is marked arc-driven."""
    import pyarrow as pa

    from stronglens.cutouts.reports import audit_table

    rng = np.random.default_rng(3)
    n_pos, n_neg = 400, 1600
    ids = [f"p{i}" for i in range(n_pos)] + [f"n{i}" for i in range(n_neg)]

    def qa(arc_shift: float) -> pa.Table:
        shift = np.r_[np.full(n_pos, 1.0), np.zeros(n_neg)]
        return pa.table(
            {
                "sample_id": ids,
                "band": ["r"] * len(ids),
                "arc_only": rng.normal(size=len(ids)) + arc_shift * shift,
                "host_only": rng.normal(size=len(ids)) + shift,
                "is_usable": [True] * len(ids),
                "unusable_reason": pa.nulls(len(ids), pa.string()),
            }
        )

    manifest = pa.table(
        {
            "sample_id": ids,
            "label": ["positive"] * n_pos + ["negative"] * n_neg,
            "split": rng.choice(["train", "val", "test"], size=len(ids)).tolist(),
            "n2_category": [None] * len(ids),
        }
    )
    with_arcs = qa(arc_shift=1.0)
    twins = qa(arc_shift=0.0).slice(0, n_pos)
    out = audit_table(with_arcs, manifest, n_boot=100, seed=0, flag_threshold=0.1, arc_free_qa=twins)
    row = out.set_index(["feature", "scope_kind", "scope"])
    assert row.loc[("arc_only", "all", "all"), "flagged"]
    assert row.loc[("arc_only", "all", "all"), "arc_driven"]
    assert row.loc[("arc_only", "all", "all"), "note"].startswith("ARC-DRIVEN")
    assert row.loc[("host_only", "all", "all"), "flagged"]
    assert not row.loc[("host_only", "all", "all"), "arc_driven"]
    assert row.loc[("host_only", "arc_free", "all"), "flagged"]
    assert not row.loc[("arc_only", "arc_free", "all"), "flagged"]
    assert row.loc[("arc_only", "negative_class", "N1"), "arc_driven"]
    without = audit_table(with_arcs, manifest, n_boot=100, seed=0, flag_threshold=0.1)
    assert "arc_free" not in set(without["scope_kind"]) and without["arc_driven"].isna().all()


def test_audit_table_does_not_depend_on_the_row_order_of_its_inputs() -> None:
    """The warehouse returns cutout_qa in scan order, which differs between builds: the bootstrap
    intervals (and so a flag near the threshold) must not follow it."""
    import pyarrow as pa

    from stronglens.cutouts.reports import audit_table

    rng = np.random.default_rng(11)
    n = 600
    ids = [f"s{i:04d}" for i in range(n)]
    label = rng.random(n) < 0.25
    qa = pa.table(
        {
            "sample_id": np.repeat(ids, 3).tolist(),
            "band": ["g", "r", "z"] * n,
            "feature": rng.normal(size=3 * n) + 0.4 * np.repeat(label, 3),
            "is_usable": [True] * (3 * n),
            "unusable_reason": pa.nulls(3 * n, pa.string()),
        }
    )
    manifest = pa.table(
        {
            "sample_id": ids,
            "label": np.where(label, "positive", "negative").tolist(),
            "split": rng.choice(["train", "val", "test"], size=n).tolist(),
            "n2_category": [None] * n,
        }
    )
    shuffled = qa.take(rng.permutation(3 * n))
    expected = audit_table(qa, manifest, n_boot=200, seed=0, flag_threshold=0.1)
    got = audit_table(shuffled, manifest.take(rng.permutation(n)), n_boot=200, seed=0, flag_threshold=0.1)
    pd.testing.assert_frame_equal(got, expected)
