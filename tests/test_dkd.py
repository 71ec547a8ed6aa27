"""DKD and logit standardisation: TCKD / NCKD against a hand computation, the exact split of KD,
the warm-up, the z-score's invariances, kd and dih unchanged with the switch off, bad options,
and one-epoch runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dihkit.cli.main import build_parser
from dihkit.cli.method_flags import options_for
from dihkit.errors import ConfigError
from dihkit.losses import dih_student_loss, kd_student_loss
from dihkit.losses.decoupled import dkd_loss, nckd_loss, split_kd, tckd_loss, warmup_factor
from dihkit.losses.standardised import standardise
from dihkit.methods import resolve_options
from dihkit.methods.dih import IntermediateHeads
from dihkit.methods.dkd import DecoupledKD, default_warmup
from dihkit.methods.kd import KnowledgeDistillation
from dihkit.runs.pipeline import distill
from dihkit.training.config import TrainConfig

STUDENT = [[1.0, 2.0, 0.5, -1.0], [0.0, -0.5, 3.0, 1.0], [2.5, 0.1, -0.3, 0.7]]
TEACHER = [[0.5, 3.0, -1.0, 0.0], [1.0, 0.0, 4.0, -2.0], [0.2, 1.5, 0.0, 2.0]]
LABELS = [1, 2, 0]


def _softmax(row: list[float], tau: float) -> list[float]:
    e = [math.exp(v / tau) for v in row]
    return [v / sum(e) for v in e]


def _hand_parts(s_row, t_row, t, tau):
    """TCKD, NCKD (both without tau^2) and 1 - p_t^T for one sample, written out."""
    ps, pt = _softmax(s_row, tau), _softmax(t_row, tau)
    bs, bt = [ps[t], 1 - ps[t]], [pt[t], 1 - pt[t]]
    tckd = sum(q * math.log(q / p) for q, p in zip(bt, bs, strict=True))
    others = [i for i in range(len(s_row)) if i != t]
    hs = [ps[i] / (1 - ps[t]) for i in others]
    ht = [pt[i] / (1 - pt[t]) for i in others]
    nckd = sum(q * math.log(q / p) for q, p in zip(ht, hs, strict=True))
    return tckd, nckd, 1 - pt[t]


@pytest.mark.parametrize("tau", [1.0, 2.0, 4.0])
def test_tckd_and_nckd_match_a_hand_computation(tau):
    student, teacher, labels = torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS)
    parts = split_kd(student, teacher, labels, tau)
    hand = [_hand_parts(s, t, y, tau) for s, t, y in zip(STUDENT, TEACHER, LABELS, strict=True)]
    for n, (tckd, nckd, nontarget) in enumerate(hand):
        assert parts.tckd[n].item() == pytest.approx(tau**2 * tckd, rel=1e-5, abs=1e-7)
        assert parts.nckd[n].item() == pytest.approx(tau**2 * nckd, rel=1e-5, abs=1e-7)
        assert parts.nontarget[n].item() == pytest.approx(nontarget, rel=1e-6)
    mean_tckd = tau**2 * np.mean([h[0] for h in hand])
    mean_nckd = tau**2 * np.mean([h[1] for h in hand])
    assert tckd_loss(student, teacher, labels, tau).item() == pytest.approx(mean_tckd, rel=1e-5)
    assert nckd_loss(student, teacher, labels, tau).item() == pytest.approx(mean_nckd, rel=1e-5)
    terms = dkd_loss(student, teacher, labels, alpha=0.5, beta=3.0, tau=tau)
    assert set(terms) == {"tckd", "nckd"}
    assert terms["tckd"].item() == pytest.approx(0.5 * mean_tckd, rel=1e-5)
    assert terms["nckd"].item() == pytest.approx(3.0 * mean_nckd, rel=1e-5)
    bare = split_kd(student, teacher, labels, tau, tau_squared=False)
    assert torch.allclose(bare.tckd * tau**2, parts.tckd) and torch.allclose(
        bare.nckd * tau**2, parts.nckd
    )


@pytest.mark.parametrize(("scale", "tau"), [(1.0, 4.0), (3.0, 1.0), (10.0, 2.0)])
def test_kd_is_tckd_plus_the_teachers_nontarget_mass_times_nckd(scale, tau):
    g = torch.Generator().manual_seed(int(scale * 10 + tau))
    student = torch.randn(16, 10, generator=g) * scale
    teacher = torch.randn(16, 10, generator=g) * scale
    labels = torch.randint(0, 10, (16,), generator=g)
    # KD per sample, independently: tau^2 sum_i p_i (log p_i - log q_i), written out in float64
    s, t = student.double() / tau, teacher.double() / tau
    log_q = s - torch.log(torch.exp(s).sum(1, keepdim=True))
    log_p = t - torch.log(torch.exp(t).sum(1, keepdim=True))
    kd = tau**2 * (log_p.exp() * (log_p - log_q)).sum(1)
    parts = split_kd(student, teacher, labels, tau)
    assert torch.allclose(parts.kd.double(), kd, rtol=1e-4, atol=1e-5)
    assert torch.allclose(parts.tckd + parts.nontarget * parts.nckd, parts.kd)
    # both parts are KL divergences, so KD's split is a sum of two non-negative terms
    assert (parts.tckd >= -1e-6).all() and (parts.nckd >= -1e-6).all()


def test_the_masked_log_softmax_agrees_with_the_authors_minus_1000_and_stays_finite():
    g = torch.Generator().manual_seed(1)
    student, teacher = torch.randn(8, 6, generator=g) * 2, torch.randn(8, 6, generator=g) * 2
    labels = torch.randint(0, 6, (8,), generator=g)
    tau = 4.0
    gt = F.one_hot(labels, 6).float()
    q = F.softmax(teacher / tau - 1000.0 * gt, dim=1)
    log_p = F.log_softmax(student / tau - 1000.0 * gt, dim=1)
    authors = tau**2 * (q * (q.clamp_min(1e-30).log() - log_p)).sum(1)
    assert torch.allclose(split_kd(student, teacher, labels, tau).nckd, authors, atol=1e-5)
    # Confident logits at a low temperature: log(1 - p_t) underflows in a naive computation.
    sharp = torch.tensor([[80.0, 0.0, -5.0], [0.0, 120.0, 1.0]], requires_grad=True)
    parts = split_kd(
        sharp, torch.tensor([[60.0, 2.0, 1.0], [3.0, 90.0, 0.0]]), torch.tensor([0, 1]), 1.0
    )
    total = (parts.tckd + parts.nckd).sum()
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(sharp.grad).all()


def test_warmup_factor_is_the_authors_linear_ramp_over_1_based_epochs():
    assert [warmup_factor(e, 20) for e in (1, 10, 19, 20, 21, 240)] == [
        0.05, 0.5, 0.95, 1.0, 1.0, 1.0,
    ]  # fmt: skip
    assert warmup_factor(1, 0) == 1.0
    assert [default_warmup(e) for e in (240, 120, 15, 1)] == [20, 10, 1, 1]
    with pytest.raises(ConfigError, match="warm-up"):
        warmup_factor(0, 20)


class Fixed(nn.Module):
    """A 'network' that returns given logits whatever the images (a frozen teacher or student)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = nn.Parameter(logits.clone())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits


