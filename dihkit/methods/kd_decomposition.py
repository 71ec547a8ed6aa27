"""KD with the teacher's distribution replaced by controlled variants that keep one part of its
knowledge: Tang et al., "Understanding and Improving Knowledge Distillation" (2020)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dihkit.data.loader import epoch_seed
from dihkit.errors import ConfigError
from dihkit.losses import KD_WEIGHTINGS
from dihkit.losses.decomposition import (
    DECOMPOSITION_VARIANTS,
    DEFAULT_TOPK_FRACTION,
    class_similarity,
    decomposition_student_loss,
    nontarget_permutations,
    topk_count,
)
from dihkit.methods.base import BuildContext, require_teacher
from dihkit.methods.kd import KnowledgeDistillation
from dihkit.methods.options import MethodOptions, option
from dihkit.methods.registry import register

SIMILARITY_VARIANTS = ("sim", "pt_sim")
PERMUTATION_SALT = 0x5EED_9E27  # keeps the permutations' stream apart from the loader's


@dataclass(frozen=True)
class KDDecompositionOptions(MethodOptions):
    tau: float = option(
        5.0, "temperature of the softened distributions (as kd; DIH paper: 5)", low=0, low_open=True
    )
    alpha: float = option(
        0.1, "weight of the KD term, as kd's (convex: CE gets 1 - alpha)", low=0, high=1
    )
    kd_weighting: str = option(
        "convex",
        "convex: (1 - alpha) CE + alpha KD; sum: CE + alpha KD (as kd)",
        choices=KD_WEIGHTINGS,
    )
    kd_variant: str = option(
        "full",
        "the teacher distribution KD learns from (Tang et al. 2020): full (plain KD), "
        "uniform_nontarget (KD-pt: teacher p_t, rest uniform), permuted_nontarget (p_t, "
        "non-target probabilities shuffled per sample), label_smoothing (one target mass for "
        "all samples), sim (KD-sim: logit-layer class similarities), pt_sim (KD-pt+sim), "
        "topk (KD-topk: k largest kept, uniform tail)",
        choices=DECOMPOSITION_VARIANTS,
    )
    ls_epsilon: float | None = option(
        None,
        "label_smoothing: epsilon of (1 - eps) one-hot + eps / C (default: no epsilon, the "
        "target mass is the batch's mean teacher p_t at tau)",
        low=0,
        high=1,
    )
    sim_temperature: float = option(
        0.5,
        "sim, pt_sim: temperature beta of softmax(cos(w_t, w_j) / beta) over the teacher's "
        "logit-layer weights (a dihkit default)",
        low=0,
        low_open=True,
    )
    topk_fraction: float = option(
        DEFAULT_TOPK_FRACTION,
        "topk: k = ceil(fraction * classes) teacher probabilities kept (paper: 0.25 on "
        "CIFAR-100, 0.5 on ImageNet)",
        low=0,
        high=1,
        low_open=True,
    )


@register("kd_decomposition")
class KDDecomposition(KnowledgeDistillation):
    """KD (the kit's ``kd``: same ``tau``, ``alpha``, ``kd_weighting`` and defaults) whose KD term
    learns from a variant of the teacher's softened distribution instead of the distribution
    itself, after Tang et al., "Understanding and Improving Knowledge Distillation" (2020,
    arXiv:2002.03532). The paper splits what the teacher carries into the "universe" (a
    label-smoothing-like regulariser), domain knowledge (class relationships: how the non-target
    mass is spread) and instance-specific knowledge (the teacher's ``p_t``, which rescales each
    sample's gradient), and tests them with synthetic teachers; ``kd_variant`` picks one
    (functions in :mod:`dihkit.losses.decomposition`):

    - ``full``: the teacher itself; exactly ``kd`` with the same options.
    - ``uniform_nontarget``: the paper's rho^pt (KD-pt): ``p_t`` kept, ``(1 - p_t) / (C - 1)`` on
      every other class. Instance-specific rescaling without class relationships.
    - ``permuted_nontarget``: ``p_t`` kept, the non-target probabilities permuted per sample (not
      a synthetic teacher of the paper; Born-Again Networks' permuted-predictions control).
    - ``label_smoothing``: one target mass for every sample, the rest uniform: the universe part
      alone (the paper's LS baseline, here inside the KD term, softened student at ``tau``; at
      ``tau = 1``, ``alpha = 1`` it is label-smoothed cross-entropy). ``ls_epsilon`` gives
      Szegedy's ``(1 - eps) one_hot + eps / C``; without it the mass is the batch's mean
      teacher ``p_t`` at ``tau`` (so it matches rho^pt on average; a dihkit choice).
    - ``sim``: the paper's rho^sim (KD-sim): ``softmax_j(cos(w_t, w_j) / beta)`` over the
      teacher's logit-layer weight rows, the same for every sample of class ``t``: class
      relationships without instance-specific knowledge.
    - ``pt_sim``: KD-pt+sim: ``p_t`` kept, ``1 - p_t`` spread over the other classes in
      proportion to rho^sim's row.
    - ``topk``: the paper's KD-topk (its proposal for a less noisy teacher): the ``k`` largest
      probabilities kept, the remaining mass spread uniformly over the other ``C - k`` classes.

    Choices where the paper is silent, or that dihkit makes:

    - The paper's own temperature and KD weight for these experiments are not taken over (not
      confirmed for dihkit): the defaults are the kit's KD defaults (tau 5, alpha 0.1, convex),
      so ``full`` is the ``kd`` baseline at its defaults. The variants transform the teacher's
      distribution at ``tau`` (rho^sim has its own ``sim_temperature`` beta, default 0.5, a
      dihkit choice) and the student is softened at ``tau`` as in KD.
    - The options are kd's three, declared again rather than inherited, so switches added to
      ``kd`` later (such as its ``logit_standardise``) are not silently ignored here.
    - The option is ``kd_variant`` (not ``variant``) because method options share CLI flags by
      name, as ``kd_weighting`` does.
    - rho^pt, rho^sim and KD-topk are the paper's; ``pt_sim``'s construction (``1 - p_t`` in
      proportion to rho^sim off the label) and KD-topk's uniform tail are dihkit's reading of
      it, and ``permuted_nontarget`` is a control the paper does not run.
    - ``permuted_nontarget`` draws its permutations from a CPU generator seeded by the run seed,
      the epoch and the step within the epoch (``epoch_seed`` folded twice with a salt), so a
      run is reproducible and resumes exactly (the count restarts at each epoch). The cached
      loader serves the same samples in the same batches as the live one for the same seed, so
      a sample gets the same permutation whether its teacher logits come from the target cache
      or from the live teacher. Each visit of a sample draws a fresh permutation (noise, not a
      consistent wrong relationship). Eval-mode calls do not advance the step.
    - ``topk``: ``k = ceil(topk_fraction * C)``; the paper's best 25 % (CIFAR-100) is the default.
    - ``sim`` and ``pt_sim`` need the teacher's final ``fc`` linear layer (every model of the
      zoo has one); the table is computed once at build, so cached training is unaffected.
    """

    summary = "KD from a controlled variant of the teacher's distribution (Tang et al. 2020)"
    Options = KDDecompositionOptions

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        options: KDDecompositionOptions | None = None,
        seed: int = 0,
    ) -> None:
        options = options or KDDecompositionOptions()
        super().__init__(student, teacher, options.tau, options.alpha, options.kd_weighting)
        self.options = options
        self.seed = seed
        self._epoch, self._step = 0, 0
        table = None
        if options.kd_variant in SIMILARITY_VARIANTS:
            table = class_similarity(_classifier_weight(teacher), options.sim_temperature)
        self.register_buffer("similarity", table, persistent=False)

    @classmethod
    def build(cls, context: BuildContext, options: KDDecompositionOptions) -> KDDecomposition:
        teacher = require_teacher(context, cls.method)
        return cls(context.student, teacher.model, options, seed=context.config.seed)

    def set_epoch(self, epoch: int) -> None:
        self._epoch, self._step = int(epoch), 0

    @torch.compiler.disable
    def next_permutation(self, count: int, classes: int) -> Tensor:
        """This step's permutations of the non-target classes, ``[count, C - 1]``, drawn from
        ``(seed, epoch, step)``; a training call moves on to the next step."""
        seed = epoch_seed(epoch_seed(self.seed ^ PERMUTATION_SALT, self._epoch), self._step)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        if self.training:
            self._step += 1
        return nontarget_permutations(count, classes, generator)

    def forward(
        self, images: Tensor, labels: Tensor, targets: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        o = self.options
        teacher_logits = self.targets_for(images, targets)[0]
        logits = self.student(images)
        classes = teacher_logits.shape[1]
        permutation = None
        if o.kd_variant == "permuted_nontarget":
            permutation = self.next_permutation(labels.shape[0], classes).to(labels.device)
        return logits, decomposition_student_loss(
            logits,
            teacher_logits,
            labels,
            o.kd_variant,
            o.tau,
            o.alpha,
            o.kd_weighting,
            permutation=permutation,
            similarity=self.similarity,
            ls_epsilon=o.ls_epsilon,
            top_k=topk_count(o.topk_fraction, classes),
        )


def _classifier_weight(teacher: nn.Module) -> Tensor:
    """The teacher's logit-layer weight ``[C, D]`` (its final ``fc`` linear layer)."""
    fc = getattr(teacher, "fc", None)
    if not isinstance(fc, nn.Linear):
        raise ConfigError(
            f"method 'kd_decomposition': variants {', '.join(SIMILARITY_VARIANTS)} need the "
            f"teacher's final linear layer 'fc'; {type(teacher).__name__} has none"
        )
    return fc.weight
