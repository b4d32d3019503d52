"""The verdict functions of `findings` on small synthetic run tables with known answers."""
import numpy as np
import pandas as pd
import pytest

from blurblib.analysis import findings, stats
from blurblib.training.techniques import neutral_knobs

SEEDS = range(1, 15)
# Fixed, sign-balanced seed noise: effects below are exact, never a lucky draw.
NOISE = [-1.5, 1.0, -0.5, 2.0, 0.5, -1.0, 1.5, -2.0, 0.25, -0.25, 0.75, -0.75, 1.25, -1.25, 0.1, -0.1]


def _run(task="GAD", model="minilm-l6", seed=1, score=60.0, technique="standard", status="ok", **knobs):
    return {"task": task, "model": model, "seed": seed, "technique": technique, "status": status,
            "test_score": score, "trivial_test_score": 0.0, **neutral_knobs(), **knobs}


def _runs(rows) -> pd.DataFrame:
    return pd.DataFrame(rows)


def _base(seed: int) -> float:
    return 60.0 + 2 * NOISE[seed - 1]


def _row(table: pd.DataFrame, **where) -> pd.Series:
    hit = table
    for column, value in where.items():
        hit = hit[hit[column] == value]
    assert len(hit) == 1, hit
    return hit.iloc[0]


# ---- technique_claims ------------------------------------------------------------------------------

def _technique_runs(seeds=SEEDS):
    rows = []
    for s in seeds:
        rows.append(_run(seed=s, score=_base(s)))
        rows.append(_run(seed=s, score=_base(s) + 4 + 0.5 * NOISE[s], technique="reinit1", reinit_layers=1))
        rows.append(_run(seed=s, score=_base(s) - 4 + 0.5 * NOISE[s], technique="freeze3", freeze_layers=3))
        rows.append(_run(seed=s, score=_base(s) + [1, -1][s % 2], technique="mixout0.1", mixout=0.1))
    rows += [_run(seed=s, score=_base(s) + 10, technique="llrd0.9", llrd_decay=0.9) for s in (1, 2)]
    return rows


def test_technique_claims_verdicts():
    claims = findings.technique_claims(_runs(_technique_runs()))
    helps = claims[claims["kind"] == "helps (mean)"]
    assert list(helps["technique"]) == ["freeze3", "llrd0.9", "mixout0.1", "reinit1"]
    assert set(claims["kind"]) == {"helps (mean)", "stabilises (failure rate)", "stabilises (seed sd)"}
    reinit, freeze = _row(helps, technique="reinit1"), _row(helps, technique="freeze3")
    assert reinit["verdict"] == "holds" and reinit["n"] == 14 and reinit["estimate"] > 3
    assert reinit["p_holm"] >= reinit["p_value"]  # adjusted over the table's claims
    assert reinit["claim"] == findings.CLAIMS["reinit"] and freeze["claim"] == findings.CLAIMS["freeze"]
    assert freeze["verdict"] == "does not hold" and freeze["ci_high"] < 0
    assert _row(helps, technique="llrd0.9")[["verdict", "n"]].tolist() == ["inconclusive", 2]  # too few pairs
    mixout = _row(helps, technique="mixout0.1")
    assert mixout["verdict"] == "inconclusive" and mixout["estimate"] == pytest.approx(0.0)
    assert mixout["claim"] == "mixout0.1 beats standard"
    assert "pairs" in reinit["power"]


def test_technique_claims_at_the_floor_stay_undecided():
    # five seeds, every one better: p = 1/32 is within a factor 2 of alpha, so no verdict rests on it
    claims = findings.technique_claims(_runs(_technique_runs(range(1, 6))))
    assert _row(claims[claims["kind"] == "helps (mean)"], technique="reinit1")["verdict"] == "inconclusive"


def test_technique_claims_are_per_task_and_model():
    rows = _technique_runs() + [{**r, "model": "bert-base"} for r in _technique_runs()]
    rows += [{**r, "task": "BIOSSES"} for r in _technique_runs()]
    claims = findings.technique_claims(_runs(rows))
    helps = claims[claims["kind"] == "helps (mean)"]
    assert len(helps) == 12 and set(helps["model"]) == {"bert-base", "minilm-l6"}
    assert set(helps["task"]) == {"GAD", "BIOSSES"}
    assert _row(helps, model="minilm-l6", technique="reinit1", task="BIOSSES")["n"] == 14  # never pooled over tasks


