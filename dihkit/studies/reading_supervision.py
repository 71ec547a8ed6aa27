"""What notebooks 05 (MHKD) and 06 (DSKD) say about their own numbers: paired comparisons with
the kit's seed-noise rule, the "How to read this" paragraphs generated from the measured
summaries, curves and weights (so no sentence can contradict the tables above it), what MHKD's
heads cost at a given width, and the notebooks' opt-in ablation grids.

Nothing here trains; the runs come from :func:`dihkit.runs.results.run_grid`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dihkit.data.datasets import dataset_spec
from dihkit.models import build_model, count_parameters
from dihkit.nn.exits import exit_input_shapes
from dihkit.nn.heads import make_head
from dihkit.nn.taps import default_positions
from dihkit.runs.results import RunSpec, run_label
from dihkit.studies.paired import compare_groups
from dihkit.studies.seeds import mean_std
from dihkit.studies.student_heads import PAPER_HEAD_WIDTH, ablation_markdown

EQUAL_BAND = 0.1  # a sample's weights count as "near equal" within 1/(L-1) +/- this
NEAR_EQUAL_SHARE = 0.9  # at least this share of samples near equal: "behaves like equal weights"
SPREAD_SHARE = 0.5  # below this share: the weights really reweight the samples


def ablation_default(value: Any, settings: Any, full: Any, smoke: Any) -> Any:
    """An opt-in ablation's parameter left at ``None``: ``smoke`` in the smoke profile (a tiny
    grid that keeps the code path tested), ``full`` in ``paper``, none (``[]``) in the other
    profiles (the classroom budget is for the main comparison); a given value as it is."""
    if value is not None:
        return value
    return {"smoke": smoke, "paper": full}.get(settings.profile, [])


def mhkd_teacher_heads(distiller: Any) -> str:
    """``"pretrained"`` when a built MHKD distiller reuses conv heads saved with its teacher
    (frozen: their targets can come from the target cache), else ``"joint"`` (the heads are
    trained in the run, so the run is live)."""
    return "joint" if distiller.train_teacher_heads else "pretrained"


def mhkd_ablation_specs(teacher: str | None, options: Mapping[str, Any], heads: Sequence[str]):
    """MHKD Table 2's runs: one head pair at each of ``heads`` only, then all of them, every run
    with its teacher heads trained jointly (the paper's set-up; saved heads exist only as the full
    set). ``[]`` when ``heads`` is empty (the ablation is off)."""
    if not heads:
        return []
    joint = {**options, "teacher_heads": "joint"}
    singles = [
        RunSpec("mhkd", teacher, {**joint, "heads": h}, label=f"mhkd, head {h} only") for h in heads
    ]
    return [*singles, RunSpec("mhkd", teacher, joint, label="mhkd, all heads")]


def _forward_flops(module: nn.Module, shape: Sequence[int]) -> int:
    module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.zeros(1, *shape))
    return int(counter.get_total_flops())


def mhkd_head_cost(
    student: str, dataset: str, widths: Sequence[int], units: int = 3
) -> dict[str, Any]:
    """Forward FLOPs per image (convolutions and fully connected layers) and parameters of a
    plain ``student`` and of its MHKD student heads (one per each of the first ``units`` stages)
    at each head width: ``{"student_flops", "student_params", "widths": {w: {"flops", "params"}}}``.
    """
    spec = dataset_spec(dataset)
    model = build_model(student, spec.num_classes, spec.in_channels)
    shapes = exit_input_shapes(model, default_positions(model)[:units], spec.input_shape)
    cost: dict[str, Any] = {
        "student": student,
        "dataset": dataset,
        "student_flops": _forward_flops(model, spec.input_shape),
        "student_params": count_parameters(model),
        "widths": {},
    }
    for width in widths:
        heads = [make_head("conv", s, spec.num_classes, width=width) for s in shapes]
        per_unit = [_forward_flops(h, s) for h, s in zip(heads, shapes, strict=True)]
        cost["widths"][int(width)] = {
            "flops": sum(per_unit),
            "unit_flops": per_unit,
            "params": sum(count_parameters(h) for h in heads),
        }
    return cost


def head_cost_markdown(cost: Mapping[str, Any], width: int) -> str:
    """The cost paragraph of notebook 05: the student heads at ``width`` and at the paper's
    width, as multiples of the plain student's forward FLOPs and parameters."""

    def ratios(w: int) -> tuple[float, float]:
        row = cost["widths"][w]
        return row["flops"] / cost["student_flops"], row["params"] / cost["student_params"]

    flops, params = ratios(width)
    text = (
        f"Counted for {cost['student']} on {cost['dataset']} (one forward pass per image, "
        f"convolutions and fully connected layers): the {width}-kernel student heads cost "
        f"{flops:.1f} times the plain student's FLOPs and have {params:.1f} times its parameters"
    )
    if width != PAPER_HEAD_WIDTH:
        paper_flops, paper_params = ratios(PAPER_HEAD_WIDTH)
        text += (
            f"; with the paper's {PAPER_HEAD_WIDTH} kernels they would cost {paper_flops:.0f} "
            f"times its FLOPs and hold {paper_params:.0f} times its parameters"
        )
    units = cost["widths"][width]["unit_flops"]
    top = max(range(len(units)), key=units.__getitem__)
    return text + (
        f". The heads at unit {top + 1} take {100 * units[top] / sum(units):.0f} % of the heads' "
        "FLOPs (the first unit's 3x3 convolutions run at the highest resolution). The teacher's "
        "heads come on top in training; none of it is deployed."
    )


