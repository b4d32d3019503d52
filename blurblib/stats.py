"""Seed statistics, paired comparisons and the verdict rule every notebook uses.

Claims in Tinn et al. are about distributions over random seeds, so everything here takes
one score per seed. Confidence intervals are percentile bootstraps (scipy), paired tests are
Wilcoxon signed-rank over the same seeds, and the verdict is a fixed rule, never typed by hand.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats as _sp

ALPHA = 0.05
N_BOOT = 5000


def failed(df: pd.DataFrame) -> pd.Series:
    """A run failed when it says so, or when its test score is not above the trivial baseline
    (majority class, constant prediction, all-O) of its task."""
    score = pd.to_numeric(df["test_score"], errors="coerce")
    trivial = pd.to_numeric(df["trivial_test_score"], errors="coerce")
    return (df["status"] != "ok") | score.isna() | (score <= trivial + 1e-9)


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
    """Per group: n, mean, std, min, max, IQR, failed-run rate and a bootstrap CI of the mean,
    and the precision its runs trained at (`bf16`, `fp32` or `bf16+fp32`) where runs record one.

    Failed runs count in the failed rate; the score statistics use the runs that produced a score.
    """
    df = df.assign(failed=failed(df))
    rows = []
    for key, group in df.groupby(by, sort=True, dropna=False):
        values = pd.to_numeric(group[score], errors="coerce").dropna().to_numpy()
        lo, hi = bootstrap_ci(values)
        q1, q3 = (np.percentile(values, [25, 75]) if len(values) else (np.nan, np.nan))
        rows.append({
            **dict(zip(by, key if isinstance(key, tuple) else (key,))),
            "n": len(group), "mean": _nan(values, np.mean), "std": _nan(values, lambda v: np.std(v, ddof=1) if len(v) > 1 else np.nan),
            "min": _nan(values, np.min), "max": _nan(values, np.max), "iqr": q3 - q1,
            "failed_rate": float(group["failed"].mean()), "ci_low": lo, "ci_high": hi,
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

    def as_dict(self) -> dict:
        """Columns in reading order: both p-values side by side, before the count and the verdict."""
        row = asdict(self)
        order = ["claim", "effect", "estimate", "ci_low", "ci_high", "p_value", "p_opposite", "n", "verdict"]
        return {key: row[key] for key in order}


def decided(claim: str, effect: str, estimate: float, ci_low: float, ci_high: float, p_value: float,
            p_opposite: float, n: int) -> Comparison:
    """A Comparison whose verdict is `verdict`'s rule on these numbers."""
    return Comparison(claim, effect, estimate, ci_low, ci_high, p_value, n,
                      verdict(ci_low, ci_high, p_value, p_opposite, n), p_opposite)


def undecided(claim: str, effect: str, n: int = 0) -> Comparison:
    """No data to decide on: every number NaN, verdict inconclusive."""
    nan = float("nan")
    return Comparison(claim, effect, nan, nan, nan, nan, n, "inconclusive", nan)


MIN_PAIRS = 3


def verdict(ci_low: float, ci_high: float, p_value: float, p_opposite: float = 0.0, n: int = MIN_PAIRS,
            alpha: float = ALPHA) -> str:
    """The rule, for an effect signed so that positive means "the claim is right":

    * holds - the 95% CI lies above 0 and the one-sided p-value is below alpha;
    * does not hold - the 95% CI lies below 0 and the one-sided p-value for the opposite
      direction (`p_opposite`) is below alpha: the data point the other way;
    * inconclusive - anything else, including fewer than 3 observations.

    A one-sided Wilcoxon signed-rank p over n pairs is at least 2**-n, so paired claims need
    n >= 5 to reach either verdict (`smallest_wilcoxon_p`).
    """
    if n < MIN_PAIRS or not np.isfinite(ci_low) or not np.isfinite(ci_high):
        return "inconclusive"
    if ci_low > 0 and p_value < alpha:
        return "holds"
    if ci_high < 0 and p_opposite < alpha:
        return "does not hold"
    return "inconclusive"


