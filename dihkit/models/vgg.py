"""VGG with batch norm for 32x32 inputs (one max-pool after each of the first four blocks)."""

from __future__ import annotations

import torch
from torch import nn

VGG_CONFIGS: dict[str, tuple[tuple[int, ...], ...]] = {
    "vgg8": ((64,), (128,), (256,), (512,), (512,)),
    "vgg11": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
}


def _conv_block(in_ch: int, widths: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in widths:
        layers += [
            nn.Conv2d(in_ch, width, kernel_size=3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        in_ch = width
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """Five conv blocks; `pool0`..`pool3` are 2x2 max-pools, the last block is average-pooled.

    Spatial sizes: 32 -> 16 -> 8 -> 4 -> 2 and 28 -> 14 -> 7 -> 3 -> 1.
    """

    stage_names: tuple[str, ...] = ("pool0", "pool1", "pool2", "pool3")
    layout: tuple[str, ...] = (
        "block0",
        "pool0",
        "block1",
        "pool1",
        "block2",
        "pool2",
        "block3",
        "pool3",
        "block4",
    )

    def __init__(
        self, cfg: tuple[tuple[int, ...], ...], num_classes: int = 10, in_channels: int = 3
    ) -> None:
        super().__init__()
        if len(cfg) != 5:
            raise ValueError("VGG config needs exactly 5 blocks")
        in_ch = in_channels
        for i, widths in enumerate(cfg):
            self.add_module(f"block{i}", _conv_block(in_ch, widths))
            if i < 4:
                self.add_module(f"pool{i}", nn.MaxPool2d(kernel_size=2, stride=2))
            in_ch = widths[-1]
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(4):
            x = getattr(self, f"pool{i}")(getattr(self, f"block{i}")(x))
        x = self.block4(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def vgg(name: str, num_classes: int = 10, in_channels: int = 3) -> VGG:
    """Build `vgg8`, `vgg11` or `vgg13`."""
    return VGG(VGG_CONFIGS[name], num_classes, in_channels)