def _label(runs: Sequence[Mapping[str, Any]], name: str) -> str:
    """A group label, or a method name standing for its first group."""
    labels = [run_label(r) for r in runs]
    if name in labels:
        return name
    return next((run_label(r) for r in runs if r["method"] == name), name)


def paired_comparison(runs: Sequence[Mapping[str, Any]], name: str, baseline: str) -> dict:
    """``name`` against ``baseline`` (labels, or method names standing for their first group),
    paired by seed: the per-seed differences, their mean and std, the kit's ``status``
    (``"no shared seed"``, ``"one seed"``, ``"mixed signs"``, ``"within spread"`` or
    ``"consistent"``, the rule of :func:`dihkit.studies.seeds.noise_verdict`) and its sentence."""
    runs = list(runs)
    return compare_groups(runs, _label(runs, name), _label(runs, baseline)).record()


def comparisons(runs: Sequence[Mapping[str, Any]], pairs: Sequence[tuple[str, str]]) -> list:
    """:func:`paired_comparison` for every ``(name, baseline)`` of ``pairs`` (pairs whose groups
    did not run are left out)."""
    labels = {run_label(r) for r in runs} | {r["method"] for r in runs}
    return [paired_comparison(runs, a, b) for a, b in pairs if a in labels and b in labels]


def comparison_sentence(c: Mapping[str, Any]) -> str:
    """One plain sentence on a :func:`paired_comparison`."""
    name, base, n = f"**{c['label']}**", c["baseline"], c["n"]
    if c["status"] == "no shared seed":
        return f"{name} and {base} share no seed: no paired comparison."
    diffs = list(c["paired"].values())
    head = f"{name} vs {base}: {100 * c['mean']:+.2f} points on average"
    if c["status"] == "one seed":
        return head + " on one paired seed: nothing can be said about seed noise."
    if c["status"] == "mixed signs":
        above, below = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
        return head + (
            f", but the seeds disagree on the sign ({above} of {n} above {base}, {below} below): "
            "inside seed noise."
        )
    spread = f"std {100 * c['std']:.2f}"
    if c["status"] == "within spread":
        return head + (
            f", same sign on all {n} seeds but no larger than its spread ({spread}): inside "
            "seed noise."
        )
    side = "above" if c["mean"] > 0 else "below"
    return head + (
        f", {side} {base} on all {n} paired seeds and larger than the spread ({spread}): a "
        f"consistent difference, on {n} seeds only."
    )


def reading_markdown(
    items: Sequence[Mapping[str, Any]], summaries: Sequence[Any], method: str, baseline: str
) -> str:
    """A notebook's closing "How to read this": every paired comparison in one sentence, and
    the training time per run of ``method`` against ``baseline`` (method names or labels)."""
    times = {s.label: s.seconds for s in summaries} | {s.method: s.seconds for s in summaries}
    text = "**How to read this.** The paired comparisons of this notebook:\n\n"
    text += "\n".join(f"- {comparison_sentence(c)}" for c in items)
    if method in times and baseline in times and times[baseline] > 0:
        text += (
            f"\n\nTraining time: {times[method]:.1f} s per {method} run against "
            f"{times[baseline]:.1f} s per {baseline} run ({times[method] / times[baseline]:.1f} "
            "times), extra heads and classifiers included; none of them is deployed."
        )
    return text