def _batch():
    return torch.zeros(3, 1, 4, 4), torch.tensor(LABELS)


def test_the_dkd_term_scales_with_the_epochs_warmup_and_ce_does_not():
    images, labels = _batch()
    dkd = DecoupledKD(Fixed(torch.tensor(STUDENT)), Fixed(torch.tensor(TEACHER)), 4.0, 1.0, 8.0, 4)
    _, untold = dkd(images, labels)  # no set_epoch yet: the first epoch's weight
    weights = {}
    for epoch in (0, 1, 3, 9):  # 0-based, as the trainer calls it
        dkd.set_epoch(epoch)
        weights[epoch] = dkd(images, labels)[1]
    full = dkd_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), labels, 1.0, 8.0, 4.0)
    for epoch, factor in ((0, 0.25), (1, 0.5), (3, 1.0), (9, 1.0)):
        terms = weights[epoch]
        assert set(terms) == {"ce", "tckd", "nckd"}
        assert terms["tckd"].item() == pytest.approx(factor * full["tckd"].item(), rel=1e-6)
        assert terms["nckd"].item() == pytest.approx(factor * full["nckd"].item(), rel=1e-6)
        assert terms["ce"].item() == pytest.approx(
            F.cross_entropy(torch.tensor(STUDENT), labels).item()
        )
    assert untold["nckd"].item() == pytest.approx(weights[0]["nckd"].item())


