"""Figures of the knowledge-distillation notebooks (01, 02, 04, 07): temperature, entropy,
gradient norms, the capacity gap, learning curves and the method comparison."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dihkit.studies.temperature import entropy, softened_grid
from dihkit.viz._matplotlib import _closed, _pyplot


def temperature_figure(
    logits: Sequence[float],
    class_names: Sequence[str],
    taus: Sequence[float],
    *,
    title: str = "Softened distribution softmax(z / tau)",
    start_tau: float = 1.0,
):
    """A plotly bar chart of ``softmax(logits / tau)`` with a slider over ``taus``: one frame per
    grid point, so a reader of the static HTML page can still move the temperature (the twin of
    :func:`dihkit.viz.widgets.temperature_explorer`). It opens at the grid point nearest
    ``start_tau``."""
    import math

    import plotly.graph_objects as go
    import torch

    grid = softened_grid(torch.as_tensor(logits, dtype=torch.float64), taus)
    entropies = entropy(grid)
    names = [f"tau={float(t):g}" for t in taus]

    def bars(i: int):
        return go.Bar(
            x=list(class_names),
            y=grid[i].tolist(),
            text=[f"{p:.3f}" for p in grid[i].tolist()],
            textposition="outside",
            marker_color="#4c72b0",
        )

    def heading(i: int) -> str:
        return f"{title}: tau = {float(taus[i]):g}, entropy {entropies[i].item():.3f} nats"

    frames = [
        go.Frame(data=[bars(i)], name=names[i], layout=go.Layout(title_text=heading(i)))
        for i in range(len(taus))
    ]
    steps = [
        {
            "label": f"{float(t):g}",
            "method": "animate",
            "args": [[names[i]], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}}],
        }
        for i, t in enumerate(taus)
    ]
    start = min(range(len(taus)), key=lambda i: abs(math.log(float(taus[i]) / start_tau)))
    fig = go.Figure(data=[bars(start)], frames=frames)
    fig.update_layout(
        title_text=heading(start),
        yaxis={"range": [0, 1.1], "title": "probability"},
        xaxis={"title": "class"},
        sliders=[{"active": start, "currentvalue": {"prefix": "tau = "}, "steps": steps}],
        height=420,
        margin={"t": 60, "b": 40},
    )
    return fig


def plot_entropy_against_tau(
    taus: Sequence[float], entropies: Sequence[float], num_classes: int | None = None
):
    """Entropy (nats) of the softened distribution against the temperature, with the uniform
    distribution's ``log C`` as the ceiling when ``num_classes`` is given."""
    import math

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(list(taus), list(entropies), marker="o", label="teacher's softened distribution")
    if num_classes:
        ax.axhline(math.log(num_classes), ls="--", c="gray", label=f"uniform: log {num_classes}")
    ax.set_xscale("log")
    ax.set_xlabel("temperature tau (log scale)")
    ax.set_ylabel("entropy (nats)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _closed(fig)


def plot_gradient_norms(norms: Any):
    """Gradient norm of the KD loss w.r.t. the student's logits against tau (log-log), with and
    without the ``tau^2`` factor (a :class:`dihkit.studies.temperature.GradientNorms`)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(norms.taus, norms.with_tau2, marker="o", label="tau^2 * KL (Eq. 1)")
    ax.plot(norms.taus, norms.without_tau2, marker="s", label="KL alone")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("temperature tau")
    ax.set_ylabel("mean |d loss / d student logits|")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return _closed(fig)


def plot_capacity_gap(points: Sequence[Mapping[str, Any]], baseline: Any = None):
    """Student accuracy (mean +/- std over seeds) against the teacher's parameters, from
    :func:`dihkit.studies.capacity.capacity_points`: one line for KD, TAKD points just right of it,
    each labelled with its teacher (and the teacher's own recorded accuracy); ``baseline`` (a
    GroupSummary, e.g. CE) is a dashed line with a +/- std band."""
    from matplotlib.ticker import FixedLocator, NullLocator

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    styles = {"kd": ("o", "-", "#4c72b0"), "takd": ("D", "", "#dd8452")}
    for method in dict.fromkeys(p["method"] for p in points):
        group = [p for p in points if p["method"] == method]
        marker, line, color = styles.get(method, ("^", "", "#55a868"))
        shift = 1.0 if method == "kd" else 1.15  # other methods a little to the right of KD's
        ax.errorbar(
            [p["teacher_params"] * shift for p in group],
            [100 * p["mean"] for p in group],
            yerr=[100 * p["std"] for p in group],
            marker=marker,
            ls=line,
            color=color,
            capsize=4,
            label=f"student ({method})",
        )
        for p in group:
            own = p.get("teacher_acc")
            text = p["name"] + (f"\n(teacher {100 * own:.1f}%)" if own is not None else "")
            ax.annotate(
                text,
                (p["teacher_params"] * shift, 100 * p["mean"]),
                textcoords="offset points",
                xytext=(6, -22 if method == "takd" else 6),
                fontsize=8,
            )
    if baseline is not None:
        low, high = 100 * (baseline.mean - baseline.std), 100 * (baseline.mean + baseline.std)
        ax.axhspan(low, high, color="gray", alpha=0.15)
        label = f"{baseline.label} (no teacher)"
        ax.axhline(100 * baseline.mean, color="gray", ls="--", label=label)
    ax.set_xscale("log")
    sizes = sorted({p["teacher_params"] for p in points})
    ax.xaxis.set_major_locator(FixedLocator(sizes))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{n / 1000:,.0f}k" for n in sizes])
    if sizes:
        ax.set_xlim(sizes[0] / 1.3, sizes[-1] * 1.9)
    ax.margins(y=0.2)
    ax.set_xlabel("teacher parameters (log scale)")
    ax.set_ylabel("student test accuracy %")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _closed(fig)


def plot_learning_curves(curves: Mapping[str, Mapping[str, Sequence[float]]]):
    """Validation accuracy per epoch of each group, mean over seeds with a +/- std band (the
    output of :func:`dihkit.studies.seeds.learning_curves`)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label, curve in curves.items():
        mean = [100 * m for m in curve["mean"]]
        std = [100 * s for s in curve["std"]]
        ax.plot(curve["epoch"], mean, marker=".", label=label)
        ax.fill_between(
            curve["epoch"],
            [m - s for m, s in zip(mean, std, strict=True)],
            [m + s for m, s in zip(mean, std, strict=True)],
            alpha=0.15,
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy %")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _closed(fig)


def plot_method_comparison(summaries: Sequence[Any]):
    """Side-by-side bars of every group (a :class:`dihkit.studies.seeds.GroupSummary` each): test
    accuracy mean +/- std over seeds, and training seconds per run, student parameters in the
    labels."""
    plt = _pyplot()
    labels = [f"{s.label}\n({s.params:,} params, n={s.n})" for s in summaries]
    rows = list(range(len(summaries)))
    height = 1.2 + 0.55 * len(summaries)
    fig, (acc_ax, time_ax) = plt.subplots(1, 2, figsize=(10, height), sharey=True)
    acc_ax.barh(
        rows,
        [100 * s.mean for s in summaries],
        xerr=[100 * s.std for s in summaries],
        color="#4c72b0",
        capsize=4,
    )
    low = min(100 * (s.mean - s.std) for s in summaries) if summaries else 0
    high = max(100 * (s.mean + s.std) for s in summaries) if summaries else 100
    acc_ax.set_xlim(max(0, low - 2), min(100, high + 1))
    acc_ax.set_xlabel("test accuracy % (mean +/- std over seeds)")
    acc_ax.set_yticks(rows, labels, fontsize=8)
    acc_ax.invert_yaxis()
    time_ax.barh(rows, [s.seconds for s in summaries], color="#dd8452")
    time_ax.set_xlabel("training seconds per run")
    for ax in (acc_ax, time_ax):
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return _closed(fig)
