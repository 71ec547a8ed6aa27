"""The kit's exception types. Every user-facing problem is a :class:`DihkitError`, which the CLI
turns into one line on stderr and exit status 2.

``DihkitError`` derives from ``ValueError`` so code written against the older, plainer errors
keeps working.
"""

from __future__ import annotations


class DihkitError(ValueError):
    """Base class: a problem the user can fix (bad value, missing file); the message says how."""


class ConfigError(DihkitError):
    """A bad setting: an unknown name, a value out of range, options that do not fit together."""


class DataError(DihkitError):
    """A user-facing problem with a dataset: unknown name, bad argument, missing or bad files."""


class DataNotFoundError(DataError, FileNotFoundError):
    """Dataset files are missing; the message names the paths tried and how to get the data."""


class CheckpointError(DihkitError):
    """A checkpoint that is missing, corrupted, unsafe, or does not fit the run."""


class DivergenceError(DihkitError):
    """Training produced a non-finite loss or weights; the last finite checkpoint is kept."""


__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DataNotFoundError",
    "DihkitError",
    "DivergenceError",
]
