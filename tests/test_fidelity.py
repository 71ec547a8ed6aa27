"""Fidelity to the papers (issue 19): every departure is a flagged choice. The paper profile's
data split, DSKD's "CE + alpha * KD, alpha = 1, tau = 4 for all methods", DSKD's KD terms with
and without tau^2, DIH's head non-linearity, FitNets' hint schedule, the papers' epochs. Losses
are checked against computations written out by hand on fixed tensors."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

import dihkit.nn.heads as heads_module
import dihkit.studies.paper_numbers as paper_numbers
from dihkit.errors import ConfigError
from dihkit.losses import kd_student_loss, mutual_loss, per_sample_kd
from dihkit.methods import BuildContext, get_method, resolve_options
from dihkit.methods.fitnets import FitNets
from dihkit.models import build_model
from dihkit.nn.heads import make_head
from dihkit.reproduce.config import experiment_names
from dihkit.reproduce.loading import load_experiment
from dihkit.reproduce.plan import resolve_profile
from dihkit.runs.pipeline import load_teacher
from dihkit.training.config import TrainConfig


def _fixed(
    n: int = 6, c: int = 5, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(n, c, generator=g) * 2
    teacher = torch.randn(n, c, generator=g) * 3
    labels = torch.randint(0, c, (n,), generator=g)
    return student, teacher, labels


def _hand_kl(student: torch.Tensor, teacher: torch.Tensor, tau: float) -> torch.Tensor:
    """KL(softmax(t / tau) || softmax(s / tau)) per sample, written out (no tau^2)."""
    t = torch.exp(teacher / tau)
    p = t / t.sum(1, keepdim=True)
    s = student / tau
    log_q = s - torch.log(torch.exp(s).sum(1, keepdim=True))
    return (p * (torch.log(p) - log_q)).sum(1)


def _hand_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    log_q = logits - torch.log(torch.exp(logits).sum(1, keepdim=True))
    return -log_q[torch.arange(len(labels)), labels].mean()


# 1. The paper profile trains on the whole training set.


@pytest.mark.parametrize("name", experiment_names())
def test_the_paper_profile_has_no_validation_split_and_every_file_says_so(name):
    experiment = load_experiment(name)
    assert resolve_profile(experiment, "paper").data.val_fraction == 0.0
    for profile in ("classroom", "smoke"):
        assert resolve_profile(experiment, profile).data.val_fraction == 0.1
    assert "val_fraction = 0" in experiment.notes
    assert "last epoch" in experiment.notes


def test_an_experiment_file_can_ask_the_paper_profile_for_a_validation_split(tmp_path):
    text = """
title = "t"
source = "s"
reported = "r"

[recipe]
dataset = "fmnist-mini"
epochs = 2

[methods.ce]

[[pairs]]
student = "resnet8"