def test_technique_claims_keep_failed_scores_and_drop_missing_ones():
    rows = _technique_runs()
    collapsed = next(r for r in rows if r["technique"] == "reinit1" and r["seed"] == 6)
    collapsed.update(status="failed", test_score=_base(6) - 30)  # a collapsed run is part of the technique
    nan_loss = next(r for r in rows if r["technique"] == "reinit1" and r["seed"] == 5)
    nan_loss.update(status="failed", test_score=None)  # no score: its pair drops
    claims = findings.technique_claims(_runs(rows))
    reinit = _row(claims[claims["kind"] == "helps (mean)"], technique="reinit1")
    diffs = [4 + 0.5 * NOISE[s] for s in SEEDS if s not in (5, 6)] + [-30]
    assert reinit["n"] == 13 and reinit["estimate"] == pytest.approx(np.mean(diffs))
    failing = _row(claims[claims["kind"] == "stabilises (failure rate)"], technique="reinit1")
    assert failing["n"] == 14 and failing["estimate"] == pytest.approx(-2 / 14)  # two reinit runs failed, no standard run


def test_lpft_is_tested_against_its_compute_matched_control_too():
    rows = []
    for s in SEEDS:
        rows.append(_run(task="NCBI-disease", seed=s, score=_base(s)))
        rows.append(_run(task="NCBI-disease", seed=s, score=_base(s) + 5 + 0.5 * NOISE[s], technique="lpft3", lpft_epochs=3))
        rows.append(_run(task="NCBI-disease", seed=s, score=_base(s) + 5 + 0.5 * NOISE[s - 1],
                         technique="standard +3 epochs", epochs=6))
    helps = findings.technique_claims(_runs(rows)).query("kind == 'helps (mean)'")
    assert len(helps) == 3  # lpft3 and the control against standard, lpft3 against the control
    over_standard = _row(helps, technique="lpft3", against="standard")
    over_control = _row(helps, technique="lpft3", against="standard +3 epochs")
    assert over_standard["verdict"] == "holds"  # LP-FT beats standard ...
    assert over_control["verdict"] == "inconclusive" and abs(over_control["estimate"]) < 1  # ... by more training
    assert "more than the extra training" in over_control["claim"]
    assert _row(helps, technique="standard +3 epochs")["verdict"] == "holds"


def test_failure_is_judged_at_the_end_of_training():
    rows = _technique_runs()
    for r in rows:
        r["final_test_score"] = r["test_score"]
        if r["technique"] == "freeze3" and r["seed"] <= 10:  # collapsed after its best dev epoch
            r["final_test_score"] = 0.0
    df = _runs(rows)
    assert stats.failed(df).sum() == 10 and stats.failed(df, at="best").sum() == 0
    claims = findings.technique_claims(df)
    freeze = _row(claims[claims["kind"] == "stabilises (failure rate)"], technique="freeze3")
    assert freeze["estimate"] == pytest.approx(-10 / 14) and freeze["verdict"] == "does not hold"


# ---- size_claims, size_table ----------------------------------------------------------------------

def _size_runs():
    rows = []
    for s in range(1, 11):
        n = NOISE[s - 1]
        rows.append(_run("GAD", "small", s, 50 + 0.1 * n))  # large: +20 and 30x the seed spread
        rows.append(_run("GAD", "large", s, 70 + 3 * n))
        rows.append(_run("BIOSSES", "small", s, 50 + 3 * n))  # large: +20 and 1/30 of the spread
        rows.append(_run("BIOSSES", "large", s, 70 + 0.1 * n))
    rows += [_run("HoC", "small", s, 40 + s) for s in (1, 2)] + [_run("HoC", "large", s, 60 + 5 * s) for s in (1, 2)]
    return rows


def test_size_claims_verdicts():
    claims = findings.size_claims(_runs(_size_runs()), "small", "large")
    assert list(claims["task"].unique()) == ["BIOSSES", "GAD", "HoC"]  # per task, never pooled
    gap = _row(claims, task="GAD", kind="helps (mean)")
    assert gap["verdict"] == "holds" and gap["n"] == 10 and gap["claim"] == findings.CLAIMS["size_score"]
    gad, biosses = _row(claims, task="GAD", kind="seed sd"), _row(claims, task="BIOSSES", kind="seed sd")
    assert gad["verdict"] == "holds" and gad["estimate"] == pytest.approx(np.log(30), rel=1e-3)
    assert biosses["verdict"] == "does not hold" and biosses["estimate"] == pytest.approx(-np.log(30), rel=1e-3)
    assert _row(claims, task="HoC", kind="helps (mean)")["verdict"] == "inconclusive"  # 2 seeds
    assert set(claims.loc[claims["kind"] == "seed sd", "claim"]) == {findings.CLAIMS["size_stability"]}


