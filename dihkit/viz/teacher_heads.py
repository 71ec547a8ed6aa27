"""Figures of the tour and the intermediate-heads notebooks (00, 03)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dihkit.losses import softened
from dihkit.viz._matplotlib import _closed, _pyplot


def _gray(image: Any):
    """One image ``(C, H, W)`` (uint8 or float) as an ``(H, W)`` or ``(H, W, 3)`` numpy array."""
    import numpy as np

    array = np.asarray(image.cpu() if hasattr(image, "cpu") else image)
    return array[0] if array.shape[0] == 1 else np.transpose(array, (1, 2, 0))


def plot_class_grid(images: Any, labels: Any, class_names: Sequence[str], per_class: int = 8):
    """A grid of the first ``per_class`` images of every class (one row per class), from uint8
    images ``(N, C, H, W)`` and their labels."""
    import numpy as np

    labels = np.asarray(labels)
    plt = _pyplot()
    rows = len(class_names)
    fig, axes = plt.subplots(
        rows, per_class, figsize=(0.6 * per_class + 1.2, 0.6 * rows), squeeze=False
    )
    for c, name in enumerate(class_names):
        members = np.flatnonzero(labels == c)[:per_class]
        for j, ax in enumerate(axes[c]):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.spines[:].set_visible(False)
            if j < len(members):
                ax.imshow(_gray(images[int(members[j])]), cmap="gray_r")
        axes[c][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    fig.subplots_adjust(left=0.2, right=0.99, top=0.99, bottom=0.01, wspace=0.05, hspace=0.05)
    return _closed(fig)


def plot_predictions(
    images: Any, labels: Any, probs: Any, class_names: Sequence[str], top: int = 3
):
    """Each image with its true class above and the model's ``top`` most probable classes as
    bars below (green: the true class)."""
    import numpy as np

    probs = np.asarray(probs)
    labels = np.asarray(labels)
    plt = _pyplot()
    n = len(labels)
    fig, axes = plt.subplots(
        2, n, figsize=(1.9 * n, 3.6), squeeze=False, gridspec_kw={"height_ratios": [1.2, 1]}
    )
    for i in range(n):
        image_ax, bar_ax = axes[0][i], axes[1][i]
        image_ax.imshow(_gray(images[i]), cmap="gray_r")
        image_ax.set_title(f"true: {class_names[labels[i]]}", fontsize=8)
        image_ax.axis("off")
        best = np.argsort(-probs[i])[:top][::-1]
        colors = ["#55a868" if c == labels[i] else "#c44e52" for c in best]
        bar_ax.barh(range(len(best)), probs[i][best], color=colors)
        bar_ax.set_yticks(range(len(best)), [class_names[c] for c in best], fontsize=7)
        bar_ax.set_xlim(0, 1)
        bar_ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    return _closed(fig)


def plot_member_accuracy(
    accuracies: Mapping[str, Mapping[str, float]],
    *,
    ylabel: str = "test accuracy %",
    reference: tuple[str, float] | None = None,
):
    """A dot plot per cohort member; ``accuracies`` maps a group's label (e.g. "bundled heads")
    to ``{member name: fraction in [0, 1]}`` (accuracy, agreement, ...), shown in percent, each
    dot labelled with its value. A member present in one group only sits on its tick; the
    legend is below the axes, so it covers no point. ``reference`` = (label, fraction) draws a
    dashed line (e.g. the teacher's accuracy)."""
    plt = _pyplot()
    groups = list(accuracies)
    members = list(dict.fromkeys(m for g in groups for m in accuracies[g]))
    markers, colours = "osD^v", ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"]
    fig, ax = plt.subplots(figsize=(1.3 * len(members) + 2, 3.8))
    for g, group in enumerate(groups):
        xs, ys = [], []
        for m, name in enumerate(members):
            holders = [h for h in groups if name in accuracies[h]]
            if group not in holders:
                continue
            offset = 0.18 * (holders.index(group) - (len(holders) - 1) / 2)
            xs.append(m + offset)
            ys.append(100 * accuracies[group][name])
        ax.plot(xs, ys, ls="", marker=markers[g % 5], color=colours[g % 5], ms=7, label=group)
        for x, y in zip(xs, ys, strict=True):
            ax.annotate(
                f"{y:.1f}",
                (x, y),
                xytext=(0, 6),
                textcoords="offset points",
                ha="center",
                fontsize=7,
            )
    if reference is not None:
        name, value = reference
        ax.axhline(100 * value, color="gray", ls="--", lw=1, label=f"{name} ({100 * value:.1f}%)")
    ax.set_xticks(range(len(members)), members, fontsize=8)
    ax.set_xlim(-0.6, len(members) - 0.4)
    ax.margins(y=0.15)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.14),
        ncol=len(groups) + 1,
        frameon=False,
    )
    fig.tight_layout()
    return _closed(fig)


