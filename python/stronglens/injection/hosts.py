"""Host cutouts for every grid cell: native hosts, and better hosts degraded to the cell.

Hosts are TEST-split negatives only (a training or validation sample would let the finder recognise
the host itself).  A host is *native* to the cell whose PSF and depth bins hold its own r-band
``psfsize_r`` and 5-sigma ``psfdepth_r`` depth (:mod:`.grid`).  A cell with fewer than
``min_hosts`` native hosts is filled up with *degraded* hosts: hosts with better seeing
(``psfsize_r <= cell PSF``) and greater depth (``depth_r >= cell depth``), nearest to the cell first,
whose image is convolved with the Gaussian kernel that takes their PSF to the cell's
(``sigma_k^2 = sigma_cell^2 - sigma_host^2``, the same kernel in g, r and z) and given extra
Gaussian noise to reach the cell's depth.  Degradation only ever worsens seeing and depth; a cell
no host can reach (seeing better or depth greater than every host's) is reported unmeasurable.

Noise bookkeeping: a host's per-pixel sky noise is ``sqrt(sum P^2 / psfdepth)`` (the renderer's
convention, :func:`stronglens.lensing.psf_norm_squared`).  Convolution with a normalised kernel
``k`` scales white noise by ``sqrt(sum k^2)``; the added noise makes up the difference to the
cell's per-pixel noise at the cell's PSF and depth (the per-band depths keep the host's colours of
depth: every band is made shallower by the same number of magnitudes as r).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import torch
from numpy.typing import NDArray

from stronglens import lensing
from stronglens.injection.grid import InjectionGrid, depth_mag_from_psfdepth, psfdepth_from_depth_mag

BANDS = ("g", "r", "z")
HOST_COLUMNS = (
    "sample_id",
    "split",
    "path",
    *(f"psfsize_{b}" for b in BANDS),
    *(f"psfdepth_{b}" for b in BANDS),
)


class HostError(ValueError):
    """The host table is unusable (wrong split, missing column, bad value); says which row/column."""


def check_hosts(hosts: pa.Table) -> None:
    """Hosts must be test-split rows with finite positive PSF sizes and depths."""
    missing = [c for c in HOST_COLUMNS if c not in hosts.column_names]
    if missing:
        raise HostError(f"host table misses columns {missing} (it has {hosts.column_names})")
    split = np.asarray(hosts.column("split").to_pylist(), dtype=object)
    bad = np.flatnonzero(split != "test")
    if bad.size:
        raise HostError(
            f"host sample_id={hosts.column('sample_id')[int(bad[0])].as_py()!r} has split "
            f"{split[bad[0]]!r}: hosts must be test-split negatives, never train/val samples"
        )
    for band in BANDS:
        for col in (f"psfsize_{band}", f"psfdepth_{band}"):
            values = hosts.column(col).to_numpy(zero_copy_only=False).astype(np.float64)
            bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
            if bad.size:
                raise HostError(
                    f"host sample_id={hosts.column('sample_id')[int(bad[0])].as_py()!r}: {col}="
                    f"{values[bad[0]]} must be finite and > 0; drop the row from the cutouts or fix the sweep"
                )


def _floats(table: pa.Table, name: str) -> NDArray[np.float64]:
    return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)


def pixel_noise_sigma(psf_fwhm: NDArray[np.float64], psfdepth: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per-pixel sky noise (nanomaggies) for a PSF FWHM (arcsec) and a point-source depth."""
    pns = lensing.psf_norm_squared(lensing.gaussian_psf_sigma(psf_fwhm), lensing.PixelGrid())
    return np.sqrt(pns / psfdepth)


def kernel_sum_squares(sigma_pix: NDArray[np.float64], half_width: int) -> NDArray[np.float64]:
    """``sum k^2`` of the normalised sampled Gaussian kernel of :func:`degrade` (1 for sigma = 0)."""
    taps = np.arange(-half_width, half_width + 1)
    sig = np.maximum(np.asarray(sigma_pix, dtype=np.float64), 1e-9)[..., None]
    k = np.exp(-0.5 * (taps / sig) ** 2)
    k /= k.sum(-1, keepdims=True)
    return np.sum(k * k, -1) ** 2  # separable 2-d kernel: (sum of 1-d squares)^2


