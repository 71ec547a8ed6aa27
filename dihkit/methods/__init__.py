"""Distillation methods, one module each, registered by name.

``method_names()`` lists them; ``get_method(name)`` gives the :class:`Distiller` subclass, with
its one-line ``summary``, its ``Options`` dataclass and what it ``requires``;
``resolve_options(name, values)`` validates options. Importing this package registers every
method.
"""

# isort: skip_file
# Importing the modules registers the methods, in this order (the order `--help` lists them).
from dihkit.methods import ce, kd, dih, fitnets, dml, takd, mhkd, dskd  # noqa: F401
from dihkit.methods import deep_supervision  # noqa: F401  (dsn, byot)
from dihkit.methods import dkd, kd_decomposition, channel_distillation  # noqa: F401
from dihkit.methods import feed, neighbourhood  # noqa: F401
from dihkit.methods.base import BuildContext, Distiller
from dihkit.methods.options import MethodOptions, OptionInfo, option, option_infos
from dihkit.methods.registry import get_method, method_names, register, resolve_options

__all__ = [
    "BuildContext",
    "Distiller",
    "MethodOptions",
    "OptionInfo",
    "get_method",
    "method_names",
    "option",
    "option_infos",
    "register",
    "resolve_options",
]
