"""Notebook 01's claims on synthetic run tables whose answer is known, and the arm helpers on a real
(two-step) pretraining run."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from blurblib.analysis import findings, pretraining
from blurblib.core import paths
from blurblib.core.errors import ConfigError
from blurblib.runs import arms
from blurblib.training import mlm

ARMS = ("released", "domain", "general", "random")


def runs_table(arm_means: dict[str, dict[str, float]], sds: dict[str, dict[str, float]] | None = None,
               seeds=range(1, 11), noise_seed=0) -> pd.DataFrame:
    """One row per (task, arm, seed): score = arm mean + sd * a fixed standard-normal draw per seed.

    The draws are standardised (mean 0, sd 1 over the seeds), so each arm's mean over seeds is exactly
    its given mean and its sd exactly the given sd."""
    rng = np.random.default_rng(noise_seed)
    seeds = list(seeds)
    rows = []
    for task, means in arm_means.items():
        z = rng.standard_normal(len(seeds))
        z = (z - z.mean()) / z.std(ddof=1)
        for arm, mean in means.items():
            sd = (sds or {}).get(task, {}).get(arm, 1.0)
            for seed, zi in zip(seeds, z):
                rows.append({"task": task, "model": f"/ckpt/{arm}", "arm": arm, "seed": seed,
                             "test_score": mean + sd * zi, "status": "ok", "trivial_test_score": 0.0})
    return pd.DataFrame(rows)


def test_label_arms_maps_checkpoint_paths_back_to_arm_names():
    runs = runs_table({"BIOSSES": {a: 50.0 for a in ARMS}}, seeds=[1, 2]).drop(columns="arm")
    arm_models = {arm: f"/ckpt/{arm}" for arm in ARMS}
    labelled = findings.label_arms(runs, arm_models)
    assert list(labelled["arm"].astype(str)) == [a for a in ARMS for _ in (1, 2)]
    assert list(labelled["arm"].cat.categories) == list(ARMS)  # arm order kept for tables and plots
    assert "arm" not in runs  # a copy, the input is untouched
    with pytest.raises(ConfigError, match=r"/ckpt/random.*belong to no arm"):
        findings.label_arms(runs, {a: m for a, m in arm_models.items() if a != "random"})


def test_domain_beats_general_is_paired_over_task_and_seed():
    means = {"BIOSSES": {"released": 70, "domain": 75, "general": 71, "random": 20},
             "NCBI-disease": {"released": 80, "domain": 83, "general": 80, "random": 40}}
    claims = findings.pretraining_claims(runs_table(means))
    helps = claims[claims["kind"] == "helps (domain vs general)"].set_index("task")
    # the same per-seed noise in every arm: each pair differs by exactly 4 (BIOSSES) or 3 (NCBI), per task
    assert helps.loc["BIOSSES", "estimate"] == pytest.approx(4.0) and helps.loc["NCBI-disease", "estimate"] == pytest.approx(3.0)
    assert (helps["n"] == 10).all() and (helps["verdict"] == "holds").all()
    worse = findings.pretraining_claims(runs_table(means), domain="random", general="released")
    assert set(worse.loc[worse["kind"] == "helps (domain vs general)", "verdict"]) == {"does not hold"}


def test_spread_between_arms_larger_on_low_resource_tasks():
    wide = {"released": 60, "domain": 75, "general": 62, "random": 15}  # spread 60
    narrow = {"released": 80, "domain": 82, "general": 81, "random": 78}  # spread 4
    runs = runs_table({"BIOSSES": wide, "GAD": wide, "NCBI-disease": narrow, "ChemProt": narrow})
    c = findings.spread_gap(runs)
    assert c.estimate == pytest.approx(56.0)
    assert c.ci_low < 56 < c.ci_high and c.ci_low > 40
    assert c.p_value == pytest.approx(1 / (1 + 5000)) and c.n == 10 and c.verdict == "holds"
    # swap which tasks are low-resource: the same data now point the other way
    flipped = findings.spread_gap(runs, low_resource=["NCBI-disease", "ChemProt"])
    assert flipped.estimate == pytest.approx(-56.0) and flipped.verdict == "does not hold"


def test_spread_table_uses_only_seeds_every_arm_finished():
    runs = runs_table({"BIOSSES": {"released": 60, "domain": 70, "general": 65, "random": 10}}, seeds=[1, 2, 3, 4])
    runs.loc[(runs["arm"] == "random") & (runs["seed"] == 4), "test_score"] = np.nan  # a run with no score
    table = findings.arm_spread(findings.label_arms(runs.drop(columns="arm"), {a: f"/ckpt/{a}" for a in ARMS}))
    row = table.iloc[0]
    kept = runs[(runs["seed"] <= 3)]
    expected = kept.groupby("arm")["test_score"].mean()
    assert row["seeds"] == 3 and bool(row["low_resource"])
    assert row["spread"] == pytest.approx(expected.max() - expected.min())
    assert row["best arm"] == "domain" and row["worst arm"] == "random"
    assert list(table.columns[3:7]) == [f"mean {a}" for a in ARMS]


def test_one_kind_of_task_only_is_inconclusive_and_says_why():
    runs = runs_table({"BIOSSES": {"domain": 70, "general": 50}})
    c = findings.spread_gap(runs)
    assert c.verdict == "inconclusive" and np.isnan(c.estimate) and "high-resource" in c.effect


def test_domain_pretraining_lowers_seed_variance_per_task():
    means = {"BIOSSES": {"domain": 70, "general": 70}, "NCBI-disease": {"domain": 80, "general": 80}}
    sds = {"BIOSSES": {"domain": 1.0, "general": 8.0}, "NCBI-disease": {"domain": 2.0, "general": 2.0}}
    claims = findings.pretraining_claims(runs_table(means, sds, seeds=range(1, 21)))
    per_task = claims[claims["kind"] == "seed sd"].set_index("task")
    assert per_task.loc["BIOSSES", "estimate"] == pytest.approx(np.log(8.0), rel=1e-6)
    assert per_task.loc["BIOSSES", "verdict"] == "holds"
    assert per_task.loc["NCBI-disease", "estimate"] == pytest.approx(0.0, abs=1e-6)
    assert per_task.loc["NCBI-disease", "verdict"] == "inconclusive"
    assert set(claims["kind"]) == {"helps (domain vs general)", "spread low vs high (across tasks, by design)", "seed sd"}


def test_two_seeds_are_never_enough_for_a_verdict():
    claims = findings.pretraining_claims(runs_table({"BIOSSES": {"domain": 90, "general": 10}}, seeds=[1, 2]))
    assert set(claims["verdict"]) == {"inconclusive"}


def test_missing_arm_names_the_arms_present():
    runs = runs_table({"BIOSSES": {"released": 1.0, "general": 2.0}})
    with pytest.raises(ConfigError, match=r"no runs of \['domain'\].*'general', 'released'"):
        findings.pretraining_claims(runs)


# ----------------------------------------------------------------------------- real arm helpers


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_loss_curves_and_heldout_losses_of_real_arms(tmp_path):
    base = mlm.PretrainConfig(batch_size=2, seq_length=32, lr=5e-4, seed=0)
    arm_models = {"released": "minilm-l6",
                  "general": arms.build_arm("general", 3 * 2 * 32, base, out_dir=tmp_path, progress=False)}
    curves = pretraining.loss_curves(arm_models)
    record = json.loads((tmp_path / arms.arm_config("general", 192, base).folder_name / mlm.RESULT_FILE).read_text())
    assert list(curves["arm"]) == ["general"] * 3  # the released arm was never pretrained here
    assert list(curves["tokens"]) == [64, 128, 192] and list(curves["loss"]) == record["losses"]

    held = pretraining.heldout_losses(arm_models, corpus_names=("general",), max_blocks=2, seq_length=32)
    assert list(held["arm"]) == ["released", "general"]
    assert list(held["mlm_head"]) == ["untrained", "trained"]
    assert held["perplexity"].to_numpy() == pytest.approx(np.exp(held["loss"].to_numpy()))
    released = held.set_index("arm").loc["released", "loss"]
    assert abs(released - np.log(30522)) < 1.0  # a fresh head is about uniform over the vocabulary



def test_arm_records_are_found_from_any_working_directory(tmp_path, monkeypatch):
    """Arms inside the repo are named repo-relative (run ids equal in every clone); notebooks run
    in notebooks/, so reading an arm's pretrain.json must resolve the name, not trust the cwd."""
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path)
    base = mlm.PretrainConfig(batch_size=2, seq_length=32, lr=5e-4, seed=0)
    model = arms.build_arm("general", 3 * 2 * 32, base, out_dir=tmp_path / "arms", progress=False)
    assert not Path(model).is_absolute()
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    arm_models = {"released": "minilm-l6", "general": model}
    assert list(pretraining.loss_curves(arm_models)["tokens"]) == [64, 128, 192]
    table = pretraining.arm_table(arm_models).set_index("arm")
    assert table.loc["general", "steps"] == 3 and table.loc["general", "tokens"] == 192
    assert table.loc["general", "model"] == Path(model).name and table.loc["released", "model"] == "minilm-l6"
    assert arms.pretrain_record("minilm-l6") is None and arms.pretrain_record(str(tmp_path / "gone")) is None

def test_a_task_where_every_run_collapsed_cannot_show_a_small_spread():
    wide = {"released": 60, "domain": 75, "general": 62, "random": 15}
    runs = runs_table({"BIOSSES": wide, "NCBI-disease": {"released": 0, "domain": 0, "general": 0, "random": 0}},
                      sds={"NCBI-disease": {a: 0.0 for a in wide}})
    c = findings.spread_gap(runs)  # NCBI: all-O everywhere, score 0 = trivial -> all failed
    assert c.verdict == "inconclusive" and "collapsed: NCBI-disease" in c.effect
    assert "high-resource" in c.effect
