"""Figures for the student-side-heads notebooks (05 MHKD, 06 DSKD): named loss terms over
training, and DSKD's per-sample adaptive weights (its Fig. 2) and how they move over epochs.

Like :mod:`dihkit.viz`: every builder returns a figure and displays nothing (show plotly figures
with :func:`dihkit.viz.show_plotly`); matplotlib and plotly are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dihkit.viz._matplotlib import _closed, _pyplot
from dihkit.viz.frames import frame_slider_figure

Curve = Mapping[
    str, Sequence[float]
]  # {"epoch", "mean", "std"}, as dihkit.studies.student_heads makes


def plot_term_curves(
    panels: Mapping[str, Mapping[str, Curve]],
    *,
    ylabels: Mapping[str, str] | None = None,
    log_y: bool = False,
):
    """One panel per entry of ``panels`` (title -> ``{curve label: curve}``), each curve a loss
    term's mean over seeds per epoch with a +/- std band
    (:func:`dihkit.studies.student_heads.term_curves`). An empty panel says so instead of
    drawing nothing."""
    plt = _pyplot()
    titles = list(panels)
    fig, axes = plt.subplots(1, len(titles), figsize=(4.6 * len(titles), 3.5), squeeze=False)
    for ax, title in zip(axes[0], titles, strict=True):
        curves = panels[title]
        for label, curve in curves.items():
            epochs, mean, std = list(curve["epoch"]), list(curve["mean"]), list(curve["std"])
            ax.plot(epochs, mean, marker=".", label=label)
            ax.fill_between(
                epochs,
                [m - s for m, s in zip(mean, std, strict=True)],
                [m + s for m, s in zip(mean, std, strict=True)],
                alpha=0.15,
            )
        if not curves:
            ax.text(0.5, 0.5, "no terms logged", ha="center", va="center", transform=ax.transAxes)
        if log_y and curves:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel((ylabels or {}).get(title, "loss term"))
        if curves:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _closed(fig)


def plot_weight_histograms(
    weights: Any, classifier_names: Sequence[str], *, bins: int = 40, title: str = ""
):
    """DSKD's Fig. 2: one histogram per shallow classifier of its per-sample weight, from a
    ``[samples, classifiers]`` tensor or array of weights (rows sum to 1); the mean is marked and
    ``1 / classifiers`` (equal weighting) drawn dashed. The ``bins`` span the weights' own range
    (and 1/classifiers), not [0, 1]: weights that stay near equal still show their shape."""
    import numpy as np

    values = np.asarray(weights.cpu() if hasattr(weights, "cpu") else weights, dtype=float)
    count = values.shape[1]
    if count != len(classifier_names):
        raise ValueError(f"weights have {count} columns but {len(classifier_names)} names")
    plt = _pyplot()
    fig, axes = plt.subplots(1, count, figsize=(3.8 * count, 3.2), squeeze=False, sharey=True)
    low = min(float(values.min()), 1 / count)
    high = max(float(values.max()), 1 / count)
    pad = max(0.05 * (high - low), 0.005)
    low, high = max(0.0, low - pad), min(1.0, high + pad)
    edges = np.linspace(low, high, bins + 1)
    for c, (ax, name) in enumerate(zip(axes[0], classifier_names, strict=True)):
        column = values[:, c]
        ax.hist(column, bins=edges, color="#4c72b0", alpha=0.85)
        ax.axvline(1 / count, ls="--", c="gray", lw=1, label=f"equal: 1/{count}")
        ax.axvline(column.mean(), c="#c44e52", lw=1.5, label=f"mean {column.mean():.3f}")
        ax.set_xlim(low, high)
        ax.set_xlabel(f"weight of {name} ({bins} bins of {(high - low) / bins:.3f})")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("samples")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _closed(fig)


def plot_weight_trajectories(trajectories: Mapping[str, Mapping[str, Any]]):
    """The per-sample weight distribution of a shallow classifier per epoch: the median with the
    25-75 % and 10-90 % bands, and the mean dashed; one panel per entry (title -> a
    :func:`dihkit.studies.dskd_weights.weight_trajectory`)."""
    plt = _pyplot()
    titles = list(trajectories)
    fig, axes = plt.subplots(1, len(titles), figsize=(4.6 * len(titles), 3.4), squeeze=False)
    for ax, title in zip(axes[0], titles, strict=True):
        t = trajectories[title]
        epochs, q = t["epoch"], {float(k): v for k, v in t["quantiles"].items()}
        for low, high, alpha in ((0.1, 0.9, 0.15), (0.25, 0.75, 0.3)):
            if low in q and high in q:
                label = f"{int(100 * low)}-{int(100 * high)}% of samples"
                ax.fill_between(epochs, q[low], q[high], alpha=alpha, color="#4c72b0", label=label)
        if 0.5 in q:
            ax.plot(epochs, q[0.5], marker=".", color="#4c72b0", label="median")
        ax.plot(epochs, t["mean"], ls="--", color="#c44e52", label="mean")
        ax.set_ylim(0, 1)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("per-sample weight")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _closed(fig)


def weight_histogram_figure(
    histograms: Mapping[str, Any], classifier_names: Sequence[str], *, title: str = ""
):
    """A plotly twin of :func:`plot_weight_histograms` with an epoch slider: one bar trace per
    classifier (share of samples per weight bin) and one frame per recorded epoch, from
    :func:`dihkit.studies.dskd_weights.weight_histograms`, so a reader of the static HTML page can
    watch the weights change over training."""
    import plotly.graph_objects as go

    epochs, edges, fractions = histograms["epoch"], histograms["edges"], histograms["fractions"]
    if not epochs:
        raise ValueError("no recorded epochs to show")
    centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
    width = edges[1] - edges[0]
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]

    def bars(e: int) -> list[Any]:
        return [
            go.Bar(
                x=centres,
                y=fractions[e][c],
                width=width,
                name=name,
                opacity=0.7,
                marker_color=colors[c % len(colors)],
            )
            for c, name in enumerate(classifier_names)
        ]

    def heading(e: int) -> str:
        return f"{title}: epoch {epochs[e]}" if title else f"epoch {epochs[e]}"

    top = max((max(row) for frame in fractions for row in frame), default=1.0)
    return frame_slider_figure(
        [bars(i) for i in range(len(epochs))],
        [heading(i) for i in range(len(epochs))],
        [str(e) for e in epochs],
        names=[f"epoch {e}" for e in epochs],
        start=len(epochs) - 1,
        prefix="epoch ",
        barmode="overlay",
        xaxis={"range": [edges[0], edges[-1]], "title": "per-sample weight"},
        yaxis={"range": [0, 1.05 * top], "title": "share of samples"},
    )
