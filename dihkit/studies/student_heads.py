"""Helpers behind the student-side-heads notebooks (05 MHKD, 06 DSKD): what the extra heads and
shallow classifiers are and what they cost, named loss terms over training, and ablation tables
beside a paper's numbers.

Nothing here trains: :func:`build_distiller` builds a method's untrained distiller (as a run
builds it, with :func:`dihkit.runs.pipeline.build_distiller`) only to look at its modules; runs
come from :func:`dihkit.runs.results.run_grid`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dihkit.data.datasets import Dataset, dataset_spec
from dihkit.errors import ConfigError
from dihkit.methods import Distiller
from dihkit.methods.base import parse_positions
from dihkit.models import build_model, count_parameters
from dihkit.nn.heads import feature_shapes
from dihkit.runs import pipeline
from dihkit.runs.profiles import Settings, check_range, reject_text
from dihkit.studies.seeds import mean_std

# The MHKD paper's heads have 256 kernels; at that width a resnet8 student's three heads cost
# about 70 times its own forward FLOPs (notebook 05 computes it with
# reading_supervision.mhkd_head_cost), so the CPU profiles use 32 (about 1.7 times).
PAPER_HEAD_WIDTH = 256
CPU_HEAD_WIDTH = 32


def default_head_width(profile: str) -> int:
    """MHKD head width for a profile: the paper's 256 in ``paper``, 32 in the CPU profiles."""
    return PAPER_HEAD_WIDTH if profile == "paper" else CPU_HEAD_WIDTH


def profile_default(value: Any, settings: Any, default: Any, smoke: Any) -> Any:
    """A notebook parameter left at ``None``: ``smoke`` in the smoke profile (a smaller grid that
    keeps CI fast), else ``default``; a given value is returned as it is."""
    if value is not None:
        return value
    return smoke if settings.profile == "smoke" else default


def ablation_settings(settings: Any, seeds: Any = None) -> Any:
    """``settings`` with an ablation's seeds: ``seeds`` (an int or a list, checked like the
    profile's), else the first seed only on the CPU profiles and every seed in ``paper``."""
    if seeds is None:
        chosen = tuple(settings.seeds if settings.profile == "paper" else settings.seeds[:1])
    else:
        chosen = (seeds,) if isinstance(seeds, int) else tuple(seeds)
        if not chosen:
            raise ConfigError("parameter ablation_seeds = [] must list at least one seed")
        for seed in chosen:
            check_range("ablation_seeds", seed, 0, integer=True)
        if len(set(chosen)) != len(chosen):
            raise ConfigError(f"parameter ablation_seeds = {list(chosen)!r} repeats a seed")
    return dataclasses.replace(settings, seeds=chosen)


def check_positions(
    name: str, values: Sequence[str], settings: Any, *, units: int | None = None, shallow=False
) -> list[str]:
    """Check a notebook's list of head or exit choices (each an ``mhkd --heads`` or ``dskd
    --exits`` value such as ``"1"``, ``"layer2"``, ``"all"``) against the student's stages: the
    first ``units`` of them, or all but the last with ``shallow``. Returns the list; a bad entry is
    a :class:`ConfigError` naming parameter ``name`` and the valid stages."""
    reject_text(name, values, "a list", '["1", "2"]')
    if not isinstance(values, Sequence):
        raise ConfigError(f"parameter {name} = {values!r} must be a list of strings such as ['1']")
    spec = dataset_spec(settings.dataset)
    stages = tuple(build_model(settings.student, spec.num_classes, spec.in_channels).stage_names)
    available = stages[:-1] if shallow else stages[: units or len(stages)]
    none = "'none', " if shallow else ""
    choices = f"'all', {none}1..{len(available)} or {', '.join(available)}"
    for value in values:
        try:
            parse_positions(str(value), available, "?", "?", allow_none=shallow)
        except ConfigError:
            raise ConfigError(
                f"parameter {name}: {value!r} is not valid for {settings.student}; each entry is "
                f"{choices} (comma-separated for several)"
            ) from None
        if not isinstance(value, str):
            raise ConfigError(f"parameter {name}: {value!r} must be a string such as '1'")
    return list(values)


# DSKD Table 3's ablations as dskd options, with the key of each in dihkit.studies.paper_numbers.
DSKD_ABLATIONS: dict[str, dict[str, Any]] = {
    "no_fea": {"feature_loss": False},
    "equal": {"weighting": "equal"},
    "both_off": {"feature_loss": False, "weighting": "equal"},
}
DSKD_ABLATION_LABELS = {
    "no_fea": "dskd without L_Fea",
    "equal": "dskd, equal weights",
    "both_off": "dskd without L_Fea, equal weights",
}