def test_size_gain_over_own_reference():
    # large scores 20 more, but its frozen encoder already scores 25 more: it gains less
    refs_rows = []
    from blurblib.runs.reference import ReferenceConfig
    for model, score in (("small", 30.0), ("large", 55.0)):
        refs_rows.append({"run_id": ReferenceConfig(task="GAD", model=model).run_id, "test_score": score})
    runs = _runs([r for r in _size_runs() if r["task"] == "GAD"]).assign(train_limit=None, eval_limit=None, max_length=None)
    claims = findings.size_claims(runs, "small", "large", references=pd.DataFrame(refs_rows))
    own = _row(claims, kind="helps (gain over own reference)")
    assert own["estimate"] == pytest.approx(20 - 25, abs=0.01) and own["verdict"] == "does not hold"


def test_size_table_numbers_and_failed_runs():
    rows = [_run("GAD", "small", s, v) for s, v in zip((1, 2, 3), (50, 52, 54))]
    rows += [_run("GAD", "large", 1, 60), _run("GAD", "large", 2, 64), _run("GAD", "large", 3, None, status="failed"),
             _run("GAD", "large", 4, 62, status="failed")]  # a failed run's score counts, a missing one cannot
    table = findings.size_table(_runs(rows), "small", "large")
    gad = _row(table, task="GAD")
    assert gad["mean small"] == 52 and gad["sd small"] == pytest.approx(2.0)
    assert gad["mean large"] == 62 and gad["sd large"] == pytest.approx(2.0)
    assert gad["failed small"] == 0 and gad["failed large"] == 0.5
    assert gad["score gain"] == 10 and gad["variance ratio"] == pytest.approx(1.0)


# ---- reinit_claims ---------------------------------------------------------------------------------

def test_reinit_claims_verdicts():
    rows = []
    for s in SEEDS:
        rows.append(_run("BIOSSES", seed=s, score=_base(s)))
        rows.append(_run("BIOSSES", seed=s, score=_base(s) + 5 + 0.5 * NOISE[s], technique="reinit1", reinit_layers=1))
        rows.append(_run("BIOSSES", seed=s, score=_base(s) - 5 + 0.5 * NOISE[s], technique="reinit2", reinit_layers=2))
    rows += [_run("GAD", seed=s, score=60) for s in (1, 2)] + [_run("GAD", seed=s, score=70, reinit_layers=1) for s in (1, 2)]
    claims = findings.reinit_claims(_runs(rows))
    helps = claims[claims["kind"] == "helps (mean)"]
    assert helps[["task", "reinit_layers"]].values.tolist() == [["BIOSSES", 1], ["BIOSSES", 2], ["GAD", 1]]
    one, two, gad = (_row(helps, task=t, reinit_layers=n) for t, n in (("BIOSSES", 1), ("BIOSSES", 2), ("GAD", 1)))
    assert one["verdict"] == "holds" and one["claim"] == findings.CLAIMS["reinit"]
    assert two["verdict"] == "does not hold" and two["estimate"] == pytest.approx(-5 + 0.5 * np.mean(NOISE[1:15]))
    assert gad["verdict"] == "inconclusive" and gad["n"] == 2 and "GAD" in gad["claim"]


# ---- blurb_table, domain_gap_claim -------------------------------------------------------------------

def _blurb_runs():
    rows = [_run("BIOSSES", seed=s, score=v) for s, v in zip((1, 2, 3), (80, 82, 84))]
    rows += [_run("GAD", seed=1, score=70), _run("GAD", seed=2, score=72, status="failed")]
    rows += [_run("ChemProt", seed=s, score=v) for s, v in zip((1, 2), (60, 64))]
    rows += [_run("HoC", seed=s, score=None, status="failed") for s in (1, 2)]  # every run lost its loss to NaN
    return _runs(rows)


