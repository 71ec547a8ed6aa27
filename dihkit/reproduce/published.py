"""A paper's published numbers, read from the experiment file that reproduces its table, as a
markdown table labelled "published, not measured here" (the notebooks show them beside the kit's
own; the numbers live once, in ``configs/``)."""

from __future__ import annotations

from collections.abc import Sequence

from dihkit.reproduce.loading import load_experiment


def published_markdown(experiment: str, columns: Sequence[str] | None = None) -> str:
    """The ``paper`` numbers of every pair of ``experiment`` (a name in ``configs/``), one row
    per pair, ``columns`` (default: every column any pair prints) in percent, with the source."""
    loaded = load_experiment(experiment)
    names = (
        list(columns)
        if columns is not None
        else list(dict.fromkeys(k for pair in loaded.pairs for k in pair.paper))
    )
    lines = [
        f"**Published, not measured here:** {loaded.source} ({loaded.reported})",
        "",
        "| teacher -> student | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for pair in loaded.pairs:
        cells = [f"{pair.paper[n]:.2f}" if n in pair.paper else "-" for n in names]
        lines.append(f"| {pair.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
