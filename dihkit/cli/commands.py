"""What each ``dihkit`` command does, given its parsed arguments (the parser is in
:mod:`dihkit.cli.main`)."""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from dihkit.bench.methods import format_method_benchmark, method_benchmark
from dihkit.bench.throughput import measure_throughput
from dihkit.book.notebooks import copy_notebooks, results_folder
from dihkit.cli.method_flags import options_for
from dihkit.data.datasets import Dataset, load_dataset
from dihkit.errors import ConfigError
from dihkit.files import write_json_atomic, write_text_atomic
from dihkit.methods import get_method
from dihkit.resources import inside_package
from dihkit.runs.compare import comparison_table, run_comparison
from dihkit.runs.pipeline import (
    check_fits_data,
    cohort_accuracy,
    distill,
    load_teacher,
    train_heads,
    train_model,
)
from dihkit.teachers.bundled import (
    TEACHER_DIR,
    check_teacher_name,
    export_teacher,
    read_manifest,
    resolve_checkpoint,
    teacher_names,
)
from dihkit.training import distributed, run_folder
from dihkit.training.checkpoint import load_checkpoint
from dihkit.training.config import TrainConfig
from dihkit.training.evaluation import evaluate
from dihkit.training.history import FitResult


def _owns_out(*, resume: bool | None = None, overwrite: bool | None = None) -> Callable:
    """Decorate a command that writes a run into ``--out``: the folder is checked and locked
    before any data is loaded (:func:`dihkit.training.run_folder.claim`) and held until the
    command ends.
    ``resume``/``overwrite`` fix what the flags would otherwise say (compare always resumes,
    quickstart always starts again)."""

    def decorate(command: Callable[[argparse.Namespace], int]) -> Callable:
        @functools.wraps(command)
        def run(args: argparse.Namespace) -> int:
            again = getattr(args, "resume", False) if resume is None else resume
            fresh = getattr(args, "overwrite", False) if overwrite is None else overwrite
            asked = resume is None and getattr(args, "resume", False)
            if asked and not (Path(args.out) / "last.pt").is_file():
                print(
                    f"dihkit: note: {Path(args.out) / 'last.pt'} does not exist; "
                    "--resume starts from scratch",
                    file=sys.stderr,
                )
            with run_folder.claim(args.out, resume=again, overwrite=fresh):
                return command(args)

        return run

    return decorate


def config_from(args: argparse.Namespace) -> TrainConfig:
    """The training settings of the command line; with ``--per-rank-batch`` under torchrun the
    global batch and the learning rate are scaled to the number of processes (and it says so)."""
    config = _config_from(args)
    if getattr(args, "per_rank_batch", None) is not None:
        config, message = distributed.scale_for_world(
            config, distributed.world_size(), args.per_rank_batch
        )
        if distributed.is_main():
            print(f"dihkit: {message}", file=sys.stderr)
    return config


def _config_from(args: argparse.Namespace) -> TrainConfig:
    if args.milestones and args.schedule != "multistep":  # TrainConfig keeps them, unused
        shown = " ".join(map(str, args.milestones))
        raise ConfigError(
            f"--milestones {shown} only apply to --schedule multistep (this run uses "
            f"--schedule {args.schedule}); add --schedule multistep or drop --milestones"
        )
    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        milestones=tuple(args.milestones),
        augment=not args.no_augment,
        seed=args.seed,
        device=args.device,
        cached_targets=getattr(args, "cached_targets", 0),
        cache_seed=getattr(args, "cache_seed", 0),
        compile=getattr(args, "compile", False),
    )


def _dataset(args: argparse.Namespace, name: str | None = None) -> Dataset:
    return load_dataset(
        name or args.dataset,
        data_dir=args.data_dir,
        download=args.download,
        val_fraction=args.val_fraction,
        train_per_class=args.train_per_class,
    )


def _dataset_of(args: argparse.Namespace, checkpoint: str | None) -> Dataset:
    """``--dataset`` if given, else the dataset the checkpoint was trained on, else fmnist-mini."""

    name = args.dataset
    if name is None and checkpoint is not None:
        name = load_checkpoint(resolve_checkpoint(checkpoint)).get("dataset")
    return _dataset(args, name or "fmnist-mini")


def _summary(result: FitResult, label: str) -> str:
    if result.best_val_acc is None:  # no validation split: nothing was selected
        return (
            f"{label}: no validation split, last epoch {result.best_epoch} kept: "
            f"test {100 * result.test_acc_last:.2f}%"
        )
    return (
        f"{label}: best epoch {result.best_epoch} (val {100 * result.best_val_acc:.2f}%) "
        f"test {100 * result.test_acc_best:.2f}% | "
        f"last epoch test {100 * result.test_acc_last:.2f}%"
    )


