"""Channel distillation (Zhou et al. 2020, arXiv:2006.01683): the student matches the teacher's
channel attention (global average per channel) at every stage, learns the teacher's prediction
only where the teacher is right (GKD), and the channel term's weight decays early (EDT)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dihkit.errors import ConfigError
from dihkit.losses import kd_loss
from dihkit.losses.channel import (
    cd_loss,
    cd_only_epochs,
    channel_attention,
    early_decay_weight,
    guided_kd_loss,
    parse_fractions,
)
from dihkit.methods.base import BuildContext, Distiller, parse_positions, require_teacher
from dihkit.methods.options import MethodOptions, option
from dihkit.methods.registry import register
from dihkit.nn.heads import feature_shapes, freeze
from dihkit.nn.taps import StageTaps, default_positions

CONNECTORS = ("mismatch", "always")


@dataclass(frozen=True)
class ChannelDistillationOptions(MethodOptions):
    cd_weight: float = option(
        6.0, "weight of the CD loss, the sum of Eq. 2 over the stages (CD paper's code: 6)", low=0
    )
    kd_weight: float = option(
        0.1,
        "weight of the (guided) KD term; CE keeps weight 1 (CD code: 0.1 on CIFAR-100, 1 on "
        "ImageNet)",
        low=0,
    )
    tau: float = option(1.0, "temperature of the KD term (CD code: 1)", low=0, low_open=True)
    gkd: bool = option(
        True, "guided KD: distil only the samples the teacher gets right (off: KD on all)"
    )
    edt: bool = option(
        True, "early decay teacher: the CD weight decays by edt_factor at edt_milestones"
    )
    edt_factor: float = option(
        0.9, "EDT: factor applied to the CD weight at each milestone (CD code: 0.9)", low=0, high=1
    )
    edt_milestones: str = option(
        "0.3,0.8",
        "EDT: fractions of the run where the CD weight decays (CD code: epochs 60, 160 of 200 "
        "on CIFAR-100; ImageNet 0.3,0.6,0.9)",
    )
    edt_cd_only: float = option(
        0.0,
        "EDT: leading fraction of the run trained on CD alone, CE and KD weights 0 (the CD "
        "code's lrdv2: 0.3; dihkit default: off)",
        low=0,
        high=1,
    )
    cd_positions: str = option(
        "all", "student stages to match, by order, with the teacher's (names or 1-based indices)"
    )
    cd_connector: str = option(
        "mismatch",
        "1x1 conv + BN + ReLU on a student stage: only where channels differ (the paper's "
        "text) or at every stage (the CD code)",
        choices=CONNECTORS,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_fractions(self.edt_milestones, f"method {self.method!r}: option edt_milestones")


class ChannelConnector(nn.Sequential):
    """Maps a student stage onto the teacher's channel count: 1x1 convolution (no bias),
    BatchNorm, ReLU, the authors' ``conv1x1_bn``. No spatial pooling: CD compares channel means
    only, so the spatial sizes need not agree."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )


def matched_stages(
    student: nn.Module, teacher: nn.Module, text: str, method: str
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The student's stages chosen by ``text`` (``all``, names or 1-based indices, as
    :func:`parse_positions` reads them) and the teacher's stages at the same indices. The two
    models must name the same number of stages."""
    s_stages, t_stages = default_positions(student), default_positions(teacher)
    if len(s_stages) != len(t_stages):
        raise ConfigError(
            f"method {method!r} matches stages by order, but the student names "
            f"{len(s_stages)} ({', '.join(s_stages)}) and the teacher {len(t_stages)} "
            f"({', '.join(t_stages)}); pick a student and teacher with the same number of "
            "stages (e.g. two CIFAR ResNets)"
        )
    chosen = parse_positions(text, s_stages, method, "cd_positions")
    return chosen, tuple(t_stages[s_stages.index(p)] for p in chosen)


def stage_channel_attention(
    model: nn.Module, images: Tensor, positions: Sequence[str] | None = None
) -> dict[str, Tensor]:
    """The channel attention (CD paper Eq. 1) of ``model`` at each stage for ``images``:
    ``{position: [N, C]}`` in stage order (default: all named stages), computed in eval mode
    without gradients; the model's mode is restored and no hook is left behind."""
    taps = StageTaps(model, positions if positions is not None else default_positions(model))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            _, features = taps(images)
            return {p: channel_attention(f) for p, f in zip(taps.positions, features, strict=True)}
    finally:
        taps.remove()
        model.train(was_training)


