import numpy as np
import pandas as pd
import pytest

from blurblib import stats


def _runs(scores_by_tech, task="BIOSSES"):
    rows = []
    for tech, scores in scores_by_tech.items():
        for seed, s in enumerate(scores, start=1):
            rows.append(dict(task=task, model="m", seed=seed, technique=tech, status="ok",
                             test_score=s, trivial_test_score=0.0))
    return pd.DataFrame(rows)


def test_summarize_numbers_and_failed_rate():
    df = _runs({"standard": [10.0, 20.0, 30.0, 0.0]})
    out = stats.summarize(df, by=["technique"]).iloc[0]
    assert out["n"] == 4
    assert out["mean"] == pytest.approx(15.0)
    assert out["std"] == pytest.approx(np.std([10, 20, 30, 0], ddof=1))
    assert out["iqr"] == pytest.approx(22.5 - 7.5)
    assert out["failed_rate"] == pytest.approx(0.25)  # 0.0 is not above the trivial 0.0
    assert out["ci_low"] <= 15.0 <= out["ci_high"]


def test_failed_counts_status_and_missing_scores():
    df = pd.DataFrame(dict(status=["ok", "failed", "ok"], test_score=[50.0, None, 40.0], trivial_test_score=[45.0, 45.0, 45.0]))
    assert stats.failed(df).tolist() == [False, True, True]


def test_paired_comparison_detects_a_consistent_gain():
    df = _runs({"reinit": [61, 63, 65, 62, 66, 64, 67, 63], "standard": [60, 61, 62, 60, 63, 61, 64, 62]})
    c = stats.paired(df, "technique", "reinit", "standard", claim="reinit helps")
    assert c.n == 8
    assert c.estimate == pytest.approx(np.mean([1, 2, 3, 2, 3, 3, 3, 1]))
    assert c.p_value < 0.01 and c.ci_low > 0
    assert c.verdict == "holds"


def test_paired_comparison_opposite_direction_does_not_hold():
    df = _runs({"freeze": [50, 51, 49, 50, 48], "standard": [60, 61, 62, 60, 63]})
    assert stats.paired(df, "technique", "freeze", "standard", claim="x").verdict == "does not hold"


def test_verdict_rule_is_inconclusive_when_ci_spans_zero():
    assert stats.verdict(-1.0, 2.0, 0.01) == "inconclusive"
    assert stats.verdict(0.5, 2.0, 0.2) == "inconclusive"
    assert stats.verdict(0.5, 2.0, 0.01) == "holds"
    assert stats.verdict(0.5, 2.0, 0.01, n=2) == "inconclusive"  # too few pairs
    assert stats.verdict(-2.0, -0.5, 0.99, p_opposite=0.2) == "inconclusive"
    assert stats.verdict(-2.0, -0.5, 0.99, p_opposite=0.01) == "does not hold"
    assert stats.verdict(float("nan"), 1.0, 0.01) == "inconclusive"


def test_spread_ratio_sees_the_noisier_group():
    rng = np.random.default_rng(0)
    calm, noisy = 70 + rng.normal(0, 0.5, 10), 70 + rng.normal(0, 5, 10)
    c = stats.spread_ratio(calm, noisy, claim="noisy is less stable", effect="log sd ratio")
    assert c.estimate == pytest.approx(np.log(np.std(noisy, ddof=1) / np.std(calm, ddof=1)), rel=1e-6)
    assert c.verdict == "holds"
    assert stats.spread_ratio(noisy, calm, claim="", effect="").verdict == "does not hold"


def test_bootstrap_ci_edge_cases():
    assert all(np.isnan(stats.bootstrap_ci([1.0])))
    assert stats.bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)


def test_the_verdict_keeps_the_p_value_that_decided_it():
    from blurblib import stats

    worse = stats.paired(_pairs([-5, -4, -6, -5, -3]), "technique", "x", "standard", claim="x helps")
    assert worse.verdict == "does not hold" and worse.p_opposite < 0.05 < worse.p_value
    assert list(worse.as_dict())[5:9] == ["p_value", "p_opposite", "n", "verdict"]
    four = stats.paired(_pairs([-5, -4, -6, -5]), "technique", "x", "standard", claim="x helps")
    assert four.ci_high < 0 and four.verdict == "inconclusive" and four.p_opposite == stats.smallest_wilcoxon_p(4) == 1 / 16


def _pairs(diffs):
    import pandas as pd

    rows = [{"task": "T", "model": "m", "seed": s, "technique": "standard", "test_score": 50.0} for s in range(len(diffs))]
    rows += [{"task": "T", "model": "m", "seed": s, "technique": "x", "test_score": 50.0 + d} for s, d in enumerate(diffs)]
    return pd.DataFrame(rows)
