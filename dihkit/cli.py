"""The ``dihkit`` command line: train, eval, train-heads, distill, compare, benchmark, teachers,
tour."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from dihkit.data import DATASET_NAMES, Dataset, load_dataset
from dihkit.heads import ACTIVATIONS, HEAD_TYPES
from dihkit.models import MODEL_NAMES
from dihkit.runtime import DEVICE_CHOICES
from dihkit.train import SCHEDULES, FitResult, TrainConfig, evaluate


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _add_data_args(parser: argparse.ArgumentParser, default: str | None = "fmnist-mini") -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", default=default, help=f"one of {', '.join(DATASET_NAMES)}")
    group.add_argument("--data-dir", help="folder holding the dataset files (CIFAR, Fashion-MNIST)")
    group.add_argument("--download", action="store_true", help="download the dataset if missing")
    group.add_argument("--val-fraction", type=float, default=0.1, help="held-out share of train")
    group.add_argument(
        "--train-per-class", type=_positive_int, help="keep only N training images per class"
    )


def _add_train_args(parser: argparse.ArgumentParser, epochs: int = 10, lr: float = 0.1) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--epochs", type=_positive_int, default=epochs)
    group.add_argument("--batch-size", type=_positive_int, default=128)
    group.add_argument("--lr", type=float, default=lr)
    group.add_argument("--weight-decay", type=float, default=5e-4)
    group.add_argument("--schedule", choices=SCHEDULES, default="cosine")
    group.add_argument(
        "--milestones", type=_positive_int, nargs="*", default=[], help="multistep epochs"
    )
    group.add_argument("--no-augment", action="store_true", help="no random crop / flip")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICE_CHOICES)}")
    group.add_argument("--out", required=True, help="run folder for checkpoints and history")
    group.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    group.add_argument("--quiet", action="store_true", help="no progress bars")


def _config(args: argparse.Namespace) -> TrainConfig:
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
    from dihkit.checkpoint import load_checkpoint
    from dihkit.teachers import resolve_checkpoint

    name = args.dataset
    if name is None and checkpoint is not None:
        name = load_checkpoint(resolve_checkpoint(checkpoint)).get("dataset")
    return _dataset(args, name or "fmnist-mini")


def _summary(result: FitResult, label: str) -> str:
    return (
        f"{label}: best epoch {result.best_epoch} (val {100 * result.best_val_acc:.2f}%) "
        f"test {100 * result.test_acc_best:.2f}% | "
        f"last epoch test {100 * result.test_acc_last:.2f}%"
    )


def _print_members(accuracy: dict[str, dict[str, float]]) -> None:
    print(f"{'member':<24} {'val%':>7} {'test%':>7}")
    for name, acc in accuracy.items():
        print(f"{name:<24} {100 * acc['val']:>7.2f} {100 * acc['test']:>7.2f}")


def cmd_train(args: argparse.Namespace) -> int:
    from dihkit.pipeline import train_model

    data = _dataset(args)
    if args.in_channels is not None and args.in_channels != data.spec.in_channels:
        raise ValueError(
            f"--in-channels {args.in_channels} does not match {data.spec.name}, whose images "
            f"have {data.spec.in_channels} channel(s); drop --in-channels or pick another dataset"
        )
    _, result = train_model(
        args.model,
        data,
        _config(args),
        out_dir=args.out,
        resume=args.resume,
        progress=not args.quiet,
    )
    print(result.table())
    print(_summary(result, f"{args.model} on {data.spec.name}"))
    print(f"checkpoints: {Path(args.out) / 'best.pt'}, {Path(args.out) / 'last.pt'}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from dihkit.pipeline import check_fits_data, cohort_accuracy, load_teacher

    teacher = load_teacher(args.checkpoint)
    data = _dataset_of(args, args.checkpoint)
    check_fits_data(teacher.model, data, "checkpoint's model")
    if teacher.cohort is not None:
        _print_members(cohort_accuracy(teacher.cohort, data, device=args.device))
        return 0
    acc = evaluate(teacher.model, data, "test", device=args.device)
    print(f"{teacher.model.arch} on {data.spec.name} test: {100 * float(acc):.2f}%")
    return 0


def cmd_train_heads(args: argparse.Namespace) -> int:
    from dihkit.pipeline import cohort_accuracy, train_heads

    data = _dataset_of(args, args.teacher)
    cohort, result = train_heads(
        args.teacher,
        data,
        _config(args),
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
    (Path(args.out) / "cohort.json").write_text(json.dumps(accuracy, indent=1))
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from dihkit.pipeline import distill

    data = _dataset_of(args, args.teacher)
    options = _distill_options(args)
    start = time.perf_counter()
    _, result = distill(
        args.method,
        args.teacher,
        args.student,
        data,
        _config(args),
        options,
        out_dir=args.out,
        resume=args.resume,
        progress=not args.quiet,
    )
    print(result.table())
    print(_summary(result, f"{args.method} {args.teacher or ''} -> {args.student}"))
    print(f"wall time {time.perf_counter() - start:.1f} s")
    return 0


def _distill_options(args: argparse.Namespace):
    from dihkit.pipeline import DistillOptions

    return DistillOptions(
        tau=args.tau,
        alpha=args.alpha,
        hint_epochs=args.hint_epochs,
        peer=args.peer,
        assistant=args.assistant,
    )


def cmd_compare(args: argparse.Namespace) -> int:
    from dihkit.experiments import comparison_table, run_comparison

    data = _dataset_of(args, args.teacher)
    start = time.perf_counter()
    records = run_comparison(
        args.methods,
        args.seeds,
        args.teacher,
        args.student,
        data,
        _config(args),
        _distill_options(args),
        out_dir=args.out,
        progress=not args.quiet,
    )
    table = comparison_table(records)
    print(table)
    print(f"wall time {time.perf_counter() - start:.0f} s")
    (Path(args.out) / "table.md").write_text(table + "\n")
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from dihkit.benchmark import measure_throughput

    data = _dataset(args)
    print(f"{'model':<12} {'device':<6} {'batch':>5} {'train img/s':>12} {'infer img/s':>12}")
    for arch in args.models:
        t = measure_throughput(
            arch, data, batch_size=args.batch_size, steps=args.steps, device=args.device
        )
        print(
            f"{t.model:<12} {t.device:<6} {t.batch_size:>5} "
            f"{t.train_images_per_s:>12.0f} {t.inference_images_per_s:>12.0f}"
        )
    return 0


def cmd_teachers(args: argparse.Namespace) -> int:
    from dihkit.teachers import read_manifest

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


def cmd_export_teacher(args: argparse.Namespace) -> int:
    from dihkit.pipeline import cohort_accuracy, load_teacher
    from dihkit.teachers import export_teacher

    teacher = load_teacher(args.checkpoint)
    cohort = teacher.require_cohort("export-teacher")
    data = _dataset_of(args, args.checkpoint)
    accuracy = cohort_accuracy(cohort, data, device="cpu")
    entry = export_teacher(
        args.checkpoint,
        args.name,
        command=args.command,
        accuracies={
            "val_acc": accuracy["teacher"]["val"],
            "test_acc": accuracy["teacher"]["test"],
            "members": list(accuracy),
            "member_val_acc": [a["val"] for a in accuracy.values()],
            "member_test_acc": [a["test"] for a in accuracy.values()],
        },
    )
    print(json.dumps(entry, indent=1))
    return 0


def cmd_tour(args: argparse.Namespace) -> int:
    from dihkit.pipeline import cohort_accuracy, load_teacher, train_model
    from dihkit.teachers import teacher_names

    data = load_dataset("fmnist-mini")
    print(
        f"fmnist-mini: {len(data.train)} train / {len(data.val)} val / {len(data.test)} test images"
    )
    for name in teacher_names():
        print(f"\nbundled teacher {name} and its heads (the DIH cohort):")
        _print_members(cohort_accuracy(load_teacher(name).cohort, data, device=args.device))
    print(f"\ntraining a small teacher ({args.model}, {args.epochs} epochs) on fmnist-mini ...")
    config = TrainConfig(epochs=args.epochs, device=args.device)
    _, result = train_model(args.model, data, config, out_dir=args.out, progress=not args.quiet)
    print(result.table())
    print(_summary(result, args.model))
    return 0


def _add_method_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", help="checkpoint path or bundled teacher name (not for ce)")
    p.add_argument("--student", required=True, choices=MODEL_NAMES, metavar="MODEL")
    p.add_argument("--tau", type=float, default=5.0, help="temperature (paper: 5)")
    p.add_argument(
        "--alpha", type=float, default=0.1, help="weight of the KD/DIH term (paper: 0.1)"
    )
    p.add_argument("--hint-epochs", type=int, help="fitnets: hint-stage epochs (default 1/5)")
    p.add_argument("--peer", choices=MODEL_NAMES, metavar="MODEL", help="dml: peer architecture")
    p.add_argument("--assistant", choices=MODEL_NAMES, metavar="MODEL", help="takd: assistant")
    _add_data_args(p, default=None)
    _add_train_args(p)


def build_parser() -> argparse.ArgumentParser:
    from dihkit.pipeline import METHOD_NAMES

    parser = argparse.ArgumentParser(
        prog="dihkit",
        description="Knowledge distillation via intermediate heads: a teaching kit.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a model from scratch with cross-entropy")
    p.add_argument("--model", required=True, choices=MODEL_NAMES, metavar="MODEL")
    p.add_argument("--in-channels", type=_positive_int, help="must match the dataset")
    _add_data_args(p)
    _add_train_args(p)
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("eval", help="test accuracy of a checkpoint (every member for a cohort)")
    p.add_argument("checkpoint", help="checkpoint path or bundled teacher name")
    p.add_argument("--device", default="auto")
    _add_data_args(p, default=None)
    p.set_defaults(run=cmd_eval)

    p = sub.add_parser("train-heads", help="train classifier heads on a frozen teacher")
    p.add_argument("--teacher", required=True, help="checkpoint path or bundled teacher name")
    p.add_argument("--head", choices=HEAD_TYPES, default="linear")
    p.add_argument("--positions", nargs="*", help="mounting positions (default: stage outputs)")
    p.add_argument("--activation", choices=tuple(ACTIVATIONS), default="none")
    p.add_argument("--width", type=_positive_int, default=256, help="conv head width")
    _add_data_args(p, default=None)
    _add_train_args(p, epochs=10, lr=0.002)
    p.set_defaults(run=cmd_train_heads)

    p = sub.add_parser(
        "distill",
        help="train a student with a distillation method",
        description=(
            "Train a student from scratch with one method. dih follows the DIH paper: the mean "
            "of the k+1 KD losses over the cohort (Eq. 4) plus (1-alpha)*CE once (Eq. 5). The "
            "authors' public code instead sums alpha*tau^2*KL + (1-alpha)*CE over the k+1 "
            "members (CE counted k+1 times) and selects checkpoints on the test set; dihkit "
            "selects on the validation split."
        ),
    )
    p.add_argument("--method", required=True, choices=METHOD_NAMES)
    _add_method_args(p)
    p.set_defaults(run=cmd_distill)

    p = sub.add_parser("compare", help="several methods x seeds: mean +/- std and paired diffs")
    p.add_argument("--methods", nargs="+", choices=METHOD_NAMES, default=["ce", "kd", "dih"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    _add_method_args(p)
    p.set_defaults(run=cmd_compare)

    p = sub.add_parser("benchmark", help="training and inference images/s of models")
    p.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=["resnet8", "resnet56"])
    p.add_argument("--batch-size", type=_positive_int, default=128)
    p.add_argument("--steps", type=_positive_int, default=30)
    p.add_argument("--device", default="auto")
    _add_data_args(p)
    p.set_defaults(run=cmd_benchmark)

    p = sub.add_parser("teachers", help="list the bundled teachers")
    p.set_defaults(run=cmd_teachers)

    p = sub.add_parser("export-teacher", help="add a train-heads checkpoint to the bundle")
    p.add_argument("checkpoint")
    p.add_argument("--name", required=True)
    p.add_argument("--command", required=True, help="the commands that produced it")
    _add_data_args(p, default=None)
    p.set_defaults(run=cmd_export_teacher)

    p = sub.add_parser("tour", help="a first look: bundled teachers, then train a small model")
    p.add_argument("--model", choices=MODEL_NAMES, default="resnet14", metavar="MODEL")
    p.add_argument("--epochs", type=_positive_int, default=4)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="runs/tour")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=cmd_tour)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; user errors print one line and exit with status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as exc:  # CheckpointError and DataError included
        print(f"dihkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dihkit: interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
