"""The base :class:`Distiller` and the :class:`BuildContext` a method is built from.

A distiller owns the student (and whatever else it trains) plus frozen teachers. Calling it on a
batch is one training step's forward pass: it returns the logits that training accuracy is
measured on and a dict of named loss terms; the trainer sums the terms. A method is one
subclass, registered by name, that declares what it needs (``requires``), its options
(``Options``) and how it is built from a context (``build``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor, nn

from dihkit.data.datasets import Dataset
from dihkit.errors import ConfigError
from dihkit.files import UnreadableFileError, read_json, write_json_atomic
from dihkit.methods.options import MethodOptions
from dihkit.nn.heads import Cohort, freeze
from dihkit.training.checkpoint import load_model_state, model_entry
from dihkit.training.config import TrainConfig
from dihkit.training.distributed import is_main
from dihkit.training.history import FitResult
from dihkit.training.identity import identity_digest, run_identity
from dihkit.training.loop import HISTORY_FILE, fit

SHARED_STAGE_SUFFIX = ".shared.json"  # a run folder's record of a stage it shares

REQUIREMENTS = ("teacher", "cohort")


class TeacherLike(Protocol):
    """What a method uses of a loaded teacher (:class:`dihkit.teachers.loading.Teacher`): the
    frozen model, where it came from, and its saved head sets as cohorts."""

    model: nn.Module
    source: str

    @property
    def cohort(self) -> Cohort | None:
        """The teacher with its primary trained heads, or None without heads."""
        ...

    def require_cohort(self, method: str) -> Cohort:
        """The cohort, or a clear error naming ``method``."""
        ...

    def head_set(
        self, kind: str, positions: Sequence[str] | None = None, width: int | None = None
    ) -> Cohort | None:
        """A cohort over the saved head set of ``kind`` at ``positions``, or None."""
        ...


class NoOptions(MethodOptions):
    """A method without options."""


@dataclass
class BuildContext:
    """What a method is built from: a freshly initialised student, the loaded teacher (when the
    method ``requires`` one), the data, the training configuration and where the run lives.

    ``run_stage`` trains an earlier stage of a multi-stage method (FitNets' hint stage, TAKD's
    assistant) into ``out_dir/NAME`` with its own schedule, resumable like the main run; a
    ``shared`` stage lives in ``stage_root`` instead, where runs with the same stage share it.
    """

    student: nn.Module
    teacher: TeacherLike | None
    data: Dataset
    config: TrainConfig
    out_dir: Path | None = None
    resume: bool = False
    progress: bool = True
    cache_root: Path | None = None  # where target caches live (None: the default root)
    stage_root: Path | None = None  # where shared stages live (None: in the run folder)
    stage_meta: dict[str, Any] = field(default_factory=dict)  # part of every stage's identity
    # Called instead of training an earlier stage (``dihkit reproduce --estimate`` measures it).
    stage_hook: Callable[[str, Distiller, TrainConfig], None] | None = None
    # Loads another teacher by bundled name or checkpoint path, checked against the data, for
    # methods that use several (FEED's parallel form); None where the caller offers none.
    load_teacher: Callable[[str], TeacherLike] | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.data.spec.input_shape

    @property
    def num_classes(self) -> int:
        return self.data.spec.num_classes

    def run_stage(
        self,
        name: str,
        distiller: Distiller,
        config: TrainConfig,
        meta: dict[str, Any] | None = None,
        *,
        shared: bool = False,
    ) -> FitResult | None:
        """Train stage ``name`` into ``out_dir/NAME`` (None: the hook was called instead).

        A ``shared`` stage, one whose settings do not depend on the run (TAKD's assistant at a
        fixed seed), goes to ``stage_root/NAME-DIGEST`` when there is a ``stage_root``, the
        digest being the stage's own identity: the first run trains it, every later run with
        the same stage identity resumes the finished folder and trains nothing. The run folder
        then records in ``NAME.shared.json`` where the stage lives and how many seconds of its
        training this run spent (the first run its whole time, the others 0)."""
        if self.stage_hook is not None:
            self.stage_hook(name, distiller, config)
            return None
        meta = {**self.stage_meta, **(meta or {})}
        folder = self.out_dir / name if self.out_dir is not None else None
        in_stage_root = shared and self.stage_root is not None
        already = 0.0
        if in_stage_root:
            student = getattr(distiller.student, "arch", "?")
            identity = run_identity(distiller.method, student, self.data, config, meta)
            folder = self.stage_root / f"{name}-{identity_digest(identity)}"
            already = _trained_seconds(folder)
        result = fit(
            distiller,
            self.data,
            config,
            out_dir=folder,
            resume=self.resume or in_stage_root,
            progress=self.progress,
            meta=meta,
            cache_root=self.cache_root,
        )
        if in_stage_root and self.out_dir is not None and is_main():
            marker = self.out_dir / f"{name}{SHARED_STAGE_SUFFIX}"
            spent = sum(record.seconds for record in result.history) - already
            spent += _recorded_seconds(marker, folder)  # a resumed run keeps what it spent
            record = {"stage": name, "folder": str(folder), "seconds": spent}
            write_json_atomic(marker, record)
        return result


def _recorded_seconds(marker: Path, folder: Path) -> float:
    """The seconds an earlier attempt of this run recorded for the shared stage in ``folder``."""
    try:
        entry = read_json(marker)
    except UnreadableFileError:
        return 0.0
    if not isinstance(entry, dict) or entry.get("folder") != str(folder):
        return 0.0
    return float(entry.get("seconds", 0.0))


def _trained_seconds(folder: Path) -> float:
    """The training seconds a stage folder's history already holds (0 for none)."""
    try:
        rows = read_json(folder / HISTORY_FILE)
    except UnreadableFileError:
        return 0.0
    return float(sum(row.get("seconds", 0.0) for row in rows)) if isinstance(rows, list) else 0.0


