"""Seed statistics, paired comparisons and the verdict rule every notebook uses.

Claims in Tinn et al. are about distributions over random seeds, so everything here takes
one score per seed. Confidence intervals are percentile bootstraps (scipy), paired tests are
Wilcoxon signed-rank over the same seeds, and the verdict is a fixed rule, never typed by hand.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats as _sp

ALPHA = 0.05
N_BOOT = 5000


def failed(df: pd.DataFrame, at: str = "end") -> pd.Series:
    """A run failed when it says so, or when its test score is at or below the best constant
    prediction on its test set (`trivial_test_score`).

    `at="end"` (the default, Mosbach et al.'s definition) judges the model at the end of
    training (`final_test_score`); a record older than that field is judged at its best dev
    epoch when that was not its last (`judged_at` says which). `at="best"` judges the
    best-dev checkpoint, the view that hides a run which collapsed late."""
    score = _score_at(df, at)
    trivial = pd.to_numeric(df["trivial_test_score"], errors="coerce")
    return (df["status"] != "ok") | score.isna() | (score <= trivial + 1e-9)


def _score_at(df: pd.DataFrame, at: str) -> pd.Series:
    best = pd.to_numeric(df["test_score"], errors="coerce")
    if at == "best":
        return best
    if at != "end":
        raise ValueError(f"at={at!r}: use 'end' (the model at the end of training) or 'best' (best dev epoch)")
    final = pd.to_numeric(df["final_test_score"], errors="coerce") if "final_test_score" in df else best * np.nan
    return final.fillna(best)


def judged_at(df: pd.DataFrame) -> pd.Series:
    """Which model `failed(at="end")` judged per run: `end`, or `best dev` where the record
    predates the end-of-training score and its best epoch was not the last."""
    final_known = df["final_test_score"].notna() if "final_test_score" in df else pd.Series(False, index=df.index)
    best_is_last = pd.to_numeric(df.get("best_epoch"), errors="coerce") == pd.to_numeric(df.get("epochs"), errors="coerce")
    return pd.Series(np.where(final_known | best_is_last, "end", "best dev"), index=df.index)


def wilson_interval(failures: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a rate (`failures` of `n`): unlike the normal approximation it
    stays inside [0, 1] and is not [0, 0] when no run failed (0 of 10: up to 0.28)."""
    if n == 0:
        return (float("nan"), float("nan"))
    ci = _sp.binomtest(int(failures), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def bootstrap_ci(values, statistic=np.mean, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI; (nan, nan) with fewer than 2 values, the point itself when constant."""
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if len(values) < 2:
        return (float("nan"), float("nan"))
    if np.ptp(values) == 0:
        point = float(statistic(values))
        return (point, point)
    res = _sp.bootstrap((values,), statistic, confidence_level=confidence, n_resamples=N_BOOT,
                        method="percentile", random_state=np.random.default_rng(seed))
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))


def summarize(df: pd.DataFrame, by: list[str], score: str = "test_score") -> pd.DataFrame:
    """Per group: n, mean, std, min, max, IQR, failed-run rate (judged at the end of training)
    beside the same judged at the best dev epoch, a bootstrap CI of the mean, and the precision
    its runs trained at (`bf16`, `fp32` or `bf16+fp32`) where runs record one.

    Failed runs count in the failed rate; the score statistics use the runs that produced a score.
    """
    df = df.assign(failed=failed(df), failed_best=failed(df, at="best"))
    rows = []
    for key, group in df.groupby(by, sort=True, dropna=False):
        values = pd.to_numeric(group[score], errors="coerce").dropna().to_numpy()
        lo, hi = bootstrap_ci(values)
        q1, q3 = (np.percentile(values, [25, 75]) if len(values) else (np.nan, np.nan))
        rows.append({
            **dict(zip(by, key if isinstance(key, tuple) else (key,))),
            "n": len(group), "mean": _nan(values, np.mean), "std": _nan(values, lambda v: np.std(v, ddof=1) if len(v) > 1 else np.nan),
            "min": _nan(values, np.min), "max": _nan(values, np.max), "iqr": q3 - q1,
            "failed_rate": float(group["failed"].mean()), "failed_at_best_dev": float(group["failed_best"].mean()),
            "ci_low": lo, "ci_high": hi,
            **({"precision": precision_label(group["precision"])} if "precision" in group and "precision" not in by else {}),
        })
    return pd.DataFrame(rows)


def precision_label(precisions) -> str:
    """The precisions a group of runs trained at, e.g. `bf16` or `bf16+fp32` (a mixed group)."""
    return "+".join(sorted({str(p) for p in precisions if isinstance(p, str)})) or "–"


def _nan(values, fn) -> float:
    return float(fn(values)) if len(values) else float("nan")


@dataclass(frozen=True)
class Comparison:
    """One claim tested on data: the effect, its 95% CI, the one-sided p-values for the claim
    (`p_value`) and against it (`p_opposite`), and the verdict computed from them."""

    claim: str
    effect: str
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    verdict: str
    p_opposite: float = float("nan")
    test: str = "Wilcoxon signed-rank, one-sided"
    p_floor: float = float("nan")  # the smallest p this test can give on n observations
    dropped: int = 0  # pairs left out: trained at another precision or on another kind of machine

    def as_dict(self) -> dict:
        """Columns in reading order: both p-values side by side, before the count and the verdict."""
        row = asdict(self)
        order = ["claim", "effect", "estimate", "ci_low", "ci_high", "test", "p_value", "p_opposite", "n", "dropped",
                 "p_floor", "verdict"]
        return {key: row[key] for key in order}


def decided(claim: str, effect: str, estimate: float, ci_low: float, ci_high: float, p_value: float,
            p_opposite: float, n: int, test: str = "Wilcoxon signed-rank, one-sided", p_floor: float | None = None,
            dropped: int = 0) -> Comparison:
    """A Comparison whose verdict is `verdict`'s rule on these numbers (the Wilcoxon floor 2**-n
    unless the test's own floor is given)."""
    p_floor = smallest_wilcoxon_p(n) if p_floor is None else p_floor
    return Comparison(claim, effect, estimate, ci_low, ci_high, p_value, n,
                      verdict(ci_low, ci_high, p_value, p_opposite, n, p_floor=p_floor), p_opposite, test, p_floor, dropped)


def undecided(claim: str, effect: str, n: int = 0, dropped: int = 0, test: str = "none: no data") -> Comparison:
    """No data to decide on: every number NaN, verdict inconclusive."""
    nan = float("nan")
    return Comparison(claim, effect, nan, nan, nan, nan, n, "inconclusive", nan, test, nan, dropped)


MIN_PAIRS = 3


def verdict(ci_low: float, ci_high: float, p_value: float, p_opposite: float = 0.0, n: int = MIN_PAIRS,
            alpha: float = ALPHA, p_floor: float = 0.0) -> str:
    """The rule, for an effect signed so that positive means "the claim is right":

    * holds - the 95% CI lies above 0 and the one-sided p-value is below alpha;
    * does not hold - the 95% CI lies below 0 and the one-sided p-value for the opposite
      direction (`p_opposite`) is below alpha: the data point the other way;
    * inconclusive - anything else, including fewer than 3 observations and a test whose
      smallest possible p (`p_floor`, 2**-n for Wilcoxon over n pairs) is above alpha / 2: such a
      verdict would rest on every seed agreeing, and one seed of the other sign would flip it.

    With several claims, pass Holm-adjusted p-values and the floor times the number of claims
    (`with_holm` does).
    """
    if n < MIN_PAIRS or not np.isfinite(ci_low) or not np.isfinite(ci_high) or p_floor > alpha / 2:
        return "inconclusive"
    if ci_low > 0 and p_value < alpha:
        return "holds"
    if ci_high < 0 and p_opposite < alpha:
        return "does not hold"
    return "inconclusive"


def all_of(*verdicts: str) -> str:
    """The verdict on claims made together: holds if every one holds, does not hold if any does not."""
    if "does not hold" in verdicts:
        return "does not hold"
    return "holds" if all(v == "holds" for v in verdicts) else "inconclusive"


def combined(*tables: pd.DataFrame) -> pd.DataFrame:
    """Several claims tables of one notebook as one, Holm-adjusted over all of their rows."""
    parts = [t.drop(columns=[c for c in ("p_holm", "p_opposite_holm") if c in t]) for t in tables if len(t)]
    return with_holm(pd.concat(parts, ignore_index=True)) if parts else pd.DataFrame()


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment: the k-th smallest of m p-values times (m - k + 1), made
    monotone, capped at 1. NaN (an undecided claim) stays NaN and does not count in m."""
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        out[index] = running
    return out


def with_holm(table: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """A claims table with Holm-adjusted p-values beside the raw ones (over its rows: the
    claims of one notebook), and each verdict decided on the adjusted values."""
    if table.empty:
        return table
    out = table.copy()
    m = int(np.isfinite(pd.to_numeric(out["p_value"], errors="coerce")).sum())
    out["p_holm"] = holm(out["p_value"])
    out["p_opposite_holm"] = holm(out["p_opposite"])
    floors = pd.to_numeric(out.get("p_floor", pd.Series(0.0, index=out.index)), errors="coerce").fillna(0.0)
    out["verdict"] = [verdict(r.ci_low, r.ci_high, r.p_holm, r.p_opposite_holm, r.n, alpha, p_floor=f * max(m, 1))
                      for r, f in zip(out.itertuples(), floors)]
    columns = list(table.columns)
    at = columns.index("p_opposite") + 1 if "p_opposite" in columns else len(columns)
    ordered = columns[:at] + ["p_holm", "p_opposite_holm"] + columns[at:]
    return out[[c for c in ordered if c != "verdict"] + ["verdict"]]


def smallest_wilcoxon_p(n: int) -> float:
    """The smallest one-sided exact Wilcoxon signed-rank p that n pairs can give (all of one sign)."""
    return 2.0 ** -n if n else 1.0


# Runs pair only when they share these as well as the seed: bf16 and fp32 twins of one run, or
# the same run on two CPUs, differ by as much as two seeds do.
FAIR_PAIR_KEYS = ("precision", "machine_kind")


def paired(df: pd.DataFrame, column: str, better: str, worse: str, claim: str,
           on: tuple[str, ...] = ("task", "model", "seed"), score: str = "test_score") -> Comparison:
    """Claim "`better` beats `worse`" over the same seeds (and tasks/models).

    Effect: mean paired difference (better - worse) in score points, percentile-bootstrap CI,
    one-sided Wilcoxon signed-rank p-value. Failed runs keep their score (they are part of
    what a technique does to stability); runs without a score drop their pair. Two runs pair
    only if they trained at the same precision on the same kind of machine (`FAIR_PAIR_KEYS`,
    where the table has them); the pairs that did not are counted in `dropped`.
    """
    both, dropped = match_fair(df, column, better, worse, on, [score])
    pairs = both[[f"{score}_a", f"{score}_b"]].apply(pd.to_numeric, errors="coerce").dropna()
    diff = (pairs[f"{score}_a"] - pairs[f"{score}_b"]).to_numpy()
    return compare(diff, claim, f"{better} - {worse} ({score}, points)", dropped=dropped)


def match_fair(df: pd.DataFrame, column: str, a, b, on, values) -> tuple[pd.DataFrame, int]:
    """Arms `a` and `b` of `column` matched on `on`, their `values` as `<value>_a` / `<value>_b`,
    keeping only pairs trained at the same precision on the same kind of machine
    (`FAIR_PAIR_KEYS`, where the table has them); also how many pairs were dropped for that."""
    fair = [k for k in FAIR_PAIR_KEYS if k in df.columns]
    left = df[df[column] == a].set_index(list(on))[[*values, *fair]]
    right = df[df[column] == b].set_index(list(on))[[*values, *fair]]
    both = pd.merge(left, right, left_index=True, right_index=True, suffixes=("_a", "_b"))
    same = np.logical_and.reduce([both[f"{k}_a"].astype(str) == both[f"{k}_b"].astype(str) for k in fair]) \
        if fair else np.ones(len(both), dtype=bool)
    return both.loc[same], int((~same).sum())


def compare(diff, claim: str, effect: str, dropped: int = 0) -> Comparison:
    """The verdict rule on paired differences signed so that positive means "the claim is right":
    mean, percentile-bootstrap CI, one-sided Wilcoxon p each way (every paired claim goes here)."""
    diff = np.asarray(diff, dtype=float)
    n = len(diff)
    if n == 0:
        return undecided(claim, effect, dropped=dropped)
    lo, hi = bootstrap_ci(diff)
    return decided(claim, effect, float(np.mean(diff)), lo, hi, wilcoxon_greater(diff), wilcoxon_greater(-diff), n,
                   dropped=dropped)


def wilcoxon_greater(diff) -> float:
    """One-sided Wilcoxon signed-rank p for "median difference > 0" (1.0 when all zero)."""
    diff = np.asarray(diff, dtype=float)
    if len(diff) == 0 or np.all(diff == 0):
        return 1.0
    return float(_sp.wilcoxon(diff, alternative="greater", zero_method="zsplit").pvalue)


def spread_ratio(a, b, claim: str, effect: str, seed: int = 0) -> Comparison:
    """Claim "b is less stable than a": effect log(sd_b / sd_a), bootstrap CI over seeds,
    one-sided Brown-Forsythe p (Levene's test on median-centred deviations, made one-sided
    by the direction of the observed ratio).

    A resample in which either arm has no spread has no finite log ratio: it is left out of the
    interval (never smoothed with an epsilon, which turned it into a huge spurious ratio), and
    when more than 5% of resamples are, the interval is undefined (too few distinct scores)."""
    a = np.asarray(pd.to_numeric(pd.Series(a), errors="coerce").dropna(), dtype=float)
    b = np.asarray(pd.to_numeric(pd.Series(b), errors="coerce").dropna(), dtype=float)
    test = "Brown-Forsythe, one-sided"
    if len(a) < 2 or len(b) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return undecided(claim, effect, min(len(a), len(b)), test=f"{test}: an arm without spread")
    estimate = float(np.log(np.std(b, ddof=1) / np.std(a, ddof=1)))
    rng = np.random.default_rng(seed)
    sd_a = np.std(a[rng.integers(0, len(a), (N_BOOT, len(a)))], axis=1, ddof=1)
    sd_b = np.std(b[rng.integers(0, len(b), (N_BOOT, len(b)))], axis=1, ddof=1)
    ok = (sd_a > 0) & (sd_b > 0)
    if ok.mean() < 0.95:
        lo = hi = float("nan")
    else:
        lo, hi = (float(x) for x in np.percentile(np.log(sd_b[ok] / sd_a[ok]), [2.5, 97.5]))
    two_sided = float(_sp.levene(a, b, center="median").pvalue)
    p, p_opposite = (two_sided / 2, 1 - two_sided / 2) if estimate > 0 else (1 - two_sided / 2, two_sided / 2)
    return decided(claim, effect, estimate, lo, hi, p, p_opposite, min(len(a), len(b)), test=test, p_floor=0.0)


def failure_rate_change(failed_a, failed_b, claim: str, effect: str) -> Comparison:
    """Claim "arm b fails less often than arm a", over the same seeds (one bool per seed each).

    Effect: failure rate of a minus that of b (a share, > 0 when b fails less), with a
    bootstrap CI over seeds; p from the exact McNemar test (a binomial test on the seeds where
    exactly one arm failed): paired, since both arms share each seed's head and batch order."""
    pairs = pd.concat({"a": pd.Series(failed_a).astype(bool), "b": pd.Series(failed_b).astype(bool)}, axis=1,
                      join="inner")
    n = len(pairs)
    test = "exact McNemar (paired over seeds), one-sided"
    if n == 0:
        return undecided(claim, effect, test=test)
    only_a = int((pairs["a"] & ~pairs["b"]).sum())
    only_b = int((pairs["b"] & ~pairs["a"]).sum())
    discordant = only_a + only_b
    diff = (pairs["a"].astype(float) - pairs["b"].astype(float)).to_numpy()
    lo, hi = bootstrap_ci(diff)
    if discordant == 0:
        p = p_opposite = 1.0
    else:
        p = float(_sp.binom.sf(only_a - 1, discordant, 0.5))
        p_opposite = float(_sp.binom.sf(only_b - 1, discordant, 0.5))
    return decided(claim, effect, float(diff.mean()), lo, hi, p, p_opposite, n, test=test,
                   p_floor=0.5 ** max(discordant, 1))


def two_level_bootstrap_ci(scores_a: np.ndarray, scores_b: np.ndarray | None = None, *, score_on,
                           n_examples: int, confidence: float = 0.95, n_boot: int = 2000,
                           seed: int = 0) -> tuple[float, float]:
    """CI of a mean over seeds (or of a paired mean difference) that includes test-set sampling.

    Each resample draws the test examples with replacement (the same draw for every run, so
    pairs stay paired) and the seeds with replacement, and re-scores every run on the drawn
    examples: `score_on(run_index, arm, example_indices) -> score`. On BIOSSES's 20 test pairs
    the examples, not the seeds, are most of the uncertainty."""
    rng = np.random.default_rng(seed)
    n_runs = len(scores_a)
    values = np.empty(n_boot)
    for i in range(n_boot):
        examples = rng.integers(0, n_examples, n_examples)
        runs = rng.integers(0, n_runs, n_runs)
        a = np.array([score_on(r, "a", examples) for r in runs])
        b = np.array([score_on(r, "b", examples) for r in runs]) if scores_b is not None else 0.0
        values[i] = np.mean(a - b)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.nanpercentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def claims_table(comparisons: list[Comparison]) -> pd.DataFrame:
    """The claims as a table, Holm-adjusted over its rows."""
    return with_holm(pd.DataFrame([c.as_dict() for c in comparisons]))
