"""The helpers behind notebooks 05 (MHKD) and 06 (DSKD): student-side heads and shallow classifiers,
loss terms over epochs, DSKD's recorded adaptive weights, their figures, and the papers' tables."""

from __future__ import annotations

import json
import math

import pytest
import torch

from dihkit.errors import ConfigError
from dihkit.methods import resolve_options
from dihkit.runs.profiles import resolve
from dihkit.studies.dskd_weights import (
    describe_weights,
    load_weight_records,
    records_summary,
    sum_to_one_gap,
    weight_histograms,
    weight_trajectory,
)
from dihkit.studies.paper_numbers import (
    DSKD_TABLE1,
    DSKD_TABLE2,
    DSKD_TABLE3,
    MHKD_TABLE2,
    PaperStdRow,
    dskd_table1_markdown,
    dskd_table3_markdown,
    mhkd_table2_markdown,
)
from dihkit.studies.seeds import GroupSummary
from dihkit.studies.student_heads import (
    CPU_HEAD_WIDTH,
    DSKD_ABLATION_LABELS,
    DSKD_ABLATIONS,
    PAPER_HEAD_WIDTH,
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
from dihkit.training.checkpoint import save_checkpoint
from dihkit.viz.student_heads import (
    plot_term_curves,
    plot_weight_histograms,
    plot_weight_trajectories,
    weight_histogram_figure,
)

# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def smoke():
    return resolve("smoke")


@pytest.fixture(scope="module")
def smoke_data(smoke):
    return smoke.load_data()


@pytest.fixture(scope="module")
def mhkd(smoke, smoke_data):
    return build_distiller("mhkd", smoke, {"head_width": 8}, smoke_data)


@pytest.fixture(scope="module")
def dskd(smoke, smoke_data):
    return build_distiller("dskd", smoke, {}, smoke_data)


def _weights(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


@pytest.fixture
def weight_run(tmp_path):
    """A run folder with three epochs of recorded weights for two shallow classifiers."""
    records = tmp_path / "records"
    records.mkdir()
    epochs = {
        1: _weights([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]]),
        2: _weights([[0.6, 0.4], [0.7, 0.3], [0.4, 0.6], [0.5, 0.5]]),
        10: _weights([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]]),
    }
    for epoch, kd in epochs.items():
        payload = {"kd_weights": kd, "fea_weights": kd.flip(1)}
        save_checkpoint(records / f"epoch-{epoch:03d}.pt", payload)  # as the training loop
    return tmp_path, epochs


def _run(history_losses: list[dict[str, float]]) -> dict:
    return {
        "history": [{"epoch": i + 1, "losses": losses} for i, losses in enumerate(history_losses)]
    }


def _summary(label: str, method: str, mean: float, paired: dict[int, float]) -> GroupSummary:
    return GroupSummary(
        label=label,
        method=method,
        n=len(paired) or 1,
        seeds=list(paired) or [0],
        mean=mean,
        std=0.01,
        last_mean=mean,
        last_std=0.01,
        seconds=1.0,
        params=100,
        paired=paired,
    )


# --------------------------------------------------------------------------------------------
# Settings helpers


def test_head_width_is_the_papers_256_in_the_paper_profile_and_small_on_cpu_profiles():
    assert default_head_width("paper") == PAPER_HEAD_WIDTH == 256
    assert default_head_width("classroom") == default_head_width("smoke") == CPU_HEAD_WIDTH


def test_profile_default_keeps_a_given_value_and_shrinks_only_the_smoke_grid(smoke):
    classroom = resolve("classroom")
    assert profile_default(["2"], smoke, ["1", "2", "3"], ["3"]) == ["2"]
    assert profile_default(None, smoke, ["1", "2", "3"], ["3"]) == ["3"]
    assert profile_default(None, classroom, ["1", "2", "3"], ["3"]) == ["1", "2", "3"]


def test_ablation_seeds_default_to_the_first_seed_on_cpu_profiles():
    classroom = resolve("classroom")
    assert ablation_settings(classroom).seeds == (0,)
    assert ablation_settings(classroom, [2, 1]).seeds == (2, 1)
    assert ablation_settings(classroom, 4).seeds == (4,)
    assert ablation_settings(resolve("paper")).seeds == (0, 1, 2)


