"""``dihkit regime-study``: the grid the classroom profile was chosen on (see
:mod:`dihkit.studies.regime` for the criteria), through the notebooks' run cache; writes
``OUT/regime.md`` (every configuration, mean +/- std and paired differences) and
``OUT/regime.json`` (every run)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from dihkit.files import write_json_atomic, write_text_atomic
from dihkit.runs.profiles import resolve
from dihkit.runs.regime import GRID, KD_SETTINGS, RegimePoint, run_regime_grid
from dihkit.studies.capacity import capacity_ladder
from dihkit.studies.regime import choose_point, ladder_span, regime_markdown, regime_rows
from dihkit.teachers.bundled import read_manifest


def add_regime_arguments(parser: argparse.ArgumentParser, seed_type: type | object) -> None:
    """The command's options (``seed_type`` parses one seed)."""
    parser.add_argument("--out", default="runs/regime", help="where regime.md/json go")
    parser.add_argument("--cache-dir", default="runs/cache", help="the notebooks' run cache")
    parser.add_argument("--seeds", nargs="+", type=seed_type, default=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--teacher", default=None, help="KD's teacher (default: the classroom ladder's largest)"
    )
    parser.add_argument("--device", default=None, help="default: the classroom profile's")
    parser.add_argument(
        "--points",
        nargs="+",
        type=_point,
        default=GRID,
        metavar="N:E",
        help="grid points as images-per-class:epochs (default: "
        + " ".join(f"{p.train_per_class}:{p.epochs}" for p in GRID)
        + ")",
    )


def _point(text: str) -> RegimePoint:
    """``N:E`` as a grid point, else an argparse error naming the value."""
    try:
        n, epochs = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected images-per-class:epochs such as 100:10, got {text!r}"
        ) from None
    if n < 1 or epochs < 1:
        raise argparse.ArgumentTypeError(f"both numbers must be >= 1, got {text!r}")
    return RegimePoint(n, epochs)


def cmd_regime_study(args: argparse.Namespace) -> int:
    ladder = capacity_ladder("classroom")
    manifest = read_manifest()
    accuracies = {name: manifest[name]["test_acc"] for name in ladder if name in manifest}
    span = ladder_span(accuracies)
    base = resolve(
        "classroom",
        seeds=list(args.seeds),
        teacher=args.teacher or ladder[-1],
        device=args.device,
        cached_targets=4,
    )
    start = time.perf_counter()
    records = run_regime_grid(base, cache_dir=args.cache_dir, grid=tuple(args.points))
    rows = regime_rows(records)
    teachers = ", ".join(f"{name} {100 * acc:.2f}%" for name, acc in accuracies.items())
    chosen = choose_point(rows, span)
    text = "\n".join(
        [
            f"Regime study on {base.dataset}: student {base.student}, KD teacher {base.teacher}, "
            f"seeds {', '.join(map(str, base.seeds))}, {base.cached_targets} cached views.",
            f"Teacher ladder (test accuracy): {teachers}; span {100 * span:.2f} points.",
            "",
            regime_markdown(rows, span),
            "",
            "Chosen: "
            + (f"{chosen[0]} images per class, {chosen[1]} epochs." if chosen else "none."),
        ]
    )
    out = Path(args.out)
    write_text_atomic(out / "regime.md", text + "\n")
    write_json_atomic(
        out / "regime.json",
        {
            "settings": base.as_dict(),
            "kd_settings": KD_SETTINGS,
            "ladder": accuracies,
            "span": span,
            "rows": rows,
            "chosen": chosen,
            "runs": records,
        },
    )
    print(text)
    print(f"wall time {time.perf_counter() - start:.0f} s; written to {out}/regime.md")
    return 0
