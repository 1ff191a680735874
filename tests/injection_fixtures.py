"""Test doubles for the injection tests: a tiny torch finder that satisfies the Finder contract
(INTERFACES.md) and blank-sky host cutouts of known PSF and depth written through the cutout store.

``MatchedFilterFinder`` is NOT the project's finder (that is stronglens.training.finder.Finder): it
is a fixed, untrained detector whose behaviour is predictable -- it smooths the r band of the
central 64x64 crop with a Gaussian, measures the noise robustly, ignores the central 0.8" (where a
lens galaxy would sit) and scores the peak S/N -- so the tests can state what completeness must do
(rise with theta_E, fall with seeing and depth) without a trained network.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from stronglens import lensing
from stronglens.cutouts.store import CutoutMeta, cutout_path, write_cutout
from stronglens.injection.grid import psfdepth_from_depth_mag


class MatchedFilterFinder(torch.nn.Module):
    """Peak S/N of a Gaussian-smoothed r band outside the centre -> sigmoid score."""

    crop = 64

    def __init__(self, smooth_sigma_pix: float = 1.5, centre_mask_arcsec: float = 0.8, offset: float = 6.0):
        super().__init__()
        taps = torch.arange(-6, 7, dtype=torch.float32)
        kernel = torch.exp(-0.5 * (taps / smooth_sigma_pix) ** 2)
        self.register_buffer("kernel", kernel / kernel.sum())
        yy, xx = torch.meshgrid(torch.arange(self.crop), torch.arange(self.crop), indexing="ij")
        centre = (self.crop - 1) / 2
        radius = torch.hypot(yy - centre, xx - centre) * lensing.DESI_PIXEL_SCALE
        self.register_buffer("outside", (radius > centre_mask_arcsec).float())
        self.register_buffer(
            "rings", torch.stack([(radius > a) & (radius <= a + 1.0) for a in (0.0, 1.0, 2.0, 3.0)]).float()
        )
        self.offset = offset

    @classmethod
    def load(cls, checkpoint_path: str | Path) -> MatchedFilterFinder:
        """The contract's constructor; this double has no weights, the path is only checked."""
        if not Path(checkpoint_path).exists():
            raise FileNotFoundError(checkpoint_path)
        return cls()

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start = (images.shape[1] - self.crop) // 2
        r = images[:, start : start + self.crop, start : start + self.crop, 1]
        border = torch.cat([r[:, :6].flatten(1), r[:, -6:].flatten(1)], dim=1)
        med = border.median(dim=1).values
        noise = 1.4826 * (border - med[:, None]).abs().median(dim=1).values
        k = self.kernel
        sm = torch.nn.functional.conv2d(
            (r - med[:, None, None])[:, None], k[None, None, :, None], padding=(6, 0)
        )
        sm = torch.nn.functional.conv2d(sm, k[None, None, None, :], padding=(0, 6))[:, 0]
        noise_sm = noise * (k**2).sum()  # white noise through the separable kernel
        snr = (sm * self.outside).flatten(1).amax(dim=1) / noise_sm.clamp_min(1e-12)
        rings = torch.einsum("nyx,ryx->nr", r - med[:, None, None], self.rings) / noise[:, None].clamp_min(
            1e-12
        )
        emb = torch.cat([snr[:, None], rings, r.flatten(1).std(dim=1, keepdim=True) / noise[:, None]], dim=1)
        return torch.sigmoid(snr - self.offset), emb

    @torch.no_grad()
    def score(self, images: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Scores ``(N,)`` in (0, 1) and embeddings ``(N, 6)`` of ``(N, H, W, 3)`` nanomaggy images."""
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be (N, H, W, 3), got {images.shape}")
        out_s, out_e = [], []
        for start in range(0, len(images), batch_size):
            s, e = self(torch.as_tensor(images[start : start + batch_size], dtype=torch.float32))
            out_s.append(s.numpy())
            out_e.append(e.numpy())
        if not out_s:
            return np.zeros(0), np.zeros((0, 6), np.float32)
        return np.concatenate(out_s).astype(np.float64), np.concatenate(out_e)


def blank_hosts(
    root: Path, psf_fwhm_r: np.ndarray, depth_mag_r: np.ndarray, seed: int = 0, split: str = "test"
) -> pa.Table:
    """Pure-noise cutouts (sky-limited, per-pixel sigma from PSF and depth as the renderer does),
    written as NPZ through the store; returns a host table with the columns hosts need."""
    psf_fwhm_r = np.asarray(psf_fwhm_r, dtype=np.float64)
    depth_mag_r = np.asarray(depth_mag_r, dtype=np.float64)
    n = psf_fwhm_r.size
    rng = np.random.default_rng(seed)
    psf = np.stack([psf_fwhm_r * 1.1, psf_fwhm_r, psf_fwhm_r * 0.92], axis=1)
    depth = np.stack([psfdepth_from_depth_mag(depth_mag_r + dm) for dm in (0.4, 0.0, -0.9)], axis=1)
    sigma = np.sqrt(lensing.psf_norm_squared(lensing.gaussian_psf_sigma(psf), lensing.PixelGrid()) / depth)
    paths = []
    now = datetime.now(UTC).isoformat()
    for i in range(n):  # a handful of fixture files
        image = (rng.standard_normal((101, 101, 3)) * sigma[i]).astype(np.float32)
        path = cutout_path(str(root), "{split}/{name}.npz", split=split, name=f"host{i}")
        meta = CutoutMeta(f"host{i}", 150.0, 2.0, "SER", 4, float(psf[i, 2]), 10.0, "fixture", now)
        write_cutout(path, image, meta)
        paths.append(path)
    cols: dict[str, object] = {
        "sample_id": [f"host{i}" for i in range(n)],
        "split": [split] * n,
        "path": paths,
    }
    for j, band in enumerate("grz"):
        cols[f"psfsize_{band}"] = psf[:, j]
        cols[f"psfdepth_{band}"] = depth[:, j]
    return pa.table(cols)