@pytest.mark.parametrize("seeds", [[], [1, 1], [-1], [0.5]])
def test_bad_ablation_seeds_are_a_clear_error(seeds):
    with pytest.raises(ConfigError, match="ablation_seeds"):
        ablation_settings(resolve("classroom"), seeds)


def test_check_positions_accepts_indices_names_and_all(smoke):
    assert check_positions("heads", ["1", "layer2", "all", "1,3"], smoke, units=3)
    assert check_positions("exits", ["none", "1", "layer2"], smoke, shallow=True)


@pytest.mark.parametrize(
    ("values", "shallow"), [(["4"], False), (["3"], True), (["none"], False), ("1", False)]
)
def test_check_positions_names_the_parameter_when_a_value_is_bad(smoke, values, shallow):
    with pytest.raises(ConfigError, match="parameter my_heads"):
        check_positions("my_heads", values, smoke, units=3, shallow=shallow)


def test_dskd_ablations_are_valid_dskd_options_with_labels():
    assert set(DSKD_ABLATIONS) == set(DSKD_ABLATION_LABELS) == {"no_fea", "equal", "both_off"}
    for options in DSKD_ABLATIONS.values():
        resolve_options("dskd", options)
    assert DSKD_ABLATIONS["both_off"] == {"feature_loss": False, "weighting": "equal"}


# --------------------------------------------------------------------------------------------
# Heads on both sides (MHKD) and shallow classifiers (DSKD)


def test_mhkd_head_pairs_tap_the_same_unit_on_teacher_and_student(mhkd, smoke_data):
    pairs = mhkd_head_pairs(mhkd, smoke_data)
    assert [p["unit"] for p in pairs] == [1, 2, 3]
    assert [p["student_position"] for p in pairs] == ["layer1", "layer2", "layer3"]
    assert [p["teacher_position"] for p in pairs] == ["layer1", "layer2", "layer3"]
    assert pairs[0]["student_shape"] == [16, 28, 28]
    assert pairs[2]["student_shape"] == [64, 7, 7]
    for pair, head in zip(pairs, mhkd.student_exits.exits, strict=True):
        assert pair["student_head_params"] == sum(p.numel() for p in head.parameters())
        assert pair["teacher_head_params"] > 0
    table = head_pairs_markdown(pairs)
    assert "16 x 28 x 28" in table
    assert f"{pairs[0]['student_head_params']:,}" in table


def test_mhkd_single_head_builds_one_pair(smoke, smoke_data):
    distiller = build_distiller("mhkd", smoke, {"head_width": 8, "heads": "2"}, smoke_data)
    pairs = mhkd_head_pairs(distiller, smoke_data)
    assert [(p["unit"], p["student_position"]) for p in pairs] == [(2, "layer2")]


def test_the_exported_mhkd_student_is_the_plain_model(mhkd, smoke):
    budget = parameter_budget(mhkd, smoke)
    assert budget["export_is_plain"] is True
    assert budget["exported"] == budget["plain"] == 77_754  # resnet8, 10 classes, 1 channel
    assert set(budget["extras"]) == {"student_heads", "teacher_heads"}
    assert budget["training_total"] == budget["plain"] + sum(budget["extras"].values())
    table = parameter_budget_markdown(budget)
    assert "student (plain model) | 77,754 | yes" in table
    assert "| student_heads |" in table and "| no |" in table


def test_dskd_shallow_classifiers_copy_the_rest_of_the_main_branch(dskd, smoke):
    rows = shallow_classifier_rows(dskd)
    assert [r["position"] for r in rows] == ["layer1", "layer2"]
    assert rows[0]["copies"] == ["layer2", "layer3"]
    assert rows[1]["copies"] == ["layer3"]
    student = dskd.student_exits.student
    rest = sum(
        p.numel() for name in ("layer2", "layer3") for p in getattr(student, name).parameters()
    )
    fc = 64 * 10 + 10
    assert rows[0]["params"] == rest + fc
    assert all(r["projection_params"] > 0 for r in rows)
    assert parameter_budget(dskd, smoke)["export_is_plain"] is True
    table = shallow_classifiers_markdown(rows)
    assert "| c1 | layer1 | layer2, layer3 + pool + fc |" in table
    assert "projection r" in table


