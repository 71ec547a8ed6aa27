"""The notebooks' one import: every name a notebook uses, re-exported from where it lives.

Notebooks write ``from dihkit.lab import ...`` and nothing else from the kit, so the package
can be reorganised without touching them; a name a notebook needs is added here.
"""

# isort: skip_file
from dihkit.book.timings import timings_markdown
from dihkit.book.tour import profiles_table, sequence_table
from dihkit.data.datasets import dataset_spec, per_class_subset
from dihkit.models import MODEL_NAMES
from dihkit.losses import adaptive_weights, dih_loss, kd_loss, kd_loss_from_probs, kd_student_loss
from dihkit.nn.heads import HEAD_TYPES, LinearHead, PooledHead, feature_shapes, mount_heads
from dihkit.runs.pipeline import train_heads
from dihkit.runs.profiles import (
    check_choice,
    check_method_parameters,
    check_range,
    describe_settings,
    resolve,
)
from dihkit.runs.results import RunSpec, collect_results, collected_runs, run_grid, write_results
from dihkit.methods import resolve_options
from dihkit.studies.kd_parts import (
    attention_agreement,
    block_costs_markdown,
    cd_candidates,
    kd_parts_example,
    stage_matched_teacher,
    kd_split,
    split_shares,
    trained_student,
)
from dihkit.losses.decoupled import dkd_loss, split_kd
from dihkit.losses.decomposition import variant_probs
from dihkit.methods.channel_distillation import stage_channel_attention
from dihkit.methods.neighbourhood_cost import neighbourhood_costs
from dihkit.models import build_model
from dihkit.reproduce.published import published_markdown
from dihkit.viz.kd_parts import (
    kd_split_explorer,
    kd_split_figure,
    plot_channel_attention,
    plot_kd_split,
    plot_split_shares,
)
from dihkit.studies.curves import curve_gaps
from dihkit.studies.recap import claim_results, methods_markdown, recap_markdown
from dihkit.studies.capacity import (
    capacity_ladder,
    capacity_points,
    default_assistant,
    model_parameters,
    teacher_arch,
    teacher_ladder_markdown,
)
from dihkit.studies.cohort import (
    bundled_teachers_table,
    cohort_markdown,
    example_indices,
    member_reports,
    predict_logits,
    reports_table,
    split_logits,
)
from dihkit.studies.dskd_weights import (
    describe_weights,
    load_weight_records,
    records_summary,
    sum_to_one_gap,
    weight_histograms,
    weight_trajectory,
)
from dihkit.studies.reading_supervision import (
    ablation_default,
    ablation_reading_markdown,
    ablation_section_markdown,
    comparisons,
    head_cost_markdown,
    head_kl_markdown,
    mhkd_ablation_specs,
    mhkd_head_cost,
    mhkd_teacher_heads,
    reading_markdown,
    weight_spread,
    weights_markdown,
)
from dihkit.studies.paper_numbers import (
    DSKD_TABLE2,
    DSKD_TABLE3,
    MHKD_TABLE2,
    dih_table2_markdown,
    dih_table3_markdown,
    dskd_table1_markdown,
    dskd_table3_markdown,
    mhkd_table2_markdown,
)
from dihkit.studies.reading_kd import (
    capacity_comparisons,
    capacity_reading,
    cohort_reading,
    dih_comparisons,
    dih_reading,
    entropy_reading,
    kd_reading,
)
from dihkit.studies.student_heads import (
    DSKD_ABLATIONS,
    DSKD_ABLATION_LABELS,
    ablation_markdown,
    ablation_rows,
    ablation_settings,
    build_distiller,
    check_positions,
    default_head_width,
    head_pairs_markdown,
    mhkd_head_pairs,
    parameter_budget,
    parameter_budget_markdown,
    profile_default,
    shallow_classifier_rows,
    shallow_classifiers_markdown,
    term_curves,
)
from dihkit.studies.exercises import check_close, check_equal, check_predicate
from dihkit.studies.exercises_01_03 import call_answer, loglog_slope
from dihkit.methods.dih import IntermediateHeads
from dihkit.methods.dskd import DeeplySupervisedKD
from dihkit.methods.mhkd import MultiHeadKD
from dihkit.studies.exercises_04_06 import (
    cohort_size,
    dih_example,
    entropy_comparison,
    largest_last_epoch,
    shallow_losses_example,
)
from dihkit.studies.reading_comparison import comparison_reading
from dihkit.studies.seeds import (
    learning_curves,
    noise_verdict,
    summarise_runs,
    summary_markdown,
    verdict_class,
)
from dihkit.studies.temperature import (
    TAU_GRID,
    entropy_against_tau,
    kd_gradient_norms,
    kd_identity,
    one_per_class,
)
from dihkit.teachers.loading import load_teacher
from dihkit.training.target_cache import state_digest
from dihkit.viz.kd import (
    plot_capacity_gap,
    plot_entropy_against_tau,
    plot_gradient_norms,
    plot_learning_curves,
    plot_method_comparison,
    plot_softened_distribution,
    temperature_figure,
)
from dihkit.viz.student_heads import (
    plot_term_curves,
    plot_weight_histograms,
    plot_weight_trajectories,
    weight_histogram_figure,
)
from dihkit.viz.teacher_heads import (
    plot_class_grid,
    plot_predictions,
    head_explorer_figure,
    plot_member_accuracy,
    plot_reliability,
)
from dihkit.viz.output import show_plotly, show_widget
from dihkit.viz.source import source_block
from dihkit.viz.widgets import head_explorer, temperature_explorer

