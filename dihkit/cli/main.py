"""The ``dihkit`` command line: train, eval, train-heads, distill, compare, benchmark,
reproduce (the papers' tables), teachers, tour (the notebook sequence), notebooks (a copy of it)
and quickstart. Under ``torchrun`` the commands that train run with DistributedDataParallel."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from dihkit import __version__
from dihkit.book.tour import add_tour_arguments, run_tour
from dihkit.checks import describe_range, in_range
from dihkit.cli import commands
from dihkit.cli.method_flags import add_method_option_args, methods_epilog
from dihkit.cli.regime import __doc__ as regime_doc
from dihkit.cli.regime import add_regime_arguments, cmd_regime_study
from dihkit.cli.reproduce import add_reproduce_arguments, cmd_reproduce
from dihkit.data.datasets import DATASET_NAMES
from dihkit.errors import DihkitError
from dihkit.methods import method_names
from dihkit.models import MODEL_NAMES
from dihkit.nn.heads import ACTIVATIONS, HEAD_TYPES
from dihkit.training import distributed
from dihkit.training.config import MAX_SEED, SCHEDULES
from dihkit.training.runtime import DEVICE_CHOICES


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the message and where to find the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(
    text: str,
    low: float,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite float within bounds (``high`` None: unbounded), else an argparse error naming the
    value and the range."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not in_range(value, low, high, low_open=low_open, high_open=high_open):
        bounds = describe_range(low, high, low_open=low_open, high_open=high_open)
        raise argparse.ArgumentTypeError(f"must be a finite number in {bounds}, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    return _number(text, 0.0, low_open=True)


def _non_negative_float(text: str) -> float:
    return _number(text, 0.0)


def _fraction(text: str) -> float:
    return _number(text, 0.0, 1.0, high_open=True)


def _integer(text: str, low: int, high: int | None, expected: str, bound: str) -> int:
    """An integer within ``[low, high]`` (``high`` None: unbounded), else an argparse error
    saying what was ``expected`` and the ``bound``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not in_range(value, low, high):
        raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
    return value


def _seed(text: str) -> int:
    return _integer(text, 0, MAX_SEED, "an integer seed", "an integer in [0, 2**63 - 1]")


def _non_negative_int(text: str) -> int:
    return _integer(text, 0, None, "an integer >= 0", "an integer >= 0")


def _positive_int(text: str) -> int:
    return _integer(text, 1, None, "a positive integer", "a positive integer")


def _add_data_args(parser: argparse.ArgumentParser, default: str | None = "fmnist-mini") -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", default=default, help=f"one of {', '.join(DATASET_NAMES)}")
    group.add_argument(
        "--data-dir", help="folder holding the dataset files (CIFAR, SVHN, Fashion-MNIST)"
    )
    group.add_argument("--download", action="store_true", help="download the dataset if missing")
    group.add_argument(
        "--val-fraction", type=_fraction, default=0.1, help="held-out share of train, in [0, 1)"
    )
    group.add_argument(
        "--train-per-class", type=_positive_int, help="keep only N training images per class"
    )


def _add_train_args(parser: argparse.ArgumentParser, epochs: int = 10, lr: float = 0.1) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--epochs", type=_positive_int, default=epochs)
    group.add_argument("--batch-size", type=_positive_int, default=128)
    group.add_argument("--lr", type=_positive_float, default=lr)
    group.add_argument("--weight-decay", type=_non_negative_float, default=5e-4)
    group.add_argument("--schedule", choices=SCHEDULES, default="cosine")
    group.add_argument(
        "--milestones", type=_positive_int, nargs="*", default=[], help="multistep epochs"
    )
    group.add_argument("--no-augment", action="store_true", help="no random crop / flip")
    group.add_argument("--seed", type=_seed, default=0)
    group.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICE_CHOICES)}")
    group.add_argument("--out", required=True, help="run folder for checkpoints and history")
    again = group.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in OUT from its last.pt (with no last.pt: start from scratch)",
    )
    again.add_argument(
        "--overwrite", action="store_true", help="replace the run already in OUT (its files)"
    )
    group.add_argument("--quiet", action="store_true", help="no progress bars")
    group.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the training step (worth it on a GPU for long runs; the first "
        "steps compile)",
    )
    _add_per_rank_batch(group)


def _add_per_rank_batch(group: argparse._ActionsContainer) -> None:
    group.add_argument(
        "--per-rank-batch",
        type=_positive_int,
        metavar="B",
        help="under torchrun: B images per process; the global batch becomes B x processes "
        "and the lr scales with it (linear scaling rule) [default: --batch-size is the global "
        "batch, split over the processes]",
    )


def _model_arg(p: argparse.ArgumentParser, flag: str, **kwargs: object) -> None:
    """A flag naming an architecture; its help lists them all."""
    p.add_argument(
        flag, choices=MODEL_NAMES, metavar="MODEL", help=", ".join(MODEL_NAMES), **kwargs
    )


