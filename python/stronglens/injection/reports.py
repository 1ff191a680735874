"""Selection-function reports: completeness heatmaps per depth slice and an HTML gallery.

Heatmaps: one PNG per (depth slice, operating point), theta_E down the rows and PSF FWHM across,
each cell printed with its completeness, host-bootstrap 95% interval and n (grey = unmeasurable), so the
intervals stay legible next to the colour.  Gallery: one HTML file with, per theta_E row, recovered
and missed injections (central 12.6" crops, asinh-stretched grz), inline as base64 PNG.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def _interval(row: object) -> tuple[float, float]:
    """The host-bootstrap 95% interval (the one that carries host-to-host variance); Wilson where a
    cell has too few hosts for a bootstrap."""
    low, high = getattr(row, "host_boot95_low", np.nan), getattr(row, "host_boot95_high", np.nan)
    if np.isfinite(low) and np.isfinite(high):
        return float(low), float(high)
    return float(row.wilson95_low), float(row.wilson95_high)


def write_heatmaps(selection: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """``completeness_depth<d>_<threshold>.png`` per depth slice and operating point."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    thetas = np.sort(selection["theta_e_arcsec"].unique())
    psfs = np.sort(selection["psf_fwhm_arcsec"].unique())
    for (depth, name), part in selection.groupby(["depth_mag", "threshold_name"], sort=True):
        grid = np.full((thetas.size, psfs.size), np.nan)
        labels = np.full(grid.shape, "", dtype=object)
        for row in part.itertuples():  # one figure cell per grid cell (<= a few hundred)
            i, j = np.searchsorted(thetas, row.theta_e_arcsec), np.searchsorted(psfs, row.psf_fwhm_arcsec)
            if row.n_injected > 0:
                grid[i, j] = row.completeness
                low, high = _interval(row)
                labels[i, j] = f"{row.completeness:.2f}\n[{low:.2f},{high:.2f}]\nn={row.n_injected}"
            else:
                labels[i, j] = "no host"
        fig, ax = plt.subplots(figsize=(1.25 * psfs.size + 2, 0.75 * thetas.size + 1.5))
        cmap = plt.get_cmap("viridis").with_extremes(bad="#cccccc")
        im = ax.imshow(np.ma.masked_invalid(grid), origin="lower", cmap=cmap, vmin=0, vmax=1, aspect="auto")
        for i in range(thetas.size):
            for j in range(psfs.size):
                value = grid[i, j]
                colour = "black" if np.isnan(value) or value > 0.6 else "white"
                ax.text(j, i, labels[i, j], ha="center", va="center", fontsize=6.5, color=colour)
        ax.set_xticks(range(psfs.size), [f"{v:.2f}" for v in psfs])
        ax.set_yticks(range(thetas.size), [f"{v:.2f}" for v in thetas])
        ax.set_xlabel('PSF FWHM (")')
        ax.set_ylabel('theta_E (")')
        ax.set_title(
            f"completeness at {name}, 5-sigma depth r = {depth:.1f} (host-bootstrap 95% interval, n)"
        )
        fig.colorbar(im, ax=ax, label="completeness")
        fig.tight_layout()
        path = out / f"completeness_depth{depth:.1f}_{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _rgb(image: np.ndarray) -> np.ndarray:
    """asinh stretch of a grz cutout to RGB (z, r, g as R, G, B), scaled per image."""
    rgb = image[..., ::-1].astype(np.float64)
    scale = np.nanpercentile(np.abs(rgb), 99.5) or 1.0
    return np.clip(np.arcsinh(rgb / (0.1 * scale)) / np.arcsinh(10.0), 0, 1)


def _png(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    plt.imsave(buffer, _rgb(image), format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def write_gallery(
    injections: pd.DataFrame,
    thumbnails: dict[int, np.ndarray],
    threshold_name: str,
    out_dir: str | Path,
    per_row: int = 6,
) -> Path:
    """``gallery_<threshold>.html``: per theta_E row, up to ``per_row`` recovered and missed injections
    (those with thumbnails), captioned with cell, lensed magnitude, arc S/N and score."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kept = injections[injections["injection_id"].isin(list(thumbnails))]
    recovered_col = f"recovered_{threshold_name}"
    parts = [
        "<!doctype html><meta charset='utf-8'><title>injection gallery</title>",
        "<style>body{font:13px sans-serif} figure{display:inline-block;margin:3px;width:150px}"
        " img{width:144px;image-rendering:pixelated} figcaption{font-size:11px}</style>",
        f"<h1>Injections recovered / missed at {html.escape(threshold_name)}</h1>",
    ]
    for theta, row in kept.groupby("theta_e_arcsec", sort=True):
        parts.append(f'<h2>theta_E = {theta:.2f}"</h2>')
        for flag, title in ((True, "recovered"), (False, "missed")):
            chosen = row[row[recovered_col] == flag].head(per_row)
            parts.append(
                f"<h3>{title} ({int((row[recovered_col] == flag).sum())} of {len(row)} shown-eligible)</h3>"
            )
            for r in chosen.itertuples():
                caption = (
                    f'cell {r.cell_id}: PSF {r.psf_fwhm_arcsec:.2f}", depth {r.depth_mag:.1f}'
                    f"{' (degraded host)' if r.host_degraded else ''}<br>r_lensed {r.lensed_mag_r:.1f},"
                    f" S/N {r.arc_snr:.1f}, score {r.score:.3f}"
                )
                parts.append(
                    f"<figure><img src='data:image/png;base64,{_png(thumbnails[r.injection_id])}'>"
                    f"<figcaption>{caption}</figcaption></figure>"
                )
    path = out / f"gallery_{threshold_name}.html"
    path.write_text("\n".join(parts))
    return path
