"""Notebook 07's recap of the sequence: published margins computed from the papers' tables, this
run's paired margins per claim, and the verdict, against hand-computed values."""

from __future__ import annotations

import pytest
from run_records import fake_run

from dihkit.methods import method_names
from dihkit.studies.paper_numbers import DIH_TABLE2
from dihkit.studies.recap import CLAIMS, Claim, claim_results, methods_markdown, recap_markdown


def test_published_margins_are_the_tables_differences():
    dih = next(c for c in CLAIMS if (c.method, c.reference) == ("dih", "kd"))
    # DIH Table 2, CIFAR-100: 61.94 - 59.77, 62.01 - 59.49, 62.42 - 59.35
    assert dih.published() == pytest.approx([2.17, 2.52, 3.07])
    mhkd = next(c for c in CLAIMS if c.method == "mhkd")
    assert mhkd.published() == pytest.approx([75.28 - 74.92, 73.96 - 72.98])


def test_a_claim_is_measured_in_the_first_notebook_with_both_methods_same_teacher():
    runs_02 = [fake_run("kd", s, 0.50 + 0.01 * s, teacher="small") for s in range(3)]
    runs_02 += [fake_run("kd", s, 0.60, teacher="big") for s in range(3)]
    runs_02 += [fake_run("takd", s, 0.62 + 0.001 * s, teacher="big") for s in range(3)]
    payloads = [{"notebook": "02_capacity_gap", "runs": runs_02}]
    claim = Claim("p", "takd", "kd", DIH_TABLE2, "t")
    (result,) = claim_results(payloads, [claim])
    assert result.notebook == "02_capacity_gap"
    assert result.baseline == "kd (big -> resnet8)"  # the same teacher, not the first kd group
    assert result.diffs == pytest.approx({0: 0.02, 1: 0.021, 2: 0.022})
    assert result.status == "reproduced"


def test_statuses_follow_the_paired_rule():
    def status(diffs):
        runs = [fake_run("ce", s, 0.5) for s in range(len(diffs))]
        runs += [fake_run("kd", s, 0.5 + d, teacher="t") for s, d in enumerate(diffs)]
        claim = Claim("p", "kd", "ce", (), "t")
        return claim_results([{"notebook": "04", "runs": runs}], [claim])[0].status

    assert status([0.02, 0.03, 0.025]) == "reproduced"
    assert status([-0.02, -0.03, -0.025]) == "opposite"
    assert status([0.02, -0.01, 0.03]) == "inside seed noise"
    assert status([0.01]) == "one seed"
    assert claim_results([], [Claim("p", "kd", "ce", (), "t")])[0].status == "not run"


def test_recap_table_has_a_row_per_claim_and_counts_the_verdicts():
    runs = [fake_run("ce", s, 0.5) for s in range(2)]
    runs += [fake_run("kd", s, 0.52 + 0.001 * s, teacher="t") for s in range(2)]
    results = claim_results([{"notebook": "04_dih_distillation", "runs": runs}])
    text = recap_markdown(results)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + len(CLAIMS)
    assert "+2.05 +/- 0.07 over 2 seeds" in text  # mean of +2.0 and +2.1 points
    assert f"Of the {len(CLAIMS)} claims: 1 reproduced, {len(CLAIMS) - 1} not run." in text


def test_methods_table_lists_every_registered_method():
    text = methods_markdown(["kd"])
    assert all(f"| `{name}` |" in text for name in method_names())
    assert "| `kd` |" in text and text.split("| `kd` |")[1].splitlines()[0].endswith("| yes |")