__all__ = [
    "profiles_table",
    "sequence_table",
    "bundled_teachers_table",
    "example_indices",
    "plot_class_grid",
    "plot_predictions",
    "DSKD_ABLATIONS",
    "DSKD_ABLATION_LABELS",
    "DSKD_TABLE2",
    "DSKD_TABLE3",
    "HEAD_TYPES",
    "MHKD_TABLE2",
    "MODEL_NAMES",
    "RunSpec",
    "TAU_GRID",
    "ablation_markdown",
    "ablation_rows",
    "ablation_settings",
    "build_distiller",
    "capacity_ladder",
    "capacity_points",
    "check_choice",
    "check_method_parameters",
    "check_positions",
    "check_range",
    "cohort_markdown",
    "collect_results",
    "collected_runs",
    "check_close",
    "check_equal",
    "check_predicate",
    # dihkit.studies.exercises_01_03 and the code the exercises of notebooks 01-03 use
    "LinearHead",
    "PooledHead",
    "call_answer",
    "kd_loss",
    "kd_loss_from_probs",
    "kd_student_loss",
    "loglog_slope",
    "model_parameters",
    "teacher_arch",
    "comparison_reading",
    "dataset_spec",
    "default_assistant",
    "default_head_width",
    "describe_settings",
    "describe_weights",
    "dih_table2_markdown",
    "dih_table3_markdown",
    "dskd_table1_markdown",
    "dskd_table3_markdown",
    "entropy_against_tau",
    "feature_shapes",
    "head_explorer",
    "head_explorer_figure",
    "head_pairs_markdown",
    "kd_gradient_norms",
    "kd_identity",
    "learning_curves",
    "load_teacher",
    "load_weight_records",
    "member_reports",
    "mhkd_head_pairs",
    "mhkd_table2_markdown",
    "mount_heads",
    "noise_verdict",
    "one_per_class",
    "parameter_budget",
    "parameter_budget_markdown",
    "per_class_subset",
    "plot_capacity_gap",
    "plot_entropy_against_tau",
    "plot_gradient_norms",
    "plot_learning_curves",
    "plot_member_accuracy",
    "plot_method_comparison",
    "plot_softened_distribution",
    "plot_reliability",
    "plot_term_curves",
    "plot_weight_histograms",
    "plot_weight_trajectories",
    "predict_logits",
    "profile_default",
    "records_summary",
    "reports_table",
    "resolve",
    "run_grid",
    "shallow_classifier_rows",
    "shallow_classifiers_markdown",
    "show_plotly",
    "show_widget",
    "source_block",
    "split_logits",
    "state_digest",
    "sum_to_one_gap",
    "summarise_runs",
    "summary_markdown",
    "teacher_ladder_markdown",
    "temperature_explorer",
    "attention_agreement",
    "cd_candidates",
    "curve_gaps",
    "block_costs_markdown",
    "build_model",
    "neighbourhood_costs",
    "kd_parts_example",
    "stage_matched_teacher",
    "resolve_options",
    "kd_split",
    "split_shares",
    "trained_student",
    "dkd_loss",
    "split_kd",
    "variant_probs",
    "stage_channel_attention",
    "published_markdown",
    "kd_split_explorer",
    "kd_split_figure",
    "plot_channel_attention",
    "plot_kd_split",
    "plot_split_shares",
    "claim_results",
    "methods_markdown",
    "recap_markdown",
    "timings_markdown",
    "temperature_figure",
    "term_curves",
    "train_heads",
    "weight_histogram_figure",
    "weight_histograms",
    "verdict_class",
    "weight_trajectory",
    "write_results",
    # dihkit.studies.reading_kd
    "capacity_comparisons",
    "capacity_reading",
    "cohort_reading",
    "dih_comparisons",
    "dih_reading",
    "entropy_reading",
    "kd_reading",
    # dihkit.studies.reading_supervision
    "ablation_default",
    "ablation_reading_markdown",
    "ablation_section_markdown",
    "comparisons",
    "head_cost_markdown",
    "head_kl_markdown",
    "mhkd_ablation_specs",
    "mhkd_head_cost",
    "mhkd_teacher_heads",
    "reading_markdown",
    "weight_spread",
    "weights_markdown",
    # dihkit.studies.exercises_04_06 and the code the exercises of notebooks 04-06 use
    "DeeplySupervisedKD",
    "IntermediateHeads",
    "MultiHeadKD",
    "adaptive_weights",
    "cohort_size",
    "dih_example",
    "dih_loss",
    "entropy_comparison",
    "largest_last_epoch",
    "shallow_losses_example",
]