def build_distiller(
    method: str, settings: Settings, options: Mapping[str, Any], data: Dataset
) -> Distiller:
    """The untrained distiller of ``method`` for ``settings`` (teacher, student, first seed) and
    ``data``, built exactly as a run builds it (:func:`dihkit.runs.pipeline.build_distiller`),
    to inspect its modules and parameters."""
    distiller, _ = pipeline.build_distiller(
        method, settings.teacher, settings.student, data, settings.config(), options
    )
    return distiller


def mhkd_head_pairs(distiller: Any, data: Any) -> list[dict[str, Any]]:
    """One row per MHKD head pair: ``unit`` (1-based), the ``teacher_position`` and
    ``student_position`` it taps, the activation shapes there (C, H, W) and each head's
    parameters."""
    cohort, exits = distiller.teacher_cohort, distiller.student_exits
    shape = data.spec.input_shape
    teacher_shapes = feature_shapes(distiller.teacher, cohort.positions, shape)
    student_shapes = feature_shapes(exits.student, exits.positions, shape)
    units = [exits.student.stage_names.index(p) + 1 for p in exits.positions]
    return [
        {
            "unit": unit,
            "teacher_position": t_pos,
            "teacher_shape": list(t_shape),
            "teacher_head_params": count_parameters(t_head),
            "student_position": s_pos,
            "student_shape": list(s_shape),
            "student_head_params": count_parameters(s_head),
        }
        for unit, t_pos, t_shape, t_head, s_pos, s_shape, s_head in zip(
            units,
            cohort.positions,
            teacher_shapes,
            cohort.heads,
            exits.positions,
            student_shapes,
            exits.exits,
            strict=True,
        )
    ]


def head_pairs_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """A markdown table of :func:`mhkd_head_pairs`."""

    def shape(values: Sequence[int]) -> str:
        return " x ".join(str(v) for v in values)

    lines = [
        "| unit | teacher tap | activation | teacher head params "
        "| student tap | activation | student head params |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['unit']} | {r['teacher_position']} | {shape(r['teacher_shape'])} | "
            f"{r['teacher_head_params']:,} | {r['student_position']} | "
            f"{shape(r['student_shape'])} | {r['student_head_params']:,} |"
        )
    return "\n".join(lines)


def shallow_classifier_rows(distiller: Any) -> list[dict[str, Any]]:
    """One row per shallow classifier of a student with exits (DSKD, DSN, BYOT): the stage it
    ``position``-s after, the main-branch modules it ``copies`` (fresh weights), its parameters
    (copies plus pooling and a new fully connected layer) and, for DSKD, the parameters of its
    feature projection ``r``."""
    exits = distiller.student_exits
    layout = list(exits.student.layout)
    projections = getattr(distiller, "projections", None)
    rows = []
    for j, (position, branch) in enumerate(zip(exits.positions, exits.exits, strict=True)):
        rows.append(
            {
                "classifier": f"c{j + 1}",
                "position": position,
                "copies": layout[layout.index(position) + 1 :],
                "params": count_parameters(branch),
                "projection_params": count_parameters(projections[j]) if projections else 0,
            }
        )
    return rows


def shallow_classifiers_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """A markdown table of :func:`shallow_classifier_rows`."""
    with_r = any(r["projection_params"] for r in rows)
    lines = [
        "| classifier | after | built from fresh copies of | parameters |"
        + (" projection r |" if with_r else ""),
        "|---|---|---|---|" + ("---|" if with_r else ""),
    ]
    for r in rows:
        lines.append(
            f"| {r['classifier']} | {r['position']} | {', '.join(r['copies'])} + pool + fc | "
            f"{r['params']:,} |" + (f" {r['projection_params']:,} |" if with_r else "")
        )
    return "\n".join(lines)


def parameter_budget(distiller: Any, settings: Any) -> dict[str, Any]:
    """What a distiller trains besides the student, and what it exports: ``plain`` (the student
    built by :func:`dihkit.models.build_model`), ``exported`` (the model a run checkpoints and
    deploys), ``extras`` (``{name: params}`` of every trainable module dropped at export) and
    ``export_is_plain`` (same parameter count and state-dict keys as the plain model)."""
    spec = dataset_spec(settings.dataset)
    plain = build_model(settings.student, spec.num_classes, spec.in_channels)
    exported = distiller.student_exits.export()
    extras = {name: count_parameters(module) for name, module in distiller.extra_modules().items()}
    return {
        "plain": count_parameters(plain),
        "exported": count_parameters(exported),
        "extras": extras,
        "training_total": count_parameters(exported) + sum(extras.values()),
        "export_is_plain": count_parameters(plain) == count_parameters(exported)
        and list(plain.state_dict()) == list(exported.state_dict()),
    }


