import numpy as np
import pandas as pd
import pytest

from blurblib.analysis import stats


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
    df = _runs({"freeze": [50, 51, 49, 50, 48, 50], "standard": [60, 61, 62, 60, 63, 61]})
    assert stats.paired(df, "technique", "freeze", "standard", claim="x").verdict == "does not hold"
    # five pairs all of one sign reach only p = 1/32, within a factor 2 of alpha: not decided
    five = _runs({"freeze": [50, 51, 49, 50, 48], "standard": [60, 61, 62, 60, 63]})
    assert stats.paired(five, "technique", "freeze", "standard", claim="x").verdict == "inconclusive"


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
    from blurblib.analysis import stats

    worse = stats.paired(_pairs([-5, -4, -6, -5, -3, -4]), "technique", "x", "standard", claim="x helps")
    assert worse.verdict == "does not hold" and worse.p_opposite < 0.05 < worse.p_value
    assert list(worse.as_dict())[5:8] == ["test", "p_value", "p_opposite"]
    four = stats.paired(_pairs([-5, -4, -6, -5]), "technique", "x", "standard", claim="x helps")
    assert four.ci_high < 0 and four.verdict == "inconclusive" and four.p_opposite == stats.smallest_wilcoxon_p(4) == 1 / 16


def _pairs(diffs):
    import pandas as pd

    rows = [{"task": "T", "model": "m", "seed": s, "technique": "standard", "test_score": 50.0} for s in range(len(diffs))]
    rows += [{"task": "T", "model": "m", "seed": s, "technique": "x", "test_score": 50.0 + d} for s, d in enumerate(diffs)]
    return pd.DataFrame(rows)


# --- deciding: multiplicity, failure rates, fair pairs, test-set sampling ----------------------

def test_holm_on_a_textbook_example():
    # Holm (1979) as in every textbook: sorted p 0.01, 0.02, 0.03, 0.04 over m = 4
    # -> 0.04, 0.06, 0.06 (monotone: max(0.06, 0.06)), 0.06 (max(0.06, 0.04))
    adjusted = stats.holm([0.03, 0.01, 0.04, 0.02])
    np.testing.assert_allclose(adjusted, [0.06, 0.04, 0.06, 0.06])
    assert np.isnan(stats.holm([0.01, float("nan")])[1]) and stats.holm([0.01, float("nan")])[0] == 0.01
    assert stats.holm([0.6, 0.7])[1] == 1.0 or stats.holm([0.6, 0.7]).max() <= 1.0


def test_with_holm_decides_on_the_adjusted_p():
    rows = [stats.decided("a", "e", 1.0, 0.5, 1.5, 0.004, 0.99, 12),
            stats.decided("b", "e", 1.0, 0.5, 1.5, 0.03, 0.99, 12)]
    assert [r.verdict for r in rows] == ["holds", "holds"]
    table = stats.claims_table(rows)
    assert list(table["p_holm"]) == pytest.approx([0.008, 0.03])
    assert list(table["verdict"]) == ["holds", "holds"]
    rows.append(stats.decided("c", "e", 1.0, 0.5, 1.5, 0.04, 0.99, 12))
    assert list(stats.claims_table(rows)["verdict"]) == ["holds", "inconclusive", "inconclusive"]


def test_failure_rate_change_is_an_exact_paired_test():
    standard = [True] * 8 + [False] * 4   # 8 of 12 seeds fail
    remedy = [False] * 8 + [False] * 4    # none fails: 8 discordant seeds, all one way
    c = stats.failure_rate_change(standard, remedy, claim="remedy stabilises", effect="rate")
    assert c.estimate == pytest.approx(8 / 12)
    assert c.p_value == pytest.approx(0.5 ** 8) and c.p_floor == pytest.approx(0.5 ** 8)
    assert c.verdict == "holds"
    same = stats.failure_rate_change(standard, standard, claim="x", effect="rate")
    assert same.estimate == 0 and same.p_value == 1.0 and same.verdict == "inconclusive"


def test_wilson_interval():
    low, high = stats.wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-3)
    low, high = stats.wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-3) and high == pytest.approx(0.7634, abs=1e-3)


def test_runs_of_other_precisions_or_machines_are_never_paired():
    rows = []
    for seed in range(1, 9):
        for technique, score in (("standard", 50.0), ("x", 55.0)):
            rows.append(dict(task="T", model="m", seed=seed, technique=technique, test_score=score,
                             precision="bf16", machine_kind="AMD EPYC | AVX512 | bf16 native"))
    df = pd.DataFrame(rows)
    # seeds 1-3 of x trained elsewhere: fp32, or another CPU
    df.loc[(df.technique == "x") & (df.seed == 1), "precision"] = "fp32"
    df.loc[(df.technique == "x") & (df.seed.isin([2, 3])), "machine_kind"] = "Intel Xeon | AVX512 | bf16 native"
    c = stats.paired(df, "technique", "x", "standard", claim="x helps")
    assert c.n == 5 and c.dropped == 3


def test_spread_ratio_has_no_epsilon_artefact():
    calm = [50.0, 50.0, 50.0, 50.0, 50.1]  # most resamples have no spread at all
    noisy = [40.0, 60.0, 45.0, 55.0, 50.0]
    c = stats.spread_ratio(calm, noisy, claim="", effect="")
    assert np.isnan(c.ci_low) and c.verdict == "inconclusive"
    flat = stats.spread_ratio([50.0] * 5, noisy, claim="", effect="")
    assert flat.verdict == "inconclusive" and np.isnan(flat.estimate)


def test_two_level_bootstrap_includes_test_sampling():
    rng = np.random.default_rng(0)
    labels = rng.normal(size=20)
    # five seeds whose predictions barely differ: the seed-only interval is narrow, the
    # two-level one must be wider, since 20 test pairs leave Pearson itself uncertain
    shared = labels + rng.normal(scale=1.0, size=20)
    preds = [shared + rng.normal(scale=0.05, size=20) for _ in range(5)]

    def score_on(run, arm, examples):
        return 100 * np.corrcoef(labels[examples], preds[run][examples])[0, 1]

    scores = np.array([score_on(r, "a", np.arange(20)) for r in range(5)])
    seed_low, seed_high = stats.bootstrap_ci(scores)
    low, high = stats.two_level_bootstrap_ci(scores, score_on=score_on, n_examples=20, n_boot=400)
    assert (high - low) > 2 * (seed_high - seed_low)
    assert low < scores.mean() < high


def test_claims_made_together_hold_only_if_each_holds():
    assert stats.all_of("holds", "holds") == "holds"
    assert stats.all_of("holds", "inconclusive") == "inconclusive"
    assert stats.all_of("inconclusive", "does not hold") == "does not hold"
