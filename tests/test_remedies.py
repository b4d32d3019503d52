"""The remedies grid on unstable settings: its arms, controls and claims."""
import numpy as np
import pandas as pd

from blurblib.workbook import instability, remedies

SETTING = remedies.Setting(task="GAD", head="cls", train_limit=300, recipe="stabilised")


def test_every_arm_departs_from_the_setting_only_where_it_says():
    pairs = remedies.configs([SETTING], instability.FULL, seeds=(1, 2), precision="bf16")
    assert len(pairs) == 2 * len(remedies.ARMS)
    arms = {arm: config for arm, config, _ in pairs if config.seed == 1}
    base = arms["standard"]
    assert (base.task, base.head, base.train_limit, base.lr, base.epochs) == ("GAD", "cls", 300, 1e-4, 3)
    assert arms["freeze4"].freeze_layers == 4 and arms["reinit2"].reinit_layers == 2
    assert arms["standard +3 epochs"].epochs == base.epochs + arms["lpft3"].lpft_epochs  # LP-FT's compute
    strong = arms["strong baseline"]
    assert strong.lr == base.lr / 5 and strong.epochs == 3 * base.epochs and strong.warmup_ratio == 0.1
    assert strong.adam_bias_correction and arms[remedies.LARGER_MODEL].model == "mpnet-base"
    assert len({a.config.run_id for a in pairs}) == len(pairs)
    assert {a.setting for a in pairs} == {SETTING.label}  # the strong baseline's own recipe does not rename it


def test_the_control_arms_are_the_ones_the_compute_matched_rule_names():
    from blurblib.training.config import compute_matched_control, control_label

    arms = {a.arm: a.config for a in remedies.configs([SETTING], instability.FULL, seeds=(1,), precision="bf16")}
    for arm, control in remedies.CONTROLS.items():
        assert control_label(arms[arm]) == control and compute_matched_control(arms[arm]) == arms[control]


def test_a_setting_at_another_learning_rate_is_its_own_cell_and_label():
    faster = remedies.Setting("BC5-chem", "token", 100, "bert-original", lr=2e-4)
    arms = {a.arm: a.config for a in remedies.configs([faster], instability.FULL, seeds=(1,), precision="bf16")}
    assert arms["standard"].lr == 2e-4 and arms["strong baseline"].lr == 2e-4 / 5
    assert faster.label == "BC5-chem token head, 100 examples, bert-original, lr 0.0002"
    base = remedies.Setting("BC5-chem", "token", 100, "bert-original")
    assert remedies.base_config(base, instability.FULL, 1, "bf16").lr == instability.FULL.base["lr"]
    assert "lr" not in base.label


def test_records_name_each_stored_run_by_its_arm_and_setting(tmp_path):
    import dataclasses

    from blurblib.runs import results

    pairs = remedies.configs([SETTING], instability.FULL, seeds=(1,), precision="bf16")
    store = results.ResultsStore(tmp_path)
    for arm, config, _ in pairs[-3:]:  # the last arms: the strong baseline, whose recipe differs
        store.write({"run_id": config.run_id, "config": dataclasses.asdict(config), "status": "ok", "test_score": 60.0,
                     "final_test_score": 60.0, "dev_score": 60.0})
    df = remedies.records(pairs, tmp_path)
    assert sorted(df["arm"]) == sorted(a.arm for a in pairs[-3:]) and "strong baseline" in set(df["arm"])
    assert set(df["setting"]) == {"GAD cls head, 300 examples, stabilised"}


def test_claims_separate_helps_from_stabilises_and_control_lpft():
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(1, 25):
        noise = rng.normal(0, 1)
        scores = {"standard": 50 if seed % 2 else 75, "freeze2": 74 + noise, "lpft3": 76 + noise,
                  "standard +3 epochs": 76 + noise}
        for arm in remedies.ARMS:
            score = scores.get(arm, 70 + noise)
            rows.append(dict(task="GAD", seed=seed, arm=arm, setting="GAD cls", test_score=score,
                             final_test_score=score, trivial_test_score=69.5, status="ok", model="minilm-l6"))
    table = remedies.claims(pd.DataFrame(rows))
    freeze = table[(table["arm"] == "freeze2") & (table["against"] == "standard")].set_index("kind")
    assert freeze.loc["stabilises (failure rate)", "estimate"] == 0.5  # standard fails on 12 of 24 seeds
    assert freeze.loc["stabilises (failure rate)", "verdict"] == "holds"
    lpft = table[(table["arm"] == "lpft3") & (table["against"] == "standard +3 epochs")].set_index("kind")
    assert lpft.loc["helps (mean)", "estimate"] == 0 and lpft.loc["helps (mean)", "verdict"] == "inconclusive"
    assert "p_holm" in table and table["power"].notna().all()


def test_a_profile_with_unstable_settings_plans_the_remedies_grid():
    from blurblib.workbook import grids, profiles

    P = profiles.get("03_stabilization", "smoke")
    assert "remedies" not in grids.stabilization(P).parts  # none chosen: nothing planned
    chosen = profiles.replace(P, settings=__import__("dataclasses").replace(
        P.settings, unstable=(remedies.Setting("GAD", "cls", 24, "stabilised"),), remedy_seeds=(1, 2)))
    part = grids.stabilization(chosen).parts["remedies"]
    assert len(part) == 2 * len(remedies.ARMS) and {c.train_limit for c in part} == {24}


def test_remedies_command_names_the_missing_settings(capsys):
    from blurblib import cli

    assert cli.main(["remedies", "--profile", "smoke", "--dry-run"]) != 0
    assert "lists no unstable setting" in capsys.readouterr().err


def test_remedies_command_trains_one_task_s_settings_when_asked(capsys):
    from blurblib import cli

    assert cli.main(["remedies", "--profile", "full", "--task", "NCBI-disease", "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "NCBI-disease" in plan and "GAD" not in plan
    assert cli.main(["remedies", "--profile", "full", "--task", "HoC", "--dry-run"]) != 0
    from blurblib.workbook import profiles

    tasks = ", ".join(sorted({s.task for s in profiles.UNSTABLE}))
    assert f"its settings are on {tasks}" in capsys.readouterr().err


def test_planned_seeds_come_from_the_power_function():
    from blurblib.analysis import power

    n = remedies.planned_seeds()
    assert power.failure_power(n, 0.5, 0.1, 0.05 / remedies.claims_per_setting()) >= 0.8
