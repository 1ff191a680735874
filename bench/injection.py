"""Injection benchmark: injections/s (render + inject + score) of the torch pipeline against a
per-injection loop that renders the same injections with lenstronomy (the peer), in the same run.

    python -m bench.injection [--n 2048] [--peer-n 48] [--batch-size 256] [--threads 2]
                              [--checkpoint PATH] [--device cpu|cuda|auto] [--repeats 3] [--json PATH]

Both sides inject the same drawn arcs (default priors, theta_E over the grid's 11 values, PSF FWHM
over its 7) into the same blank-sky 101x101x3 hosts and score every image with the same scorer in
batches: the trained finder when ``--checkpoint`` is given (stronglens.training.finder.Finder),
otherwise a randomly initialised stride-2 CNN of the default finder's size class on a 64x64 crop
(scoring costs the same whatever the weights).  The peer builds a lenstronomy ImageModel per
injection and band (SIE + SHEAR, SERSIC_ELLIPSE, 4x supersampling everywhere, Gaussian PSF), the
straightforward way injection codes call it; ours is :func:`stronglens.injection.pipeline.run_injections`.
The peer's rate is measured on its first ``--peer-n`` injections (it is ~100x slower); both figures
are medians of ``--repeats`` runs.  Also printed: the peer/ours r-band flux ratio on the shared
injections (a check that both render the same arcs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from stronglens import lensing
from stronglens.injection.grid import GridAxis, InjectionGrid, psfdepth_from_depth_mag
from stronglens.injection.hosts import pixel_noise_sigma
from stronglens.injection.pipeline import InjectionSettings, run_injections
from stronglens.injection.priors import load_priors
from stronglens.injection.render import ArcParams
from stronglens.injection.sampling import draw_arc_params

GRID = InjectionGrid(
    GridAxis("t", 0.5, 3.0, 0.25), GridAxis("p", 0.9, 1.8, 0.15), GridAxis("d", 23.5, 23.5, 0.5), 1
)


class RandomCNNScorer(torch.nn.Module):
    """Stand-in scorer: 64x64 crop, per-band asinh normalisation, a stride-2 5x5 stem and three
    stride-2 3x3 stages (16-32-64-64) -> 64-d embedding -> sigmoid; ~100K parameters."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        layers: list[torch.nn.Module] = [torch.nn.Conv2d(3, 16, 5, stride=2, padding=2), torch.nn.ReLU()]
        for c_in, c_out in ((16, 32), (32, 64), (64, 64)):
            layers += [
                torch.nn.Conv2d(c_in, c_out, 3, stride=2, padding=1),
                torch.nn.BatchNorm2d(c_out),
                torch.nn.ReLU(),
            ]
            layers += [torch.nn.Conv2d(c_out, c_out, 3, padding=1), torch.nn.ReLU()]
        self.body = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.head = torch.nn.Linear(64, 1)
        self.eval()

    @torch.no_grad()
    def score(self, images: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        start = (images.shape[1] - 64) // 2
        scores, embeddings = [], []
        for i in range(0, len(images), batch_size):
            x = torch.as_tensor(images[i : i + batch_size, start : start + 64, start : start + 64])
            x = torch.asinh(x.permute(0, 3, 1, 2) / 0.01)
            emb = self.body(x)
            scores.append(torch.sigmoid(self.head(emb))[:, 0].numpy())
            embeddings.append(emb.numpy())
        return np.concatenate(scores).astype(np.float64), np.concatenate(embeddings)


def _setup(n: int, seed: int) -> tuple[pa.Table, pa.Table, pa.Table, np.ndarray]:
    """Grid cells (11 theta_E x 7 PSF), one blank host per PSF and a plan of ``n`` injections."""
    cells = GRID.cells()
    psf = GRID.psf_fwhm.values
    rng = np.random.default_rng(seed)
    depth = psfdepth_from_depth_mag(23.5)
    sigma = pixel_noise_sigma(np.repeat(psf[:, None], 3, axis=1), np.full((psf.size, 3), depth))
    images = (rng.standard_normal((psf.size, 101, 101, 3)) * sigma[:, None, None, :]).astype(np.float32)
    slots = pa.table(
        {
            "slot_id": pa.array(np.arange(cells.num_rows), pa.int32()),
            "cell_id": cells.column("cell_id"),
            "host_index": pa.array(cells.column("psf_index").to_numpy().astype(np.int32)),
            "sample_id": [f"blank{i}" for i in cells.column("psf_index").to_pylist()],
            "degraded": pa.array(np.zeros(cells.num_rows, bool)),
            "host_psf_fwhm_r": cells.column("psf_fwhm_arcsec"),
            "host_depth_mag_r": np.full(cells.num_rows, 23.5),
            "kernel_sigma_arcsec": np.zeros(cells.num_rows),
            **{f"psf_fwhm_{b}": cells.column("psf_fwhm_arcsec") for b in "grz"},
            **{
                f"noise_sigma_{b}": sigma[cells.column("psf_index").to_numpy(), i]
                for i, b in enumerate("grz")
            },
            **{f"added_noise_sigma_{b}": np.zeros(cells.num_rows) for b in "grz"},
        }
    )
    cell_of = np.sort(np.arange(n) % cells.num_rows)
    plan = pa.table(
        {
            "injection_id": pa.array(np.arange(n), pa.int64()),
            "cell_id": pa.array(cell_of, pa.int32()),
            "slot_id": pa.array(cell_of, pa.int32()),
        }
    )
    return cells, slots, plan, images


def _peer_images(params: ArcParams, psf: np.ndarray, hosts: np.ndarray) -> np.ndarray:
    """The peer: one lenstronomy ImageModel per injection and band, added to the host."""
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel
    from lenstronomy.Util import param_util

    h, n_pix = lensing.DESI_PIXEL_SCALE, hosts.shape[1]
    half = (n_pix - 1) / 2
    out = hosts.copy()
    for i in range(len(params)):  # the peer's per-injection loop is the point of the benchmark
        data = ImageData(
            image_data=np.zeros((n_pix, n_pix)),
            ra_at_xy_0=-half * h,
            dec_at_xy_0=-half * h,
            transform_pix2angle=np.array([[h, 0.0], [0.0, h]]),
        )
        e1, e2 = param_util.phi_q2_ellipticity(params.lens_phi[i], params.lens_q[i])
        se1, se2 = param_util.phi_q2_ellipticity(params.src_phi[i], params.src_q[i])
        kwargs_lens = [
            {
                "theta_E": params.theta_e[i],
                "e1": e1,
                "e2": e2,
                "center_x": params.lens_x0[i],
                "center_y": params.lens_y0[i],
            },
            {
                "gamma1": params.shear_g1[i],
                "gamma2": params.shear_g2[i],
                "ra_0": params.lens_x0[i],
                "dec_0": params.lens_y0[i],
            },
        ]
        for b, flux in enumerate((params.flux_g[i], params.flux_r[i], params.flux_z[i])):
            fwhm = float(lensing.gaussian_psf_sigma(psf[i, b])) * lensing.FWHM_PER_SIGMA
            model = ImageModel(
                data,
                PSF(psf_type="GAUSSIAN", fwhm=fwhm, truncation=4),
                lens_model_class=LensModel(["SIE", "SHEAR"]),
                source_model_class=LightModel(["SERSIC_ELLIPSE"]),
                kwargs_numerics={"supersampling_factor": 4},
            )
            i_e = flux / lensing.sersic_total_flux(1.0, params.src_r_e[i], params.src_n[i], params.src_q[i])
            kwargs_source = [
                {
                    "amp": i_e,
                    "R_sersic": params.src_r_e[i] * np.sqrt(params.src_q[i]),
                    "n_sersic": params.src_n[i],
                    "e1": se1,
                    "e2": se2,
                    "center_x": params.src_x0[i],
                    "center_y": params.src_y0[i],
                }
            ]
            out[i, :, :, b] += model.image(kwargs_lens=kwargs_lens, kwargs_source=kwargs_source).astype(
                np.float32
            )
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2048, help="injections for our pipeline")
    parser.add_argument("--peer-n", type=int, default=48, help="injections for the lenstronomy peer")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--checkpoint", help="a trained finder checkpoint (else a random CNN of its size class)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the render kernel (warm-up excluded)"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.checkpoint:
        from stronglens.training.finder import Finder

        scorer, scorer_name = Finder.load(args.checkpoint, device=args.device), f"Finder({args.checkpoint})"
    else:
        scorer, scorer_name = RandomCNNScorer(), "random stride-2 CNN, 64x64 crop"
    cells, slots, plan, hosts = _setup(args.n, args.seed)
    priors = load_priors()
    settings = InjectionSettings(
        seed=args.seed, batch_size=args.batch_size, gallery_per_cell=0, device=args.device
    )
    start = time.perf_counter()
    run_injections(cells, slots, plan.slice(0, 64), hosts, priors, scorer, settings)  # warm-up (+ compile)
    warm_up_s = time.perf_counter() - start

    ours_rates, split = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        run = run_injections(cells, slots, plan, hosts, priors, scorer, settings)
        elapsed = time.perf_counter() - start
        ours_rates.append(args.n / elapsed)
        split.append(run.seconds)

    theta = cells.column("theta_e_arcsec").to_numpy()[plan.column("cell_id").to_numpy()]
    params, _ = draw_arc_params(theta, priors, args.seed)  # the same draws run_injections made
    peer_idx = np.linspace(0, args.n - 1, args.peer_n).astype(int)
    peer_params = params.take(peer_idx)
    psf = np.repeat(
        cells.column("psf_fwhm_arcsec").to_numpy()[plan.column("cell_id").to_numpy()][peer_idx, None], 3, 1
    )
    host_of = slots.column("host_index").to_numpy()[plan.column("slot_id").to_numpy()][peer_idx]
    peer_rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        images = _peer_images(peer_params, psf, hosts[host_of])
        scorer.score(images, batch_size=args.batch_size)
        peer_rates.append(args.peer_n / (time.perf_counter() - start))
    peer_flux = (images - hosts[host_of])[..., 1].sum(axis=(1, 2))
    ours_flux = run.table.column("magnification").to_numpy()[peer_idx] * peer_params.flux_r

    ours, peer = statistics.median(ours_rates), statistics.median(peer_rates)
    render_s = statistics.median(s["render"] for s in split)
    score_s = statistics.median(s["score"] for s in split)
    result = {
        "scorer": scorer_name,
        "compile": args.compile,
        "warm_up_s": warm_up_s,
        "device": run.device,
        "threads": args.threads,
        "n": args.n,
        "peer_n": args.peer_n,
        "ours_injections_per_s": ours,
        "ours_render_s": render_s,
        "ours_score_s": score_s,
        "ours_render_only_per_s": args.n / render_s,
        "peer_injections_per_s": peer,
        "speedup": ours / peer,
        "peer_over_ours_flux_median": float(np.median(peer_flux / ours_flux)),
    }
    print(
        f"scorer: {scorer_name}; device {run.device}, {args.threads} threads, compile {args.compile} "
        f"(warm-up {warm_up_s:.1f} s), medians of {args.repeats}"
    )
    print(
        f"ours : {ours:8.1f} injections/s end to end "
        f"(render {args.n / render_s:.0f}/s, score {args.n / score_s:.0f}/s)"
    )
    print(f"peer : {peer:8.1f} injections/s (lenstronomy per injection, same scorer)")
    flux = result["peer_over_ours_flux_median"]
    print(f"ratio: {ours / peer:8.1f}x; peer/ours r flux on shared injections: {flux:.4f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
