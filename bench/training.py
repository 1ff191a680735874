"""Training benchmark: images/s of a full training step of the pipeline against the bare model step,
and scoring images/s.

    python -m bench.training [--arch shielded_resnet] [--crop 64] [--batch 128] [--steps 8]
                             [--repeats 3] [--images 1024] [--device auto] [--json PATH]

Cases, each the median of ``--repeats`` runs of ``--steps`` steps, measured in the same process and
interleaved (bare, pipeline, bare, pipeline, ...) so that load from other processes hits both alike:

* ``bare step``: forward + backward + AdamW step of the model on one fixed in-memory float32 batch
  of ``(batch, 3, crop, crop)`` -- the ceiling;
* ``pipeline step``: what an epoch of :func:`stronglens.training.train.train_one` does per step --
  index a shuffled batch out of the cached float16 windows, augment (random shift, flip, 90-degree
  rotation), move to the device, forward, weighted BCE, backward, AdamW and the cosine schedule.
  Goal: >= 85% of the bare step rate;
* ``load``: reading ``--images`` cutout NPZ files from a store in a temporary folder, validating,
  normalising (annulus median/MAD, asinh) and windowing them -- paid once per run, not per epoch;
  the table also shows the first epoch's rate with this load included;
* ``score``: :meth:`Finder.score` on raw nanomaggie cutouts (normalisation and crop included) and
  the bare inference on ready tensors.

The cutouts are synthetic (sky noise, a galaxy, a ring for half of them); pixel content does not
change the speed of any case.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from stronglens.cutouts.store import CutoutMeta, write_cutout
from stronglens.training.data import augment, load_windows
from stronglens.training.device import describe, pick_device
from stronglens.training.finder import Finder
from stronglens.training.models import build_model, parameter_count
from stronglens.training.train import TrainConfig, _model_payload, _weighted_bce

SIZE = 101


def synthetic_cutouts(n: int, seed: int = 0) -> np.ndarray:
    """(n, 101, 101, 3) float32: noise, a central galaxy, a ring in every other cutout."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] - (SIZE - 1) / 2
    r = np.hypot(yy, xx)
    galaxy = np.exp(-r / 3.0)[None, :, :, None] * np.array([0.3, 0.6, 1.0])
    ring = np.exp(-0.5 * ((r - 7.0) / 1.2) ** 2)[None, :, :, None] * np.array([0.25, 0.2, 0.1])
    labels = (np.arange(n) % 2)[:, None, None, None]
    return (rng.normal(0, 0.01, (n, SIZE, SIZE, 3)) + galaxy + ring * labels).astype(np.float32)


def write_store(root: Path, images: np.ndarray) -> list[str]:
    paths = []
    for i, image in enumerate(images):
        meta = CutoutMeta(i, 0.0, 0.0, "SER", 3, 1.2, 5.0, "synthetic:bench", "2026-12-02T00:00:00+00:00")
        paths.append(write_cutout(str(root / f"{i}.npz"), image, meta).path)
    return paths


def timed(run: Callable[[], int]) -> float:
    """Images per second of one call of ``run`` (which returns the images it processed)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    n = run()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="shielded_resnet")
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", help="also write the results as JSON to this path")
    args = parser.parse_args(argv)

    device = pick_device(args.device)
    config = TrainConfig(arch=args.arch, crop=args.crop, batch_size=args.batch)
    prep = config.preprocessing
    images = synthetic_cutouts(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_store(Path(tmp), images)
        ids = [str(i) for i in range(len(paths))]
        load_rates = [timed(lambda: len(load_windows(ids, paths, prep, SIZE))) for _ in range(args.repeats)]
        windows = load_windows(ids, paths, prep, SIZE)

    torch.manual_seed(0)
    model = build_model(args.arch).to(device).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=10_000)
    target = torch.from_numpy((np.arange(len(windows)) % 2).astype(np.float32))
    weight = torch.ones(len(windows))
    fixed_x = torch.randn(args.batch, 3, args.crop, args.crop, device=device)
    fixed_y, fixed_w = target[: args.batch].to(device), weight[: args.batch].to(device)
    generator = torch.Generator().manual_seed(0)

    def step(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> None:
        logits, _ = model(x)
        loss = _weighted_bce(logits, y, w)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()

    def bare() -> int:
        for _ in range(args.steps):
            step(fixed_x, fixed_y, fixed_w)
        return args.steps * args.batch

    def pipeline() -> int:
        order = torch.randperm(len(windows), generator=generator)
        for s in range(args.steps):
            batch = order[(s * args.batch) % len(windows) :][: args.batch]
            x = augment(windows[batch], args.crop, generator).to(device)
            step(x, target[batch].to(device), weight[batch].to(device))
        return args.steps * args.batch

    bare()  # warm-up (allocator, kernels)
    bare_rates, pipe_rates = [], []
    for _ in range(args.repeats):
        bare_rates.append(timed(bare))
        pipe_rates.append(timed(pipeline))

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "model.pt"
        torch.save(_model_payload(model, config, "bench"), checkpoint)
        finder = Finder.load(checkpoint, device=args.device)
        score_rates = [
            timed(lambda: len(finder.score(images, batch_size=512)[0])) for _ in range(args.repeats)
        ]
    ready = windows[:, :, prep.shift : prep.shift + args.crop, prep.shift : prep.shift + args.crop].float()

    @torch.inference_mode()
    def bare_inference() -> int:
        model.eval()
        for start in range(0, len(ready), 512):
            model(ready[start : start + 512].to(device))
        return len(ready)

    infer_rates = [timed(bare_inference) for _ in range(args.repeats)]

    b, p, load = statistics.median(bare_rates), statistics.median(pipe_rates), statistics.median(load_rates)
    first_epoch = 1.0 / (1.0 / load + 1.0 / p)
    results = {
        "arch": args.arch,
        "n_params": parameter_count(model),
        "crop": args.crop,
        "batch": args.batch,
        "device": describe(device),
        "bare_step_img_s": b,
        "pipeline_step_img_s": p,
        "pipeline_over_bare": p / b,
        "load_img_s": load,
        "first_epoch_with_load_img_s": first_epoch,
        "score_img_s": statistics.median(score_rates),
        "bare_inference_img_s": statistics.median(infer_rates),
    }
    print(
        f"{args.arch} ({results['n_params']:,} parameters), crop {args.crop}, batch {args.batch}, "
        f"{results['device']}; medians of {args.repeats} runs"
    )
    print(f"  bare step (in-memory tensors)      {b:10.1f} img/s")
    print(f"  pipeline step (cache+augment)      {p:10.1f} img/s   {p / b:6.1%} of bare (goal >= 85%)")
    print(f"  load (NPZ read+normalise, once)    {load:10.1f} img/s")
    print(f"  first epoch incl. load             {first_epoch:10.1f} img/s   {first_epoch / b:6.1%} of bare")
    print(f"  score (Finder.score, raw cutouts)  {results['score_img_s']:10.1f} img/s")
    print(f"  bare inference (ready tensors)     {results['bare_inference_img_s']:10.1f} img/s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
