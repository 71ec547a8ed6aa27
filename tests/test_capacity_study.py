"""The capacity-gap study's helpers (notebook 02), a cohort's table (04), the settings line and
the notebooks' method-parameter checks, whose ranges come from the method registry."""

from __future__ import annotations

import math

import pytest

from dihkit.data.datasets import dataset_spec
from dihkit.errors import ConfigError
from dihkit.models import build_model, count_parameters
from dihkit.runs.profiles import (
    METHOD_PARAMETERS,
    check_method_parameters,
    declared_option,
    describe_settings,
    resolve,
)
from dihkit.studies.capacity import (
    CAPACITY_LADDERS,
    capacity_ladder,
    capacity_points,
    default_assistant,
    model_parameters,
    teacher_arch,
    teacher_ladder_markdown,
)
from dihkit.studies.cohort import cohort_markdown
from dihkit.studies.seeds import summarise_runs
from dihkit.teachers.bundled import read_manifest


def test_model_parameters_count_the_model_built_for_the_dataset():
    spec = dataset_spec("fmnist-mini")
    model = build_model("resnet8", spec.num_classes, spec.in_channels)
    assert model_parameters("resnet8") == count_parameters(model) > 0
    assert count_parameters(None) == 0
    assert spec.input_shape == (spec.in_channels, spec.image_size, spec.image_size)


def test_the_ladder_is_the_profiles_or_the_given_teachers():
    assert capacity_ladder("smoke") == list(CAPACITY_LADDERS["smoke"])
    assert capacity_ladder("paper", "runs/t.pt") == ["runs/t.pt"]
    with pytest.raises(ConfigError, match="at least one teacher"):
        capacity_ladder("classroom", [])
    with pytest.raises(ConfigError, match="no bundled teacher ladder"):
        capacity_ladder("paper")


def test_the_default_assistant_is_the_largest_teacher_up_to_the_geometric_middle():
    # resnet8 has 77,754 parameters and resnet56 855,482 (10 classes, 1 channel): the geometric
    # mean is 257,908; resnet14 (174,970) is the largest ladder member at or below it, resnet20
    # (272,186) is above. With vgg8 (3,917,706) on top the mean is 551,921: resnet20 below,
    # wrn_16_2 (691,386) above.
    assert math.isclose(math.sqrt(77_754 * 855_482), 257_908, rel_tol=1e-4)
    assert default_assistant(["resnet14", "resnet20", "resnet56"], "resnet8") == "resnet14"
    ladder = ["resnet8-c10", "resnet20-c10", "wrn_16_2-c10", "vgg8-c10"]
    assert default_assistant(ladder, "resnet8") == "resnet20"
    assert default_assistant(["wrn_16_2-c10", "vgg8-c10"], "resnet8") == "wrn_16_2"  # none below
    assert default_assistant(["resnet56"], "resnet8") == "resnet8"
    assert default_assistant(["resnet8-c10", "vgg8-c10"], "resnet8") == "resnet8"
    assert teacher_arch("resnet56") == read_manifest()["resnet56"]["arch"]


def test_the_teacher_table_has_a_row_per_teacher_with_its_ratio():
    table = teacher_ladder_markdown(["resnet14", "resnet56"], "resnet8", "fmnist-mini")
    ratio = model_parameters("resnet56") / model_parameters("resnet8")
    assert "| resnet56 | resnet56 |" in table and f"| {ratio:.1f} |" in table
    assert len([line for line in table.splitlines() if line.startswith("| resnet")]) == 2


def test_capacity_points_skip_ce_and_measure_the_ratio():
    runs = [
        {
            "method": method,
            "seed": 0,
            "teacher": None if method == "ce" else "resnet14",
            "student": "resnet8",
            "test_acc_best": 0.7,
            "test_acc_last": 0.7,
            "seconds": 1.0,
            "student_params": model_parameters("resnet8"),
            "options": {},
            "history": [],
        }
        for method in ("ce", "kd")
    ]
    (point,) = capacity_points(summarise_runs(runs), runs, "fmnist-mini")
    assert point["teacher"] == "resnet14" and point["method"] == "kd"
    assert point["ratio"] == pytest.approx(
        model_parameters("resnet14") / model_parameters("resnet8")
    )


def test_the_cohort_table_lists_every_member():
    table = cohort_markdown("resnet14")
    assert table.count("\n") >= 3 and "(the teacher's own classifier)" in table


def test_the_settings_line_names_the_regime():
    line = describe_settings(resolve("smoke"))
    assert line.startswith("profile smoke: fmnist-mini, 20 training images per class, 1 epochs")


def test_method_parameter_ranges_are_the_registrys():
    for name, method in METHOD_PARAMETERS.items():
        assert declared_option(method, name).name == name
    check_method_parameters(tau=0.5, alpha=1.0, beta=0.0)
    for bad, needle in (
        ({"tau": 0}, r"parameter tau = 0 .*\(0, inf\)"),
        ({"alpha": 1.5}, r"parameter alpha = 1.5 .*\[0, 1\]"),
        ({"beta": -1.0}, r"parameter beta = -1.0 .*\[0, inf\)"),
    ):
        with pytest.raises(ConfigError, match=needle):
            check_method_parameters(**bad)