def _curve_facts(curve: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    means = list(curve["mean"])
    peak = max(range(len(means)), key=means.__getitem__)
    return {
        "first": means[0],
        "last": means[-1],
        "peak": means[peak],
        "peak_epoch": curve["epoch"][peak],
        "last_epoch": curve["epoch"][-1],
    }


def head_kl_markdown(
    kl_curves: Mapping[str, Mapping[str, Sequence[float]]],
    teacher_curves: Mapping[str, Mapping[str, Sequence[float]]],
    teacher_heads: str,
) -> str:
    """Notebook 05's reading of the per-head KL curves (labels ``head ...``; the final-output
    curve is skipped) and of the teacher heads' CE curves (present only when the teacher heads
    were trained in the run, ``teacher_heads == "joint"``)."""
    heads = {k: _curve_facts(v) for k, v in kl_curves.items() if k.startswith("head")}
    if not heads:
        return "No head KL terms were logged."
    rows = [
        f"{name}: {f['first']:.3f} at epoch 1, peak {f['peak']:.3f} at epoch {f['peak_epoch']}, "
        f"{f['last']:.3f} at epoch {f['last_epoch']}"
        for name, f in heads.items()
    ]
    if all(f["last_epoch"] == 1 for f in heads.values()):
        return f"One epoch logged (mean tau^2 KL {', '.join(rows)}): no trend to read."
    rising = [name for name, f in heads.items() if f["peak"] > f["first"]]
    text = "**How to read this.** Per head, the mean " + "tau^2 KL: " + "; ".join(rows) + ". "
    if rising:
        text += (
            f"The KL rises after epoch 1 at {len(rising)} of {len(heads)} heads: a small KL at "
            "epoch 1 means student head and teacher head still give nearly the same softened "
            "distribution, and the rise is the pair moving apart. "
        )
    else:
        text += "No head's KL rises above its epoch-1 value: the pairs only move closer. "
    if teacher_heads == "joint" and teacher_curves:
        ce = {k: _curve_facts(v) for k, v in teacher_curves.items()}
        falling = all(f["last"] < f["first"] for f in ce.values())
        ce_text = "; ".join(f"{k} {f['first']:.3f} -> {f['last']:.3f}" for k, f in ce.items())
        text += f"The teacher heads were trained in the run; their CE went {ce_text}. "
        if falling and rising:
            text += (
                "While they learned the labels their targets sharpened away from the near-"
                "uniform output both heads of a pair start with, and the student heads trailed "
                "behind: that is the rise. "
            )
        text += (
            "A small KL says the student head copies its teacher head, not that the teacher head "
            "is good: a shallow teacher head that stays at a high CE is a weak, noisy target."
        )
    else:
        text += (
            "The teacher heads are the teacher's pretrained conv heads, frozen "
            '(`teacher_heads="pretrained"`): they are not trained here, so no teacher-head CE '
            "curve exists, and their targets are the same at every epoch. "
        )
        if rising:
            text += (
                "A rise therefore comes from the student heads moving away from fixed targets "
                "(their CE term pulls them towards the labels as well), not from moving targets."
            )
    return text


def ablation_reading_markdown(
    rows: Sequence[Mapping[str, Any]],
    reference: str,
    epochs: int,
    *,
    parameter: str,
    example: str,
) -> str:
    """The reading of an ablation (:func:`ablation_rows`, paired against ``reference``): each
    variant's mean paired difference, whether it is consistent over its seeds (the rule of
    :func:`dihkit.studies.seeds.noise_verdict`), or how to enable the ablation when it did not
    run."""
    variants = [r for r in rows if r["label"] != reference]
    if not variants:
        return _not_run(parameter, example)
    seeds = sorted({s for r in variants for s in r["seeds"]})
    parts = []
    for r in variants:
        diffs = list(r["paired"].values())
        if not diffs:
            parts.append(f"{r['label']} shares no seed with {reference}")
            continue
        mean, std = mean_std(diffs)
        same = len(diffs) > 1 and (all(d > 0 for d in diffs) or all(d < 0 for d in diffs))
        verdict = "consistent over its seeds" if same and abs(mean) > std else "inside seed noise"
        if len(diffs) < 2:
            verdict = "one seed: no verdict"
        parts.append(f"{r['label']} {100 * mean:+.2f} points ({verdict})")
    text = (
        f"Here, on {len(seeds)} seed(s) of a {epochs}-epoch run, against {reference}: "
        + "; ".join(parts)
        + ". "
    )
    if len(seeds) < 2:
        text += "With one seed a row can land on either side of the reference by seed noise alone. "
    return text + "Add seeds (`ablation_seeds`) before reading an order into the rows."


def weight_spread(records: Mapping[int, Mapping[str, torch.Tensor]], name: str) -> dict:
    """How close DSKD's per-sample weights ``name`` stay to equal weighting ``1/(L-1)``, at the
    first and the last recorded epoch: the share of samples whose every weight lies within
    ``EQUAL_BAND`` of it, and the first classifier's median and 10-90 % range."""
    epochs = [e for e in sorted(records) if name in records[e]]
    result: dict[str, Any] = {"name": name, "band": EQUAL_BAND, "epochs": {}}
    for epoch in dict.fromkeys((epochs[0], epochs[-1])):
        weights = records[epoch][name].float()
        equal = 1.0 / weights.shape[1]
        near = ((weights - equal).abs() <= EQUAL_BAND + 1e-9).all(dim=1)
        q10, q50, q90 = torch.quantile(weights[:, 0], torch.tensor([0.1, 0.5, 0.9])).tolist()
        result["equal"] = equal
        result["epochs"][epoch] = {
            "share_near_equal": near.float().mean().item(),
            "median": q50,
            "q10": q10,
            "q90": q90,
        }
    return result


def share_text(share: float) -> str:
    """A fraction as a percentage that never rounds to 0 or 100 % unless it is exactly that:
    whole percents, one decimal near either end (``0.998`` -> ``"99.8 %"``)."""
    if share in (0.0, 1.0) or 0.01 <= share <= 0.99:
        return f"{100 * share:.0f} %"
    return f"{100 * share:.1f} %"


def weights_markdown(spreads: Sequence[Mapping[str, Any]], classifier: str) -> str:
    """Notebook 06's reading of :func:`weight_spread` (one per kind of weight): whether the
    adaptive weights stay near equal weighting and what that means."""
    parts, last_shares = [], []
    for s in spreads:
        low, high = s["equal"] - s["band"], s["equal"] + s["band"]
        epochs = list(s["epochs"])
        last = s["epochs"][epochs[-1]]
        last_shares.append(last["share_near_equal"])
        first = s["epochs"][epochs[0]]["share_near_equal"]
        before = f" ({share_text(first)} at epoch {epochs[0]})" if len(epochs) > 1 else ""
        kind = "W_KD" if s["name"] == "kd_weights" else "W_Fea"
        parts.append(
            f"{kind}: {share_text(last['share_near_equal'])} of the samples have every weight "
            f"within {low:.2f}-{high:.2f} at epoch {epochs[-1]}{before}; {classifier}'s median "
            f"weight {last['median']:.3f}, 10-90 % {last['q10']:.3f}-{last['q90']:.3f}"
        )
    equal = spreads[0]["equal"]
    text = f"**How to read this.** Equal weighting is {equal:.2f}. " + "; ".join(parts) + ". "
    if min(last_shares) >= NEAR_EQUAL_SHARE:
        text += (
            f"At least {100 * NEAR_EQUAL_SHARE:.0f} % of the samples stay near equal: the "
            "adaptive weights barely reweight anything here, so in this regime the adaptive "
            "scheme behaves like equal weights (the Table 3 ablation 'equal weights' changes the "
            "objective only slightly)."
        )
    elif max(last_shares) < SPREAD_SHARE:
        text += (
            f"Fewer than {100 * SPREAD_SHARE:.0f} % of the samples stay near equal: the adaptive "
            "weights do shift each sample's loss towards the classifier further behind."
        )
    else:
        text += (
            "The weights spread somewhat around equal weighting: a mild reweighting, between "
            "equal weights and a strong per-sample shift."
        )
    return text


def _not_run(parameter: str, example: str) -> str:
    return (
        f"**No ablation ran** (`{parameter}` is empty, the default outside the smoke and paper "
        f"profiles); set `{parameter} = {example}` to run it."
    )


def ablation_section_markdown(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, reference: str, **hint: str
) -> str:
    """:func:`ablation_markdown`, or, when only the reference row ran, how to enable the
    ablation (``hint``: ``parameter`` and ``example``, as for :func:`ablation_reading_markdown`)."""
    if len(rows) <= 1:
        return _not_run(hint["parameter"], hint["example"])
    return ablation_markdown(rows, columns, reference=reference)
