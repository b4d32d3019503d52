"""The power function against a simulation of the tests the workbook actually runs."""
import numpy as np
import pytest
from scipy import stats as sp

from blurblib.analysis import power


def test_wilcoxon_floor_rules_out_five_pairs():
    assert power.wilcoxon_floor(5) == 1 / 32
    assert not power.floor_allows(5) and power.floor_allows(6)
    assert power.paired_power(5, effect_sd=10.0) == 0.0


def test_paired_power_matches_a_simulated_wilcoxon():
    rng = np.random.default_rng(0)
    n, effect = 10, 0.9
    hits = [sp.wilcoxon(rng.normal(effect, 1.0, n), alternative="greater").pvalue < 0.05 for _ in range(2000)]
    assert power.paired_power(n, effect) == pytest.approx(np.mean(hits), abs=0.06)


def test_seeds_for_paired_is_the_smallest_count_with_enough_power():
    n = power.seeds_for_paired(1.0)
    assert power.paired_power(n, 1.0) >= 0.8 > power.paired_power(n - 1, 1.0)
    # planning for Holm over several claims asks for more seeds
    assert power.seeds_for_paired(1.0, claims=10) > n


def test_spread_power_reproduces_the_detectable_ratios():
    # 5 vs 5 seeds detect only about a fourfold sd ratio; 10 -> 2.4; 25 -> 1.7
    assert power.detectable_ratio(5) == pytest.approx(4.0, abs=0.1)
    assert power.detectable_ratio(10) == pytest.approx(2.4, abs=0.1)
    assert power.detectable_ratio(25) == pytest.approx(1.67, abs=0.05)


def test_spread_power_matches_a_simulated_brown_forsythe():
    rng = np.random.default_rng(1)
    n, ratio = 20, 2.0
    hits = []
    for _ in range(2000):
        a, b = rng.normal(0, 1, n), rng.normal(0, ratio, n)
        p = sp.levene(a, b, center="median").pvalue / 2 if b.std() > a.std() else 1.0
        hits.append(p < 0.05)
    # Brown-Forsythe is a little less powerful than the F-test on normal data
    assert np.mean(hits) <= power.spread_power(n, ratio) + 0.03
    assert np.mean(hits) >= power.spread_power(n, ratio) - 0.15


def test_failure_power_is_exact():
    rng = np.random.default_rng(2)
    n = 20
    hits = []
    for _ in range(3000):
        a, b = rng.binomial(n, 0.6), rng.binomial(n, 0.1)
        hits.append(sp.fisher_exact([[a, n - a], [b, n - b]], alternative="greater").pvalue < 0.05)
    assert power.failure_power(n, 0.6, 0.1) == pytest.approx(np.mean(hits), abs=0.03)
    n_needed = power.seeds_for_failure(0.5, 0.1)
    assert power.failure_power(n_needed, 0.5, 0.1) >= 0.8 > power.failure_power(n_needed - 1, 0.5, 0.1)


def test_notes_say_what_the_seeds_could_show():
    assert "cannot decide" in power.note("paired", 5)
    assert "sd ratio >= 3.98" in power.note("spread", 5)
    assert "failure rates 0.5 vs" in power.note("failure", 20)
