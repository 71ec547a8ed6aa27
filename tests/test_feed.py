"""FEED: its feature distance against a hand computation, the sum over teachers, its options,
and one-epoch parallel and sequential runs (the sequential rounds resumable)."""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import pytest
import torch

from dihkit.data.datasets import Dataset, per_class_subset
from dihkit.errors import ConfigError
from dihkit.losses.feature import feed_loss, normalised_map, parallel_feed_loss, pool_to
from dihkit.methods import resolve_options
from dihkit.methods.feed import FeatureEnsemble, NonLinearTransformer, make_transformer
from dihkit.models import build_model
from dihkit.runs.pipeline import check_distill, distill, distill_identity, load_teacher
from dihkit.training.config import TrainConfig


@pytest.fixture(scope="module")
def small(tiny: Dataset) -> Dataset:
    """10 train / 5 val / 5 test images per class (``--train-per-class 10``-sized)."""
    return dataclasses.replace(
        tiny,
        train=per_class_subset(tiny.train, 10),
        val=per_class_subset(tiny.val, 5),
        test=per_class_subset(tiny.test, 5),
    )


def _maps() -> tuple[torch.Tensor, torch.Tensor]:
    """Two fixed [2, 2, 2, 2] maps (no randomness)."""
    s = torch.arange(16, dtype=torch.float32).reshape(2, 2, 2, 2) - 5.0
    t = torch.tensor([1.0, 0, 2, 0, 0, 3, 0, 1, 4, 4, 0, 0, 1, 0, 0, 2]).reshape(2, 2, 2, 2)
    return s, t


def _by_hand(s: torch.Tensor, t: torch.Tensor, p: int) -> float:
    """Mean over samples and elements of |s_i/||s_i|| - t_i/||t_i|||^p, in plain loops."""
    total, count = 0.0, 0
    for i in range(s.shape[0]):
        a, b = s[i].flatten().tolist(), t[i].flatten().tolist()
        norm_a = math.sqrt(sum(x * x for x in a))
        norm_b = math.sqrt(sum(x * x for x in b))
        for x, y in zip(a, b, strict=True):
            total += abs(x / norm_a - y / norm_b) ** p
            count += 1
    return total / count


@pytest.mark.parametrize("p", [1, 2])
def test_feed_loss_matches_a_hand_computation(p):
    s, t = _maps()
    assert feed_loss(s, t, p).item() == pytest.approx(_by_hand(s, t, p), rel=1e-6)
    rows = normalised_map(s)
    assert rows.shape == (2, 8) and torch.allclose(rows.norm(dim=1), torch.ones(2))
    # scale-free per sample: multiplying one sample's map changes nothing
    scaled = s.clone()
    scaled[1] *= 7
    assert feed_loss(scaled, t, p).item() == pytest.approx(feed_loss(s, t, p).item(), rel=1e-6)


def test_feed_loss_is_zero_for_proportional_maps_and_refuses_other_shapes():
    _, t = _maps()
    assert feed_loss(3 * t, t).item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="one shape"):
        feed_loss(torch.ones(2, 3, 2, 2), torch.ones(2, 2, 2, 2))
    with pytest.raises(ConfigError, match="got 3"):
        feed_loss(t, t, 3)


def test_parallel_loss_sums_over_teachers_so_a_repeated_teacher_counts_twice():
    s, t = _maps()
    one = parallel_feed_loss([s], [t], beta=5.0)
    assert one.item() == pytest.approx(5.0 * _by_hand(s, t, 1), rel=1e-6)
    assert parallel_feed_loss([s, s], [t, t], beta=5.0).item() == pytest.approx(2 * one.item())


def test_two_identical_teachers_give_two_copies_of_the_single_teacher_term():
    torch.manual_seed(0)
    student, teacher = build_model("resnet8", 10, 1), build_model("resnet8", 10, 1)
    transformer = make_transformer("3x3", (64, 7, 7), (64, 7, 7))
    pair = FeatureEnsemble(
        student, [teacher, teacher], [transformer, copy.deepcopy(transformer)], beta=3.0
    ).eval()
    single = FeatureEnsemble(
        copy.deepcopy(student), [teacher], [copy.deepcopy(transformer)], beta=3.0
    ).eval()
    images, labels = torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,))
    _, two = pair(images, labels)
    _, one = single(images, labels)
    assert set(two) == {"ce", "feed1", "feed2"} and set(one) == {"ce", "feed"}
    assert two["feed1"].item() == pytest.approx(one["feed"].item(), rel=1e-6)
    assert (two["feed1"] + two["feed2"]).item() == pytest.approx(2 * one["feed"].item(), rel=1e-6)
    # the teacher's map is a constant: gradients reach the student and transformers only
    two["feed1"].backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None for p in pair.transformers[0].parameters())


