"""The kit's own code, shown in a notebook beside the equation it implements: a function's or
method's source as a Markdown code block (the docstring kept, since it cites the equation)."""

from __future__ import annotations

import inspect
import textwrap
from typing import Any

__all__ = ["SourceBlock", "source_block"]


class SourceBlock:
    """A code listing that renders as Markdown in Jupyter and as plain text elsewhere."""

    def __init__(self, title: str, code: str) -> None:
        self.title, self.code = title, code

    def _repr_markdown_(self) -> str:
        return f"`{self.title}`:\n\n```python\n{self.code}\n```"

    def __repr__(self) -> str:
        return f"# {self.title}\n{self.code}"


def source_block(obj: Any) -> SourceBlock:
    """The source of ``obj`` (a function, method or class of the kit), dedented, titled with
    its module and qualified name and first line number."""
    lines, first = inspect.getsourcelines(obj)
    module = inspect.getmodule(obj)
    where = f"{module.__name__ if module else '?'}.{obj.__qualname__}, line {first}"
    return SourceBlock(where, textwrap.dedent("".join(lines)).rstrip())
