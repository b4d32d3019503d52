"""How many seeds a claim needs: power before runs.

A verdict from too few seeds says nothing: over 5 pairs a one-sided Wilcoxon test cannot go
below p = 1/32, and 5 against 5 seeds detect only a fourfold ratio of seed sds. These functions
answer, for each kind of claim the workbook tests, "how many seeds detect this effect with 80%
power at alpha?" (profiles set their seed counts from them) and "what could these seeds
detect?" (the power note printed beside each claim). With several claims in one notebook, the
Holm correction's first step tests at alpha / claims, so each is planned at that level.

Approximations, each checked against a simulation in the tests: the paired Wilcoxon test by
the paired t-test's noncentral-t power divided by the Wilcoxon's asymptotic relative
efficiency (3/pi for normal data); the Brown-Forsythe spread test by the F-test of two
variances; the failure-rate test is exact (one-sided Fisher over the binomial outcomes).
"""
from __future__ import annotations

import functools
import math

import numpy as np
from scipy import stats as _sp

ALPHA = 0.05
POWER = 0.8
MAX_SEEDS = 200
WILCOXON_ARE = 3 / math.pi  # efficiency of the signed-rank test relative to the t-test, normal data


def wilcoxon_floor(n: int) -> float:
    """The smallest one-sided exact Wilcoxon signed-rank p that n pairs can give (all one sign)."""
    return 2.0 ** -n if n else 1.0


def floor_allows(n: int, alpha: float = ALPHA) -> bool:
    """Whether n pairs can decide at `alpha` with room: the smallest possible p is at most half
    of alpha, so that one seed of the other sign does not flip the verdict by itself."""
    return wilcoxon_floor(n) <= alpha / 2


def paired_power(n: int, effect_sd: float, alpha: float = ALPHA) -> float:
    """Power of the one-sided paired Wilcoxon test over n pairs for a mean difference of
    `effect_sd` standard deviations of the differences (0 where its floor forbids a verdict)."""
    if n < 2 or not floor_allows(n, alpha):
        return 0.0
    n_eff = n * WILCOXON_ARE
    critical = _sp.t.ppf(1 - alpha, n_eff - 1)
    return float(_sp.nct.sf(critical, n_eff - 1, effect_sd * math.sqrt(n_eff)))


def seeds_for_paired(effect_sd: float, alpha: float = ALPHA, power: float = POWER, claims: int = 1) -> int:
    """Pairs (seeds) for the paired mean-difference claim to reach `power` at alpha / claims."""
    return _smallest(lambda n: paired_power(n, effect_sd, alpha / claims) >= power)


def spread_power(n: int, ratio: float, alpha: float = ALPHA) -> float:
    """Power of a one-sided test that one arm's seed sd exceeds the other's by `ratio`, n seeds each."""
    if n < 2:
        return 0.0
    df = n - 1
    return float(_sp.f.sf(_sp.f.ppf(1 - alpha, df, df) / ratio**2, df, df))


def seeds_for_spread(ratio: float, alpha: float = ALPHA, power: float = POWER, claims: int = 1) -> int:
    """Seeds per arm to detect a ratio of seed sds `ratio` (e.g. 2: twice as spread out)."""
    return _smallest(lambda n: spread_power(n, ratio, alpha / claims) >= power)


def detectable_ratio(n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest sd ratio n seeds per arm detect with `power` (5 -> about 3.6, 10 -> 2.4, 25 -> 1.7)."""
    if n < 2:
        return math.inf
    df = n - 1
    return math.sqrt(_sp.f.ppf(1 - alpha, df, df) / _sp.f.ppf(1 - power, df, df))


def detectable_effect(n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest mean difference, in sds of the paired differences, that n pairs detect."""
    if not floor_allows(n, alpha):
        return math.inf
    lo, hi = 0.0, 50.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if paired_power(n, mid, alpha) < power else (lo, mid)
    return hi


@functools.lru_cache(maxsize=None)
def failure_power(n: int, rate_high: float, rate_low: float, alpha: float = ALPHA) -> float:
    """Exact power of the one-sided Fisher test that an arm failing at `rate_low` fails less
    often than one at `rate_high`, n seeds each: the sum, over every pair of failure counts,
    of their binomial probability where Fisher's p is below alpha."""
    if n < 1:
        return 0.0
    k = np.arange(n + 1)
    high, low = np.meshgrid(k, k, indexing="ij")  # failures of the unstable arm, of the remedy
    # one-sided Fisher p: P(the unstable arm has >= `high` of the high+low failures), hypergeometric
    p = _sp.hypergeom.sf(high - 1, 2 * n, high + low, n)
    reject = p < alpha
    weights = np.outer(_sp.binom.pmf(k, n, rate_high), _sp.binom.pmf(k, n, rate_low))
    return float(weights[reject].sum())


def seeds_for_failure(rate_high: float, rate_low: float, alpha: float = ALPHA, power: float = POWER,
                      claims: int = 1) -> int:
    """Seeds per arm to show that a remedy lowers the failure rate from `rate_high` to `rate_low`."""
    return _smallest(lambda n: failure_power(n, rate_high, rate_low, alpha / claims) >= power)


def _smallest(enough) -> int:
    for n in range(2, MAX_SEEDS + 1):
        if enough(n):
            return n
    return MAX_SEEDS


def note(kind: str, n: int, claims: int = 1, alpha: float = ALPHA) -> str:
    """What n seeds could show for this kind of claim, at alpha / claims (Holm's first step):
    the sentence printed beside each claim."""
    level = alpha / max(claims, 1)
    if kind == "paired":
        effect = detectable_effect(n, level)
        if not math.isfinite(effect):
            return f"{n} pairs cannot decide (smallest p {wilcoxon_floor(n):.2g} > {level / 2:.2g})"
        return f"{n} pairs: 80% power for a mean difference >= {effect:.2f} sd of the differences"
    if kind == "spread":
        return f"{n} seeds per arm: 80% power for an sd ratio >= {detectable_ratio(n, level):.2f}"
    if kind == "failure":
        return (f"{n} seeds per arm: 80% power for failure rates 0.5 vs "
                f"{_lowest_detectable(n, level):.2f}" if n >= 2 else f"{n} seeds cannot decide")
    raise ValueError(f"unknown claim kind {kind!r}: paired, spread or failure")


def _lowest_detectable(n: int, alpha: float) -> float:
    """The highest remedy failure rate n seeds per arm tell apart from 0.5 with 80% power."""
    for rate in np.arange(0.45, -0.001, -0.05):
        if failure_power(n, 0.5, round(float(rate), 2), alpha) >= POWER:
            return round(float(rate), 2)
    return 0.0
