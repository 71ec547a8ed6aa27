"""ResNets for small images: CIFAR ResNet-(6n+2) family and CIFAR variants of ResNet-18/34."""

from __future__ import annotations

import torch
from torch import nn


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Post-activation residual block: two 3x3 conv+BN, projection shortcut on shape change."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_ch, out_ch, stride)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = _conv3x3(out_ch, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_ch),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """Generic stride-1-stem ResNet built from :class:`BasicBlock` stages.

    Args:
        stem_width: channels of the 3x3 stem convolution.
        widths: channels of each stage.
        depths: number of blocks per stage.
        num_classes: size of the output logits.
        in_channels: channels of the input images.
    """

    def __init__(
        self,
        stem_width: int,
        widths: tuple[int, ...],
        depths: tuple[int, ...],
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if len(widths) != len(depths):
            raise ValueError("widths and depths must have the same length")
        self.conv1 = _conv3x3(in_channels, stem_width)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        in_ch = stem_width
        names = []
        for i, (width, depth) in enumerate(zip(widths, depths, strict=True)):
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(depth):
                blocks.append(BasicBlock(in_ch, width, stride if j == 0 else 1))
                in_ch = width
            name = f"layer{i + 1}"
            self.add_module(name, nn.Sequential(*blocks))
            names.append(name)
        self.stage_names: tuple[str, ...] = tuple(names)
        self.layout: tuple[str, ...] = ("conv1", "bn1", "relu", *names)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def cifar_resnet(
    depth: int, num_classes: int = 10, in_channels: int = 3, x4: bool = False
) -> ResNet:
    """CIFAR ResNet-`depth` (depth = 6n + 2): 16-channel stem, stages 16/32/64.

    `x4=True` gives the "x4" variants: 32-channel stem and stages 64/128/256.
    """
    if (depth - 2) % 6 != 0 or depth < 8:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2 with n >= 1, got {depth}")
    n = (depth - 2) // 6
    stem, widths = (32, (64, 128, 256)) if x4 else (16, (16, 32, 64))
    return ResNet(stem, widths, (n, n, n), num_classes, in_channels)


def resnet_imagenet_style(depth: int, num_classes: int = 10, in_channels: int = 3) -> ResNet:
    """ResNet-18/34 adapted to 32x32 inputs: 3x3 stride-1 stem, no max-pool."""
    depths = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
    if depth not in depths:
        raise ValueError(f"depth must be 18 or 34, got {depth}")
    return ResNet(64, (64, 128, 256, 512), depths[depth], num_classes, in_channels)