@register("cd")
class ChannelDistillation(Distiller):
    """``CE + kd_weight * GKD + w_cd(epoch) * sum_stages CD`` (the CD paper's CD + GKD + EDT):

    - **CD** (Eq. 1-2, :func:`dihkit.losses.channel.cd_loss`): every matched stage's feature
      map is averaged over its spatial positions to one value per channel (the channel
      attention); the loss is the mean squared difference between the student's and the
      teacher's vectors over samples and channels, *summed* over the stages as the authors' code
      does. Stages are matched by order (both models must name as many; ``cd_positions`` picks
      a subset). Where the channel counts differ the student's stage goes through a 1x1 conv +
      BN + ReLU (the paper's text asks for a 1x1 conv there; ``cd_connector="always"`` puts one
      on every stage, as the authors' code does even for equal channels; the paper names only a
      1x1 conv, the BN and ReLU are the code's).
    - **GKD** (:func:`dihkit.losses.channel.guided_kd_loss`): ``tau^2 KL`` on the samples
      whose teacher argmax is the label, averaged over those kept samples (the authors' code's
      normalisation), 0 for a batch with none; ``gkd=False`` is plain KD over the batch.
    - **EDT** (:func:`dihkit.losses.channel.early_decay_weight`): the CD weight is multiplied
      by ``edt_factor`` at each of ``edt_milestones``, fractions of the run (the authors'
      CIFAR-100 code: x0.9 at epochs 60 and 160 of 200, i.e. 0.3 and 0.8; ImageNet: every 30 of
      100), so a 10-epoch run decays at epochs 3 and 8 (milestone epochs are ``round(f *
      epochs)``, 1-based like the code's; one that rounds to 0 or 1 applies from the start).
      The KD weight does not decay (the code's factor 1 for it). The authors' EDT (``lrdv2``) also
      sets the CE and KD weights to 0 for the first 30 % of the run; the paper's abstract
      describes EDT as the decay only, so that phase is ``edt_cd_only`` (0.3 to reproduce the
      code), off by default. ``edt=False``: a constant CD weight and no CD-only phase.

    Defaults are the authors' CIFAR-100 configuration (the kit's datasets are CIFAR-sized): CD
    weight 6, KD weight 0.1 at tau 1, CE weight 1. The teacher is frozen and runs in inference
    mode; a target cache stores its logits followed by its channel vectors (``C + sum of stage
    channels`` numbers per view), so CD trains from cached targets too.
    """

    summary = "Channel distillation: per-stage channel means + guided KD + early-decaying CD"
    Options = ChannelDistillationOptions
    requires = ("teacher",)
    frozen = ("teacher",)
    caches_targets = True

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        positions: tuple[Sequence[str], Sequence[str]],
        connectors: nn.ModuleList,
        teacher_channels: Sequence[int],
        options: ChannelDistillationOptions,
        epochs: int,
    ) -> None:
        super().__init__(student)
        self.teacher = freeze(teacher)
        self.student_positions, self.teacher_positions = map(tuple, positions)
        self.student_taps = StageTaps(student, self.student_positions)
        self.teacher_taps = StageTaps(self.teacher, self.teacher_positions)
        self.connectors = connectors  # one per matched stage (Identity where none is needed)
        self.teacher_channels = tuple(teacher_channels)
        self.options = options
        self.epochs = epochs
        self.milestones = parse_fractions(options.edt_milestones, "edt_milestones")
        self.epoch = 0

    @classmethod
    def build(cls, context: BuildContext, options: ChannelDistillationOptions) -> Distiller:
        teacher = require_teacher(context, cls.method).model
        student = context.student
        s_pos, t_pos = matched_stages(student, teacher, options.cd_positions, cls.method)
        s_shapes = feature_shapes(student, s_pos, context.input_shape)
        t_shapes = feature_shapes(teacher, t_pos, context.input_shape)
        connectors = nn.ModuleList(
            ChannelConnector(s[0], t[0])
            if options.cd_connector == "always" or s[0] != t[0]
            else nn.Identity()
            for s, t in zip(s_shapes, t_shapes, strict=True)
        )
        channels = [t[0] for t in t_shapes]
        return cls(
            student, teacher, (s_pos, t_pos), connectors, channels, options, context.config.epochs
        )

    def extra_modules(self) -> dict[str, nn.Module]:
        return {"connectors": self.connectors}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def loss_weights(self, epoch: int | None = None) -> dict[str, float]:
        """The weights of the ``ce``, ``kd`` and ``cd`` terms at ``epoch`` (0-based; default:
        the current one): EDT's decayed CD weight, and CE and KD at 0 in a CD-only phase."""
        o = self.options
        epoch = self.epoch if epoch is None else epoch
        if not o.edt:
            return {"ce": 1.0, "kd": o.kd_weight, "cd": o.cd_weight}
        cd = early_decay_weight(o.cd_weight, epoch, self.epochs, o.edt_factor, self.milestones)
        main = 0.0 if epoch < cd_only_epochs(o.edt_cd_only, self.epochs) else 1.0
        return {"ce": main, "kd": main * o.kd_weight, "cd": cd}

    @property
    def cached_contents(self) -> str:  # type: ignore[override]
        return "logits+channel-attention:" + ",".join(self.teacher_positions)

    def target_source(self) -> nn.Module:
        return self.teacher

    def frozen_targets(self, images: Tensor) -> Tensor:
        """``(1, B, C + sum_k C_k)``: the teacher's logits, then its channel attention at each
        matched stage (Eq. 1), the only part of its feature maps CD uses."""
        logits, features = self.teacher_taps(images)
        vectors = [channel_attention(f).to(logits.dtype) for f in features]
        return torch.cat([logits, *vectors], dim=1).unsqueeze(0)

    def _teacher_outputs(self, images: Tensor, targets: Tensor | None) -> tuple[Tensor, list]:
        packed = self.targets_for(images, targets)[0].float()
        classes = packed.shape[1] - sum(self.teacher_channels)
        logits, *vectors = packed.split([classes, *self.teacher_channels], dim=1)
        return logits, vectors

    def forward(
        self, images: Tensor, labels: Tensor, targets: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        o = self.options
        teacher_logits, teacher_vectors = self._teacher_outputs(images, targets)
        logits, features = self.student_taps(images)
        student_vectors = [
            channel_attention(c(f)) for c, f in zip(self.connectors, features, strict=True)
        ]
        weights = self.loss_weights()
        if o.gkd:
            distil = ("gkd", guided_kd_loss(logits, teacher_logits, labels, o.tau))
        else:
            distil = ("kd", kd_loss(logits, teacher_logits, o.tau))
        return logits, {
            "ce": weights["ce"] * F.cross_entropy(logits, labels),
            distil[0]: weights["kd"] * distil[1],
            "cd": weights["cd"] * cd_loss(student_vectors, teacher_vectors),
        }
