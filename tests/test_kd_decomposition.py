"""Tang et al.'s decomposition of KD: each synthetic teacher against a hand computation, the
loss against plain KD, the report's three parts, bad options, seeded permutations that are the
same from the target cache and live, and one-epoch runs."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from dihkit.data.datasets import per_class_subset
from dihkit.errors import ConfigError
from dihkit.losses import kd_student_loss
from dihkit.losses.decomposition import (
    class_similarity,
    decomposition_report,
    decomposition_student_loss,
    label_smoothing,
    label_smoothing_confidence,
    nontarget_permutations,
    permute_nontarget,
    pt_with_similarity,
    similarity_teacher,
    topk_count,
    topk_teacher,
    uniform_nontarget,
    variant_probs,
)
from dihkit.methods import BuildContext, get_method, resolve_options
from dihkit.methods.kd_decomposition import KDDecomposition
from dihkit.models import build_model
from dihkit.runs.pipeline import distill, load_teacher
from dihkit.training.config import TrainConfig

PROBS = torch.tensor(
    [[0.5, 0.2, 0.2, 0.1], [0.1, 0.6, 0.05, 0.25], [0.3, 0.3, 0.3, 0.1]], dtype=torch.float32
)
LABELS = torch.tensor([0, 3, 2])


def _is_distribution(rows: torch.Tensor) -> bool:
    return bool((rows >= 0).all()) and torch.allclose(rows.sum(dim=1), torch.ones(len(rows)))


def _others(label: int, classes: int) -> list[int]:
    return [c for c in range(classes) if c != label]


def test_uniform_nontarget_keeps_p_t_and_spreads_the_rest_evenly():
    rho = uniform_nontarget(PROBS, LABELS)
    assert _is_distribution(rho)
    for n, label in enumerate(LABELS.tolist()):
        p_t = PROBS[n, label].item()
        assert rho[n, label].item() == pytest.approx(p_t)
        for c in _others(label, 4):
            assert rho[n, c].item() == pytest.approx((1 - p_t) / 3, abs=1e-7)
    assert rho[1].tolist() == pytest.approx([0.25, 0.25, 0.25, 0.25])  # p_t = 0.25 = 1/C


def test_permuting_the_nontarget_probabilities_keeps_p_t_and_their_multiset():
    permutation = torch.tensor([[2, 0, 1], [1, 2, 0], [0, 1, 2]])
    rho = permute_nontarget(PROBS, LABELS, permutation)
    assert _is_distribution(rho)
    for n, label in enumerate(LABELS.tolist()):
        others = _others(label, 4)
        for j, c in enumerate(others):
            assert rho[n, c].item() == PROBS[n, others[permutation[n, j]]].item()
        assert rho[n, label].item() == PROBS[n, label].item()
        assert sorted(rho[n, others].tolist()) == sorted(PROBS[n, others].tolist())
    assert torch.equal(rho[2], PROBS[2])  # the identity permutation changes nothing
    assert rho[0].tolist() == pytest.approx([0.5, 0.1, 0.2, 0.2])


def test_seeded_permutations_are_permutations_and_reproducible():
    first = nontarget_permutations(50, 10, torch.Generator().manual_seed(3))
    again = nontarget_permutations(50, 10, torch.Generator().manual_seed(3))
    other = nontarget_permutations(50, 10, torch.Generator().manual_seed(4))
    assert first.shape == (50, 9) and torch.equal(first, again) and not torch.equal(first, other)
    assert torch.equal(first.sort(dim=1).values, torch.arange(9).expand(50, 9))


def test_label_smoothing_is_szegedys_with_epsilon_and_the_mean_p_t_without():
    labels = torch.tensor([1, 4, 0])
    rho = label_smoothing(labels, 5, label_smoothing_confidence(0.2, 5))
    szegedy = 0.8 * F.one_hot(labels, 5).float() + 0.2 / 5
    assert _is_distribution(rho) and torch.allclose(rho, szegedy)
    mean_p_t = (0.5 + 0.25 + 0.3) / 3
    rho = variant_probs("label_smoothing", PROBS, LABELS)
    for n, label in enumerate(LABELS.tolist()):
        assert rho[n, label].item() == pytest.approx(mean_p_t)
        assert rho[n, _others(label, 4)].tolist() == pytest.approx([(1 - mean_p_t) / 3] * 3)


def test_class_similarity_is_a_softmax_of_cosines_of_the_logit_layer():
    weight = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, -2.0]])
    table = class_similarity(weight, temperature=0.5)
    cosines = [
        [1, 1 / math.sqrt(2), 0],
        [1 / math.sqrt(2), 1, -1 / math.sqrt(2)],
        [0, -(0.5**0.5), 1],
    ]
    for t in range(3):
        exps = [math.exp(c / 0.5) for c in cosines[t]]
        assert table[t].tolist() == pytest.approx([e / sum(exps) for e in exps], rel=1e-5)
    labels = torch.tensor([2, 0, 0])
    assert torch.equal(similarity_teacher(labels, table), table[[2, 0, 0]])
    probs = torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.1, 0.3], [0.9, 0.05, 0.05]])
    rho = pt_with_similarity(probs, labels, table)
    assert _is_distribution(rho)
    for n, t in enumerate(labels.tolist()):
        others = _others(t, 3)
        total = sum(table[t, c].item() for c in others)
        assert rho[n, t].item() == pytest.approx(probs[n, t].item())
        for c in others:
            expected = (1 - probs[n, t].item()) * table[t, c].item() / total
            assert rho[n, c].item() == pytest.approx(expected, rel=1e-5)


def test_topk_keeps_the_largest_probabilities_and_flattens_the_tail():
    probs = torch.tensor([[0.05, 0.5, 0.15, 0.3], [0.4, 0.1, 0.2, 0.3]])
    rho = topk_teacher(probs, 2)
    assert _is_distribution(rho)
    assert rho[0].tolist() == pytest.approx([0.1, 0.5, 0.1, 0.3])  # (0.05 + 0.15) / 2
    assert rho[1].tolist() == pytest.approx([0.4, 0.15, 0.15, 0.3])
    assert torch.equal(topk_teacher(probs, 4), probs)
    assert (topk_count(0.25, 100), topk_count(0.25, 10), topk_count(0.5, 1000)) == (25, 3, 500)


def test_full_is_exactly_kd_and_a_variant_matches_a_hand_computation():
    torch.manual_seed(0)
    student, teacher = torch.randn(6, 5), torch.randn(6, 5) * 3
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    for weighting in ("convex", "sum"):
        full = decomposition_student_loss(student, teacher, labels, "full", 4.0, 0.3, weighting)
        kd = kd_student_loss(student, teacher, labels, 4.0, 0.3, weighting)
        assert full.keys() == kd.keys() == {"kd", "ce"}
        assert all(torch.equal(full[k], kd[k]) for k in kd)

    terms = decomposition_student_loss(student, teacher, labels, "uniform_nontarget", 4.0, 0.3)
    total = 0.0
    for n in range(6):
        t = labels[n].item()
        exps = [math.exp(z / 4.0) for z in teacher[n].tolist()]
        p_t = exps[t] / sum(exps)
        rho = [p_t if c == t else (1 - p_t) / 4 for c in range(5)]
        log_q = torch.log_softmax(student[n] / 4.0, dim=0).tolist()
        total += sum(r * (math.log(r) - lq) for r, lq in zip(rho, log_q, strict=True))
    assert terms["kd"].item() == pytest.approx(0.3 * 16 * total / 6, rel=1e-5)
    assert terms["ce"].item() == pytest.approx(0.7 * F.cross_entropy(student, labels).item())


def test_the_report_splits_the_teacher_into_domain_and_instance_parts():
    torch.manual_seed(1)
    logits, labels = torch.randn(5, 4) * 2, torch.tensor([0, 1, 2, 3, 1])
    report = decomposition_report(logits, labels, tau=2.0)
    probs = torch.softmax(logits / 2.0, dim=1)
    confidence = probs[range(5), labels].mean().item()
    assert report["confidence"].item() == pytest.approx(confidence)
    smoothed = label_smoothing(labels, 4, confidence)
    pt = uniform_nontarget(probs, labels)
    for n, t in enumerate(labels.tolist()):
        p = probs[n].tolist()
        assert report["p_t"][n].item() == pytest.approx(p[t])
        shares = [p[c] / (1 - p[t]) for c in _others(t, 4)]
        entropy = -sum(s * math.log(s) for s in shares)
        assert report["nontarget_entropy"][n].item() == pytest.approx(entropy, rel=1e-5)
        assert report["nontarget_kl_uniform"][n].item() == pytest.approx(
            math.log(3) - entropy, abs=1e-6
        )

        def kl(a, b):
            return sum(x * math.log(x / y) for x, y in zip(a, b, strict=True))

        assert report["domain_kl"][n].item() == pytest.approx(kl(p, pt[n].tolist()), abs=1e-6)
        assert report["instance_kl"][n].item() == pytest.approx(
            kl(pt[n].tolist(), smoothed[n].tolist()), abs=1e-6
        )
        assert (report["domain_kl"][n] + report["instance_kl"][n]).item() == pytest.approx(
            kl(p, smoothed[n].tolist()), abs=1e-6
        )
    fixed = decomposition_report(logits, labels, tau=2.0, ls_epsilon=0.1)
    assert fixed["confidence"].item() == pytest.approx(0.9 + 0.1 / 4)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kd_variant": "shuffled"}, r"option kd_variant = 'shuffled' is not valid.*full, "),
        ({"ls_epsilon": 1.5}, r"option ls_epsilon = 1.5 is out of range.*\[0, 1\]"),
        ({"ls_epsilon": -0.1}, r"option ls_epsilon = -0.1 is out of range"),
        ({"sim_temperature": 0}, r"option sim_temperature = 0.0 is out of range"),
        ({"topk_fraction": 0}, r"option topk_fraction = 0.0 is out of range"),
    ],
)
def test_bad_options_are_clear_errors(values, message):
    with pytest.raises(ConfigError, match=message):
        resolve_options("kd_decomposition", values)


def test_bad_values_reaching_the_functions_are_clear_errors():
    with pytest.raises(ConfigError, match=r"got 'shuffled'"):
        decomposition_student_loss(PROBS, PROBS, LABELS, "shuffled")
    with pytest.raises(ConfigError, match=r"epsilon must lie in \[0, 1\], got 2.0"):
        label_smoothing_confidence(2.0, 10)
    with pytest.raises(ConfigError, match="needs a permutation"):
        variant_probs("permuted_nontarget", PROBS, LABELS)


def _build(tiny, teacher, method="kd_decomposition", seed=0, **options):
    torch.manual_seed(0)
    context = BuildContext(build_model("resnet8", 10, 1), teacher, tiny, TrainConfig(seed=seed))
    return get_method(method).build(context, resolve_options(method, options)).eval()


def _batch(tiny, count=16):
    return (tiny.train.images[:count].float() / 255 - 0.286) / 0.353, tiny.train.labels[:count]


def test_the_full_variant_is_the_kd_method_exactly(tiny):
    teacher = load_teacher("resnet14")
    images, labels = _batch(tiny)
    options = {"tau": 4.0, "alpha": 0.5, "kd_weighting": "sum"}
    logits, kd = _build(tiny, teacher, "kd", **options)(images, labels)
    full_logits, full = _build(tiny, teacher, kd_variant="full", **options)(images, labels)
    assert torch.equal(logits, full_logits)
    assert kd.keys() == full.keys() and all(torch.equal(kd[k], full[k]) for k in kd)


def test_permutations_are_the_same_from_the_cache_and_live_and_follow_the_seed(tiny):
    teacher = load_teacher("resnet14")
    images, labels = _batch(tiny)
    with torch.no_grad():
        cached = teacher.model.eval()(images).half().float().unsqueeze(0)  # as the cache holds
    runs = {}
    for name, seed, targets in (("live", 0, None), ("cached", 0, cached), ("other", 1, None)):
        distiller = _build(tiny, teacher, seed=seed, kd_variant="permuted_nontarget").train()
        distiller.set_epoch(2)
        distiller(images, labels, targets)  # step 0
        runs[name] = distiller(images, labels, targets)[1]["kd"].item()  # step 1
    assert runs["cached"] == pytest.approx(runs["live"], rel=1e-3)
    assert runs["other"] != pytest.approx(runs["live"], rel=1e-3)


def test_a_permuted_run_draws_the_same_permutations_for_the_same_batches_cached_and_live(
    tiny, tmp_path, monkeypatch
):
    steps: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
    real_forward, real_draw = KDDecomposition.forward, KDDecomposition.next_permutation

    def forward(self, images, labels, targets=None):
        steps[-1].append((labels.clone(), None))
        return real_forward(self, images, labels, targets)

    def draw(self, count, classes):
        permutation = real_draw(self, count, classes)
        steps[-1][-1] = (steps[-1][-1][0], permutation)
        return permutation

    monkeypatch.setattr(KDDecomposition, "forward", forward)
    monkeypatch.setattr(KDDecomposition, "next_permutation", draw)
    small = dataclasses.replace(
        tiny,
        train=per_class_subset(tiny.train, 16),
        val=per_class_subset(tiny.val, 4),
        test=per_class_subset(tiny.test, 4),
    )
    losses = []
    for views in (0, 1):
        steps.append([])
        config = TrainConfig(
            epochs=1, batch_size=64, device="cpu", augment=False, cached_targets=views
        )
        _, result = distill(
            "kd_decomposition", "resnet14", "resnet8", small, config,
            {"kd_variant": "permuted_nontarget"}, progress=False, cache_root=tmp_path,
        )  # fmt: skip
        losses.append(result.history[0].losses["kd"])
    live, cached = steps
    assert len(live) == len(cached) == math.ceil(len(small.train) / 64)
    for (live_labels, live_perm), (cached_labels, cached_perm) in zip(live, cached, strict=True):
        assert torch.equal(live_labels, cached_labels)  # the same samples in the same batches
        assert torch.equal(live_perm, cached_perm)  # ... get the same permutations
    assert not torch.equal(live[0][1], live[1][1])  # a fresh draw every step
    assert losses[1] == pytest.approx(losses[0], rel=1e-3)  # the same run, to fp16


@pytest.mark.parametrize("variant", ["uniform_nontarget", "sim"])
def test_one_epoch_run(tiny, variant):
    config = TrainConfig(epochs=1, batch_size=64, device="cpu")
    _, result = distill(
        "kd_decomposition", "resnet14", "resnet8", tiny, config, {"kd_variant": variant},
        progress=False,
    )  # fmt: skip
    (record,) = result.history
    assert set(record.losses) == {"kd", "ce"}
    assert math.isfinite(record.train_loss) and 0 <= result.test_acc_best <= 1
