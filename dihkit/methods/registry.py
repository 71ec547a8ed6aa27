"""The method registry: ``@register`` adds a :class:`Distiller` subclass under its name; the CLI,
``compare``, the notebooks and the tests list and build methods from here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dihkit.errors import ConfigError
from dihkit.methods.base import Distiller
from dihkit.methods.options import MethodOptions, make_options

_METHODS: dict[str, type[Distiller]] = {}


def register(name: str) -> Callable[[type[Distiller]], type[Distiller]]:
    """Class decorator: register a distiller as method ``name`` (also sets ``cls.method`` and
    its options class's method name, used in error messages)."""

    def decorate(cls: type[Distiller]) -> type[Distiller]:
        if name in _METHODS:
            raise RuntimeError(f"method {name!r} registered twice")
        if not cls.summary:
            raise RuntimeError(f"method {name!r} needs a one-line summary")
        cls.method = name
        cls.Options.method = name
        _METHODS[name] = cls
        return cls

    return decorate


def method_names() -> tuple[str, ...]:
    """Registered method names, in registration order."""
    return tuple(_METHODS)


def get_method(name: str) -> type[Distiller]:
    """The distiller class registered as ``name``; a clear error listing the valid names."""
    if name not in _METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of: {', '.join(_METHODS)}")
    return _METHODS[name]


def resolve_options(name: str, values: Mapping[str, Any] | MethodOptions | None) -> MethodOptions:
    """The method's options with ``values`` applied over its defaults, validated."""
    return make_options(get_method(name).Options, values or {})
