"""Neighbourhood Distillation (Shao, Moroz, Eban & Movshovitz-Attias 2020, arXiv:2010.01189):
teacher and student are cut into the same blocks (neighbourhoods); each student block learns the
teacher's block from the teacher's own input to it, so the blocks train independently of each
other, and the trained blocks make up the student, whose classifier trains last."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dihkit.errors import ConfigError
from dihkit.losses import kd_student_loss
from dihkit.losses.neighbourhood import adapt, channel_grouping, neighbourhood_loss
from dihkit.methods.base import BuildContext, Distiller, require_teacher
from dihkit.methods.kd import KnowledgeDistillation
from dihkit.methods.options import MethodOptions, option
from dihkit.methods.registry import register
from dihkit.models import MODEL_NAMES, build_model
from dihkit.nn.heads import freeze
from dihkit.nn.taps import default_positions
from dihkit.training import distributed
from dihkit.training.runtime import evaluating

FINAL_LOSSES = ("kd", "ce")


def _arch(model: nn.Module) -> str:
    return getattr(model, "arch", type(model).__name__)


def blocks_of(model: nn.Module) -> list[tuple[str, tuple[str, ...]]]:
    """The model's blocks, ``[(stage, modules)]``: the runs of ``model.layout`` that end at each
    named stage. The stem joins the first block, the modules after the last stage (WRN's final
    BN-ReLU, VGG's last conv block) join the last; pooling and ``fc`` belong to no block."""
    stages = default_positions(model)
    layout = tuple(getattr(model, "layout", ()))
    ends = [layout.index(s) + 1 if s in layout else -1 for s in stages]
    if -1 in ends or ends != sorted(set(ends)) or not hasattr(model, "fc"):
        raise ConfigError(
            f"{_arch(model)}: its stages {list(stages)} do not split its layout {list(layout)} "
            "into blocks; build it with dihkit.models.build_model"
        )
    starts, ends[-1] = [0, *ends[:-1]], len(layout)
    return [(s, layout[a:b]) for s, a, b in zip(stages, starts, ends, strict=True)]


def run_modules(model: nn.Module, names: Sequence[str], x: Tensor) -> Tensor:
    """``x`` through the named child modules of ``model``, in order."""
    for name in names:
        x = getattr(model, name)(x)
    return x


def classify(model: nn.Module, features: Tensor) -> Tensor:
    """The model's classifier on its final feature map: average pooling, then ``fc``."""
    return model.fc(torch.flatten(model.avgpool(features), 1))


@dataclass(frozen=True)
class Neighbourhood:
    """Block ``index`` of a teacher-student pair: the modules each side runs and the fixed
    adapters between the teacher's channels and the student's (None where they agree)."""

    index: int
    name: str  # the student's stage the block ends at
    teacher_before: tuple[str, ...]  # the teacher's modules that make the block's input
    teacher_modules: tuple[str, ...]  # the teacher's block (its output is the target)
    teacher_after: tuple[str, ...]  # the rest of the teacher, before its classifier
    student_modules: tuple[str, ...]
    adapter_in: Tensor | None  # [C_student_in, C_teacher_in] = G
    adapter_out: Tensor | None  # [C_teacher_out, C_student_out] = G.T of the output's grouping


def _shapes(model: nn.Module, blocks: list, input_shape: Sequence[int]) -> list[tuple[int, ...]]:
    """(C, H, W) of the input and of each block's output, for one image."""
    device = next(model.parameters()).device
    with evaluating(model), torch.no_grad():
        x = torch.zeros(1, *input_shape, device=device)
        shapes = [tuple(x.shape[1:])]
        for _, names in blocks:
            x = run_modules(model, names, x)
            shapes.append(tuple(x.shape[1:]))
    return shapes


def _grouping(teacher_channels: int, student_channels: int) -> Tensor | None:
    same = teacher_channels == student_channels
    return None if same else channel_grouping(teacher_channels, student_channels)


def _models_with(stages: int) -> list[str]:
    with torch.device("meta"):  # no weights are initialised
        return [n for n in MODEL_NAMES if len(build_model(n).stage_names) == stages]


def neighbourhoods(
    teacher: nn.Module, student: nn.Module, input_shape: Sequence[int]
) -> list[Neighbourhood]:
    """The matched blocks of ``teacher`` and ``student``; a :class:`ConfigError` naming the fix
    when they have different numbers of stages, meet at different resolutions, or the student is
    wider than the teacher where a block ends."""
    t_blocks, s_blocks = blocks_of(teacher), blocks_of(student)
    t_arch, s_arch = _arch(teacher), _arch(student)
    if len(t_blocks) != len(s_blocks):
        raise ConfigError(
            f"method 'nd' cuts teacher and student into the same blocks, but the teacher "
            f"{t_arch} has {len(t_blocks)} named stages ({', '.join(n for n, _ in t_blocks)}) and "
            f"the student {s_arch} has {len(s_blocks)} ({', '.join(n for n, _ in s_blocks)}); "
            f"choose a student with {len(t_blocks)}: {', '.join(_models_with(len(t_blocks)))}"
        )
    t_shapes, s_shapes = (
        _shapes(teacher, t_blocks, input_shape),
        _shapes(student, s_blocks, input_shape),
    )
    for (name, _), t, s in zip(s_blocks, t_shapes[1:], s_shapes[1:], strict=True):
        if t[1:] != s[1:]:
            raise ConfigError(
                f"method 'nd': block {name} ends at {s[1]}x{s[2]} in the student {s_arch} but at "
                f"{t[1]}x{t[2]} in the teacher {t_arch}; the blocks must meet at the same "
                "resolution: choose a student whose stages downsample like the teacher's"
            )
        if s[0] > t[0]:
            raise ConfigError(
                f"method 'nd': block {name} of the student {s_arch} has {s[0]} channels, more "
                f"than the teacher {t_arch}'s {t[0]}; neighbourhood distillation thins the "
                "teacher: choose a student as wide as the teacher or thinner at every stage"
            )
    t_names = [names for _, names in t_blocks]
    hoods = []
    for i, (name, s_names) in enumerate(s_blocks):
        out = _grouping(t_shapes[i + 1][0], s_shapes[i + 1][0])
        hoods.append(
            Neighbourhood(
                index=i,
                name=name,
                teacher_before=sum(t_names[:i], ()),
                teacher_modules=t_names[i],
                teacher_after=sum(t_names[i + 1 :], ()),
                student_modules=s_names,
                adapter_in=_grouping(t_shapes[i][0], s_shapes[i][0]),
                adapter_out=None if out is None else out.T.contiguous(),
            )
        )
    return hoods


class BlockStage(Distiller):
    """One neighbourhood's stage: the student's block ``i`` learns to reproduce the frozen
    teacher's block ``i`` from the teacher's input to it (:func:`neighbourhood_loss`), through
    the fixed adapters where the widths differ. Only that block trains (see
    :func:`training_only`); the last epoch is kept. Its logits, for accuracy, are the hybrid's:
    the teacher with block ``i`` replaced by the student's (the paper's test that a neighbourhood
    can be swapped in), computed without gradients."""

    method = "nd-block"
    summary = "Neighbourhood Distillation: one student block"
    frozen = ("teacher",)
    select_best = False

    def __init__(self, student: nn.Module, teacher: nn.Module, hood: Neighbourhood) -> None:
        super().__init__(student)
        self.teacher = freeze(teacher)
        self.hood = hood
        self.register_buffer("adapter_in", hood.adapter_in, persistent=False)
        self.register_buffer("adapter_out", hood.adapter_out, persistent=False)

    def describe(self) -> str:
        return f"{_arch(self.student)} block {self.hood.name}"

    def teacher_io(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """The teacher's input to the block and its output, in inference mode, copied out."""
        with torch.inference_mode():
            x = run_modules(self.teacher, self.hood.teacher_before, images)
            target = run_modules(self.teacher, self.hood.teacher_modules, x.clone())
        return x.clone(), target.clone()

    def student_block(self, teacher_input: Tensor) -> Tensor:
        """The student's block on the teacher's input (in the student's channels)."""
        x = adapt(teacher_input, self.adapter_in)
        return run_modules(self.student, self.hood.student_modules, x)

    def hybrid_logits(self, block_output: Tensor) -> Tensor:
        """The rest of the teacher, and its classifier, after the student's block."""
        x = adapt(block_output, self.adapter_out)
        return classify(self.teacher, run_modules(self.teacher, self.hood.teacher_after, x))

    def forward(
        self, images: Tensor, labels: Tensor, targets: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        x, target = self.teacher_io(images)
        output = self.student_block(x)
        with torch.no_grad():
            logits = self.hybrid_logits(output.detach())
        return logits, {"mse": neighbourhood_loss(output, target, self.adapter_out)}

    def predict(self, images: Tensor) -> Tensor:
        x = run_modules(self.teacher, self.hood.teacher_before, images)
        return self.hybrid_logits(self.student_block(x))


def block_parameters(model: nn.Module, names: Sequence[str]) -> list[nn.Parameter]:
    """The parameters of ``model``'s child modules ``names`` (one block's)."""
    return [p for name in names for p in getattr(model, name).parameters()]


@contextlib.contextmanager
def training_only(model: nn.Module, names: Sequence[str]) -> Iterator[None]:
    """Inside, only the parameters of ``model``'s child modules ``names`` require gradients (so
    only they reach the optimizer); the flags are restored afterwards."""
    keep = {id(p) for p in block_parameters(model, names)}
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)


def assemble_classifier(student: nn.Module, teacher: nn.Module, last: Neighbourhood) -> None:
    """Start the student's classifier as the teacher's, read through the last block's output
    adapter: ``fc_S(pool(s)) = fc_T(pool(G.T s))`` exactly (pooling and a 1x1 linear map
    commute), so the assembled student is at once the teacher with every block replaced."""
    with torch.no_grad():
        weight = teacher.fc.weight
        if last.adapter_out is not None:
            weight = weight @ last.adapter_out.to(weight)
        student.fc.weight.copy_(weight)
        student.fc.bias.copy_(teacher.fc.bias)


@dataclass(frozen=True)
class NDOptions(MethodOptions):
    block_epochs: int | None = option(
        None, "nd: epochs of each block stage (default: --epochs)", low=1
    )
    finetune_epochs: int = option(
        0,
        "nd: the last N epochs of the main run train the assembled student end to end (0: only "
        "its classifier trains, on the frozen blocks)",
        low=0,
    )
    final_loss: str = option(
        "kd", "nd: loss of the main run (classifier, fine-tuning): kd or ce", choices=FINAL_LOSSES
    )
    tau: float = option(5.0, "temperature of the main run's KD term", low=0, low_open=True)
    alpha: float = option(0.1, "weight of the main run's KD term", low=0, high=1)


@register("nd")
class NeighbourhoodDistillation(KnowledgeDistillation):
    """Neighbourhood Distillation (Shao, Moroz, Eban & Movshovitz-Attias 2020, "Neighbourhood
    Distillation: On the benefits of non end-to-end distillation", arXiv:2010.01189).

    One stage per block, ``OUT/block-STAGE`` (:class:`BlockStage`, ``block_epochs`` each, the
    run's schedule restarted as FitNets' hint stage does): the student's block ``i`` learns the
    teacher's block ``i`` from the teacher's input to it (MSE, :func:`neighbourhood_loss`). No
    block reads another's weights, so the stages could run in parallel; dihkit runs them one
    after another, which gives the same blocks. Then the main run (``--epochs``) trains the
    assembled student's classifier with KD (``final_loss``; tau and alpha as dihkit's KD) or CE
    on the frozen blocks (eval mode, no gradients); its last ``finetune_epochs`` epochs train
    everything end to end with the same loss, at the tail of the run's schedule.
    :func:`dihkit.methods.neighbourhood_cost.neighbourhood_costs` reports what one block step
    costs next to an end-to-end step.

    Choices (only the paper's abstract could be read here; what it does not settle is dihkit's):
    - Blocks are the named stages (``stage_names``, e.g. layer1..3 of a CIFAR ResNet): the stem
      joins the first block, the modules after the last stage join the last; pooling and ``fc``
      are in no block. Teacher and student need as many stages, meeting at the same resolutions.
    - Width: the paper swaps a student neighbourhood in for the teacher's (its abstract: model
      reduction and sparsification), which needs the teacher's input and output shapes.
      Where a student stage is thinner, dihkit wraps the student block in fixed (untrained) 1x1
      channel-grouping adapters, ``G`` at its input and ``G.T`` at its output
      (:func:`channel_grouping`, ``G @ G.T = I``): the blocks stay independent, and the adapters
      between two blocks fold into the identity, so the student assembles exactly with no extra
      layer; the last output adapter folds into ``fc``. (Trained adapters would need a bridge
      layer between the student's stages.) A student wider than the teacher is refused.
    - The MSE is the mean over elements, not a per-sample sum of squares (same minimiser).
    - The classifier starts as the teacher's read through the last adapter
      (:func:`assemble_classifier`) and trains in the main run; ``finetune_epochs`` defaults to
      0: the merged student is the method's result (the abstract: distil each neighbourhood,
      then merge them).
    - A block stage's accuracy is the hybrid's (the teacher with that block swapped in); its
      steps run the rest of the teacher, without gradients, for those logits.
    - With ``finetune_epochs`` 0 the blocks' parameters keep ``requires_grad`` off after the run.
    - Block stages never use cached targets; the main run can (``final_loss`` kd). Under
      torchrun ``finetune_epochs`` must be 0 or ``--epochs`` (DDP trains the same parameters in
      every step).
    """

    summary = (
        "Neighbourhood Distillation: each student stage learns its teacher stage from the "
        "teacher's input, then the assembled student's classifier (and --finetune-epochs) train"
    )
    Options = NDOptions

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        tau: float = 5.0,
        alpha: float = 0.1,
        final_loss: str = "kd",
        finetune_from: int | None = None,
    ) -> None:
        super().__init__(student, teacher, tau, alpha)
        self.final_loss = final_loss
        self.finetune_from = finetune_from  # the first (0-based) end-to-end epoch; None: never
        self.fine_tuning = finetune_from == 0

    @classmethod
    def build(cls, context: BuildContext, options: NDOptions) -> NeighbourhoodDistillation:
        teacher = require_teacher(context, cls.method).model
        student, config, tune = context.student, context.config, options.finetune_epochs
        if tune > config.epochs:
            raise ConfigError(
                f"method 'nd': option finetune_epochs = {tune} is more than the run's "
                f"{config.epochs} epochs; the fine-tuning is the end of the main run: use at most "
                f"--epochs ({config.epochs}) or raise --epochs"
            )
        if distributed.active() and 0 < tune < config.epochs:
            raise ConfigError(
                f"method 'nd': option finetune_epochs = {tune} under torchrun must be 0 or "
                f"--epochs ({config.epochs}): DDP trains the same parameters in every step"
            )
        hoods = neighbourhoods(teacher, student, context.input_shape)
        block_epochs = options.block_epochs or config.epochs
        stage_config = dataclasses.replace(
            config,
            epochs=block_epochs,
            milestones=config.milestones if block_epochs == config.epochs else (),
            cached_targets=0,  # the blocks match feature maps, which the cache does not hold
        )
        for hood in hoods:
            with training_only(student, hood.student_modules):
                context.run_stage(
                    f"block-{hood.name}",
                    BlockStage(student, teacher, hood),
                    stage_config,
                    meta={"role": "nd block", "block": hood.name},
                )
        assemble_classifier(student, teacher, hoods[-1])
        if tune == 0:  # the blocks never train again: keep them out of the optimizer
            for name in student.layout:
                getattr(student, name).requires_grad_(False)
        finetune_from = config.epochs - tune if tune else None
        return cls(student, teacher, options.tau, options.alpha, options.final_loss, finetune_from)

    @classmethod
    def can_cache(cls, options: MethodOptions) -> bool:
        return options.final_loss == "kd"

    def cache_refusal(self) -> str | None:
        if self.final_loss != "kd":
            return "method 'nd' with final_loss ce uses no teacher outputs; drop --cached-targets"
        return super().cache_refusal()

    def set_epoch(self, epoch: int) -> None:
        self.fine_tuning = self.finetune_from is not None and epoch >= self.finetune_from
        self.train(self.training)  # the blocks' BatchNorm modes follow the phase

    def train(self, mode: bool = True) -> NeighbourhoodDistillation:
        super().train(mode)
        if mode and not self.fine_tuning:  # frozen blocks: fixed BatchNorm statistics
            for name in self.student.layout:
                getattr(self.student, name).eval()
        return self

    def forward(
        self, images: Tensor, labels: Tensor, targets: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        if self.fine_tuning:
            logits = self.student(images)
        else:
            with torch.no_grad():
                features = run_modules(self.student, self.student.layout, images)
            logits = classify(self.student, features)
        if self.final_loss == "ce":
            return logits, {"ce": F.cross_entropy(logits, labels)}
        teacher_logits = self.targets_for(images, targets)[0]
        return logits, kd_student_loss(logits, teacher_logits, labels, self.tau, self.alpha)
