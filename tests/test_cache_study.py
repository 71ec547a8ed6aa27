"""The cached-versus-live table pairs runs by seed."""

from __future__ import annotations

from dihkit.bench.cache_vs_live import cached_vs_live_table


def test_table_pairs_each_cached_run_with_the_live_run_of_its_seed():
    rows = [
        {"train_per_class": 100, "views": v, "seed": s, "test_acc_best": acc, "test_acc_last": acc}
        for v, s, acc in [
            (0, 0, 0.70),
            (0, 1, 0.74),
            (4, 0, 0.71),
            (4, 1, 0.73),
        ]
    ]
    table = cached_vs_live_table(rows).splitlines()
    assert table[2].startswith("| 100 | live teacher | 72.00 +/- 2.83 | - |")
    # Per seed: +1.00 and -1.00 points; mean 0, sample std sqrt(2).
    assert "| cached, V=4 | 72.00 +/- 1.41 | 0.00 +/- 1.41 | +1.00, -1.00 |" in table[3]