def test_standardise_is_a_per_sample_z_score_invariant_to_shift_and_scale():
    logits = torch.tensor(STUDENT)
    z = standardise(logits)
    for row, out in zip(STUDENT, z, strict=True):
        mean = sum(row) / len(row)
        std = math.sqrt(sum((v - mean) ** 2 for v in row) / len(row))  # 1/C
        assert out.tolist() == pytest.approx([(v - mean) / std for v in row], rel=1e-5)
    bessel = standardise(logits, unbiased=True)
    assert torch.allclose(bessel, z * math.sqrt(3 / 4), atol=1e-6)
    scale, shift = torch.tensor([[0.3], [7.0], [2.0]]), torch.tensor([[5.0], [-2.0], [100.0]])
    assert torch.allclose(standardise(logits * scale + shift), z, atol=1e-4)
    flat = torch.ones(2, 5, requires_grad=True)
    standardise(flat).sum().backward()
    assert torch.equal(standardise(flat), torch.zeros(2, 5)) and torch.isfinite(flat.grad).all()


@pytest.mark.parametrize("method", ["kd", "dkd", "dih"])
def test_logit_standardisation_makes_the_distillation_term_shift_and_scale_invariant(method):
    images, labels = _batch()
    student, teacher = torch.tensor(STUDENT), torch.tensor(TEACHER)
    scale, shift = torch.tensor([[0.3], [7.0], [2.0]]), torch.tensor([[5.0], [-2.0], [100.0]])

    def terms(s: torch.Tensor, t: torch.Tensor) -> dict[str, torch.Tensor]:
        if method == "kd":
            distiller = KnowledgeDistillation(Fixed(s), Fixed(t), 2.0, 0.5, logit_standardise=True)
            return distiller(images, labels)[1]
        if method == "dkd":
            distiller = DecoupledKD(Fixed(s), Fixed(t), 2.0, 1.0, 8.0, 0, logit_standardise=True)
            return distiller(images, labels)[1]
        cohort = torch.stack([t, t.flip(1), 0.5 * t])  # [k+1, N, C], given as cached targets
        distiller = IntermediateHeads(Fixed(s), Fixed(t), 2.0, 0.5, logit_standardise=True)
        return distiller(images, labels, cohort)[1]

    base = terms(student, teacher)
    moved = terms(student * scale + shift, teacher * torch.tensor([[2.0], [0.1], [9.0]]) - 3.0)
    for name in base:
        if name == "ce":  # the CE sees the raw student logits
            assert not torch.isclose(base[name], moved[name])
        else:
            assert moved[name].item() == pytest.approx(base[name].item(), rel=1e-4, abs=1e-6)
    # and the term is the plain loss of the z-scored logits, with tau as the base temperature
    if method == "kd":
        zs, zt = standardise(student), standardise(teacher)
        q, log_p = F.softmax(zt / 2.0, 1), F.log_softmax(zs / 2.0, 1)
        expected = 0.5 * 4.0 * (q * (q.log() - log_p)).sum(1).mean()
        assert base["kd"].item() == pytest.approx(expected.item(), rel=1e-5)
        assert base["ce"].item() == pytest.approx(0.5 * F.cross_entropy(student, labels).item())


HEAD = [[2.0, -1.0, 0.5, 0.5], [-3.0, 1.0, 1.0, 2.0], [0.0, 0.3, -0.6, 4.0]]  # a third member


def _zscore(row: list[float]) -> list[float]:
    """A row's z-score written out: (v - mean) / population std (1/C)."""
    mean = sum(row) / len(row)
    std = math.sqrt(sum((v - mean) ** 2 for v in row) / len(row))
    return [(v - mean) / std for v in row]


def _hand_kd(s_row: list[float], t_row: list[float], tau: float) -> float:
    """tau^2 KL(softmax(t / tau) || softmax(s / tau)) for one sample, written out."""
    ps, pt = _softmax(s_row, tau), _softmax(t_row, tau)
    return tau**2 * sum(q * math.log(q / p) for q, p in zip(pt, ps, strict=True))


