"""PNG reports of a finder run (matplotlib, Agg): ROC curves, recall vs FPR with Wilson intervals,
score histograms per population, reliability curve, training curves, and a gallery of the
highest-scoring negatives (false positives) and lowest-scoring Tier-A lenses per split.

Written by the ``finder_metrics`` model to ``$STRONGLENS_HOME/reports/training/<invocation>/<run>/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from stronglens.cutouts.store import resolve_uri
from stronglens.training.data import read_images
from stronglens.training.metrics import reliability, wilson

SPLIT_COLOURS = {"train": "tab:grey", "val": "tab:blue", "test": "tab:red"}


def _roc_points(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-np.concatenate([pos, neg]), kind="stable")
    is_pos = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])[order]
    tpr = np.concatenate([[0.0], np.cumsum(is_pos) / max(1, len(pos))])
    fpr = np.concatenate([[0.0], np.cumsum(1 - is_pos) / max(1, len(neg))])
    return fpr, tpr


def plot_roc(frame: pd.DataFrame, metrics: pd.DataFrame, out: Path) -> Path:
    """ROC per split (log FPR axis: the operating region), AUC and its CI in the legend."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for split, part in frame.groupby("split"):
        pos = part.loc[part.label == 1, "score"].to_numpy()
        neg = part.loc[part.label == 0, "score"].to_numpy()
        if len(pos) == 0 or len(neg) == 0:
            continue
        fpr, tpr = _roc_points(pos, neg)
        auc = metrics[(metrics.split == split) & (metrics.population == "all") & (metrics.metric == "auc")]
        label = f"{split}: n={len(pos)}/{len(neg)}"
        if len(auc) and pd.notna(auc.value.iloc[0]):
            a = auc.iloc[0]
            label += f", AUC {a.value:.3f} [{a.ci_low:.3f}, {a.ci_high:.3f}]"
        ax.step(
            np.maximum(fpr, 1.0 / len(neg) / 2),
            tpr,
            where="post",
            color=SPLIT_COLOURS.get(split),
            label=label,
        )
    ax.set_xscale("log")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("recall (true-positive rate)")
    ax.set_title("ROC (positives/negatives per split)")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, out / "roc.png")


