"""PNG figures written with each build: a mosaic of sample cutouts and a plot of the shortcut audit.

Both draw on matplotlib's non-interactive Agg canvas (no display on build machines) through the
object-oriented ``Figure`` API, never ``pyplot``'s global state or ``matplotlib.use``, so they are
safe to call from dbt Python models and threads and leave the caller's backend alone.

RGB composites (:func:`rgb_composite`) follow Lupton et al. (2004) as the Legacy Survey viewer's
``sdss_rgb`` does: each band is scaled (``scale * image + offset``, clipped at 0; the per-band
scales even out the bands' typical brightness so a red galaxy looks orange-yellow and a
star-forming arc blue), the mean intensity ``I`` over bands is compressed with
``asinh(Q I) / sqrt(Q)`` -- linear for faint sky noise, logarithmic for bright cores, so faint arcs
next to a bright lens stay visible -- and every band is multiplied by ``asinh(Q I) / (sqrt(Q) I)``,
which keeps each pixel's colour while compressing its brightness.  Channels: red = z, green = r,
blue = g.  A pixel whose brightest channel exceeds 1 is divided by it (hue kept, not clipped to
white); non-finite pixels are painted magenta so holes cannot go unnoticed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import offset_copy
from numpy.typing import NDArray

from stronglens.cutouts.audit import DEFAULT_FLAG_THRESHOLD

#: colour of non-finite pixels in composites
HOLE_RGB = (1.0, 0.0, 1.0)
_SCOPE_KIND_TITLES = {
    "all": "all positives vs all negatives",
    "split": "per split",
    "negative_class": "positives vs N1 / each N2 category",
    "arc_free": "arc-free twins of the positives vs all negatives / N1 (host and pipeline only)",
}


@dataclass(frozen=True)
class RGBStretch:
    """Parameters of :func:`rgb_composite`: per-band ``scales`` (multiplying nanomaggies/pixel),
    an ``offset`` added before clipping at 0 (lifts the sky slightly above black), the asinh
    softening ``q``, and which band feeds each of the red, green, blue channels."""

    scales: Mapping[str, float] = field(default_factory=lambda: {"g": 6.0, "r": 3.4, "z": 2.2})
    offset: float = 0.03
    q: float = 20.0
    rgb_bands: tuple[str, str, str] = ("z", "r", "g")


def rgb_composite(
    cutout: NDArray[np.floating], bands: Sequence[str] = ("g", "r", "z"), stretch: RGBStretch | None = None
) -> NDArray[np.float64]:
    """RGB image in [0, 1] ``(..., H, W, 3)`` of cutouts ``(..., H, W, len(bands))`` (see module doc)."""
    stretch = stretch or RGBStretch()
    image = np.asarray(cutout, dtype=np.float64)
    if image.shape[-1] != len(bands):
        raise ValueError(f"cutout has {image.shape[-1]} channels, bands are {tuple(bands)}")
    missing = [b for b in stretch.rgb_bands if b not in bands or b not in stretch.scales]
    if missing:
        raise ValueError(
            f"RGB bands {missing} are not among the cutout bands {tuple(bands)} or have no scale"
        )
    index = [list(bands).index(b) for b in stretch.rgb_bands]
    scale = np.array([stretch.scales[b] for b in stretch.rgb_bands])
    planes = image[..., index]
    hole = ~np.all(np.isfinite(planes), axis=-1)
    scaled = np.maximum(np.where(np.isfinite(planes), planes, 0.0) * scale + stretch.offset, 0.0)
    intensity = scaled.mean(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        gain = np.where(
            intensity > 0, np.arcsinh(stretch.q * intensity) / (np.sqrt(stretch.q) * intensity), 0.0
        )
    rgb = scaled * gain
    rgb /= np.maximum(rgb.max(axis=-1, keepdims=True), 1.0)
    rgb[hole] = HOLE_RGB
    return rgb


def _save(figure: Figure, path: str | Path, dpi: int) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(target, dpi=dpi, format="png")
    return target


def mosaic_png(
    cutouts: NDArray[np.floating],
    groups: Sequence[str],
    path: str | Path,
    titles: Sequence[str] | None = None,
    *,
    per_group: int = 8,
    group_order: Sequence[str] | None = None,
    bands: Sequence[str] = ("g", "r", "z"),
    stretch: RGBStretch | None = None,
    panel_inches: float = 1.5,
    dpi: int = 110,
    suptitle: str | None = "Sample cutouts (RGB = z, r, g; asinh stretch)",
) -> Path:
    """A grid of RGB composites, one row per group, and write it as PNG at ``path``.

    ``groups`` gives each cutout's group (e.g. ``positive``, ``N1``, an N2 category); rows follow
    ``group_order`` (default: first appearance) and show the first ``per_group`` cutouts of the
    group in input order (the caller picks the samples, e.g. a seeded draw).  ``titles`` label each
    panel (e.g. sample id and grade).  Cutouts are drawn as the FITS array lies (row 0 at the
    bottom): North up, East left, as in the Legacy Survey viewer.  Returns the path written.
    """
    images = np.asarray(cutouts)
    labels = np.asarray(list(groups), dtype=object)
    if images.ndim != 4 or labels.shape != (images.shape[0],):
        raise ValueError(
            f"mosaic_png: cutouts {images.shape} need shape (N, H, W, bands) and one group per cutout "
            f"(got {labels.shape[0]})"
        )
    if titles is not None and len(titles) != images.shape[0]:
        raise ValueError(f"mosaic_png: {len(titles)} titles for {images.shape[0]} cutouts")
    order = list(group_order) if group_order is not None else list(dict.fromkeys(labels.tolist()))
    if not order or per_group < 1:
        raise ValueError("mosaic_png: nothing to draw (no groups, or per_group < 1)")
    rows = [np.flatnonzero(labels == g)[:per_group] for g in order]
    n_cols = max(1, max(r.size for r in rows))
    shown = np.concatenate(rows)
    rgb = rgb_composite(images[shown], bands, stretch)  # only the cutouts drawn, in drawing order
    first_of_row = np.cumsum([0] + [r.size for r in rows])
    label_inches = 0.4 + 0.095 * max(len(str(g)) for g in order)  # room for the longest group name
    figure = Figure(
        figsize=(label_inches + n_cols * panel_inches, 0.5 + len(order) * (panel_inches + 0.25)), dpi=dpi
    )
    grid = figure.add_gridspec(
        len(order),
        n_cols,
        left=label_inches / (label_inches + n_cols * panel_inches),
        right=0.995,
        top=1.0 - 0.5 / (0.5 + len(order) * (panel_inches + 0.25)),
        bottom=0.01,
        wspace=0.04,
        hspace=0.22,
    )
    for r, (group, members) in enumerate(zip(order, rows, strict=True)):
        for c in range(n_cols):
            ax = figure.add_subplot(grid[r, c])
            ax.set_xticks([])
            ax.set_yticks([])
            if c < members.size:
                ax.imshow(rgb[first_of_row[r] + c], origin="lower", interpolation="nearest")
                if titles is not None:
                    ax.set_title(str(titles[members[c]]), fontsize=7, pad=2)
            else:
                ax.set_axis_off()
            if c == 0:
                ax.set_ylabel(f"{group}\n(n={int(np.sum(labels == group))})", fontsize=10, rotation=0,
                              ha="right", va="center", labelpad=8)  # fmt: skip
                if members.size == 0:
                    ax.set_axis_on()
                    ax.set_xticks([])
                    ax.set_yticks([])
                    ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes, fontsize=8)
    if suptitle:
        figure.suptitle(suptitle, fontsize=11)
    return _save(figure, path, dpi)


def audit_png(
    audit: pd.DataFrame,
    path: str | Path,
    *,
    flag_threshold: float = DEFAULT_FLAG_THRESHOLD,
    title: str | None = "Shortcut audit: AUC of each QA feature alone (positives vs negatives)",
    dpi: int = 110,
) -> Path:
    """Plot :func:`stronglens.cutouts.audit.shortcut_audit`'s result and write it as PNG at ``path``.

    One row per (feature, band); one panel per scope kind (all / per split / per negative class),
    several scopes of a panel side by side in colour.  Dots are AUCs with their bootstrap CIs; the
    grey band is the unflagged zone ``0.5 +- flag_threshold`` around the 0.5 chance line; flagged
    points are drawn large and ringed in red, and rows with any flag have red labels.
    """
    required = {"feature", "band", "scope_kind", "scope", "auc", "auc_lo", "auc_hi", "flagged"}
    missing = sorted(required - set(audit.columns))
    if missing:
        raise ValueError(f"audit_png: audit table lacks columns {missing}; pass shortcut_audit's output")
    if audit.empty:
        raise ValueError("audit_png: the audit table is empty")
    frame = audit.assign(band=audit["band"].astype("string").fillna(""))
    keys = frame[["feature", "band"]].drop_duplicates()
    labels = [f"{f} [{b}]" if b else f for f, b in keys.itertuples(index=False)]
    row_of = {(f, b): i for i, (f, b) in enumerate(keys.itertuples(index=False))}
    flagged_rows = {
        row_of[(f, b)] for f, b in frame.loc[frame["flagged"], ["feature", "band"]].itertuples(index=False)
    }
    kinds = [k for k in _SCOPE_KIND_TITLES if k in set(frame["scope_kind"])]
    kinds += [k for k in dict.fromkeys(frame["scope_kind"]) if k not in kinds]
    n_rows = len(labels)
    bands_in_order = keys["band"].to_numpy()
    band_breaks = np.flatnonzero(bands_in_order[1:] != bands_in_order[:-1]) + 0.5  # lines between bands
    height = 2.0 + 0.24 * n_rows
    figure = Figure(figsize=(3.0 + 4.2 * len(kinds), height), dpi=dpi)
    axes = figure.subplots(1, len(kinds), sharey=True, squeeze=False)[0]
    colours = matplotlib.colormaps["tab10"].colors
    y = np.arange(n_rows)
    for ax, kind in zip(axes, kinds, strict=True):
        part = frame[frame["scope_kind"] == kind]
        scopes = list(dict.fromkeys(part["scope"]))
        offsets = (np.arange(len(scopes)) - (len(scopes) - 1) / 2) * min(0.8 / max(len(scopes), 1), 0.2)
        ax.axvspan(0.5 - flag_threshold, 0.5 + flag_threshold, color="0.92", zorder=0)
        ax.axvline(0.5, color="0.35", lw=1.0, ls="--", zorder=1)
        for edge in (0.5 - flag_threshold, 0.5 + flag_threshold):
            ax.axvline(edge, color="0.6", lw=0.8, ls=":", zorder=1)
        handles = []
        for s, scope in enumerate(scopes):
            rows = part[part["scope"] == scope]
            ys = (
                np.array([row_of[(f, b)] for f, b in rows[["feature", "band"]].itertuples(index=False)])
                + offsets[s]
            )
            colour = colours[s % len(colours)] if len(scopes) > 1 else "0.15"
            auc = rows["auc"].to_numpy(dtype=float)
            err = np.vstack(
                [auc - rows["auc_lo"].to_numpy(dtype=float), rows["auc_hi"].to_numpy(dtype=float) - auc]
            )
            ax.errorbar(auc, ys, xerr=np.nan_to_num(np.clip(err, 0, None)), fmt="o", ms=3.5, color=colour,
                        ecolor=colour, elinewidth=1.0, capsize=0, zorder=3)  # fmt: skip
            hit = rows["flagged"].to_numpy(dtype=bool)
            ax.scatter(auc[hit], ys[hit], s=70, facecolors="none", edgecolors="red", linewidths=1.6, zorder=4)
            handles.append(Line2D([], [], marker="o", ls="", color=colour, label=str(scope)))
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(n_rows - 0.5, -0.5)
        ax.set_xlabel("AUC (feature alone)")
        ax.set_title(_SCOPE_KIND_TITLES.get(kind, kind), fontsize=10)
        ax.grid(axis="y", color="0.94", lw=0.6, zorder=0)
        for boundary in band_breaks:
            ax.axhline(boundary, color="0.55", lw=0.8, zorder=1)
        if len(scopes) > 1:  # below the panel, so it never hides a point
            below_axis = offset_copy(ax.transAxes, fig=figure, y=-0.42, units="inches")
            ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                      bbox_transform=below_axis, ncol=min(len(scopes), 4), frameon=False)  # fmt: skip
    axes[0].set_yticks(y, labels, fontsize=8)
    for i, tick in enumerate(axes[0].get_yticklabels()):
        if i in flagged_rows:
            tick.set_color("red")
            tick.set_fontweight("bold")
    key = [
        Line2D([], [], marker="o", ls="", mfc="none", mec="red", mew=1.6, ms=8, label="flagged shortcut"),
        Line2D(
            [], [], color="0.6", lw=6, alpha=0.4, label=f"unflagged zone (|AUC - 0.5| < {flag_threshold:g})"
        ),
    ]
    figure.legend(handles=key, loc="upper right", fontsize=8, ncol=2, frameon=False)
    if title:
        figure.suptitle(title, fontsize=11, x=0.02, ha="left")
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.55 / height))
    return _save(figure, path, dpi)


def gallery_png(
    cutouts: NDArray[np.floating],
    titles: Sequence[str],
    path: str | Path,
    *,
    title: str,
    n_cols: int = 6,
    bands: Sequence[str] = ("g", "r", "z"),
    stretch: RGBStretch | None = None,
    panel_inches: float = 1.6,
    dpi: int = 110,
) -> Path:
    """A grid of RGB composites of one group (an N2 category, N1 or the positives), each panel
    titled (e.g. the sample id and, for positives, theta_E), written as PNG at ``path``."""
    images = np.asarray(cutouts)
    if images.ndim != 4 or len(titles) != images.shape[0] or images.shape[0] == 0:
        raise ValueError(f"gallery_png: need (N>0, H, W, bands) cutouts and N titles, got {images.shape}")
    n = images.shape[0]
    cols = min(n_cols, n)
    rows = -(-n // cols)
    rgb = rgb_composite(images, bands, stretch)
    figure = Figure(figsize=(cols * panel_inches, rows * (panel_inches + 0.22) + 0.5), dpi=dpi)
    top = 1 - 0.5 / (rows * 1.8 + 0.5)
    grid = figure.add_gridspec(
        rows, cols, left=0.01, right=0.99, bottom=0.01, top=top, wspace=0.04, hspace=0.25
    )
    for k in range(rows * cols):
        ax = figure.add_subplot(grid[k // cols, k % cols])
        ax.set_xticks([])
        ax.set_yticks([])
        if k < n:
            ax.imshow(rgb[k], origin="lower", interpolation="nearest")
            ax.set_title(str(titles[k]), fontsize=7, pad=2)
        else:
            ax.set_axis_off()
    figure.suptitle(title, fontsize=11)
    return _save(figure, path, dpi)
