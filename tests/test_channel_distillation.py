"""Channel distillation (CD + GKD + EDT): the channel attention and the CD loss against explicit
loops, the guided-KD mask and its gradient, the EDT schedule, bad options, the whole loss
against a hand computation, cached targets, and one-epoch runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dihkit.errors import ConfigError
from dihkit.losses.channel import (
    cd_loss,
    cd_stage_loss,
    channel_attention,
    early_decay_weight,
    guided_kd_loss,
    guided_mask,
)
from dihkit.methods import BuildContext, get_method, resolve_options
from dihkit.methods.channel_distillation import ChannelConnector, stage_channel_attention
from dihkit.models import build_model
from dihkit.runs.pipeline import distill, load_teacher
from dihkit.training.config import TrainConfig


def _attention_by_loops(feature: np.ndarray) -> np.ndarray:
    n, c, h, w = feature.shape
    out = np.zeros((n, c))
    for i in range(n):
        for j in range(c):
            total = 0.0
            for y in range(h):
                for x in range(w):
                    total += feature[i, j, y, x]
            out[i, j] = total / (h * w)
    return out


def test_channel_attention_and_cd_loss_match_explicit_loops():
    gen = torch.Generator().manual_seed(0)
    s1, t1 = torch.randn(3, 4, 5, 6, generator=gen), torch.randn(3, 4, 2, 3, generator=gen)
    s2, t2 = torch.randn(3, 2, 4, 4, generator=gen), torch.randn(3, 2, 4, 4, generator=gen)
    ws1, wt1 = _attention_by_loops(s1.numpy()), _attention_by_loops(t1.numpy())
    assert np.allclose(channel_attention(s1).numpy(), ws1, atol=1e-6)

    def stage(ws, wt):  # Eq. 2: sum over samples and channels / (n c)
        n, c = ws.shape
        return sum((ws[i, j] - wt[i, j]) ** 2 for i in range(n) for j in range(c)) / (n * c)

    first = stage(ws1, wt1)
    second = stage(_attention_by_loops(s2.numpy()), _attention_by_loops(t2.numpy()))
    assert cd_stage_loss(s1, t1).item() == pytest.approx(first, rel=1e-5)
    # vectors and maps are interchangeable; the stages are summed, not averaged
    assert cd_stage_loss(channel_attention(s1), t1).item() == pytest.approx(first, rel=1e-5)
    assert cd_loss([s1, s2], [t1, t2]).item() == pytest.approx(first + second, rel=1e-5)
    with pytest.raises(ValueError, match="map the student's channels"):
        cd_stage_loss(s1, t2)


def test_guided_kd_uses_only_the_samples_the_teacher_gets_right_and_gives_the_rest_no_gradient():
    tau = 2.0
    teacher = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 4.0], [2.0, 1.0, 0.5]])
    labels = torch.tensor([0, 0, 2, 1])  # the teacher is wrong on samples 1 and 3
    assert guided_mask(teacher, labels).tolist() == [True, False, True, False]
    student = torch.tensor(
        [[0.5, 0.2, 0.1], [1.0, -1.0, 0.3], [0.0, 0.4, 0.9], [0.7, 0.7, -0.2]], requires_grad=True
    )
    loss = guided_kd_loss(student, teacher, labels, tau)

    def kl(row):  # tau^2 KL(p_T || p_S) at temperature tau, written out
        p = [math.exp(v / tau) for v in teacher[row].tolist()]
        q = [math.exp(v / tau) for v in student[row].tolist()]
        p, q = [v / sum(p) for v in p], [v / sum(q) for v in q]
        return tau**2 * sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))

    assert loss.item() == pytest.approx((kl(0) + kl(2)) / 2, rel=1e-5)  # mean over kept samples
    loss.backward()
    assert torch.all(student.grad[[1, 3]] == 0) and torch.all(student.grad[[0, 2]].abs() > 0)
    # a batch the teacher gets entirely wrong contributes nothing (and no NaN)
    wrong = torch.zeros(4, 3, requires_grad=True)
    none = guided_kd_loss(wrong, teacher, torch.tensor([1, 0, 0, 1]), tau)
    none.backward()
    assert none.item() == 0.0 and torch.all(wrong.grad == 0)


def test_early_decay_weight_follows_the_milestone_formula():
    def expected(weight, epoch1, epochs, factor, fractions):  # epoch1 is 1-based
        return weight * factor ** sum(1 for f in fractions if epoch1 >= round(f * epochs))

    # the authors' CIFAR-100 schedule: 6 before epoch 60, 5.4 from 60, 4.86 from 160 (1-based)
    for epoch1, value in [(1, 6.0), (59, 6.0), (60, 5.4), (159, 5.4), (160, 4.86), (200, 4.86)]:
        assert early_decay_weight(6.0, epoch1 - 1, 200, 0.9, (0.3, 0.8)) == pytest.approx(value)
    # scaled to a short run: decays at epochs 3 and 8 of 10; ImageNet's every 30 of 100
    for epoch1 in range(1, 11):
        got = early_decay_weight(6.0, epoch1 - 1, 10, 0.9, (0.3, 0.8))
        assert got == pytest.approx(expected(6.0, epoch1, 10, 0.9, (0.3, 0.8)))
    imagenet = [early_decay_weight(1.0, e - 1, 100, 0.5, (0.3, 0.6, 0.9)) for e in (29, 30, 60, 90)]
    assert imagenet == [1.0, 0.5, 0.25, 0.125]


def _cd(tiny, student="resnet8", **options):
    torch.manual_seed(0)
    context = BuildContext(
        build_model(student, 10, 1), load_teacher("resnet14"), tiny, TrainConfig(epochs=10)
    )
    return get_method("cd").build(context, resolve_options("cd", options))


def test_the_distiller_weights_follow_edt_and_its_cd_only_phase(tiny):
    cd = _cd(tiny, edt_cd_only=0.3)
    rows = [cd.loss_weights(e) for e in range(10)]
    assert [r["ce"] for r in rows] == [0.0] * 3 + [1.0] * 7  # first 30 % on CD alone
    assert [r["kd"] for r in rows] == [0.0] * 3 + [0.1] * 7
    assert [r["cd"] for r in rows] == pytest.approx([6.0] * 2 + [5.4] * 5 + [4.86] * 3)
    flat = _cd(tiny, edt=False, edt_cd_only=0.3)
    assert all(flat.loss_weights(e) == {"ce": 1.0, "kd": 0.1, "cd": 6.0} for e in range(10))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cd_weight": -1.0}, r"option cd_weight = -1.0 is out of range"),
        ({"kd_weight": -0.5}, r"option kd_weight = -0.5 is out of range"),
        ({"edt_factor": 1.5}, r"option edt_factor = 1.5 is out of range"),
        ({"edt_milestones": "0.8,0.3"}, r"edt_milestones = '0.8,0.3' must be ascending"),
        ({"edt_milestones": "0.3,two"}, r"edt_milestones = '0.3,two'"),
        ({"cd_connector": "sometimes"}, r"cd_connector = 'sometimes' is not valid"),
    ],
)
def test_bad_options_are_config_errors_naming_the_value(options, message):
    with pytest.raises(ConfigError, match=message):
        resolve_options("cd", options)


def test_unknown_positions_and_mismatched_stage_counts_are_config_errors(tiny):
    with pytest.raises(ConfigError, match=r"option cd_positions = 'layer9'.*'layer9' is not one"):
        _cd(tiny, cd_positions="layer9")
    with pytest.raises(ConfigError, match=r"student names 4 .*teacher 3 .*same number of stages"):
        _cd(tiny, student="vgg8")


def test_connectors_appear_where_channels_differ_or_everywhere_on_request(tiny):
    assert all(isinstance(c, nn.Identity) for c in _cd(tiny).connectors)  # 16/32/64 both
    assert all(isinstance(c, ChannelConnector) for c in _cd(tiny, cd_connector="always").connectors)
    wide = _cd(tiny, student="wrn_16_2", cd_positions="1,3")  # 32/64/128 -> 16/32/64
    assert [c[0].weight.shape[:2] for c in wide.connectors] == [(16, 32), (64, 128)]
    images = torch.randn(4, 1, 28, 28)
    _, terms = wide(images, torch.tensor([0, 1, 2, 3]))
    assert math.isfinite(float(sum(terms.values()).detach()))


def test_the_loss_matches_a_hand_computation(tiny):
    images = (tiny.train.images[:16].float() / 255 - 0.286) / 0.353
    labels = tiny.train.labels[:16].clone()
    labels[:4] = (labels[:4] + 1) % 10  # wrong labels: the teacher cannot be right on these
    cd = _cd(tiny, tau=4.0, kd_weight=0.5).eval()
    cd.set_epoch(3)  # past the first milestone of 10 epochs: CD weight 6 * 0.9
    logits, terms = cd(images, labels)

    student, teacher = cd.student, cd.teacher

    def stages(model, x):
        x = model.relu(model.bn1(model.conv1(x)))
        out = []
        for layer in (model.layer1, model.layer2, model.layer3):
            x = layer(x)
            out.append(x)
        return model.fc(torch.flatten(model.avgpool(x), 1)), out

    with torch.no_grad():
        t_logits, t_maps = stages(teacher, images)
    s_logits, s_maps = stages(student, images)
    cd_term = sum(
        ((s.mean((2, 3)) - t.mean((2, 3))) ** 2).mean() for s, t in zip(s_maps, t_maps, strict=True)
    )
    keep = t_logits.argmax(1) == labels
    assert 0 < keep.sum() <= 12  # GKD drops at least the four relabelled samples
    p = torch.softmax(t_logits[keep] / 4, 1)
    kl = 16 * (p * (p.log() - torch.log_softmax(s_logits[keep] / 4, 1))).sum(1).mean()
    assert torch.allclose(logits, s_logits, atol=1e-5)
    assert set(terms) == {"ce", "gkd", "cd"}
    assert terms["ce"].item() == pytest.approx(F.cross_entropy(s_logits, labels).item(), rel=1e-5)
    assert terms["gkd"].item() == pytest.approx(0.5 * kl.item(), rel=1e-4)
    assert terms["cd"].item() == pytest.approx(5.4 * cd_term.item(), rel=1e-4)


def test_stage_channel_attention_is_per_stage_and_leaves_the_model_as_it_was():
    model = build_model("resnet8", 10, 1).train()
    images = torch.randn(5, 1, 28, 28)
    vectors = stage_channel_attention(model, images)
    assert list(vectors) == ["layer1", "layer2", "layer3"]
    assert [tuple(v.shape) for v in vectors.values()] == [(5, 16), (5, 32), (5, 64)]
    assert model.training and not model.layer1._forward_hooks
    model.eval()
    with torch.no_grad():
        x = model.layer1(model.relu(model.bn1(model.conv1(images))))
    assert torch.allclose(vectors["layer1"], x.mean((2, 3)), atol=1e-6)
    assert list(stage_channel_attention(model, images, ["layer2"])) == ["layer2"]


def test_a_step_from_cached_targets_equals_a_live_step(tiny, tmp_path):
    from dihkit.training.target_cache import CachedTargetLoader, load_or_build

    cd = _cd(tiny)
    cache = load_or_build(cd, tiny, views=1, root=tmp_path, log=lambda _: None)
    assert cache.targets.shape[-1] == 10 + 16 + 32 + 64  # logits, then the channel vectors
    loader = CachedTargetLoader(tiny.train, cache, 32, mean=tiny.spec.mean, std=tiny.spec.std)
    images, labels, targets = next(iter(loader))
    cd.eval()
    _, cached = cd(images, labels, targets)
    _, live = cd(images, labels)
    for name, value in live.items():
        assert float(cached[name].detach()) == pytest.approx(
            float(value.detach()), rel=2e-3, abs=1e-4
        )


def test_one_epoch_run_with_the_full_method(tiny):
    config = TrainConfig(epochs=1, batch_size=64, device="cpu")
    _, result = distill("cd", "resnet14", "resnet8", tiny, config, progress=False)
    (row,) = result.history
    assert set(row.losses) == {"ce", "gkd", "cd"}
    assert all(math.isfinite(v) for v in row.losses.values()) and row.losses["cd"] > 0


def test_one_epoch_run_with_gkd_and_edt_off(tiny, tmp_path):
    config = TrainConfig(epochs=1, batch_size=64, device="cpu")
    options = {"gkd": False, "edt": False, "cd_connector": "always"}
    distiller, result = distill(
        "cd", "resnet14", "resnet8", tiny, config, options, out_dir=tmp_path, progress=False
    )
    assert set(result.history[0].losses) == {"ce", "kd", "cd"}
    assert distiller.loss_weights() == {"ce": 1.0, "kd": 0.1, "cd": 6.0}
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert "connectors" in saved["extra"]  # the connectors are trained state, kept for resuming
