"""Completeness with intervals, per cell and marginal over each axis.

Intervals (DOMAIN.md): Wilson score 95% (good coverage down to n ~ 10, never outside [0, 1]) and
Jeffreys 68% (the equal-tailed interval of the Beta(k + 1/2, n - k + 1/2) posterior, with the
conventional ends 0 at k = 0 and 1 at k = n).

Both treat the injections of a cell as independent draws.  They are not: a cell's injections share
a few tens of host galaxies, and whether an arc is recovered depends strongly on its host (a host
the finder already scores near its threshold passes with almost any arc; on the embedded default a
handful of a cell's 40 hosts carry most of its recoveries).  The host-cluster bootstrap interval
(:func:`host_bootstrap_interval`) resamples *hosts*, so it carries that between-host variance; it
is the interval to compare cells with.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
from numpy.typing import ArrayLike, NDArray
from scipy import stats

FloatArray = NDArray[np.float64]


def wilson_interval(k: ArrayLike, n: ArrayLike, level: float = 0.95) -> tuple[FloatArray, FloatArray]:
    """Wilson score interval for ``k`` successes in ``n`` trials (NaN where n = 0)."""
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    z = stats.norm.ppf(0.5 + level / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def jeffreys_interval(k: ArrayLike, n: ArrayLike, level: float = 0.68) -> tuple[FloatArray, FloatArray]:
    """Jeffreys interval (NaN where n = 0)."""
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    tail = (1 - level) / 2
    with np.errstate(invalid="ignore"):
        lo = np.where(k > 0, stats.beta.ppf(tail, k + 0.5, n - k + 0.5), 0.0)
        hi = np.where(k < n, stats.beta.ppf(1 - tail, k + 0.5, n - k + 0.5), 1.0)
    empty = n <= 0
    return np.where(empty, np.nan, lo), np.where(empty, np.nan, hi)


def completeness_columns(n_recovered: ArrayLike, n_injected: ArrayLike) -> dict[str, FloatArray]:
    """``completeness`` and its Wilson 95% / Jeffreys 68% bounds."""
    k = np.asarray(n_recovered, dtype=np.float64)
    n = np.asarray(n_injected, dtype=np.float64)
    w_lo, w_hi = wilson_interval(k, n)
    j_lo, j_hi = jeffreys_interval(k, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        comp = np.where(n > 0, k / n, np.nan)
    return {
        "completeness": comp,
        "wilson95_low": w_lo,
        "wilson95_high": w_hi,
        "jeffreys68_low": j_lo,
        "jeffreys68_high": j_hi,
    }


def host_bootstrap_interval(
    group: ArrayLike,
    host: ArrayLike,
    n_groups: int,
    recovered: NDArray[np.bool_],
    n_boot: int,
    seed: int,
    level: float = 0.95,
) -> tuple[FloatArray, FloatArray]:
    """Percentile interval of completeness per group and operating point, ``(G, T)`` each, from a
    cluster bootstrap over hosts.

    Each replicate gives every host (``host``: an integer id per injection, shared across groups,
    so a host reused by several cells moves them together, as it does in reality) a Poisson(1)
    weight -- the Poisson bootstrap (Hanley & MacGibbon 2006; Chamandy et al. 2012), which
    resamples clusters without a loop over groups -- and a group's completeness is the weighted
    recovered count over the weighted injection count.  Vectorised: injections are first summed
    per (group, host) pair, then one ``(B, pairs)`` weight matrix is reduced per group.  A
    replicate that leaves a group no injection is dropped for that group; NaN where a group has
    no injections or fewer than two replicates survive.
    """
    group = np.asarray(group, dtype=np.int64)
    host = np.asarray(host, dtype=np.int64)
    ok = group >= 0
    n_thr = recovered.shape[1]
    lo = np.full((n_groups, n_thr), np.nan)
    hi = np.full((n_groups, n_thr), np.nan)
    if not ok.any() or n_thr == 0:
        return lo, hi
    pairs, pair_of = np.unique(np.stack([group[ok], host[ok]], axis=1), axis=0, return_inverse=True)
    pair_of = pair_of.ravel()
    n_pair = np.bincount(pair_of, minlength=len(pairs)).astype(np.float64)
    hosts, host_of_pair = np.unique(pairs[:, 1], return_inverse=True)
    rng = np.random.Generator(np.random.PCG64([seed, 7]))
    weights = rng.poisson(1.0, size=(n_boot, hosts.size)).astype(np.float64)[:, host_of_pair.ravel()]
    indicator = np.zeros((len(pairs), n_groups))
    indicator[np.arange(len(pairs)), pairs[:, 0]] = 1.0
    denom = (weights * n_pair) @ indicator  # (B, G)
    tail = 50.0 * (1.0 - level)
    for t in range(n_thr):  # one matrix product per operating point (a handful)
        k_pair = np.bincount(pair_of, weights=recovered[ok, t], minlength=len(pairs))
        with np.errstate(divide="ignore", invalid="ignore"):
            comp = np.where(denom > 0, ((weights * k_pair) @ indicator) / denom, np.nan)
        enough = np.isfinite(comp).sum(axis=0) >= 2
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns of empty groups
            q = np.nanpercentile(comp, [tail, 100.0 - tail], axis=0)
        lo[:, t] = np.where(enough, q[0], np.nan)
        hi[:, t] = np.where(enough, q[1], np.nan)
    return lo, hi


def recovered_matrix(scores: ArrayLike, threshold_values: Sequence[float]) -> NDArray[np.bool_]:
    """``(N, T)``: score strictly above each threshold."""
    return (
        np.asarray(scores, dtype=np.float64)[:, None]
        > np.asarray(threshold_values, dtype=np.float64)[None, :]
    )


def group_completeness(
    group: ArrayLike, n_groups: int, recovered: NDArray[np.bool_]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Per group and threshold: ``(n_injected (G,), n_recovered (G, T))`` (groups 0..n_groups-1;
    negative group ids are ignored)."""
    group = np.asarray(group, dtype=np.int64)
    ok = group >= 0
    n_inj = np.bincount(group[ok], minlength=n_groups)
    n_rec = np.zeros((n_groups, recovered.shape[1]), np.int64)
    for t in range(recovered.shape[1]):  # one bincount per operating point (a handful)
        n_rec[:, t] = np.bincount(group[ok], weights=recovered[ok, t], minlength=n_groups)
    return n_inj, n_rec