def test_transformers_map_channels_and_pool_the_larger_map():
    ntl = make_transformer("3x3", (16, 14, 14), (32, 7, 7))
    assert isinstance(ntl, NonLinearTransformer)
    assert [m.kernel_size for m in ntl if isinstance(m, torch.nn.Conv2d)] == [(3, 3)] * 3
    out = ntl(torch.randn(2, 16, 14, 14))
    assert out.shape == (2, 32, 7, 7) and out.min() >= 0  # post-ReLU, like the teacher's map
    # a smaller student map stays at its size; the teacher's target is pooled down to it
    assert make_transformer("1x1", (16, 7, 7), (32, 14, 14))(torch.randn(2, 16, 7, 7)).shape == (
        2,
        32,
        7,
        7,
    )
    big = torch.arange(16.0).reshape(1, 1, 4, 4)
    pooled = pool_to(big, (2, 2))
    expected = [[(0 + 1 + 4 + 5) / 4, (2 + 3 + 6 + 7) / 4], [(8 + 9 + 12 + 13) / 4, 12.5]]
    assert pooled[0, 0].tolist() == expected
    assert pool_to(big, (4, 4)) is big


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"mode": "ensemble"}, r"method 'feed': option mode = 'ensemble' is not valid"),
        ({"rounds": 0}, r"method 'feed': option rounds = 0 is out of range"),
        ({"norm": 3}, r"method 'feed': option norm = 3 is out of range"),
        ({"transformer": "5x5"}, r"option transformer = '5x5' is not valid"),
    ],
)
def test_bad_options_are_clear_errors(values, message):
    with pytest.raises(ConfigError, match=message):
        resolve_options("feed", values)


def test_unknown_extra_teacher_and_teachers_in_sequential_mode_are_refused(tiny):
    config = TrainConfig(epochs=1)
    with pytest.raises(ConfigError, match=r"option teachers = 'resnet20,resnet999'.*resnet999"):
        check_distill(
            "feed", "resnet14", "resnet8", tiny, config, {"teachers": "resnet20,resnet999"}
        )
    with pytest.raises(ConfigError, match=r"teachers = 'resnet20' is for mode 'parallel'"):
        check_distill(
            "feed",
            "resnet14",
            "resnet8",
            tiny,
            config,
            {"mode": "sequential", "teachers": "resnet20"},
        )


def test_the_teacher_list_is_part_of_the_run_identity(tiny):
    config = TrainConfig(epochs=1)
    alone = distill_identity("feed", "resnet14", "resnet8", tiny, config)
    paired = distill_identity("feed", "resnet14", "resnet8", tiny, config, {"teachers": "resnet20"})
    assert alone != paired and paired["options"]["teachers"] == "resnet20"


def test_parallel_feed_runs_one_epoch_from_two_bundled_teachers(small, tmp_path):
    config = TrainConfig(epochs=1, batch_size=64, device="cpu")
    distiller, result = distill(
        "feed", "resnet14", "resnet8", small, config, {"teachers": "resnet20"},
        out_dir=tmp_path, progress=False,
    )  # fmt: skip
    assert set(result.history[0].losses) == {"ce", "feed1", "feed2"}
    assert all(math.isfinite(v) for v in result.history[0].losses.values())
    assert [t.arch for t in distiller.teachers] == ["resnet14", "resnet20"]
    # the bundled teachers were not changed by training
    for trained, name in zip(distiller.teachers, ("resnet14", "resnet20"), strict=True):
        fresh = load_teacher(name).model.state_dict()
        assert all(torch.equal(v, fresh[k]) for k, v in trained.state_dict().items())
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert len({k.split(".")[0] for k in last["extra"]["transformers"]}) == 2
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["identity"]["options"]["teachers"] == "resnet20"


def test_sequential_feed_trains_round_one_first_and_resumes_without_retraining_it(small, tmp_path):
    config = TrainConfig(epochs=1, batch_size=64, device="cpu")
    options = {"mode": "sequential", "rounds": 2}
    distiller, result = distill(
        "feed", "resnet14", "resnet8", small, config, options, out_dir=tmp_path, progress=False
    )
    round1 = tmp_path / "round-1"
    assert (round1 / "best.pt").is_file() and (tmp_path / "best.pt").is_file()
    history = json.loads((round1 / "history.json").read_text())
    assert [set(row["losses"]) for row in history] == [{"ce", "feed"}]
    assert set(result.history[0].losses) == {"ce", "feed"}
    # the last round's teacher is round 1's selected student, with the student's architecture
    (teacher,) = distiller.teachers
    assert teacher.arch == "resnet8"
    selected = torch.load(round1 / "best.pt", weights_only=True)["model"]["state_dict"]
    assert all(torch.equal(v, selected[k]) for k, v in teacher.state_dict().items())
    stage = json.loads((round1 / "summary.json").read_text())["identity"]
    assert stage["feed"]["round"] == 1 and "rounds" not in stage["feed"]

    stamp = (round1 / "last.pt").stat().st_mtime_ns
    again, _ = distill(
        "feed", "resnet14", "resnet8", small, config, options,
        out_dir=tmp_path, resume=True, progress=False,
    )  # fmt: skip
    assert (round1 / "last.pt").stat().st_mtime_ns == stamp  # round 1 was not trained again
    assert json.loads((round1 / "history.json").read_text()) == history
    (resumed_teacher,) = again.teachers
    assert all(torch.equal(v, selected[k]) for k, v in resumed_teacher.state_dict().items())