def assign_hosts(
    cells: pa.Table, hosts: pa.Table, grid: InjectionGrid, min_hosts: int, max_hosts: int, seed: int
) -> pa.Table:
    """One row per (cell, host) *slot*: which hosts each cell uses and how each is degraded.

    Native hosts come first (a seeded random order, at most ``max_hosts``); if fewer than
    ``min_hosts`` are native, the nearest better hosts fill up to ``min_hosts``
    (distance in steps: ``(d_psf / psf_step)^2 + (d_depth / depth_step)^2``; ties in seeded random
    order).  Columns: ``slot_id, cell_id, host_index`` (row of ``hosts``), ``sample_id, degraded``,
    the slot's effective ``psf_fwhm_{g,r,z}`` and per-pixel ``noise_sigma_{g,r,z}``, the kernel
    ``kernel_sigma_arcsec`` and the extra noise ``added_noise_sigma_{g,r,z}`` (0 for natives).
    """
    if not 1 <= min_hosts <= max_hosts:
        raise ValueError(
            "need 1 <= injection_min_hosts_per_cell <= injection_max_hosts_per_cell, "
            f"got {min_hosts}, {max_hosts}"
        )
    check_hosts(hosts)
    n_hosts = hosts.num_rows
    psf = np.stack([_floats(hosts, f"psfsize_{b}") for b in BANDS], axis=1)
    depth_ivar = np.stack([_floats(hosts, f"psfdepth_{b}") for b in BANDS], axis=1)
    depth_r = depth_mag_from_psfdepth(depth_ivar[:, 1])
    cell_psf = _floats(cells, "psf_fwhm_arcsec")
    cell_depth = _floats(cells, "depth_mag")
    cell_ids = cells.column("cell_id").to_numpy()
    host_psf_bin = grid.psf_fwhm.bin_index(psf[:, 1])
    host_depth_bin = grid.depth.bin_index(depth_r)
    native = (host_psf_bin[None, :] == cells.column("psf_index").to_numpy()[:, None]) & (
        host_depth_bin[None, :] == cells.column("depth_index").to_numpy()[:, None]
    )
    better = (psf[None, :, 1] <= cell_psf[:, None] + 1e-9) & (depth_r[None, :] >= cell_depth[:, None] - 1e-9)
    eligible = better & ~native
    distance = ((cell_psf[:, None] - psf[None, :, 1]) / grid.psf_fwhm.step) ** 2 + (
        (depth_r[None, :] - cell_depth[:, None]) / grid.depth.step
    ) ** 2
    # deterministic random tie-break, independent of the table's row order
    order_ids = np.argsort(np.asarray(hosts.column("sample_id").to_pylist(), dtype=str), kind="stable")
    tie = np.empty(n_hosts)
    tie[order_ids] = np.random.Generator(np.random.PCG64(seed)).permutation(n_hosts) / max(n_hosts, 1)
    priority = np.where(
        native, tie[None, :], np.where(eligible, 1.0 + distance + 1e-6 * tie[None, :], np.inf)
    )
    order = np.argsort(priority, axis=1, kind="stable")
    n_native = native.sum(axis=1)
    n_eligible = eligible.sum(axis=1)
    n_take = np.where(
        n_native >= min_hosts,
        np.minimum(n_native, max_hosts),
        n_native + np.minimum(min_hosts - n_native, n_eligible),
    )
    rank = np.arange(n_hosts)[None, :]
    take = rank < n_take[:, None]
    cell_row, _ = np.nonzero(take)
    host_index = order[take]
    is_degraded = ~native[cell_row, host_index]

    host_psf = psf[host_index]  # (S, 3)
    host_ivar = depth_ivar[host_index]
    target_psf_r = np.where(is_degraded, cell_psf[cell_row], host_psf[:, 1])
    kernel_var = np.maximum(
        (target_psf_r / lensing.FWHM_PER_SIGMA) ** 2 - (host_psf[:, 1] / lensing.FWHM_PER_SIGMA) ** 2, 0
    )
    kernel_sigma = np.sqrt(kernel_var)
    slot_psf = lensing.FWHM_PER_SIGMA * np.sqrt(
        (host_psf / lensing.FWHM_PER_SIGMA) ** 2 + kernel_var[:, None]
    )
    host_noise = pixel_noise_sigma(host_psf, host_ivar)
    ivar_scale = np.where(is_degraded, psfdepth_from_depth_mag(cell_depth[cell_row]) / host_ivar[:, 1], 1.0)
    target_noise = pixel_noise_sigma(slot_psf, host_ivar * ivar_scale[:, None])
    half = degrade_half_width(kernel_sigma)
    smoothed = (
        host_noise * np.sqrt(kernel_sum_squares(kernel_sigma / lensing.DESI_PIXEL_SCALE, half))[:, None]
    )
    added = np.where(is_degraded[:, None], np.sqrt(np.maximum(target_noise**2 - smoothed**2, 0.0)), 0.0)
    noise = np.where(is_degraded[:, None], np.sqrt(smoothed**2 + added**2), host_noise)
    columns: dict[str, object] = {
        "slot_id": pa.array(np.arange(host_index.size), pa.int32()),
        "cell_id": pa.array(cell_ids[cell_row], pa.int32()),
        "host_index": pa.array(host_index, pa.int32()),
        "sample_id": hosts.column("sample_id").take(pa.array(host_index)),
        "degraded": pa.array(is_degraded),
        "host_psf_fwhm_r": host_psf[:, 1],
        "host_depth_mag_r": depth_r[host_index],
        "kernel_sigma_arcsec": kernel_sigma,
    }
    for i, band in enumerate(BANDS):
        columns[f"psf_fwhm_{band}"] = slot_psf[:, i]
        columns[f"noise_sigma_{band}"] = noise[:, i]
        columns[f"added_noise_sigma_{band}"] = added[:, i]
    return pa.table(columns)