def long_table(
    keys: dict[str, ArrayLike],
    threshold_names: Sequence[str],
    n_injected: ArrayLike,
    n_recovered: NDArray[np.int64],
    host_interval: tuple[FloatArray, FloatArray],
) -> pa.Table:
    """Rows (group x threshold) with ``n_injected, n_recovered``, the completeness columns and the
    host-cluster bootstrap interval (``(G, T)`` low and high, :func:`host_bootstrap_interval`)."""
    n_groups, n_thr = n_recovered.shape
    g = np.repeat(np.arange(n_groups), n_thr)
    t = np.tile(np.arange(n_thr), n_groups)
    n_inj = np.asarray(n_injected)[g]
    n_rec = n_recovered[g, t]
    cols: dict[str, object] = {name: np.asarray(v)[g] for name, v in keys.items()}
    cols["threshold_name"] = pa.array(np.asarray(threshold_names, dtype=object)[t].tolist(), pa.string())
    cols["n_injected"] = pa.array(n_inj, pa.int64())
    cols["n_recovered"] = pa.array(n_rec, pa.int64())
    cols.update(completeness_columns(n_rec, n_inj))
    cols["host_boot95_low"] = np.asarray(host_interval[0], np.float64).reshape(n_groups, n_thr)[g, t]
    cols["host_boot95_high"] = np.asarray(host_interval[1], np.float64).reshape(n_groups, n_thr)[g, t]
    return pa.table(cols)


def bin_edges_index(values: ArrayLike, edges: Sequence[float]) -> NDArray[np.int64]:
    """Index of the half-open bin ``[edges[i], edges[i+1])`` holding each value; -1 outside / NaN."""
    v = np.asarray(values, dtype=np.float64)
    e = np.asarray(edges, dtype=np.float64)
    idx = np.searchsorted(e, v, side="right") - 1
    return np.where(np.isfinite(v) & (idx >= 0) & (idx < e.size - 1), idx, -1)
