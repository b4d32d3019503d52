"""Profiles as data: the default recipes are the ones the committed calibration chose."""
import pandas as pd
import pytest

from blurblib.core import paths
from blurblib.data import tasks
from blurblib.runs import calibration
from blurblib.workbook import profiles

CHOICE = paths.REPO_ROOT / "outputs" / "tables" / "05_blurb_score_calibration_choice.csv"


def test_default_recipes_are_what_the_committed_calibration_chose():
    chosen = pd.read_csv(CHOICE).set_index("task")
    assert sorted(chosen.index) == sorted(profiles.DEFAULT_RECIPES)
    for task, recipe in profiles.DEFAULT_RECIPES.items():
        row = chosen.loc[task]
        assert recipe == {"lr": pytest.approx(row["lr"]), "epochs": int(row["epoch"])}, task
        settings = profiles.task_settings("default", task)
        grid = calibration.GRID[task]
        assert (settings["train_limit"], settings["max_length"], settings["batch_size"]) == \
            (grid.train_limit, grid.max_length, grid.batch_size)


def test_every_trainable_task_has_a_calibrated_recipe():
    trainable = [t for t in tasks.names() if "train" in tasks.present_splits(t)]
    assert sorted(profiles.DEFAULT_RECIPES) == sorted(trainable) == sorted(calibration.GRID)


def test_precision_auto_is_resolved_for_the_device(monkeypatch):
    from blurblib.core import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert profiles.task_settings("default", "GAD")["precision"] == "fp32"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert profiles.task_settings("default", "GAD")["precision"] == "bf16"
    assert profiles.task_settings("paper", "GAD", device="cuda")["precision"] in ("bf16", "fp32")


def test_default_seed_counts_come_from_the_power_function():
    from blurblib.analysis import power

    for notebook in ("02_size_vs_instability", "04_low_resource_reinit"):
        P = profiles.get(notebook, "default")
        n = power.seeds_for_paired(profiles.PLANNED_EFFECT_SD, claims=profiles.PLANNED_CLAIMS[notebook])
        assert P.seeds == tuple(range(1, n + 1)) and power.floor_allows(n, 0.05 / profiles.PLANNED_CLAIMS[notebook])
        assert f"{n} seeds" in profiles.seed_plan(P)
