"""Cached cohort targets: the cached view and its targets match the live teacher on the same
pixels, a changed teacher or a damaged file rebuilds the cache, and cached runs resume exactly."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import dihkit.training.loop as train_module
import dihkit.training.target_cache as target_cache
from dihkit.cli.main import main
from dihkit.errors import ConfigError
from dihkit.methods.ce import CrossEntropy
from dihkit.methods.dih import IntermediateHeads
from dihkit.methods.kd import KnowledgeDistillation
from dihkit.models import build_model
from dihkit.nn.heads import mount_heads
from dihkit.runs.compare import run_comparison
from dihkit.training.checkpoint import load_checkpoint
from dihkit.training.config import TrainConfig
from dihkit.training.loop import fit
from dihkit.training.target_cache import CachedTargetLoader, load_or_build

CPU = torch.device("cpu")


def _dih(data, seed: int = 0) -> IntermediateHeads:
    torch.manual_seed(seed)
    teacher = build_model("resnet8", data.spec.num_classes, data.spec.in_channels)
    cohort = mount_heads(teacher, "linear", input_shape=(1, 28, 28))
    student = build_model("resnet8", data.spec.num_classes, data.spec.in_channels)
    return IntermediateHeads(student, cohort, tau=5.0, alpha=0.5)


def _normalised(data, images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    mean = torch.as_tensor(data.spec.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.as_tensor(data.spec.std, dtype=torch.float32).view(-1, 1, 1)
    return (x - mean) / std


def test_a_cached_view_is_the_pixels_its_targets_were_computed_for(tiny, tmp_path):
    distiller = _dih(tiny).eval()
    cache = load_or_build(distiller, tiny, views=3, seed=5, root=tmp_path, log=lambda _: None)
    assert cache.built and tuple(cache.targets.shape) == (3, len(tiny.train), 4, 10)
    assert cache.targets.dtype == torch.float16
    assert cache.offsets.abs().max() <= 4 and cache.flips.any() and not cache.flips.all()

    # Recompute view 2 of a few images with plain numpy slicing and the live cohort.
    raw = tiny.train.images.numpy()
    picks = [0, 7, 123, len(tiny.train) - 1]
    views = []
    for n in picks:
        padded = np.pad(raw[n], ((0, 0), (4, 4), (4, 4)))
        dy, dx = (int(v) + 4 for v in cache.offsets[2, n])
        crop = padded[:, dy : dy + 28, dx : dx + 28]
        views.append(crop[:, :, ::-1] if cache.flips[2, n] else crop)
    with torch.no_grad():
        live = distiller.cohort(_normalised(tiny, np.stack(views)))  # (M, B, C)
    cached = cache.targets[2, picks].float().transpose(0, 1)
    assert torch.allclose(cached, live, rtol=2e-3, atol=2e-3)

    # The loader serves exactly those pixels and targets when it picks view 2.
    loader = CachedTargetLoader(
        tiny.train, cache, 16, mean=tiny.spec.mean, std=tiny.spec.std, shuffle=False
    )
    loader._start_epoch()
    loader._choice = torch.full_like(loader._choice, 2)
    idx = torch.tensor(picks)
    images, (targets,) = loader._view(tiny.train.images[idx], idx, None)
    assert torch.equal(images, torch.from_numpy(np.ascontiguousarray(np.stack(views))))
    assert torch.equal(targets, cached)


def test_a_step_from_cached_targets_equals_a_live_step_on_the_same_view(tiny, tmp_path):
    distiller = _dih(tiny)
    cache = load_or_build(distiller, tiny, views=2, root=tmp_path, log=lambda _: None)
    loader = CachedTargetLoader(tiny.train, cache, 64, mean=tiny.spec.mean, std=tiny.spec.std)
    images, labels, targets = next(iter(loader))
    assert targets.shape == (4, 64, 10)

    results = []
    for use_cache in (True, False):
        model = _dih(tiny).train()  # the same seeded weights each time
        optimizer = torch.optim.SGD(model.student.parameters(), lr=0.1)
        logits, terms = model(images, labels, targets if use_cache else None)
        loss = sum(terms.values())
        loss.backward()
        optimizer.step()
        results.append((logits.detach(), {k: float(v.detach()) for k, v in terms.items()}, model))
    (cached_logits, cached_terms, cached_model), (live_logits, live_terms, live_model) = results
    assert torch.equal(cached_logits, live_logits)  # the student saw the same pixels
    assert cached_terms.keys() == live_terms.keys() == {"dih", "ce"}
    for name in live_terms:
        assert cached_terms[name] == pytest.approx(live_terms[name], rel=1e-3)
    for a, b in zip(
        cached_model.student.parameters(), live_model.student.parameters(), strict=True
    ):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_each_epoch_picks_one_stored_view_per_image_reproducibly(tiny, tmp_path):
    distiller = _dih(tiny)
    cache = load_or_build(distiller, tiny, views=4, root=tmp_path, log=lambda _: None)
    loader = CachedTargetLoader(
        tiny.train, cache, 50, mean=tiny.spec.mean, std=tiny.spec.std, seed=3
    )
    choices = []
    for epoch in (0, 1, 0):
        loader.set_epoch(epoch)
        batches = list(loader)
        assert sum(len(b[1]) for b in batches) == len(tiny.train)
        choices.append(loader._choice.clone())
    assert torch.equal(choices[0], choices[2])
    assert not torch.equal(choices[0], choices[1])
    assert set(choices[0].tolist()) == {0, 1, 2, 3}


def test_the_cache_is_reused_and_rebuilt_when_the_teacher_or_data_change(tiny, tmp_path):
    distiller = _dih(tiny)
    first = load_or_build(distiller, tiny, views=2, root=tmp_path, log=lambda _: None)
    again = load_or_build(distiller, tiny, views=2, root=tmp_path, log=lambda _: None)
    assert first.built and not again.built
    assert torch.equal(first.targets, again.targets)

    changed = _dih(tiny)
    with torch.no_grad():
        changed.cohort.heads[0][-1].bias.add_(1.0)  # one head's bias: a different cohort
    rebuilt = load_or_build(changed, tiny, views=2, root=tmp_path, log=lambda _: None)
    assert rebuilt.built and rebuilt.folder != first.folder
    assert not torch.equal(rebuilt.targets[:, :, 0], first.targets[:, :, 0])
    assert torch.equal(rebuilt.targets[:, :, -1], first.targets[:, :, -1])  # teacher unchanged

    other_views = load_or_build(distiller, tiny, views=3, root=tmp_path, log=lambda _: None)
    other_seed = load_or_build(distiller, tiny, views=2, seed=1, root=tmp_path, log=lambda _: None)
    fewer = dataclasses.replace(
        tiny, train=type(tiny.train)(tiny.train.images[:-1], tiny.train.labels[:-1])
    )
    other_data = load_or_build(distiller, fewer, views=2, root=tmp_path, log=lambda _: None)
    folders = {c.folder for c in (first, rebuilt, other_views, other_seed, other_data)}
    assert all(c.built for c in (other_views, other_seed, other_data)) and len(folders) == 5


@pytest.mark.parametrize("damage", ["flip-bytes", "truncate", "stale-key", "no-manifest"])
def test_a_damaged_or_stale_cache_is_rebuilt_never_used(tiny, tmp_path, damage):
    distiller = _dih(tiny)
    first = load_or_build(distiller, tiny, views=2, root=tmp_path, log=lambda _: None)
    targets_file = first.folder / "targets.pt"
    manifest_file = first.folder / "manifest.json"
    if damage == "flip-bytes":
        blob = bytearray(targets_file.read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        targets_file.write_bytes(bytes(blob))
    elif damage == "truncate":
        targets_file.write_bytes(targets_file.read_bytes()[:100])
    elif damage == "stale-key":
        manifest = json.loads(manifest_file.read_text())
        manifest["key"]["seed"] = 99
        manifest_file.write_text(json.dumps(manifest))
    else:
        manifest_file.unlink()
    lines = []
    second = load_or_build(distiller, tiny, views=2, root=tmp_path, log=lines.append)
    assert second.built
    assert torch.equal(second.targets, first.targets)
    if damage != "no-manifest":
        assert lines and "rebuilding" in lines[0] and str(first.folder) in lines[0]
    third = load_or_build(distiller, tiny, views=2, root=tmp_path, log=lambda _: None)
    assert not third.built  # the rebuilt cache verifies


def test_a_cached_run_resumes_exactly(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("DIHKIT_TARGET_CACHE", str(tmp_path / "cache"))
    config = TrainConfig(epochs=3, batch_size=64, device="cpu", seed=2, cached_targets=2)
    full = fit(_dih(tiny), tiny, config, out_dir=tmp_path / "a", progress=False)

    real_epoch = train_module._train_one_epoch
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_module, "_train_one_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit(_dih(tiny), tiny, config, out_dir=tmp_path / "b", progress=False)
    monkeypatch.setattr(train_module, "_train_one_epoch", real_epoch)
    resumed = fit(_dih(tiny), tiny, config, out_dir=tmp_path / "b", resume=True, progress=False)

    assert [r.train_loss for r in resumed.history] == [r.train_loss for r in full.history]
    assert resumed.test_acc_best == full.test_acc_best
    a = load_checkpoint(tmp_path / "a" / "last.pt")["model"]["state_dict"]
    b = load_checkpoint(tmp_path / "b" / "last.pt")["model"]["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(list((tmp_path / "cache").iterdir())) == 1

    with pytest.raises(Exception, match="cached_targets: 2 -> 3"):
        fit(
            _dih(tiny),
            tiny,
            TrainConfig(epochs=3, batch_size=64, device="cpu", seed=2, cached_targets=3),
            out_dir=tmp_path / "b",
            resume=True,
            progress=False,
        )


def test_cached_training_differs_from_live_training_only_in_the_views(tiny, tmp_path):
    """With one identity view (no augmentation) the cached run is the live run, to fp16."""
    config = TrainConfig(epochs=2, batch_size=64, device="cpu", augment=False)
    live = fit(_dih(tiny), tiny, config, progress=False)
    cached_config = TrainConfig(
        epochs=2, batch_size=64, device="cpu", augment=False, cached_targets=1
    )
    cache_root = tmp_path / "cache"
    distiller = _dih(tiny)
    load_or_build(distiller, tiny, views=1, augment=False, root=cache_root, log=lambda _: None)
    import os

    os.environ["DIHKIT_TARGET_CACHE"] = str(cache_root)
    try:
        cached = fit(distiller, tiny, cached_config, progress=False)
    finally:
        del os.environ["DIHKIT_TARGET_CACHE"]
    for a, b in zip(live.history, cached.history, strict=True):
        assert b.train_loss == pytest.approx(a.train_loss, rel=1e-3)
    assert cached.history[-1].val_acc == pytest.approx(live.history[-1].val_acc, abs=0.02)


def test_methods_without_frozen_targets_refuse_the_cache(tiny, tmp_path):
    student = build_model("resnet8", 10, 1)
    with pytest.raises(ConfigError, match="'ce' has no frozen teacher outputs"):
        load_or_build(CrossEntropy(student), tiny, views=2, root=tmp_path)
    with pytest.raises(ConfigError, match="positive number of views, got 0"):
        load_or_build(_dih(tiny), tiny, views=0, root=tmp_path)
    with pytest.raises(ConfigError, match=r"cached_targets = -1 must be an integer in \[0, inf\)"):
        TrainConfig(cached_targets=-1)


def test_kd_caches_the_teacher_alone(tiny, tmp_path):
    torch.manual_seed(0)
    teacher = build_model("resnet8", 10, 1)
    kd = KnowledgeDistillation(build_model("resnet8", 10, 1), teacher)
    cache = load_or_build(kd, tiny, views=1, root=tmp_path, log=lambda _: None)
    assert cache.targets.shape[2] == 1
    loader = CachedTargetLoader(tiny.train, cache, 32, mean=tiny.spec.mean, std=tiny.spec.std)
    images, _, targets = next(iter(loader))
    with torch.no_grad():
        assert torch.allclose(targets[0], teacher.eval()(images), rtol=2e-3, atol=2e-3)


def test_compare_builds_the_cache_once_for_all_seeds(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("DIHKIT_TARGET_CACHE", str(tmp_path / "cache"))
    builds = []
    real_build = target_cache.build_targets
    monkeypatch.setattr(
        target_cache, "build_targets", lambda *a, **k: builds.append(1) or real_build(*a, **k)
    )
    records = run_comparison(
        ["ce", "dih"],
        [0, 1],
        "resnet14",
        "resnet8",
        tiny,
        TrainConfig(epochs=1, batch_size=64, device="cpu", cached_targets=2),
        out_dir=tmp_path / "grid",
        progress=False,
    )
    assert len(records) == 4 and len(builds) == 1
    ce_run = load_checkpoint(tmp_path / "grid" / "ce" / "seed-0" / "last.pt")
    dih_run = load_checkpoint(tmp_path / "grid" / "dih" / "seed-1" / "last.pt")
    assert ce_run["config"]["cached_targets"] == 0  # ce has nothing to cache: it runs as usual
    assert dih_run["config"]["cached_targets"] == 2


def test_cli_distill_with_cached_targets(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIHKIT_TARGET_CACHE", str(tmp_path / "cache"))
    argv = [
        "distill",
        "--method",
        "kd",
        "--teacher",
        "resnet14",
        "--student",
        "resnet8",
        "--train-per-class",
        "10",
        "--epochs",
        "1",
        "--cached-targets",
        "2",
        "--quiet",
        "--out",
    ]
    assert main([*argv, str(tmp_path / "run")]) == 0
    assert "target cache: 2 views of 100 images built" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "run" / "best.pt")["config"]["cached_targets"] == 2
    mhkd = ["--method", "mhkd", "--teacher-heads", "joint", "--out", str(tmp_path / "mhkd")]
    assert main([*argv[:-2], *mhkd]) == 2
    assert "trains the teacher's heads in this run" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("method", "options", "expected"),
    [
        ("ce", {}, 0),
        ("dml", {}, 0),
        ("dsn", {}, 0),
        ("kd", {}, 4),
        ("dih-ensemble", {}, 4),
        ("fitnets", {}, 4),  # its KD stage; the hint stage always runs live
        ("takd", {"assistant": "resnet14"}, 4),  # both KD legs
        ("mhkd", {}, 0),  # teacher_heads=auto may train the heads in the run
        ("mhkd", {"teacher_heads": "pretrained"}, 4),
        ("dskd", {}, 4),  # logits and the teacher's last feature map, per stored view
        ("dskd", {"feature_loss": False}, 4),
    ],
)
def test_grids_use_the_cache_only_where_the_method_can(method, options, expected):
    from dihkit.runs.compare import method_config

    config = method_config(method, TrainConfig(cached_targets=4), seed=7, options=options)
    assert (config.cached_targets, config.seed) == (expected, 7)


def test_fitnets_and_takd_train_their_kd_stages_from_the_cache(tiny, tmp_path, monkeypatch):
    from dihkit.runs.pipeline import distill

    monkeypatch.setenv("DIHKIT_TARGET_CACHE", str(tmp_path / "cache"))
    config = TrainConfig(epochs=1, batch_size=64, device="cpu", cached_targets=2)
    distill("fitnets", "resnet14", "resnet8", tiny, config, out_dir=tmp_path / "f", progress=False)
    assert load_checkpoint(tmp_path / "f" / "hint" / "last.pt")["config"]["cached_targets"] == 0
    assert load_checkpoint(tmp_path / "f" / "last.pt")["config"]["cached_targets"] == 2
    distill(
        "takd",
        "resnet14",
        "resnet8",
        tiny,
        config,
        {"assistant": "resnet8"},
        out_dir=tmp_path / "t",
        progress=False,
    )
    # One cache of the teacher (shared by fitnets and takd's first leg), one of the assistant.
    assert len(list((tmp_path / "cache").iterdir())) == 2


def _dskd(tiny, **options):
    from dihkit.methods import BuildContext, get_method, resolve_options
    from dihkit.runs.pipeline import load_teacher

    torch.manual_seed(0)
    context = BuildContext(
        build_model("resnet8", 10, 1), load_teacher("resnet14"), tiny, TrainConfig()
    )
    return get_method("dskd").build(context, resolve_options("dskd", options))


def test_dskd_caches_the_teachers_feature_map_of_each_view_within_fp16_rounding(tiny, tmp_path):
    dskd = _dskd(tiny)
    cache = load_or_build(dskd, tiny, views=2, seed=3, root=tmp_path, log=lambda _: None)
    # resnet14's last feature map on 28x28 inputs: 64 x 7 x 7 values after the 10 logits.
    assert tuple(cache.targets.shape) == (2, len(tiny.train), 1, 10 + 64 * 7 * 7)
    loader = CachedTargetLoader(tiny.train, cache, 64, mean=tiny.spec.mean, std=tiny.spec.std)
    images, labels, targets = next(iter(loader))
    teacher = dskd.teacher.eval()
    with torch.no_grad():  # the live teacher on the very pixels the loader served, by hand
        t = teacher.relu(teacher.bn1(teacher.conv1(images)))
        feature = teacher.layer3(teacher.layer2(teacher.layer1(t)))
        logits = teacher.fc(torch.flatten(teacher.avgpool(feature), 1))
    cached_logits, cached_feature = dskd._teacher_outputs(images, targets)
    # float16 storage: relative rounding of at most 2^-11 of each value.
    assert torch.allclose(cached_logits, logits, rtol=2**-10, atol=1e-3)
    assert torch.allclose(cached_feature, feature, rtol=2**-10, atol=1e-3)
    assert not torch.equal(cached_feature, torch.zeros_like(cached_feature))

    # A step from the cache equals a live step up to that rounding.
    live_logits, live_terms = _dskd(tiny).train()(images, labels)
    step_logits, step_terms = _dskd(tiny).train()(images, labels, targets)
    assert torch.equal(step_logits, live_logits)
    assert step_terms.keys() == live_terms.keys()
    for name in live_terms:
        step, live = step_terms[name].item(), live_terms[name].item()
        assert step == pytest.approx(live, rel=1e-3)


def test_dskd_and_kd_never_share_a_cache_of_the_same_teacher(tiny, tmp_path):
    from dihkit.runs.pipeline import load_teacher

    torch.manual_seed(0)
    kd = KnowledgeDistillation(build_model("resnet8", 10, 1), load_teacher("resnet14").model)
    kd_cache = load_or_build(kd, tiny, views=1, root=tmp_path, log=lambda _: None)
    dskd_cache = load_or_build(_dskd(tiny), tiny, views=1, root=tmp_path, log=lambda _: None)
    plain = load_or_build(
        _dskd(tiny, feature_loss=False), tiny, views=1, root=tmp_path, log=lambda _: None
    )
    assert dskd_cache.folder != kd_cache.folder and dskd_cache.built
    assert dskd_cache.key["contents"] == "logits+final-feature"
    assert plain.folder == kd_cache.folder and not plain.built  # logits only: the same cache