def plot_recall_vs_fpr(metrics: pd.DataFrame, out: Path) -> Path:
    """Recall at each target FPR with Wilson 95% intervals, per split and tier; not-measurable
    points are listed in the title instead of drawn."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    rows = metrics[
        metrics.metric.str.startswith("recall_at_fpr_") & metrics.population.isin(["all", "tier_A", "tier_B"])
    ]
    missing = 0
    for (split, pop), part in rows.groupby(["split", "population"]):
        part = part.assign(fpr=part.metric.str.removeprefix("recall_at_fpr_").astype(float)).sort_values(
            "fpr"
        )
        ok = part[part.value.notna()]
        missing += int(part.value.isna().sum())
        if len(ok):
            err = np.vstack([ok.value - ok.ci_low, ok.ci_high - ok.value])
            style = {"all": "-o", "tier_A": "--s", "tier_B": ":^"}[pop]
            ax.errorbar(
                ok.fpr,
                ok.value,
                yerr=err,
                fmt=style,
                capsize=3,
                color=SPLIT_COLOURS.get(split),
                label=f"{split} {pop}",
            )
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("target false-positive rate")
    ax.set_ylabel("recall")
    ax.set_title(f"Recall at fixed FPR ({missing} points not measurable: < 10 negatives above)", fontsize=8)
    if ax.has_data():
        ax.legend(fontsize=7)
    return _save(fig, out / "recall_vs_fpr.png")


def plot_histograms(frame: pd.DataFrame, out: Path) -> Path:
    """Score histograms per population (Tier-A, Tier-B, N1, each N2 category), one panel per split."""
    splits = sorted(frame.split.unique())
    fig, axes = plt.subplots(1, len(splits), figsize=(5 * len(splits), 4), squeeze=False)
    bins = np.linspace(0, 1, 41)
    for ax, split in zip(axes[0], splits, strict=True):
        part = frame[frame.split == split]
        groups = {f"Tier-{t}": part[(part.label == 1) & (part.tier == t)] for t in ("A", "B")}
        for cat in sorted(part.loc[part.label == 0, "n2_category"].dropna().unique()):
            groups[cat] = part[(part.label == 0) & (part.n2_category == cat)]
        for name, group in groups.items():
            if len(group):
                ax.hist(group.score, bins=bins, histtype="step", density=True, label=f"{name} ({len(group)})")
        ax.set_yscale("log")
        ax.set_title(split)
        ax.set_xlabel("score")
        ax.legend(fontsize=6)
    return _save(fig, out / "score_histograms.png")


def plot_reliability(frame: pd.DataFrame, n_bins: int, out: Path) -> Path:
    """Observed positive share vs mean score per bin (Wilson intervals), per split."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="black", lw=0.8)
    for split, part in frame.groupby("split"):
        curve = reliability(part.score.to_numpy(dtype=float), part.label.to_numpy(), n_bins)
        filled = curve["count"] > 0
        k = np.rint(curve["positive_share"][filled] * curve["count"][filled]).astype(int)
        ci = np.array([wilson(int(a), int(n)) for a, n in zip(k, curve["count"][filled], strict=True)])
        share = curve["positive_share"][filled]
        ax.errorbar(
            curve["mean_score"][filled],
            share,
            # clipped at 0: Wilson's float ends can sit a rounding error inside a share of 0 or 1
            yerr=np.maximum([share - ci[:, 0], ci[:, 1] - share], 0.0),
            fmt="o-",
            capsize=2,
            color=SPLIT_COLOURS.get(split),
            label=split,
        )
    ax.set_xlabel("mean score in bin")
    ax.set_ylabel("observed positive share")
    ax.set_title("Reliability")
    ax.legend(fontsize=7)
    return _save(fig, out / "reliability.png")


def plot_training(history_json: str, out: Path) -> Path | None:
    """Training loss and validation AUC per epoch."""
    history = json.loads(history_json)
    if not history:
        return None
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(
        epochs, [h["train_loss"] for h in history], "o-", color="tab:grey", label="train loss (weighted BCE)"
    )
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss")
    twin = ax.twinx()
    twin.plot(epochs, [h["val_auc"] for h in history], "s-", color="tab:blue", label="val AUC")
    twin.set_ylabel("val AUC")
    fig.legend(fontsize=7, loc="upper center")
    return _save(fig, out / "training_curves.png")


def _rgb(images: np.ndarray) -> np.ndarray:
    """A simple asinh grz -> RGB stretch per image for display."""
    x = np.nan_to_num(images[..., ::-1], nan=0.0)  # z, r, g -> R, G, B
    scale = np.percentile(np.abs(x), 99.5, axis=(1, 2, 3), keepdims=True) + 1e-9
    return np.clip(np.arcsinh(10 * x / scale) / np.arcsinh(10), 0, 1)


