"""Method options: each method declares its hyper-parameters as a small dataclass whose fields
carry a help text and a valid range. The CLI flags, ``--help``, the notebooks' checks and the
validation below are all generated from these declarations."""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from dihkit import checks
from dihkit.errors import ConfigError


def option(
    default: Any,
    help: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    choices: Sequence[Any] | None = None,
) -> Any:
    """A dataclass field for a method option: its default, a one-line help and its valid values
    (``[low, high]``, ``(low, high]`` with ``low_open``, or one of ``choices``)."""
    meta = {"help": help, "low": low, "high": high, "low_open": low_open, "choices": choices}
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class OptionInfo:
    """One declared option, as the CLI and the docs see it."""

    name: str
    type: type
    optional: bool
    default: Any
    help: str
    low: float | None
    high: float | None
    low_open: bool
    choices: tuple[Any, ...] | None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def describe_range(self) -> str:
        """The valid values as text: ``one of a, b``, ``in (0, inf)``, or "" when any goes."""
        if self.choices:
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.low is None and self.high is None:
            return ""
        return "in " + checks.describe_range(self.low, self.high, low_open=self.low_open)

    def in_range(self, value: Any) -> bool:
        """Whether a number lies in the declared interval."""
        return checks.in_range(value, self.low, self.high, low_open=self.low_open)


def _base_type(annotation: Any) -> tuple[type, bool]:
    """``float`` -> (float, False); ``int | None`` -> (int, True)."""
    if isinstance(annotation, str):
        annotation = eval(
            annotation, {}, {}
        )  # annotations are our own literals (float, int | None)
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        kinds = [a for a in args if a is not type(None)]
        return kinds[0], True
    return annotation, False


@dataclasses.dataclass(frozen=True)
class MethodOptions:
    """Base class of every method's options; subclasses add fields made with :func:`option`."""

    method: ClassVar[str] = "?"

    def __post_init__(self) -> None:
        for info in option_infos(type(self)):
            value = getattr(self, info.name)
            object.__setattr__(self, info.name, _checked(self.method, info, value))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def option_infos(options_class: type[MethodOptions]) -> list[OptionInfo]:
    """The declared options of a method's options class, in declaration order."""
    infos = []
    for f in dataclasses.fields(options_class):
        kind, optional = _base_type(f.type)
        meta = f.metadata
        choices = meta.get("choices")
        infos.append(
            OptionInfo(
                name=f.name,
                type=kind,
                optional=optional,
                default=f.default,
                help=meta.get("help", ""),
                low=meta.get("low"),
                high=meta.get("high"),
                low_open=meta.get("low_open", False),
                choices=tuple(choices) if choices else None,
            )
        )
    return infos


def _checked(method: str, info: OptionInfo, value: Any) -> Any:
    where = f"method {method!r}: option {info.name}"
    if value is None:
        if info.optional:
            return None
        raise ConfigError(f"{where} needs a value ({info.help})")
    if info.type is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} = {value!r} must be true or false")
        return value
    if info.type in (int, float):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"{where} = {value!r} must be a number {info.describe_range()}")
        if info.type is int:
            try:
                value = checks.whole(value)
            except ValueError:
                raise ConfigError(
                    f"{where} = {value!r} must be an integer {info.describe_range()}"
                ) from None
        value = info.type(value)
        if not checks.is_real(value):
            raise ConfigError(
                f"{where} = {value!r} must be a finite number {info.describe_range()}"
            )
        if not info.in_range(value):
            raise ConfigError(
                f"{where} = {value!r} is out of range; it must lie {info.describe_range()}"
            )
        return value
    value = str(value)
    if info.choices and value not in info.choices:
        raise ConfigError(f"{where} = {value!r} is not valid; it must be {info.describe_range()}")
    return value


def make_options(options_class: type[MethodOptions], values: Mapping[str, Any]) -> MethodOptions:
    """Build ``options_class`` from ``values``; an unknown name is a :class:`ConfigError` that
    names the method, the option and the valid options."""
    if isinstance(values, MethodOptions):
        values = values.as_dict()
    names = [info.name for info in option_infos(options_class)]
    unknown = [k for k in values if k not in names]
    if unknown:
        valid = ", ".join(names) if names else "none"
        raise ConfigError(
            f"method {options_class.method!r} has no option {', '.join(map(repr, unknown))}; "
            f"its options: {valid}"
        )
    return options_class(**dict(values))
