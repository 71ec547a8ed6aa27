"""MHKD: head pairs on teacher and student, Eq. 1-2, joint or saved teacher heads, and one
teacher checkpoint carrying several head sets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dihkit.errors import ConfigError
from dihkit.methods import BuildContext, get_method, resolve_options
from dihkit.models import build_model
from dihkit.runs.pipeline import distill, load_teacher, train_heads
from dihkit.training.config import TrainConfig


def _mhkd(tiny, teacher="resnet14", **options):
    torch.manual_seed(0)
    context = BuildContext(
        build_model("resnet8", 10, 1), load_teacher(teacher), tiny, TrainConfig()
    )
    return get_method("mhkd").build(context, resolve_options("mhkd", {"head_width": 8, **options}))


def _batch(tiny, n=8):
    return (tiny.train.images[:n].float() / 255 - 0.286) / 0.353, tiny.train.labels[:n]


def test_loss_is_beta_times_the_head_terms_plus_kd_eq_2(tiny):
    tau, alpha, beta = 4.0, 0.9, 0.5
    mhkd = _mhkd(tiny).eval()
    images, labels = _batch(tiny)
    logits, terms = mhkd(images, labels)
    with torch.no_grad():
        cohort = mhkd.teacher_cohort(images)
    student = mhkd.student_exits(images)

    def ohkd(z_s, z_t):  # Eq. 1 written out
        p = torch.softmax(z_t / tau, 1)
        kl = (p * (p.log() - torch.log_softmax(z_s / tau, 1))).sum(1).mean()
        return alpha * tau**2 * kl + (1 - alpha) * F.cross_entropy(z_s, labels)

    student_terms = beta * sum(
        ohkd(s, t) for s, t in zip(student.exit_logits, cohort[:-1], strict=True)
    )
    teacher_ce = sum(F.cross_entropy(t, labels) for t in cohort[:-1])
    expected = student_terms + ohkd(student.logits, cohort[-1]) + teacher_ce
    assert sum(terms.values()).item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(logits, student.logits)


def test_student_head_terms_do_not_train_the_teacher_heads(tiny):
    mhkd = _mhkd(tiny)
    images, labels = _batch(tiny)
    _, terms = mhkd(images, labels)
    (terms["head1_kl"] + terms["head2_ce"]).backward()
    assert all(p.grad is None for p in mhkd.teacher_cohort.heads.parameters())
    assert all(p.grad is None for p in mhkd.teacher.parameters())


def test_single_head_ablation_mounts_one_pair(tiny):
    mhkd = _mhkd(tiny, heads="2")
    assert mhkd.student_exits.positions == ("layer2",)
    assert mhkd.teacher_cohort.positions == ("layer2",)
    _, terms = mhkd(*_batch(tiny))
    assert {k for k in terms if k.startswith("head")} == {"head1_kl", "head1_ce"}


def test_one_checkpoint_carries_dih_and_mhkd_head_sets(tiny, tmp_path):
    config = TrainConfig(epochs=1, lr=0.01, device="cpu")
    train_heads("resnet14", tiny, config, kind="conv", width=8, out_dir=tmp_path, progress=False)
    teacher = load_teacher(tmp_path / "best.pt")
    assert set(teacher.head_sets) == {"linear", "conv"}
    linear = teacher.head_set("linear")
    conv = teacher.head_set("conv", ["layer1", "layer2", "layer3"], 8)
    bundled = load_teacher("resnet14").cohort
    images, _ = _batch(tiny)
    with torch.no_grad():
        assert torch.allclose(linear(images), bundled(images))  # carried over unchanged
        assert conv(images).shape == (4, 8, 10)
    assert teacher.head_set("conv", ["layer1", "layer2", "layer3"], 16) is None
    # mhkd reuses the saved conv heads, frozen, instead of training new ones
    mhkd = _mhkd(tiny, teacher=str(tmp_path / "best.pt"))
    assert not mhkd.train_teacher_heads
    _, terms = mhkd(*_batch(tiny))
    assert not any(k.startswith("teacher_head") for k in terms)
    assert "teacher_heads" not in mhkd.extra_modules()


def test_pretrained_teacher_heads_that_do_not_exist_are_a_clear_error(tiny):
    with pytest.raises(ConfigError, match="no saved conv heads.*--teacher-heads joint"):
        _mhkd(tiny, teacher_heads="pretrained")


def test_mhkd_run_checkpoints_the_plain_student_and_resumes(tiny, tmp_path):
    config = TrainConfig(epochs=1, batch_size=64, device="cpu")
    options = {"head_width": 8}
    distill("mhkd", "resnet14", "resnet8", tiny, config, options, out_dir=tmp_path, progress=False)
    payload = torch.load(tmp_path / "last.pt", weights_only=True)
    assert set(payload["extra"]) == {"student_heads", "teacher_heads"}
    reference = build_model("resnet8", 10, 1).state_dict()
    assert set(payload["model"]["state_dict"]) == set(reference)


def test_mhkd_with_saved_teacher_heads_trains_from_cached_targets(tiny, tmp_path):
    from dihkit.training.target_cache import CachedTargetLoader, load_or_build

    config = TrainConfig(epochs=1, lr=0.01, device="cpu")
    train_heads("resnet14", tiny, config, kind="conv", width=8, out_dir=tmp_path, progress=False)
    mhkd = _mhkd(tiny, teacher=str(tmp_path / "best.pt"), teacher_heads="pretrained")
    assert mhkd.cache_refusal() is None
    assert _mhkd(tiny, teacher_heads="joint").cache_refusal().startswith("method 'mhkd' trains")
    cache = load_or_build(mhkd, tiny, views=1, root=tmp_path / "cache", log=lambda _: None)
    assert cache.targets.shape[2] == 4  # three conv heads and the teacher
    loader = CachedTargetLoader(tiny.train, cache, 16, mean=tiny.spec.mean, std=tiny.spec.std)
    images, labels, targets = next(iter(loader))
    mhkd.eval()  # the student's BN in eval mode: both calls see the same network
    _, cached_terms = mhkd(images, labels, targets)
    _, live_terms = mhkd(images, labels)
    assert cached_terms.keys() == live_terms.keys()
    for name, value in live_terms.items():
        cached = float(cached_terms[name].detach())
        assert cached == pytest.approx(float(value.detach()), rel=2e-3, abs=1e-4), name