def test_blurb_table_and_score_over_the_types_present():
    table, details = findings.blurb_table(_blurb_runs())
    assert list(table["task"]) == ["ChemProt", "GAD", "BIOSSES", "HoC"]  # BLURB's order
    biosses, gad, hoc = (_row(table, task=t) for t in ("BIOSSES", "GAD", "HoC"))
    assert biosses["mean"] == 82 and biosses["gap"] == pytest.approx(92.30 - 82) and biosses["type"] == "similarity"
    assert gad["mean"] == 71 and gad["failed_rate"] == 0.5  # a failed run's score still counts in the mean
    assert np.isnan(hoc["mean"]) and hoc["failed_rate"] == 1.0 and hoc["n"] == 2
    assert details.type_means == {"relation": 66.5, "similarity": 82.0}
    assert details.score == pytest.approx((66.5 + 82) / 2)
    assert "HoC" in details.missing_tasks and "doc_classification" in details.missing_types


def _gaps(values) -> pd.DataFrame:
    return pd.DataFrame({"task": [f"t{i}" for i in range(len(values))], "gap": values})


@pytest.mark.parametrize("gaps, verdict", [
    ([10, 12, 9, 15, 11, 13], "holds"),
    ([-10, -12, -9, -15, -11, -13], "does not hold"),
    ([10, 12], "inconclusive"),
    ([5, -5, 3, -3, 1, -1], "inconclusive"),
])
def test_domain_gap_claim_verdicts(gaps, verdict):
    claim = findings.domain_gap_claim(_gaps(gaps), "minilm-l6").iloc[0]
    assert claim["verdict"] == verdict and claim["n"] == len(gaps)
    assert claim["estimate"] == pytest.approx(np.mean(gaps)) and "minilm-l6" in claim["claim"]


def test_domain_gap_claim_ignores_a_task_without_a_score():
    table, _ = findings.blurb_table(_blurb_runs())  # HoC: no score, gap NaN
    assert np.isnan(_row(table, task="HoC")["gap"])
    claim = findings.domain_gap_claim(_gaps([10, 12, 9, 15, 11, 13, np.nan]), "m").iloc[0]
    assert claim["n"] == 6 and claim["verdict"] == "holds" and claim["estimate"] == pytest.approx(70 / 6)


# ---- winners, knob_slice ----------------------------------------------------------------------------

def _summary(rows):
    return stats.summarize(_runs(rows), by=["task", "model", "technique"])


def test_winners_names_the_best_mean_its_gain_and_the_steadiest():
    rows = [_run("GAD", seed=s, score=v) for s, v in zip((1, 2, 3), (60, 70, 80))]  # mean 70, sd 10
    rows += [_run("GAD", seed=s, score=v, technique="reinit1") for s, v in zip((1, 2, 3), (74, 75, 76))]  # 75, sd 1
    rows += [_run("GAD", seed=s, score=v, technique="freeze3") for s, v in zip((1, 2, 3), (60, 65, 70))]  # 65, sd 5
    rows += [_run("BIOSSES", seed=s, score=v, technique="llrd0.9") for s, v in zip((1, 2), (50, 52))]  # no standard
    out = findings.winners(_summary(rows))
    gad = _row(out, task="GAD")
    assert (gad["best technique"], gad["best mean"], gad["standard mean"]) == ("reinit1", 75, 70)
    assert gad["gain over standard"] == 5 and gad["lowest sd"] == "reinit1"
    biosses = _row(out, task="BIOSSES")
    assert biosses["best technique"] == "llrd0.9" and np.isnan(biosses["standard mean"]) and np.isnan(biosses["gain over standard"])


def test_winners_survives_a_task_without_any_score():
    rows = [_run("GAD", seed=s, score=v) for s, v in zip((1, 2), (60, 70))]
    rows += [_run("HoC", seed=s, score=None, status="failed") for s in (1, 2)]
    out = findings.winners(_summary(rows))
    assert _row(out, task="GAD")["best technique"] == "standard" and pd.isna(_row(out, task="HoC")["best technique"])


