"""The lens-finder networks, in plain torch (torchvision does not load with the CPU torch here).

``shielded_resnet`` (default) follows the layout of the shielded ResNet of Huang et al. 2021 (Paper
II) as scaled up in Inchausti et al. 2025 (Paper IV, 194,433 parameters): a convolutional stem, four
stages of two residual blocks each, then 1x1 "shield" convolutions that shrink the channels before a
small dense head, so most parameters sit in the feature extractor rather than in a huge dense layer
that would memorise ~1,000 lenses.  One deliberate difference: the stem is a 5x5 convolution with
stride 2 instead of stride 1.  On 2 CPU cores a stride-1 stem trains at ~62 img/s (64 px) and
~21 img/s (101 px), a stride-2 stem at ~306 / ~136 img/s (STACK.md), and only the latter fits a
training run into the ``make run`` budget; the first stage still sees the image at 0.52"/px, finer
than the ~1" seeing, so arcs are not blurred away.  With the default widths it has 192,145 parameters,
the size of Paper IV's network (``tests/test_training_models.py`` pins the count).

``efficient_net`` (second architecture, ``finder_archs`` var): a small EfficientNet-style network of
inverted-residual (MBConv) blocks with squeeze-and-excitation, the family of Paper IV's second model
at a size a CPU can train.

Both return ``(logits[N], embeddings[N, D])``: the penultimate features feed the realism probe of the
selection-function work (real lenses vs injections).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the universal torch alias

#: The architectures a run may name (dbt var ``finder_archs``).
ARCHITECTURES = ("shielded_resnet", "efficient_net")


class ResidualBlock(nn.Module):
    """Pre-activation-free basic block: conv-BN-ReLU-conv-BN plus a (projected) identity."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.project: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.project = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.project(x))


class ShieldedResNet(nn.Module):
    """Stem (5x5, stride 2) -> 4 stages x 2 residual blocks -> 1x1 shields -> pooled 4x4 -> dense head.

    The 4x4 adaptive pooling keeps the head independent of the crop (64 or 101 px) while keeping
    coarse position information (an arc is a ring around the centre, not anywhere in the image).
    """

    def __init__(
        self,
        widths: tuple[int, int, int, int] = (16, 32, 40, 48),
        shield: tuple[int, int] = (32, 8),
        head: int = 64,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 5, stride=2, padding=2, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        c_in = widths[0]
        for i, width in enumerate(widths):
            blocks += [ResidualBlock(c_in, width, 1 if i == 0 else 2), ResidualBlock(width, width, 1)]
            c_in = width
        self.stages = nn.Sequential(*blocks)
        self.shield = nn.Sequential(
            nn.Conv2d(c_in, shield[0], 1, bias=False),
            nn.BatchNorm2d(shield[0]),
            nn.ReLU(inplace=True),
            nn.Conv2d(shield[0], shield[1], 1, bias=False),
            nn.BatchNorm2d(shield[1]),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(shield[1] * 16, head), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(head, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.embed(self.pool(self.shield(self.stages(self.stem(x)))))
        return self.out(self.dropout(features)).squeeze(1), features


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise 3x3 -> squeeze-excite -> 1x1 project (+ identity)."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int = 4) -> None:
        super().__init__()
        hidden = c_in * expand
        self.expand = nn.Sequential(nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.SiLU())
        self.depthwise = nn.Sequential(
            nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.SiLU(),
        )
        squeezed = max(4, c_in // 4)
        self.se = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(hidden, squeezed, 1),
            nn.SiLU(),
            nn.Conv2d(squeezed, hidden, 1),
            nn.Sigmoid(),
        )
        self.project = nn.Sequential(nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.depthwise(self.expand(x))
        h = self.project(h * self.se(h))
        return x + h if self.residual else h


class EfficientNetSmall(nn.Module):
    """Stem (3x3, stride 2) -> MBConv stages -> 1x1 head conv -> global pool -> dense."""

    def __init__(
        self,
        widths: tuple[int, ...] = (16, 24, 40, 64),
        depths: tuple[int, ...] = (1, 2, 2, 2),
        head: int = 128,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(widths[0]), nn.SiLU()
        )
        blocks: list[nn.Module] = []
        c_in = widths[0]
        for i, (width, depth) in enumerate(zip(widths, depths, strict=True)):
            for j in range(depth):
                blocks.append(MBConv(c_in, width, 2 if (j == 0 and i > 0) else 1))
                c_in = width
        self.stages = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Conv2d(c_in, head, 1, bias=False),
            nn.BatchNorm2d(head),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(head, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.head(self.stages(self.stem(x)))
        return self.out(self.dropout(features)).squeeze(1), features


def build_model(arch: str) -> nn.Module:
    """A fresh network of architecture ``arch`` (one of :data:`ARCHITECTURES`)."""
    if arch == "shielded_resnet":
        return ShieldedResNet()
    if arch == "efficient_net":
        return EfficientNetSmall()
    raise ValueError(f"unknown finder architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")


def parameter_count(model: nn.Module) -> int:
    """Trainable parameters (the figure papers quote)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
