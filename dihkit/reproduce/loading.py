"""Reading an experiment file: the TOML text checked key by key into an
:class:`~dihkit.reproduce.config.Experiment`, every error naming the file and line, and every
profile resolved once so a file that cannot run fails when it is read."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from dihkit.checks import in_range
from dihkit.data.datasets import DATASET_NAMES
from dihkit.errors import ConfigError, DihkitError
from dihkit.methods import get_method, method_names, resolve_options
from dihkit.models import MODEL_NAMES
from dihkit.nn.heads import ACTIVATIONS, HEAD_TYPES
from dihkit.reproduce.config import (
    CONFIG_DIR,
    HEAD_KEYS,
    PAIR_KEYS,
    RECIPE_KEYS,
    RECIPE_PROFILES,
    TEACHER_COLUMN,
    TEACHER_KEYS,
    TOP_KEYS,
    TRAIN_KEYS,
    WHOLE_KEYS,
    Column,
    Experiment,
    Pair,
    experiment_path,
    train_config,
)
from dihkit.reproduce.plan import resolve_profile
from dihkit.reproduce.toml_lines import line_of

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["load_experiment"]


class _Reader:
    """Validation with errors that name the file and the line."""

    def __init__(self, path: Path, text: str) -> None:
        self.path, self.text = path, text

    def fail(self, where: tuple[str | int, ...], message: str) -> ConfigError:
        """An error at the line that sets ``where``; about the whole file (``where`` empty: a
        missing key or table), it names the file alone, with no line."""
        if not where:
            return ConfigError(f"file {self.path}: {message}")
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
        # TOML integers have no size limit: compared as ints (a float conversion overflows)
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
                if not in_range(value, 0, 1, high_open=True):
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
        raise r.fail((), "an experiment needs at least one [[pairs]] table; this file has none")
    baseline = raw.get("baseline")
    if baseline is not None:
        r.choice(baseline, ("baseline",), names)
    profiles = r.table(raw.get("profiles", {}), ("profiles",), RECIPE_PROFILES)
    checked: dict[str, dict[str, Any]] = {}
    for profile in RECIPE_PROFILES:
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
    for profile in RECIPE_PROFILES:  # the profiles must resolve, every one
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
        if not in_range(number, 0, 100, low_open=True):
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
