"""FitNets' two stages, DML's gradient isolation and DIH's summed reduction."""

from __future__ import annotations

import json

import pytest
import torch

from dihkit.losses import dih_student_loss
from dihkit.methods import BuildContext, get_method, resolve_options
from dihkit.methods.dml import MutualLearning
from dihkit.methods.fitnets import parameters_feeding
from dihkit.models import build_model
from dihkit.runs.pipeline import distill, load_teacher
from dihkit.training.config import TrainConfig


def test_hint_stage_trains_exactly_the_layers_below_the_guided_layer():
    student = build_model("resnet8", 10, 1)
    feeding = {id(p) for p in parameters_feeding(student, "layer2", (1, 28, 28))}
    expected = {
        id(p)
        for name, p in student.named_parameters()
        if name.split(".")[0] in ("conv1", "bn1", "layer1", "layer2")
    }
    assert feeding == expected
    assert all(p.requires_grad for p in student.parameters())  # nothing left changed


def test_fitnets_runs_the_hint_stage_then_the_full_kd_schedule(tiny, tmp_path):
    config = TrainConfig(epochs=3, batch_size=64, lr=0.05, device="cpu")

    _, result = distill(
        "fitnets", "resnet14", "resnet8", tiny, config, {"hint_epochs": 2},
        out_dir=tmp_path, progress=False,
    )  # fmt: skip
    hint = json.loads((tmp_path / "hint" / "history.json").read_text())
    assert [row["epoch"] for row in hint] == [1, 2]
    assert all(set(row["losses"]) == {"hint"} for row in hint)
    assert hint[0]["lr"] == pytest.approx(0.05)  # its own schedule, from the top
    # stage 2: the whole KD schedule, from the initial learning rate
    assert [r.epoch for r in result.history] == [1, 2, 3]
    assert result.history[0].lr == pytest.approx(0.05)
    assert all(set(r.losses) == {"kd", "ce"} for r in result.history)
    # the hint stage left the classifier and the last stage as initialised
    stage1 = torch.load(tmp_path / "hint" / "last.pt", weights_only=True)["model"]["state_dict"]
    torch.manual_seed(0)
    initial = build_model("resnet8", 10, 1).state_dict()
    assert torch.equal(stage1["fc.weight"], initial["fc.weight"])
    assert torch.equal(stage1["layer3.0.conv1.weight"], initial["layer3.0.conv1.weight"])
    assert not torch.equal(stage1["layer1.0.conv1.weight"], initial["layer1.0.conv1.weight"])


def test_fitnets_regressor_ends_in_relu_like_the_hint():
    from dihkit.methods.fitnets import HintRegressor

    regressor = HintRegressor((16, 14, 14), (32, 7, 7))
    out = regressor(torch.randn(4, 16, 14, 14))
    assert out.shape == (4, 32, 7, 7) and out.min() >= 0


def test_dml_peers_get_gradients_only_from_their_own_losses():
    torch.manual_seed(0)
    dml = MutualLearning(build_model("resnet8", 10, 1), build_model("resnet8", 10, 1))
    images, labels = torch.randn(6, 1, 28, 28), torch.randint(0, 10, (6,))
    _, terms = dml(images, labels)
    (terms["ce"] + terms["kl"]).backward()
    assert all(p.grad is None for p in dml.peer.parameters())
    assert any(p.grad is not None for p in dml.student.parameters())
    dml.zero_grad(set_to_none=True)
    _, terms = dml(images, labels)
    (terms["peer_ce"] + terms["peer_kl"]).backward()
    assert all(p.grad is None for p in dml.student.parameters())


def test_dih_sum_reduction_is_k_plus_1_times_the_paper_loss(tiny):
    teacher = load_teacher("resnet14")
    images = (tiny.train.images[:8].float() / 255 - 0.286) / 0.353
    labels = tiny.train.labels[:8]
    totals = {}
    for reduction in ("mean", "sum"):
        torch.manual_seed(0)
        context = BuildContext(build_model("resnet8", 10, 1), teacher, tiny, TrainConfig())
        options = resolve_options("dih", {"dih_reduction": reduction})
        dih = get_method("dih").build(context, options).eval()
        _, terms = dih(images, labels)
        totals[reduction] = sum(terms.values())
    with torch.no_grad():
        cohort_logits = teacher.cohort(images)
        torch.manual_seed(0)
        student_logits = build_model("resnet8", 10, 1).eval()(images)
    # the authors' code: sum over the k+1 members of alpha*tau^2*KL + (1-alpha)*CE
    per_member = [
        sum(dih_student_loss(student_logits, member[None], labels, 5.0, 0.1).values())
        for member in cohort_logits
    ]
    assert totals["sum"].item() == pytest.approx(sum(per_member).item(), rel=1e-5)
    assert totals["sum"].item() == pytest.approx(4 * totals["mean"].item(), rel=1e-5)
