"""Command-line flags for method options, generated from the method registry: every option any
method declares becomes one flag (``--tau``, ``--hint-epochs``, ...), and each run passes a
method only the flags it declares."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from dihkit.errors import ConfigError
from dihkit.methods import get_method, method_names, option_infos
from dihkit.methods.options import OptionInfo


def _declared() -> dict[str, list[tuple[str, OptionInfo]]]:
    """Option name -> [(method, info)] over all registered methods."""
    table: dict[str, list[tuple[str, OptionInfo]]] = {}
    for method in method_names():
        for info in option_infos(get_method(method).Options):
            table.setdefault(info.name, []).append((method, info))
    return table


def methods_epilog() -> str:
    """The registered methods, one line each, for ``--help``."""
    width = max(len(m) for m in method_names())
    lines = ["methods:"]
    lines += [f"  {m:<{width}}  {get_method(m).summary}" for m in method_names()]
    return "\n".join(lines)


def add_method_option_args(parser: argparse.ArgumentParser) -> None:
    """One flag per declared option; defaults stay ``None`` so each method's own default holds."""
    group = parser.add_argument_group(
        "method options", "each flag applies to the methods listed in its help, with their defaults"
    )
    for name, entries in _declared().items():
        info = entries[0][1]
        defaults = ", ".join(f"{m}={i.default}" for m, i in entries)
        where = info.describe_range()
        text = f"{info.help}{'; ' + where if where and not info.choices else ''} [{defaults}]"
        kwargs: dict[str, Any] = {"default": None, "help": text, "dest": f"opt_{name}"}
        if info.type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = info.type
            kwargs["metavar"] = name.upper()
            if info.choices:
                kwargs["choices"] = info.choices
        group.add_argument(info.flag, **kwargs)


def options_for(methods: Sequence[str], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Method -> the options given on the command line that it declares. A flag that none of
    ``methods`` declares is an error naming the flag and who does declare it."""
    declared = _declared()
    given = {
        name: getattr(args, f"opt_{name}")
        for name in declared
        if getattr(args, f"opt_{name}", None) is not None
    }
    per_method: dict[str, dict[str, Any]] = {m: {} for m in methods}
    for name, value in given.items():
        owners = [m for m, _ in declared[name] if m in per_method]
        if not owners:
            flag = "--" + name.replace("_", "-")
            users = ", ".join(m for m, _ in declared[name])
            raise ConfigError(
                f"{flag} is not an option of {', '.join(methods)}; it applies to: {users}"
            )
        for method in owners:
            per_method[method][name] = value
    return per_method
