"""Paired statistics (experiments/paired.py) against SciPy on known inputs, and the paired verdicts
that reproduce's report and the Paper page carry."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dfkd_core.experiments import paired as P
from dfkd_core.experiments import reproduce

A = [0.50, 0.48, 0.53, 0.47, 0.51, 0.49, 0.52, 0.50]
B = [0.55, 0.50, 0.56, 0.52, 0.52, 0.53, 0.55, 0.54]


def test_mean_interval_and_wilcoxon_equal_scipys_on_known_inputs():
    out = P.paired(A, B)
    d = np.array(A) - np.array(B)
    ci = stats.ttest_rel(A, B).confidence_interval(0.95)
    assert out["n"] == 8
    assert out["mean_diff"] == pytest.approx(d.mean())
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert out["p_value"] == pytest.approx(stats.wilcoxon(A, B).pvalue)
    assert out["verdict"] == "holds" and out["wilcoxon_agrees"] is True


def test_wilcoxon_p_is_the_exact_one_two_over_two_to_the_n_when_every_seed_agrees():
    # six seeds, a lower on each: the exact two-sided p is 2 / 2^6
    out = P.paired([1, 2, 3, 4, 5, 6], [2, 4, 6, 8, 10, 12])
    assert out["p_value"] == pytest.approx(2 / 64)
    # five seeds cannot reach 0.05 however clear: the interval decides, Wilcoxon disagrees and says so
    five = P.paired([1, 2, 3, 4, 5], [2, 3.1, 3.9, 5.2, 6])
    assert five["p_value"] == pytest.approx(2 / 32)
    assert five["verdict"] == "holds" and five["wilcoxon_agrees"] is False


@pytest.mark.parametrize("a, b, verdict", [
    (A, B, "holds"),
    (B, A, "does not hold"),
    ([0.5, 0.6, 0.4, 0.55], [0.52, 0.57, 0.45, 0.52], "undecided"),
    ([0.5], [0.6], "undecided"),
    ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5], "undecided"),
])
def test_verdict_says_holds_does_not_hold_or_undecided(a, b, verdict):
    assert P.paired(a, b)["verdict"] == verdict


def test_pairs_with_a_missing_value_are_dropped_and_all_equal_values_have_no_p():
    out = P.paired([1.0, float("nan"), 3.0], [1.5, 2.0, 3.5])
    assert out["n"] == 2 and out["mean_diff"] == pytest.approx(-0.5)
    same = P.paired([1.0, 2.0], [1.0, 2.0])
    assert same["p_value"] is None and same["verdict"] == "undecided"
    with pytest.raises(ValueError, match="as many values"):
        P.paired([1, 2], [1])


def test_paired_table_pairs_by_seed_not_by_row_order():
    rows = [{"dataset": "d", "seed": s, "method": "a", "value": v} for s, v in enumerate(A)]
    rows += [{"dataset": "d", "seed": s, "method": "b", "value": v} for s, v in reversed(list(enumerate(B)))]
    rows.append({"dataset": "d", "seed": 99, "method": "a", "value": 9.0})  # no partner: left out
    table = P.paired_table(pd.DataFrame(rows), [("a", "b")])
    assert len(table) == 1
    row = table.iloc[0]
    assert row["n"] == 8 and row["claim"] == "a ≤ b" and row["verdict"] == "holds"
    assert row["mean_diff"] == pytest.approx(np.mean(np.array(A) - np.array(B)))


def test_reproduce_states_the_papers_claims_paired_per_dataset():
    rows = []
    for dataset, shift in (("cpusmall", -0.01), ("pole", 0.02)):
        for seed in range(6):
            noise = 0.001 * ((seed * 7) % 5)
            rows += [{"run_id": "r", "dataset": dataset, "seed": seed, "epochs": 3, "method": "random",
                      "validation": 0.5 + noise, "synthetic": 0.5},
                     {"run_id": "r", "dataset": dataset, "seed": seed, "epochs": 3, "method": "direct_dec",
                      "validation": 0.5 + noise + shift, "synthetic": 0.5},
                     {"run_id": "r", "dataset": dataset, "seed": seed, "epochs": 3, "method": "generator_dec",
                      "validation": 0.5 + noise + shift, "synthetic": 0.5}]
    table = reproduce.paired_verdicts(pd.DataFrame(rows), 4, "validation")
    got = {(r.dataset, r.claim): r.verdict for r in table.itertuples()}
    assert got[("cpusmall", "direct_dec ≤ random")] == "holds"
    assert got[("pole", "direct_dec ≤ random")] == "does not hold"
    assert got[("cpusmall", "direct_dec ≤ generator_dec")] == "undecided"  # every difference 0
    assert P.summary(table[table["claim"] == "direct_dec ≤ random"]["verdict"]) == \
        "holds on 1, does not hold on 1 of 2 dataset(s)"
    records = P.records(table)
    assert all(r["p_value"] is None or math.isfinite(r["p_value"]) for r in records)
