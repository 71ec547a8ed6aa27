"""Experiment files: validation with file:line errors, profiles, the job plan, and the papers'
numbers in the shipped files checked against the kit's own transcription of the tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from dihkit.errors import ConfigError
from dihkit.reproduce import RECIPE_PROFILES, experiment_names, load_experiment, plan_jobs
from dihkit.reproduce.plan import resolve_profile
from dihkit.reproduce.published import published_markdown
from dihkit.studies import paper_numbers

SHIPPED = (
    "dih-table2-cifar10",
    "dih-table2-cifar100",
    "dih-table3",
    "dih-table4",
    "mhkd-table1",
    "mhkd-table2",
    "mhkd-table3",
    "dskd-table1",
    "dskd-table2",
    "dskd-table3",
    "dkd-table-cifar100",
)

GOOD = """\
title = "A tiny experiment"
source = "a paper, Table 9"
reported = "mean of 3 runs"
baseline = "ce"

[recipe]
dataset = "cifar100"
epochs = 200
batch_size = 64
lr = 0.1
schedule = "multistep"
milestones = [60, 120, 180]
seeds = 3

[heads]
kind = "linear"
epochs = 4
lr = 0.002
schedule = "cosine"

[methods.ce]

[methods.kd]
tau = 5.0
alpha = 0.1

[methods.dih]
tau = 5.0

[[pairs]]
teacher = "resnet14"
student = "resnet8"
paper = { ce = 59.77, kd = 60.15, dih = 62.16 }

[[pairs]]
teacher = "resnet20"
student = "resnet8"
paper = { ce = 59.77, kd = 60.00, dih = 62.00 }
recipe = { lr = 0.05 }
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(text)
    return path