def test_knob_slice_keeps_runs_where_only_that_knob_moves():
    rows = [_run(seed=1, score=60), _run(seed=1, score=61, technique="freeze1", freeze_layers=1),
            _run(seed=1, score=62, technique="freeze3", freeze_layers=3), _run(seed=2, score=59, technique="freeze2", freeze_layers=2),
            _run(seed=1, score=63, technique="freeze2+llrd0.8", freeze_layers=2, llrd_decay=0.8),
            _run(seed=1, score=64, technique="reinit1", reinit_layers=1), _run(seed=1, score=65, technique="llrd0.8", llrd_decay=0.8)]
    df = _runs(rows)
    assert list(findings.knob_slice(df, "freeze_layers")["freeze_layers"]) == [0, 1, 2, 3]  # standard included, sorted
    assert set(findings.knob_slice(df, "freeze_layers")["technique"]) == {"standard", "freeze1", "freeze2", "freeze3"}
    assert list(findings.knob_slice(df, "llrd_decay")["technique"]) == ["llrd0.8", "standard"]
    assert list(findings.knob_slice(df, "reinit_layers")["reinit_layers"]) == [0, 1]


# ---- did fine-tuning learn? the frozen reference ---------------------------------------------------

def _with_sizes(rows, **sizes):
    return _runs([{**row, "train_limit": 300, "eval_limit": 250, "max_length": 128, **sizes} for row in rows])


def _references(scores: dict) -> pd.DataFrame:
    from blurblib.runs.reference import ReferenceConfig

    configs = {task: ReferenceConfig(task, train_limit=300, eval_limit=250, max_length=128) for task in scores}
    return pd.DataFrame([{"run_id": c.run_id, "task": t, "test_score": scores[t]} for t, c in configs.items()])


def test_learned_flags_a_mean_below_its_frozen_reference():
    rows = [_run("GAD", seed=s, score=v) for s, v in zip((1, 2, 3), (70, 72, 74))]
    rows += [_run("BIOSSES", seed=s, score=v) for s, v in zip((1, 2, 3), (40, 50, 60))]
    rows += [_run("PubMedQA", seed=s, score=53.2, status="failed") for s in (1, 2, 3)]  # every seed says "yes"
    runs = _with_sizes(rows).assign(trivial_test_score=lambda df: np.where(df["task"] == "PubMedQA", 53.2, 0.0))
    out = findings.learned(runs, _references({"GAD": 60.0, "BIOSSES": 85.0, "PubMedQA": 50.4}))
    gad, biosses, qa = _row(out, task="GAD"), _row(out, task="BIOSSES"), _row(out, task="PubMedQA")
    assert gad["learned"] and gad["margin"] == pytest.approx(12.0) and gad["reference"] == 60.0
    assert not biosses["learned"] and biosses["margin"] == pytest.approx(-35.0)
    # a probe below the majority answer is no bar: the collapsed runs did not learn
    assert not qa["learned"] and qa["margin"] == pytest.approx(0.0) and qa["trivial"] == pytest.approx(53.2)


def test_a_run_on_other_data_sizes_has_no_reference():
    runs = _with_sizes([_run("GAD", seed=1, score=70)], train_limit=100)  # the reference saw 300 examples
    out = findings.with_reference(runs, _references({"GAD": 60.0}))
    assert np.isnan(out["reference"].iloc[0])


def test_blurb_table_carries_the_reference_column():
    rows = [_run("GAD", seed=s, score=v) for s, v in zip((1, 2), (70, 72))]
    rows += [_run("BIOSSES", seed=s, score=v) for s, v in zip((1, 2), (80, 82))]
    table, _ = findings.blurb_table(_with_sizes(rows), _references({"GAD": 75.0, "BIOSSES": 70.0}))
    assert list(table["beats reference"]) == [False, True]  # BLURB order: GAD before BIOSSES
    assert list(table["frozen reference"]) == [75.0, 70.0]


def test_the_published_comparison_is_like_for_like():
    """A partial BLURB score (no PICO here) is set against PubMedBERT over the same task types."""
    from blurblib.analysis import findings
    from blurblib.data import metrics

    assert findings.PUBMEDBERT["GAD"] == 82.34  # Gu et al.'s paper, not the leaderboard's 83.96
    five = [t for t in metrics.TASK_TYPES if t != "pico"]
    relation = (77.24 + 82.36 + 82.34) / 3
    ner = (93.33 + 85.62 + 87.82 + 84.52 + 79.10) / 5
    assert findings.pubmedbert_score(five) == pytest.approx((ner + relation + 92.30 + 82.32 + (55.84 + 87.56) / 2) / 5)
    assert round(findings.pubmedbert_score(five), 2) == 82.61 and round(findings.pubmedbert_score(), 2) == 81.07
