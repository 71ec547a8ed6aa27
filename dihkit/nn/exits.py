"""A trainable student with exits: extra classifiers tapped from its stages (MHKD's student heads,
DSKD's shallow classifiers, DSN's companions, BYOT's shallow exits). An exit is any module that
maps the tapped activation to logits, or to ``(logits, feature map)`` like :class:`ExitBranch`.

:class:`StudentWithExits` wraps a *trainable* student with forward hooks, so one pass returns
the main logits, the main classifier's feature map, and each exit's logits and feature map.
The exits live beside the student, never inside it: :meth:`StudentWithExits.export` is the plain
student, with the parameter count and state-dict keys of :func:`dihkit.models.build_model`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dihkit.errors import ConfigError
from dihkit.models import init_weights
from dihkit.nn.heads import feature_shapes
from dihkit.nn.taps import StageTaps


class ExitBranch(nn.Module):
    """One exit: ``body`` maps a tapped activation to a feature map, ``classifier`` maps that to
    logits. ``forward`` returns both (logits, feature map)."""

    def __init__(self, body: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.classifier = classifier

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        feature = self.body(x)
        return self.classifier(feature), feature


def _pool_fc(channels: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))


def tail_exit(model: nn.Module, position: str, input_shape: Sequence[int]) -> ExitBranch:
    """DSKD's shallow classifier at ``position``: fresh, re-initialised copies of the modules that
    follow ``position`` in the model's main branch (``model.layout``), then pooling and a new
    fully connected layer, so the shallow layer is helped "the same as the main branch"."""
    layout = list(getattr(model, "layout", ()))
    if position not in layout:
        raise ConfigError(
            f"{getattr(model, 'arch', type(model).__name__)} has no main-branch position "
            f"{position!r}; its stages: {', '.join(getattr(model, 'stage_names', ()))}"
        )
    rest = layout[layout.index(position) + 1 :]
    body = nn.Sequential(*(copy.deepcopy(getattr(model, name)) for name in rest))
    init_weights(body)
    with torch.no_grad():
        device = next(model.parameters()).device
        (shape,) = feature_shapes(model, [position], input_shape)
        out_channels = body.eval()(torch.zeros(1, *shape, device=device)).shape[1]
    body.train()
    return ExitBranch(body, _pool_fc(out_channels, model.num_classes))


@dataclass
class ExitOutputs:
    """One forward pass of a student with exits."""

    logits: Tensor  # the main classifier's, [N, C]
    feature: Tensor  # the main classifier's feature map (before pooling), [N, C', H, W]
    exit_logits: list[Tensor]  # one [N, C] per exit, shallow to deep
    exit_features: list[Tensor]  # each exit's feature map before its classifier


def final_feature_position(model: nn.Module) -> str:
    """The module whose output is the main classifier's feature map (the last of ``layout``)."""
    layout = getattr(model, "layout", None)
    if not layout:
        raise ConfigError(f"{type(model).__name__} declares no layout; build it with build_model")
    return layout[-1]


class StudentWithExits(nn.Module):
    """A trainable student plus exits at ``positions``; gradients flow from every exit into the
    student's layers below it. Model selection and export use the main classifier only."""

    def __init__(
        self, student: nn.Module, positions: Sequence[str], exits: Sequence[nn.Module]
    ) -> None:
        super().__init__()
        if len(positions) != len(exits):
            raise ConfigError(f"{len(positions)} positions but {len(exits)} exits")
        self.student = student
        self.positions = tuple(positions)
        self.exits = nn.ModuleList(exits)
        self.taps = StageTaps(student, [*self.positions, final_feature_position(student)])

    def forward(self, x: Tensor) -> ExitOutputs:
        logits, tapped = self.taps(x)
        exit_logits, exit_features = [], []
        for branch, activation in zip(self.exits, tapped[:-1], strict=True):
            out = branch(activation)
            if isinstance(out, tuple):
                out_logits, out_feature = out
            else:
                out_logits, out_feature = out, activation
            exit_logits.append(out_logits)
            exit_features.append(out_feature)
        return ExitOutputs(logits, tapped[-1], exit_logits, exit_features)

    def export(self) -> nn.Module:
        """The plain student (shared, not copied): what is deployed and checkpointed."""
        return self.student


def exit_input_shapes(
    model: nn.Module, positions: Sequence[str], input_shape: Sequence[int]
) -> list[tuple[int, ...]]:
    """Activation shapes at the exit positions (for sizing exits)."""
    return feature_shapes(model, positions, input_shape)