@pytest.mark.parametrize(("reduction", "tau", "alpha"), [("mean", 2.0, 0.5), ("sum", 3.0, 0.1)])
def test_standardised_dih_is_the_cohort_mean_of_kd_on_z_scored_logits_by_hand(
    reduction, tau, alpha
):
    images, labels = _batch()
    members = [TEACHER, [row[::-1] for row in TEACHER], HEAD]  # [k+1, N, C]
    cohort = torch.tensor(members)
    dih = IntermediateHeads(
        Fixed(torch.tensor(STUDENT)), Fixed(torch.tensor(TEACHER)), tau, alpha, reduction, True
    )
    terms = dih(images, labels, cohort)[1]
    assert set(terms) == {"dih", "ce"}
    # Eq. 4 on z-scores: each member's KD (batch mean over samples), averaged over the members
    per_member = [
        np.mean([_hand_kd(_zscore(s), _zscore(t), tau) for s, t in zip(STUDENT, m, strict=True)])
        for m in members
    ]
    factor = len(members) if reduction == "sum" else 1  # the authors' sum: (k+1) x Eq. 5
    expected = factor * alpha * np.mean(per_member)
    assert terms["dih"].item() == pytest.approx(expected, rel=1e-5)
    # the CE is on the raw student logits, written out: -log softmax(s)_y averaged
    ce = np.mean([-math.log(_softmax(s, 1.0)[y]) for s, y in zip(STUDENT, LABELS, strict=True)])
    assert terms["ce"].item() == pytest.approx(factor * (1 - alpha) * ce, rel=1e-5)
    # and the switch matters: the raw logits give another value
    raw = [np.mean([_hand_kd(s, t, tau) for s, t in zip(STUDENT, m, strict=True)]) for m in members]
    assert abs(factor * alpha * np.mean(raw) - expected) > 1e-3 * expected


@pytest.mark.parametrize(("tau", "alpha", "beta"), [(2.0, 1.0, 8.0), (4.0, 0.5, 3.0)])
def test_standardised_dkd_is_tckd_and_nckd_of_z_scored_logits_by_hand(tau, alpha, beta):
    images, labels = _batch()
    dkd = DecoupledKD(
        Fixed(torch.tensor(STUDENT)), Fixed(torch.tensor(TEACHER)), tau, alpha, beta, 4,
        logit_standardise=True,
    )  # fmt: skip
    dkd.set_epoch(1)  # the second epoch of a 4-epoch warm-up: weight 2/4
    terms = dkd(images, labels)[1]
    assert set(terms) == {"ce", "tckd", "nckd"}
    hand = [
        _hand_parts(_zscore(s), _zscore(t), y, tau)
        for s, t, y in zip(STUDENT, TEACHER, LABELS, strict=True)
    ]
    tckd = 0.5 * alpha * tau**2 * np.mean([h[0] for h in hand])
    nckd = 0.5 * beta * tau**2 * np.mean([h[1] for h in hand])
    assert terms["tckd"].item() == pytest.approx(tckd, rel=1e-5)
    assert terms["nckd"].item() == pytest.approx(nckd, rel=1e-5)
    ce = np.mean([-math.log(_softmax(s, 1.0)[y]) for s, y in zip(STUDENT, LABELS, strict=True)])
    assert terms["ce"].item() == pytest.approx(ce, rel=1e-5)  # raw logits, weight 1
    raw = [_hand_parts(s, t, y, tau) for s, t, y in zip(STUDENT, TEACHER, LABELS, strict=True)]
    assert abs(0.5 * beta * tau**2 * np.mean([h[1] for h in raw]) - nckd) > 1e-3 * nckd


def test_with_the_switch_off_kd_and_dih_give_exactly_the_old_loss_and_identity():
    images, labels = _batch()
    student, teacher = torch.tensor(STUDENT), torch.tensor(TEACHER)
    for weighting in ("convex", "sum"):
        kd = KnowledgeDistillation(Fixed(student), Fixed(teacher), 5.0, 0.1, weighting)
        new = kd(images, labels)[1]
        old = kd_student_loss(student, teacher, labels, 5.0, 0.1, weighting)
        assert new.keys() == old.keys() and all(torch.equal(new[k], old[k]) for k in old)
    cohort = torch.stack([teacher, teacher.flip(1)])
    for reduction in ("mean", "sum"):
        dih = IntermediateHeads(Fixed(student), Fixed(teacher), 5.0, 0.1, reduction)
        new = dih(images, labels, cohort)[1]
        old = dih_student_loss(student, cohort, labels, 5.0, 0.1)
        factor = 2 if reduction == "sum" else 1
        assert all(torch.equal(new[k], factor * old[k]) for k in old)
    # the switch is recorded only when on: earlier runs keep their identity
    assert resolve_options("kd", {}).as_dict() == {
        "tau": 5.0,
        "alpha": 0.1,
        "kd_weighting": "convex",
    }
    assert "logit_standardise" not in resolve_options("dih", {}).as_dict()
    assert resolve_options("kd", {"logit_standardise": True}).as_dict()["logit_standardise"]
    assert resolve_options(
        "kd", resolve_options("kd", {"logit_standardise": True})
    ).logit_standardise


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"beta": -1.0}, "option beta = -1.0 is out of range"),
        ({"alpha": -0.5}, "option alpha = -0.5 is out of range"),
        ({"tau": 0}, "option tau = 0.0 is out of range"),
        ({"warmup_epochs": -1}, "option warmup_epochs = -1 is out of range"),
        ({"logit_standardise": "yes"}, "option logit_standardise = 'yes' must be true or false"),
    ],
)
def test_bad_dkd_options_are_config_errors_naming_the_value(values, fragment):
    with pytest.raises(ConfigError, match="method 'dkd'") as caught:
        resolve_options("dkd", values)
    assert fragment in str(caught.value)
    with pytest.raises(ConfigError, match="tau"):
        split_kd(torch.zeros(1, 3), torch.zeros(1, 3), torch.tensor([0]), tau=0.0)


