"""Figures for the notebooks: matplotlib for static figures, plotly for interactive ones.

Every builder returns a figure and displays nothing; matplotlib and plotly are imported inside
the functions, so ``import dihkit`` (and the CLI) stays fast. :mod:`dihkit.viz.kd` holds the
knowledge-distillation figures, :mod:`dihkit.viz.teacher_heads` the tour's and the head
explorer's, :mod:`dihkit.viz.student_heads` the MHKD/DSKD figures, :mod:`dihkit.viz.widgets`
the explorers; :mod:`dihkit.viz.output` displays interactive outputs with a PNG twin.
"""

from dihkit.viz.kd import (
    plot_capacity_gap,
    plot_entropy_against_tau,
    plot_gradient_norms,
    plot_learning_curves,
    plot_method_comparison,
    temperature_figure,
)
from dihkit.viz.output import (
    PLOTLY_MIMETYPE,
    figure_png,
    plotly_bundle,
    plotly_div,
    show_plotly,
    show_widget,
    widget_bundle,
)
from dihkit.viz.teacher_heads import (
    head_explorer_figure,
    plot_class_grid,
    plot_head_distributions,
    plot_member_accuracy,
    plot_predictions,
    plot_reliability,
)

__all__ = [
    "PLOTLY_MIMETYPE",
    "figure_png",
    "head_explorer_figure",
    "plot_capacity_gap",
    "plot_class_grid",
    "plot_entropy_against_tau",
    "plot_gradient_norms",
    "plot_head_distributions",
    "plot_learning_curves",
    "plot_member_accuracy",
    "plot_method_comparison",
    "plot_predictions",
    "plot_reliability",
    "plotly_bundle",
    "plotly_div",
    "show_plotly",
    "show_widget",
    "temperature_figure",
    "widget_bundle",
]