class Distiller(nn.Module):
    """Base class. Subclasses set ``summary``, ``Options`` and ``requires``, implement
    :meth:`forward` and, if they need more than the student, :meth:`build`. A distiller is the
    :class:`~dihkit.training.trainable.Trainable` that :func:`dihkit.training.loop.fit` trains."""

    method: ClassVar[str] = ""
    summary: ClassVar[str] = ""  # one line for `dihkit distill --help`
    Options: ClassVar[type[MethodOptions]] = NoOptions
    requires: ClassVar[tuple[str, ...]] = ()  # any of REQUIREMENTS
    frozen: ClassVar[tuple[str, ...]] = ()  # attributes kept in eval mode whatever .train() says
    select_best: ClassVar[bool] = True  # False: keep the last epoch's weights (a prep stage)
    caches_targets: ClassVar[bool] = False  # True: may train from cached frozen targets
    # What frozen_targets holds, part of the target cache's key: two methods with the same
    # frozen network but different contents never share a cache.
    cached_contents: ClassVar[str] = "logits"

    def __init__(self, student: nn.Module) -> None:
        super().__init__()
        self.student = student

    @classmethod
    def build(cls, context: BuildContext, options: MethodOptions) -> Distiller:
        """Build the distiller for one run (the default: the student alone)."""
        return cls(context.student)

    def forward(
        self, images: Tensor, labels: Tensor, targets: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """One step's logits and named loss terms. ``targets`` are the frozen networks' logits
        for these images when training from a target cache (see :meth:`frozen_targets`)."""
        raise NotImplementedError

    @classmethod
    def can_cache(cls, options: MethodOptions) -> bool:
        """Whether a run with these options can train from cached targets (grids such as
        ``compare`` use the cache for those runs only and run the others live)."""
        return cls.caches_targets

    def target_source(self) -> nn.Module | None:
        """The frozen network whose outputs :meth:`frozen_targets` returns (its weights key the
        target cache), or None for a method without frozen targets."""
        return None

    def cache_refusal(self) -> str | None:
        """Why this distiller cannot train from cached targets, or None if it can."""
        if not self.caches_targets or self.target_source() is None:
            return (
                f"method {self.method!r} has no frozen teacher outputs to cache; "
                "train it without --cached-targets"
            )
        return None

    def frozen_targets(self, images: Tensor) -> Tensor:
        """The frozen networks' logits for ``images`` as ``(M, B, C)``; the target cache stores
        exactly this, and :meth:`targets_for` computes it live when no cache is used."""
        raise NotImplementedError(f"{type(self).__name__} has no frozen targets")

    def targets_for(self, images: Tensor, targets: Tensor | None) -> Tensor:
        """The cached ``targets`` if given, else the frozen networks run live in inference mode
        (no autograd bookkeeping at all; the result is copied out as an ordinary tensor, which
        the loss may save for its backward pass)."""
        if targets is not None:
            return targets
        with torch.inference_mode():
            live = self.frozen_targets(images)
        return live.clone()

    def predict(self, images: Tensor) -> Tensor:
        """Logits used for validation and test: the student's main classifier only."""
        return self.student(images)

    def set_epoch(self, epoch: int) -> None:
        """Called before each epoch (0-based)."""

    def describe(self) -> str:
        """A short label for progress bars."""
        return getattr(self.student, "arch", type(self.student).__name__)

    def train(self, mode: bool = True) -> Distiller:
        super().train(mode)
        for name in self.frozen:
            getattr(self, name).eval()
        return self

    def extra_modules(self) -> dict[str, nn.Module]:
        """Trainable modules besides the student (regressors, peers, exits) saved for resuming."""
        return {}

    def epoch_records(self) -> dict[str, Tensor]:
        """Tensors to keep for the epoch that just ended (e.g. DSKD's per-sample weights); the
        trainer saves them as ``records/epoch-NNN.pt`` in the run folder and then calls
        :meth:`clear_records`."""
        return {}

    def clear_records(self) -> None:
        """Forget what :meth:`epoch_records` returned."""

    def checkpoint_state(self) -> dict[str, Any]:
        """The trainable state a checkpoint keeps: the student as a loadable plain model (its
        exits and other extras separately), so ``best.pt`` always exports the plain student."""
        return {
            "model": model_entry(self.student),
            "extra": {
                name: {k: v.detach().cpu() for k, v in module.state_dict().items()}
                for name, module in self.extra_modules().items()
            },
        }

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`checkpoint_state`."""
        load_model_state(self.student, state["model"])
        for name, module in self.extra_modules().items():
            module.load_state_dict(state["extra"][name])


class TeacherLogitsDistiller(Distiller):
    """A student distilled from one frozen teacher's logits (KD and the methods built on it):
    the teacher stays in eval mode, and its ``(1, B, C)`` logits are the frozen targets a
    target cache may hold."""

    requires = ("teacher",)
    frozen = ("teacher",)
    caches_targets = True

    def __init__(self, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__(student)
        self.teacher = freeze(teacher)

    def target_source(self) -> nn.Module:
        return self.teacher

    def frozen_targets(self, images: Tensor) -> Tensor:
        return self.teacher(images).unsqueeze(0)


def require_teacher(context: BuildContext, method: str) -> TeacherLike:
    """The context's teacher, or a clear error naming ``method``."""
    if context.teacher is None:
        raise ConfigError(f"method {method!r} needs a teacher (--teacher CKPT or bundled name)")
    return context.teacher


def load_extra_teacher(context: BuildContext, source: str, method: str) -> TeacherLike:
    """Another teacher than the context's (by bundled name or checkpoint path), or a clear error
    when the caller cannot load one."""
    if context.load_teacher is None:
        raise ConfigError(f"method {method!r}: this caller cannot load extra teachers ({source})")
    return context.load_teacher(source)


def parse_positions(
    text: str, available: Sequence[str], method: str, option: str, allow_none: bool = False
) -> tuple[str, ...]:
    """Positions from an option string: ``all``, ``none`` (if allowed), or comma-separated names
    or 1-based indices into ``available`` (``layer1,layer3`` or ``1,3``)."""
    text = text.strip()
    if text == "all":
        return tuple(available)
    if text == "none":
        if allow_none:
            return ()
        raise ConfigError(f"method {method!r}: option {option} needs at least one position")
    chosen = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part.isdigit() and 1 <= int(part) <= len(available):
            chosen.append(available[int(part) - 1])
        elif part in available:
            chosen.append(part)
        else:
            raise ConfigError(
                f"method {method!r}: option {option} = {text!r}: {part!r} is not one of "
                f"{', '.join(available)} (or 1..{len(available)}, 'all'"
                + (", 'none')" if allow_none else ")")
            )
    if len(set(chosen)) != len(chosen):
        raise ConfigError(f"method {method!r}: option {option} = {text!r} repeats a position")
    return tuple(sorted(chosen, key=list(available).index))
