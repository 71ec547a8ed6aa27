"""Bad inputs, table-driven: every one ends in one clear line naming the bad value, never a
traceback. The CLI exits with status 2 (in-process for most, real subprocesses for a
representative part); the Python API and the notebooks' parameters raise the kit's own
exception type; a bad experiment file is one line naming the file, its line and the value.
:func:`test_the_tables_cover_at_least_200_bad_inputs` counts the cases by category."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dihkit.cli.main import main
from dihkit.errors import CheckpointError, ConfigError, DataError, DihkitError
from dihkit.models import build_model
from dihkit.teachers.bundled import bundled_path
from dihkit.training.checkpoint import load_checkpoint, model_entry, save_checkpoint

REPO = Path(__file__).resolve().parent.parent
NAN, INF = float("nan"), float("inf")
KD = ["distill", "--method", "kd", "--teacher", "resnet14", "--student", "resnet8"]
TRAIN = ["train", "--model", "resnet8"]


class Marker:
    """Unpickling this creates the file ``path`` (what a crafted pickle could do)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Malformed checkpoints and other wrong files, by name."""
    root = tmp_path_factory.mktemp("bad-files")
    paths = {name: root / f"{name}.pt" for name in (
        "model_not_mapping", "heads_without_positions", "wrong_arch", "plain", "not_dihkit",
        "crafted", "unknown_arch",
    )}  # fmt: skip
    save_checkpoint(paths["model_not_mapping"], {"model": [1, 2, 3]})
    teacher = load_checkpoint(bundled_path("resnet14"))
    teacher["heads"] = {k: v for k, v in teacher["heads"].items() if k != "positions"}
    teacher.pop("head_sets", None)
    save_checkpoint(paths["heads_without_positions"], teacher)
    save_checkpoint(
        paths["wrong_arch"],
        {"model": {**model_entry(build_model("resnet20", 10, 1)), "arch": "resnet8"}},
    )
    save_checkpoint(paths["plain"], {"model": model_entry(build_model("resnet8", 10, 1))})
    torch.save({"weights": torch.zeros(2)}, paths["not_dihkit"])
    torch.save({"format": "dihkit-checkpoint", "x": Marker(str(root / "MARKER"))}, paths["crafted"])
    save_checkpoint(
        paths["unknown_arch"],
        {"model": {**model_entry(build_model("resnet8", 10, 1)), "arch": "resnet9"}},
    )
    text = root / "a_file.txt"
    text.write_text("not a folder\n")
    names = {name: str(path) for name, path in paths.items()}
    names.update(file=str(text), marker=str(root / "MARKER"))
    return names


# (argv, text the one-line message must contain). {out}: a fresh folder; {NAME}: files[NAME].
CLI_CASES = [
    ([*TRAIN, "--lr", "inf"], "'inf'"),
    ([*TRAIN, "--lr", "nan"], "'nan'"),
    ([*TRAIN, "--lr", "-1"], "'-1'"),
    ([*TRAIN, "--weight-decay", "-5"], "'-5'"),
    ([*TRAIN, "--weight-decay", "inf"], "'inf'"),
    ([*TRAIN, "--seed", str(2**64)], str(2**64)),
    ([*TRAIN, "--seed", "-1"], "-1"),
    ([*TRAIN, "--seed", "1.5"], "'1.5'"),
    ([*TRAIN, "--val-fraction", "1.5"], "'1.5'"),
    ([*TRAIN, "--val-fraction", "nan"], "'nan'"),
    ([*TRAIN, "--epochs", "0"], "got 0"),
    ([*TRAIN, "--batch-size", "abc"], "'abc'"),
    ([*TRAIN, "--train-per-class", "5000"], "5000"),
    ([*TRAIN, "--dataset", "cifar10", "--data-dir", "{file}"], "{file}"),
    ([*TRAIN, "--dataset", "mnist"], "'mnist'"),
    ([*TRAIN, "--device", "tpu"], "'tpu'"),
    ([*TRAIN, "--schedule", "multistep", "--epochs", "2", "--milestones", "50"], "(50,)"),
    ([*TRAIN, "--in-channels", "3"], "--in-channels 3"),
    ([*TRAIN, "--resume", "--overwrite"], "--overwrite"),
    (["train", "--model", "resnet9", "--out", "{out}"], "'resnet9'"),
    ([*KD, "--tau", "inf"], "tau = inf"),
    ([*KD, "--tau", "0"], "tau = 0.0"),
    ([*KD, "--tau", "-2"], "tau = -2.0"),
    ([*KD, "--alpha", "1.5"], "alpha = 1.5"),
    ([*KD, "--alpha", "nan"], "alpha = nan"),
    ([*KD, "--beta", "2"], "--beta"),
    (
        ["distill", "--method", "kd", "--teacher", "missing.pt", "--student", "resnet8"],
        "missing.pt",
    ),
    (["distill", "--method", "kd", "--student", "resnet8"], "'kd' needs a teacher"),
    (["distill", "--method", "nosuch", "--student", "resnet8"], "'nosuch'"),
    (["distill", "--method", "dih", "--teacher", "{plain}", "--student", "resnet8"], "{plain}"),
    (["distill", "--method", "dsn", "--student", "resnet8", "--exits", "layer9"], "'layer9'"),
    (
        [
            "distill",
            "--method",
            "dskd",
            "--teacher",
            "resnet14",
            "--student",
            "resnet8",
            "--weighting",
            "sometimes",
        ],
        "'sometimes'",
    ),  # fmt: skip
    (["distill", "--method", "takd", "--teacher", "resnet14", "--student", "resnet8"], "assistant"),
    (["eval", "{model_not_mapping}"], "model entry is a list"),
    (["eval", "{heads_without_positions}"], "lacks positions"),
    (["eval", "{wrong_arch}"], "those of resnet20"),
    (["eval", "{unknown_arch}"], "'resnet9'"),
    (["eval", "{not_dihkit}"], "not a dihkit checkpoint"),
    (["eval", "{crafted}"], "{crafted}"),
    (["eval", "{out}"], "{out}"),
    (["train-heads", "--teacher", "resnet14", "--positions", "layer1", "layer1"], "layer1 layer1"),
    (["train-heads", "--teacher", "resnet14", "--positions", "layer9"], "'layer9'"),
    (["train-heads", "--teacher", "resnet14", "--width", "0"], "got 0"),
    (["train-heads", "--teacher", "resnet14", "--head", "mlp"], "'mlp'"),
    (["train-heads", "--teacher", "{model_not_mapping}"], "model entry is a list"),
    (["compare", "--methods", "ce", "--student", "resnet8", "--seeds", "0", "0"], "--seeds 0 0"),
    (["compare", "--methods", "ce", "ce", "--student", "resnet8"], "--methods ce ce"),
    (["compare", "--student", "resnet8", "--seeds", "-1"], "-1"),
    (["benchmark", "--models", "resnet8", "--batch-size", "100000"], "100000"),
    (["benchmark", "--models", "resnet8", "--steps", "0"], "got 0"),
    (["export-teacher", "{plain}", "--name", "x", "--command", "y"], "{plain}"),
    (["export-teacher", "resnet14", "--name", "../evil", "--command", "y"], "'../evil'"),
    ([*TRAIN, "--milestones", "x"], "'x'"),
    (["tour", "--param", "1x=2"], "'1x=2'"),
    (["tour", "--param", "nosuch=3", "--only", "01"], "nosuch"),
    (["tour", "--profile", "fast"], "'fast'"),
]
# More flags: every training flag's type and range, each method's own flags, and the other
# commands' flags (one case each, not yet in CLI_CASES).
D = ["distill", "--teacher", "resnet14", "--student", "resnet8", "--method"]
SMOKE = ["reproduce", "dih-table4", "--profile", "smoke", "--out", "{out}"]
FLAG_CASES = [
    ([*TRAIN, "--epochs", "-3"], "got -3"),
    ([*TRAIN, "--epochs", "2.5"], "'2.5'"),
    ([*TRAIN, "--batch-size", "0"], "got 0"),
    ([*TRAIN, "--batch-size", "-8"], "got -8"),
    ([*TRAIN, "--lr", "abc"], "'abc'"),
    ([*TRAIN, "--lr", "0"], "'0'"),
    ([*TRAIN, "--weight-decay", "nan"], "'nan'"),
    ([*TRAIN, "--val-fraction", "-0.1"], "'-0.1'"),
    ([*TRAIN, "--val-fraction", "1"], "'1'"),
    ([*TRAIN, "--train-per-class", "0"], "got 0"),
    ([*TRAIN, "--train-per-class", "-5"], "got -5"),
    ([*TRAIN, "--train-per-class", "ten"], "'ten'"),
    ([*TRAIN, "--schedule", "linear"], "'linear'"),
    ([*TRAIN, "--schedule", "multistep", "--milestones", "-1"], "got -1"),
    ([*TRAIN, "--in-channels", "0"], "got 0"),
    ([*TRAIN, "--device", "gpu0"], "'gpu0'"),
    ([*TRAIN, "--per-rank-batch", "0"], "got 0"),
    (["train", "--model", "RESNET8"], "'RESNET8'"),
    ([*KD, "--tau", "abc"], "'abc'"),
    ([*KD, "--alpha", "-0.5"], "alpha = -0.5"),
    ([*KD, "--alpha", "inf"], "alpha = inf"),
    ([*KD, "--cached-targets", "-1"], "got -1"),
    ([*KD, "--student", "resnet9"], "'resnet9'"),
    ([*D, "kd", "--kd-weighting", "sometimes"], "'sometimes'"),
    ([*D, "dih", "--dih-reduction", "median"], "'median'"),
    ([*D, "dih", "--tau", "nan"], "tau = nan"),
    ([*D, "fitnets", "--hint-epochs", "-1"], "hint_epochs = -1"),
    (["distill", "--method", "dml", "--student", "resnet8", "--peer", "resnet9"], "'resnet9'"),
    ([*D, "takd", "--assistant", "resnet9"], "'resnet9'"),
    ([*D, "mhkd", "--heads", "0"], "heads = '0'"),
    ([*D, "mhkd", "--head-width", "0"], "head_width = 0"),
    ([*D, "mhkd", "--beta", "nan"], "beta = nan"),
    ([*D, "mhkd", "--teacher-heads", "nowhere"], "'nowhere'"),
    ([*D, "dskd", "--companion-weight", "0.5"], "--companion-weight is not an option of dskd"),
    ([*D, "dml", "--rounds", "2"], "--rounds is not an option of dml"),
    ([*D, "dkd", "--beta", "-1"], "beta = -1.0"),
    ([*D, "dkd", "--beta", "inf"], "beta = inf"),
    ([*D, "dkd", "--warmup-epochs", "-2"], "warmup_epochs = -2"),
    ([*D, "kd_decomposition", "--ls-epsilon", "1.5"], "ls_epsilon = 1.5"),
    ([*D, "kd_decomposition", "--topk-fraction", "2"], "topk_fraction = 2.0"),
    ([*D, "kd_decomposition", "--sim-temperature", "0"], "sim_temperature = 0.0"),
    ([*D, "nd", "--tau", "-1"], "tau = -1.0"),
    ([*D, "cd", "--cd-weight", "-1"], "cd_weight = -1.0"),
    ([*D, "cd", "--cd-connector", "wire"], "'wire'"),
    ([*D, "cd", "--cd-positions", "layer9"], "'layer9'"),
    ([*D, "cd", "--edt-factor", "-1"], "edt_factor = -1.0"),
    ([*D, "feed", "--mode", "sideways"], "'sideways'"),
    ([*D, "dskd", "--weighting", "always"], "'always'"),
    (["compare", "--methods", "nosuch", "--student", "resnet8"], "'nosuch'"),
    (["compare", "--methods", "ce", "--student", "resnet8", "--seeds", "x"], "'x'"),
    (["compare", "--methods", "ce", "--student", "resnet8", "--epochs", "0"], "got 0"),
    (["benchmark", "--models", "resnet9"], "'resnet9'"),
    (["benchmark", "--models", "resnet8", "--steps", "-1"], "got -1"),
    (["benchmark", "--models", "resnet8", "--batch-size", "0"], "got 0"),
    (["benchmark", "--models", "resnet8", "--device", "tpu"], "'tpu'"),
    (["benchmark", "--models", "resnet8", "--workers", "-1"], "got -1"),
    (["reproduce", "dih-table99", "--out", "{out}"], "'dih-table99'"),
    (["reproduce", "dih-table4", "--profile", "fast", "--out", "{out}"], "'fast'"),
    ([*SMOKE, "--seeds", "0"], "got 0"),
    ([*SMOKE, "--seeds", "x"], "'x'"),
    ([*SMOKE, "--pairs", "resnet9-resnet8"], "'resnet9-resnet8'"),
    ([*SMOKE, "--cached-targets", "-1"], "got -1"),
    (["tour", "--only", "99", "--out", "{out}"], "--only 99"),
    (["tour", "--param", "seeds", "--out", "{out}"], "'seeds'"),
    (["tour", "--param", "epochs=abc", "--only", "01", "--out", "{out}"], "'abc'"),
    (["tour", "--param", "epochs=0", "--only", "01", "--out", "{out}"], "epochs = 0"),
    (["eval", "nosuch.pt"], "'nosuch.pt'"),
    (["nosuchcommand"], "'nosuchcommand'"),
]
NEEDS_OUT = ("train", "distill", "train-heads", "compare")


def _argv(argv: list[str], files: dict[str, str], out: Path) -> list[str]:
    values = {**files, "out": str(out)}
    argv = [a.format(**values) for a in argv]
    if argv[0] in NEEDS_OUT and "--out" not in argv:
        argv += ["--out", str(out)]
    return argv


def _exit_and_stderr(capsys, argv: list[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    return code, capsys.readouterr().err


def assert_one_clear_line(err: str, needle: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert needle in lines[0], (needle, err)
    assert "Traceback" not in err and "error" in lines[0]


@pytest.mark.parametrize(
    ("argv", "needle"),
    CLI_CASES + FLAG_CASES,
    ids=lambda v: " ".join(v)[:60] if isinstance(v, list) else None,
)
def test_cli_bad_input_is_one_line_and_exit_2(capsys, files, tmp_path, argv, needle):
    out = tmp_path / "run"
    code, err = _exit_and_stderr(capsys, _argv(argv, files, out))
    assert code == 2
    assert_one_clear_line(err, needle.format(**files, out=str(out)))
    assert not Path(files["marker"]).exists()


def test_cli_refuses_a_non_empty_out_folder(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    code, err = _exit_and_stderr(capsys, [*TRAIN, "--out", str(tmp_path)])
    assert code == 2
    assert_one_clear_line(err, "not empty (notes.txt)")
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ([*TRAIN, "--lr", "inf"], "'inf'"),  # argparse
        (["eval", "{wrong_arch}"], "resnet20"),  # the kit
    ],
)
def test_cli_bad_input_in_a_real_subprocess(files, tmp_path, argv, needle):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "dihkit", *_argv(argv, files, tmp_path / "run")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert_one_clear_line(result.stderr, needle.format(**files))


def _api_cases():
    from dihkit.bench.throughput import measure_throughput
    from dihkit.data.datasets import load_dataset, per_class_subset
    from dihkit.losses import dih_loss, kd_loss, per_sample_kd
    from dihkit.nn.heads import mount_heads
    from dihkit.runs.profiles import check_method_parameters, resolve
    from dihkit.teachers.loading import load_teacher
    from dihkit.training.config import TrainConfig
    from dihkit.training.run_folder import check_writable_folder

    logits = torch.zeros(2, 10)
    return [
        ("TrainConfig lr nan", lambda f: TrainConfig(lr=NAN), ConfigError, "nan"),
        ("TrainConfig lr inf", lambda f: TrainConfig(lr=INF), ConfigError, "inf"),
        ("TrainConfig weight_decay", lambda f: TrainConfig(weight_decay=-5), ConfigError, "-5"),
        ("TrainConfig momentum", lambda f: TrainConfig(momentum=1.5), ConfigError, "1.5"),
        ("TrainConfig gamma", lambda f: TrainConfig(gamma=0.0), ConfigError, "0.0"),
        ("TrainConfig seed 2**64", lambda f: TrainConfig(seed=2**64), ConfigError, str(2**64)),
        ("TrainConfig seed bool", lambda f: TrainConfig(seed=True), ConfigError, "True"),
        ("TrainConfig epochs 1.5", lambda f: TrainConfig(epochs=1.5), ConfigError, "1.5"),
        (
            "TrainConfig milestones",
            lambda f: TrainConfig(epochs=9, milestones=("a",)),
            ConfigError,
            "('a',)",
        ),
        ("profile schedule", lambda f: resolve("smoke", schedule="linear"), ConfigError, "linear"),
        ("kd_loss tau 0", lambda f: kd_loss(logits, logits, tau=0), ConfigError, "got 0"),
        ("kd_loss tau -1", lambda f: kd_loss(logits, logits, tau=-1.0), ConfigError, "-1.0"),
        ("kd_loss tau inf", lambda f: kd_loss(logits, logits, tau=INF), ConfigError, "inf"),
        ("kd_loss tau nan", lambda f: kd_loss(logits, logits, tau=NAN), ConfigError, "nan"),
        ("per_sample_kd tau 0", lambda f: per_sample_kd(logits, logits, 0.0), ConfigError, "0.0"),
        ("dih_loss tau", lambda f: dih_loss(logits, logits[None], tau=-3.0), ConfigError, "-3.0"),
        ("load_dataset val 1.0", lambda f: load_dataset(val_fraction=1.0), DataError, "1.0"),
        ("load_dataset per class", lambda f: load_dataset(train_per_class=10**6), DataError, "900"),
        ("load_dataset name", lambda f: load_dataset("mnist"), DataError, "'mnist'"),
        (
            "load_dataset data_dir file",
            lambda f: load_dataset("cifar10", data_dir=f["file"]),
            DataError,
            "{file}",
        ),
        (
            "per_class_subset 0",
            lambda f: per_class_subset(load_dataset().test, 0),
            DataError,
            "got 0",
        ),
        ("out is a file", lambda f: check_writable_folder(f["file"]), ConfigError, "{file}"),
        (
            "out under a file",
            lambda f: check_writable_folder(Path(f["file"]) / "x"),
            ConfigError,
            "which is a file",
        ),
        (
            "mount_heads repeated",
            lambda f: mount_heads(
                build_model("resnet8", 10, 1),
                positions=["layer2", "layer2"],
                input_shape=(1, 28, 28),
            ),
            ConfigError,
            "layer2 layer2",
        ),
        (
            "benchmark batch",
            lambda f: measure_throughput("resnet8", load_dataset(), batch_size=10**5),
            ConfigError,
            "100000",
        ),
        (
            "load_teacher list",
            lambda f: load_teacher(f["model_not_mapping"]),
            CheckpointError,
            "list",
        ),
        (
            "load_teacher no positions",
            lambda f: load_teacher(f["heads_without_positions"]),
            CheckpointError,
            "positions",
        ),
        (
            "load_teacher wrong arch",
            lambda f: load_teacher(f["wrong_arch"]),
            CheckpointError,
            "resnet20",
        ),
        (
            "load_checkpoint crafted",
            lambda f: load_checkpoint(f["crafted"]),
            CheckpointError,
            "{crafted}",
        ),
        ("profile lr nan", lambda f: resolve("smoke", lr=NAN), ConfigError, "nan"),
        ("profile lr inf", lambda f: resolve("smoke", lr=INF), ConfigError, "inf"),
        ("profile epochs 0", lambda f: resolve("smoke", epochs=0), ConfigError, "0"),
        ("profile batch 2.5", lambda f: resolve("smoke", batch_size=2.5), ConfigError, "2.5"),
        ("profile seed -1", lambda f: resolve("smoke", seed=-1), ConfigError, "-1"),
        ("profile seeds repeat", lambda f: resolve("smoke", seeds=(0, 0)), ConfigError, "[0, 0]"),
        ("profile dataset", lambda f: resolve("smoke", dataset="mnist"), ConfigError, "'mnist'"),
        ("profile student", lambda f: resolve("smoke", student="resnet9"), ConfigError, "resnet9"),
        ("profile teacher", lambda f: resolve("smoke", teacher="nope.pt"), ConfigError, "nope.pt"),
        ("profile device", lambda f: resolve("smoke", device="tpu"), ConfigError, "tpu"),
        ("profile unknown", lambda f: resolve("smoke", lr_max=1), ConfigError, "lr_max"),
        ("profile name", lambda f: resolve("fast"), ConfigError, "'fast'"),
        ("profile per class", lambda f: resolve("smoke", train_per_class=0), ConfigError, "0"),
        ("notebook tau inf", lambda f: check_method_parameters(tau=INF), ConfigError, "inf"),
        ("notebook alpha nan", lambda f: check_method_parameters(alpha=NAN), ConfigError, "nan"),
        ("notebook beta -1", lambda f: check_method_parameters(beta=-1), ConfigError, "-1"),
    ]


API_CASES = _api_cases()


@pytest.mark.parametrize(
    ("name", "call", "error", "needle"), API_CASES, ids=[c[0] for c in API_CASES]
)
def test_api_bad_input_raises_the_kits_exception(monkeypatch, files, name, call, error, needle):
    monkeypatch.delenv("DIHKIT_PROFILE", raising=False)
    with pytest.raises(error) as info:
        call(files)
    message = str(info.value)
    assert "\n" not in message and needle.format(**files) in message, message


def _option_cases():
    """Every float option of every method with nan and inf, every bounded one just outside."""
    from dihkit.methods import get_method, method_names, option_infos

    cases = []
    for method in method_names():
        for info in option_infos(get_method(method).Options):
            if info.type is not float:
                continue
            cases += [(method, info.name, NAN), (method, info.name, INF)]
            if info.low is not None:
                cases.append((method, info.name, info.low - 1 if not info.low_open else info.low))
            if info.high is not None:
                cases.append((method, info.name, info.high + 0.5))
    return cases


OPTION_CASES = _option_cases()


@pytest.mark.parametrize(("method", "name", "value"), OPTION_CASES)
def test_method_option_out_of_range_is_a_config_error(method, name, value):
    from dihkit.methods import resolve_options

    with pytest.raises(ConfigError) as info:
        resolve_options(method, {name: value})
    message = str(info.value)
    assert "\n" not in message and f"{name} = {value!r}" in message and method in message


EXPERIMENT = """\
title = "A tiny experiment"
source = "a paper, Table 9"
reported = "mean of 3 runs"
baseline = "ce"

