"""The ``dihkit`` command line: the parser (:mod:`~dihkit.cli.main`), what each command does
(:mod:`~dihkit.cli.commands`, :mod:`~dihkit.cli.reproduce`) and the method flags generated from
the registry (:mod:`~dihkit.cli.method_flags`). The top layer: it may import every other part
of the kit, and nothing imports it."""

from dihkit.cli.main import main

__all__ = ["main"]
