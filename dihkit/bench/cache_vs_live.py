"""Does training from V fixed cached views cost accuracy? Live distillation against cached
targets at several V, paired by seed (same student initialisation and shuffle order).

    python -m dihkit.bench.cache_vs_live --train-per-class 100 0 --views 4 16 --seeds 0 1 2

Runs go through :func:`dihkit.runs.cache.cached_run`, so finished ones are reused and an
interrupted study resumes. ``--train-per-class 0`` means the whole embedded training set.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dihkit.files import write_json_atomic, write_text_atomic
from dihkit.runs.cache import cached_run
from dihkit.training.config import TrainConfig

__all__ = ["cached_vs_live", "cached_vs_live_table"]


def cached_vs_live(
    *,
    method: str = "dih",
    teacher: str = "resnet56",
    student: str = "resnet8",
    train_per_class: Sequence[int | None] = (100, None),
    views: Sequence[int] = (4, 16),
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 15,
    root: str | Path = "runs/cache",
    progress: bool = False,
) -> list[dict[str, Any]]:
    """One row per (data size, variant, seed): test accuracy of the validation-selected and the
    last-epoch student, and the training seconds. Variant 0 is the live teacher."""
    rows = []
    for per_class in train_per_class:
        for v in (0, *views):
            for seed in seeds:
                config = TrainConfig(epochs=epochs, seed=seed, cached_targets=v)
                run = cached_run(
                    method,
                    teacher=teacher,
                    student=student,
                    config=config,
                    train_per_class=per_class,
                    root=root,
                    progress=progress,
                )
                rows.append(
                    {
                        "train_per_class": per_class,
                        "views": v,
                        "seed": seed,
                        "test_acc_best": run.test_acc_best,
                        "test_acc_last": run.test_acc_last,
                        "seconds": run.seconds,
                    }
                )
    return rows


def _mean_std(values: Sequence[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.fmean(values):.2f} +/- {100 * std:.2f}"


def cached_vs_live_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown: per data size and variant, test accuracy mean +/- std over seeds and the paired
    difference to the live run of the same seed. (Training times stay in the rows: runs made at
    different times on a shared machine are no speed comparison; ``dihkit benchmark`` is.)"""
    lines = [
        "| train images per class | targets | test acc. % (best val) | paired diff. to live "
        "(pp) | per-seed diffs | last-epoch acc. % |",
        "|---|---|---|---|---|---|",
    ]
    sizes = list(dict.fromkeys(r["train_per_class"] for r in rows))
    for size in sizes:
        group = [r for r in rows if r["train_per_class"] == size]
        live = {r["seed"]: r for r in group if r["views"] == 0}
        for v in dict.fromkeys(r["views"] for r in group):
            runs = [r for r in group if r["views"] == v]
            diffs = [r["test_acc_best"] - live[r["seed"]]["test_acc_best"] for r in runs]
            diff = "-" if v == 0 else _mean_std(diffs)
            each = "-" if v == 0 else ", ".join(f"{100 * d:+.2f}" for d in diffs)
            lines.append(
                f"| {size or 'all'} | {'live teacher' if v == 0 else f'cached, V={v}'} | "
                f"{_mean_std([r['test_acc_best'] for r in runs])} | {diff} | {each} | "
                f"{_mean_std([r['test_acc_last'] for r in runs])} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="dih")
    parser.add_argument("--teacher", default="resnet56")
    parser.add_argument("--student", default="resnet8")
    parser.add_argument("--train-per-class", type=int, nargs="+", default=[100, 0])
    parser.add_argument("--views", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--out", default="runs/cache-study", help="folder for table.md/rows.json")
    args = parser.parse_args(argv)
    rows = cached_vs_live(
        method=args.method,
        teacher=args.teacher,
        student=args.student,
        train_per_class=[n or None for n in args.train_per_class],
        views=args.views,
        seeds=args.seeds,
        epochs=args.epochs,
        progress=True,
    )
    table = cached_vs_live_table(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "rows.json", rows)
    write_text_atomic(out / "table.md", table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
