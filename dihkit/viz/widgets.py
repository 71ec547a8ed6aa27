"""Interactive explorers for the notebooks. Each builder returns an ipywidgets container without
displaying it and exposes what it computed as attributes, so tests drive it headlessly by setting
widget values. ipywidgets is imported inside the builders, so ``import dihkit`` stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dihkit.losses import softened
from dihkit.studies.cohort import predict_logits
from dihkit.studies.temperature import entropy as entropy_of
from dihkit.studies.temperature import softened_grid
from dihkit.viz.kd import plot_softened_distribution
from dihkit.viz.output import figure_png
from dihkit.viz.teacher_heads import plot_head_distributions

# --------------------------------------------------------------------------------------------
# 01_knowledge_distillation: softmax with temperature


def temperature_explorer(
    teacher_logits: Any,
    class_names: Sequence[str],
    *,
    image_names: Sequence[str] | None = None,
    tau: float = 1.0,
    tau_range: tuple[float, float] = (0.5, 20.0),
    step: float = 0.5,
):
    """A widget (not displayed) to drag the temperature and watch a teacher's softened
    distribution ``softmax(z / tau)`` on one image.

    ``teacher_logits`` is ``[N, C]`` (or ``[C]`` for one image); with several images a dropdown
    picks one, labelled by ``image_names``. One bar per class shows its probability. The returned
    ``VBox`` carries ``tau_slider``, ``image_picker``, ``distribution`` (the current
    probabilities, a float64 numpy array that sums to 1) and ``entropy`` (nats); both are
    recomputed whenever the slider or the picker changes, so tests can set ``tau_slider.value``
    without a browser. ``snapshot()`` returns a PNG of the current state.
    """
    import ipywidgets as widgets
    import numpy as np
    import torch

    logits = torch.as_tensor(np.asarray(teacher_logits), dtype=torch.float64)
    if logits.dim() == 1:
        logits = logits.unsqueeze(0)
    if logits.dim() != 2 or logits.shape[1] != len(class_names):
        raise ValueError(
            f"teacher_logits must be [N, {len(class_names)}] (one row per image, one column per "
            f"class name), got {tuple(logits.shape)}"
        )
    low, high = tau_range
    if not 0 < low <= tau <= high:
        raise ValueError(f"tau = {tau!r} must lie in tau_range {tau_range!r} (all positive)")
    names = list(image_names) if image_names is not None else []
    names += [f"image {i}" for i in range(len(names), logits.shape[0])]

    tau_slider = widgets.FloatSlider(
        value=tau, min=low, max=high, step=step, description="tau", continuous_update=True
    )
    image_picker = widgets.Dropdown(
        options=[(name, i) for i, name in enumerate(names)],
        value=0,
        description="image",
        disabled=logits.shape[0] == 1,
    )
    bars = [widgets.FloatProgress(value=0.0, min=0.0, max=1.0) for _ in class_names]
    values = [widgets.Label() for _ in class_names]
    rows = [
        widgets.HBox([widgets.Label(str(name), layout=widgets.Layout(width="110px")), bar, value])
        for name, bar, value in zip(class_names, bars, values, strict=True)
    ]
    summary = widgets.HTML()
    box = widgets.VBox([widgets.HBox([tau_slider, image_picker]), *rows, summary])

    def update(_change: Any = None) -> None:
        row = logits[image_picker.value]
        probs = softened_grid(row, [tau_slider.value])[0]
        box.distribution = probs.numpy()
        box.entropy = float(entropy_of(probs))
        for bar, label, p in zip(bars, values, box.distribution, strict=True):
            bar.value = float(p)
            label.value = f"{p:.3f}"
        summary.value = (
            f"tau = {tau_slider.value:g}: top class <b>{class_names[int(probs.argmax())]}</b> "
            f"with {float(probs.max()):.3f}; entropy {box.entropy:.3f} nats "
            f"(uniform: {np.log(len(class_names)):.3f})"
        )

    def snapshot() -> bytes:
        """A PNG of the current state (what :func:`dihkit.viz.output.show_widget` shows beside
        the widget for viewers without a kernel)."""
        fig = plot_softened_distribution(
            logits[image_picker.value],
            class_names,
            tau_slider.value,
            title=names[image_picker.value],
        )
        return figure_png(fig)

    tau_slider.observe(update, names="value")
    image_picker.observe(update, names="value")
    box.tau_slider, box.image_picker, box.snapshot = tau_slider, image_picker, snapshot
    update()
    return box


# --------------------------------------------------------------------------------------------
# 03_intermediate_heads: the head explorer (the DIH paper's Fig. 2)


def head_explorer(
    cohort: Any,
    images: Any,
    labels: Any,
    class_names: Sequence[str],
    tau: float = 10.0,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    logits: Any = None,
    member_names: Sequence[str] | None = None,
    device: str = "cpu",
    tau_range: tuple[float, float] = (0.5, 20.0),
    step: float = 0.5,
):
    """A widget (not displayed) to compare a cohort's softened distributions on one image: a head
    dropdown (each head, the teacher, or "all"), a temperature slider, and an image picker (a
    class dropdown and an index slider within that class). The picture shows the image, each
    chosen member's ``softmax(z / tau)`` and the cohort average side by side (DIH Fig. 2).

    ``images`` are uint8 ``(N, C, H, W)``; the cohort's logits are computed once with the
    dataset's ``mean``/``std`` (or passed as ``logits``, ``[k+1, N, C]``, with ``cohort=None``
    and ``member_names``). The returned ``VBox`` carries the controls (``head_picker``,
    ``tau_slider``, ``class_picker``, ``index_slider``) and what it computed: ``image_index``
    (position in ``images``), ``distributions`` (member name -> probabilities, float64 numpy,
    for the members shown) and ``average`` (the mean of all k+1 members' distributions), updated
    whenever a control changes; ``logits`` holds every member's logits for every image,
    ``picture`` the image widget showing them and ``snapshot()`` that picture as PNG bytes.
    """
    import ipywidgets as widgets
    import numpy as np
    import torch

    names = list(member_names if member_names is not None else cohort.member_names)
    if logits is None:
        if mean is None or std is None:
            raise ValueError("head_explorer needs the dataset's mean and std (or logits)")
        logits = predict_logits(cohort, torch.as_tensor(images), mean=mean, std=std, device=device)
    logits = torch.as_tensor(logits, dtype=torch.float64)
    labels = np.asarray(labels)
    if logits.shape != (len(names), len(labels), len(class_names)):
        raise ValueError(
            f"logits must be [{len(names)}, {len(labels)}, {len(class_names)}] (members x images "
            f"x classes), got {tuple(logits.shape)}"
        )
    low, high = tau_range
    if not 0 < low <= tau <= high:
        raise ValueError(f"tau = {tau!r} must lie in tau_range {tau_range!r} (all positive)")
    by_class = {c: np.flatnonzero(labels == c) for c in range(len(class_names))}
    present = [c for c in by_class if len(by_class[c])]
    if not present:
        raise ValueError("head_explorer needs at least one image")

    head_picker = widgets.Dropdown(options=[*names, "all"], value="all", description="head")
    tau_slider = widgets.FloatSlider(
        value=tau, min=low, max=high, step=step, description="tau", continuous_update=False
    )
    class_picker = widgets.Dropdown(
        options=[(class_names[c], c) for c in present], value=present[0], description="class"
    )
    index_slider = widgets.IntSlider(
        value=0, min=0, max=len(by_class[present[0]]) - 1, description="index"
    )
    picture = widgets.Image(format="png")
    caption = widgets.HTML()
    box = widgets.VBox(
        [widgets.HBox([head_picker, tau_slider]), widgets.HBox([class_picker, index_slider])]
        + [picture, caption]
    )
    syncing = {"busy": False}

    def update(_change: Any = None) -> None:
        if syncing["busy"]:
            return
        position = int(by_class[class_picker.value][index_slider.value])
        probs = softened(logits[:, position], tau_slider.value).double().numpy()
        shown = names if head_picker.value == "all" else [head_picker.value]
        box.image_index = position
        box.distributions = {name: probs[names.index(name)] for name in shown}
        box.average = probs.mean(axis=0)
        label = int(labels[position])
        fig = plot_head_distributions(
            images[position],
            {**box.distributions, "cohort average": box.average},
            class_names,
            title=f"image {position}\ntrue: {class_names[label]}",
            highlight=label,
        )
        picture.value = figure_png(fig)
        tops = ", ".join(
            f"{name}: {class_names[int(p.argmax())]} {p.max():.2f}"
            for name, p in box.distributions.items()
        )
        caption.value = (
            f"tau = {tau_slider.value:g}; top class (probability): {tops}; cohort average: "
            f"{class_names[int(box.average.argmax())]} {box.average.max():.2f}"
        )

    def new_class(change: Any) -> None:
        syncing["busy"] = True
        index_slider.value = 0
        index_slider.max = len(by_class[change["new"]]) - 1
        syncing["busy"] = False
        update()

    for control in (head_picker, tau_slider, index_slider):
        control.observe(update, names="value")
    class_picker.observe(new_class, names="value")
    box.logits, box.picture = logits, picture
    box.snapshot = lambda: picture.value  # a PNG of the current state
    box.head_picker, box.tau_slider = head_picker, tau_slider
    box.class_picker, box.index_slider = class_picker, index_slider
    update()
    return box
