"""Figures and the explorer of notebook 08 (what KD transfers): one sample's KD loss split into
TCKD and NCKD as the temperature and DKD's weights move (a widget, its plotly twin and a static
PNG of one state), the parts' shares over a batch, and CD's channel attention per stage.

Every builder returns its figure or widget and displays nothing; matplotlib, plotly and
ipywidgets are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dihkit.studies.kd_parts import KDSplit, kd_split
from dihkit.viz._matplotlib import _closed, _pyplot
from dihkit.viz.frames import frame_slider_figure, nearest_on_log_grid
from dihkit.viz.output import figure_png

PARTS = ("TCKD", "(1 - p_t) NCKD", "KD = sum", "NCKD", "DKD = a TCKD + b NCKD")
COLOURS = ("#4c72b0", "#dd8452", "#8c8c8c", "#c44e52", "#55a868")


def _values(split: KDSplit) -> list[float]:
    return [split.tckd, split.nontarget * split.nckd, split.kd, split.nckd, split.dkd]


def plot_kd_split(split: KDSplit, *, title: str = ""):
    """One sample's KD loss in parts as bars: TCKD and ``(1 - p_t) NCKD`` (which sum to KD), the
    unweighted NCKD, and DKD's ``alpha TCKD + beta NCKD``; the weights in the title."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    bars = ax.bar(range(len(PARTS)), _values(split), color=COLOURS)
    ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(range(len(PARTS)), PARTS, fontsize=8, rotation=15)
    ax.set_ylabel("loss (with tau^2)")
    heading = (
        f"tau = {split.tau:g}, teacher 1 - p_t = {split.nontarget:.3f}, "
        f"alpha = {split.alpha:g}, beta = {split.beta:g}"
    )
    ax.set_title(f"{title}\n{heading}" if title else heading, fontsize=9)
    ax.margins(y=0.15)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _closed(fig)


def kd_split_figure(
    student_logits: Any,
    teacher_logits: Any,
    label: int,
    taus: Sequence[float],
    *,
    alpha: float = 1.0,
    beta: float = 8.0,
    start_tau: float = 4.0,
    title: str = "",
):
    """The plotly twin of :func:`kd_split_explorer` for one sample and fixed weights: the bars
    of :func:`plot_kd_split` with a slider over ``taus`` (one precomputed frame each), opening at
    the grid point nearest ``start_tau``."""
    import plotly.graph_objects as go

    splits = [kd_split(student_logits, teacher_logits, label, t, alpha, beta) for t in taus]

    def bars(split: KDSplit) -> list[Any]:
        values = _values(split)
        return [
            go.Bar(
                x=list(PARTS), y=values, marker_color=list(COLOURS),
                text=[f"{v:.3f}" for v in values], textposition="outside",
            )
        ]  # fmt: skip

    def heading(split: KDSplit) -> str:
        text = f"tau = {split.tau:g}, teacher 1 - p_t = {split.nontarget:.3f}"
        return f"{title}: {text}" if title else text

    top = max(max(_values(s)) for s in splits)
    return frame_slider_figure(
        [bars(s) for s in splits],
        [heading(s) for s in splits],
        [f"{float(t):g}" for t in taus],
        names=[f"tau={float(t):g}" for t in taus],
        start=nearest_on_log_grid(taus, start_tau),
        prefix="tau = ",
        yaxis={"range": [0, 1.15 * top], "title": f"loss (tau^2; alpha {alpha:g}, beta {beta:g})"},
    )