def degrade_half_width(kernel_sigma_arcsec: NDArray[np.float64]) -> int:
    """Half-width (pixels) of the degradation kernels: 4 sigma of the widest."""
    widest = float(np.max(kernel_sigma_arcsec, initial=0.0)) / lensing.DESI_PIXEL_SCALE
    return int(np.ceil(4.0 * widest))


def coverage(cells: pa.Table, slots: pa.Table) -> pa.Table:
    """Per cell: native and degraded host counts and whether it can be measured (and why not)."""
    n_cells = cells.num_rows
    cell_pos = np.searchsorted(cells.column("cell_id").to_numpy(), slots.column("cell_id").to_numpy())
    degraded = slots.column("degraded").to_numpy(zero_copy_only=False)
    n_native = np.bincount(cell_pos[~degraded], minlength=n_cells)
    n_degraded = np.bincount(cell_pos[degraded], minlength=n_cells)
    measurable = (n_native + n_degraded) > 0
    reason = np.where(
        measurable,
        None,
        "no test-split host has seeing at least as good and depth at least as deep as the cell",
    )
    return pa.table(
        {
            "cell_id": cells.column("cell_id"),
            "n_native_hosts": pa.array(n_native, pa.int32()),
            "n_degraded_hosts": pa.array(n_degraded, pa.int32()),
            "is_measurable": pa.array(measurable),
            "unmeasurable_reason": pa.array(reason.tolist(), pa.string()),
        }
    )


def plan_injections(cells: pa.Table, slots: pa.Table) -> pa.Table:
    """One row per injection: ``injection_id`` (cell-major), ``cell_id``, ``slot_id``; each measurable
    cell gets its ``n_injections`` spread round-robin over its slots (hosts used equally)."""
    slot_cells = slots.column("cell_id").to_numpy()
    cell_ids = cells.column("cell_id").to_numpy()
    counts = np.bincount(np.searchsorted(cell_ids, slot_cells), minlength=cells.num_rows)
    first_slot = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n_inj = np.where(counts > 0, cells.column("n_injections").to_numpy(), 0)
    cell_of = np.repeat(np.arange(cells.num_rows), n_inj)
    k = np.arange(cell_of.size) - np.repeat(np.cumsum(n_inj) - n_inj, n_inj)
    slot = first_slot[cell_of] + k % counts[cell_of]
    return pa.table(
        {
            "injection_id": pa.array(np.arange(cell_of.size), pa.int64()),
            "cell_id": pa.array(cell_ids[cell_of], pa.int32()),
            "slot_id": pa.array(slots.column("slot_id").to_numpy()[slot], pa.int32()),
        }
    )


def degrade(
    images: torch.Tensor,
    kernel_sigma_arcsec: Sequence[float] | NDArray[np.float64],
    added_noise_sigma: NDArray[np.float64],
    generators: Sequence[torch.Generator | None],
) -> torch.Tensor:
    """Convolve ``images`` (``(N, H, W, 3)``) with per-image Gaussian kernels (same in every band) and
    add white noise of ``added_noise_sigma`` (``(N, 3)``), one seeded generator per image.

    The kernel is a normalised sampled Gaussian, applied as ``T X T^T`` with rows renormalised over
    the pixels inside the cutout, so edges keep their sky level instead of darkening."""
    sigma = np.asarray(kernel_sigma_arcsec, dtype=np.float64) / lensing.DESI_PIXEL_SCALE
    _n, height, width, _ = images.shape
    if height != width:
        raise ValueError(f"degrade expects square cutouts, got {height}x{width}")
    out = images.permute(0, 3, 1, 2)
    half = int(np.ceil(4.0 * sigma.max(initial=0.0)))
    if half > 0:
        idx = torch.arange(height, device=images.device, dtype=images.dtype)
        d = idx[:, None] - idx[None, :]
        sig = torch.as_tensor(np.maximum(sigma, 1e-9), device=images.device, dtype=images.dtype)[
            :, None, None
        ]
        t = torch.exp(-0.5 * (d / sig) ** 2) * (d.abs() <= half)
        t = t / t.sum(-1, keepdim=True)
        t = torch.where(
            torch.as_tensor(sigma > 0, device=images.device)[:, None, None],
            t,
            torch.eye(height, device=images.device, dtype=images.dtype),
        )
        out = t[:, None] @ out @ t[:, None].transpose(-1, -2)
    out = out.permute(0, 2, 3, 1).contiguous()
    added = torch.as_tensor(np.asarray(added_noise_sigma), device=images.device, dtype=images.dtype)
    for i, gen in enumerate(generators):
        if gen is not None and bool((added[i] > 0).any()):
            out[i] += (
                torch.randn(out.shape[1:], generator=gen, device=images.device, dtype=images.dtype) * added[i]
            )
    return out
