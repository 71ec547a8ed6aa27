"""FEED (Park & Kwak 2019, arXiv:1909.10754): the student's final feature map learns each
teacher's final feature map through a non-linear transformer of its own, from several teachers at
once (parallel FEED) or from a chain of rounds whose teacher is the previous round's student
(sequential FEED)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dihkit.errors import CheckpointError, ConfigError
from dihkit.losses.feature import check_norm, feed_loss, pool_to, smaller_size
from dihkit.methods.base import BuildContext, Distiller, load_extra_teacher, require_teacher
from dihkit.methods.options import MethodOptions, option
from dihkit.methods.registry import register
from dihkit.models import build_model
from dihkit.nn.exits import final_feature_position
from dihkit.nn.heads import feature_shapes, freeze
from dihkit.nn.projection import FeatureProjection
from dihkit.nn.taps import StageTaps

MODES = ("parallel", "sequential")
TRANSFORMERS = ("3x3", "1x1")


class NonLinearTransformer(nn.Sequential):
    """FEED's non-linear transformation layer (NTL): three 3x3 convolutions (padding 1, so the
    spatial size stays), each followed by BatchNorm and ReLU, from the student's channels to the
    teacher's along ``C_s -> C_s -> C_t -> C_t`` (the channel path of the Factor Transfer
    translator that FEED builds on). The student's map is first average-pooled to ``size`` when
    it is larger."""

    def __init__(self, in_channels: int, out_channels: int, size: Sequence[int]) -> None:
        layers: list[nn.Module] = []
        path = ((in_channels, in_channels), (in_channels, out_channels), (out_channels,) * 2)
        for c_in, c_out in path:
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
            ]
        super().__init__(*layers)
        self.size = tuple(int(s) for s in size)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(pool_to(x, self.size))


def make_transformer(
    kind: str, student_shape: Sequence[int], teacher_shape: Sequence[int]
) -> nn.Module:
    """The transformer from a student map of ``student_shape`` (C, H, W) onto a teacher's:
    ``3x3`` (FEED's NTL) or ``1x1`` (the kit's :class:`FeatureProjection`: 1x1 conv, BN, ReLU),
    its output at the smaller of the two spatial sizes."""
    size = smaller_size(student_shape, teacher_shape)
    if kind == "3x3":
        return NonLinearTransformer(student_shape[0], teacher_shape[0], size)
    if kind == "1x1":
        return FeatureProjection(student_shape, (teacher_shape[0], *size))
    raise ConfigError(
        f"unknown FEED transformer {kind!r}; choose one of: {', '.join(TRANSFORMERS)}"
    )


def parse_teachers(text: str) -> tuple[str, ...]:
    """The extra teachers of option ``teachers``: comma-separated sources, "" or ``none`` for
    none."""
    text = text.strip()
    if text in ("", "none"):
        return ()
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _seeded(seed: int, make: Callable[[], nn.Module]) -> nn.Module:
    """``make()`` under ``torch.manual_seed(seed)`` without disturbing the global RNG, so a
    module's initial weights do not depend on what ran before (a trained or a resumed stage)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


@dataclass(frozen=True)
class FEEDOptions(MethodOptions):
    mode: str = option(
        "parallel",
        "feed: parallel: --teacher and --teachers at once, one transformer each (pFEED); "
        "sequential: --rounds rounds, each round's teacher the previous round's student (sFEED)",
        choices=MODES,
    )
    teachers: str = option(
        "",
        "feed parallel: extra teachers besides --teacher, comma-separated bundled names or "
        "checkpoint paths (a path is identified by its text)",
    )
    rounds: int = option(
        3,
        "feed sequential: rounds, each a full run; rounds before the last train into OUT/round-K",
        low=1,
    )
    beta: float = option(
        500.0,
        "feed: weight of each teacher's FEED term, Eq. 1 (500: the Factor Transfer code's)",
        low=0,
    )
    norm: int = option(1, "feed: p of the distance in Eq. 2 (paper: 1, as FT)", low=1, high=2)
    transformer: str = option(
        "3x3",
        "feed: 3x3: the paper's three 3x3 conv + BN + ReLU per teacher; 1x1: one 1x1 conv + BN + "
        "ReLU (the FitNets/DSKD projection)",
        choices=TRANSFORMERS,
    )