def test_shallow_classifier_rows_of_dsn_have_no_projection_column(smoke, smoke_data):
    dsn = build_distiller("dsn", smoke, {}, smoke_data)
    rows = shallow_classifier_rows(dsn)
    assert [r["projection_params"] for r in rows] == [0, 0]
    assert "projection" not in shallow_classifiers_markdown(rows)


# --------------------------------------------------------------------------------------------
# Loss terms over epochs and ablation tables


def test_term_curves_average_over_runs_and_undo_a_weight():
    runs = [
        _run([{"head1_kl": 1.0, "kd": 2.0}, {"head1_kl": 0.5, "kd": 1.0}]),
        _run([{"head1_kl": 3.0, "kd": 4.0}, {"head1_kl": 1.5, "kd": 3.0}, {"head1_kl": 0.1}]),
    ]
    curves = term_curves(runs, {"head1_kl": "head 1", "kd": "final"}, {"head1_kl": 0.5})
    assert list(curves) == ["head 1", "final"]
    assert curves["head 1"]["epoch"] == [1, 2]  # epochs both runs reached
    assert curves["head 1"]["mean"] == pytest.approx([4.0, 2.0])
    assert curves["head 1"]["std"] == pytest.approx([math.sqrt(8), math.sqrt(2)])
    assert curves["final"]["mean"] == pytest.approx([3.0, 2.0])


def test_term_curves_leave_out_terms_no_run_logged():
    curves = term_curves([_run([{"ce": 1.0}])], ["ce", "teacher_head1_ce"])
    assert list(curves) == ["ce"]
    assert curves["ce"]["std"] == [0.0]


def test_ablation_rows_put_ours_beside_the_papers_cells():
    summaries = [
        _summary("kd", "kd", 0.80, {}),
        _summary("mhkd, head 1 only", "mhkd", 0.81, {0: 0.01}),
        _summary("something else", "ce", 0.5, {}),
    ]
    paper = {"kd": ["74.92"], "1": ["75.27 +/- 0.27"]}
    rows = ablation_rows(summaries, {"kd": "kd", "mhkd, head 1 only": "1"}, paper, reference="kd")
    assert [r["variant"] for r in rows] == ["kd", "1"]
    assert rows[1]["paper"] == ["75.27 +/- 0.27"]
    assert rows[0]["paired"] == {}
    table = ablation_markdown(rows, ["wrn_40_2 -> wrn_16_2"], reference="kd")
    assert "| paper: wrn_40_2 -> wrn_16_2 |" in table
    assert "| mhkd, head 1 only | 1 | 81.00 +/- 1.00 | +1.00 | 75.27 +/- 0.27 |" in table
    json.dumps(rows)


def test_ablation_markdown_pads_missing_paper_cells():
    rows = [{"label": "x", "n": 1, "mean": 0.5, "std": 0.0, "paired": {}, "paper": []}]
    assert ablation_markdown(rows, ["A", "B"]).splitlines()[-1].endswith("| - | - |")


# --------------------------------------------------------------------------------------------
# DSKD's recorded weights


def test_load_weight_records_reads_every_epoch_in_order(weight_run):
    run_dir, epochs = weight_run
    records = load_weight_records(run_dir)
    assert list(records) == [1, 2, 10]
    assert torch.equal(records[2]["kd_weights"], epochs[2])
    assert set(records[1]) == {"kd_weights", "fea_weights"}


def test_load_weight_records_without_records_names_the_option(tmp_path):
    with pytest.raises(FileNotFoundError, match="record_weights=True"):
        load_weight_records(tmp_path)


def test_sum_to_one_gap_is_zero_for_distributions_and_catches_a_bad_row(weight_run):
    run_dir, _ = weight_run
    records = load_weight_records(run_dir)
    assert sum_to_one_gap(records) < 1e-6
    records[2]["fea_weights"] = _weights([[0.6, 0.6]])
    assert sum_to_one_gap(records) == pytest.approx(0.2)