def _percent(value: float | None) -> str:
    """A 7-wide percentage column; ``-`` where there is no value (an empty split)."""
    return f"{100 * value:>7.2f}" if value is not None and math.isfinite(value) else f"{'-':>7}"


def _print_members(accuracy: dict[str, dict[str, float]]) -> None:
    print(f"{'member':<24} {'val%':>7} {'test%':>7}")
    for name, acc in accuracy.items():
        print(f"{name:<24} {_percent(acc['val'])} {_percent(acc['test'])}")


@_owns_out()
def cmd_train(args: argparse.Namespace) -> int:
    data = _dataset(args)
    if args.in_channels is not None and args.in_channels != data.spec.in_channels:
        raise ConfigError(
            f"--in-channels {args.in_channels} does not match {data.spec.name}, whose images "
            f"have {data.spec.in_channels} channel(s); drop --in-channels or pick another dataset"
        )
    _, result = train_model(
        args.model,
        data,
        config_from(args),
        out_dir=args.out,
        resume=args.resume,
        progress=not args.quiet,
    )
    print(result.table())
    print(_summary(result, f"{args.model} on {data.spec.name}"))
    print(f"checkpoints: {Path(args.out) / 'best.pt'}, {Path(args.out) / 'last.pt'}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    teacher = load_teacher(args.checkpoint)
    data = _dataset_of(args, args.checkpoint)
    check_fits_data(teacher.model, data, "checkpoint's model")
    if teacher.cohort is not None:
        _print_members(cohort_accuracy(teacher.cohort, data, device=args.device))
        return 0
    acc = evaluate(teacher.model, data, "test", device=args.device)
    print(f"{teacher.model.arch} on {data.spec.name} test: {100 * float(acc):.2f}%")
    return 0


@_owns_out()
def cmd_train_heads(args: argparse.Namespace) -> int:
    data = _dataset_of(args, args.teacher)
    cohort, result = train_heads(
        args.teacher,
        data,
        config_from(args),
        kind=args.head,
        positions=args.positions,
        activation=args.activation,
        width=args.width,
        out_dir=args.out,
        resume=args.resume,
        progress=not args.quiet,
    )
    print(result.table())
    counts = cohort.head_parameter_counts()
    for name, count in zip(cohort.member_names, counts, strict=False):
        print(f"{name}: {count:,} parameters")
    print(_summary(result, f"{args.head} heads (mean over heads)"))
    accuracy = cohort_accuracy(cohort, data, device=args.device)
    _print_members(accuracy)
    write_json_atomic(Path(args.out) / "cohort.json", accuracy)
    return 0


def _check_teacher_used(method: str, teacher: str | None) -> None:
    """A single run refuses a teacher its method would ignore (``compare`` ignores it)."""
    if teacher is not None and not get_method(method).requires:
        raise ConfigError(
            f"method {method!r} trains without a teacher, so --teacher {teacher} would be "
            "ignored; drop --teacher"
        )


@_owns_out()
def cmd_distill(args: argparse.Namespace) -> int:
    _check_teacher_used(args.method, args.teacher)
    data = _dataset_of(args, args.teacher)
    options = options_for([args.method], args)[args.method]
    start = time.perf_counter()
    _, result = distill(
        args.method,
        args.teacher,
        args.student,
        data,
        config_from(args),
        options,
        out_dir=args.out,
        resume=args.resume,
        progress=not args.quiet,
    )
    print(result.table())
    teacher = f"{args.teacher} -> " if args.teacher else ""  # a method without one: none
    print(_summary(result, f"{args.method} {teacher}{args.student}"))
    print(f"wall time {time.perf_counter() - start:.1f} s")
    return 0


@_owns_out(resume=True)
def cmd_compare(args: argparse.Namespace) -> int:
    data = _dataset_of(args, args.teacher)
    start = time.perf_counter()
    records = run_comparison(
        args.methods,
        args.seeds,
        args.teacher,
        args.student,
        data,
        config_from(args),
        options_for(args.methods, args),
        out_dir=args.out,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    table = comparison_table(records)
    print(table)
    print(f"wall time {time.perf_counter() - start:.0f} s")
    write_text_atomic(Path(args.out) / "table.md", table + "\n")
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    if args.quick:
        args.train_per_class = args.train_per_class or 20
        args.batch_size = min(args.batch_size, 32)
        args.models = args.models[:1]
    data = _dataset(args)
    steps = 3 if args.quick else args.steps
    rows = [
        measure_throughput(arch, data, batch_size=args.batch_size, steps=steps, device=args.device)
        for arch in args.models
    ]
    bench = None
    if not args.models_only:
        bench = method_benchmark(
            data,
            teacher=args.teacher,
            student=args.student,
            batch_size=args.batch_size,
            steps=2 if args.quick else args.method_steps,
            rounds=1 if args.quick else args.rounds,
            views=2 if args.quick else args.views,
            epoch_rounds=1 if args.quick else args.epoch_rounds,
            run_epochs=args.run_epochs,
            workers=args.workers,
            device=args.device,
            log=(lambda _: None) if args.json else (lambda line: print(line, file=sys.stderr)),
        )
    if args.json:
        out = {"throughput": [asdict(t) for t in rows]}
        if bench is not None:
            out.update(bench.as_dict())
        print(json.dumps(out, indent=1))
        return 0
    print(f"{'model':<12} {'device':<6} {'batch':>5} {'train img/s':>12} {'infer img/s':>12}")
    for t in rows:
        print(
            f"{t.model:<12} {t.device:<6} {t.batch_size:>5} "
            f"{t.train_images_per_s:>12.0f} {t.inference_images_per_s:>12.0f}"
        )
    if bench is not None:
        print()
        print(format_method_benchmark(bench))
    return 0


def cmd_teachers(args: argparse.Namespace) -> int:
    manifest = read_manifest()
    if not manifest:
        print("no bundled teachers")
    for name, entry in sorted(manifest.items()):
        members = ", ".join(f"{100 * a:.1f}" for a in entry.get("member_test_acc", []))
        print(
            f"{name:<10} {entry['arch']:<10} {entry['dataset']:<12} "
            f"test {100 * entry['test_acc']:.2f}%  heads+teacher test [{members}]"
        )
    return 0


def cmd_notebooks(args: argparse.Namespace) -> int:
    copies = copy_notebooks(args.dest, overwrite=args.overwrite)
    dest = Path(args.dest)
    print(f"copied {len(copies)} files into {dest}: {', '.join(p.name for p in copies)}")
    print(f"open them with: jupyter lab {dest}")
    print(f"the notebooks record their results in {results_folder(dest)} (out_dir, cache_dir)")
    return 0


def cmd_export_teacher(args: argparse.Namespace) -> int:
    if inside_package(TEACHER_DIR):
        raise ConfigError(
            f"export-teacher adds to the bundle in {TEACHER_DIR}, inside the installed package; "
            "run it from a repository checkout"
        )
    check_teacher_name(args.name)
    teacher = load_teacher(args.checkpoint)
    cohort = teacher.require_cohort("export-teacher")
    data = _dataset_of(args, args.checkpoint)
    accuracy = cohort_accuracy(cohort, data, device="cpu")
    accuracies = {
        "val_acc": accuracy["teacher"]["val"],
        "test_acc": accuracy["teacher"]["test"],
        "members": list(accuracy),
        "member_val_acc": [a["val"] for a in accuracy.values()],
        "member_test_acc": [a["test"] for a in accuracy.values()],
    }
    primary = cohort.spec["kind"]
    for kind in sorted(set(teacher.head_sets) - {primary}):  # e.g. MHKD's conv heads
        other = cohort_accuracy(teacher.head_set(kind), data, device="cpu")
        heads = {name: a for name, a in other.items() if name != "teacher"}
        accuracies[f"{kind}_heads"] = list(heads)
        accuracies[f"{kind}_head_test_acc"] = [a["test"] for a in heads.values()]
    entry = export_teacher(args.checkpoint, args.name, command=args.command, accuracies=accuracies)
    print(json.dumps(entry, indent=1))
    return 0


@_owns_out(overwrite=True)
def cmd_quickstart(args: argparse.Namespace) -> int:
    data = load_dataset("fmnist-mini")
    print(
        f"fmnist-mini: {len(data.train)} train / {len(data.val)} val / {len(data.test)} test images"
    )
    for name in teacher_names():
        if read_manifest()[name].get("dataset") != data.spec.name:
            continue  # e.g. the cifar10-mini ladder; quickstart runs on fmnist-mini
        print(f"\nbundled teacher {name} and its heads (the DIH cohort):")
        _print_members(cohort_accuracy(load_teacher(name).cohort, data, device=args.device))
    print(f"\ntraining a small teacher ({args.model}, {args.epochs} epochs) on fmnist-mini ...")
    config = TrainConfig(epochs=args.epochs, device=args.device)
    _, result = train_model(args.model, data, config, out_dir=args.out, progress=not args.quiet)
    print(result.table())
    print(_summary(result, args.model))
    return 0
