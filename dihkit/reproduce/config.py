"""Experiment files: one TOML file per published table, read and validated into an
:class:`Experiment`.

A file declares the paper's recipe (``[recipe]``), how teachers and their heads are trained
(``[teacher]``, ``[heads]``), the table's columns (``[methods.NAME]``: a registered method and its
options), its rows (``[[pairs]]``: teacher, student and the paper's numbers) and what the
``classroom`` and ``smoke`` profiles change (``[profiles.NAME]``). Every key and value is checked
when the file is read; an error names the file and line. See ``configs/README.md``.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dihkit.data.datasets import DATASET_NAMES
from dihkit.errors import ConfigError, DihkitError
from dihkit.methods import get_method, method_names, resolve_options
from dihkit.models import MODEL_NAMES
from dihkit.nn.heads import ACTIVATIONS, HEAD_TYPES
from dihkit.reproduce.toml_lines import line_of
from dihkit.resources import bundled
from dihkit.training.loop import TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG_DIR = bundled("configs")
PROFILES = ("paper", "classroom", "smoke")
TEACHER_COLUMN = "teacher"  # a paper number under this key is the teacher's own accuracy

# TrainConfig fields an experiment may set (seed, device, cache seed come from elsewhere).
TRAIN_KEYS = (
    "epochs",
    "batch_size",
    "lr",
    "momentum",
    "weight_decay",
    "nesterov",
    "schedule",
    "milestones",
    "gamma",
    "augment",
)
DATA_KEYS = ("dataset", "val_fraction", "train_per_class", "teacher_train_per_class")
RUN_KEYS = ("seeds", "cached_targets")
RECIPE_KEYS = DATA_KEYS + RUN_KEYS + TRAIN_KEYS
TEACHER_KEYS = (*TRAIN_KEYS, "seed")
HEAD_KEYS = (*TRAIN_KEYS, "kind", "positions", "activation", "width")
TOP_KEYS = ("title", "source", "reported", "paper_statistic", "notes", "baseline", "recipe")
TOP_KEYS += ("teacher", "heads")
TOP_KEYS += ("methods", "pairs", "profiles")
WHOLE_KEYS = (
    "seeds",
    "epochs",
    "batch_size",
    "width",
    "train_per_class",
    "teacher_train_per_class",
)
PAIR_KEYS = ("teacher", "student", "paper", "recipe", "options", "note")

# What the classroom and smoke profiles change unless the file says otherwise: Fashion-MNIST
# from the kit's embedded subset (the papers' datasets are not needed), fewer images and epochs.
DEFAULT_PROFILES: dict[str, dict[str, Any]] = {
    "paper": {},
    "classroom": {
        "dataset": "fmnist-mini",
        "train_per_class": 100,
        "teacher_train_per_class": 300,
        "seeds": 3,
        "epochs": 15,
        "cached_targets": 4,
        # Deep teachers (ResNet-110) do not train at lr 0.1 in a few hundred steps: 3 epochs of
        # 300 images per class reached 38% at lr 0.05 and 72% at lr 0.02 (cosine).
        "teacher": {"epochs": 8, "lr": 0.02, "schedule": "cosine"},
        "heads": {"epochs": 5},
    },
    "smoke": {
        "dataset": "fmnist-mini",
        "train_per_class": 3,
        "teacher_train_per_class": 5,
        "seeds": 1,
        "epochs": 1,
        "batch_size": 16,
        "teacher": {"epochs": 1, "batch_size": 16},
        "heads": {"epochs": 1, "batch_size": 16},
    },
}


@dataclass(frozen=True)
class Column:
    """One column of the table: a registered method with its options."""

    name: str
    method: str
    options: dict[str, Any]

    @property
    def needs_teacher(self) -> bool:
        return bool(get_method(self.method).requires)

    @property
    def needs_cohort(self) -> bool:
        return "cohort" in get_method(self.method).requires


@dataclass(frozen=True)
class Pair:
    """One row: a teacher-student pair, the paper's numbers for it, and its own changes to the
    recipe (``recipe``) or to a column's options (``options[column]``)."""

    teacher: str | None
    student: str
    paper: dict[str, float]
    recipe: dict[str, Any] = field(default_factory=dict)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.teacher} -> {self.student}" if self.teacher else self.student


@dataclass(frozen=True)
class Experiment:
    """A validated experiment file."""

    name: str
    path: Path
    title: str
    source: str
    reported: str
    notes: str
    baseline: str | None
    paper_statistic: str  # "mean" or "best": what the paper's numbers are over its seeds
    recipe: dict[str, Any]
    teacher: dict[str, Any]
    heads: dict[str, Any]
    columns: tuple[Column, ...]
    pairs: tuple[Pair, ...]
    profiles: dict[str, dict[str, Any]]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def needs_heads(self) -> bool:
        return any(c.needs_cohort for c in self.columns)


def experiment_names(config_dir: Path = CONFIG_DIR) -> list[str]:
    """The experiments shipped in ``configs/`` (file names without ``.toml``)."""
    return sorted(p.stem for p in config_dir.glob("*.toml"))


