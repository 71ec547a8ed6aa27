"""Where a key sits in a TOML file, so a configuration error can name its line.

``tomllib`` parses but keeps no positions. Experiment files are plain TOML (tables, arrays of
tables, inline tables); this scans the text, following ``[table]`` and ``[[array]]`` headers,
for the line that sets a key path such as ``("pairs", 1, "paper", "dih")``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.-]+)\s*=""")


def _parts(dotted: str) -> list[str]:
    """``a."b.c".d`` -> ``["a", "b.c", "d"]``."""
    return [p.strip().strip("\"'") for p in re.findall(r"""(?:"[^"]*"|'[^']*'|[^.]+)""", dotted)]


def _headers(lines: Sequence[str]) -> list[tuple[int, tuple[str | int, ...]]]:
    """Each header's line index and its path, with the element index for ``[[array]]`` tables."""
    found: list[tuple[int, tuple[str | int, ...]]] = []
    counts: dict[tuple[str, ...], int] = {}
    for i, line in enumerate(lines):
        match = _HEADER.match(line)
        if not match:
            continue
        names = tuple(_parts(match.group(2)))
        if match.group(1) == "[[":
            index = counts.get(names, 0)
            counts[names] = index + 1
            found.append((i, (*names[:-1], names[-1], index)))
        else:
            # a sub-table of the latest element of an enclosing array of tables
            path: list[str | int] = []
            for depth, name in enumerate(names):
                path.append(name)
                prefix = names[: depth + 1]
                if prefix in counts and depth + 1 < len(names):
                    path.append(counts[prefix] - 1)
            found.append((i, tuple(path)))
    return found


def line_of(text: str, path: Sequence[str | int]) -> int:
    """The 1-based line that sets ``path`` (the deepest part of it the scan can find); 1 when
    nothing matches."""
    lines = text.splitlines()
    path = tuple(path)
    headers = _headers(lines)
    best: tuple[int, int, int] | None = None  # (prefix length, start, end)
    for n, (start, header) in enumerate(headers):
        if path[: len(header)] == header and (best is None or len(header) > best[0]):
            end = headers[n + 1][0] if n + 1 < len(headers) else len(lines)
            best = (len(header), start, end)
    depth, start, end = best if best is not None else (0, -1, len(lines))
    if best is None and headers:
        end = headers[0][0]
    if depth == len(path):
        return start + 1
    key = path[depth]
    for i in range(start + 1, end):
        match = _KEY.match(lines[i])
        if match and _parts(match.group(1))[0] == str(key):
            return i + 1
    return max(start + 1, 1)
