"""Tests for the CIFAR model zoo in :mod:`dihkit.models`."""

from __future__ import annotations

import copy
from functools import cache

import pytest
import torch
from torch import nn

from dihkit.models import MODEL_NAMES, build_model, count_parameters

PARAMS_100_CLASSES = {
    "resnet8": 83_892,
    "resnet14": 181_108,
    "resnet20": 278_324,
    "resnet32": 472_756,
    "resnet44": 667_188,
    "resnet56": 861_620,
    "resnet110": 1_736_564,
    "resnet8x4": 1_233_540,
    "resnet32x4": 7_433_860,
    "resnet18": 11_220_132,
    "resnet34": 21_328_292,
    "wrn_16_1": 180_916,
    "wrn_16_2": 703_284,
    "wrn_40_1": 569_780,
    "wrn_40_2": 2_255_156,
    "vgg8": 3_965_028,
    "vgg11": 9_277_284,
    "vgg13": 9_462_180,
}
PARAMS_10_CLASSES = {"resnet8": 78_042, "resnet20": 272_474, "resnet110": 1_730_714}

EXPECTED_TAPS = {name: 3 for name in MODEL_NAMES if name.startswith("resnet")}
EXPECTED_TAPS.update(resnet18=4, resnet34=4, vgg8=4, vgg11=4, vgg13=4)
EXPECTED_TAPS.update(wrn_16_1=3, wrn_16_2=3, wrn_40_1=3, wrn_40_2=3)


@cache
def _eval_model(name: str, in_channels: int) -> nn.Module:
    """One shared 10-class model per (name, in_channels), in eval mode; tests must not mutate it."""
    torch.manual_seed(0)
    return build_model(name, num_classes=10, in_channels=in_channels).eval()


def test_model_names_cover_all_twenty_architectures() -> None:
    assert len(set(MODEL_NAMES)) == 20
    assert set(PARAMS_100_CLASSES) | {"mobilenetv2", "shufflenetv2"} == set(MODEL_NAMES)


@pytest.mark.parametrize(("name", "expected"), sorted(PARAMS_100_CLASSES.items()))
def test_parameter_count_matches_reference_at_100_classes(name: str, expected: int) -> None:
    assert count_parameters(build_model(name, num_classes=100)) == expected


@pytest.mark.parametrize(("name", "expected"), sorted(PARAMS_10_CLASSES.items()))
def test_parameter_count_matches_reference_at_10_classes(name: str, expected: int) -> None:
    assert count_parameters(build_model(name, num_classes=10)) == expected


def test_count_parameters_includes_frozen_parameters() -> None:
    model = build_model("resnet8")
    total = count_parameters(model)
    for p in model.parameters():
        p.requires_grad_(False)
    assert count_parameters(model) == total


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("in_channels", [1, 3])
def test_forward_returns_logits_for_28_and_32_pixel_inputs(name: str, in_channels: int) -> None:
    model = _eval_model(name, in_channels)
    for size in (28, 32):
        with torch.no_grad():
            out = model(torch.randn(2, in_channels, size, size))
        assert out.shape == (2, 10)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_build_model_sets_metadata_attributes(name: str) -> None:
    model = _eval_model(name, 1)
    assert model.arch == name
    assert model.num_classes == 10
    assert model.in_channels == 1
    assert isinstance(model.stage_names, tuple)
    assert isinstance(model.fc, nn.Linear)
    assert model.fc.out_features == 10


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_no_forward_hooks_registered_by_default(name: str) -> None:
    for module in _eval_model(name, 3).modules():
        assert not module._forward_hooks
        assert not module._forward_pre_hooks


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fc_is_last_operation_and_receives_penultimate_features(name: str) -> None:
    model = _eval_model(name, 3)
    seen: dict[str, torch.Tensor] = {}

    def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        seen["features"], seen["logits"] = inputs[0], output

    handle = model.fc.register_forward_hook(hook)
    try:
        with torch.no_grad():
            out = model(torch.randn(2, 3, 32, 32))
    finally:
        handle.remove()
    assert seen["features"].shape == (2, model.fc.in_features)
    assert torch.equal(seen["logits"], out)


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("size", [28, 32])
def test_stage_hooks_fire_in_order_with_shrinking_feature_maps(name: str, size: int) -> None:
    model = _eval_model(name, 3)
    modules = dict(model.named_modules())
    assert 3 <= len(model.stage_names) <= 4
    if name in EXPECTED_TAPS:
        assert len(model.stage_names) == EXPECTED_TAPS[name]
    fired: list[tuple[str, torch.Tensor]] = []
    handles = []
    for stage in model.stage_names:
        assert stage in modules, f"{name}: stage {stage!r} is not a module path"

        def hook(_m: nn.Module, _i: object, output: torch.Tensor, stage: str = stage) -> None:
            fired.append((stage, output))

        handles.append(modules[stage].register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(torch.randn(2, 3, size, size))
    finally:
        for handle in handles:
            handle.remove()
    assert [stage for stage, _ in fired] == list(model.stage_names)
    previous = (size, size)
    for stage, tensor in fired:
        assert tensor.dim() == 4, f"{name}: {stage} output is not 4-D"
        assert tensor.shape[0] == 2
        spatial = tuple(tensor.shape[2:])
        assert spatial[0] <= previous[0] and spatial[1] <= previous[1]
        previous = spatial


def test_vgg11_taps_follow_each_max_pool() -> None:
    model = _eval_model("vgg11", 3)
    modules = dict(model.named_modules())
    assert all(isinstance(modules[stage], nn.MaxPool2d) for stage in model.stage_names)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_channels_last_gives_same_logits(name: str) -> None:
    model = _eval_model(name, 3)
    x = torch.randn(2, 3, 32, 32)
    cl_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = model(x)
        got = cl_model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_unknown_name_error_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="resnet9") as info:
        build_model("resnet9")
    for name in MODEL_NAMES:
        assert name in str(info.value)


@pytest.mark.parametrize("num_classes", [1, 0, -3, 2.0, "10", True])
def test_bad_num_classes_raises_value_error(num_classes: object) -> None:
    with pytest.raises(ValueError, match="num_classes") as info:
        build_model("resnet8", num_classes=num_classes)  # type: ignore[arg-type]
    assert repr(num_classes) in str(info.value)


@pytest.mark.parametrize("in_channels", [0, -1, 3.0, None])
def test_bad_in_channels_raises_value_error(in_channels: object) -> None:
    with pytest.raises(ValueError, match="in_channels") as info:
        build_model("resnet8", in_channels=in_channels)  # type: ignore[arg-type]
    assert repr(in_channels) in str(info.value)


def test_smallest_valid_arguments_are_accepted() -> None:
    model = build_model("resnet8", num_classes=2, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 28, 28)).shape == (1, 2)
