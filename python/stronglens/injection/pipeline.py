"""The injection-recovery run: hosts -> (degraded) host images -> arcs -> finder scores -> truth.

Work is streamed in cell-major batches (``batch_size`` injections; a batch never holds more than a
few hundred 101x101x3 images), so memory stays flat whatever the grid; only the per-injection truth,
scores, a seeded subset of embeddings (for the realism probe) and a few thumbnails per cell (for
the gallery) are kept.  Everything random is seeded: parameters from one generator
(:mod:`.sampling`), degraded-host noise per slot and arc Poisson noise per batch from
``torch.Generator``s keyed by the seed and the slot / first injection, so a rerun with the same
seed gives identical injections.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import torch
from numpy.typing import NDArray

from stronglens.cutouts.store import read_cutout
from stronglens.injection.hosts import degrade
from stronglens.injection.priors import Priors
from stronglens.injection.render import (
    ArcParams,
    RenderSettings,
    arc_truth,
    paste,
    poisson_noise,
    render_arcs,
)
from stronglens.injection.sampling import draw_arc_params
from stronglens.injection.scoring import FinderLike

#: Central crop kept per gallery thumbnail (pixels): 48 x 0.262" = 12.6", enough for theta_E <= 3".
THUMBNAIL_PIX = 48


@dataclass(frozen=True)
class InjectionSettings:
    """Run settings (dbt vars ``injection_*``)."""

    seed: int = 42
    batch_size: int = 256
    poisson_noise: bool = False
    arc_gain_e_per_nmgy: float = 1.0e4
    annulus_halfwidth_arcsec: float = 0.5
    probe_sample: int = 2000
    gallery_per_cell: int = 2
    device: str = "auto"
    render: RenderSettings = field(default_factory=RenderSettings)

    def torch_device(self) -> torch.device:
        """``auto``: CUDA when present, else CPU."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


@dataclass
class InjectionRun:
    """What a run produced: the per-injection table, thumbnails and timings (seconds)."""

    table: pa.Table
    thumbnails: dict[int, np.ndarray]
    seconds: dict[str, float]
    device: str


def load_host_images(paths: Sequence[str], concurrency: int = 8) -> np.ndarray:
    """``(H, 101, 101, 3)`` float32 host cutouts read through the cutout store (validated)."""
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        arrays = list(pool.map(lambda p: read_cutout(p)[0], paths))
    return np.stack(arrays) if arrays else np.zeros((0, 101, 101, 3), np.float32)


def _slot_generators(slot_ids: NDArray[np.int64], seed: int, device: torch.device) -> list[torch.Generator]:
    gens = []
    for slot in slot_ids:  # one generator per degraded host slot of the batch (a handful)
        gen = torch.Generator(device=device)
        gen.manual_seed(int(seed) * 1_000_003 + int(slot))
        gens.append(gen)
    return gens