def parameter_budget_markdown(budget: Mapping[str, Any]) -> str:
    """A markdown table of :func:`parameter_budget`."""
    lines = ["| module | parameters | kept at export |", "|---|---|---|"]
    lines.append(
        f"| student ({'plain model' if budget['export_is_plain'] else 'modified!'}) | "
        f"{budget['exported']:,} | yes |"
    )
    for name, params in budget["extras"].items():
        lines.append(f"| {name} | {params:,} | no |")
    lines.append(f"| **trained in total** | {budget['training_total']:,} | |")
    return "\n".join(lines)


def term_curves(
    runs: Iterable[Mapping[str, Any]],
    terms: Sequence[str] | Mapping[str, str],
    scale: Mapping[str, float] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """Named loss terms of each epoch (the history's ``losses``), mean and std over ``runs``
    (one group, e.g. the seeds of one method): ``{label: {"epoch", "mean", "std"}}``.

    ``terms`` lists term names, or maps each to the label it gets. A term is divided by
    ``scale[term]`` when given (e.g. to undo a loss weight). Terms no run logged are left out;
    the epochs kept are those every run logged the term in."""
    runs = list(runs)
    labels = dict(terms) if isinstance(terms, Mapping) else {t: t for t in terms}
    scale = scale or {}
    curves = {}
    for term, label in labels.items():
        rows = [_logged(run["history"], term, scale.get(term, 1.0)) for run in runs]
        rows = [r for r in rows if r]
        if not rows:
            continue
        length = min(len(r) for r in rows)
        stats = [mean_std(r[i] for r in rows) for i in range(length)]
        curves[label] = {
            "epoch": list(range(1, length + 1)),
            "mean": [m for m, _ in stats],
            "std": [s for _, s in stats],
        }
    return curves


def _logged(history: Sequence[Mapping[str, Any]], term: str, scale: float) -> list[float]:
    """A term's value per epoch, from the first epoch up to the first one that did not log it."""
    values = []
    for row in history:
        if term not in row.get("losses", {}):
            break
        values.append(row["losses"][term] / scale)
    return values


def ablation_rows(
    summaries: Sequence[Any],
    keys: Mapping[str, str],
    paper: Mapping[str, Sequence[str]],
    reference: str | None = None,
) -> list[dict[str, Any]]:
    """Rows that put an ablation's measured groups beside a paper's published cells.

    ``summaries`` are :class:`dihkit.studies.seeds.GroupSummary` objects; ``keys`` maps a group's
    label to its variant key (e.g. ``"1"`` for "head 1 only"); ``paper`` maps a variant key to
    the paper's cells for it (one per published teacher-student pair). ``reference`` is the label
    the paired differences are measured against (the groups' ``paired`` must already be)."""
    rows = []
    for s in summaries:
        if s.label not in keys:
            continue
        key = keys[s.label]
        rows.append(
            {
                "label": s.label,
                "variant": key,
                "n": s.n,
                "seeds": list(s.seeds),
                "mean": s.mean,
                "std": s.std,
                "paired": {} if s.label == reference else dict(s.paired),
                "paper": list(paper.get(key, ())),
            }
        )
    return rows


def ablation_markdown(
    rows: Sequence[Mapping[str, Any]], paper_columns: Sequence[str], reference: str | None = None
) -> str:
    """A markdown table of :func:`ablation_rows`: ours (fmnist, this run) in percent beside the
    paper's published cells, each paper column headed as the paper's."""
    paired_head = f"paired diff vs {reference} (per seed)" if reference else "paired diff"
    lines = [
        f"| variant | n | ours: test % | {paired_head} | "
        + " | ".join(f"paper: {c}" for c in paper_columns)
        + " |",
        "|---|---|---|---|" + "---|" * len(paper_columns),
    ]
    for r in rows:
        diffs = ", ".join(f"{100 * d:+.2f}" for d in r["paired"].values()) or "-"
        cells = list(r["paper"]) + ["-"] * (len(paper_columns) - len(r["paper"]))
        lines.append(
            f"| {r['label']} | {r['n']} | {100 * r['mean']:.2f} +/- {100 * r['std']:.2f} | "
            f"{diffs} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)