@register("feed")
class FeatureEnsemble(Distiller):
    """FEED's loss (its Eq. 1-2, :mod:`dihkit.losses.feature`):
    ``CE + beta * sum_n || T_n(x^S)/||T_n(x^S)||_2 - x^T_n/||x^T_n||_2 ||_p``, where ``x^S`` is
    the student's final feature map before pooling (the last module of its ``layout``), ``x^T_n``
    the n-th frozen teacher's, and ``T_n`` a non-linear transformer trained with the student, one
    per teacher. Each teacher's term is reported as ``feed`` (one teacher) or ``feed1``,
    ``feed2``, ...; the teachers run without gradients in eval mode (inference mode).

    ``mode="parallel"`` (pFEED): the teachers are ``--teacher`` and the ``teachers`` option's
    list. ``mode="sequential"`` (sFEED): ``rounds`` rounds of single-teacher FEED; round 1
    learns from ``--teacher``, every later round from the previous round's trained student
    (best validation epoch, frozen), which has the student's architecture. Rounds before the last
    train into ``OUT/round-K`` with the run's schedule, resumably; the last round is the run.

    Choices where the paper is silent or where dihkit departs from it:

    - The transformer: the paper's NTL is three convolutions of kernel size 3; their channel
      path (``C_s -> C_s -> C_t -> C_t``, as the FT translator) and the BatchNorm + ReLU after
      each (the zoo's final maps are post-ReLU) are dihkit's. ``transformer="1x1"`` uses the
      kit's 1x1 conv + BN + ReLU projection instead.
    - The distance: the mean of ``|d|^p`` over the batch and the map's elements, not the summed
      p-norm (the FT authors' code's ``nn.L1Loss``); ``beta = 500`` is the FT code's default on
      that scale, as the FEED text we could read does not restate its value.
    - Teachers are summed (Eq. 1), so N teachers weigh N times one; a teacher may be listed
      twice (it then counts twice, with its own transformer each time).
    - Maps of different spatial sizes: the larger is adaptively average-pooled to the smaller
      (the student's before its transformer, the teacher's target otherwise); the paper does
      not say, as its students and teachers are CIFAR/ImageNet networks of one family.
    - Sequential rounds: every round's student starts from the weights the run's seed gives the
      student (as every method's student does), each round has new transformers, and its
      identity holds the FEED options and the round, not ``rounds`` (round K of a run is the same
      run for any ``rounds`` > K). The default of 3 rounds is dihkit's choice. Round 1's
      teacher is ``--teacher``, of any architecture. ``rounds`` is unused by ``parallel``,
      ``teachers`` refused by ``sequential``.
    - Identity: an extra teacher enters the run's identity through the ``teachers`` option's
      text. A bundled name pins its file (sha256-checked on load); a checkpoint path is
      identified by its text alone, so replace a teacher file under a new path.
    - No target cache: the teachers' maps are computed live every step.
    """

    summary = "FEED: the student's last feature map learns each teacher's via its own transformer"
    Options = FEEDOptions
    requires = ("teacher",)
    frozen = ("teachers",)

    def __init__(
        self,
        student: nn.Module,
        teachers: Sequence[nn.Module],
        transformers: Sequence[nn.Module],
        beta: float = 500.0,
        norm: int = 1,
    ) -> None:
        super().__init__(student)
        if len(teachers) != len(transformers) or not teachers:
            raise ValueError(
                f"FEED needs one transformer per teacher, got {len(transformers)} transformers "
                f"for {len(teachers)} teachers"
            )
        self.teachers = nn.ModuleList(freeze(t) for t in teachers)
        self.transformers = nn.ModuleList(transformers)
        self.beta, self.norm = beta, check_norm(norm)
        # Plain tuples: the taps wrap modules registered above and add no state of their own.
        self._student_taps = (StageTaps(student, [final_feature_position(student)]),)
        self._teacher_taps = tuple(StageTaps(t, [final_feature_position(t)]) for t in self.teachers)
        self.term_names = (
            ("feed",) if len(teachers) == 1 else tuple(f"feed{n + 1}" for n in range(len(teachers)))
        )

    @classmethod
    def assemble(
        cls,
        student: nn.Module,
        teachers: Sequence[nn.Module],
        context: BuildContext,
        options: FEEDOptions,
    ) -> FeatureEnsemble:
        """A FEED distiller from ``student`` onto ``teachers``, with new transformers seeded by
        the run's seed."""
        shape = context.input_shape
        (s_shape,) = feature_shapes(student, [final_feature_position(student)], shape)
        t_shapes = [feature_shapes(t, [final_feature_position(t)], shape)[0] for t in teachers]
        kind = options.transformer
        transformers = _seeded(
            context.config.seed,
            lambda: nn.ModuleList(make_transformer(kind, s_shape, t) for t in t_shapes),
        )
        return cls(student, teachers, list(transformers), options.beta, options.norm)

    @classmethod
    def build(cls, context: BuildContext, options: FEEDOptions) -> FeatureEnsemble:
        teacher = require_teacher(context, cls.method)
        extra = parse_teachers(options.teachers)
        if options.mode == "parallel":
            teachers = [teacher.model]
            teachers += [_extra_teacher(context, source, options.teachers) for source in extra]
            return cls.assemble(context.student, teachers, context, options)
        if extra:
            raise ConfigError(
                f"method 'feed': option teachers = {options.teachers!r} is for mode 'parallel'; "
                "sequential FEED's later teachers are its own earlier rounds"
            )
        previous = teacher.model
        spec = context.data.spec
        arch = context.student.arch
        for k in range(1, options.rounds):
            student = _seeded(
                context.config.seed,
                lambda: build_model(arch, spec.num_classes, spec.in_channels),
            )
            stage = cls.assemble(student, [previous], context, options)
            try:
                context.run_stage(
                    f"round-{k}",
                    stage,
                    context.config,
                    meta={
                        "role": f"feed sequential round {k}",
                        "teacher": teacher.source if k == 1 else f"round-{k - 1}",
                        "feed": {
                            "round": k,
                            "beta": options.beta,
                            "norm": options.norm,
                            "transformer": options.transformer,
                        },
                    },
                )
            finally:
                stage.remove_taps()
            previous = student
        return cls.assemble(context.student, [previous], context, options)

    def remove_taps(self) -> None:
        """Detach the forward hooks on the student and the teachers (a finished round's student
        becomes the next round's teacher, tapped afresh)."""
        for taps in self._student_taps + self._teacher_taps:
            taps.remove()

    def extra_modules(self) -> dict[str, nn.Module]:
        return {"transformers": self.transformers}

    def teacher_features(self, images: Tensor) -> list[Tensor]:
        """Each teacher's final feature map for ``images``, pooled to its transformer's output
        size where larger, computed in inference mode and copied out as ordinary tensors."""
        sizes = [t.size for t in self.transformers]
        with torch.inference_mode():
            live = [
                pool_to(taps(images)[1][0], size)
                for taps, size in zip(self._teacher_taps, sizes, strict=True)
            ]
        return [f.clone() for f in live]

    def forward(
        self, images: Tensor, labels: Tensor, targets: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        targets_maps = self.teacher_features(images)
        logits, (feature,) = self._student_taps[0](images)
        terms = {"ce": F.cross_entropy(logits, labels)}
        for name, transformer, target in zip(
            self.term_names, self.transformers, targets_maps, strict=True
        ):
            terms[name] = self.beta * feed_loss(transformer(feature), target, self.norm)
        return logits, terms


def _extra_teacher(context: BuildContext, source: str, text: str) -> nn.Module:
    """An extra teacher's model; an unknown name is a :class:`ConfigError` naming the option."""
    try:
        return load_extra_teacher(context, source, "feed").model
    except CheckpointError as exc:
        if Path(source).exists():  # a damaged or unfitting file stays a checkpoint problem
            raise
        raise ConfigError(f"method 'feed': option teachers = {text!r}: {exc}") from exc
