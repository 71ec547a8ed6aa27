"""``dihkit reproduce``: list the experiments, estimate one, or run it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dihkit.errors import DihkitError
from dihkit.reproduce.config import RECIPE_PROFILES, experiment_names
from dihkit.reproduce.estimate import estimate_jobs, estimate_record, format_estimate
from dihkit.reproduce.loading import load_experiment
from dihkit.reproduce.plan import plan_jobs, resolve_profile
from dihkit.reproduce.runner import Runner
from dihkit.training import distributed


def add_reproduce_arguments(
    parser: argparse.ArgumentParser, positive_int, non_negative_int
) -> None:
    """The ``reproduce`` command's arguments (the number parsers come from the CLI)."""
    parser.add_argument("name", nargs="?", help="an experiment (see --list) or a .toml file")
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    parser.add_argument(
        "--profile",
        choices=RECIPE_PROFILES,
        default="classroom",
        help="paper: the published recipe and dataset (GPU expected); classroom: fmnist-mini, "
        "CPU minutes to an hour; smoke: seconds, for tests [classroom]",
    )
    parser.add_argument("--seeds", type=positive_int, help="seeds 0..N-1 (default: the profile's)")
    parser.add_argument(
        "--pairs", nargs="+", metavar="T-S", help="only these rows (TEACHER-STUDENT)"
    )
    parser.add_argument("--data-dir", help="folder holding the paper's dataset files")
    parser.add_argument("--download", action="store_true", help="download the dataset if missing")
    parser.add_argument("--out", help="output folder [runs/reproduce/NAME-PROFILE]")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps [auto]")
    parser.add_argument(
        "--cached-targets",
        type=non_negative_int,
        metavar="V",
        help="train from V cached views of the frozen teacher's outputs where the method allows "
        "(0: live teacher; default: the profile's, 0 for paper)",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the training step")
    parser.add_argument(
        "--estimate",
        action="store_true",
        help="print each run's training FLOPs and a time projection from measured steps; train "
        "nothing",
    )
    parser.add_argument(
        "--timing-steps",
        type=non_negative_int,
        default=2,
        help="steps timed per distinct run for --estimate (0: FLOPs only) [2]",
    )
    parser.add_argument("--json", action="store_true", help="--estimate as JSON")
    parser.add_argument(
        "--per-rank-batch",
        type=positive_int,
        metavar="B",
        help="under torchrun: B images per process for every run; the global batch becomes B x "
        "processes and each run's lr scales with it [default: the recipe's batch is global]",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def cmd_reproduce(args: argparse.Namespace) -> int:
    if args.list or args.name is None:
        if args.name is None and not args.list:
            print("dihkit reproduce: name an experiment (the list follows)", file=sys.stderr)
        for name in experiment_names():
            try:
                title = load_experiment(name).title
            except DihkitError as exc:
                title = f"(cannot be read: {exc})"
            print(f"{name:<24} {title}")
        return 0 if args.list else 2
    experiment = load_experiment(args.name)
    resolved = resolve_profile(
        experiment,
        args.profile,
        seeds=args.seeds,
        cached_targets=args.cached_targets,
        device=args.device,
        compile=args.compile,
    )
    if args.estimate:
        jobs = plan_jobs(experiment, resolved, args.pairs)
        estimates = estimate_jobs(jobs, experiment, resolved, args.device, args.timing_steps)
        if args.json:
            print(json.dumps(estimate_record(estimates), indent=1))
        else:
            print(format_estimate(experiment, resolved, estimates, args.device))
        return 0
    out = Path(args.out or f"runs/reproduce/{experiment.name}-{args.profile}")
    runner = Runner(
        experiment,
        resolved,
        out,
        data_dir=args.data_dir,
        download=args.download,
        pairs=args.pairs,
        progress=not args.quiet,
        per_rank_batch=args.per_rank_batch,
    )
    runner.run()
    if distributed.is_main():
        print((out / "results.md").read_text())
        print(f"results: {out / 'results.md'}, {out / 'results.csv'}, {out / 'results.json'}")
    return 0
