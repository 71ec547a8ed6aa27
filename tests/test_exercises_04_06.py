"""The inputs and expected values of notebooks 04-06's exercises."""

from __future__ import annotations

import torch

from dihkit.losses import adaptive_weights, dih_loss, kd_loss
from dihkit.studies.exercises_04_06 import (
    dih_example,
    entropy_comparison,
    largest_last_epoch,
    shallow_losses_example,
)


def test_the_dih_example_is_fixed_and_its_loss_is_the_members_mean_kd():
    student, cohort = dih_example()
    again_student, again_cohort = dih_example()
    assert torch.equal(student, again_student) and torch.equal(cohort, again_cohort)
    assert cohort.shape == (2, *student.shape)
    by_member = torch.stack([kd_loss(student, member, 5.0) for member in cohort])
    assert torch.allclose(dih_loss(student, cohort, 5.0), by_member.mean())


def test_the_ensemble_target_is_never_sharper_than_the_mean_member():
    for seed in range(5):
        _, cohort = dih_example(members=3, seed=seed)
        for tau in (1.0, 4.0):
            entropies = entropy_comparison(cohort, tau)
            assert entropies["ensemble"] >= entropies["mean_member"] - 1e-6


def test_largest_last_epoch_is_one_based_and_skips_missing_curves():
    curves = {"a": {"mean": [3.0, 1.0]}, "b": {"mean": [1.0, 2.0]}}
    assert largest_last_epoch(curves, ["a", "b"]) == 2
    assert largest_last_epoch(curves, ["missing", "a"]) == 2
    assert largest_last_epoch(curves, ["missing"]) is None


def test_shallow_losses_are_positive_two_decimal_numbers_whose_shares_are_the_weights():
    losses = shallow_losses_example()
    assert losses.shape == (3, 4) and (losses > 0).all()
    assert torch.allclose(losses * 100, (losses * 100).round())
    column = losses[:, 0]
    assert torch.allclose(adaptive_weights(losses)[:, 0], column / column.sum())
