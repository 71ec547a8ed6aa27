"""MobileNetV2 for 32x32 inputs (width multiplier 0.5, expansion 6), as used in CIFAR KD work.

With the defaults, `build_model("mobilenetv2", num_classes=100)` has 812,548 parameters.
"""

from __future__ import annotations

import torch
from torch import nn

# (expansion t, output channels c, repeats n, first stride s) grouped by output resolution.
# Compared to ImageNet MobileNetV2 the stem and the 24-channel stage keep stride 1, so a 32x32
# input is downsampled only three times: 32 -> 16 -> 8 -> 4.
_STAGES: tuple[tuple[tuple[int, int, int, int], ...], ...] = (
    ((1, 16, 1, 1), (6, 24, 2, 1)),
    ((6, 32, 3, 2),),
    ((6, 64, 4, 2), (6, 96, 3, 1)),
    ((6, 160, 3, 2), (6, 320, 1, 1)),
)


def _conv_bn_relu(
    in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1
) -> list[nn.Module]:
    return [
        nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU6(inplace=True),
    ]


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise 3x3 -> linear project (1x1); residual when shapes match."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_ch * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += _conv_bn_relu(in_ch, hidden, 1)
        layers += _conv_bn_relu(hidden, hidden, 3, stride, groups=hidden)
        layers += [nn.Conv2d(hidden, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch)]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    """MobileNetV2 with width multiplier `width` and expansion `expansion` for the wide blocks.

    Stages `stage1`..`stage4` run at input resolution, 1/2, 1/4 and 1/8.
    """

    stage_names: tuple[str, ...] = ("stage1", "stage2", "stage3", "stage4")
    layout: tuple[str, ...] = ("stem", "stage1", "stage2", "stage3", "stage4", "head")

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 0.5,
        expansion: int = 6,
        last_channels: int = 1280,
    ) -> None:
        super().__init__()
        in_ch = int(32 * width)
        self.stem = nn.Sequential(*_conv_bn_relu(in_channels, in_ch, 3))
        for i, stage in enumerate(_STAGES):
            blocks = []
            for t, c, n, s in stage:
                out_ch = int(c * width)
                t = 1 if t == 1 else expansion
                for j in range(n):
                    blocks.append(InvertedResidual(in_ch, out_ch, s if j == 0 else 1, t))
                    in_ch = out_ch
            self.add_module(f"stage{i + 1}", nn.Sequential(*blocks))
        last = max(last_channels, int(last_channels * width))
        self.head = nn.Sequential(*_conv_bn_relu(in_ch, last, 1))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.stage4(self.stage3(self.stage2(self.stage1(x))))
        x = self.head(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)
