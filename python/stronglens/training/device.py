"""Device choice: CUDA when present, CPU otherwise, with CPU threads set to the cores this process may
use (``sched_getaffinity``, not the machine's total: a container or ``taskset`` limit is respected,
and oversubscribing 2 cores with 2 x N threads makes convolutions slower, not faster)."""

from __future__ import annotations

import os

import torch

#: Accepted values of the ``finder_device`` var.
DEVICE_CHOICES = ("auto", "cpu", "cuda")


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def pick_device(preference: str = "auto", threads: int | None = None) -> torch.device:
    """The torch device for ``preference`` (auto/cpu/cuda); on CPU also set torch's thread count
    (``threads``, default every available core)."""
    if preference not in DEVICE_CHOICES:
        raise ValueError(f"finder_device must be one of {', '.join(DEVICE_CHOICES)}, not {preference!r}")
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("finder_device is 'cuda' but torch sees no CUDA GPU; use 'auto' or 'cpu'")
    if preference in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    torch.set_num_threads(threads or available_cores())
    return torch.device("cpu")


def describe(device: torch.device) -> str:
    """A short description for ``finder_runs.device``: the GPU name or the CPU thread count."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{torch.get_num_threads()} threads"
