"""Shortcut audit: can a single simple feature tell positives from negatives?

A CNN learns whatever separates the classes most cheaply.  If positives are, say, systematically
brighter in the core, noisier, or cut by a different pipeline (a different noise texture), the
network can reach a high validation AUC from that alone and never learn what an arc looks like --
and then fails on the real sky.  So for every QA feature (:mod:`stronglens.cutouts.qa`) this module
measures the ROC AUC of *that feature alone* as a classifier of positives vs negatives, with a seeded
bootstrap confidence interval, and flags the features that separate the classes on their own.

Scopes, so that a shortcut confined to part of the data is not averaged away:

* ``all``: every positive vs every negative;
* ``split``: within each split (train / val / test) -- the test split must not be easier;
* ``negative_class``: all positives vs the N1 negatives (``n2_category`` null), and vs each N2
  category -- a confuser class that differs trivially from the positives teaches nothing.

Statistics
----------
``auc`` is the Mann-Whitney probability ``P(x_pos > x_neg) + P(x_pos = x_neg) / 2`` (ties count
one half, exactly as average ranks do), computed in O(n log n): the class with more rows is sorted
once, and every value of the other class is located in it by binary search; the counts below and
equal to it come from cumulative sums.  A value > 0.5 means positives have the larger values.

``auc_lo`` / ``auc_hi``: percentile bootstrap interval (``ci_level``, default 95%).  Resampling is
stratified (positives and negatives resampled separately, so every replicate has both classes and
the class balance of the data) and expressed as multiplicity weights, so all ``n_boot`` replicates
are evaluated together as weighted Mann-Whitney sums (matrix cumulative sums, no loop over
replicates).  The same replicates serve every feature of a scope (a paired bootstrap), and each
scope draws from its own stream seeded by ``(seed, band, scope)``, so a scope's numbers do not
depend on which other scopes or features are present.  Non-finite feature values are left out of
that feature's AUC (counted in the note).

``flagged``: the bootstrap interval lies entirely beyond ``0.5 +- flag_threshold`` (``auc_lo >=
0.5 + t`` or ``auc_hi <= 0.5 - t``), for non-signal features.  The default 0.1 (AUC >= 0.6 or
<= 0.4 with confidence) is an effect-size bar judged on the interval, not the point value: with
30 positives a point AUC wanders +-0.1 by chance, while with >= 1,000 the interval is tight and
a real 0.6 (a ~0.36 sigma shift between the classes, ``AUC = Phi(d / sqrt 2)``) is worth knowing:
a CNN combines several such cues.  Smaller differences that are physically expected (lens hosts
are massive, bright galaxies) stay unflagged but show "CI excludes 0.5" in the note.  Features
that measure the lensing signal (``signal_features``, e.g. the arc annulus colour) are reported
with ``is_signal`` and never flagged.  ``note`` adds what the numbers mean in words.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

DEFAULT_FLAG_THRESHOLD = 0.1
DEFAULT_N_BOOT = 200
DEFAULT_CI_LEVEL = 0.95
N1_SCOPE = "N1"
#: numeric columns never audited by default (identifiers, not features)
DEFAULT_EXCLUDE = ("sample_id", "galaxy_id", "cutout_index")
#: output columns, in order
AUDIT_COLUMNS = (
    "feature",
    "band",
    "scope_kind",
    "scope",
    "n_pos",
    "n_neg",
    "auc",
    "auc_lo",
    "auc_hi",
    "flagged",
    "is_signal",
    "note",
)
#: bootstrap cells (replicates x rows) processed at once: bounds memory to ~100 MB
_MAX_CELLS = 4_000_000


def _greater_fraction(
    sorted_ref: NDArray[np.float64],
    ref_weights: NDArray[np.integer],
    probe: NDArray[np.float64],
    probe_weights: NDArray[np.integer],
) -> NDArray[np.float64]:
    """Weighted ``P(probe > ref) + P(probe = ref) / 2`` for each replicate.

    ``sorted_ref`` (m,) ascending with ``ref_weights`` (B, m) in the same order; ``probe`` (k,) with
    ``probe_weights`` (B, k).  Each probe value falls between two positions of the sorted
    reference (strictly below it / up to its ties); only the cumulative reference weight at those
    <= 2k + 1 positions is needed, so the reference weights are summed per segment between them
    (one ``add.reduceat`` pass) and the cumulative sum runs over segments, not rows."""
    m = sorted_ref.size
    below = np.searchsorted(sorted_ref, probe, side="left")
    upto = np.searchsorted(sorted_ref, probe, side="right")
    bounds = np.unique(np.concatenate(([0, m], below, upto)))
    starts = bounds[:-1]  # strictly increasing, all < m
    ref_total = ref_weights.sum(axis=1, dtype=np.int64)
    # int32 halves the memory traffic of the passes below; below + upto must fit too
    count_type = np.int32 if 2 * int(ref_total.max(initial=0)) < np.iinfo(np.int32).max else np.int64
    segment = np.add.reduceat(ref_weights, starts, axis=1, dtype=count_type)
    cum = np.zeros((ref_weights.shape[0], bounds.size), dtype=count_type)
    np.cumsum(segment, axis=1, out=cum[:, 1:])  # cum[:, i] = reference weight before bounds[i]
    # reference weight below each probe value plus up to its ties: 2 x (below + equal / 2)
    twice_wins = np.take(cum, np.searchsorted(bounds, below), axis=1)
    twice_wins += np.take(cum, np.searchsorted(bounds, upto), axis=1)
    wins = np.einsum("bk,bk->b", probe_weights, twice_wins, dtype=np.float64) / 2.0
    total = probe_weights.sum(axis=1, dtype=np.float64) * ref_total.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return wins / total


def weighted_auc(
    values: NDArray[np.floating], positive: NDArray[np.bool_], weights: NDArray[np.integer] | None = None
) -> NDArray[np.float64]:
    """Mann-Whitney AUC of ``values`` for ``positive`` vs the rest, per row of ``weights``.

    ``weights`` (B, n) are non-negative integer multiplicities (bootstrap replicates); ``None`` means
    one replicate of all ones, the plain AUC.  Values must be finite.  Returns (B,) (NaN where a
    replicate has no weight in one class).  The larger class is sorted and the smaller searched in
    it, so the cost is O(n log n) once plus O(B n) memory traffic.
    """
    x = np.asarray(values, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    w = np.ones((1, x.size), dtype=np.int32) if weights is None else np.asarray(weights)
    if x.ndim != 1 or pos.shape != x.shape or w.ndim != 2 or w.shape[1] != x.size:
        raise ValueError(
            f"weighted_auc: values {x.shape}, positive {pos.shape} and weights {w.shape} do not match"
        )
    if w.dtype.kind not in "iu":
        raise ValueError(f"weighted_auc: weights must be integer multiplicities, got {w.dtype}")
    if not np.all(np.isfinite(x)):
        raise ValueError("weighted_auc: values must be finite; drop NaN/inf rows first")
    n_pos = int(pos.sum())
    if n_pos == 0 or n_pos == x.size:
        return np.full(w.shape[0], np.nan)
    # search the smaller class in the larger one; P(neg > pos) + ties/2 = 1 - AUC
    ref_is_neg = n_pos <= x.size - n_pos
    ref_rows = np.flatnonzero(~pos if ref_is_neg else pos)
    probe_rows = np.flatnonzero(pos if ref_is_neg else ~pos)
    ref_rows = ref_rows[np.argsort(x[ref_rows], kind="stable")]
    sorted_ref = x[ref_rows]
    probe = x[probe_rows]
    out = np.empty(w.shape[0])
    step = max(1, _MAX_CELLS // x.size)
    for start in range(0, w.shape[0], step):  # chunks of replicates, for memory
        block = w[start : start + step]
        frac = _greater_fraction(
            sorted_ref, np.take(block, ref_rows, axis=1), probe, np.take(block, probe_rows, axis=1)
        )
        out[start : start + step] = frac if ref_is_neg else 1.0 - frac
    return out


def stratified_bootstrap_weights(
    positive: NDArray[np.bool_], n_boot: int, rng: np.random.Generator
) -> NDArray[np.int32]:
    """(n_boot, n) multiplicities of a bootstrap that resamples positives and negatives separately
    (each class keeps its size), drawn as indices and counted with one ``bincount``."""
    pos = np.asarray(positive, dtype=bool)
    weights = np.zeros((n_boot, pos.size), dtype=np.int32)
    for members in (np.flatnonzero(pos), np.flatnonzero(~pos)):
        k = members.size
        if k == 0:
            continue
        draws = rng.integers(0, k, size=(n_boot, k)) + (np.arange(n_boot) * k)[:, None]
        weights[:, members] = np.bincount(draws.ravel(), minlength=n_boot * k).reshape(n_boot, k)
    return weights


def _scope_rng(seed: int, band: object, kind: str, scope: str) -> np.random.Generator:
    """A generator for one (band, scope), independent of every other scope."""
    key = f"{band}|{kind}|{scope}".encode()
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(key)]))


def _labels(frame: pd.DataFrame, column: str) -> NDArray[np.bool_]:
    if column not in frame.columns:
        raise ValueError(f"shortcut_audit: no label column {column!r} (1 = positive, 0 = negative)")
    raw = frame[column]
    numeric = pd.to_numeric(raw, errors="coerce")
    bad = numeric.isna() | ~numeric.isin([0, 1])
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())[:5].tolist()
        raise ValueError(
            f"shortcut_audit: column {column!r} must be 0 or 1 on every row; {int(bad.sum())} rows are not "
            f"(first positions {rows}, values {raw.iloc[rows].tolist()}): fix the join with the labels"
        )
    return numeric.to_numpy() == 1


def _scopes(
    frame: pd.DataFrame, positive: NDArray[np.bool_], split_column: str | None, n2_column: str | None
) -> list[tuple[str, str, NDArray[np.bool_]]]:
    """(kind, name, row mask) of every scope present in ``frame``."""
    scopes = [("all", "all", np.ones(len(frame), dtype=bool))]
    if split_column is not None:
        split = frame[split_column]
        scopes += [
            ("split", str(name), (split == name).to_numpy()) for name in sorted(split.dropna().unique())
        ]
    if n2_column is not None:
        category = frame[n2_column]
        negatives = ~positive
        scopes.append(("negative_class", N1_SCOPE, positive | (negatives & category.isna().to_numpy())))
        names = sorted(category[negatives].dropna().unique())
        if N1_SCOPE in names:
            raise ValueError(f"shortcut_audit: an N2 category is named {N1_SCOPE!r}, which labels N1")
        scopes += [
            ("negative_class", str(name), positive | (negatives & (category == name).to_numpy()))
            for name in names
        ]
    return scopes


def _notes(
    auc: NDArray[np.float64],
    lo: NDArray[np.float64],
    hi: NDArray[np.float64],
    flagged: NDArray[np.bool_],
    n_pos: NDArray[np.int64],
    n_neg: NDArray[np.int64],
    dropped: NDArray[np.int64],
    min_class_size: int,
) -> NDArray[np.str_]:
    """A short verdict per audit row, built with element-wise string operations."""
    verdict = np.select(
        [
            n_pos == 0,
            n_neg == 0,
            flagged & (auc > 0.5),
            flagged,
            (lo > 0.5) | (hi < 0.5),
            np.isfinite(auc),
        ],
        [
            "no positives in scope",
            "no negatives in scope",
            "SHORTCUT: positives higher; separates the classes alone",
            "SHORTCUT: positives lower; separates the classes alone",
            "small but significant difference (CI excludes 0.5), below the flag threshold",
            "no significant difference",
        ],
        default="AUC undefined",
    ).astype(object)
    small = (np.minimum(n_pos, n_neg) < min_class_size) & (n_pos > 0) & (n_neg > 0)
    verdict = np.where(
        small, verdict + f"; fewer than {min_class_size} rows in a class: CI unreliable", verdict
    )
    counts = np.char.mod("; %d non-finite values left out", dropped).astype(object)
    return np.where(dropped > 0, verdict + counts, verdict).astype(str)


def shortcut_audit(
    features: pd.DataFrame,
    feature_columns: Sequence[str] | None = None,
    *,
    label_column: str = "label",
    split_column: str | None = "split",
    n2_column: str | None = "n2_category",
    band_column: str = "band",
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    flag_threshold: float = DEFAULT_FLAG_THRESHOLD,
    ci_level: float = DEFAULT_CI_LEVEL,
    min_class_size: int = 10,
    exclude_columns: Sequence[str] = DEFAULT_EXCLUDE,
    signal_features: Sequence[str] = (),
) -> pd.DataFrame:
    """AUC of each feature alone, positives vs negatives, per band and scope, with bootstrap CIs.

    ``features``: one row per sample -- or per (sample, band) when it has ``band_column`` (the long
    QA table joined with the labels), in which case each band is audited on its own rows.  Columns:
    ``label_column`` (1 positive, 0 negative), ``split_column`` and ``n2_column`` (pass ``None`` to
    skip those scopes), and the features: ``feature_columns``, by default every numeric non-boolean
    column other than the label and ``exclude_columns``.

    ``signal_features``: features that measure the lensing signal itself (the arc annulus colour):
    audited and reported with ``is_signal`` true, never flagged -- they are expected to differ.

    Returns one row per (feature, band, scope) with :data:`AUDIT_COLUMNS` (``band`` null without a
    band column), ordered by band, scope (all, splits, N1, N2 categories), feature.
    """
    if n_boot < 1 or not 0.0 < ci_level < 1.0 or not 0.0 < flag_threshold <= 0.5:
        raise ValueError(
            f"shortcut_audit: need n_boot >= 1 (got {n_boot}), 0 < ci_level < 1 (got {ci_level}) and "
            f"0 < flag_threshold <= 0.5 (got {flag_threshold})"
        )
    for column in (split_column, n2_column):
        if column is not None and column not in features.columns:
            raise ValueError(f"shortcut_audit: no column {column!r}; add it or pass None to skip its scopes")
    meta = {label_column, split_column, n2_column, band_column, *exclude_columns}
    if feature_columns is None:
        names = [
            c
            for c in features.columns
            if c not in meta
            and pd.api.types.is_numeric_dtype(features[c])
            and not pd.api.types.is_bool_dtype(features[c])
        ]
    else:
        names = list(feature_columns)
        missing = [c for c in names if c not in features.columns]
        nonnumeric = [
            c for c in names if c in features.columns and not pd.api.types.is_numeric_dtype(features[c])
        ]
        if missing or nonnumeric:
            raise ValueError(f"shortcut_audit: feature columns missing {missing}, not numeric {nonnumeric}")
    if not names:
        raise ValueError("shortcut_audit: no numeric feature columns to audit")
    positive_all = _labels(features, label_column)
    has_band = band_column in features.columns
    if has_band and features[band_column].isna().any():
        raise ValueError(
            f"shortcut_audit: column {band_column!r} has nulls on {int(features[band_column].isna().sum())} "
            "rows; every row of a long (per band) table needs its band"
        )
    bands = list(dict.fromkeys(features[band_column])) if has_band else [None]
    alpha = (1.0 - ci_level) / 2.0

    keys: list[tuple[str, object, str, str]] = []
    stats: dict[str, list[NDArray]] = {k: [] for k in ("auc", "lo", "hi", "n_pos", "n_neg", "dropped")}
    for band in bands:
        in_band = (features[band_column] == band).to_numpy() if has_band else np.ones(len(features), bool)
        frame = features[in_band]
        positive = positive_all[in_band]
        values = frame[names].to_numpy(dtype=np.float64)
        for kind, scope, mask in _scopes(frame, positive, split_column, n2_column):
            pos = positive[mask]
            x = values[mask]
            # replicate 0 is the data itself (all weights 1): the point estimate, in the same pass
            weights = np.vstack(
                [
                    np.ones((1, pos.size), dtype=np.int32),
                    stratified_bootstrap_weights(pos, n_boot, _scope_rng(seed, band, kind, scope)),
                ]
            )
            finite = np.isfinite(x)
            for j, name in enumerate(names):
                keep = finite[:, j]
                replicates = weighted_auc(x[keep, j], pos[keep], weights if keep.all() else weights[:, keep])
                point, boot = replicates[0], replicates[1:]
                boot = boot[np.isfinite(boot)]
                lo, hi = np.quantile(boot, [alpha, 1.0 - alpha]) if boot.size else (np.nan, np.nan)
                keys.append((name, band, kind, scope))
                stats["auc"].append(point)
                stats["lo"].append(lo)
                stats["hi"].append(hi)
                stats["n_pos"].append(int(pos[keep].sum()))
                stats["n_neg"].append(int((~pos[keep]).sum()))
                stats["dropped"].append(int((~keep).sum()))
    auc, lo, hi = (np.asarray(stats[k], dtype=np.float64) for k in ("auc", "lo", "hi"))
    n_pos, n_neg, dropped = (np.asarray(stats[k], dtype=np.int64) for k in ("n_pos", "n_neg", "dropped"))
    # flagged when the whole interval lies beyond the threshold: a point value past it is not enough
    # with few positives (30 give +-0.1), and with many the interval is tight around the point
    flagged = (
        np.isfinite(lo) & np.isfinite(hi) & ((lo >= 0.5 + flag_threshold) | (hi <= 0.5 - flag_threshold))
    )
    is_signal = np.isin(np.asarray(feature_of := [k[0] for k in keys], dtype=object), list(signal_features))
    feature, band_of, kind_of, scope_of = (list(c) for c in zip(*keys, strict=True))
    del feature_of
    out = pd.DataFrame(
        {
            "feature": feature,
            "band": pd.array(band_of, dtype="string"),
            "scope_kind": kind_of,
            "scope": scope_of,
            "n_pos": n_pos,
            "n_neg": n_neg,
            "auc": auc,
            "auc_lo": lo,
            "auc_hi": hi,
            "flagged": flagged & ~is_signal,
            "is_signal": is_signal,
            "note": _notes(auc, lo, hi, flagged, n_pos, n_neg, dropped, min_class_size),
        }
    )
    return out[list(AUDIT_COLUMNS)]