def test_dkd_paper_defaults():
    options = resolve_options("dkd", {})
    assert (options.tau, options.alpha, options.beta) == (4.0, 1.0, 8.0)
    assert options.warmup_epochs is None and options.logit_standardise is False


def test_one_epoch_dkd_run_from_a_bundled_teachers_cached_targets(tiny, tmp_path):
    config = TrainConfig(epochs=1, batch_size=64, device="cpu", cached_targets=1)
    distiller, result = distill(
        "dkd", "resnet14", "resnet8", tiny, config, {"beta": 2.0},
        out_dir=tmp_path / "run", progress=False, cache_root=tmp_path / "cache",
    )  # fmt: skip
    (record,) = result.history
    assert set(record.losses) == {"ce", "tckd", "nckd"}
    assert all(math.isfinite(v) for v in record.losses.values())
    assert distiller.warmup_epochs == 1 and distiller.warmup_weight == 1.0  # a 1-epoch run
    assert any((tmp_path / "cache").rglob("*")) and (tmp_path / "run" / "best.pt").is_file()


def test_one_epoch_kd_run_with_the_logit_standardise_flag(tiny, tmp_path):
    argv = ["distill", "--method", "kd", "--teacher", "resnet14", "--student", "resnet8"]
    argv += ["--epochs", "1", "--logit-standardise", "--tau", "2", "--out", str(tmp_path)]
    args = build_parser().parse_args(argv)
    options = options_for([args.method], args)["kd"]
    assert options == {"logit_standardise": True, "tau": 2.0}
    config = TrainConfig(epochs=1, batch_size=64, device="cpu")
    distill("kd", "resnet14", "resnet8", tiny, config, options, out_dir=tmp_path, progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    recorded = summary["identity"]["options"]
    assert recorded == {
        "tau": 2.0,
        "alpha": 0.1,
        "kd_weighting": "convex",
        "logit_standardise": True,
    }
    history = json.loads((tmp_path / "history.json").read_text())
    assert set(history[0]["losses"]) == {"kd", "ce"}
    assert all(math.isfinite(v) for v in history[0]["losses"].values())


def test_one_epoch_dih_run_with_the_logit_standardise_flag(tiny, tmp_path):
    argv = ["distill", "--method", "dih", "--teacher", "resnet14", "--student", "resnet8"]
    argv += ["--epochs", "1", "--logit-standardise", "--tau", "2", "--out", str(tmp_path)]
    args = build_parser().parse_args(argv)
    options = options_for([args.method], args)["dih"]
    assert options == {"logit_standardise": True, "tau": 2.0}
    config = TrainConfig(epochs=1, batch_size=64, device="cpu")
    distiller, result = distill(
        "dih", "resnet14", "resnet8", tiny, config, options, out_dir=tmp_path, progress=False
    )
    assert distiller.logit_standardise and len(distiller.cohort.heads) > 0  # a real cohort
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["identity"]["options"] == {
        "tau": 2.0,
        "alpha": 0.1,
        "dih_reduction": "mean",
        "logit_standardise": True,
    }
    history = json.loads((tmp_path / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1]
    assert set(history[0]["losses"]) == {"dih", "ce"}
    assert all(math.isfinite(v) for v in history[0]["losses"].values())
    (record,) = result.history
    values = [record.train_loss, record.train_acc, record.val_acc]
    values += [result.test_acc_best, result.test_acc_last, summary["test_acc_best"]]
    assert all(math.isfinite(v) for v in values)
    assert all(0 <= v <= 1 for v in values[1:]) and (tmp_path / "best.pt").is_file()
