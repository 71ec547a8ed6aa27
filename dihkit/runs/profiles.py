"""Run profiles shared by the notebooks and the tour: ``smoke`` (seconds, for CI), ``classroom``
(minutes on a laptop CPU, the default) and ``paper`` (CIFAR at a paper's recipe, GPU expected).

A notebook's ``parameters`` cell holds plain literals; its next cell calls :func:`resolve`, which
fills every ``None`` from the profile, checks every value and fails with one clear message.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dihkit import checks
from dihkit.data.datasets import DATASET_NAMES, Dataset, load_dataset
from dihkit.errors import ConfigError
from dihkit.methods import OptionInfo, get_method, option_infos
from dihkit.models import MODEL_NAMES
from dihkit.teachers.bundled import teacher_names
from dihkit.training.config import SCHEDULES, TrainConfig
from dihkit.training.runtime import DEVICE_CHOICES

PROFILE_NAMES = ("smoke", "classroom", "paper")


@dataclass(frozen=True)
class Settings:
    """Everything a notebook run needs, after the profile's defaults were filled in."""

    profile: str
    dataset: str
    teacher: str
    student: str
    epochs: int
    train_per_class: int | None
    seeds: tuple[int, ...]
    batch_size: int
    lr: float
    schedule: str
    device: str
    data_dir: str | None = None
    cached_targets: int = 0  # V > 0: methods that can train from V cached views per image do

    def config(self, seed: int | None = None, **changes: Any) -> TrainConfig:
        """The :class:`TrainConfig` of one run (``seed`` defaults to the first)."""
        values = dict(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            schedule=self.schedule,
            seed=self.seeds[0] if seed is None else seed,
            device=self.device,
            cached_targets=self.cached_targets,
        )
        values.update(changes)
        return TrainConfig(**values)

    def load_data(self) -> Dataset:
        """The dataset of this profile (with its ``train_per_class`` subset)."""
        return load_dataset(
            self.dataset, data_dir=self.data_dir, train_per_class=self.train_per_class
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for a notebook's results file."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()}


PROFILES: dict[str, Settings] = {
    "smoke": Settings(
        profile="smoke",
        dataset="fmnist-mini",
        teacher="resnet14",
        student="resnet8",
        epochs=1,
        train_per_class=20,
        seeds=(0,),
        batch_size=128,
        lr=0.1,
        schedule="cosine",
        device="cpu",
    ),
    # The regime study's choice (README, "The classroom regime"; `dihkit regime-study`).
    "classroom": Settings(
        profile="classroom",
        dataset="cifar10-mini",
        teacher="vgg8-c10",
        student="resnet8",
        epochs=10,
        train_per_class=50,
        seeds=(0, 1, 2, 3, 4),
        batch_size=128,
        lr=0.1,
        schedule="cosine",
        device="auto",
    ),
    "paper": Settings(  # the DIH paper's recipe (Sec. 4.1); the teacher is a checkpoint you trained
        profile="paper",
        dataset="cifar100",
        teacher="runs/teachers/resnet110-cifar100/best.pt",
        student="resnet8",
        epochs=200,
        train_per_class=None,
        seeds=(0, 1, 2),
        batch_size=64,
        lr=0.1,
        schedule="multistep",
        device="auto",
    ),
}


def check_range(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    integer: bool = False,
    low_inclusive: bool = True,
) -> Any:
    """``value`` if it is a number in ``[low, high]`` (``(low, high]`` without ``low_inclusive``),
    else a :class:`ConfigError` naming parameter ``name``, the value and the valid range (or,
    for a string, saying so: a list passed with papermill's ``-p`` arrives as text)."""
    reject_text(name, value, "a number", "[...]")
    return checks.check_number(
        f"parameter {name}", value, low, high, low_open=not low_inclusive, integer=integer
    )


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``, else a :class:`ConfigError` naming parameter
    ``name`` and listing them."""
    return checks.check_choice(f"parameter {name}", value, choices)


def _check_teacher(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"parameter teacher = {value!r} must be a bundled name or a path")
    if value not in teacher_names() and not Path(value).is_file():
        raise ConfigError(
            f"parameter teacher = {value!r} is neither a bundled teacher "
            f"({', '.join(teacher_names())}) nor an existing checkpoint file"
        )
    return value


def resolve(profile: str = "classroom", **overrides: Any) -> Settings:
    """The profile's settings with every non-``None`` override applied, all checked.

    Known names: the fields of :class:`Settings` plus ``seed`` (a one-seed shorthand for
    ``seeds``). An unknown profile, dataset, device or model, or an out-of-range value, is a
    :class:`ConfigError` with the bad value and the valid choices. The environment variable
    ``DIHKIT_PROFILE``, when set, replaces ``profile`` (nbval re-executes the committed
    classroom notebooks in the smoke profile this way).
    """
    profile = os.environ.get("DIHKIT_PROFILE") or profile
    check_choice("profile", profile, PROFILE_NAMES)
    given = {k: v for k, v in overrides.items() if v is not None}
    known = {f.name for f in dataclasses.fields(Settings)} - {"profile"}
    unknown = sorted(set(given) - known - {"seed"})
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known | {'seed'}))}"
        )
    seeds_name = "seed" if "seed" in given else "seeds"  # the parameter the user gave
    if "seed" in given:
        if "seeds" in given:
            raise ConfigError(
                f"parameters seed = {given['seed']!r} and seeds = {given['seeds']!r} are both "
                "given; give one of them (seed: one seed, seeds: a list)"
            )
        _not_text("seed", given["seed"])
        given["seeds"] = (given.pop("seed"),)
    for name, value in given.items():
        if name in NUMBER_EXAMPLES:
            _not_text(name, value)
    settings = dataclasses.replace(PROFILES[profile], **given)
    check_choice("dataset", settings.dataset, DATASET_NAMES)
    check_choice("device", settings.device.split(":")[0], DEVICE_CHOICES)
    check_choice("student", settings.student, MODEL_NAMES)
    check_choice("schedule", settings.schedule, SCHEDULES)
    if settings.profile != "paper" or "teacher" in given:
        _check_teacher(settings.teacher)
    check_range("epochs", settings.epochs, 1, integer=True)
    check_range("batch_size", settings.batch_size, 1, integer=True)
    check_range("lr", settings.lr, 0, low_inclusive=False)
    check_range("cached_targets", settings.cached_targets, 0, integer=True)
    if settings.train_per_class is not None:
        check_range("train_per_class", settings.train_per_class, 1, integer=True)
    return dataclasses.replace(settings, seeds=_check_seeds(seeds_name, settings.seeds))


# Parameters that take a number (or, ``seeds``, a list of numbers), with an example value for
# the message that says a string was given instead (papermill's ``-p`` passes a list as text).
NUMBER_EXAMPLES = {
    "seed": "0",
    "seeds": "[0, 1]",
    "epochs": "3",
    "batch_size": "128",
    "lr": "0.1",
    "cached_targets": "4",
    "train_per_class": "100",
}


def reject_text(name: str, value: Any, expected: str, example: str, *, tour: bool = False) -> None:
    """A :class:`ConfigError` if ``value`` is a string where parameter ``name`` takes
    ``expected`` (a number, a list): what papermill's ``-p NAME '[0, 1]'`` passes. The message
    gives the fix, YAML (``papermill -y``) with ``example`` (and ``dihkit tour --param`` with
    ``tour``)."""
    if isinstance(value, str):
        also = f" (dihkit tour: --param '{name}={example}')" if tour else ""
        raise ConfigError(
            f"parameter {name} = {value!r} is a string, not {expected} (papermill's -p passes a "
            f"list as text); pass it as YAML: papermill -y '{name}: {example}'{also}"
        )


def _not_text(name: str, value: Any) -> None:
    """:func:`reject_text` for the settings :func:`resolve` takes (``seeds`` and numbers)."""
    expected = "a list of seeds" if name == "seeds" else "a number"
    reject_text(name, value, expected, NUMBER_EXAMPLES[name], tour=True)


def _check_seeds(name: str, seeds: Any) -> tuple[int, ...]:
    """``seeds`` (one integer or a sequence of them) as a tuple of distinct integers >= 0;
    errors name parameter ``name`` (``seed`` or ``seeds``, whichever was given)."""
    _not_text(name, seeds)
    if isinstance(seeds, numbers.Integral):
        seeds = (seeds,)
    if not isinstance(seeds, (list, tuple, range)):
        raise ConfigError(
            f"parameter {name} = {seeds!r} must be a list of seeds (integers >= 0), e.g. [0, 1]"
        )
    seeds = tuple(seeds)
    if not seeds:
        raise ConfigError(f"parameter {name} = {list(seeds)!r} must list at least one seed")
    for seed in seeds:
        check_range(name, seed, 0, integer=True)
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        raise ConfigError(
            f"parameter {name} = {list(seeds)!r} repeats a seed ({repeated[0]}); the runs of a "
            "comparison are paired by seed, so list each seed once, e.g. [0, 1]"
        )
    return seeds


# The method hyper-parameters a notebook exposes, and the method whose declared range each takes:
# KD's temperature and share, and the weight of MHKD's head terms (DSKD's beta has the same range).
METHOD_PARAMETERS = {"tau": "kd", "alpha": "kd", "beta": "mhkd"}


def declared_option(method: str, name: str) -> OptionInfo:
    """Option ``name`` as ``method`` declares it (its help, default and valid range)."""
    return next(info for info in option_infos(get_method(method).Options) if info.name == name)


def check_method_parameters(tau: Any = None, alpha: Any = None, beta: Any = None) -> None:
    """Range checks for the common method hyper-parameters a notebook exposes, with the ranges
    the methods of :data:`METHOD_PARAMETERS` declare."""
    for name, value in (("tau", tau), ("alpha", alpha), ("beta", beta)):
        if value is not None:
            info = declared_option(METHOD_PARAMETERS[name], name)
            check_range(name, value, info.low, info.high, low_inclusive=not info.low_open)


def describe_settings(settings: Settings) -> str:
    """One line naming the regime a notebook runs in."""
    per_class = settings.train_per_class
    data = f"{per_class} training images per class" if per_class else "all training images"
    seeds = ", ".join(str(s) for s in settings.seeds)
    return (
        f"profile {settings.profile}: {settings.dataset}, {data}, {settings.epochs} epochs, "
        f"teacher {settings.teacher}, student {settings.student}, seeds {seeds}, "
        f"device {settings.device}"
        + (
            f", teacher targets cached ({settings.cached_targets} views per image)"
            if getattr(settings, "cached_targets", 0)
            else ""
        )
    )
