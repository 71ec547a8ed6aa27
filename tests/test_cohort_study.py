"""Looking inside a cohort: logits on a split, the backbone fingerprint, per-member reports."""

from __future__ import annotations

import pytest
import torch

from dihkit.models import build_model
from dihkit.studies.cohort import (
    COHORT_AVERAGE,
    bundled_teachers_table,
    example_indices,
    member_reports,
    predict_logits,
    reports_table,
    split_logits,
)
from dihkit.teachers.bundled import read_manifest
from dihkit.teachers.loading import load_teacher
from dihkit.training.evaluation import evaluate
from dihkit.training.target_cache import state_digest

MEMBERS = ["head1 (layer1)", "head2 (layer2)", "teacher"]


def test_checksum_is_equal_for_equal_weights_and_sees_every_value_and_buffer():
    torch.manual_seed(0)
    model = build_model("resnet8", 10, 1)
    same = build_model("resnet8", 10, 1)
    same.load_state_dict(model.state_dict())
    assert state_digest(model) == state_digest(same)
    with torch.no_grad():
        next(same.parameters()).view(-1)[0] += 1e-6
    assert state_digest(model) != state_digest(same)
    same.load_state_dict(model.state_dict())
    bn = next(m for m in same.modules() if isinstance(m, torch.nn.BatchNorm2d))
    bn.running_mean[0] += 1.0  # a buffer, not a parameter
    assert state_digest(model) != state_digest(same)


def test_cohort_logits_match_the_kits_evaluation(tiny):
    cohort = load_teacher("resnet14").cohort
    logits = split_logits(cohort, tiny, "test")
    assert tuple(logits.shape) == (4, len(tiny.test), 10)
    accuracy = (logits.argmax(-1) == tiny.test.labels).float().mean(-1)
    assert accuracy.tolist() == pytest.approx(evaluate(cohort, tiny, "test").tolist())
    single = predict_logits(
        cohort.teacher, tiny.test.images[:7], mean=tiny.spec.mean, std=tiny.spec.std
    )
    assert torch.allclose(single, logits[-1, :7], atol=1e-5)


def test_member_reports_score_every_member_and_the_cohort_average():
    torch.manual_seed(0)
    labels = torch.randint(0, 5, (40,))
    logits = torch.randn(3, 40, 5)
    logits[-1, torch.arange(40), labels] += 10  # the teacher is always right
    reports = member_reports(logits, labels, MEMBERS, bins=5)
    assert [r.name for r in reports] == [*MEMBERS, COHORT_AVERAGE]
    teacher = reports[2]
    assert teacher.accuracy == 1.0 and teacher.agreement == 1.0
    for r in reports:
        assert 0 <= r.accuracy <= 1 and 0 <= r.agreement <= 1 and 0 <= r.ece <= 1
        assert r.agreement == pytest.approx(r.accuracy)  # agreeing with a perfect teacher
    assert set(reports[0].as_dict()) == {"name", "accuracy", "agreement", "ece"}
    assert len(member_reports(logits, labels, MEMBERS, with_average=False)) == 3
    with pytest.raises(ValueError, match="names"):
        member_reports(logits, labels, MEMBERS[:2])


def test_reports_table_has_a_row_per_report_in_percent():
    labels = torch.tensor([0, 1])
    logits = torch.tensor([[[2.0, 0.0], [0.0, 2.0]]] * 3)
    table = reports_table(member_reports(logits, labels, MEMBERS))
    lines = table.splitlines()
    assert len(lines) == 5 and "ECE" in lines[0]
    assert lines[1].split()[2] == "100.00"


def test_example_indices_are_distinct_sorted_and_seeded():
    first = example_indices(8, 100, seed=3)
    assert first == example_indices(8, 100, seed=3) != example_indices(8, 100, seed=4)
    assert first == sorted(set(first)) and all(0 <= i < 100 for i in first)


def test_bundled_teachers_table_lists_each_teacher_with_its_members():
    lines = bundled_teachers_table().splitlines()
    assert [line.split()[0] for line in lines] == sorted(read_manifest())  # every bundled one
    assert all("head1" in line and "teacher" in line for line in lines)