def _add_method_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", help="checkpoint path or bundled teacher name (not for ce)")
    _model_arg(p, "--student", required=True)
    add_method_option_args(p)
    _add_data_args(p, default=None)
    _add_train_args(p)
    group = p.add_argument_group("cached targets")
    group.add_argument(
        "--cached-targets",
        type=_non_negative_int,
        default=0,
        metavar="V",
        help="train from V cached augmented views per image with the frozen teacher's outputs "
        "stored once (no teacher forward during training); 0: live teacher [0]",
    )
    group.add_argument(
        "--cache-seed", type=_non_negative_int, default=0, help="seed of the cached views [0]"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dihkit",
        description="Knowledge distillation via intermediate heads: a teaching kit.",
    )
    parser.add_argument("--version", action="version", version=f"dihkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a model from scratch with cross-entropy")
    _model_arg(p, "--model", required=True)
    p.add_argument(
        "--in-channels",
        type=_positive_int,
        help="input channels [default: the dataset's]; a different value is refused",
    )
    _add_data_args(p)
    _add_train_args(p)
    p.set_defaults(run=commands.cmd_train)

    p = sub.add_parser("eval", help="test accuracy of a checkpoint (every member for a cohort)")
    p.add_argument("checkpoint", help="checkpoint path or bundled teacher name")
    p.add_argument("--device", default="auto")
    _add_data_args(p, default=None)
    p.set_defaults(run=commands.cmd_eval)

    p = sub.add_parser("train-heads", help="train classifier heads on a frozen teacher")
    p.add_argument("--teacher", required=True, help="checkpoint path or bundled teacher name")
    p.add_argument("--head", choices=HEAD_TYPES, default="linear")
    p.add_argument("--positions", nargs="*", help="mounting positions (default: stage outputs)")
    p.add_argument(
        "--activation",
        choices=tuple(ACTIVATIONS),
        default="none",
        help="the non-linearity g of DIH Eq. 3 on each head's logits; the paper names relu, the "
        "bundled heads have none (default)",
    )
    p.add_argument("--width", type=_positive_int, default=256, help="conv head width")
    _add_data_args(p, default=None)
    _add_train_args(p, epochs=10, lr=0.002)
    p.set_defaults(run=commands.cmd_train_heads)

    p = sub.add_parser(
        "distill",
        help="train a student with a distillation method",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Train a student from scratch with one method. Each method takes only its own "
            "options (listed with its defaults in each flag's help); checkpoints hold the plain "
            "student, without any heads or exits used in training.\n\n"
            "dih follows the DIH paper: the mean of the k+1 KD losses over the cohort (Eq. 4) "
            "plus (1-alpha)*CE once (Eq. 5). The authors' public code sums alpha*tau^2*KL + "
            "(1-alpha)*CE over the k+1 members, exactly (k+1) x Eq. 5: the same KD:CE balance "
            "with a (k+1)-times larger effective learning rate (and relatively weaker weight "
            "decay); --dih-reduction sum reproduces it. dihkit selects checkpoints on a "
            "validation split, never on the test set."
        ),
        epilog=methods_epilog(),
    )
    p.add_argument("--method", required=True, choices=method_names(), metavar="METHOD")
    _add_method_args(p)
    p.set_defaults(run=commands.cmd_distill)

    p = sub.add_parser(
        "compare",
        help="several methods x seeds: mean +/- std and paired diffs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=methods_epilog(),
    )
    p.add_argument(
        "--methods", nargs="+", choices=method_names(), default=["ce", "kd", "dih"], metavar="M"
    )
    p.add_argument("--seeds", nargs="+", type=_seed, default=[0, 1, 2])
    _add_method_args(p)
    p.set_defaults(run=commands.cmd_compare)

    p = sub.add_parser(
        "benchmark",
        help="images/s of models, and each method's step and epoch cost live and cached",
        description="Model throughput, then per-method costs (interleaved in one process, "
        "reported as ratios): step time live and from cached targets against ce, the cohort's "
        "forward against the teacher's, fit epochs against a conventional PIL + DataLoader KD "
        "loop, the cache's one-time cost and peak tensor memory.",
    )
    p.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=["resnet8", "resnet56"])
    p.add_argument("--batch-size", type=_positive_int, default=128)
    p.add_argument("--steps", type=_positive_int, default=30, help="throughput steps per model")
    p.add_argument("--device", default="auto")
    p.add_argument("--teacher", default="resnet56", help="teacher of the method benchmark")
    _model_arg(p, "--student", default="resnet8")
    p.add_argument("--method-steps", type=_positive_int, default=10, help="steps per round")
    p.add_argument("--rounds", type=_positive_int, default=5, help="interleaved rounds")
    p.add_argument("--views", type=_positive_int, default=8, help="cached views per image")
    p.add_argument("--epoch-rounds", type=_positive_int, default=1, help="rounds of fit epochs")
    p.add_argument(
        "--run-epochs", type=_positive_int, default=15, help="run length for the cache trade-off"
    )
    p.add_argument("--workers", type=_non_negative_int, default=2, help="conventional loop")
    p.add_argument("--models-only", action="store_true", help="only the model throughput table")
    p.add_argument("--quick", action="store_true", help="tiny data and few steps (for tests)")
    p.add_argument("--json", action="store_true", help="print the measurements as JSON")
    _add_data_args(p)
    p.set_defaults(run=commands.cmd_benchmark)

    p = sub.add_parser(
        "reproduce",
        help="run a paper's table from its experiment file (configs/), beside its numbers",
        description=(
            "Reproduce a published table: teachers (and their heads) are trained once, then "
            "every student run; finished runs are reused and an interrupted one resumes when "
            "the command is run again. Profiles: paper (the published recipe and dataset), "
            "classroom and smoke (fmnist-mini, fewer epochs). Results go to OUT/results.md, "
            ".csv and .json with an environment record. Under torchrun every run is trained "
            "with DistributedDataParallel."
        ),
    )
    add_reproduce_arguments(p, _positive_int, _non_negative_int)
    p.set_defaults(run=cmd_reproduce)

    p = sub.add_parser(
        "regime-study",
        help="the grid the classroom profile was chosen on: CE vs KD, paired seeds",
        description=regime_doc,
    )
    add_regime_arguments(p, _seed)
    p.set_defaults(run=cmd_regime_study)

    p = sub.add_parser("teachers", help="list the bundled teachers")
    p.set_defaults(run=commands.cmd_teachers)

    p = sub.add_parser("export-teacher", help="add a train-heads checkpoint to the bundle")
    p.add_argument("checkpoint")
    p.add_argument("--name", required=True)
    p.add_argument("--command", required=True, help="the commands that produced it")
    _add_data_args(p, default=None)
    p.set_defaults(run=commands.cmd_export_teacher)

    p = sub.add_parser(
        "tour",
        help="run the notebook sequence headless (papermill), then write the HTML book",
        description=(
            "Execute notebooks/NN_*.ipynb with a profile (smoke: seconds; classroom: minutes on "
            "a CPU; paper: CIFAR on a GPU) into OUT, then write OUT/book/index.html. Parameter "
            "names given with --param are checked against each notebook's parameters cell."
        ),
    )
    add_tour_arguments(p)
    p.set_defaults(run=run_tour)

    p = sub.add_parser(
        "notebooks",
        help="copy the notebook sequence into a folder, to open in your own JupyterLab",
        description="Copy notebooks/NN_*.ipynb (with their README and nbval_sanitize.cfg) into "
        "DEST. They record their results in DEST/../runs/ (their out_dir and cache_dir "
        "parameters), as in the repository, where notebooks/ and runs/ sit side by side.",
    )
    p.add_argument("dest", metavar="DEST", help="folder for the copies (created if missing)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace the sequence's files already in DEST"
    )
    p.set_defaults(run=commands.cmd_notebooks)

    p = sub.add_parser(
        "quickstart", help="a first look without Jupyter: bundled cohorts, then train a model"
    )
    _model_arg(p, "--model", default="resnet14")
    p.add_argument("--epochs", type=_positive_int, default=4)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="runs/quickstart")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=commands.cmd_quickstart)
    return parser


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, as Ctrl-C raises KeyboardInterrupt."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


def _stopped(exc: KeyboardInterrupt, args: argparse.Namespace) -> int:
    """The one-line goodbye of an interrupted command, and its exit status."""
    terminated = isinstance(exc, _Terminated)
    what = "stopped by SIGTERM" if terminated else "interrupted"
    out = getattr(args, "out", None)
    kept = ""
    if out is not None and (Path(out) / "last.pt").is_file():
        kept = f"; {Path(out) / 'last.pt'} holds the last finished epoch"
    again = "rerun with --resume" if hasattr(args, "resume") else "run the same command again"
    print(f"dihkit: {what}{kept}; {again} to continue", file=sys.stderr)
    return 143 if terminated else 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; user errors print one line and exit with status 2, SIGINT and SIGTERM stop
    the run (``last.pt`` keeps the last finished epoch) with status 130 and 143."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if distributed.init(getattr(args, "device", "auto")) and not distributed.is_main():
        sys.stdout = open(os.devnull, "w")  # rank 0 alone prints the results
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        return args.run(args)
    except (DihkitError, OSError) as exc:  # every user-facing error of the kit, files included
        print(f"dihkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        return _stopped(exc, args)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
        distributed.shutdown()


if __name__ == "__main__":
    sys.exit(main())