def test_weight_trajectory_follows_one_classifier_over_epochs(weight_run):
    run_dir, _ = weight_run
    trajectory = weight_trajectory(load_weight_records(run_dir), "kd_weights", 0)
    assert trajectory["epoch"] == [1, 2, 10]
    assert trajectory["mean"] == pytest.approx([0.5, 0.55, 0.75])
    assert trajectory["quantiles"][0.5] == pytest.approx([0.5, 0.55, 0.75])
    assert trajectory["std"][0] == 0.0
    second = weight_trajectory(load_weight_records(run_dir), "kd_weights", 1)
    assert second["mean"] == pytest.approx([1 - m for m in trajectory["mean"]])


def test_weight_histograms_give_each_classifier_a_distribution_over_bins(weight_run):
    run_dir, _ = weight_run
    hist = weight_histograms(load_weight_records(run_dir), "kd_weights", bins=10)
    assert hist["epoch"] == [1, 2, 10]
    assert len(hist["edges"]) == 11
    assert len(hist["fractions"]) == 3 and len(hist["fractions"][0]) == 2
    for epoch in hist["fractions"]:
        for classifier in epoch:
            assert sum(classifier) == pytest.approx(1.0)
    assert max(hist["fractions"][0][0]) == pytest.approx(1.0)  # all samples at 0.5


def test_describe_weights_and_records_summary(weight_run):
    run_dir, _ = weight_run
    records = load_weight_records(run_dir)
    lines = describe_weights(records, ["c1", "c2"])
    assert len(lines) == 4
    assert lines[0].startswith("kd_weights of c1: epoch 1: mean 0.500")
    assert "epoch 10: mean 0.750" in lines[0]
    summary = records_summary(records, ["c1", "c2"])
    assert summary["epochs"] == [1, 2, 10]
    assert summary["samples_per_epoch"] == {"1": 4, "2": 4, "10": 4}
    assert summary["trajectories"]["fea_weights"]["c2"]["mean"][-1] == pytest.approx(0.75)
    json.dumps(summary)


def test_describe_weights_says_a_single_epoch_once():
    records = {1: {"kd_weights": _weights([[0.25, 0.75], [0.75, 0.25]])}}
    (line, _) = describe_weights(records, ["c1", "c2"])
    assert line.count("epoch 1") == 1


# --------------------------------------------------------------------------------------------
# Figures


def test_plot_term_curves_draws_one_panel_per_group_and_one_line_per_term():
    curve = {"epoch": [1, 2, 3], "mean": [3.0, 2.0, 1.0], "std": [0.1, 0.1, 0.1]}
    fig = plot_term_curves(
        {"student heads": {"head 1": curve, "head 2": curve}, "teacher heads": {"t1": curve}},
        ylabels={"student heads": "tau^2 KL"},
    )
    left, right = fig.axes
    assert len(left.get_lines()) == 2 and len(right.get_lines()) == 1
    assert left.get_ylabel() == "tau^2 KL" and right.get_ylabel() == "loss term"
    assert left.get_title() == "student heads"


def test_plot_term_curves_says_when_a_panel_is_empty():
    fig = plot_term_curves({"nothing": {}}, log_y=True)
    assert [t.get_text() for t in fig.axes[0].texts] == ["no terms logged"]