def experiment_path(name: str | Path, config_dir: Path = CONFIG_DIR) -> Path:
    """``name`` as a path: a shipped experiment's name or a ``.toml`` file."""
    candidate = Path(name)
    if candidate.suffix == ".toml":
        if not candidate.is_file():
            raise ConfigError(f"experiment file {str(candidate)!r} does not exist")
        return candidate
    path = config_dir / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(experiment_names(config_dir)) or "(none)"
        raise ConfigError(
            f"unknown experiment {str(name)!r}; choose one of: {known} (see dihkit reproduce "
            "--list), or pass a path to a .toml file"
        )
    return path


class _Reader:
    """Validation with errors that name the file and the line."""

    def __init__(self, path: Path, text: str) -> None:
        self.path, self.text = path, text

    def fail(self, where: tuple[str | int, ...], message: str) -> ConfigError:
        return ConfigError(f"{self.path}:{line_of(self.text, where)}: {message}")

    def table(self, value: Any, where: tuple[str | int, ...], allowed: tuple[str, ...]) -> dict:
        if not isinstance(value, Mapping):
            raise self.fail(where, f"{'.'.join(map(str, where))} must be a table, got {value!r}")
        for key in value:
            if key not in allowed:
                name = ".".join(map(str, (*where, key)))
                raise self.fail(
                    (*where, key), f"unknown key {name!r}; allowed here: {', '.join(allowed)}"
                )
        return dict(value)

    def text_value(self, value: Any, where: tuple[str | int, ...]) -> str:
        if not isinstance(value, str):
            raise self.fail(where, f"{where[-1]} must be a string, got {value!r}")
        return value

    def choice(self, value: Any, where: tuple[str | int, ...], choices: Any) -> str:
        if value not in tuple(choices):
            raise self.fail(
                where, f"unknown {where[-1]} {value!r}; choose one of: {', '.join(choices)}"
            )
        return value

    def whole(self, value: Any, where: tuple[str | int, ...], low: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise self.fail(where, f"{where[-1]} must be an integer >= {low}, got {value!r}")
        return value

    def settings(self, values: dict, where: tuple[str | int, ...]) -> dict:
        """Check the recipe-level keys of one layer (data, seeds, training settings)."""
        for key, value in values.items():
            at = (*where, key)
            if key == "dataset":
                self.choice(value, at, DATASET_NAMES)
            elif key in WHOLE_KEYS:
                self.whole(value, at)
            elif key in ("cached_targets", "seed"):
                self.whole(value, at, low=0)
            elif key == "val_fraction":
                if not _real(value) or not 0 <= value < 1:
                    raise self.fail(at, f"val_fraction must be a number in [0, 1), got {value!r}")
            elif key == "kind":
                self.choice(value, at, HEAD_TYPES)
            elif key == "activation":
                self.choice(value, at, tuple(ACTIVATIONS))
            elif key == "positions":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise self.fail(at, f"positions must be a list of names, got {value!r}")
        train = {k: v for k, v in values.items() if k in TRAIN_KEYS}
        try:
            train_config(train)
        except ConfigError as exc:
            key = next((k for k in train if str(exc).startswith(k)), None)
            raise self.fail((*where, key) if key else where, str(exc)) from None
        return values


def _real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def train_config(values: Mapping[str, Any], **extra: Any) -> TrainConfig:
    """A TrainConfig from experiment keys (milestones must lie within the epochs given, so a
    layer that sets milestones alone is checked against the default epochs only if it fits)."""
    values = dict(values)
    if "milestones" in values:
        values["milestones"] = tuple(values["milestones"])
        if "epochs" not in values and values["milestones"]:
            values["epochs"] = max(values["milestones"])
    return TrainConfig(**values, **extra)


def load_experiment(name: str | Path, config_dir: Path = CONFIG_DIR) -> Experiment:
    """Read and validate one experiment file (a shipped name or a path)."""
    path = experiment_path(name, config_dir)
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    r = _Reader(path, text)
    r.table(raw, (), TOP_KEYS)
    for key in ("title", "source", "reported"):
        if key not in raw:
            raise r.fail((), f"missing {key!r} (a line of text)")
        r.text_value(raw[key], (key,))
    recipe = r.settings(r.table(raw.get("recipe", {}), ("recipe",), RECIPE_KEYS), ("recipe",))
    if "dataset" not in recipe:
        raise r.fail(("recipe",), "[recipe] needs a dataset (the paper's)")
    teacher = r.settings(r.table(raw.get("teacher", {}), ("teacher",), TEACHER_KEYS), ("teacher",))
    heads = r.settings(r.table(raw.get("heads", {}), ("heads",), HEAD_KEYS), ("heads",))
    columns = _columns(r, raw)
    names = [c.name for c in columns]
    pairs = tuple(_pair(r, i, p, columns) for i, p in enumerate(_list(r, raw, "pairs")))
    if not pairs:
        raise r.fail((), "an experiment needs at least one [[pairs]] table")
    baseline = raw.get("baseline")
    if baseline is not None:
        r.choice(baseline, ("baseline",), names)
    profiles = r.table(raw.get("profiles", {}), ("profiles",), PROFILES)
    checked: dict[str, dict[str, Any]] = {}
    for profile in PROFILES:
        values = r.table(
            profiles.get(profile, {}), ("profiles", profile), (*RECIPE_KEYS, "teacher", "heads")
        )
        r.settings(
            {k: v for k, v in values.items() if k not in ("teacher", "heads")},
            ("profiles", profile),
        )
        for part, allowed in (("teacher", TEACHER_KEYS), ("heads", HEAD_KEYS)):
            if part in values:
                at = ("profiles", profile, part)
                values[part] = r.settings(r.table(values[part], at, allowed), at)
        checked[profile] = values
    experiment = Experiment(
        name=path.stem,
        path=path,
        title=raw["title"],
        source=raw["source"],
        reported=raw["reported"],
        notes=r.text_value(raw.get("notes", ""), ("notes",)),
        baseline=baseline,
        paper_statistic=r.choice(
            raw.get("paper_statistic", "mean"), ("paper_statistic",), ("mean", "best")
        ),
        recipe=recipe,
        teacher=teacher,
        heads=heads,
        columns=columns,
        pairs=pairs,
        profiles=checked,
    )
    from dihkit.reproduce.plan import resolve_profile  # the profiles must resolve, every one

    for profile in PROFILES:
        try:
            resolve_profile(experiment, profile)
        except ConfigError as exc:
            raise ConfigError(f"{path}: profile {profile!r}: {exc}") from None
    return experiment


def _list(r: _Reader, raw: Mapping[str, Any], key: str) -> list:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise r.fail((key,), f"{key} must be an array of tables ([[{key}]])")
    return value


def _columns(r: _Reader, raw: Mapping[str, Any]) -> tuple[Column, ...]:
    methods = raw.get("methods")
    if not isinstance(methods, Mapping) or not methods:
        raise r.fail((), "an experiment needs at least one [methods.NAME] table")
    columns = []
    for name, values in methods.items():
        where = ("methods", name)
        if name == TEACHER_COLUMN:
            raise r.fail(where, f"{TEACHER_COLUMN!r} is reserved for the teacher's own accuracy")
        if not isinstance(values, Mapping):
            raise r.fail(where, f"methods.{name} must be a table")
        values = dict(values)
        method = values.pop("method", name)
        if method not in method_names():
            raise r.fail(
                (*where, "method") if "method" in values or name != method else where,
                f"unknown method {method!r}; choose one of: {', '.join(method_names())}",
            )
        columns.append(Column(name, method, _options(r, where, method, values)))
    return tuple(columns)


def _options(
    r: _Reader, where: tuple[str | int, ...], method: str, values: Mapping[str, Any]
) -> dict[str, Any]:
    """Validated method options (the registry's checks), as given in the file."""
    try:
        resolve_options(method, values)
    except DihkitError as exc:
        text = str(exc)
        key = next((k for k in values if repr(k) in text), None)
        key = key or next((k for k in values if k in text), None)
        message = text if repr(method) in text else f"method {method!r}: {text}"
        raise r.fail((*where, key) if key else where, message) from None
    return dict(values)


def _pair(r: _Reader, index: int, values: Any, columns: tuple[Column, ...]) -> Pair:
    where: tuple[str | int, ...] = ("pairs", index)
    values = r.table(values, where, PAIR_KEYS)
    if "student" not in values:
        raise r.fail(where, "each [[pairs]] table needs a student")
    student = r.choice(values["student"], (*where, "student"), MODEL_NAMES)
    teacher = values.get("teacher")
    if teacher is not None:
        r.choice(teacher, (*where, "teacher"), MODEL_NAMES)
    elif any(c.needs_teacher for c in columns):
        needing = ", ".join(c.name for c in columns if c.needs_teacher)
        raise r.fail(where, f"this pair has no teacher but columns {needing} need one")
    names = [c.name for c in columns]
    paper = r.table(values.get("paper", {}), (*where, "paper"), (TEACHER_COLUMN, *names))
    for key, number in paper.items():
        if not _real(number) or not 0 < number <= 100:
            raise r.fail(
                (*where, "paper", key), f"paper.{key} must be a percentage, got {number!r}"
            )
    recipe = r.table(values.get("recipe", {}), (*where, "recipe"), TRAIN_KEYS)
    r.settings(recipe, (*where, "recipe"))
    options = r.table(values.get("options", {}), (*where, "options"), tuple(names))
    for column_name, column_options in options.items():
        column = next(c for c in columns if c.name == column_name)
        at = (*where, "options", column_name)
        merged = {**column.options, **r.table(column_options, at, _option_names(column.method))}
        options[column_name] = _options(r, at, column.method, merged)
    note = r.text_value(values.get("note", ""), (*where, "note"))
    return Pair(teacher, student, {k: float(v) for k, v in paper.items()}, recipe, options, note)


def _option_names(method: str) -> tuple[str, ...]:
    return tuple(f.name for f in fields(get_method(method).Options))