def plot_gallery(
    frame: pd.DataFrame,
    manifest: pd.DataFrame,
    size: int,
    cutout_root: str | None,
    cutout_size: int,
    out: Path,
) -> Path | None:
    """Per split: the ``size`` highest-scoring negatives and ``size`` lowest-scoring Tier-A lenses."""
    picks = []
    for split, part in frame.groupby("split"):
        negs = part[part.label == 0].nlargest(size, "score").assign(kind=f"{split}: top negatives")
        tier_a = (
            part[(part.label == 1) & (part.tier == "A")]
            .nsmallest(size, "score")
            .assign(kind=f"{split}: lowest Tier-A")
        )
        picks += [negs, tier_a]
    chosen = pd.concat(picks).merge(manifest[["sample_id", "cutout_path"]], on="sample_id")
    if chosen.empty:
        return None
    uris = [resolve_uri(p, cutout_root) for p in chosen.cutout_path]
    images = _rgb(read_images(chosen.sample_id.tolist(), uris, cutout_size))
    kinds = list(dict.fromkeys(chosen.kind))
    fig, axes = plt.subplots(len(kinds), size, figsize=(size * 1.1, len(kinds) * 1.25), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, kind in enumerate(kinds):
        idx = np.flatnonzero((chosen.kind == kind).to_numpy())
        axes[r, 0].set_title(kind, fontsize=7, loc="left")
        for c, i in enumerate(idx):
            axes[r, c].imshow(images[i], origin="lower")
            row = chosen.iloc[i]
            label = row.n2_category if row.label == 0 else f"Tier-{row.tier}"
            axes[r, c].text(2, 2, f"{row.score:.3g} {label}", fontsize=5, color="yellow")
    return _save(fig, out / "gallery.png")


#: Side (px) of the simulated-lens gallery's thumbnails.
GALLERY_CROP_PIX = 48


def plot_simulated_lenses(
    lenses: pd.DataFrame,
    cutout_root: str | None,
    cutout_size: int,
    out_dir: str,
    per_row: int = 8,
    bin_width: float = 0.5,
) -> Path | None:
    """``simulated_lenses.png``: the first ``per_row`` simulated training lenses of each theta_E bin
    (``bin_width`` arcsec), labelled with theta_E and arc S/N, so what the finder was taught to call
    a lens can be looked at next to the catalogue's positives (the cutout galleries)."""
    if lenses.empty:
        return None
    bins = np.floor(lenses.theta_e_arcsec.to_numpy() / bin_width).astype(int)
    chosen = lenses.assign(bin=bins).groupby("bin", sort=True).head(per_row)
    uris = [resolve_uri(p, cutout_root) for p in chosen.cutout_path]
    images = read_images(chosen.sample_id.tolist(), uris, cutout_size)
    # the central 12.6" (48 px), where every arc of theta_E <= 3.5" lies, stretched on its own pixels
    start = max((cutout_size - GALLERY_CROP_PIX) // 2, 0)
    images = _rgb(images[:, start : start + GALLERY_CROP_PIX, start : start + GALLERY_CROP_PIX])
    rows = sorted(chosen.bin.unique())
    fig, axes = plt.subplots(len(rows), per_row, figsize=(per_row * 1.1, len(rows) * 1.25), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, b in enumerate(rows):
        idx = np.flatnonzero((chosen.bin == b).to_numpy())
        axes[r, 0].set_title(f'theta_E {b * bin_width:g}-{(b + 1) * bin_width:g}"', fontsize=7, loc="left")
        for c, i in enumerate(idx):
            axes[r, c].imshow(images[i], origin="lower")
            row = chosen.iloc[i]
            axes[r, c].text(
                2, 2, f'{row.theta_e_arcsec:.2f}" S/N {row.arc_snr:.0f}', fontsize=5, color="yellow"
            )
    return _save(fig, Path(out_dir) / "simulated_lenses.png")


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_reports(
    frame: pd.DataFrame,
    metrics: pd.DataFrame,
    runs: pd.DataFrame,
    manifest: pd.DataFrame,
    out_dir: str,
    gallery_size: int,
    calibration_bins: int,
    cutout_root: str | None,
    cutout_size: int,
) -> list[Path]:
    """Every PNG of every run under ``out_dir/<run_id>/``; returns the files written."""
    written: list[Path] = []
    for run in runs.itertuples():
        out = Path(out_dir) / run.run_id
        part = frame[frame.run_id == run.run_id]
        m = metrics[metrics.run_id == run.run_id]
        written += [plot_roc(part, m, out), plot_recall_vs_fpr(m, out), plot_histograms(part, out)]
        written.append(plot_reliability(part, calibration_bins, out))
        for maybe in (
            plot_training(run.history_json, out),
            plot_gallery(part, manifest, gallery_size, cutout_root, cutout_size, out),
        ):
            if maybe is not None:
                written.append(maybe)
    return written