def _line(text: str, needle: str, occurrence: int = 0) -> int:
    """1-based line of the ``occurrence``-th line containing ``needle`` (found independently)."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return hits[occurrence]


def test_every_shipped_experiment_loads_and_resolves_under_every_profile():
    assert sorted(experiment_names()) == sorted(SHIPPED)
    for name in SHIPPED:
        experiment = load_experiment(name)
        for profile in RECIPE_PROFILES:
            resolved = resolve_profile(experiment, profile)
            jobs = plan_jobs(experiment, resolved)
            assert jobs, (name, profile)
            if profile != "paper":
                assert resolved.data.dataset == "fmnist-mini"
            else:
                assert resolved.data.dataset == experiment.recipe["dataset"]


@pytest.mark.parametrize(
    ("replace", "by", "needle", "fragment"),
    [
        ("seeds = 3", "seeds = 3\nwarmup = 5", "warmup", "unknown key 'recipe.warmup'"),
        ('dataset = "cifar100"', 'dataset = "cifar1000"', "cifar1000", "unknown dataset"),
        ("lr = 0.1", "lr = -0.1", "lr = -0.1", "lr = -0.1 must be"),
        ("tau = 5.0\nalpha", "tau = 5.0\ntemperature = 3\nalpha", "temperature", "temperature"),
        ("[methods.dih]\ntau = 5.0", "[methods.dih]\ntau = -1.0", "tau = -1.0", "tau"),
        ("[methods.ce]", '[methods.ce]\nmethod = "cee"', "cee", "unknown method 'cee'"),
        (
            'student = "resnet8"\npaper = { ce = 59.77, kd = 60.00',
            'student = "resnet9"\npaper = { ce = 59.77, kd = 60.00',
            "resnet9",
            "unknown student 'resnet9'",
        ),
        (
            "kd = 60.15, dih",
            "kd = 60.15, dsk = 1.0, dih",
            "dsk = 1.0",
            "unknown key 'pairs.0.paper.dsk'",
        ),
        (
            "kd = 60.00, dih = 62.00",
            "kd = 160.0, dih = 62.00",
            "kd = 160.0",
            "must be a percentage",
        ),
        (
            "recipe = { lr = 0.05 }",
            "recipe = { lr = 0.05, seeds = 2 }",
            "seeds = 2",
            "unknown key 'pairs.1.recipe.seeds'",
        ),
        ('kind = "linear"', 'kind = "square"', "square", "unknown kind 'square'"),
    ],
)
def test_a_bad_key_or_value_names_the_file_and_its_line(tmp_path, replace, by, needle, fragment):
    assert replace in GOOD
    text = GOOD.replace(replace, by, 1)
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_experiment(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{_line(text, needle)}: "), message
    assert fragment in message


def test_profile_errors_name_the_profile_section(tmp_path):
    text = GOOD + "\n[profiles.classroom]\nepochs = 0\n"
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=rf"{path}:{_line(text, 'epochs = 0')}: epochs"):
        load_experiment(path)
    text = GOOD + "\n[profiles.lecture]\nepochs = 3\n"
    with pytest.raises(ConfigError, match="unknown key 'profiles.lecture'"):
        load_experiment(_write(tmp_path, text))


def test_missing_parts_and_bad_toml_are_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_experiment(_write(tmp_path, GOOD + "\n[recipe\n"))
    no_pairs = GOOD[: GOOD.index("[[pairs]]")]
    with pytest.raises(ConfigError, match=r"at least one \[\[pairs\]\]"):
        load_experiment(_write(tmp_path, no_pairs))
    with pytest.raises(ConfigError, match="unknown experiment 'dih-table99'.*--list"):
        load_experiment("dih-table99")


def test_profiles_scale_the_schedule_and_take_overrides(tmp_path):
    experiment = load_experiment(_write(tmp_path, GOOD))
    paper = resolve_profile(experiment, "paper")
    assert (paper.student.epochs, paper.student.milestones) == (200, (60, 120, 180))
    assert paper.seeds == (0, 1, 2) and paper.student.cached_targets == 0
    classroom = resolve_profile(experiment, "classroom")
    # 60/120/180 of 200 epochs at 15 epochs: round(4.5) = 4, 9, round(13.5) = 14
    assert (classroom.student.epochs, classroom.student.milestones) == (15, (4, 9, 14))
    assert classroom.data.dataset == "fmnist-mini" and classroom.data.train_per_class == 100
    assert classroom.heads.schedule == "cosine" and classroom.heads.milestones == ()
    assert classroom.heads.lr == 0.002 and classroom.heads.epochs == 5
    assert any("[4, 9, 14] of 15" in line for line in classroom.scaled)
    chosen = resolve_profile(experiment, "classroom", seeds=5, cached_targets=0)
    assert chosen.seeds == (0, 1, 2, 3, 4) and chosen.student.cached_targets == 0
    with pytest.raises(ConfigError, match="unknown profile 'lecture'"):
        resolve_profile(experiment, "lecture")


def test_the_plan_trains_each_teacher_once_and_shares_teacher_free_runs(tmp_path):
    experiment = load_experiment(_write(tmp_path, GOOD))
    resolved = resolve_profile(experiment, "paper")
    jobs = plan_jobs(experiment, resolved)
    folders = [job.folder for job in jobs]
    assert len(folders) == len(set(folders))
    assert folders[:4] == [
        "teachers/resnet14",
        "teachers/resnet14-heads-linear",
        "teachers/resnet20",
        "teachers/resnet20-heads-linear",
    ]
    students = [job for job in jobs if job.kind == "student"]
    # per seed: ce once for the first pair's recipe and once for the second (its own lr),
    # kd and dih for each pair
    assert len(students) == 3 * (2 + 2 + 2)
    ce = [job for job in students if job.column == "ce" and job.seed == 0]
    assert [job.folder for job in ce] == [
        "students/resnet8/ce/seed-0",
        "students/resnet8@lr=0.05/ce/seed-0",
    ]
    assert ce[0].teacher is None and ce[1].config.lr == 0.05
    kd = next(
        job for job in students if job.column == "kd" and job.pairs == ("resnet20 -> resnet8",)
    )
    assert kd.config.lr == 0.05 and kd.options == {"tau": 5.0, "alpha": 0.1}
    assert [job.seed for job in students] == sorted(job.seed for job in students)
    only = plan_jobs(experiment, resolved, ["resnet20-resnet8"])
    assert [job.folder for job in only][:2] == [
        "teachers/resnet20",
        "teachers/resnet20-heads-linear",
    ]
    with pytest.raises(ConfigError, match="unknown pair 'resnet56-resnet8'"):
        plan_jobs(experiment, resolved, ["resnet56-resnet8"])


def test_cached_targets_apply_only_where_the_method_can_use_them(tmp_path):
    experiment = load_experiment(_write(tmp_path, GOOD))
    resolved = resolve_profile(experiment, "classroom")
    jobs = [job for job in plan_jobs(experiment, resolved) if job.kind == "student"]
    by_column = {job.column: job.config.cached_targets for job in jobs}
    assert by_column == {"ce": 0, "kd": 4, "dih": 4}


def test_pair_options_override_a_column_for_that_row(tmp_path):
    text = GOOD.replace(
        "recipe = { lr = 0.05 }", "recipe = { lr = 0.05 }\noptions = { kd = { tau = 2.0 } }"
    )
    experiment = load_experiment(_write(tmp_path, text))
    jobs = plan_jobs(experiment, resolve_profile(experiment, "paper"))
    taus = {job.pairs[0]: job.options["tau"] for job in jobs if job.column == "kd"}
    assert taus == {"resnet14 -> resnet8": 5.0, "resnet20 -> resnet8": 2.0}
    bad = GOOD.replace("recipe = { lr = 0.05 }", "options = { kd = { tau = 0.0 } }")
    path = _write(tmp_path, bad)
    with pytest.raises(ConfigError, match=rf"{path}:{_line(bad, 'tau = 0.0')}: .*tau"):
        load_experiment(path)


def _paper(name: str) -> dict[tuple[str, str], dict[str, float]]:
    experiment = load_experiment(name)
    return {(p.teacher, p.student): p.paper for p in experiment.pairs}


def test_shipped_paper_numbers_match_the_kits_transcription_of_the_tables():
    for dataset in ("cifar10", "cifar100"):
        rows = {
            (r.teacher, r.student): r.accuracy
            for r in paper_numbers.DIH_TABLE2
            if r.dataset == dataset
        }
        assert _paper(f"dih-table2-{dataset}") == rows
    table3 = {(r.teacher, r.student): r.accuracy for r in paper_numbers.DIH_TABLE3}
    assert _paper("dih-table3") == table3
    assistants = {
        p.teacher: p.options["takd"]["assistant"] for p in load_experiment("dih-table3").pairs
    }
    assert assistants == {r.teacher: r.assistant for r in paper_numbers.DIH_TABLE3}
    columns = {
        "kd": "kd",
        "fitnets": "fitnets",
        "head1": "1",
        "head2": "2",
        "head3": "3",
        "all": "all",
    }
    for (teacher, student), paper in _paper("mhkd-table2").items():
        row = next(
            r for r in paper_numbers.MHKD_TABLE2 if (r.teacher, r.student) == (teacher, student)
        )
        assert paper == {ours: row.accuracy[theirs] for ours, theirs in columns.items()}
    dskd1 = {(r.teacher, r.student): r.accuracy for r in paper_numbers.DSKD_TABLE1}
    assert _paper("dskd-table1") == dskd1
    (table2,) = _paper("dskd-table2").values()
    keys = {"none": "none", "block1": "1", "block2": "2", "both": "all"}
    assert table2 == {ours: paper_numbers.DSKD_TABLE2.accuracy[k] for ours, k in keys.items()}
    (table3,) = _paper("dskd-table3").values()
    keys = {"neither": "both_off", "adaptive": "no_fea", "features": "equal", "full": "full"}
    assert table3 == {ours: paper_numbers.DSKD_TABLE3.accuracy[k] for ours, k in keys.items()}


# DKD paper (Zhao et al., CVPR 2022), CIFAR-100 Tables 1 and 2, written out: (KD, DKD)
DKD_CIFAR100 = {
    ("resnet56", "resnet20"): (70.66, 71.97),
    ("resnet110", "resnet32"): (73.08, 74.11),
    ("resnet32x4", "resnet8x4"): (73.33, 76.32),
    ("wrn_40_2", "wrn_16_2"): (74.92, 76.24),
    ("wrn_40_2", "wrn_40_1"): (73.54, 74.81),
    ("vgg13", "vgg8"): (72.98, 74.68),
    ("resnet32x4", "shufflenetv2"): (74.45, 77.07),
    ("vgg13", "mobilenetv2"): (67.37, 69.71),
}


def test_the_dkd_table_files_kd_and_dkd_numbers_are_the_papers():
    shipped = _paper("dkd-table-cifar100")
    assert list(shipped) == list(DKD_CIFAR100)  # the same rows, in the paper's order
    for pair, (kd, dkd) in DKD_CIFAR100.items():
        assert (shipped[pair]["kd"], shipped[pair]["dkd"]) == (kd, dkd), pair
    # and the published table the notebooks show prints them
    table = published_markdown("dkd-table-cifar100", ["kd", "dkd"]).splitlines()
    rows = table[table.index("|---|---|---|") + 1 :]
    expected = [
        f"| {t} -> {s} | {kd:.2f} | {dkd:.2f} |" for (t, s), (kd, dkd) in DKD_CIFAR100.items()
    ]
    assert rows == expected


def test_the_profiles_are_the_notebooks_with_the_papers_recipe_first():
    from dihkit.reproduce.config import RECIPE_OVERRIDES
    from dihkit.runs.profiles import PROFILE_NAMES

    assert RECIPE_PROFILES == ("paper", "classroom", "smoke")
    assert sorted(RECIPE_PROFILES) == sorted(PROFILE_NAMES)
    assert tuple(RECIPE_OVERRIDES) == RECIPE_PROFILES
