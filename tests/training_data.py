"""A tiny, learnable cutout set for training tests: noisy sky + a central galaxy, and for positives
a blue ring (an Einstein ring), written to a real cutout store with the store's writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from stronglens.cutouts.store import CutoutMeta, write_cutout

SIZE = 101


def images(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N, 101, 101, 3) float32 nanomaggies: sky noise, a galaxy, a ring for label 1."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] - (SIZE - 1) / 2
    r = np.hypot(yy, xx)
    galaxy = np.exp(-r / 3.0)[None, :, :, None] * np.array([0.3, 0.6, 1.0])
    ring = np.exp(-0.5 * ((r - 7.0) / 1.2) ** 2)[None, :, :, None] * np.array([0.25, 0.2, 0.1])
    sky = rng.normal(0, 0.01, size=(n, SIZE, SIZE, 3))
    out = sky + galaxy * rng.uniform(0.5, 2.0, (n, 1, 1, 1)) + ring * labels[:, None, None, None]
    return out.astype(np.float32)


def write_store(root: Path, n_per_split: dict[str, tuple[int, int]], seed: int = 0) -> pa.Table:
    """Write cutouts for (n_pos, n_neg) per split under ``root``; return a training manifest."""
    rows = []
    for split, (n_pos, n_neg) in n_per_split.items():
        rows += [(split, 1)] * n_pos + [(split, 0)] * n_neg
    labels = np.array([label for _, label in rows])
    pixels = images(labels, seed)
    ids, paths, shas = [], [], []
    for i, (split, _label) in enumerate(rows):
        sample_id = f"{1000 + i}"
        meta = CutoutMeta(
            1000 + i, 10.0, -5.0, "SER", 3, 1.2, 5.0, "synthetic:test", "2026-12-02T00:00:00+00:00"
        )
        written = write_cutout(str(root / split / f"{sample_id}.npz"), pixels[i], meta)
        ids.append(sample_id)
        paths.append(written.path)
        shas.append(written.sha256)
    tiers = ["A" if (label and i % 2 == 0) else ("B" if label else None) for i, (_, label) in enumerate(rows)]
    return pa.table(
        {
            "sample_id": ids,
            "label": pa.array(labels, pa.int32()),
            "tier": tiers,
            "n2_category": [
                None if label else ("ring_proxy" if i % 3 == 0 else "N1") for i, (_, label) in enumerate(rows)
            ],
            "type": ["SER"] * len(rows),
            "split": [split for split, _ in rows],
            "cutout_path": paths,
            "cutout_sha256": shas,
            "sample_weight": [0.95 if t == "A" else 0.45 if t == "B" else 1.0 for t in tiers],
            "target": pa.array(labels.astype(float)),
        }
    )
