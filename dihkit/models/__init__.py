"""CIFAR model zoo: ResNets, WRNs, VGGs, MobileNetV2 and ShuffleNetV2 for 28x28/32x32 inputs.

Every model from :func:`build_model` exposes ``stage_names`` (module paths whose outputs are the
stage outputs, for attaching forward hooks), ``arch``, ``num_classes`` and ``in_channels``, and
ends with an ``nn.Linear`` named ``fc`` whose input is the penultimate feature vector.
``layout`` names, in order, the child modules whose composition maps an image to the feature
map that ``avgpool`` then ``fc`` turn into logits (so a stage's "rest of the network" can be
rebuilt, as DSKD's shallow classifiers need).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from dihkit.errors import ConfigError

from .mobilenetv2 import MobileNetV2
from .resnet import cifar_resnet, resnet_imagenet_style
from .shufflenetv2 import ShuffleNetV2
from .vgg import vgg
from .wrn import WideResNet

__all__ = ["MODEL_NAMES", "build_model", "count_parameters"]

# name -> constructor taking (num_classes, in_channels)
_BUILDERS: dict[str, Callable[[int, int], nn.Module]] = {
    "resnet8": partial(cifar_resnet, 8),
    "resnet14": partial(cifar_resnet, 14),
    "resnet20": partial(cifar_resnet, 20),
    "resnet32": partial(cifar_resnet, 32),
    "resnet44": partial(cifar_resnet, 44),
    "resnet56": partial(cifar_resnet, 56),
    "resnet110": partial(cifar_resnet, 110),
    "resnet8x4": partial(cifar_resnet, 8, x4=True),
    "resnet32x4": partial(cifar_resnet, 32, x4=True),
    "resnet18": partial(resnet_imagenet_style, 18),
    "resnet34": partial(resnet_imagenet_style, 34),
    "vgg8": partial(vgg, "vgg8"),
    "vgg11": partial(vgg, "vgg11"),
    "vgg13": partial(vgg, "vgg13"),
    "wrn_16_1": partial(WideResNet, 16, 1),
    "wrn_16_2": partial(WideResNet, 16, 2),
    "wrn_40_1": partial(WideResNet, 40, 1),
    "wrn_40_2": partial(WideResNet, 40, 2),
    "mobilenetv2": MobileNetV2,
    "shufflenetv2": ShuffleNetV2,
}

MODEL_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def _check_int(value: object, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{what} must be >= {minimum}, got {value!r}")
    return value


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal convolutions, unit/zero batch norm, zero linear bias."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)


def build_model(name: str, num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """Build the freshly initialised model `name` (see :data:`MODEL_NAMES`).

    Raises:
        ValueError: unknown `name`, `num_classes` < 2 or `in_channels` < 1 (or not ints).
    """
    if name not in _BUILDERS:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}")
    num_classes = _check_int(num_classes, "num_classes", 2)
    in_channels = _check_int(in_channels, "in_channels", 1)
    model = _BUILDERS[name](num_classes, in_channels)
    init_weights(model)
    model.arch = name
    model.num_classes = num_classes
    model.in_channels = in_channels
    model.stage_names = tuple(model.stage_names)
    model.layout = tuple(model.layout)
    return model


def count_parameters(model: nn.Module | None) -> int:
    """Total number of parameter elements (trainable and frozen); 0 for no module (None)."""
    return 0 if model is None else sum(p.numel() for p in model.parameters())
