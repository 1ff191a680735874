"""Cutouts -> network input: robust normalisation, windows, augmentations, and clear errors for
missing, corrupt and NaN-filled cutouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stronglens.training.data import (
    Preprocessing,
    TrainingDataError,
    augment,
    centre_crop,
    load_windows,
    normalise,
    to_windows,
)
from tests.training_data import images, write_store


def test_normalise_puts_sky_at_zero_in_sigma_units() -> None:
    rng = np.random.default_rng(0)
    sky = rng.normal(5.0, 0.2, size=(2, 101, 101, 3)).astype(np.float32)
    sky[1, 50, 50, :] = 1e4  # a bright core does not move the annulus statistics
    z = np.sinh(normalise(sky))  # undo the asinh stretch
    ring = z[:, :, 5:20, 5:20]
    assert abs(np.median(ring)) < 0.05
    assert np.std(z[0]) == pytest.approx(1.0, rel=0.05)
    assert z[1, :, 50, 50].min() > 1e4


def test_nonfinite_pixels_within_allowance_are_sky_beyond_name_the_sample() -> None:
    img = images(np.array([0, 0]))
    img[0, 0, :10, 0] = np.nan  # 10 px: filled with sky
    img[1, :30, :30, :] = np.nan  # 9% of the cutout
    prep = Preprocessing(crop=64, shift=4)
    with pytest.raises(TrainingDataError, match="sample-b") as err:
        to_windows(img, prep, names=["sample-a", "sample-b"])
    assert "sample-a" not in str(err.value)
    out = to_windows(img[:1], prep)
    assert out.shape == (1, 3, 72, 72) and np.isfinite(out).all()


def test_windows_pad_with_sky_when_crop_plus_shift_exceeds_the_cutout() -> None:
    out = to_windows(images(np.array([1])), Preprocessing(crop=101, shift=4))
    assert out.shape == (1, 3, 109, 109)
    assert (out[:, :, :4] == 0).all() and (out[:, :, -4:] == 0).all()


def test_augment_is_seeded_and_only_moves_pixels() -> None:
    windows = torch.randn(16, 3, 40, 40).half()
    a = augment(windows, 32, torch.Generator().manual_seed(1))
    b = augment(windows, 32, torch.Generator().manual_seed(1))
    c = augment(windows, 32, torch.Generator().manual_seed(2))
    assert a.shape == (16, 3, 32, 32) and torch.equal(a, b) and not torch.equal(a, c)
    # with no shift margin, each output is a flip/rotation of its input: same pixel multiset
    same = augment(windows[:, :, :32, :32], 32, torch.Generator().manual_seed(3))
    ref = windows[:, :, :32, :32].float()
    assert torch.equal(same.flatten(1).sort(1).values, ref.flatten(1).sort(1).values)
    assert torch.equal(centre_crop(windows, 32), windows[:, :, 4:36, 4:36].float())


def test_missing_and_corrupt_files_are_all_named(tmp_path: Path) -> None:
    manifest = write_store(tmp_path, {"train": (2, 4)})
    ids = manifest.column("sample_id").to_pylist()
    paths = manifest.column("cutout_path").to_pylist()
    Path(paths[1]).unlink()
    Path(paths[3]).write_bytes(b"not an npz")
    with pytest.raises(TrainingDataError) as err:
        load_windows(ids, paths, Preprocessing(crop=64), 101)
    message = str(err.value)
    assert f"sample {ids[1]}" in message and paths[1] in message and "no such cutout file" in message
    assert f"sample {ids[3]}" in message and paths[3] in message and "unreadable" in message
    assert "2 cutout file(s)" in message and "refetched" in message
