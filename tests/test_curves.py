"""The learning-curve reading: epochs where one group's mean is below another's, written out."""

from __future__ import annotations

from dihkit.studies.curves import curve_gaps, epoch_ranges


def run(method, seed, vals):
    return {
        "method": method,
        "teacher": "t" if method != "ce" else None,
        "student": "s",
        "seed": seed,
        "label": None,
        "history": [{"val_acc": v} for v in vals],
    }


def test_epoch_ranges_join_consecutive_epochs():
    assert epoch_ranges([5, 1, 2, 3]) == "1-3 and 5"
    assert epoch_ranges([2]) == "2"
    assert epoch_ranges([1, 3, 4, 6]) == "1, 3-4 and 6"


def test_curve_gaps_names_the_epochs_below_and_the_last_gap():
    from dihkit.studies.seeds import learning_curves

    records = [
        run("kd", 0, [0.20, 0.30, 0.40, 0.50]),
        run("kd", 1, [0.22, 0.32, 0.42, 0.50]),
        run("mhkd", 0, [0.10, 0.35, 0.38, 0.55]),
        run("mhkd", 1, [0.12, 0.33, 0.40, 0.53]),
    ]
    curves = learning_curves(records)
    labels = list(curves)
    text = curve_gaps(curves, records, "mhkd", "kd")
    # means: kd 0.21, 0.31, 0.41, 0.50; mhkd 0.11, 0.34, 0.39, 0.54 -> below in 1 and 3
    assert "below" in text and "epochs 1 and 3 of 4" in text
    assert "at epoch 4 it is +4.00 points" in text
    assert labels[1] in text and labels[0] in text
    never = curve_gaps(curves, records, "kd", "kd")
    assert "never below" in never
    assert "has no learning curve" in curve_gaps(curves, records, "dskd", "kd")
