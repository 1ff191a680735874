"""Operating points of the finder: score thresholds from real validation negatives.

Completeness means little without the false-positive rate it was measured at (DOMAIN.md), so
thresholds are set on real negatives of the validation split: the threshold for a target FPR
``f`` is the score above which at most ``floor(f n)`` of the ``n`` negatives lie (recovered means
``score > threshold``).  The number of negatives above each threshold is recorded, because a
threshold pinned by a handful of negatives is noisy (+-10 points at < 10 negatives).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray


class FinderLike(Protocol):
    """The Finder contract (INTERFACES.md): crop and normalisation happen inside ``score``."""

    def score(self, images: np.ndarray, batch_size: int = ...) -> tuple[np.ndarray, np.ndarray]: ...


def threshold_name(kind: str, value: float) -> str:
    """Column-safe operating-point name: ``fpr_1em02`` for FPR 1e-2, ``p_0p5`` for score 0.5."""
    text = f"{value:.0e}" if kind == "fpr" else f"{value:g}"
    return f"{kind}_" + text.replace("-", "m").replace("+", "").replace(".", "p")


def thresholds(
    negative_scores: NDArray[np.float64], fpr_targets: Sequence[float], fixed_scores: Sequence[float]
) -> pa.Table:
    """One row per operating point: ``threshold_name`` (:func:`threshold_name`), ``kind``,
    ``target_fpr``, ``score_threshold``, ``n_negatives``, ``n_negatives_above``, ``achieved_fpr``."""
    neg = np.sort(np.asarray(negative_scores, dtype=np.float64))[::-1]
    if neg.size == 0:
        raise ValueError(
            "no validation negatives with finder scores: the FPR thresholds cannot be set; "
            "check that finder_scores holds split='val' negatives of this build"
        )
    if not np.all(np.isfinite(neg)):
        raise ValueError("validation negative scores contain NaN/inf; the finder run is broken")
    names, kinds, targets, values = [], [], [], []
    for fpr in fpr_targets:
        if not 0 < fpr < 1:
            raise ValueError(f"injection_fpr_targets must lie in (0, 1), got {fpr}")
        k = int(np.floor(fpr * neg.size))
        names.append(threshold_name("fpr", fpr))
        kinds.append("fpr")
        targets.append(float(fpr))
        values.append(float(neg[min(k, neg.size - 1)]))
    for p in fixed_scores:
        names.append(threshold_name("p", p))
        kinds.append("score")
        targets.append(None)
        values.append(float(p))
    above = np.array([(neg > v).sum() for v in values])  # a handful of operating points
    return pa.table(
        {
            "threshold_name": names,
            "kind": kinds,
            "target_fpr": pa.array(targets, pa.float64()),
            "score_threshold": values,
            "n_negatives": pa.array(np.full(len(names), neg.size), pa.int64()),
            "n_negatives_above": pa.array(above, pa.int64()),
            "achieved_fpr": above / neg.size,
        }
    )