def run_injections(
    cells: pa.Table,
    slots: pa.Table,
    plan: pa.Table,
    host_images: np.ndarray,
    priors: Priors,
    finder: FinderLike,
    settings: InjectionSettings,
    zero_flux: NDArray[np.bool_] | None = None,
) -> InjectionRun:
    """Render, inject and score every planned injection.

    ``host_images[i]`` is row ``i`` of the host table (``slots.host_index``).  ``zero_flux`` (per
    planned injection) switches a source off: the sanity check that a host with nothing injected
    is recovered no more often than the FPR it was thresholded at.
    """
    device = settings.torch_device()
    n = plan.num_rows
    cell_ids = cells.column("cell_id").to_numpy()
    cell_pos = np.searchsorted(cell_ids, plan.column("cell_id").to_numpy())
    slot_ids = plan.column("slot_id").to_numpy().astype(np.int64)
    theta_e = cells.column("theta_e_arcsec").to_numpy()[cell_pos]
    params, extra = draw_arc_params(theta_e, priors, settings.seed)
    if zero_flux is not None:
        off = np.asarray(zero_flux, dtype=bool)
        params = ArcParams(
            **{
                name: np.where(off, 0.0, value) if name.startswith("flux_") else value
                for name, value in vars(params).items()
            }
        )
    slot_col = {name: slots.column(name).to_numpy(zero_copy_only=False) for name in slots.column_names}
    psf = np.stack([slot_col[f"psf_fwhm_{b}"][slot_ids] for b in "grz"], axis=1)
    noise_r = slot_col["noise_sigma_r"][slot_ids]
    rng = np.random.Generator(np.random.PCG64([settings.seed, 1]))
    probe_rows = np.zeros(n, dtype=bool)
    probe_rows[rng.choice(n, size=min(settings.probe_sample, n), replace=False)] = True
    first_of_cell = np.r_[True, cell_pos[1:] != cell_pos[:-1]] if n else np.zeros(0, bool)
    rank_in_cell = np.arange(n) - np.maximum.accumulate(np.where(first_of_cell, np.arange(n), 0))
    keep_thumb = rank_in_cell < settings.gallery_per_cell

    hosts_t = torch.as_tensor(host_images, device=device)
    scores = np.empty(n, np.float64)
    truth_parts: list[dict[str, np.ndarray]] = []
    embeddings: list[np.ndarray | None] = [None] * n
    thumbnails: dict[int, np.ndarray] = {}
    seconds = {"render": 0.0, "score": 0.0}
    for start in range(0, n, settings.batch_size):
        stop = min(start + settings.batch_size, n)
        t0 = time.perf_counter()
        batch_slots = slot_ids[start:stop]
        uniq, inverse = np.unique(batch_slots, return_inverse=True)
        base = hosts_t[torch.as_tensor(slot_col["host_index"][uniq].astype(np.int64), device=device)]
        degraded = slot_col["degraded"][uniq]
        if degraded.any():
            idx = np.flatnonzero(degraded)
            base = base.clone()
            added = np.stack([slot_col[f"added_noise_sigma_{b}"][uniq[idx]] for b in "grz"], axis=1)
            base[torch.as_tensor(idx, device=device)] = degrade(
                base[torch.as_tensor(idx, device=device)],
                slot_col["kernel_sigma_arcsec"][uniq[idx]],
                added,
                _slot_generators(uniq[idx], settings.seed, device),
            )
        hosts = base[torch.as_tensor(inverse, device=device)]
        batch = params.take(slice(start, stop))
        rendered = render_arcs(batch, psf[start:stop], settings.render, device)
        stamps = rendered.stamps
        if settings.poisson_noise:
            gen = torch.Generator(device=device)
            gen.manual_seed(int(settings.seed) * 7_919 + start)
            stamps = poisson_noise(stamps, settings.arc_gain_e_per_nmgy, gen)
        images = paste(hosts, stamps, rendered.half)
        truth_parts.append(
            arc_truth(
                rendered,
                batch,
                noise_r[start:stop],
                settings.annulus_halfwidth_arcsec,
                settings.render.pixel_scale,
            )
        )
        images_np = images.cpu().numpy()
        t1 = time.perf_counter()
        batch_scores, batch_emb = finder.score(images_np, batch_size=settings.batch_size)
        t2 = time.perf_counter()
        seconds["render"] += t1 - t0
        seconds["score"] += t2 - t1
        scores[start:stop] = np.asarray(batch_scores, dtype=np.float64)
        for i in np.flatnonzero(probe_rows[start:stop]):
            embeddings[start + i] = np.asarray(batch_emb[i], dtype=np.float32)
        c = (images_np.shape[1] - THUMBNAIL_PIX) // 2
        for i in np.flatnonzero(keep_thumb[start:stop]):
            thumbnails[start + i] = images_np[i, c : c + THUMBNAIL_PIX, c : c + THUMBNAIL_PIX].copy()

    truth = {
        k: np.concatenate([part[k] for part in truth_parts]) if truth_parts else np.zeros(0)
        for k in ("magnification", "lensed_mag_r", "arc_snr", "arc_flux_annulus")
    }
    table = _injection_table(
        cells, cell_pos, plan, slot_col, slot_ids, params, extra, truth, scores, embeddings, psf, noise_r
    )
    return InjectionRun(table, thumbnails, seconds, str(device))


def _injection_table(
    cells: pa.Table,
    cell_pos: NDArray[np.intp],
    plan: pa.Table,
    slot_col: dict[str, np.ndarray],
    slot_ids: NDArray[np.int64],
    params: ArcParams,
    extra: dict[str, np.ndarray],
    truth: dict[str, np.ndarray],
    scores: np.ndarray,
    embeddings: list[np.ndarray | None],
    psf: np.ndarray,
    noise_r: np.ndarray,
) -> pa.Table:
    cols: dict[str, object] = {
        "injection_id": plan.column("injection_id"),
        "cell_id": plan.column("cell_id"),
        "slot_id": plan.column("slot_id"),
        "theta_e_arcsec": params.theta_e,
        "psf_fwhm_arcsec": cells.column("psf_fwhm_arcsec").to_numpy()[cell_pos],
        "depth_mag": cells.column("depth_mag").to_numpy()[cell_pos],
        "host_sample_id": pa.array(slot_col["sample_id"][slot_ids], pa.string()),
        "host_degraded": pa.array(slot_col["degraded"][slot_ids]),
        "host_psf_fwhm_r": slot_col["host_psf_fwhm_r"][slot_ids],
        "host_depth_mag_r": slot_col["host_depth_mag_r"][slot_ids],
        "psf_fwhm_g": psf[:, 0],
        "psf_fwhm_r": psf[:, 1],
        "psf_fwhm_z": psf[:, 2],
        "noise_sigma_r": noise_r,
        "lens_q": params.lens_q,
        "lens_phi": params.lens_phi,
        "lens_x0_arcsec": params.lens_x0,
        "lens_y0_arcsec": params.lens_y0,
        "shear_g1": params.shear_g1,
        "shear_g2": params.shear_g2,
        "src_mag_r": extra["src_mag_r"],
        "src_g_minus_r": extra["src_g_minus_r"],
        "src_r_minus_z": extra["src_r_minus_z"],
        "src_flux_g": params.flux_g,
        "src_flux_r": params.flux_r,
        "src_flux_z": params.flux_z,
        "src_r_e_arcsec": params.src_r_e,
        "src_sersic_n": params.src_n,
        "src_q": params.src_q,
        "src_phi": params.src_phi,
        "src_x0_arcsec": params.src_x0,
        "src_y0_arcsec": params.src_y0,
        "beta_arcsec": extra["beta_arcsec"],
        "beta_over_theta_e": extra["beta_over_theta_e"],
        **truth,
        "score": scores,
        "embedding": pa.array(embeddings, pa.list_(pa.float32())),
    }
    return pa.table(cols)
