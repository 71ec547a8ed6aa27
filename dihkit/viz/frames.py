"""Plotly figures with a slider over precomputed frames: the static page's stand-in for a
widget's slider (one frame per grid point, no kernel needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def nearest_on_log_grid(grid: Sequence[float], value: float) -> int:
    """The index of the grid point nearest ``value`` on a log scale (temperatures)."""
    return min(range(len(grid)), key=lambda i: abs(math.log(float(grid[i]) / value)))


def frame_slider_figure(
    traces: Sequence[list[Any]],
    headings: Sequence[str],
    labels: Sequence[str],
    *,
    names: Sequence[str],
    start: int,
    prefix: str,
    **layout: Any,
):
    """A figure showing ``traces[start]`` with one frame per entry of ``traces`` (its title
    ``headings[i]``, frame name ``names[i]``) and a slider whose step ``i`` is labelled
    ``labels[i]`` (``prefix`` before the current value); ``layout`` is passed on to
    ``update_layout`` (axes, size, margins)."""
    import plotly.graph_objects as go

    frames = [
        go.Frame(data=data, name=name, layout=go.Layout(title_text=heading))
        for data, name, heading in zip(traces, names, headings, strict=True)
    ]
    steps = [
        {
            "label": label,
            "method": "animate",
            "args": [[name], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}}],
        }
        for label, name in zip(labels, names, strict=True)
    ]
    fig = go.Figure(data=traces[start], frames=frames)
    fig.update_layout(
        title_text=headings[start],
        sliders=[{"active": start, "currentvalue": {"prefix": prefix}, "steps": steps}],
        **{"height": 420, "margin": {"t": 60, "b": 40}, **layout},
    )
    return fig