def kd_split_explorer(
    student_logits: Any,
    teacher_logits: Any,
    labels: Any,
    class_names: Sequence[str],
    *,
    tau: float = 4.0,
    alpha: float = 1.0,
    beta: float = 8.0,
    image_names: Sequence[str] | None = None,
):
    """A widget (not displayed): pick a sample, move tau, alpha and beta, and watch its KD loss
    split into TCKD and NCKD (``KD = TCKD + (1 - p_t) NCKD``) beside DKD's ``alpha TCKD +
    beta NCKD``. ``student_logits``/``teacher_logits`` are ``[N, C]``, ``labels`` ``[N]``. The
    returned ``VBox`` carries the controls (``tau_slider``, ``alpha_slider``, ``beta_slider``,
    ``sample_picker``), ``split`` (the current :class:`KDSplit`), and ``snapshot()`` (a PNG of
    the current state), updated whenever a control changes."""
    import ipywidgets as widgets
    import torch

    student = torch.as_tensor(student_logits, dtype=torch.float32)
    teacher = torch.as_tensor(teacher_logits, dtype=torch.float32)
    labels = [int(v) for v in torch.as_tensor(labels).reshape(-1)]
    if student.shape != teacher.shape or student.dim() != 2 or student.shape[0] != len(labels):
        raise ValueError(
            f"student and teacher logits must both be [N, C] with N = {len(labels)} labels, got "
            f"{tuple(student.shape)} and {tuple(teacher.shape)}"
        )
    names = list(image_names or [])
    names += [f"sample {i} ({class_names[labels[i]]})" for i in range(len(names), len(labels))]
    tau_slider = widgets.FloatSlider(value=tau, min=0.5, max=20, step=0.5, description="tau")
    alpha_slider = widgets.FloatSlider(value=alpha, min=0, max=4, step=0.25, description="alpha")
    beta_slider = widgets.FloatSlider(value=beta, min=0, max=16, step=0.5, description="beta")
    sample_picker = widgets.Dropdown(
        options=[(n, i) for i, n in enumerate(names)], value=0, description="sample"
    )
    picture = widgets.Image(format="png")
    caption = widgets.HTML()
    box = widgets.VBox(
        [widgets.HBox([sample_picker, tau_slider]), widgets.HBox([alpha_slider, beta_slider]),
         picture, caption]
    )  # fmt: skip

    def update(_change: Any = None) -> None:
        i = sample_picker.value
        box.split = kd_split(
            student[i], teacher[i], labels[i], tau_slider.value, alpha_slider.value,
            beta_slider.value,
        )  # fmt: skip
        picture.value = figure_png(plot_kd_split(box.split, title=names[i]))
        s = box.split
        share = s.tckd / s.kd if s.kd > 0 else float("nan")
        caption.value = (
            f"KD {s.kd:.3f} = TCKD {s.tckd:.3f} + {s.nontarget:.3f} x NCKD {s.nckd:.3f} "
            f"(TCKD's share {share:.0%}); DKD {s.dkd:.3f}"
        )

    for control in (tau_slider, alpha_slider, beta_slider, sample_picker):
        control.observe(update, names="value")
    box.tau_slider, box.alpha_slider, box.beta_slider = tau_slider, alpha_slider, beta_slider
    box.sample_picker, box.picture = sample_picker, picture
    box.snapshot = lambda: picture.value
    update()
    return box


def plot_split_shares(rows: Sequence[Mapping[str, float]]):
    """Over a batch, against tau (log scale): the mean share of KD carried by TCKD and by the
    weighted NCKD, and the teacher's mean ``1 - p_t`` (:func:`dihkit.studies.kd_parts.
    split_shares`)."""
    plt = _pyplot()
    taus = [r["tau"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.plot(taus, [r["tckd_share"] for r in rows], marker="o", label="TCKD's share of KD")
    ax.plot(taus, [r["nckd_share"] for r in rows], marker="s", label="(1 - p_t) NCKD's share")
    ax.plot(taus, [r["mean_nontarget"] for r in rows], ls="--", c="gray",
            label="teacher's mean 1 - p_t")  # fmt: skip
    ax.set_xscale("log")
    ax.set_ylim(0, 1)
    ax.set_xlabel("temperature tau (log scale)")
    ax.set_ylabel("share / probability")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _closed(fig)


def plot_channel_attention(attention: Mapping[str, Mapping[str, Any]], *, sort_by: str = ""):
    """CD's channel attention, one panel per stage: for each model (name -> ``{stage: [N, C]}``)
    the mean over images of each channel's average activation, channels sorted by the
    ``sort_by`` model's values (default: the first model), so matching profiles overlap."""
    import numpy as np

    plt = _pyplot()
    models = list(attention)
    stages = list(attention[models[0]])
    reference = sort_by or models[0]
    fig, axes = plt.subplots(1, len(stages), figsize=(3.8 * len(stages), 3.2), squeeze=False)
    for ax, stage in zip(axes[0], stages, strict=True):
        order = np.argsort(-np.asarray(attention[reference][stage]).mean(axis=0))
        for name in models:
            values = np.asarray(attention[name][stage]).mean(axis=0)
            ax.plot(values[order], marker=".", ms=3, lw=1, label=name)
        ax.set_title(stage, fontsize=9)
        ax.set_xlabel(f"channel (sorted by {reference})", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean activation (channel attention)", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return _closed(fig)
