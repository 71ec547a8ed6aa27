"""Students with exits: every zoo model, every stage, both image formats; export is the plain
student."""

from __future__ import annotations

import pytest
import torch

from dihkit.models import MODEL_NAMES, build_model, count_parameters
from dihkit.nn.exits import ExitBranch, StudentWithExits, final_feature_position, tail_exit
from dihkit.nn.heads import make_head


@pytest.mark.parametrize("arch", MODEL_NAMES)
@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32)], ids=["1x28", "3x32"])
def test_every_stage_of_every_model_gets_a_working_exit(arch, channels, size):
    if size == 32 and count_parameters(build_model(arch, 10, channels)) > 1_000_000:
        pytest.skip("large model: its 28-px, 1-channel case covers the same code path")
    torch.manual_seed(0)
    student = build_model(arch, 10, channels)
    shape = (channels, size, size)
    positions = student.stage_names
    tails = [tail_exit(student, p, shape) for p in positions[:-1]]
    from dihkit.nn.heads import feature_shapes

    conv = [make_head("conv", s, 10, width=8) for s in feature_shapes(student, positions, shape)]
    wrapped = StudentWithExits(student, [*positions[:-1], *positions], [*tails, *conv])
    out = wrapped(torch.randn(2, *shape))
    assert out.logits.shape == (2, 10)
    assert len(out.exit_logits) == 2 * len(positions) - 1
    assert all(z.shape == (2, 10) for z in out.exit_logits)
    # each tail exit ends in a feature map shaped like the main classifier's
    for feature in out.exit_features[: len(tails)]:
        assert feature.shape == out.feature.shape
    # gradients from an exit reach the student's stem
    out.exit_logits[0].sum().backward()
    stem = next(student.parameters())
    assert stem.grad is not None and stem.grad.abs().sum() > 0


def test_main_logits_equal_the_plain_student():
    torch.manual_seed(0)
    student = build_model("resnet8", 10, 1).eval()
    wrapped = StudentWithExits(student, ["layer1"], [tail_exit(student, "layer1", (1, 28, 28))])
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(wrapped(x).logits, student(x))


def test_export_has_the_plain_models_parameters_and_keys():
    student = build_model("resnet8", 10, 1)
    wrapped = StudentWithExits(
        student,
        ["layer1", "layer2"],
        [tail_exit(student, p, (1, 28, 28)) for p in ("layer1", "layer2")],
    )
    exported = wrapped.export()
    reference = build_model("resnet8", 10, 1)
    assert count_parameters(exported) == count_parameters(reference) == 77_754
    assert list(exported.state_dict()) == list(reference.state_dict())
    assert count_parameters(wrapped) > count_parameters(reference)


def test_tail_exit_copies_the_rest_of_the_main_branch_with_fresh_weights():
    torch.manual_seed(0)
    student = build_model("resnet8", 10, 1)
    branch = tail_exit(student, "layer1", (1, 28, 28))
    assert isinstance(branch, ExitBranch)
    # layer2 and layer3 copied (structure), then pool + a new fc
    assert [type(m).__name__ for m in branch.body] == ["Sequential", "Sequential"]
    copied = dict(branch.body[0].named_parameters())
    original = dict(student.layer2.named_parameters())
    assert copied.keys() == original.keys()
    conv = "0.conv1.weight"
    assert not torch.equal(copied[conv], original[conv])  # re-initialised, not shared
    assert copied[conv].data_ptr() != original[conv].data_ptr()


def test_final_feature_position_is_what_the_pooling_reads():
    for arch, expected in [("resnet8", "layer3"), ("wrn_16_1", "relu"), ("vgg8", "block4")]:
        assert final_feature_position(build_model(arch, 10, 1)) == expected


def test_unknown_exit_position_is_a_clear_error():
    with pytest.raises(ValueError, match="no main-branch position 'layer9'"):
        tail_exit(build_model("resnet8", 10, 1), "layer9", (1, 28, 28))
