"""Neighbourhood Distillation: the block loss by hand, the fixed adapters, blocks that train
alone, an exact assembly, bad options, the cost report and one-epoch runs, with and without
fine-tuning."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from torch import nn

from dihkit.data.datasets import per_class_subset
from dihkit.errors import ConfigError
from dihkit.losses.neighbourhood import channel_grouping, neighbourhood_loss
from dihkit.methods import BuildContext, get_method, resolve_options
from dihkit.methods.neighbourhood import (
    BlockStage,
    NeighbourhoodDistillation,
    blocks_of,
    neighbourhoods,
    training_only,
)
from dihkit.methods.neighbourhood_cost import neighbourhood_costs
from dihkit.models import build_model, count_parameters
from dihkit.runs.pipeline import distill, load_teacher
from dihkit.teachers.loading import Teacher
from dihkit.training.config import TrainConfig

BLOCKS = {"layer1": ("conv1", "bn1", "layer1"), "layer2": ("layer2",), "layer3": ("layer3",)}


def _images(data, n=6):
    return (data.train.images[:n].float() / 255 - 0.286) / 0.353, data.train.labels[:n]


def _build(data, teacher, student="resnet8", epochs=1, **options):
    """The method built with every stage skipped (nothing trains)."""
    torch.manual_seed(0)
    context = BuildContext(
        build_model(student, 10, 1), teacher, data, TrainConfig(epochs=epochs),
        stage_hook=lambda *_: None,
    )  # fmt: skip
    return get_method("nd").build(context, resolve_options("nd", options))


def test_block_loss_is_the_mean_squared_error_written_out():
    s = torch.arange(16, dtype=torch.float32).reshape(2, 2, 2, 2) / 10
    t = torch.ones(2, 2, 2, 2)
    total = 0.0
    for idx in range(16):
        n, c, h, w = idx // 8, idx // 4 % 2, idx // 2 % 2, idx % 2
        total += (s[n, c, h, w].item() - t[n, c, h, w].item()) ** 2
    assert neighbourhood_loss(s, t).item() == pytest.approx(total / 16)
    # with an adapter [3 teacher channels, 2 student channels], applied channel by channel
    adapter = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 2.0]])
    t3 = torch.zeros(2, 3, 2, 2)
    total = 0.0
    for n in range(2):
        for k in range(3):
            for h in range(2):
                for w in range(2):
                    mapped = sum(adapter[k, c].item() * s[n, c, h, w].item() for c in range(2))
                    total += mapped**2
    assert neighbourhood_loss(s, t3, adapter).item() == pytest.approx(total / 24, rel=1e-6)


def test_channel_grouping_is_orthonormal_non_negative_and_covers_each_channel_once():
    for wide, narrow in ((64, 16), (10, 4), (5, 5)):
        g = channel_grouping(wide, narrow)
        assert torch.allclose(g @ g.T, torch.eye(narrow), atol=1e-6)
        assert g.min() >= 0 and ((g > 0).sum(dim=0) == 1).all()
    assert [int(n) for n in (channel_grouping(10, 4) > 0).sum(dim=1)] == [3, 3, 2, 2]
    with pytest.raises(ConfigError, match="narrow <= wide"):
        channel_grouping(4, 8)


@pytest.mark.parametrize("arch", ["resnet8", "wrn_16_1", "vgg8"])
def test_blocks_cover_the_layout_and_compose_to_the_forward(arch):
    model = build_model(arch, 10, 1).eval()
    x = torch.randn(2, 1, 28, 28)
    blocks = blocks_of(model)
    assert [name for name, _ in blocks] == list(model.stage_names)
    assert sum((names for _, names in blocks), ()) == model.layout
    with torch.no_grad():
        h = x
        for _, names in blocks:
            for name in names:
                h = getattr(model, name)(h)
        by_hand = model.fc(h.mean(dim=(2, 3)))  # average pooling, written out
        assert torch.allclose(by_hand, model(x), atol=1e-5)
    if arch == "resnet8":
        assert [names for _, names in blocks] == [
            ("conv1", "bn1", "relu", "layer1"), ("layer2",), ("layer3",)
        ]  # fmt: skip


def test_a_block_stage_learns_the_teacher_block_from_the_teacher_input(tiny):
    teacher = load_teacher("resnet14").model
    torch.manual_seed(0)
    student = build_model("resnet8", 10, 1)
    hood = neighbourhoods(teacher, student, (1, 28, 28))[1]
    stage = BlockStage(student, teacher, hood).eval()
    images, labels = _images(tiny)
    logits, terms = stage(images, labels)
    with torch.no_grad():  # by hand: teacher stem + layer1, then each side's layer2
        x = teacher.layer1(torch.relu(teacher.bn1(teacher.conv1(images))))
        target = teacher.layer2(x.clone())
        out = student.layer2(x)
        hybrid = teacher.fc(teacher.layer3(out).mean(dim=(2, 3)))
    assert set(terms) == {"mse"}
    assert terms["mse"].item() == pytest.approx(((out - target) ** 2).mean().item(), rel=1e-5)
    assert torch.allclose(logits, hybrid, atol=1e-5)
    assert torch.allclose(stage.predict(images), hybrid, atol=1e-5)


def test_a_block_stage_step_updates_only_its_own_block(tiny):
    teacher = load_teacher("resnet14").model
    torch.manual_seed(0)
    student = build_model("resnet8", 10, 1)
    hood = neighbourhoods(teacher, student, (1, 28, 28))[1]
    stage = BlockStage(student, teacher, hood).train()
    before = {k: v.clone() for k, v in student.state_dict().items()}
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    images, labels = _images(tiny, 16)
    with training_only(student, hood.student_modules):
        params = [p for p in stage.parameters() if p.requires_grad]  # as the trainer builds it
        optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4)
        sum(stage(images, labels)[1].values()).backward()
        optimizer.step()
    changed = {k for k, v in student.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("layer2.") for k in changed)
    assert any(k.endswith("running_mean") for k in changed)  # its own BatchNorm trains too
    assert all(torch.equal(v, teacher_before[k]) for k, v in teacher.state_dict().items())
    assert all(p.requires_grad for p in student.parameters())  # the flags are restored


def test_thinner_students_get_fixed_adapters_and_the_classifier_folds_exactly(tiny):
    torch.manual_seed(1)
    wide = build_model("resnet32x4", 10, 1).eval()  # 64/128/256 channels against 16/32/64
    hoods = neighbourhoods(wide, build_model("resnet8", 10, 1), (1, 28, 28))
    assert hoods[0].adapter_in is None  # both blocks read the image
    assert [tuple(h.adapter_out.shape) for h in hoods] == [(64, 16), (128, 32), (256, 64)]
    for left, right in zip(hoods, hoods[1:], strict=False):  # neighbouring adapters: identity
        assert torch.allclose(
            right.adapter_in @ left.adapter_out, torch.eye(left.adapter_out.shape[1])
        )
    nd = _build(tiny, Teacher(model=wide, source="random resnet32x4"))
    s = torch.rand(3, 64, 7, 7)
    with torch.no_grad():
        mapped = torch.einsum("ts,nshw->nthw", hoods[-1].adapter_out, s)
        expected = wide.fc(mapped.mean(dim=(2, 3)))
        assert torch.allclose(nd.student.fc(s.mean(dim=(2, 3))), expected, atol=1e-5)


def test_the_main_run_trains_the_classifier_then_fine_tunes_end_to_end(tiny):
    teacher = load_teacher("resnet14").model
    torch.manual_seed(0)
    nd = NeighbourhoodDistillation(build_model("resnet8", 10, 1), teacher, finetune_from=1)
    images, labels = _images(tiny, 8)
    for epoch, tuning in ((0, False), (1, True)):
        nd.train()
        nd.set_epoch(epoch)
        nd.zero_grad(set_to_none=True)
        assert nd.student.layer2.training is tuning and nd.student.fc.training
        _, terms = nd(images, labels)
        assert set(terms) == {"kd", "ce"}
        sum(terms.values()).backward()
        assert nd.student.fc.weight.grad is not None
        assert (nd.student.layer2[0].conv1.weight.grad is not None) is tuning


@pytest.mark.parametrize(
    ("options", "student", "message"),
    [
        ({"finetune_epochs": -1}, "resnet8", r"option finetune_epochs = -1 is out of range"),
        ({"finetune_epochs": 3}, "resnet8", r"option finetune_epochs = 3 is more than.* 2 epochs"),
        ({"final_loss": "mse"}, "resnet8", r"option final_loss = 'mse' is not valid"),
        ({"block_epochs": 0}, "resnet8", r"option block_epochs = 0 is out of range"),
        ({}, "vgg8", r"teacher resnet14 has 3 named stages.*vgg8 has 4.*choose a student "
                     r"with 3: resnet8, resnet14"),
        ({}, "resnet8x4", r"block layer1 of the student resnet8x4 has 64 channels, more than"),
    ],
)  # fmt: skip
def test_bad_options_and_unmatched_students_are_clear_errors(tiny, options, student, message):
    with pytest.raises(ConfigError, match=message):
        _build(tiny, load_teacher("resnet14"), student, epochs=2, **options)


def _conv_macs(model: nn.Module, run) -> int:
    """Multiply-accumulates of the convolutions and linear layers ``run`` calls, by hooks."""
    total = []

    def count(module, _inputs, output):
        spatial = output.shape[-1] * output.shape[-2] if isinstance(module, nn.Conv2d) else 1
        total.append(module.weight.numel() * spatial)

    handles = [
        m.register_forward_hook(count)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    with torch.no_grad():
        run()
    for handle in handles:
        handle.remove()
    return sum(total)


def test_the_cost_report_against_parameter_counts_and_hand_counted_macs():
    teacher, student = build_model("resnet14", 10, 1).eval(), build_model("resnet8", 10, 1).eval()
    costs = neighbourhood_costs(teacher, student, (1, 28, 28))
    x = torch.zeros(1, 1, 28, 28)
    assert [c.name for c in costs] == ["layer1", "layer2", "layer3"]
    for cost in costs:
        own = sum(
            p.numel()
            for name, p in student.named_parameters()
            if name.split(".")[0] in BLOCKS[cost.name]
        )
        assert cost.block_params == own
    assert sum(c.block_params for c in costs) + 64 * 10 + 10 == count_parameters(student)
    # forward MACs: each conv's weight count times its output positions (+ fc's weights)
    assert costs[0].teacher_forward_macs == _conv_macs(teacher, lambda: teacher(x))
    stem = _conv_macs(teacher, lambda: teacher.layer1(teacher.conv1(x)))
    assert costs[0].teacher_macs == stem
    assert costs[2].teacher_macs == _conv_macs(teacher, lambda: teacher(x)) - 64 * 10
    assert costs[2].monitor_macs == 64 * 10  # only the teacher's classifier follows
    # a step is forward + backward: 3x the forward, less the input gradients of the layers that
    # read a constant (the image, or the teacher's activation feeding the block)
    student_forward = _conv_macs(student, lambda: student(x))
    assert costs[0].student_step_macs == 3 * student_forward - student.conv1.weight.numel() * 784
    s1 = student.layer1(student.conv1(x))
    layer2 = _conv_macs(student, lambda: student.layer2(s1))
    first = student.layer2[0]
    reading_input = (first.conv1.weight.numel() + first.shortcut[0].weight.numel()) * 14 * 14
    assert costs[1].block_step_macs == 3 * layer2 - reading_input
    assert all(c.step_macs < c.kd_step_macs for c in costs)
    assert all(
        math.isclose(c.kd_step_macs, c.student_step_macs + c.teacher_forward_macs) for c in costs
    )


@pytest.fixture(scope="module")
def nd_run(tiny, tmp_path_factory):
    small = dataclasses.replace(
        tiny,
        train=per_class_subset(tiny.train, 10),
        val=per_class_subset(tiny.val, 5),
        test=per_class_subset(tiny.test, 5),
    )
    out = tmp_path_factory.mktemp("nd")
    config = TrainConfig(epochs=1, batch_size=64, lr=0.05, device="cpu")
    distiller, result = distill(
        "nd", "resnet14", "resnet8", small, config, {}, out_dir=out, progress=False
    )
    return distiller, result, out


def test_a_one_epoch_run_trains_each_block_in_its_folder_then_the_classifier(nd_run):
    _, result, out = nd_run
    for name in BLOCKS:
        folder = out / f"block-{name}"
        history = json.loads((folder / "history.json").read_text())
        assert [row["epoch"] for row in history] == [1] and set(history[0]["losses"]) == {"mse"}
        assert json.loads((folder / "summary.json").read_text())["identity"]["method"] == "nd-block"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["identity"]["method"] == "nd" and summary["best_epoch"] == 1
    assert 0 <= summary["test_acc_best"] <= 1
    assert set(result.history[0].losses) == {"kd", "ce"}


def test_each_block_stage_changed_only_its_block_and_the_student_is_their_composition(nd_run):
    distiller, _, out = nd_run
    states = {
        name: torch.load(out / f"block-{name}" / "last.pt", weights_only=True)["model"][
            "state_dict"
        ]
        for name in BLOCKS
    }
    torch.manual_seed(0)
    initial = build_model("resnet8", 10, 1).state_dict()
    previous = initial
    for name, state in states.items():  # each stage moved its own block and nothing else
        changed = {k.split(".")[0] for k in state if not torch.equal(state[k], previous[k])}
        assert changed <= set(BLOCKS[name]) and BLOCKS[name][-1] in changed
        previous = state
    # the assembled student is the trained blocks composed, each from its own stage
    student = distiller.student.eval()
    x = torch.randn(4, 1, 28, 28)
    pieces = {name: build_model("resnet8", 10, 1) for name in BLOCKS}
    for name, model in pieces.items():
        model.load_state_dict(states[name])
        model.eval()
    with torch.no_grad():
        a = pieces["layer1"]
        h = a.layer1(torch.relu(a.bn1(a.conv1(x))))
        h = pieces["layer3"].layer3(pieces["layer2"].layer2(h))
        by_hand = student.fc(h.mean(dim=(2, 3)))
        assert torch.allclose(student(x), by_hand, atol=1e-5)


@pytest.fixture(scope="module")
def nd_finetune_run(tiny, tmp_path_factory):
    small = dataclasses.replace(
        tiny,
        train=per_class_subset(tiny.train, 10),
        val=per_class_subset(tiny.val, 5),
        test=per_class_subset(tiny.test, 5),
    )
    out = tmp_path_factory.mktemp("nd-finetune")
    config = TrainConfig(epochs=1, batch_size=64, lr=0.05, device="cpu")
    distiller, result = distill(
        "nd", "resnet14", "resnet8", small, config, {"finetune_epochs": 1},
        out_dir=out, progress=False,
    )  # fmt: skip
    return distiller, result, out


def _layout_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The entries of a resnet8 state dict that belong to the blocks (not the classifier)."""
    blocks = set(sum(BLOCKS.values(), ()))
    return {k: v for k, v in state.items() if k.split(".")[0] in blocks}


