"""Losses, checked against hand computations and the paper's equations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dihkit.losses import (
    dih_loss,
    dih_student_loss,
    ensemble_kd_loss,
    hint_loss,
    kd_loss,
    kd_student_loss,
    mutual_loss,
    softened,
)


def test_kd_loss_is_zero_when_student_equals_teacher():
    logits = torch.randn(8, 10, generator=torch.Generator().manual_seed(0))
    # float32 round-off, scaled by tau^2 = 25, reaches about 1e-6 for some logits
    assert kd_loss(logits, logits.clone(), tau=5.0).item() == pytest.approx(0.0, abs=1e-5)


def test_kd_loss_matches_a_hand_computed_value():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[2.0, 0.0]])
    tau = 2.0
    # P_T = softmax([1, 0]) and P_S = [0.5, 0.5]; KL = sum p log(p / q)
    p = [math.exp(1) / (math.exp(1) + 1), 1 / (math.exp(1) + 1)]
    expected = tau**2 * sum(pi * math.log(pi / 0.5) for pi in p)
    assert kd_loss(student, teacher, tau).item() == pytest.approx(expected, rel=1e-6)


def test_kd_loss_is_a_batch_mean():
    student, teacher = torch.randn(6, 5), torch.randn(6, 5)
    per_sample = torch.stack([kd_loss(student[i : i + 1], teacher[i : i + 1]) for i in range(6)])
    assert kd_loss(student, teacher).item() == pytest.approx(per_sample.mean().item(), rel=1e-5)


def test_kd_loss_equals_the_cross_entropy_form_minus_the_teacher_entropy():
    # Footnote 2: H(P_T, P_S) = KL(P_T || P_S) + H(P_T)
    student, teacher, tau = torch.randn(4, 7), torch.randn(4, 7), 3.0
    p_t = softened(teacher, tau)
    cross_entropy = -(p_t * F.log_softmax(student / tau, dim=-1)).sum(-1).mean()
    entropy = -(p_t * p_t.log()).sum(-1).mean()
    assert kd_loss(student, teacher, tau).item() == pytest.approx(
        (tau**2 * (cross_entropy - entropy)).item(), rel=1e-5
    )


def test_tau_squared_keeps_gradient_scale_comparable_across_temperatures():
    generator = torch.Generator().manual_seed(0)
    teacher = torch.randn(32, 10, generator=generator) * 3
    start = torch.randn(32, 10, generator=generator) * 3

    def grad_norm(tau: float, with_tau_squared: bool) -> float:
        student = start.clone().requires_grad_(True)
        loss = kd_loss(student, teacher, tau)
        (loss if with_tau_squared else loss / tau**2).backward()
        return student.grad.norm().item()

    assert 0.2 < grad_norm(16.0, True) / grad_norm(2.0, True) < 5  # same order of magnitude
    assert grad_norm(2.0, False) / grad_norm(16.0, False) > 20  # without tau^2 it collapses


def test_kd_loss_sends_no_gradient_to_the_teacher():
    student = torch.randn(4, 5, requires_grad=True)
    teacher = torch.randn(4, 5, requires_grad=True)
    kd_loss(student, teacher).backward()
    assert teacher.grad is None and student.grad is not None


def test_student_loss_weights_kd_and_ce_by_alpha():
    student, teacher, labels = torch.randn(4, 5), torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    terms = kd_student_loss(student, teacher, labels, tau=5.0, alpha=0.1)
    assert terms["kd"].item() == pytest.approx(0.1 * kd_loss(student, teacher, 5.0).item())
    assert terms["ce"].item() == pytest.approx(0.9 * F.cross_entropy(student, labels).item())


def test_dih_loss_with_no_heads_equals_kd_loss():
    student, teacher = torch.randn(8, 10), torch.randn(8, 10)
    assert dih_loss(student, teacher.unsqueeze(0), 5.0).item() == pytest.approx(
        kd_loss(student, teacher, 5.0).item(), rel=1e-6
    )


def test_dih_loss_is_the_mean_of_the_members_kd_losses():
    student, cohort = torch.randn(8, 10), torch.randn(4, 8, 10)
    expected = torch.stack([kd_loss(student, member, 5.0) for member in cohort]).mean()
    assert dih_loss(student, cohort, 5.0).item() == pytest.approx(expected.item(), rel=1e-5)


def test_dih_student_loss_counts_ce_once():
    student, cohort, labels = torch.randn(8, 10), torch.randn(4, 8, 10), torch.randint(0, 10, (8,))
    terms = dih_student_loss(student, cohort, labels, tau=5.0, alpha=0.1)
    assert set(terms) == {"dih", "ce"}
    assert terms["ce"].item() == pytest.approx(0.9 * F.cross_entropy(student, labels).item())


def test_ensemble_loss_distils_from_the_average_distribution():
    student, cohort, tau = torch.randn(8, 10), torch.randn(3, 8, 10), 5.0
    average = softened(cohort, tau).mean(0)
    expected = tau**2 * F.kl_div(F.log_softmax(student / tau, -1), average, reduction="batchmean")
    assert ensemble_kd_loss(student, cohort, tau).item() == pytest.approx(expected.item(), rel=1e-5)
    # and it differs from the mean of the per-member losses (Sec. 4.4's point)
    assert ensemble_kd_loss(student, cohort, tau).item() < dih_loss(student, cohort, tau).item()


def test_hint_loss_is_mean_squared_error():
    a, b = torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 2.0)
    assert hint_loss(a, b).item() == pytest.approx(4.0)


def test_mutual_loss_is_kl_at_temperature_one():
    a, b = torch.randn(5, 4), torch.randn(5, 4)
    expected = F.kl_div(F.log_softmax(a, -1), F.softmax(b, -1), reduction="batchmean")
    assert mutual_loss(a, b).item() == pytest.approx(expected.item(), rel=1e-6)
