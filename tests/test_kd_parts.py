"""Notebook 08's computations and figures: one sample's KD split (checked against KD written
out independently), the shares over a batch, the channel-attention agreement, the teacher
matched for CD, the ND cost table, the explorer driven headlessly, the published DKD table."""

from __future__ import annotations

import math

import pytest
import torch

from dihkit.errors import ConfigError
from dihkit.studies.kd_parts import (
    attention_agreement,
    block_costs_markdown,
    cd_candidates,
    kd_parts_example,
    kd_split,
    split_shares,
    stage_matched_teacher,
)


def plain_kd(student, teacher, tau):
    p = [math.exp(t / tau) for t in teacher]
    q = [math.exp(s / tau) for s in student]
    p, q = [x / sum(p) for x in p], [x / sum(q) for x in q]
    return tau**2 * sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))


def test_the_split_adds_up_to_kd_and_dkd_reweights_it():
    student, teacher, label = kd_parts_example()
    for tau in (1.0, 4.0, 10.0):
        split = kd_split(student, teacher, label, tau, alpha=2.0, beta=3.0)
        expected = plain_kd(student.tolist(), teacher.tolist(), tau)
        assert split.kd == pytest.approx(expected, rel=1e-4)
        assert split.dkd == pytest.approx(2.0 * split.tckd + 3.0 * split.nckd)
        p_t = torch.softmax(teacher / tau, 0)[label].item()
        assert split.nontarget == pytest.approx(1 - p_t, rel=1e-5)


def test_shares_sum_to_one_and_follow_the_teachers_confidence():
    generator = torch.Generator().manual_seed(1)
    student, teacher = (
        torch.randn(6, 5, generator=generator),
        4 * torch.randn(6, 5, generator=generator),
    )
    labels = teacher.argmax(1)
    rows = split_shares(student, teacher, labels, [1.0, 8.0])
    for row in rows:
        assert row["tckd_share"] + row["nckd_share"] == pytest.approx(1.0, abs=1e-5)
    assert rows[1]["mean_nontarget"] > rows[0]["mean_nontarget"]  # softer at a higher tau


def test_attention_agreement_is_the_mean_cosine_per_stage():
    a = {"s1": torch.tensor([[1.0, 0.0], [1.0, 1.0]])}
    b = {"s1": torch.tensor([[0.0, 1.0], [2.0, 2.0]])}
    assert attention_agreement(a, b) == {"s1": pytest.approx(0.5)}  # cosines 0 and 1
    with pytest.raises(ValueError, match="differ in shape"):
        attention_agreement(a, {"s1": torch.ones(2, 3)})


def test_cd_teacher_has_the_students_stage_widths():
    ladder = ["resnet8-c10", "resnet20-c10", "wrn_16_2-c10", "vgg8-c10"]
    assert stage_matched_teacher(ladder, "resnet8", 10, (3, 32, 32)) == "resnet20-c10"
    with pytest.raises(ConfigError, match="pass cd_teacher"):
        stage_matched_teacher(["vgg8-c10"], "resnet8", 10, (3, 32, 32))


def test_cd_candidates_fall_back_to_the_profiles_teacher_without_a_ladder():
    assert cd_candidates("classroom", "vgg8-c10") == [
        "resnet8-c10",
        "resnet20-c10",
        "wrn_16_2-c10",
        "vgg8-c10",
    ]
    # the paper profile has no bundled ladder: its teacher is the user's checkpoint
    assert cd_candidates("paper", "runs/teachers/t/best.pt") == ["runs/teachers/t/best.pt"]


def test_block_cost_table_states_each_blocks_share():
    from dihkit.methods.neighbourhood_cost import BlockCost

    costs = [BlockCost("layer1", 100, 10e6, 5e6, 5e6, 60e6, 20e6)]
    text = block_costs_markdown(costs, student_params=400)
    assert "| layer1 | 100 | 25% | 20.00 | 25% |" in text  # 20 of 80 MMACs
    assert "costs 80.00 MMACs per image" in text and "(layer1) costs 25% of it" in text


def test_the_explorer_recomputes_on_each_control_and_snapshots_a_png():
    from dihkit.viz.kd_parts import kd_split_explorer, kd_split_figure

    student, teacher, label = kd_parts_example()
    box = kd_split_explorer(
        torch.stack([student, teacher]), torch.stack([teacher, student]), [label, 0],
        [f"c{i}" for i in range(5)], tau=4.0,
    )  # fmt: skip
    first = box.split
    assert first.kd == pytest.approx(kd_split(student, teacher, label, 4.0).kd)
    box.beta_slider.value = 2.0
    assert box.split.dkd == pytest.approx(first.alpha * first.tckd + 2.0 * first.nckd)
    box.tau_slider.value = 10.0
    assert box.split.tau == 10.0
    assert bytes(box.snapshot()).startswith(b"\x89PNG")
    fig = kd_split_figure(student, teacher, label, [1.0, 4.0, 10.0], start_tau=4.0)
    assert len(fig.frames) == 3 and fig.layout.sliders[0].active == 1
    kd_bar = fig.frames[1].data[0].y[2]
    assert kd_bar == pytest.approx(kd_split(student, teacher, label, 4.0).kd)


def test_published_dkd_table_reads_the_experiment_file():
    from dihkit.reproduce.published import published_markdown

    text = published_markdown("dkd-table-cifar100", ["kd", "dkd"])
    assert text.startswith("**Published, not measured here:**")
    assert "| resnet32x4 -> resnet8x4 | 73.33 | 76.32 |" in text
