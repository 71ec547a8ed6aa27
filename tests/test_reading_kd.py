"""The generated "How to read this" text of notebooks 01, 02 and 04, on hand-made runs whose
paired differences and verdicts are worked out here by hand."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from run_records import fake_run

from dihkit.studies.reading_kd import (
    capacity_comparisons,
    capacity_reading,
    cohort_reading,
    compare_groups,
    dih_comparisons,
    dih_reading,
    entropy_reading,
    kd_reading,
    paired_verdict_class,
)
from dihkit.studies.seeds import noise_verdict, summarise_runs

SETTINGS = SimpleNamespace(dataset="toy-data", train_per_class=37, epochs=7, seeds=(0, 1, 2))


def run(method, seed, acc, teacher=None, assistant=None):
    options = {"options": {"assistant": assistant}} if assistant else {}
    return fake_run(method, seed, acc, teacher=teacher, student_params=1000, **options)


def runs(method, accs, teacher=None, assistant=None):
    return [run(method, s, a, teacher, assistant) for s, a in enumerate(accs)]


CE = runs("ce", [0.50, 0.51, 0.52])


def test_verdict_class_follows_noise_verdicts_rule():
    assert paired_verdict_class([]) == "no shared seed"
    assert paired_verdict_class([0.01]) == "one seed"
    assert paired_verdict_class([0.01, -0.02, 0.03]) == "mixed signs"
    assert paired_verdict_class([0.01, 0.0]) == "mixed signs"  # a zero has no sign
    # mean 0.0173 is below std 0.0283
    assert paired_verdict_class([0.001, 0.001, 0.05]) == "within spread"
    assert paired_verdict_class([0.02, 0.03, 0.025]) == "consistent"
    assert paired_verdict_class([-0.02, -0.03, -0.025]) == "consistent"


@pytest.mark.parametrize(
    ("accs", "verdict", "words"),
    [
        ([0.52, 0.535, 0.54], "consistent", "consistent"),
        ([0.53, 0.50, 0.55], "mixed signs", "inside seed noise"),
        ([0.501, 0.511, 0.57], "within spread", "inside seed noise"),
    ],
)
def test_comparison_agrees_with_noise_verdict(accs, verdict, words):
    records = CE + runs("kd", accs, "big")
    c = compare_groups(records, "kd (big -> resnet8)", "ce (resnet8)")
    assert c.verdict == verdict
    summaries = summarise_runs(records, baseline="ce")
    assert c.sentence == noise_verdict(summaries[1], summaries[0])
    assert words in c.sentence and words in c.phrase()


def test_kd_reading_consistent_gain():
    # KD - CE per seed: +2.00, +2.50, +2.00 -> mean +2.17, std 0.29: consistent
    text = kd_reading(CE + runs("kd", [0.52, 0.535, 0.54], "big"), SETTINGS)
    assert "toy-data, 37 training images per class, 7 epochs, 3 seeds" in text
    assert "CE reaches 51.00 +/- 1.00 %" in text
    assert "KD 53.17 +/- 1.04 %" in text
    assert "+2.17 points (per seed +2.00, +2.50, +2.00)" in text
    assert "std 0.29" in text
    assert "**consistent**" in text and "consistently above CE" in text
    assert "inside seed noise" not in text and "no ranking" not in text


def test_kd_reading_mixed_signs():
    # KD - CE per seed: +3.00, -1.00, +3.00 -> mean +1.67, signs differ
    text = kd_reading(CE + runs("kd", [0.53, 0.50, 0.55], "big"))
    assert text.startswith("**How to read this.** CE reaches")  # no settings: no regime
    assert "+1.67 points (per seed +3.00, -1.00, +3.00)" in text
    assert "disagree on the sign" in text and "**inside seed noise**" in text
    assert "supports no ranking of CE and KD" in text
    assert "consistent" not in text.replace("**consistent**", "")


def test_kd_reading_one_seed():
    text = kd_reading([run("ce", 0, 0.40), run("kd", 0, 0.45, "big")])
    assert "+5.00 points (per seed +5.00)" in text
    assert "one seed only, so no verdict on seed noise" in text
    assert "no ranking" in text


def ladder_runs():
    """Teachers small to large: s, m, l. Per seed (points): m - s = +3.0, +3.5, +3.0
    (consistent); l - m = -1.0, -3.0, -2.0 (consistent: the capacity gap); TAKD from l minus KD
    from l = 0.0, +1.5, +1.0 (a zero: mixed signs)."""
    return (
        CE
        + runs("kd", [0.53, 0.54, 0.55], "s")
        + runs("kd", [0.56, 0.575, 0.58], "m")
        + runs("kd", [0.55, 0.545, 0.56], "l")
        + runs("takd", [0.55, 0.56, 0.57], "l", assistant="resnet20")
    )


def test_capacity_comparisons_pair_neighbouring_teachers_and_takd_with_its_teacher():
    found = capacity_comparisons(ladder_runs(), ["s", "m", "l"])
    assert [(c.label, c.baseline) for c in found] == [
        ("kd (m -> resnet8)", "kd (s -> resnet8)"),
        ("kd (l -> resnet8)", "kd (m -> resnet8)"),
        ("takd (l -> resnet20 -> resnet8)", "kd (l -> resnet8)"),
    ]
    assert [c.verdict for c in found] == ["consistent", "consistent", "mixed signs"]
    assert list(found[1].diffs.values()) == pytest.approx([-0.01, -0.03, -0.02])


def test_capacity_reading_capacity_gap():
    text = capacity_reading(ladder_runs(), ["s", "m", "l"], SETTINGS)
    # means: s 54.00, m 57.17, l 55.17 -> not monotone, highest m; l below m by 2.00 points
    assert "s 54.00 +/- 1.00 %, m 57.17 +/- 1.04 %, l 55.17 +/- 0.76 %" in text
    assert "does not rise steadily with teacher size (highest mean: KD from m)" in text
    assert "**m vs s**" in text and "+3.17 points (per seed +3.00, +3.50, +3.00)" in text
    assert "**l vs m**" in text and "-2.00 points (per seed -1.00, -3.00, -2.00)" in text
    assert "below the student of the smaller teacher m by 2.00 points" in text
    assert "a capacity gap beyond seed noise" in text
    # TAKD - KD from l: +0.83 points on average, one seed without a sign
    assert "**TAKD vs KD from l**" in text and "+0.83 points" in text
    takd_line = next(line for line in text.splitlines() if "TAKD vs KD" in line)
    assert "inside seed noise" in takd_line
    # against CE (per seed): s +3,+3,+3; m +6,+6.5,+6; l +5,+3.5,+4; TAKD +5,+5,+5: all consistent
    against = next(line for line in text.splitlines() if "Against CE" in line)
    assert "Consistently above CE: KD from s, KD from m, KD from l, TAKD." in against
    assert "not consistently" not in against
    assert "2 of the 2 neighbouring-teacher steps are consistent here." in text


def test_capacity_reading_gap_inside_noise_and_rising_ladder():
    gap_in_noise = CE + runs("kd", [0.53, 0.54, 0.55], "s") + runs("kd", [0.55, 0.53, 0.54], "l")
    text = capacity_reading(gap_in_noise, ["s", "l"])
    # l - s per seed: +2, -1, -1 -> mean -0.00 .. means 54.00 vs 54.00: no gap in the means
    assert "None in the means" in text
    below = CE + runs("kd", [0.53, 0.54, 0.55], "s") + runs("kd", [0.54, 0.52, 0.53], "l")
    text = capacity_reading(below, ["s", "l"])
    # l - s per seed: +1, -2, -2 -> mean -1.00: a gap in the means, inside seed noise
    assert "below the student of the smaller teacher s by 1.00 points" in text
    assert "does not exceed seed noise" in text
    assert "supports no ranking of the teachers" in text
    rising = CE + runs("kd", [0.53, 0.54, 0.55], "s") + runs("kd", [0.55, 0.56, 0.57], "l")
    text = capacity_reading(rising, ["s", "l"])
    assert "rises at every step of the ladder" in text and "Capacity gap.** None" in text


def test_capacity_reading_one_teacher_one_seed():
    records = [run("ce", 0, 0.4), run("kd", 0, 0.45, "t"), run("takd", 0, 0.44, "t", "resnet8")]
    text = capacity_reading(records, ["t"])
    assert "One teacher (t), so there is no ladder to read" in text
    assert "**TAKD vs KD from t**" in text and "-1.00 points (per seed -1.00)" in text
    assert "one seed only" in text


def dih_runs():
    """Per seed (points): DIH - KD = +1, +1.5, +1 (consistent); DIH - CE = +3, +3, +3;
    ensemble - DIH = -1, +0.5, -2 (mixed); ensemble - KD = 0, +2, -1; ensemble - CE = +2, +3.5, +1
    (consistent: mean 2.17, std 1.26); KD - CE = +2, +1.5, +2."""
    return (
        CE
        + runs("kd", [0.52, 0.525, 0.54], "t")
        + runs("dih", [0.53, 0.54, 0.55], "t")
        + runs("dih-ensemble", [0.52, 0.545, 0.53], "t")
    )


def test_dih_reading_pairs_and_paper_claims():
    found = dih_comparisons(dih_runs())
    assert list(found) == [
        ("dih", "kd"),
        ("dih", "ce"),
        ("dih-ensemble", "dih"),
        ("dih-ensemble", "kd"),
        ("dih-ensemble", "ce"),
        ("kd", "ce"),
    ]
    text = dih_reading(dih_runs(), SETTINGS)
    lines = {line.split("**")[1]: line for line in text.splitlines() if line.startswith("- **")}
    assert "+1.17 points (per seed +1.00, +1.50, +1.00)" in lines["DIH vs KD"]
    assert "**consistent**" in lines["DIH vs KD"]
    assert "+3.00 points" in lines["DIH vs CE"] and "**consistent**" in lines["DIH vs CE"]
    assert "-0.83 points" in lines["DIH-ensemble vs DIH"]
    assert "inside seed noise" in lines["DIH-ensemble vs DIH"]
    assert "inside seed noise" in lines["DIH-ensemble vs KD"]  # a zero difference: mixed
    assert "+1.83 points" in lines["KD vs CE"] and "**consistent**" in lines["KD vs CE"]
    assert "+2.17 points (per seed +2.00, +3.50, +1.00)" in lines["DIH-ensemble vs CE"]
    assert "**consistent**" in lines["DIH-ensemble vs CE"]
    assert "Consistent here: DIH above KD, DIH above CE, DIH-ensemble above CE, KD above CE" in text
    assert "DIH above KD shows here, consistently" in text
    assert "the ensemble below DIH is not shown here beyond seed noise" in text


def test_dih_reading_nothing_consistent_and_one_seed():
    records = CE + runs("kd", [0.51, 0.50, 0.53], "t") + runs("dih", [0.50, 0.52, 0.52], "t")
    text = dih_reading(records)
    assert "None of these differences is consistent" in text
    assert "DIH above KD is not shown here beyond seed noise" in text
    one = [run("ce", 0, 0.4), run("kd", 0, 0.42, "t"), run("dih", 0, 0.41, "t")]
    assert "With one seed no difference can be judged" in dih_reading(one)


def test_entropy_reading():
    taus = [1.0, 2.0, 4.0, 8.0]
    entropies = [0.0, 0.4, 1.6, 2.0]  # rise 2.0: 25% (0.5) near tau 2.1, 75% (1.5) near 3.8
    text = entropy_reading(taus, entropies, num_classes=10, tau=5.0)
    assert "from 0.00 nats at tau = 1 (0% of log 10 = 2.30) to 2.00 nats at tau = 8 (87%)" in text
    assert "between tau = 2.1 and tau = 3.8" in text
    assert "tau = 5 lies outside" in text
    assert "tau = 3 lies inside" in entropy_reading(taus, entropies, 10, 3.0)


def test_cohort_reading_of_a_bundled_teacher():
    text = cohort_reading("resnet14")  # the smoke teacher: recorded accuracies rise
    assert text.startswith("Recorded test accuracy")
    assert "head1 (layer1)" in text and "teacher" in text
