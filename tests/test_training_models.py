"""The finder networks: the default's size matches Paper IV's shielded ResNet, both architectures
take either crop, and embeddings are the penultimate features."""

from __future__ import annotations

import pytest
import torch

from stronglens.training.models import ARCHITECTURES, build_model, parameter_count


def test_default_is_paper_iv_sized() -> None:
    # Paper IV: 194,433 parameters; ours differs only in widths chosen for a CPU-affordable stem.
    assert parameter_count(build_model("shielded_resnet")) == 192_145


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("crop", [64, 101])
def test_shapes(arch: str, crop: int) -> None:
    model = build_model(arch).eval()
    logits, embeddings = model(torch.zeros(3, 3, crop, crop))
    assert logits.shape == (3,) and embeddings.shape[0] == 3 and embeddings.ndim == 2
    # the head is the last linear map of the embeddings
    assert torch.allclose(model.out(embeddings).squeeze(1), logits)


def test_unknown_arch_is_named() -> None:
    with pytest.raises(ValueError, match="resnet9000"):
        build_model("resnet9000")
