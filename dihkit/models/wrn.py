"""Pre-activation Wide ResNets (WRN-d-k) for small images, no dropout."""

from __future__ import annotations

import torch
from torch import nn


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3 twice; 1x1 conv shortcut (on the activated input) when widths differ."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module | None = None
        if in_ch != out_ch:
            self.shortcut = nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)
        elif stride != 1:
            raise ValueError("identity shortcut cannot change resolution")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(act)
        out = self.conv1(act)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + skip


class WideResNet(nn.Module):
    """WRN-`depth`-`widen`: stem conv (16 ch), 3 groups of (depth-4)/6 blocks, BN-ReLU, pool, fc."""

    stage_names: tuple[str, ...] = ("block1", "block2", "block3")
    layout: tuple[str, ...] = ("conv1", "block1", "block2", "block3", "bn", "relu")

    def __init__(self, depth: int, widen: int, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0 or depth < 10:
            raise ValueError(f"WRN depth must be 6n+4 with n >= 1, got {depth}")
        n = (depth - 4) // 6
        widths = (16 * widen, 32 * widen, 64 * widen)
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        in_ch = 16
        for g, width in enumerate(widths):
            blocks = []
            for j in range(n):
                stride = 1 if g == 0 or j > 0 else 2
                blocks.append(PreActBlock(in_ch, width, stride))
                in_ch = width
            self.add_module(f"block{g + 1}", nn.Sequential(*blocks))
        self.bn = nn.BatchNorm2d(in_ch)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.block3(self.block2(self.block1(x)))
        x = self.relu(self.bn(x))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)
