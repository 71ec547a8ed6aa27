"""Stage taps: read intermediate activations of any model without rewriting it.

Module paths (``"layer2"``, ``"features.7"``) are tapped with forward hooks. Names that are not
modules but graph nodes of a traceable model (e.g. torchvision's ``"layer3.1.add"``) are tapped
through ``torchvision.models.feature_extraction``. Both serve teachers and students alike.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from dihkit.errors import ConfigError


def default_positions(model: nn.Module) -> tuple[str, ...]:
    """The model's named stage outputs (``model.stage_names``), the paper's mounting positions."""
    names = getattr(model, "stage_names", None)
    if not names:
        raise ConfigError(
            f"{type(model).__name__} names no stage outputs; pass positions explicitly "
            "(module paths such as 'layer2', or graph node names)"
        )
    return tuple(names)


class StageTaps(nn.Module):
    """Wrap ``model`` so one forward pass returns its logits and the activations at ``positions``.

    ``StageTaps(model, ["layer1", "layer2"])(x)`` -> ``(logits, [a_layer1, a_layer2])``.
    """

    def __init__(self, model: nn.Module, positions: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.positions = tuple(positions)
        modules = dict(model.named_modules())
        self._captured: dict[str, Tensor] = {}
        self._handles: list[RemovableHandle] = []
        self._graph: nn.Module | None = None
        if all(name in modules for name in self.positions):
            for name in dict.fromkeys(self.positions):  # a position listed twice is hooked once
                self._handles.append(modules[name].register_forward_hook(self._hook(name)))
        else:
            self._graph = _graph_extractor(model, self.positions, modules)

    def _hook(self, name: str):
        def capture(_module: nn.Module, _inputs: tuple, output: Tensor) -> None:
            self._captured[name] = output

        return capture

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        if self._graph is not None:
            out = self._graph(x)
            return out["__logits__"], [out[name] for name in self.positions]
        self._captured.clear()
        logits = self.model(x)
        features = [self._captured[name] for name in self.positions]
        self._captured.clear()
        return logits, features

    def remove(self) -> None:
        """Detach the hooks; the wrapped model is left as it was."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def _graph_extractor(model: nn.Module, positions: tuple[str, ...], modules: dict) -> nn.Module:
    from torchvision.models.feature_extraction import (
        create_feature_extractor,
        get_graph_node_names,
    )

    try:
        _, eval_nodes = get_graph_node_names(model)
    except Exception as exc:  # tracing failures come in many types
        unknown = [p for p in positions if p not in modules]
        raise ConfigError(
            f"unknown mounting position(s) {unknown}; valid module paths include "
            f"{', '.join(n for n in list(modules)[1:40])} ..."
        ) from exc
    unknown = [p for p in positions if p not in eval_nodes]
    if unknown:
        stages = getattr(model, "stage_names", ())
        raise ConfigError(
            f"unknown mounting position(s) {unknown}; the model's stages are {list(stages)}, "
            f"and its graph nodes include: {', '.join(eval_nodes[:60])}"
        )
    return_nodes = {name: name for name in positions}
    return_nodes[eval_nodes[-1]] = "__logits__"
    return create_feature_extractor(model, return_nodes=return_nodes)
