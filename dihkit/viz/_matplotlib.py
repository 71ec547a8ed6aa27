"""Matplotlib helpers shared by the figure modules (imported lazily, so the CLI starts fast)."""

from __future__ import annotations


def _pyplot():
    import matplotlib.pyplot as plt  # headless processes fall back to a non-GUI backend

    return plt


def _closed(fig):
    """Detach a finished figure from pyplot, so a notebook shows it once (as the cell's value)."""
    _pyplot().close(fig)
    return fig