def test_a_one_epoch_run_with_finetune_epochs_fine_tunes_the_assembled_student(
    nd_finetune_run, nd_run
):
    distiller, result, out = nd_finetune_run
    for name in BLOCKS:  # the block stages still ran first, one epoch each
        history = json.loads((out / f"block-{name}" / "history.json").read_text())
        assert [row["epoch"] for row in history] == [1]
    # the fine-tuning is the main run's last finetune_epochs epochs: here its only epoch
    summary = json.loads((out / "summary.json").read_text())
    assert summary["identity"]["method"] == "nd"
    assert summary["identity"]["options"]["finetune_epochs"] == 1
    history = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1] and set(history[0]["losses"]) == {"kd", "ce"}
    assert all(math.isfinite(v) for v in history[0]["losses"].values())
    assert distiller.finetune_from == 0 and distiller.fine_tuning
    assert all(p.requires_grad for p in distiller.student.parameters())
    assert len(result.history) == 1

    def moved(run) -> set[str]:
        """The block entries of the run's final student that differ from the assembly."""
        _, _, folder = run
        assembled = torch.load(folder / "block-layer3" / "last.pt", weights_only=True)
        assembled = _layout_state(assembled["model"]["state_dict"])
        final = torch.load(folder / "last.pt", weights_only=True)["model"]["state_dict"]
        final = _layout_state(final)
        assert final.keys() == assembled.keys() and final
        return {k for k in final if not torch.equal(final[k], assembled[k])}

    changed = moved(nd_finetune_run)
    # every block's weights and its BatchNorm statistics trained end to end
    for names in BLOCKS.values():
        assert any(k.split(".")[0] in names and k.endswith("conv1.weight") for k in changed)
    assert any(k.endswith("running_mean") for k in changed)
    # and with finetune_epochs 0 (the nd_run fixture) the assembled blocks stay exactly as built
    assert moved(nd_run) == set()
    current = _layout_state(distiller.student.state_dict())
    final = torch.load(out / "last.pt", weights_only=True)["model"]["state_dict"]
    assert all(torch.equal(current[k], final[k]) for k in current)