[profiles.paper]
val_fraction = 0.1
"""
    path = tmp_path / "split.toml"
    path.write_text(text)
    assert resolve_profile(load_experiment(path), "paper").data.val_fraction == 0.1
    path.write_text(text.replace("[profiles.paper]\nval_fraction = 0.1\n", ""))
    assert resolve_profile(load_experiment(path), "paper").data.val_fraction == 0.0


# 2. KD as CE + alpha * KD (DSKD) beside (1 - alpha) CE + alpha * KD (Hinton, DIH).


@pytest.mark.parametrize("tau, alpha", [(4.0, 1.0), (5.0, 0.1), (2.0, 0.5)])
def test_kd_weightings_match_a_hand_computation(tau, alpha):
    student, teacher, labels = _fixed()
    kd = tau**2 * _hand_kl(student, teacher, tau).mean()
    ce = _hand_ce(student, labels)
    convex = kd_student_loss(student, teacher, labels, tau, alpha)
    summed = kd_student_loss(student, teacher, labels, tau, alpha, weighting="sum")
    assert sum(convex.values()).item() == pytest.approx((alpha * kd + (1 - alpha) * ce).item())
    assert sum(summed.values()).item() == pytest.approx((ce + alpha * kd).item())
    # Convex at 0.5 is half the summed loss at 1: not the same run under weight decay.
    half = kd_student_loss(student, teacher, labels, tau, 0.5)
    full = kd_student_loss(student, teacher, labels, tau, 1.0, weighting="sum")
    assert sum(half.values()).item() == pytest.approx(0.5 * sum(full.values()).item())
    with pytest.raises(ConfigError, match="weighting"):
        kd_student_loss(student, teacher, labels, tau, alpha, weighting="product")


def test_the_kd_method_sums_ce_and_kd_when_asked(tiny):
    torch.manual_seed(0)
    student, teacher = build_model("resnet8", 10, 1), load_teacher("resnet14")
    context = BuildContext(student, teacher, tiny, TrainConfig(epochs=1))
    options = resolve_options("kd", {"tau": 4.0, "alpha": 1.0, "kd_weighting": "sum"})
    kd = get_method("kd").build(context, options).eval()
    assert resolve_options("kd", {}).kd_weighting == "convex"  # the documented default
    images = (tiny.train.images[:8].float() / 255 - 0.286) / 0.353
    labels = tiny.train.labels[:8]
    logits, terms = kd(images, labels)
    with torch.no_grad():
        t_logits = teacher.model(images)
    expected = _hand_ce(logits, labels) + 16.0 * _hand_kl(logits, t_logits, 4.0).mean()
    assert sum(terms.values()).item() == pytest.approx(expected.item(), rel=1e-5)


# 3. DSKD's rows use the paper's alpha = 1, tau = 4 for every method.


def test_dskd_table1_runs_every_method_at_the_papers_setting():
    experiment = load_experiment("dskd-table1")
    for column in ("kd", "byot"):
        options = resolve_options(
            experiment.column(column).method, experiment.column(column).options
        )
        assert (options.tau, options.alpha, options.kd_weighting) == (4.0, 1.0, "sum")
    dskd = resolve_options("dskd", experiment.column("dskd").options)
    assert (dskd.tau, dskd.alpha, dskd.beta) == (4.0, 1.0, 30.0)
    assert 'kd_weighting = "sum"' in experiment.notes
    assert "is not the same run at twice the learning rate" in experiment.notes.replace("\n", " ")
    # the implementation defaults stay as documented options
    byot = resolve_options("byot", {})
    assert (byot.tau, byot.alpha, byot.kd_weighting) == (3.0, 0.1, "convex")
    assert resolve_options("dml", {}).tau == 1.0


def test_byot_summed_weighting_matches_a_hand_computation(tiny):
    images = (tiny.train.images[:8].float() / 255 - 0.286) / 0.353
    labels = tiny.train.labels[:8]
    totals = {}
    for weighting in ("convex", "sum"):
        torch.manual_seed(0)
        context = BuildContext(build_model("resnet8", 10, 1), None, tiny, TrainConfig(epochs=1))
        options = resolve_options("byot", {"tau": 4.0, "alpha": 1.0, "kd_weighting": weighting})
        byot = get_method("byot").build(context, options).eval()
        _, terms = byot(images, labels)
        out = byot.student_exits(images)
        deep = out.logits.detach()
        pooled_deep = out.feature.detach().mean(dim=(2, 3))
        ce = _hand_ce(out.logits, labels) + sum(_hand_ce(z, labels) for z in out.exit_logits)
        kd = sum(16.0 * _hand_kl(z, deep, 4.0).mean() for z in out.exit_logits)
        l2 = sum(((f.mean(dim=(2, 3)) - pooled_deep) ** 2).sum() for f in out.exit_features)
        ce_weight = 1.0 if weighting == "sum" else 0.0
        expected = ce_weight * ce + 1.0 * kd + 1e-6 * l2
        totals[weighting] = sum(terms.values()).item()
        assert totals[weighting] == pytest.approx(expected.item(), rel=1e-5, abs=1e-5)
    assert totals["sum"] > totals["convex"]  # convex at alpha 1 drops every CE


# 4. DSKD's KD terms with Hinton's tau^2 or as Eq. 1-2 print them.


@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_per_sample_kd_with_and_without_tau_squared(tau):
    student, teacher, _ = _fixed(seed=1)
    hand = _hand_kl(student, teacher, tau)
    assert torch.allclose(per_sample_kd(student, teacher, tau, tau_squared=False), hand, atol=1e-6)
    assert torch.allclose(per_sample_kd(student, teacher, tau), tau**2 * hand, atol=1e-5)


def _dskd(tiny, **options):
    torch.manual_seed(0)
    context = BuildContext(
        build_model("resnet8", 10, 1), load_teacher("resnet14"), tiny, TrainConfig(epochs=1)
    )
    return get_method("dskd").build(context, resolve_options("dskd", options)).eval()


def test_dskd_literal_equation_drops_tau_squared_from_the_kd_terms_only(tiny):
    images = (tiny.train.images[:8].float() / 255 - 0.286) / 0.353
    labels = tiny.train.labels[:8]
    common = {"exits": "layer1", "weighting": "equal", "tau": 4.0, "alpha": 1.0}
    literal = _dskd(tiny, tau_squared=False, **common)
    hinton = _dskd(tiny, tau_squared=True, **common)
    _, lit = literal(images, labels)
    _, hin = hinton(images, labels)
    # Independent: KL as printed, for the last and the one shallow classifier (weight 1).
    out = literal.student_exits(images)
    with torch.no_grad():
        t_logits = literal.teacher(images)
    assert lit["kd_last"].item() == pytest.approx(
        _hand_kl(out.logits, t_logits, 4.0).mean().item(), rel=1e-5
    )
    (z,) = out.exit_logits
    assert lit["kd_shallow"].item() == pytest.approx(
        _hand_kl(z, t_logits, 4.0).mean().item(), rel=1e-5
    )
    for name in ("kd_last", "kd_shallow"):
        assert hin[name].item() == pytest.approx(16.0 * lit[name].item(), rel=1e-5)
    for name in ("ce", "fea_last", "fea_shallow"):
        assert hin[name].item() == pytest.approx(lit[name].item(), rel=1e-6)
    assert resolve_options("dskd", {}).tau_squared is True


@pytest.mark.parametrize("name", ["dskd-table1", "dskd-table2", "dskd-table3"])
def test_dskd_files_say_which_form_their_rows_use(name):
    experiment = load_experiment(name)
    dskd_columns = [c for c in experiment.columns if c.method == "dskd"]
    assert dskd_columns and all(c.options.get("tau_squared") is True for c in dskd_columns)
    for column in dskd_columns:
        options = resolve_options("dskd", column.options)
        assert (options.tau, options.alpha, options.beta) == (4.0, 1.0, 30.0)
    assert "tau_squared" in experiment.notes


# 5. DIH's head non-linearity g: flagged, the paper's form one option away.


def test_heads_default_to_no_nonlinearity_and_relu_is_the_papers_form():
    default = make_head("linear", (4, 2, 2), 3)
    paper = make_head("linear", (4, 2, 2), 3, activation="relu")
    assert not any(isinstance(m, nn.ReLU) for m in default)
    assert isinstance(paper[-1], nn.ReLU)
    assert "departure" in heads_module.__doc__.lower()
    assert "departure" in get_method("dih").__doc__.lower()


@pytest.mark.parametrize("name", [n for n in experiment_names() if n.startswith("dih-")])
def test_dih_files_flag_the_heads_missing_nonlinearity(name):
    experiment = load_experiment(name)
    assert resolve_profile(experiment, "paper").head_options["activation"] == "none"
    assert 'activation = "relu"' in experiment.notes


# 6. FitNets' hint schedule and the papers' epochs.


def test_fitnets_hint_stage_restarts_the_runs_own_schedule():
    recipe = TrainConfig(epochs=200, schedule="multistep", milestones=(60, 120, 180))
    hint = dataclasses.replace(recipe, epochs=40, milestones=())  # what FitNets.build runs
    assert hint.schedule == "multistep" and hint.resolved_milestones() == [12, 24, 36]
    assert "cosine schedule" not in FitNets.__doc__


def test_published_numbers_name_each_papers_epochs():
    doc = paper_numbers.__doc__
    assert "200 epochs in the DIH" in doc and "240 in the MHKD and DSKD" in doc
    assert "(200 epochs on a GPU)" not in doc


def test_mutual_loss_keeps_tau_one_by_default_and_softens_when_asked():
    student, peer, _ = _fixed(seed=2)
    assert mutual_loss(student, peer).item() == pytest.approx(
        _hand_kl(student, peer, 1.0).mean().item()
    )
    assert mutual_loss(student, peer, 2.0).item() == pytest.approx(
        4.0 * _hand_kl(student, peer, 2.0).mean().item(), rel=1e-6
    )
    assert math.isfinite(mutual_loss(student, peer, 4.0).item())


def test_paper_profile_report_shows_and_pairs_the_last_epoch_only():
    """Without a validation split (the paper profile) the report's table and its paired
    differences use the last epoch; with one, the validation-selected epoch leads."""
    from dihkit.reproduce import load_experiment
    from dihkit.reproduce.plan import resolve_profile
    from dihkit.reproduce.report import markdown

    experiment = load_experiment("dih-table4")
    pair = experiment.pairs[0]
    base = experiment.baseline
    other = next(c.name for c in experiment.columns if c.name != base)
    rows = [
        {
            "kind": "student",
            "pairs": [pair.label],
            "column": column,
            "seed": seed,
            "test_pct_best": best,
            "test_pct_last": last,
        }
        for column, seed, best, last in [
            (base, 0, 50.0, 40.0),
            (base, 1, 52.0, 42.0),
            (other, 0, 51.0, 45.0),
            (other, 1, 53.0, 46.0),
        ]
    ]
    paper = markdown(experiment, resolve_profile(experiment, "paper"), rows, seeds=2)
    assert "validation-selected" not in paper
    assert "at the last epoch (whole training set, no validation split)" in paper
    # last-epoch differences: 45 - 40 = 5, 46 - 42 = 4 -> +4.50 (2/2 ahead)
    assert "+4.50 +/- 0.71 (2/2 ahead)" in paper
    classroom = markdown(experiment, resolve_profile(experiment, "classroom"), rows, seeds=2)
    assert "validation-selected epoch" in classroom
    # validation-selected differences: 51 - 50 = 1, 53 - 52 = 1 -> +1.00
    assert "+1.00 +/- 0.00 (2/2 ahead)" in classroom
