"""DSKD (and its deep-supervision baselines): adaptive weights, the loss against a hand
computation, ablation switches and recorded weights."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dihkit.losses import adaptive_weights, equal_weights, per_sample_kd, weighted_shallow_loss
from dihkit.methods import BuildContext, get_method, resolve_options
from dihkit.models import build_model
from dihkit.runs.pipeline import distill, load_teacher
from dihkit.training.config import TrainConfig


def test_adaptive_weights_sum_to_one_per_sample_and_favour_the_larger_loss():
    losses = torch.tensor([[1.0, 3.0, 0.2], [3.0, 1.0, 0.2], [0.0, 4.0, 0.6]])  # [M=3, N=3]
    w = adaptive_weights(losses)
    assert torch.allclose(w.sum(dim=0), torch.ones(3))
    assert torch.allclose(w[:, 0], torch.tensor([0.25, 0.75, 0.0]))
    assert torch.allclose(w[:, 2], torch.tensor([0.2, 0.2, 0.6]))
    for n in range(3):
        order = torch.argsort(losses[:, n])
        assert torch.all(w[order, n][1:] >= w[order, n][:-1])


def test_adaptive_weights_are_constants_and_all_zero_losses_share_equally():
    losses = torch.tensor([[0.0, 2.0], [0.0, 2.0]], requires_grad=True)
    w = adaptive_weights(losses)
    assert not w.requires_grad
    assert torch.equal(w, torch.full((2, 2), 0.5))
    assert torch.equal(equal_weights(torch.rand(4, 5)), torch.full((4, 5), 0.25))


def test_weighted_shallow_loss_is_the_batch_mean_of_the_weighted_sum():
    losses = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    weights = torch.tensor([[0.5, 0.1], [0.5, 0.9]])
    expected = ((0.5 * 1 + 0.5 * 3) + (0.1 * 2 + 0.9 * 4)) / 2
    assert weighted_shallow_loss(losses, weights).item() == pytest.approx(expected)


def _dskd(tiny, **options):
    torch.manual_seed(0)
    student = build_model("resnet8", 10, 1)
    teacher = load_teacher("resnet14")
    context = BuildContext(student, teacher, tiny, TrainConfig(epochs=1))
    return get_method("dskd").build(context, resolve_options("dskd", options))


def test_one_shallow_classifier_with_equal_weights_matches_a_hand_computation(tiny):
    tau, alpha, beta = 4.0, 1.0, 30.0
    dskd = _dskd(tiny, exits="layer1", weighting="equal", tau=tau, alpha=alpha, beta=beta).eval()
    images = (tiny.train.images[:8].float() / 255 - 0.286) / 0.353
    labels = tiny.train.labels[:8]
    logits, terms = dskd(images, labels)

    # Independent computation: run every piece by hand.
    student, teacher = dskd.student, dskd.teacher
    with torch.no_grad():
        t = teacher.relu(teacher.bn1(teacher.conv1(images)))
        t_feature = teacher.layer3(teacher.layer2(teacher.layer1(t)))
        t_logits = teacher.fc(torch.flatten(teacher.avgpool(t_feature), 1))
    s = student.relu(student.bn1(student.conv1(images)))
    s1 = student.layer1(s)
    s_feature = student.layer3(student.layer2(s1))
    s_logits = student.fc(torch.flatten(student.avgpool(s_feature), 1))
    branch = dskd.student_exits.exits[0]
    e_feature = branch.body(s1)
    e_logits = branch.classifier(e_feature)

    def kl(z):  # tau^2 KL(p_T || p_S), batch mean, written out
        p = torch.softmax(t_logits / tau, 1)
        return tau**2 * (p * (p.log() - torch.log_softmax(z / tau, 1))).sum(1).mean()

    def mse(r, f):
        return ((r(f) - t_feature) ** 2).mean()

    r_exit, r_last = dskd.projections[0], dskd.projections[1]
    expected = (
        F.cross_entropy(s_logits, labels)
        + alpha * (kl(s_logits) + kl(e_logits))  # one shallow classifier: its weight is 1
        + beta * (mse(r_last, s_feature) + mse(r_exit, e_feature))
    )
    assert torch.allclose(logits, s_logits)
    assert sum(terms.values()).item() == pytest.approx(expected.item(), rel=1e-5)


def test_ablation_switches_remove_their_terms(tiny):
    images = (tiny.train.images[:4].float() / 255 - 0.286) / 0.353
    labels = tiny.train.labels[:4]
    _, terms = _dskd(tiny, feature_loss=False)(images, labels)
    assert set(terms) == {"ce", "kd_last", "kd_shallow"}
    _, terms = _dskd(tiny, exits="none")(images, labels)
    assert set(terms) == {"ce", "kd_last", "fea_last"}


def test_adaptive_and_equal_weighting_differ_only_in_the_shallow_terms(tiny):
    images = (tiny.train.images[:16].float() / 255 - 0.286) / 0.353
    labels = tiny.train.labels[:16]
    adaptive = _dskd(tiny).eval()
    equal = _dskd(tiny, weighting="equal").eval()
    _, a = adaptive(images, labels)
    _, e = equal(images, labels)
    for name in ("ce", "kd_last", "fea_last"):
        assert torch.allclose(a[name], e[name])
    # with two classifiers, loss-share weights put more mass on the larger loss: >= equal mean
    with torch.no_grad():
        out = adaptive.student_exits(images)
        t = adaptive.teacher(images)
        kd = torch.stack([per_sample_kd(z, t, 4.0) for z in out.exit_logits])
    assert a["kd_shallow"].item() >= e["kd_shallow"].item() - 1e-6
    assert a["kd_shallow"].item() == pytest.approx(
        ((kd / kd.sum(0)) * kd).sum(0).mean().item(), rel=1e-5
    )


def test_recorded_weights_are_saved_per_epoch_and_sum_to_one(tiny, tmp_path):
    config = TrainConfig(epochs=2, batch_size=64, device="cpu")
    distill(
        "dskd", "resnet14", "resnet8", tiny, config, {"record_weights": True},
        out_dir=tmp_path, progress=False,
    )  # fmt: skip
    for epoch in (1, 2):
        records = torch.load(tmp_path / "records" / f"epoch-{epoch:03d}.pt", weights_only=True)
        for name in ("kd_weights", "fea_weights"):
            w = records[name]
            assert w.shape == (len(tiny.train), 2)
            assert torch.allclose(w.sum(dim=1), torch.ones(len(tiny.train)), atol=1e-5)


def test_dsn_and_byot_need_no_teacher(tiny):
    for method in ("dsn", "byot"):
        _, result = distill(method, None, "resnet8", tiny, TrainConfig(epochs=1), progress=False)
        assert math.isfinite(result.history[0].train_loss)
