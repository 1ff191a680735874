"""The Finder contract (INTERFACES.md): load a trained lens finder and score nanomaggie cutouts.

    finder = Finder.load(checkpoint_path)
    scores, embeddings = finder.score(images)   # images: float32 (N, H, W, 3) g, r, z nanomaggies

The crop and the per-band normalisation happen here, inside the Finder, with the settings stored in
the checkpoint, so injected images get exactly the training preprocessing.  ``scores`` are in (0, 1)
(the sigmoid of the logit); ``embeddings`` are the penultimate-layer features, shape (N, D).

Checkpoint files (``torch.save`` of a plain dict, loaded with ``weights_only=True``):

* a single network: ``format`` = :data:`MODEL_FORMAT`, ``arch``, ``preprocessing`` (crop, shift,
  max_nonfinite_frac), ``cutout_size``, ``run_id``, ``state_dict``;
* an ensemble (both architectures trained): ``format`` = :data:`ENSEMBLE_FORMAT`, ``arch`` =
  ``ensemble_mean``, ``members`` (paths of member checkpoints, relative to the ensemble file) --
  scores are the mean of the members' scores, embeddings their concatenation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stronglens.training.data import Preprocessing, TrainingDataError, centre_window, nonfinite_fractions
from stronglens.training.data import normalise as normalise_images
from stronglens.training.device import pick_device
from stronglens.training.models import build_model

MODEL_FORMAT = "stronglens-finder/1"
ENSEMBLE_FORMAT = "stronglens-finder-ensemble/1"
ENSEMBLE_ARCH = "ensemble_mean"


class FinderCheckpointError(ValueError):
    """A checkpoint file cannot be used as a finder; the message names the file and why."""


@dataclass
class _Member:
    arch: str
    model: nn.Module
    prep: Preprocessing


def _read_checkpoint(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"finder checkpoint {path} does not exist (see finder_runs.checkpoint_path)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise FinderCheckpointError(
            f"{path}: not a readable torch checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") not in (MODEL_FORMAT, ENSEMBLE_FORMAT):
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise FinderCheckpointError(
            f"{path}: not a stronglens finder checkpoint (format {found!r}; expected {MODEL_FORMAT!r} "
            f"or {ENSEMBLE_FORMAT!r})"
        )
    return payload


def model_from_state(arch: str, state_dict: dict, where: str) -> nn.Module:
    """A network of ``arch`` holding ``state_dict``; a state of another architecture is an error
    naming ``where`` and the mismatching keys (never a silent partial load)."""
    model = build_model(arch)
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong_shape = sorted(k for k in set(own) & set(state_dict) if own[k].shape != state_dict[k].shape)
    if missing or unexpected or wrong_shape:
        raise FinderCheckpointError(
            f"{where}: the weights do not fit architecture {arch!r} (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}, wrong shape {wrong_shape[:3]})"
            ": it was written by another architecture or version; retrain with finder_retrain: true"
        )
    model.load_state_dict(state_dict)
    return model


def _load_member(path: Path) -> _Member:
    payload = _read_checkpoint(path)
    if payload["format"] != MODEL_FORMAT:
        raise FinderCheckpointError(f"{path}: an ensemble cannot be a member of an ensemble")
    prep = Preprocessing(**payload["preprocessing"])
    return _Member(payload["arch"], model_from_state(payload["arch"], payload["state_dict"], str(path)), prep)


class Finder:
    """A trained lens finder (one network or an averaging ensemble) ready to score cutouts."""

    def __init__(self, members: list[_Member], arch: str, device: torch.device) -> None:
        self.members = members
        self.arch = arch
        self.device = device
        for member in members:
            member.model.to(device).eval()

    @classmethod
    def load(cls, checkpoint_path: str | os.PathLike[str], device: str = "auto") -> Finder:
        """Load a finder checkpoint (single network or ensemble) onto ``device`` (auto/cpu/cuda)."""
        path = Path(checkpoint_path)
        payload = _read_checkpoint(path)
        torch_device = pick_device(device)
        if payload["format"] == ENSEMBLE_FORMAT:
            members = [_load_member(path.parent / m) for m in payload["members"]]
            return cls(members, ENSEMBLE_ARCH, torch_device)
        return cls([_load_member(path)], payload["arch"], torch_device)

    @property
    def crop(self) -> int:
        """Input crop of the (first) network."""
        return self.members[0].prep.crop

    @torch.inference_mode()
    def score(self, images: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Scores in (0, 1) and penultimate embeddings of ``images`` (N, H, W, 3) nanomaggies."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"Finder.score expects float32 (N, H, W, 3) g/r/z images, got {images.shape}")
        scores, embeddings = [], []
        for member in self.members:
            s, e = self._score_member(member, images, batch_size)
            scores.append(s)
            embeddings.append(e)
        return np.mean(scores, axis=0).astype(np.float32), np.concatenate(embeddings, axis=1)

    def _score_member(
        self, member: _Member, images: np.ndarray, batch_size: int
    ) -> tuple[np.ndarray, np.ndarray]:
        bad = np.flatnonzero(nonfinite_fractions(images) > member.prep.max_nonfinite_frac)
        if bad.size:
            raise TrainingDataError(
                f"images {bad[:10].tolist()} have more than {member.prep.max_nonfinite_frac:.0%} "
                "non-finite pixels; the finder cannot score them"
            )
        scores, embeddings = [], []
        for start in range(0, len(images), batch_size):
            batch = centre_window(normalise_images(images[start : start + batch_size]), member.prep.crop)
            logits, features = member.model(torch.from_numpy(np.ascontiguousarray(batch)).to(self.device))
            scores.append(torch.sigmoid(logits).float().cpu().numpy())
            embeddings.append(features.float().cpu().numpy())
        if not scores:
            return np.empty(0, np.float32), np.empty((0, 0), np.float32)
        return np.concatenate(scores), np.concatenate(embeddings)
