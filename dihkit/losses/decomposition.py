"""What KD's teacher distribution carries, taken apart: Tang et al., "Understanding and Improving
Knowledge Distillation" (2020, arXiv:2002.03532).

The paper sorts the teacher's knowledge into three levels: the "universe" (a label-smoothing-like
regularisation), domain knowledge (class relationships: how the non-target mass is spread) and
instance-specific knowledge (the teacher's confidence on the target, ``p_t``, rescaling each
sample's gradient). Its controlled experiments replace the teacher's softened distribution by
synthetic ones that keep some of these parts and remove the others. Here each replacement is a
plain function ``teacher probabilities -> variant probabilities`` (every row non-negative and
summing to 1), :func:`decomposition_student_loss` is KD with one of them in place of the teacher,
and :func:`decomposition_report` measures the three parts of a batch.

Notation: ``probs`` is ``[N, C]`` (rows are distributions), ``labels`` is ``[N]`` and ``p_t`` the
probability at the label.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor

from dihkit.errors import ConfigError
from dihkit.losses import KD_WEIGHTINGS, kd_loss_from_probs, kd_student_loss, softened

# The teacher variants, in the order the method's help lists them.
DECOMPOSITION_VARIANTS = (
    "full",  # the teacher's own softened distribution: plain KD
    "uniform_nontarget",  # the paper's rho^pt (KD-pt): p_t kept, 1 - p_t spread uniformly
    "permuted_nontarget",  # p_t kept, the non-target probabilities shuffled per sample
    "label_smoothing",  # the same target mass for every sample, uniform elsewhere (LS)
    "sim",  # the paper's rho^sim (KD-sim): class similarities of the teacher's logit layer
    "pt_sim",  # KD-pt+sim: p_t kept, 1 - p_t spread by the class similarities
    "topk",  # the paper's KD-topk: the k largest teacher probabilities kept, uniform tail
)
DEFAULT_TOPK_FRACTION = 0.25  # the paper's best k on CIFAR-100 (25 of 100 classes)


def _check_batch(probs: Tensor, labels: Tensor) -> int:
    """The number of classes, after checking the shapes fit (at least two classes)."""
    if probs.dim() != 2 or labels.shape != probs.shape[:1]:
        raise ConfigError(
            f"expected probabilities [N, C] and labels [N], got {tuple(probs.shape)} and "
            f"{tuple(labels.shape)}"
        )
    classes = probs.shape[1]
    if classes < 2:
        raise ConfigError(f"a teacher variant needs at least 2 classes, got {classes}")
    return classes


def target_probability(probs: Tensor, labels: Tensor) -> Tensor:
    """``p_t`` for every sample, ``[N]``: the probability each row gives its label."""
    return probs.gather(1, labels.long().unsqueeze(1)).squeeze(1)


def target_with_uniform_rest(target_mass: Tensor, labels: Tensor, classes: int) -> Tensor:
    """``[N, C]`` rows with ``target_mass`` (``[N]``) at the label and ``(1 - target_mass) /
    (C - 1)`` at every other class."""
    rest = (1 - target_mass) / (classes - 1)
    rows = rest.unsqueeze(1).expand(labels.shape[0], classes).clone()
    return rows.scatter(1, labels.long().unsqueeze(1), target_mass.unsqueeze(1).to(rows.dtype))


def uniform_nontarget(probs: Tensor, labels: Tensor) -> Tensor:
    """The paper's synthetic teacher rho^pt (KD-pt): the teacher's ``p_t`` at the label, the rest
    ``(1 - p_t) / (C - 1)`` on each other class. It keeps the instance-specific knowledge (each
    sample's ``p_t``, which rescales its gradient) and removes the class relationships."""
    classes = _check_batch(probs, labels)
    return target_with_uniform_rest(target_probability(probs, labels), labels, classes)


def nontarget_classes(labels: Tensor, classes: int) -> Tensor:
    """``[N, C - 1]``: every class but the label, in increasing order, for each sample."""
    steps = torch.arange(classes - 1, device=labels.device).unsqueeze(0)
    return steps + (steps >= labels.long().unsqueeze(1)).long()


def nontarget_permutations(
    count: int, classes: int, generator: torch.Generator | None = None
) -> Tensor:
    """``count`` random permutations of ``0 .. C - 2`` (``[count, C - 1]``, int64, on the CPU),
    drawn from ``generator``: the order of a row of uniform draws."""
    return torch.rand(count, classes - 1, generator=generator).argsort(dim=1)


def permute_nontarget(probs: Tensor, labels: Tensor, permutation: Tensor) -> Tensor:
    """``p_t`` kept at the label; the ``C - 1`` non-target probabilities moved among the
    non-target classes by ``permutation`` (``[N, C - 1]``, one permutation of ``0 .. C - 2`` per
    row): the ``j``-th non-target class (in increasing order) gets the probability of the
    ``permutation[j]``-th. The multiset of non-target probabilities, and so their entropy, is
    unchanged; which classes they sit on is not: the class relationships become noise.

    Not one of Tang et al.'s synthetic teachers; it is the control of Born-Again Networks'
    "dark knowledge with permuted predictions" (Furlanello et al. 2018), with the label in place
    of the teacher's top class."""
    classes = _check_batch(probs, labels)
    if permutation.shape != (probs.shape[0], classes - 1):
        raise ConfigError(
            f"permutation must be [N, C - 1] = {[probs.shape[0], classes - 1]}, "
            f"got {list(permutation.shape)}"
        )
    others = nontarget_classes(labels, classes)
    values = probs.gather(1, others)
    moved = values.gather(1, permutation.to(probs.device).long())
    return probs.scatter(1, others, moved)


def label_smoothing_confidence(epsilon: float, classes: int) -> float:
    """The target mass of label smoothing with ``epsilon`` (Szegedy et al. 2016):
    ``(1 - epsilon) * one_hot + epsilon / C`` puts ``1 - epsilon + epsilon / C`` on the label."""
    ok = isinstance(epsilon, numbers.Real) and not isinstance(epsilon, bool)
    if not (ok and math.isfinite(epsilon) and 0 <= epsilon <= 1):
        raise ConfigError(f"label smoothing epsilon must lie in [0, 1], got {epsilon!r}")
    return 1 - epsilon + epsilon / classes


def label_smoothing(labels: Tensor, classes: int, confidence: float | Tensor) -> Tensor:
    """The "universe" part alone: the same target mass ``confidence`` for every sample and the
    rest uniform, ``(1 - confidence) / (C - 1)`` per other class. With ``confidence =
    label_smoothing_confidence(epsilon, C)`` this is Szegedy's label smoothing; with the
    teacher's mean ``p_t`` it is rho^pt with the per-sample information averaged away."""
    if classes < 2:
        raise ConfigError(f"a teacher variant needs at least 2 classes, got {classes}")
    mass = torch.as_tensor(confidence, dtype=torch.float32, device=labels.device)
    return target_with_uniform_rest(mass.expand(labels.shape[0]), labels, classes)


def class_similarity(classifier_weight: Tensor, temperature: float = 0.5) -> Tensor:
    """The paper's rho^sim table, ``[C, C]``: row ``t`` is ``softmax_j(cos(w_t, w_j) / beta)``
    over the rows ``w`` of the teacher's logit-layer weight (``[C, D]``), ``beta`` the
    ``temperature``. A sample of class ``t`` gets row ``t``: class relationships only, the same
    for every sample of a class (no instance-specific knowledge)."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ConfigError(f"similarity temperature must be a positive number, got {temperature!r}")
    unit = F.normalize(classifier_weight.detach().float(), dim=1)
    return F.softmax(unit @ unit.t() / temperature, dim=1)


def similarity_teacher(labels: Tensor, similarity: Tensor) -> Tensor:
    """rho^sim for a batch (KD-sim): each sample's row of the :func:`class_similarity` table."""
    return similarity[labels.long()]


def pt_with_similarity(probs: Tensor, labels: Tensor, similarity: Tensor) -> Tensor:
    """KD-pt+sim: the teacher's ``p_t`` at the label and ``1 - p_t`` spread over the other classes
    in proportion to the label's row of the :func:`class_similarity` table (instance-specific
    target mass, class relationships from the logit layer, not from this sample)."""
    classes = _check_batch(probs, labels)
    if similarity.shape != (classes, classes):
        raise ConfigError(f"similarity must be [C, C] with C = {classes}, got {similarity.shape}")
    p_t = target_probability(probs, labels)
    index = labels.long().unsqueeze(1)
    shares = similarity[labels.long()].to(probs.device).scatter(1, index, 0.0)
    shares = shares / shares.sum(dim=1, keepdim=True)
    return ((1 - p_t).unsqueeze(1) * shares).scatter(1, index, p_t.unsqueeze(1))


def topk_count(fraction: float, classes: int) -> int:
    """``k`` for KD-topk: ``ceil(fraction * C)``, at least 1 (the paper states k as a share of C:
    25 % on CIFAR-100, 50 % on ImageNet)."""
    if not (math.isfinite(fraction) and 0 < fraction <= 1):
        raise ConfigError(f"top-k fraction must lie in (0, 1], got {fraction!r}")
    return max(1, min(classes, math.ceil(fraction * classes - 1e-9)))


def topk_teacher(probs: Tensor, k: int) -> Tensor:
    """KD-topk: the ``k`` largest teacher probabilities of each row kept where they are, the
    remaining mass ``1 - sum(top k)`` spread uniformly over the other ``C - k`` classes (the
    label gets no special treatment: it may fall in the tail)."""
    classes = probs.shape[-1]
    if not (isinstance(k, int) and 1 <= k <= classes):
        raise ConfigError(f"top-k needs 1 <= k <= C = {classes}, got {k!r}")
    if k == classes:
        return probs.clone()
    values, index = probs.topk(k, dim=1)
    rest = (1 - values.sum(dim=1)).clamp_min(0) / (classes - k)
    rows = rest.unsqueeze(1).expand(probs.shape[0], classes).clone()
    return rows.scatter(1, index, values)


def variant_probs(
    variant: str,
    teacher_probs: Tensor,
    labels: Tensor,
    *,
    permutation: Tensor | None = None,
    similarity: Tensor | None = None,
    ls_epsilon: float | None = None,
    top_k: int | None = None,
) -> Tensor:
    """The teacher distribution ``variant`` (one of :data:`DECOMPOSITION_VARIANTS`) makes of
    ``teacher_probs``. ``permuted_nontarget`` needs ``permutation``, ``sim`` and ``pt_sim`` the
    :func:`class_similarity` table; ``label_smoothing`` uses ``ls_epsilon`` or, when it is None,
    the batch's mean ``p_t``; ``topk`` uses ``top_k`` (default: 25 % of the classes)."""
    check_variant(variant)
    probs = teacher_probs.detach().float()
    classes = _check_batch(probs, labels)
    if variant == "full":
        return probs
    if variant == "uniform_nontarget":
        return uniform_nontarget(probs, labels)
    if variant == "permuted_nontarget":
        if permutation is None:
            raise ConfigError("variant 'permuted_nontarget' needs a permutation [N, C - 1]")
        return permute_nontarget(probs, labels, permutation)
    if variant == "label_smoothing":
        if ls_epsilon is None:
            confidence: float | Tensor = target_probability(probs, labels).mean()
        else:
            confidence = label_smoothing_confidence(ls_epsilon, classes)
        return label_smoothing(labels, classes, confidence)
    if variant == "topk":
        return topk_teacher(
            probs, topk_count(DEFAULT_TOPK_FRACTION, classes) if top_k is None else top_k
        )
    if similarity is None:
        raise ConfigError(f"variant {variant!r} needs the teacher's class-similarity table")
    if variant == "sim":
        return similarity_teacher(labels, similarity).to(probs.device)
    return pt_with_similarity(probs, labels, similarity)


def check_variant(variant: str) -> str:
    """``variant`` if it is one of :data:`DECOMPOSITION_VARIANTS`, else a :class:`ConfigError`."""
    if variant not in DECOMPOSITION_VARIANTS:
        raise ConfigError(
            f"teacher variant must be one of {', '.join(DECOMPOSITION_VARIANTS)}, got {variant!r}"
        )
    return variant


def decomposition_student_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    variant: str = "full",
    tau: float = 5.0,
    alpha: float = 0.1,
    weighting: str = "convex",
    **variant_inputs: Tensor | float | int | None,
) -> dict[str, Tensor]:
    """KD (DIH paper Eq. 2, the kit's :func:`~dihkit.losses.kd_student_loss`) with the teacher's
    softened distribution ``P_T^tau`` replaced by ``variant``'s (:func:`variant_probs`):
    ``alpha * tau^2 * KL(rho || P_S^tau) + (1 - alpha) * CE`` (``weighting="sum"``: ``CE + alpha
    * ...``), as named terms ``kd`` and ``ce``. The variants transform the teacher's
    distribution at ``tau`` (rho^sim has its own temperature instead); the student is softened
    at ``tau`` as in KD. ``variant="full"`` is exactly :func:`kd_student_loss`.
    ``variant_inputs`` are :func:`variant_probs`'s keywords."""
    check_variant(variant)
    if weighting not in KD_WEIGHTINGS:
        raise ConfigError(f"weighting must be one of {', '.join(KD_WEIGHTINGS)}, got {weighting!r}")
    if variant == "full":
        return kd_student_loss(student_logits, teacher_logits, labels, tau, alpha, weighting)
    rho = variant_probs(variant, softened(teacher_logits.detach(), tau), labels, **variant_inputs)
    ce_weight = 1 - alpha if weighting == "convex" else 1.0
    return {
        "kd": alpha * kd_loss_from_probs(student_logits, rho, tau),
        "ce": ce_weight * F.cross_entropy(student_logits, labels),
    }