def smallest_wilcoxon_p(n: int) -> float:
    """The smallest one-sided exact Wilcoxon signed-rank p that n pairs can give (all of one sign)."""
    return 2.0 ** -n if n else 1.0


def paired(df: pd.DataFrame, column: str, better: str, worse: str, claim: str,
           on: tuple[str, ...] = ("task", "model", "seed"), score: str = "test_score") -> Comparison:
    """Claim "`better` beats `worse`" over the same seeds (and tasks/models).

    Effect: mean paired difference (better - worse) in score points, percentile-bootstrap CI,
    one-sided Wilcoxon signed-rank p-value. Failed runs keep their score (they are part of
    what a technique does to stability); runs without a score drop their pair.
    """
    a = df[df[column] == better].set_index(list(on))[score]
    b = df[df[column] == worse].set_index(list(on))[score]
    pairs = pd.concat({"a": a, "b": b}, axis=1, join="inner").apply(pd.to_numeric, errors="coerce").dropna()
    diff = (pairs["a"] - pairs["b"]).to_numpy()
    return _compare(diff, claim, f"{better} - {worse} ({score}, points)")


def _compare(diff: np.ndarray, claim: str, effect: str) -> Comparison:
    n = len(diff)
    if n == 0:
        return undecided(claim, effect)
    lo, hi = bootstrap_ci(diff)
    return decided(claim, effect, float(np.mean(diff)), lo, hi, wilcoxon_greater(diff), wilcoxon_greater(-diff), n)


def wilcoxon_greater(diff) -> float:
    """One-sided Wilcoxon signed-rank p for "median difference > 0" (1.0 when all zero)."""
    diff = np.asarray(diff, dtype=float)
    if len(diff) == 0 or np.all(diff == 0):
        return 1.0
    return float(_sp.wilcoxon(diff, alternative="greater", zero_method="zsplit").pvalue)


def spread_ratio(a, b, claim: str, effect: str, seed: int = 0) -> Comparison:
    """Claim "b is less stable than a": effect log(std_b / std_a), bootstrap CI over seeds,
    one-sided Brown-Forsythe p (Levene's test on median-centred deviations, made one-sided
    by the direction of the observed ratio)."""
    a = np.asarray(pd.to_numeric(pd.Series(a), errors="coerce").dropna(), dtype=float)
    b = np.asarray(pd.to_numeric(pd.Series(b), errors="coerce").dropna(), dtype=float)
    if len(a) < 2 or len(b) < 2:
        return undecided(claim, effect, min(len(a), len(b)))

    def log_ratio(x, y):
        return np.log((np.std(y, ddof=1) + 1e-9) / (np.std(x, ddof=1) + 1e-9))

    estimate = float(log_ratio(a, b))
    rng = np.random.default_rng(seed)
    boots = [log_ratio(rng.choice(a, len(a)), rng.choice(b, len(b))) for _ in range(N_BOOT)]
    lo, hi = (float(x) for x in np.percentile(boots, [2.5, 97.5]))
    if np.ptp(np.concatenate([a, b])) == 0:
        p, p_opposite = 1.0, 1.0
    else:
        with warnings.catch_warnings():  # zero spread inside both groups: scipy divides by 0
            warnings.simplefilter("ignore", RuntimeWarning)
            two_sided = float(_sp.levene(a, b, center="median").pvalue)
        p, p_opposite = (two_sided / 2, 1 - two_sided / 2) if estimate > 0 else (1 - two_sided / 2, two_sided / 2)
    return decided(claim, effect, estimate, lo, hi, p, p_opposite, min(len(a), len(b)))


def claims_table(comparisons: list[Comparison]) -> pd.DataFrame:
    return pd.DataFrame([c.as_dict() for c in comparisons])