def plot_reliability(reports: Sequence[Any]):
    """Reliability diagrams, one panel per member (:class:`dihkit.studies.cohort.MemberReport`):
    accuracy per confidence bin against the diagonal of perfect calibration, ECE in the title.
    The gap to the bin's mean confidence is drawn in red where the member is over-confident
    (confidence above accuracy) and in purple where it overlaps the accuracy bar (under-confident);
    the number of test images in each bin is written above it (empty bins stay blank)."""
    import math

    from matplotlib.patches import Patch

    plt = _pyplot()
    colours = {"accuracy": "#4c72b0", "over": "#e8a0a2", "under": "#8a5fa8"}
    fig, axes = plt.subplots(1, len(reports), figsize=(2.7 * len(reports), 3.3), squeeze=False)
    for ax, report in zip(axes[0], reports, strict=True):
        curve = report.curve
        lefts = curve.edges[:-1]
        width = curve.edges[1] - curve.edges[0]
        for left, acc, conf, count in zip(
            lefts, curve.accuracy, curve.confidence, curve.counts, strict=True
        ):
            if not count or math.isnan(acc):
                continue
            ax.bar(left, acc, width=width, align="edge", color=colours["accuracy"])
            kind = "over" if conf >= acc else "under"
            ax.bar(
                left,
                abs(conf - acc),
                bottom=min(conf, acc),
                width=width,
                align="edge",
                color=colours[kind],
            )
            ax.text(
                left + width / 2,
                max(conf, acc) + 0.02,
                str(count),
                ha="center",
                va="bottom",
                fontsize=5,
                rotation=90,
            )
        ax.plot([0, 1], [0, 1], ls="--", c="gray", lw=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.15)
        ax.set_title(f"{report.name}\nECE {100 * report.ece:.2f}%", fontsize=8)
        ax.set_xlabel("confidence", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("accuracy (numbers: images per bin)", fontsize=7)
    handles = [
        Patch(color=colours["accuracy"], label="accuracy of the bin"),
        Patch(color=colours["over"], label="gap: over-confident (confidence > accuracy)"),
        Patch(color=colours["under"], label="gap: under-confident (accuracy > confidence)"),
    ]
    fig.legend(handles=handles, fontsize=7, loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return _closed(fig)


def plot_head_distributions(
    image: Any,
    distributions: Mapping[str, Sequence[float]],
    class_names: Sequence[str],
    *,
    title: str = "",
    highlight: int | None = None,
):
    """The DIH paper's Fig. 2 for one image: the image, then one bar chart per softened
    distribution (each head, the teacher, the cohort average); ``highlight`` colours the true
    class."""
    plt = _pyplot()
    panels = len(distributions) + 1
    fig, axes = plt.subplots(
        1,
        panels,
        figsize=(1.2 + 2.1 * len(distributions), 2.5),
        squeeze=False,
        gridspec_kw={"width_ratios": [0.8] + [1] * len(distributions)},
    )
    axes = axes[0]
    axes[0].imshow(_gray(image), cmap="gray_r")
    axes[0].axis("off")
    axes[0].set_title(title, fontsize=8)
    for ax, (name, probs) in zip(axes[1:], distributions.items(), strict=True):
        colors = ["#55a868" if c == highlight else "#4c72b0" for c in range(len(class_names))]
        ax.bar(range(len(class_names)), list(probs), color=colors)
        ax.set_ylim(0, 1)
        ax.set_title(name, fontsize=8)
        ax.set_xticks(range(len(class_names)), list(class_names), rotation=90, fontsize=6)
        ax.tick_params(axis="y", labelsize=6)
    axes[1].set_ylabel("probability (green: true class)", fontsize=7)
    fig.tight_layout()
    return _closed(fig)


def head_explorer_figure(
    cohort_logits: Any,
    image: Any,
    class_names: Sequence[str],
    member_names: Sequence[str],
    *,
    label: int | None = None,
    taus: Sequence[float] = (1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 20.0),
    tau: float = 10.0,
):
    """The plotly twin of :func:`dihkit.viz.widgets.head_explorer` for one image, for pages without
    a kernel: a head dropdown (each member or "all") and a temperature slider over ``taus``.

    ``cohort_logits`` is ``[k+1, C]`` (this image's logits from every member). Every grid point
    (choice, tau) has its own precomputed set of bar traces, shown by the controls; the states
    are listed in ``fig.layout.meta["states"]`` (choice, tau, trace indices). Switching the head
    resets the temperature to ``tau`` (added to ``taus`` if missing)."""
    import plotly.graph_objects as go
    import torch
    from plotly.subplots import make_subplots

    logits = torch.as_tensor(cohort_logits, dtype=torch.float64)
    members = list(member_names)
    if logits.shape != (len(members), len(class_names)):
        raise ValueError(
            f"cohort_logits must be [{len(members)}, {len(class_names)}] (members x classes), "
            f"got {tuple(logits.shape)}"
        )
    taus = sorted({float(t) for t in taus} | {float(tau)})
    average_name = "cohort average"
    panels = [*members, average_name]
    fig = make_subplots(
        rows=1,
        cols=len(panels) + 1,
        subplot_titles=["image", *panels],
        column_widths=[0.7] + [1.0] * len(panels),
        horizontal_spacing=0.03,
    )
    pixels = _gray(image)
    if pixels.ndim == 3:  # colour: an RGB image trace; grey: a heatmap
        fig.add_trace(go.Image(z=pixels.tolist()), 1, 1)
    else:
        fig.add_trace(go.Heatmap(z=pixels.tolist(), colorscale="Greys", showscale=False), 1, 1)
    choices = [*members, "all"]
    short = list(class_names)
    states: list[dict[str, Any]] = []
    for choice in choices:
        shown = members if choice == "all" else [choice]
        for t in taus:
            probs = softened(logits, t)
            columns = {m: probs[members.index(m)] for m in shown}
            columns[average_name] = probs.mean(dim=0)
            indices = []
            for name, values in columns.items():
                colors = ["#55a868" if c == label else "#4c72b0" for c in range(len(short))]
                fig.add_trace(
                    go.Bar(
                        x=short,
                        y=values.tolist(),
                        marker_color=colors,
                        name=name,
                        visible=False,
                        showlegend=False,
                        hovertemplate="%{x}: %{y:.3f}<extra>" + name + "</extra>",
                    ),
                    1,
                    panels.index(name) + 2,
                )
                indices.append(len(fig.data) - 1)
            states.append({"head": choice, "tau": t, "traces": indices})
    total = len(fig.data)

    def visible(state: Mapping[str, Any]) -> list[bool]:
        return [i == 0 or i in state["traces"] for i in range(total)]

    def state_of(choice: str, t: float) -> dict[str, Any]:
        return states[choices.index(choice) * len(taus) + taus.index(t)]

    def heading(choice: str, t: float) -> str:
        return f"softened distributions, head: {choice}, tau = {t:g}"

    start = taus.index(float(tau))
    sliders = [
        {
            "active": start,
            "visible": choice == "all",
            "currentvalue": {"prefix": "tau = "},
            "pad": {"t": 40},
            "steps": [
                {
                    "label": f"{t:g}",
                    "method": "update",
                    "args": [
                        {"visible": visible(state_of(choice, t))},
                        {"title.text": heading(choice, t)},
                    ],
                }
                for t in taus
            ],
        }
        for choice in choices
    ]
    buttons = []
    for c, choice in enumerate(choices):
        layout = {f"sliders[{j}].visible": j == c for j in range(len(choices))}
        layout[f"sliders[{c}].active"] = start
        layout["title.text"] = heading(choice, float(tau))
        buttons.append(
            {
                "label": choice,
                "method": "update",
                "args": [{"visible": visible(state_of(choice, float(tau)))}, layout],
            }
        )
    for i, flag in enumerate(visible(state_of("all", float(tau)))):
        fig.data[i].visible = flag
    fig.update_yaxes(range=[0, 1], showticklabels=False)
    fig.update_yaxes(autorange="reversed", row=1, col=1)
    fig.update_yaxes(showticklabels=True, title_text="probability", row=1, col=2)
    fig.update_xaxes(showticklabels=False, row=1, col=1)
    fig.update_xaxes(tickfont={"size": 8})
    fig.update_layout(
        title=heading("all", float(tau)),
        title_x=0.01,
        height=450,
        width=max(700, 190 * (len(panels) + 1)),
        margin={"t": 110, "b": 100, "l": 30, "r": 20},
        sliders=sliders,
        updatemenus=[
            {
                "buttons": buttons,
                "active": len(choices) - 1,
                "x": 1,
                "xanchor": "right",
                "y": 1.2,
                "yanchor": "bottom",
                "pad": {"b": 10},
            }
        ],
        meta={"states": states, "choices": choices, "taus": taus},
    )
    return fig