def _binary_kl(p: Tensor, q: Tensor) -> Tensor:
    """``KL(Bernoulli(p) || Bernoulli(q))`` elementwise (``0 log 0 = 0``)."""
    return (
        torch.xlogy(p, p)
        - torch.xlogy(p, q)
        + torch.xlogy(1 - p, 1 - p)
        - torch.xlogy(1 - p, 1 - q)
    )


def decomposition_report(
    teacher_logits: Tensor, labels: Tensor, tau: float = 5.0, ls_epsilon: float | None = None
) -> dict[str, Tensor]:
    """The three parts of a batch's softened teacher distribution, per sample (``[N]``):

    - ``p_t``: the teacher's target probability at ``tau`` (instance-specific knowledge: KD's
      gradient on a sample is rescaled with it) and ``nontarget_mass = 1 - p_t``;
    - ``nontarget_entropy``: the entropy of the non-target probabilities renormalised to sum to
      1, and ``nontarget_kl_uniform = log(C - 1) - nontarget_entropy`` (0 when they are
      uniform: no class relationships);
    - ``domain_kl = KL(P_T || rho^pt) = nontarget_mass * nontarget_kl_uniform``: what the class
      relationships add to rho^pt;
    - ``instance_kl = KL(rho^pt || rho^LS)``: what the per-sample ``p_t`` adds to label smoothing
      at the ``confidence`` (the batch's mean ``p_t``, or that of ``ls_epsilon``); ``confidence``
      is that target mass, the "universe" part (a 0-d tensor).

    The two KLs add up exactly: ``KL(P_T || rho^LS) = domain_kl + instance_kl``, as both rho^pt
    and rho^LS are uniform off the label."""
    probs = softened(teacher_logits.detach(), tau)
    classes = _check_batch(probs, labels)
    p_t = target_probability(probs, labels)
    others = probs.gather(1, nontarget_classes(labels, classes))
    mass = others.sum(dim=1)
    shares = others / mass.clamp_min(torch.finfo(probs.dtype).tiny).unsqueeze(1)
    entropy = -torch.xlogy(shares, shares).sum(dim=1)
    kl_uniform = (math.log(classes - 1) - entropy).clamp_min(0)
    if ls_epsilon is None:
        confidence = p_t.mean()
    else:
        confidence = torch.tensor(
            label_smoothing_confidence(ls_epsilon, classes), device=p_t.device
        )
    return {
        "p_t": p_t,
        "nontarget_mass": 1 - p_t,
        "nontarget_entropy": entropy,
        "nontarget_kl_uniform": kl_uniform,
        "domain_kl": mass * kl_uniform,
        "instance_kl": _binary_kl(p_t, confidence.expand_as(p_t)),
        "confidence": confidence,
    }


__all__ = [
    "DECOMPOSITION_VARIANTS",
    "DEFAULT_TOPK_FRACTION",
    "check_variant",
    "class_similarity",
    "decomposition_report",
    "decomposition_student_loss",
    "label_smoothing",
    "label_smoothing_confidence",
    "nontarget_classes",
    "nontarget_permutations",
    "permute_nontarget",
    "pt_with_similarity",
    "similarity_teacher",
    "target_probability",
    "target_with_uniform_rest",
    "topk_count",
    "topk_teacher",
    "uniform_nontarget",
    "variant_probs",
]