[recipe]
dataset = "cifar100"
epochs = 200
batch_size = 64
lr = 0.1
weight_decay = 0.0005
schedule = "multistep"
milestones = [60, 120, 180]
seeds = 3

[heads]
kind = "linear"
epochs = 4
lr = 0.002

[methods.ce]

[methods.kd]
tau = 4.0
alpha = 0.9

[[pairs]]
teacher = "resnet14"
student = "resnet8"
paper = { ce = 59.77, kd = 60.15 }
"""
# (text to replace in EXPERIMENT, its replacement, text the one line must contain): each a bad
# value in an experiment file, refused by `dihkit reproduce FILE` before anything trains.
EXPERIMENT_CASES = [
    ("epochs = 200", "epochs = 0", "got 0"),
    ("epochs = 200", "epochs = 2.5", "got 2.5"),
    ("epochs = 200", 'epochs = "200"', "got '200'"),
    ("batch_size = 64", "batch_size = 0", "got 0"),
    ("batch_size = 64", "batch_size = -64", "got -64"),
    ("lr = 0.1", "lr = nan", "lr = nan"),
    ("lr = 0.1", "lr = inf", "lr = inf"),
    ("lr = 0.1", 'lr = "fast"', "lr = 'fast'"),
    ("weight_decay = 0.0005", "weight_decay = -1.0", "weight_decay = -1.0"),
    ('schedule = "multistep"', 'schedule = "linear"', "schedule = 'linear'"),
    ("milestones = [60, 120, 180]", "milestones = [60, 300]", "(60, 300)"),
    ("milestones = [60, 120, 180]", "milestones = [-5]", "(-5,)"),
    ("seeds = 3", "seeds = 0", "seeds must be an integer >= 1, got 0"),
    ("seeds = 3", "seeds = -2", "got -2"),
    ("seeds = 3", "seeds = 3\ncached_targets = -1", "cached_targets must be an integer >= 0"),
    ('dataset = "cifar100"', "dataset = 3", "unknown dataset 3"),
    ('title = "A tiny experiment"', "title = 3", "title must be a string, got 3"),
    ('source = "a paper, Table 9"', 'source = ["a paper"]', "got ['a paper']"),
    ('baseline = "ce"', 'baseline = "nosuch"', "'nosuch'"),
    ('reported = "mean of 3 runs"', 'reported = "x"\ncolour = "red"', "unknown key 'colour'"),
    ("[heads]\nkind", "[heads]\nwidth = 0\nkind", "width must be an integer >= 1, got 0"),
    ("epochs = 4", "epochs = 0", "got 0"),
    ("lr = 0.002", "lr = -0.002", "lr = -0.002"),
    ("alpha = 0.9", "alpha = 1.5", "alpha = 1.5"),
    ("alpha = 0.9", "alpha = nan", "alpha = nan"),
    ("tau = 4.0", "tau = 0.0", "tau = 0.0"),
    ("tau = 4.0", 'tau = "hot"', "tau = 'hot'"),
    ("[methods.ce]", "[methods.nosuch]", "unknown method 'nosuch'"),
    ('teacher = "resnet14"', 'teacher = "resnet9"', "unknown teacher 'resnet9'"),
    ('teacher = "resnet14"\n', "", "no teacher but columns kd need one"),
    ('student = "resnet8"\n', "", "needs a student"),
    ("kd = 60.15", 'kd = "high"', "paper.kd must be a percentage, got 'high'"),
    ("kd = 60.15", "kd = -1.0", "paper.kd must be a percentage, got -1.0"),
    ("kd = 60.15 }", "kd = 60.15 }\nrecipe = { lr = -1.0 }", "lr = -1.0"),
    ("kd = 60.15 }", "kd = 60.15 }\nkd = { alpha = 2.0 }", "unknown key 'pairs.0.kd'"),
    ("[[pairs]]", "[profiles.smoke]\nepochs = -1\n\n[[pairs]]", "got -1"),
    ("[[pairs]]", "[profiles.smoke]\nlr = nan\n\n[[pairs]]", "lr = nan"),
    ("[[pairs]]", "[profiles.smoke]\nwarmup = 3\n\n[[pairs]]", "'profiles.smoke.warmup'"),
]


@pytest.mark.parametrize(
    ("replace", "by", "needle"), EXPERIMENT_CASES, ids=[c[1] for c in EXPERIMENT_CASES]
)
def test_a_bad_experiment_file_is_one_line_naming_the_file_and_exit_2(
    capsys, tmp_path, replace, by, needle
):
    assert replace in EXPERIMENT
    path = tmp_path / "experiment.toml"
    path.write_text(EXPERIMENT.replace(replace, by, 1))
    argv = ["reproduce", str(path), "--profile", "smoke", "--estimate", "--out", str(tmp_path)]
    code, err = _exit_and_stderr(capsys, argv)
    assert code == 2
    assert_one_clear_line(err, needle)
    assert err.startswith(f"dihkit: error: {path}:"), err


def _notebook_parameter(case) -> bool:
    """API cases that are the notebooks' parameters (profiles and method parameters)."""
    return case[0].startswith(("profile ", "notebook "))


def bad_input_counts() -> dict[str, int]:
    """How many bad-input cases this file holds, by where the bad value comes in."""
    return {
        # the tables, the two real subprocesses and the non-empty --out folder
        "CLI": len(CLI_CASES) + len(FLAG_CASES) + 2 + 1,
        "Python API": sum(not _notebook_parameter(c) for c in API_CASES) + len(OPTION_CASES),
        "notebook parameters": sum(_notebook_parameter(c) for c in API_CASES),
        "experiment files": len(EXPERIMENT_CASES),
    }


def test_the_tables_cover_at_least_200_bad_inputs():
    counts = bad_input_counts()
    report = ", ".join(f"{name}: {count}" for name, count in counts.items())
    print(f"bad-input cases: {report}; total {sum(counts.values())}")
    assert sum(counts.values()) >= 200, report
    assert counts["CLI"] >= 100 and counts["experiment files"] >= 30, report
    assert counts["notebook parameters"] >= 15 and len(OPTION_CASES) >= 20, report
    assert all(issubclass(case[2], DihkitError) for case in API_CASES)
