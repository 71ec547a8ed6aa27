"""Figures of the knowledge-distillation notebooks (01, 02, 04, 07): temperature, entropy,
gradient norms, the capacity gap, learning curves and the method comparison."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dihkit.studies.temperature import entropy, softened_grid
from dihkit.viz._matplotlib import _closed, _pyplot
from dihkit.viz.frames import frame_slider_figure, nearest_on_log_grid


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
    import plotly.graph_objects as go
    import torch

    grid = softened_grid(torch.as_tensor(logits, dtype=torch.float64), taus)
    entropies = entropy(grid)

    def bars(i: int) -> list[Any]:
        return [
            go.Bar(
                x=list(class_names),
                y=grid[i].tolist(),
                text=[f"{p:.3f}" for p in grid[i].tolist()],
                textposition="outside",
                marker_color="#4c72b0",
            )
        ]

    def heading(i: int) -> str:
        return f"{title}: tau = {float(taus[i]):g}, entropy {entropies[i].item():.3f} nats"

    return frame_slider_figure(
        [bars(i) for i in range(len(taus))],
        [heading(i) for i in range(len(taus))],
        [f"{float(t):g}" for t in taus],
        names=[f"tau={float(t):g}" for t in taus],
        start=nearest_on_log_grid(taus, start_tau),
        prefix="tau = ",
        yaxis={"range": [0, 1.1], "title": "probability"},
        xaxis={"title": "class"},
    )


def plot_softened_distribution(
    logits: Sequence[float], class_names: Sequence[str], tau: float, *, title: str = ""
):
    """One softened distribution ``softmax(logits / tau)`` as bars with their values, the entropy
    in the title: the static view of the temperature explorer and of :func:`temperature_figure`
    at one temperature."""
    import torch

    probs = softened_grid(torch.as_tensor(logits, dtype=torch.float64), [tau])[0]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    bars = ax.bar(range(len(class_names)), probs.tolist(), color="#4c72b0")
    ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(range(len(class_names)), list(class_names), rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("probability")
    heading = f"tau = {tau:g}, entropy {entropy(probs).item():.3f} nats"
    ax.set_title(f"{title}: {heading}" if title else heading, fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _closed(fig)


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
    :func:`dihkit.studies.capacity.capacity_points`: one line for KD, other methods (TAKD) as
    points just right of it, labelled with their route. Each x tick names its teacher, its size
    and its own recorded accuracy, so no label sits on the data; ``baseline`` (a GroupSummary,
    e.g. CE) is a dashed line with a +/- std band."""
    from matplotlib.ticker import FixedLocator, NullLocator

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.4))
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
        if method != "kd":
            for p in group:
                ax.annotate(
                    p["name"].replace(p["teacher"], "").strip() or p["name"],
                    (p["teacher_params"] * shift, 100 * (p["mean"] - p["std"])),
                    textcoords="offset points",
                    xytext=(0, -12),
                    ha="center",
                    fontsize=7,
                    color=color,
                )
    if baseline is not None:
        low, high = 100 * (baseline.mean - baseline.std), 100 * (baseline.mean + baseline.std)
        ax.axhspan(low, high, color="gray", alpha=0.15)
        label = f"{baseline.label} (no teacher)"
        ax.axhline(100 * baseline.mean, color="gray", ls="--", label=label)
    ax.set_xscale("log")
    ticks: dict[float, str] = {}
    for p in points:
        if p["method"] == "kd" or p["teacher_params"] not in ticks:
            own = p.get("teacher_acc")
            ticks[p["teacher_params"]] = f"{p['teacher']}\n{p['teacher_params'] / 1000:,.0f}k" + (
                f"\nteacher {100 * own:.1f}%" if own is not None else ""
            )
    sizes = sorted(ticks)
    ax.xaxis.set_major_locator(FixedLocator(sizes))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([ticks[n] for n in sizes], fontsize=7)
    if sizes:
        ax.set_xlim(sizes[0] / 1.5, sizes[-1] * 1.6)
    ax.margins(y=0.25)
    ax.set_xlabel("teacher (parameters, log scale; its own test accuracy)")
    ax.set_ylabel("student test accuracy %")
    ax.legend(fontsize=8, loc="upper left")
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


PASS_COLOURS = {
    "live": ("#dd8452", "live teacher (a forward pass per step)"),
    "cached": ("#55a868", "cached teacher targets"),
    "none": ("#8c8c8c", "no teacher"),
    "mixed": ("#c44e52", "mixed (cached and live seeds)"),
}


def plot_method_comparison(summaries: Sequence[Any], baseline: Any = None):
    """Every group (a :class:`dihkit.studies.seeds.GroupSummary` each) side by side: test
    accuracy as a dot with +/- std over seeds against a dashed reference line at ``baseline``'s
    mean (e.g. CE), and training seconds per run as bars from zero, coloured by how the runs met
    their teacher (live, cached targets, none), student parameters in the labels."""
    from matplotlib.patches import Patch

    plt = _pyplot()
    labels = [f"{s.label}\n({s.params:,} params, n={s.n})" for s in summaries]
    rows = list(range(len(summaries)))
    height = 1.6 + 0.55 * len(summaries)
    fig, (acc_ax, time_ax) = plt.subplots(1, 2, figsize=(10, height), sharey=True)
    acc_ax.errorbar(
        [100 * s.mean for s in summaries],
        rows,
        xerr=[100 * s.std for s in summaries],
        fmt="o",
        color="#4c72b0",
        capsize=4,
    )
    if baseline is not None:
        acc_ax.axvline(100 * baseline.mean, color="gray", ls="--", lw=1)
        acc_ax.annotate(
            f"{baseline.label}: {100 * baseline.mean:.2f}%",
            (100 * baseline.mean, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, 3),
            textcoords="offset points",
            fontsize=7,
            color="gray",
        )
    acc_ax.margins(x=0.15)
    acc_ax.set_xlabel("test accuracy % (mean +/- std over seeds)")
    acc_ax.set_yticks(rows, labels, fontsize=8)
    acc_ax.invert_yaxis()
    kinds = [getattr(s, "teacher_pass", "live") for s in summaries]
    time_ax.barh(rows, [s.seconds for s in summaries], color=[PASS_COLOURS[k][0] for k in kinds])
    time_ax.set_xlim(left=0)
    time_ax.set_xlabel("training seconds per run")
    present = [k for k in PASS_COLOURS if k in kinds]
    time_ax.legend(
        handles=[Patch(color=PASS_COLOURS[k][0], label=PASS_COLOURS[k][1]) for k in present],
        fontsize=7,
        loc="lower right",
    )
    for ax in (acc_ax, time_ax):
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return _closed(fig)