def test_plot_weight_histograms_has_one_panel_per_classifier():
    weights = _weights([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    fig = plot_weight_histograms(weights, ["c1", "c2"], bins=5, title="W_KD")
    assert len(fig.axes) == 2
    counts = [sum(p.get_height() for p in ax.patches) for ax in fig.axes]
    assert counts == [3, 3]
    assert fig.axes[0].get_xlabel().startswith("weight of c1 (5 bins of")
    with pytest.raises(ValueError, match="2 columns but 3 names"):
        plot_weight_histograms(weights, ["a", "b", "c"])


def test_plot_weight_trajectories_draws_bands_median_and_mean(weight_run):
    run_dir, _ = weight_run
    records = load_weight_records(run_dir)
    fig = plot_weight_trajectories(
        {
            "W_KD of c1": weight_trajectory(records),
            "W_Fea of c1": weight_trajectory(records, "fea_weights"),
        }
    )
    assert len(fig.axes) == 2
    assert len(fig.axes[0].get_lines()) == 2  # median and mean
    assert len(fig.axes[0].collections) == 2  # 10-90 % and 25-75 % bands
    assert fig.axes[0].get_ylim() == (0.0, 1.0)


def test_weight_histogram_figure_has_one_frame_and_slider_step_per_epoch(weight_run):
    run_dir, _ = weight_run
    hist = weight_histograms(load_weight_records(run_dir), bins=10)
    fig = weight_histogram_figure(hist, ["c1", "c2"], title="W_KD")
    assert len(fig.frames) == 3
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["1", "2", "10"]
    assert len(fig.data) == 2  # one bar trace per classifier
    assert list(fig.data[0].y) == pytest.approx(
        hist["fractions"][-1][0]
    )  # starts at the last epoch
    assert fig.layout.title.text == "W_KD: epoch 10"


def test_weight_histogram_figure_without_epochs_is_an_error():
    with pytest.raises(ValueError, match="no recorded epochs"):
        weight_histogram_figure({"epoch": [], "edges": [0, 1], "fractions": []}, ["c1"])


# --------------------------------------------------------------------------------------------
# The papers' tables


def test_paper_cells_show_the_std_only_where_printed():
    row = PaperStdRow("t", "s", "cifar100", {"a": 1.0, "b": 2.5}, {"b": 0.25})
    assert row.cell("a") == "1.00"
    assert row.cell("b") == "2.50 +/- 0.25"


def test_mhkd_table2_is_labelled_as_published_and_keyed_by_heads_option():
    table = mhkd_table2_markdown()
    assert table.startswith("**Published, not measured here:**")
    assert "MHKD paper" in table and "CIFAR-100" in table
    assert "| wrn_40_2 -> wrn_16_2 | 74.92 |" in table
    assert "75.28 +/- 0.26" in table and "73.96 +/- 0.19" in table
    for row in MHKD_TABLE2:
        assert set(row.std) == {"1", "2", "3", "all"}
        for heads in row.std:
            resolve_options("mhkd", {"heads": heads})


def test_dskd_tables_are_labelled_as_published():
    table1 = dskd_table1_markdown()
    assert table1.startswith("**Published, not measured here:**") and "DSKD paper" in table1
    assert len(DSKD_TABLE1) == 7
    assert "| resnet32x4 -> resnet8x4 | 73.05 +/- 0.22 | 74.39 +/- 0.21 |" in table1
    tables = dskd_table3_markdown()
    assert tables.count("**Published, not measured here:**") == 2
    assert "| yes | yes | 76.50 +/- 0.21 |" in tables
    assert "| - | - | 75.73 +/- 0.20 |" in tables
    assert "| none | 74.98 +/- 0.04 |" in tables
    assert set(DSKD_TABLE3.accuracy) == {"both_off", *DSKD_ABLATIONS, "full"}
    for exits in DSKD_TABLE2.accuracy:
        resolve_options("dskd", {"exits": exits})


def test_check_positions_says_a_papermill_string_is_not_a_list(smoke):
    with pytest.raises(ConfigError, match=r"is a string, not a list .*papermill -y"):
        check_positions("ablation_heads", "['1', '2']", smoke, units=3)


def test_weight_histogram_bins_span_the_weights_range_not_zero_to_one():
    weights = _weights([[0.45, 0.55], [0.5, 0.5], [0.55, 0.45], [0.48, 0.52]])
    fig = plot_weight_histograms(weights, ["c1", "c2"], bins=10)
    low, high = fig.axes[0].get_xlim()
    assert 0.4 <= low < 0.45 and 0.55 < high <= 0.6  # the weights' range, padded
    widths = {round(p.get_width(), 6) for p in fig.axes[0].patches}
    assert len(widths) == 1 and widths.pop() < 0.02  # 10 bins over ~0.11, not over [0, 1]
