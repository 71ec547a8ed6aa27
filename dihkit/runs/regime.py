"""The regime study: the small grid of student settings (images per class x epochs) on which the
classroom profile was chosen, CE against KD at the two temperature/weight settings the papers
use, on paired seeds, through the notebooks' run cache (so the classroom notebooks reuse what the
study trained). :mod:`dihkit.studies.regime` judges the criteria and writes the tables.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dihkit.runs.profiles import Settings
from dihkit.runs.results import RunSpec, run_grid

__all__ = ["GRID", "KD_SETTINGS", "RegimePoint", "run_regime_grid"]


@dataclass(frozen=True)
class RegimePoint:
    """One configuration of the grid: training images per class and epochs per student."""

    train_per_class: int
    epochs: int

    @property
    def name(self) -> str:
        return f"{self.train_per_class}/class, {self.epochs} epochs"


GRID: tuple[RegimePoint, ...] = tuple(
    RegimePoint(n, e) for n, e in ((50, 10), (50, 20), (100, 10), (100, 20), (200, 10))
)
# KD as the papers set it: DIH (Sec. 4.1: tau 5, alpha 0.1 on the KD term) and MHKD/DSKD's
# (tau 4, alpha 0.9); the notebooks 01, 02, 04 use the first, 05 and 06 the second.
KD_SETTINGS: dict[str, dict[str, float]] = {
    "kd (tau 5, alpha 0.1)": {"tau": 5.0, "alpha": 0.1},
    "kd (tau 4, alpha 0.9)": {"tau": 4.0, "alpha": 0.9},
}


def run_regime_grid(
    base: Settings,
    *,
    cache_dir: str | Path,
    grid: Sequence[RegimePoint] = GRID,
    log: Callable[[str], None] | None = print,
) -> list[dict[str, Any]]:
    """CE and every :data:`KD_SETTINGS` entry (teacher ``base.teacher``) at every grid point and
    every seed of ``base``; each record gains ``point`` (its :class:`RegimePoint` as a dict)."""
    data = None
    records: list[dict[str, Any]] = []
    for point in grid:
        settings = dataclasses.replace(
            base, train_per_class=point.train_per_class, epochs=point.epochs
        )
        if data is None or data.options.get("train_per_class") != point.train_per_class:
            data = settings.load_data()
        specs = [RunSpec("ce")] + [
            RunSpec("kd", teacher=base.teacher, options=options, label=label)
            for label, options in KD_SETTINGS.items()
        ]
        if log is not None:
            log(f"-- {point.name}")
        for record in run_grid(settings, specs, cache_dir=cache_dir, data=data, log=log):
            records.append({**record, "point": dataclasses.asdict(point)})
    return records
