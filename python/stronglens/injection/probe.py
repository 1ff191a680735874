"""The realism gate: can a linear probe on the finder's embeddings tell real lenses from injections?

If a logistic regression on the penultimate-layer embeddings separates real positives from
injected arcs (AUC well above 0.5), the finder sees the injections as a different population and
completeness measured on them is only a lower bound for real lenses.  Logistic regression with a
small L2 penalty is fitted by Newton's method (exact, a few iterations for ~100 features) on
standardised features; the AUC is measured out of fold (stratified k-fold), with a bootstrap CI
from resampling the out-of-fold predictions within each class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit
from scipy.stats import rankdata

FloatArray = NDArray[np.float64]


def auc(labels: NDArray[np.bool_], scores: FloatArray) -> float:
    """Area under the ROC curve by the Mann-Whitney U statistic (ties count one half)."""
    labels = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fit_logistic(x: FloatArray, y: NDArray[np.bool_], l2: float = 1.0, max_iter: int = 50) -> FloatArray:
    """Weights ``(D + 1,)`` (last: intercept) of an L2-penalised logistic regression, classes
    weighted to equal total weight (so a 1:50 imbalance does not reduce it to the intercept)."""
    y = np.asarray(y, dtype=np.float64)
    n, d = x.shape
    design = np.hstack([x, np.ones((n, 1))])
    n_pos = max(y.sum(), 1.0)
    n_neg = max(n - y.sum(), 1.0)
    sample_w = np.where(y > 0, n / (2 * n_pos), n / (2 * n_neg))
    penalty = np.full(d + 1, l2)
    penalty[-1] = 0.0
    w = np.zeros(d + 1)
    for _ in range(max_iter):
        p = expit(design @ w)
        grad = design.T @ (sample_w * (p - y)) + penalty * w
        hess = (design * (sample_w * p * (1 - p))[:, None]).T @ design + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w


@dataclass(frozen=True)
class ProbeResult:
    """Out-of-fold AUC, its bootstrap CI, and the sample sizes."""

    auc: float
    auc_low: float
    auc_high: float
    n_real: int
    n_injected: int
    n_folds: int
    n_boot: int
    ci_level: float


def realism_probe(
    real: FloatArray,
    injected: FloatArray,
    n_folds: int = 5,
    n_boot: int = 1000,
    l2: float = 1.0,
    seed: int = 42,
    ci_level: float = 0.95,
) -> ProbeResult:
    """Probe AUC for real (label 1) vs injected (label 0) embeddings (``(N, D)`` each)."""
    real = np.asarray(real, dtype=np.float64)
    injected = np.asarray(injected, dtype=np.float64)
    if real.ndim != 2 or injected.ndim != 2 or real.shape[1] != injected.shape[1]:
        raise ValueError(f"embeddings must be (N, D) with one D, got {real.shape} and {injected.shape}")
    folds = min(n_folds, len(real), len(injected))
    if folds < 2:
        raise ValueError(
            "the realism probe needs >= 2 real and >= 2 injected embeddings, "
            f"got {len(real)} and {len(injected)}"
        )
    x = np.vstack([real, injected])
    y = np.r_[np.ones(len(real), bool), np.zeros(len(injected), bool)]
    rng = np.random.Generator(np.random.PCG64(seed))
    fold = np.empty(len(y), np.int64)
    for label in (True, False):  # stratified: each class dealt round-robin over the folds
        idx = np.flatnonzero(y == label)
        fold[rng.permutation(idx)] = np.arange(idx.size) % folds
    oof = np.empty(len(y))
    for k in range(folds):
        train, test = fold != k, fold == k
        mean = x[train].mean(axis=0)
        std = x[train].std(axis=0)
        std = np.where(std > 0, std, 1.0)
        w = fit_logistic((x[train] - mean) / std, y[train], l2)
        oof[test] = np.hstack([(x[test] - mean) / std, np.ones((test.sum(), 1))]) @ w
    point = auc(y, oof)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    boots = np.empty(n_boot)
    for b in range(n_boot):  # resamples of the out-of-fold predictions, within each class
        idx = np.r_[rng.choice(pos, pos.size), rng.choice(neg, neg.size)]
        boots[b] = auc(y[idx], oof[idx])
    tail = (1 - ci_level) / 2
    lo, hi = np.quantile(boots, [tail, 1 - tail]) if n_boot else (np.nan, np.nan)
    return ProbeResult(point, float(lo), float(hi), len(real), len(injected), folds, n_boot, ci_level)


def score_distributions(
    real_scores: FloatArray,
    real_theta_e: FloatArray,
    injected_scores: FloatArray,
    injected_theta_e: FloatArray,
    theta_edges: FloatArray,
    quantiles: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9),
) -> list[dict[str, float | int | str]]:
    """Score distributions of real lenses and injections in the same theta_E bins (rows per bin and
    population: n, mean and quantiles), so the finder's response to real and simulated arcs is
    compared at matched Einstein radius rather than across different theta_E mixes."""
    rows: list[dict[str, float | int | str]] = []
    edges = np.asarray(theta_edges, dtype=np.float64)
    for population, scores, theta in (
        ("real", np.asarray(real_scores, np.float64), np.asarray(real_theta_e, np.float64)),
        ("injected", np.asarray(injected_scores, np.float64), np.asarray(injected_theta_e, np.float64)),
    ):
        idx = np.searchsorted(edges, theta, side="right") - 1
        for b in range(edges.size - 1):  # a dozen bins
            s = scores[(idx == b) & np.isfinite(theta)]
            row: dict[str, float | int | str] = {
                "population": population,
                "theta_e_low": float(edges[b]),
                "theta_e_high": float(edges[b + 1]),
                "n": int(s.size),
                "mean": float(s.mean()) if s.size else float("nan"),
            }
            qs = np.quantile(s, quantiles) if s.size else np.full(len(quantiles), np.nan)
            row.update({f"q{round(100 * q):02d}": float(v) for q, v in zip(quantiles, qs, strict=True)})
            rows.append(row)
    return rows
