"""ShuffleNetV2 for 32x32 inputs (net size 1: 116/232/464 channels, 1024-d head).

With the defaults, `build_model("shufflenetv2", num_classes=100)` has 1,356,104 parameters.
"""

from __future__ import annotations

import torch
from torch import nn

_NET_SIZES: dict[float, tuple[tuple[int, int, int, int], tuple[int, int, int]]] = {
    0.5: ((48, 96, 192, 1024), (3, 7, 3)),
    1.0: ((116, 232, 464, 1024), (3, 7, 3)),
    1.5: ((176, 352, 704, 1024), (3, 7, 3)),
    2.0: ((224, 488, 976, 2048), (3, 7, 3)),
}


def _conv_bn(
    in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, relu: bool = True
) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return layers


def channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    """Interleave the channels of `groups` equal channel groups."""
    n, c, h, w = x.shape
    x = x.reshape(n, groups, c // groups, h, w).transpose(1, 2)
    return x.reshape(n, c, h, w)


class ShuffleBlock(nn.Module):
    """Stride-1 unit: half of the channels pass through, the other half is transformed."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.branch = nn.Sequential(
            *_conv_bn(half, half, 1),
            *_conv_bn(half, half, 3, groups=half, relu=False),
            *_conv_bn(half, half, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep, work = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat((keep, self.branch(work)), dim=1))


class ShuffleDownBlock(nn.Module):
    """Stride-2 unit: two branches each produce half of the output channels."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        half = out_ch // 2
        self.left = nn.Sequential(
            *_conv_bn(in_ch, in_ch, 3, stride=2, groups=in_ch, relu=False),
            *_conv_bn(in_ch, half, 1),
        )
        self.right = nn.Sequential(
            *_conv_bn(in_ch, half, 1),
            *_conv_bn(half, half, 3, stride=2, groups=half, relu=False),
            *_conv_bn(half, half, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(torch.cat((self.left(x), self.right(x)), dim=1))


class ShuffleNetV2(nn.Module):
    """3x3 stride-1 stem (24 ch), three stride-2 stages, 1x1 head conv, pool, fc."""

    stage_names: tuple[str, ...] = ("layer1", "layer2", "layer3")
    layout: tuple[str, ...] = ("stem", "layer1", "layer2", "layer3", "head")

    def __init__(self, num_classes: int = 10, in_channels: int = 3, net_size: float = 1.0) -> None:
        super().__init__()
        if net_size not in _NET_SIZES:
            raise ValueError(f"net_size must be one of {sorted(_NET_SIZES)}, got {net_size}")
        widths, repeats = _NET_SIZES[net_size]
        self.stem = nn.Sequential(*_conv_bn(in_channels, 24, 3))
        in_ch = 24
        for i, (width, n) in enumerate(zip(widths[:3], repeats, strict=True)):
            blocks: list[nn.Module] = [ShuffleDownBlock(in_ch, width)]
            blocks += [ShuffleBlock(width) for _ in range(n)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            in_ch = width
        self.head = nn.Sequential(*_conv_bn(in_ch, widths[3], 1))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer3(self.layer2(self.layer1(x)))
        x = self.head(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)
