"""What an experiment file holds: one TOML file per published table, read and validated
(:func:`dihkit.reproduce.loading.load_experiment`) into an :class:`Experiment`.

A file declares the paper's recipe (``[recipe]``), how teachers and their heads are trained
(``[teacher]``, ``[heads]``), the table's columns (``[methods.NAME]``: a registered method and its
options), its rows (``[[pairs]]``: teacher, student and the paper's numbers) and what the
``classroom`` and ``smoke`` profiles change (``[profiles.NAME]``). Every key and value is checked
when the file is read; an error names the file and line. See ``configs/README.md``.

Here: the keys each table may hold, what the profiles change by default, the validated
:class:`Experiment` with its columns and pairs, and where the shipped files are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dihkit.errors import ConfigError
from dihkit.methods import get_method
from dihkit.resources import bundled
from dihkit.runs.profiles import PROFILE_NAMES
from dihkit.training.config import TrainConfig

CONFIG_DIR = bundled("configs")
# The profiles an experiment runs under, the published recipe first (``--profile`` lists them in
# this order): the notebooks' profile names, from the largest to the smallest.
RECIPE_PROFILES = tuple(reversed(PROFILE_NAMES))
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

# What each profile changes in the recipe unless the file's [profiles.NAME] says otherwise. For
# paper: no validation split (the papers train on the whole training set, 50,000 CIFAR images,
# and report the last epoch; a 10 % split would leave 45,000); a file asks for one with
# ``[profiles.paper] val_fraction = 0.1``. For classroom and smoke Fashion-MNIST from the kit's
# embedded subset (the papers' datasets are not needed), fewer images and epochs; they keep the
# default 10 % validation split.
PAPER_VAL_FRACTION = 0.0
RECIPE_OVERRIDES: dict[str, dict[str, Any]] = {
    "paper": {"val_fraction": PAPER_VAL_FRACTION},
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


def train_config(values: Mapping[str, Any], **extra: Any) -> TrainConfig:
    """A TrainConfig from experiment keys (milestones must lie within the epochs given, so a
    layer that sets milestones alone is checked against the default epochs only if it fits)."""
    values = dict(values)
    if "milestones" in values:
        values["milestones"] = tuple(values["milestones"])
        if "epochs" not in values and values["milestones"]:
            values["epochs"] = max(values["milestones"])
    return TrainConfig(**values, **extra)
