"""Paired comparisons of two methods over seeds: how sure a claim such as "direct ≤ random" is.

Every seed of a reproduction (or a sweep) shares its data split, teacher and student seed across
the methods it trains, so the per-seed difference d_s = a_s − b_s (lower is better) removes what the
seeds share and says far more than two means of independent-looking seeds. Per dataset:

    paired(a, b)    n, the mean of d with its 95 % Student-t confidence interval, SciPy's Wilcoxon
                    signed-rank p-value (two-sided) and a verdict on the claim "a ≤ b" at that level:
                      'holds'          the whole interval lies below 0 (a is lower on average)
                      'does not hold'  the whole interval lies above 0 (b is lower on average)
                      'undecided'      the interval holds 0, or fewer than 2 paired seeds
    paired_table()  one row per (dataset, claim) from long rows (dataset, seed, method, value)
    summary()       'holds on 2, does not hold on 1, undecided on 3 of 6 datasets'

The verdict is the t interval's: Wilcoxon's exact two-sided p cannot fall below 2 / 2^n, so with
the 5 seeds of Tables 5-6 it never reaches 0.05 (0.0625 at best); its p-value is reported beside
the interval as the distribution-free check (`wilcoxon_agrees` says whether p < 0.05 tells the same).
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import pandas as pd

LEVEL = 0.95  # the confidence level of the interval (and 1 − the Wilcoxon test's size)
VERDICTS = ("holds", "does not hold", "undecided")
PAIRED_COLUMNS = ["dataset", "claim", "a", "b", "n", "mean_diff", "ci_low", "ci_high", "p_value", "verdict",
                  "wilcoxon_agrees"]


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def paired(a: Iterable[float], b: Iterable[float], level: float = LEVEL) -> dict[str, Any]:
    """The paired comparison of `a` against `b` (same length, element i of both from seed i; lower
    is better): {'n', 'mean_diff', 'ci_low', 'ci_high', 'p_value', 'verdict', 'wilcoxon_agrees'}
    for the claim "a ≤ b". Pairs where either value is not finite are dropped. Numbers that cannot
    be computed (n < 2; p when every difference is 0) are None."""
    from scipy import stats

    a = np.asarray(list(a), dtype=float)
    b = np.asarray(list(b), dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired() needs as many values of a as of b. Got {a.size} and {b.size} instead.")
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    n = int(d.size)
    out: dict[str, Any] = {"n": n, "mean_diff": _finite(d.mean()) if n else None, "ci_low": None, "ci_high": None,
                           "p_value": None, "verdict": "undecided", "wilcoxon_agrees": None}
    if n < 2:
        return out
    mean = float(d.mean())
    sem = float(d.std(ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sem
    low, high = mean - half, mean + half
    out.update(ci_low=low, ci_high=high)
    if high < 0:
        out["verdict"] = "holds"
    elif low > 0:
        out["verdict"] = "does not hold"
    if np.any(d != 0):
        p = float(stats.wilcoxon(d, alternative="two-sided").pvalue)
        out["p_value"] = p
        # the interval decides only when it excludes 0, i.e. on the mean's side: agreeing is p < size then
        out["wilcoxon_agrees"] = bool((p < 1 - level) == (out["verdict"] != "undecided"))
    return out


def paired_table(long: pd.DataFrame, pairs: Iterable[tuple[str, str]], value: str = "value",
                 level: float = LEVEL) -> pd.DataFrame:
    """One row per (dataset, claim "a ≤ b") of `pairs`, from long rows with columns dataset, seed,
    method and `value`: the seeds where both methods have a value are paired (PAIRED_COLUMNS)."""
    rows = []
    datasets = list(dict.fromkeys(long["dataset"])) if not long.empty else []
    for a, b in pairs:
        for dataset in datasets:
            part = long[long["dataset"] == dataset]
            left = part[part["method"] == a].drop_duplicates("seed").set_index("seed")[value]
            right = part[part["method"] == b].drop_duplicates("seed").set_index("seed")[value]
            seeds = sorted(set(left.index) & set(right.index))
            if not seeds:
                continue
            stats_ = paired(left.loc[seeds].to_numpy(float), right.loc[seeds].to_numpy(float), level)
            rows.append({"dataset": dataset, "claim": f"{a} ≤ {b}", "a": a, "b": b, **stats_})
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def summary(verdicts: Iterable[str]) -> str:
    """'holds on 2, does not hold on 1, undecided on 3 of 6 datasets' (counts that are 0 left out)."""
    verdicts = list(verdicts)
    parts = [f"{v} on {verdicts.count(v)}" for v in VERDICTS if verdicts.count(v)]
    return (", ".join(parts) + f" of {len(verdicts)} dataset(s)") if verdicts else "no dataset has both methods yet"


def records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """PAIRED_COLUMNS rows as JSON-ready dicts (NaN → None)."""
    out = []
    for row in table.to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and not math.isfinite(v) else
                        int(v) if k == "n" else v) for k, v in row.items()})
    return out


def format_row(row: dict[str, Any], digits: int = 4) -> str:
    """'cpusmall: direct_dec ≤ random — mean diff −0.0123 [−0.0200, −0.0046], Wilcoxon p 0.004, n 10 → holds'"""
    def num(v: Any) -> str:
        return "—" if v is None else f"{v:.{digits}f}"

    ci = f" [{num(row['ci_low'])}, {num(row['ci_high'])}]" if row.get("ci_low") is not None else ""
    p = "—" if row.get("p_value") is None else f"{row['p_value']:.3g}"
    return (f"{row['dataset']}: {row['claim']} — mean diff {num(row['mean_diff'])}{ci}, Wilcoxon p {p}, "
            f"n {row['n']} → {row['verdict']}")
