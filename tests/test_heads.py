"""Heads on a frozen teacher and the cohort they form."""

from __future__ import annotations

import pytest
import torch
import torchvision

from dihkit.models import build_model
from dihkit.nn.heads import Cohort, cohort_from_entry, mount_heads
from dihkit.nn.taps import StageTaps
from dihkit.teachers.head_training import HeadTraining
from dihkit.training.config import TrainConfig
from dihkit.training.loop import fit


@pytest.fixture
def teacher() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("resnet14", 10, 1)


@pytest.mark.parametrize(("arch", "k"), [("resnet8", 3), ("resnet110", 3), ("vgg11", 4)])
def test_default_mounting_positions_follow_the_papers_table_1(arch, k):
    cohort = mount_heads(build_model(arch, 100, 3), "linear", input_shape=(3, 32, 32))
    assert len(cohort.heads) == k
    assert cohort.member_names[-1] == "teacher"


def test_resnet34_gets_four_heads():
    cohort = mount_heads(build_model("resnet34", 10, 3), "pooled", input_shape=(3, 32, 32))
    assert len(cohort.heads) == 4


def test_linear_head_has_n_plus_one_times_c_parameters(teacher):
    cohort = mount_heads(teacher, "linear", input_shape=(1, 28, 28))
    # resnet14 stages at 28x28: 16x28x28, 32x14x14, 64x7x7
    sizes = [16 * 28 * 28, 32 * 14 * 14, 64 * 7 * 7]
    assert cohort.head_parameter_counts() == [(n + 1) * 10 for n in sizes]


def test_pooled_head_has_channels_plus_one_times_c_parameters(teacher):
    cohort = mount_heads(teacher, "pooled", input_shape=(1, 28, 28))
    assert cohort.head_parameter_counts() == [(c + 1) * 10 for c in (16, 32, 64)]


def test_conv_head_builds_and_reports_its_size(teacher):
    cohort = mount_heads(teacher, "conv", input_shape=(1, 28, 28), width=32)
    first = 16 * 32 * 9 + 2 * 32 + 32 * 32 * 9 + 2 * 32 + 32 * 32 + 32 + 32 * 10 + 10
    assert cohort.head_parameter_counts()[0] == first


def test_cohort_logits_equal_the_teachers_and_each_heads_own(teacher):
    cohort = mount_heads(teacher, "linear", input_shape=(1, 28, 28)).eval()
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        stacked = cohort(x)
        assert stacked.shape == (4, 5, 10)
        torch.testing.assert_close(stacked[-1], teacher(x))
        stages = [teacher.layer1, teacher.layer2, teacher.layer3]
        features, hooks = (
            [],
            [m.register_forward_hook(lambda m, i, o: features.append(o)) for m in stages],
        )
        teacher(x)
        for hook in hooks:
            hook.remove()
        for i, (head, feature) in enumerate(zip(cohort.heads, features[-3:], strict=True)):
            torch.testing.assert_close(stacked[i], head(feature))


def test_head_training_leaves_the_backbone_bit_identical(teacher, tiny):
    cohort = mount_heads(teacher, "linear", input_shape=(1, 28, 28))
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    heads_before = [p.clone() for p in cohort.heads.parameters()]
    fit(HeadTraining(cohort), tiny, TrainConfig(epochs=1, lr=0.002, device="cpu"), progress=False)
    after = teacher.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():  # weights and BatchNorm running statistics alike
        assert torch.equal(value, after[key]), key
    assert any(
        not torch.equal(a, b) for a, b in zip(heads_before, cohort.heads.parameters(), strict=True)
    )


def test_cohort_keeps_the_backbone_in_eval_mode_and_without_gradients(teacher):
    cohort = mount_heads(teacher, "linear", input_shape=(1, 28, 28)).train()
    assert not teacher.training
    assert all(head.training for head in cohort.heads)
    assert all(not p.requires_grad for p in teacher.parameters())
    assert all(p.requires_grad for p in cohort.heads.parameters())


def test_cohort_round_trips_through_its_entry(teacher):
    cohort = mount_heads(teacher, "pooled", input_shape=(1, 28, 28)).eval()
    copy = cohort_from_entry(teacher, cohort.heads_entry()).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(cohort(x), copy(x))


def test_heads_mount_at_user_named_positions(teacher):
    cohort = mount_heads(teacher, "pooled", ["layer2.0", "layer3"], input_shape=(1, 28, 28))
    assert cohort.positions == ("layer2.0", "layer3")
    assert cohort(torch.randn(2, 1, 28, 28)).shape == (3, 2, 10)


def test_unknown_position_lists_the_stages(teacher):
    with pytest.raises(ValueError, match="layer9.*layer1"):
        mount_heads(teacher, "linear", ["layer9"], input_shape=(1, 28, 28))


def test_unknown_head_type_lists_the_choices(teacher):
    with pytest.raises(ValueError, match="'mlp'.*linear, pooled, conv"):
        mount_heads(teacher, "mlp", input_shape=(1, 28, 28))


def test_heads_mount_on_a_torchvision_model_by_module_and_by_graph_node():
    model = torchvision.models.resnet18(num_classes=7).eval()
    model.num_classes = 7
    by_module = mount_heads(model, "pooled", ["layer2", "layer3"], input_shape=(3, 64, 64))
    by_node = mount_heads(model, "pooled", ["layer3.1.add"], input_shape=(3, 64, 64))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert by_module(x).shape == (3, 2, 7)
        out = by_node(x)
        assert out.shape == (2, 2, 7)
        torch.testing.assert_close(out[-1], model(x))


def test_stage_taps_return_logits_and_features_in_order():
    model = build_model("resnet8", 10, 1).eval()
    taps = StageTaps(model, model.stage_names)
    logits, features = taps(torch.randn(2, 1, 28, 28))
    assert logits.shape == (2, 10)
    assert [f.shape[1] for f in features] == [16, 32, 64]
    taps.remove()
    assert not model.layer1._forward_hooks


def test_cohort_rejects_mismatched_positions_and_heads(teacher):
    with pytest.raises(ValueError, match="2 positions but 1 heads"):
        Cohort(teacher, ["layer1", "layer2"], [torch.nn.Identity()], {})


def test_optional_nonlinearity_is_applied_to_the_head_output(teacher):
    cohort = mount_heads(teacher, "linear", input_shape=(1, 28, 28), activation="relu").eval()
    with torch.no_grad():
        heads_out = cohort(torch.randn(4, 1, 28, 28))[:-1]
    assert (heads_out >= 0).all()
    assert cohort.head_parameter_counts()[2] == (64 * 7 * 7 + 1) * 10  # g adds no parameters
