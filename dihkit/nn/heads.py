"""Intermediate classifier heads and the DIH teacher cohort.

A cohort is a frozen teacher plus k heads mounted at its stage outputs; one forward pass of the
backbone yields all k+1 sets of logits.

Departure from the DIH paper, flagged: its Eq. 3 is ``z_h = g(W a + b)`` with a non-linear g
("e.g., Relu"); every head here defaults to ``activation="none"``, i.e. without g (the bundled
teachers' heads and the committed numbers were trained so). ``activation="relu"`` is the paper's
form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from dihkit.errors import CheckpointError, ConfigError
from dihkit.nn.taps import StageTaps, default_positions

HEAD_TYPES = ("linear", "pooled", "conv")
ACTIVATIONS = {"none": None, "relu": nn.ReLU, "tanh": nn.Tanh}


def _activation(name: str) -> list[nn.Module]:
    """The non-linearity g of Eq. 3 as a (possibly empty) list of layers ("none": no g, the
    kit's default and a departure from the paper, which has one)."""
    layer = ACTIVATIONS[name]
    return [] if layer is None else [layer()]


class LinearHead(nn.Sequential):
    """DIH paper Eq. 3: ``z_h = g(W a_i + b)`` on the flattened activation, ``(N_i + 1) * C``
    parameters. ``activation`` is the non-linearity g ("none", "relu" or "tanh"). The paper
    has a g ("e.g., Relu"); the default "none" drops it (a departure, kept so the bundled heads
    and committed numbers stay as they are): pass "relu" for the paper's form."""

    def __init__(self, feature_shape: Sequence[int], num_classes: int, activation: str = "none"):
        layers: list[nn.Module] = [nn.Flatten(), nn.Linear(_numel(feature_shape), num_classes)]
        super().__init__(*layers, *_activation(activation))


class PooledHead(nn.Sequential):
    """Global average pooling then a linear map: ``(channels + 1) * C`` parameters."""

    def __init__(self, feature_shape: Sequence[int], num_classes: int, activation: str = "none"):
        layers: list[nn.Module] = [
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(feature_shape[0], num_classes),
        ]
        super().__init__(*layers, *_activation(activation))


class ConvHead(nn.Sequential):
    """The MHKD head: two 3x3 conv + BN + ReLU layers (``width`` kernels; 256 in the MHKD paper),
    global average pooling, then two fully connected layers to the classes."""

    def __init__(
        self,
        feature_shape: Sequence[int],
        num_classes: int,
        activation: str = "none",
        width: int = 256,
    ):
        channels = feature_shape[0]
        layers: list[nn.Module] = []
        for c_in in (channels, width):
            layers += [
                nn.Conv2d(c_in, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
        layers += [
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(width, width),
            nn.ReLU(inplace=True),
            nn.Linear(width, num_classes),
        ]
        super().__init__(*layers, *_activation(activation))


HEAD_CLASSES = {"linear": LinearHead, "pooled": PooledHead, "conv": ConvHead}


def _numel(shape: Sequence[int]) -> int:
    return int(torch.Size(shape).numel())


def make_head(
    kind: str,
    feature_shape: Sequence[int],
    num_classes: int,
    activation: str = "none",
    width: int = 256,
) -> nn.Module:
    """Build one head of type ``kind`` for activations of ``feature_shape`` (C, H, W)."""
    if kind not in HEAD_CLASSES:
        raise ConfigError(f"unknown head type {kind!r}; choose one of: {', '.join(HEAD_TYPES)}")
    if activation not in ACTIVATIONS:
        raise ConfigError(
            f"unknown head activation {activation!r}; choose one of: {', '.join(ACTIVATIONS)}"
        )
    if kind == "conv":
        return ConvHead(feature_shape, num_classes, activation, width)
    return HEAD_CLASSES[kind](feature_shape, num_classes, activation)


def freeze(module: nn.Module) -> nn.Module:
    """Turn off gradients and put ``module`` in eval mode (BatchNorm statistics stay fixed)."""
    module.requires_grad_(False)
    return module.eval()


class Cohort(nn.Module):
    """A frozen teacher plus k classifier heads at its mounting positions.

    ``cohort(x)`` returns a ``[k+1, N, C]`` tensor: the heads from shallow to deep, then the
    teacher's own classifier. The backbone runs once, without gradients, and always in eval mode,
    whatever ``.train()`` is called with; only the heads can learn.
    """

    def __init__(
        self,
        teacher: nn.Module,
        positions: Sequence[str],
        heads: Sequence[nn.Module],
        spec: dict[str, Any],
    ) -> None:
        super().__init__()
        if len(positions) != len(heads):
            raise ConfigError(f"{len(positions)} positions but {len(heads)} heads")
        self.teacher = freeze(teacher)
        self.taps = StageTaps(self.teacher, positions)
        self.heads = nn.ModuleList(heads)
        self.positions = tuple(positions)
        self.spec = dict(spec)

    @property
    def num_classes(self) -> int:
        return self.teacher.num_classes

    @property
    def in_channels(self) -> int:
        return self.teacher.in_channels

    def train(self, mode: bool = True) -> Cohort:
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            logits, features = self.taps(x)
        head_logits = [head(feature) for head, feature in zip(self.heads, features, strict=True)]
        return torch.stack([*head_logits, logits])

    @property
    def member_names(self) -> list[str]:
        """``head1 (layer1)``, ..., ``teacher``: the order of :meth:`forward`'s first axis."""
        return [f"head{i + 1} ({p})" for i, p in enumerate(self.positions)] + ["teacher"]

    def head_parameter_counts(self) -> list[int]:
        """Parameters of each head, in mounting order."""
        return [sum(p.numel() for p in head.parameters()) for head in self.heads]

    def heads_entry(self) -> dict[str, Any]:
        """What a checkpoint stores to rebuild the heads (the teacher is stored separately)."""
        return {
            **self.spec,
            "positions": list(self.positions),
            "state_dict": {k: v.detach().cpu() for k, v in self.heads.state_dict().items()},
        }


def feature_shapes(
    model: nn.Module, positions: Sequence[str], input_shape: Sequence[int]
) -> list[tuple[int, ...]]:
    """Activation shapes (C, H, W) at ``positions`` for one input of ``input_shape``."""
    taps = StageTaps(model, positions)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            _, features = taps(torch.zeros(1, *input_shape, device=device))
    finally:
        taps.remove()
        model.train(was_training)
    return [tuple(f.shape[1:]) for f in features]


def mount_heads(
    teacher: nn.Module,
    kind: str = "linear",
    positions: Sequence[str] | None = None,
    *,
    input_shape: Sequence[int],
    num_classes: int | None = None,
    activation: str = "none",
    width: int = 256,
) -> Cohort:
    """Mount one new head of type ``kind`` at each position (default: the teacher's named stage
    outputs, the DIH paper's mounting positions) and return the cohort. ``activation`` is Eq. 3's
    g; the default "none" leaves it out (the paper's form is "relu").

    ``input_shape`` is one image's (C, H, W): heads are sized from the activations it produces.
    """
    positions = tuple(positions) if positions else default_positions(teacher)
    repeated = sorted({p for p in positions if positions.count(p) > 1})
    if repeated:
        raise ConfigError(
            f"positions {' '.join(positions)} repeat {', '.join(repeated)}; mount one head per "
            "position (list each once)"
        )
    num_classes = num_classes or teacher.num_classes
    shapes = feature_shapes(teacher, positions, input_shape)
    heads = [make_head(kind, shape, num_classes, activation, width) for shape in shapes]
    spec = {
        "kind": kind,
        "activation": activation,
        "width": width,
        "input_shape": list(input_shape),
        "num_classes": num_classes,
    }
    return Cohort(teacher, positions, heads, spec)


HEADS_FIELDS = ("kind", "positions", "input_shape", "num_classes", "activation", "width")


def check_heads_entry(entry: Any, source: str = "checkpoint") -> dict[str, Any]:
    """``entry`` if it is a well-formed :meth:`Cohort.heads_entry`, else a
    :class:`CheckpointError` naming what is wrong."""
    hint = "the file is damaged or was not written by `dihkit train-heads`"
    if not isinstance(entry, Mapping):
        raise CheckpointError(f"{source}: its heads entry is a {type(entry).__name__}; {hint}")
    missing = [k for k in (*HEADS_FIELDS, "state_dict") if k not in entry]
    if missing:
        raise CheckpointError(f"{source}: its heads entry lacks {', '.join(missing)}; {hint}")
    positions = entry["positions"]
    if not isinstance(positions, list | tuple) or not all(isinstance(p, str) for p in positions):
        raise CheckpointError(f"{source}: heads positions {positions!r} are not names; {hint}")
    if not isinstance(entry["state_dict"], Mapping):
        raise CheckpointError(f"{source}: its heads state_dict is not a mapping; {hint}")
    return dict(entry)


def cohort_from_entry(
    teacher: nn.Module, entry: dict[str, Any], source: str = "checkpoint"
) -> Cohort:
    """Rebuild a cohort from :meth:`Cohort.heads_entry` and its (already loaded) teacher."""
    entry = check_heads_entry(entry, source)
    cohort = mount_heads(
        teacher,
        entry["kind"],
        entry["positions"],
        input_shape=entry["input_shape"],
        num_classes=entry["num_classes"],
        activation=entry["activation"],
        width=entry["width"],
    )
    try:
        cohort.heads.load_state_dict(entry["state_dict"])
    except RuntimeError:
        raise CheckpointError(
            f"{source}: its {entry['kind']} heads at {', '.join(entry['positions'])} do not fit "
            f"the teacher's {getattr(teacher, 'arch', 'model')} (damaged or relabelled file)"
        ) from None
    return cohort
