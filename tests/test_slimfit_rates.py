"""SlimFit's rate curve: its grid, the curve table and how the schedule spread the steps."""
import numpy as np
import pandas as pd
import pytest

from blurblib import bench
from blurblib.core.errors import ConfigError
from blurblib.workbook import grids, profiles


def test_the_curve_adds_each_other_rate_and_its_matched_static_depth():
    P = profiles.get("06_efficiency", "default")
    configs = grids.efficiency(P).parts["slimfit_rates"]
    assert {c.technique for c in configs} == {"slimfit0.3", "freeze1", "slimfit0.6", "freeze3"}  # 0.9: the comparison's
    assert len(configs) == len(P.tasks) * 4 * 3 and {c.seed for c in configs} == {1, 2, 3}
    main = {c.run_id: c for c in grids.efficiency(P).parts["slimfit"]}
    assert not set(main) & {c.run_id for c in configs}  # nothing trained twice
    shared = {(c.task, c.seed) for c in configs}
    assert shared == {(c.task, c.seed) for c in main.values()}  # the same tasks and seeds, so standard pairs with them
    smoke = grids.efficiency(profiles.get("06_efficiency", "smoke")).parts["slimfit_rates"]
    assert {c.technique for c in smoke} == {"slimfit0.6", "freeze3"}
    rehearsal = grids.efficiency(profiles.get("06_efficiency", "paper", rehearse=True)).parts["slimfit_rates"]
    # BERT-base: 13 layers, int(0.3 x 13) = 3 and int(0.6 x 13) = 7 frozen per step
    assert {c.technique for c in rehearsal} == {"slimfit0.3", "freeze2", "slimfit0.6", "freeze6"}
    with pytest.raises(ConfigError, match=r"needs a rate other than 0.9 .*; got \(0.9,\)"):
        bench.slimfit_rate_sweep(P, rates=(0.9,))


def _runs(scores: dict[tuple[str, float], float], seeds=(1, 2, 3)):
    """Records of minilm-l6 on one task: (arm, frozen fraction) -> mean score, seed noise +-0.5."""
    knobs = {("standard", 0): {}, ("static", 2 / 7): {"freeze_layers": 1}, ("slimfit", 2 / 7): {"slimfit_rate": 0.3},
             ("static", 6 / 7): {"freeze_layers": 5}, ("slimfit", 6 / 7): {"slimfit_rate": 0.9},
             ("slimfit-int8", 6 / 7): {"slimfit_rate": 0.9, "slimfit_quant_bits": 8}}
    rows = []
    for key, knob in knobs.items():
        for seed in seeds:
            rows.append({"task": "T", "model": "minilm-l6", "seed": seed, "freeze_layers": 0, "slimfit_rate": 0.0,
                         "slimfit_quant_bits": 0, **knob, "test_score": scores[key] + (seed - 2) * 0.5})
    return pd.DataFrame(rows)


def test_rate_curve_pairs_each_arm_with_standard_and_leaves_out_int8():
    scores = {("standard", 0): 50.0, ("static", 2 / 7): 45.0, ("slimfit", 2 / 7): 51.0, ("static", 6 / 7): 26.0,
              ("slimfit", 6 / 7): 5.0, ("slimfit-int8", 6 / 7): 4.0}
    curve = bench.rate_curve(_runs(scores)).set_index(["arm", "frozen_fraction"])
    assert "slimfit-int8" not in curve.index.get_level_values("arm")
    assert list(curve.index) == [("standard", 0.0), ("static", 0.286), ("slimfit", 0.286), ("static", 0.857),
                                 ("slimfit", 0.857)]
    assert curve.loc[("slimfit", 0.286), "change_vs_standard"] == pytest.approx(1.0)
    assert curve.loc[("static", 0.857), "change_vs_standard"] == pytest.approx(-24.0)
    assert curve.loc[("slimfit", 0.857), "knob"] == "rate 0.9" and curve.loc[("static", 0.286), "knob"] == "freeze_layers 1"
    assert curve.loc[("standard", 0.0), "sd"] == pytest.approx(0.5) and (curve["seeds"] == 3).all()


def test_schedule_table_counts_the_steps_each_layer_trained():
    share = {"embeddings": 0.75, **{f"block_{i}": 0.5 for i in range(6)}}  # 4 of 8 steps: 3.5 layers frozen per step
    runs = pd.DataFrame([{"task": "T", "model": "minilm-l6", "seed": s, "slimfit_rate": 0.5, "freeze_layers": 0,
                          "slimfit_quant_bits": 0, "slimfit_steps": 8, "slimfit_frozen_share": dict(share)}
                         for s in (1, 2)] + [{"task": "T", "model": "minilm-l6", "seed": 1, "slimfit_rate": 0.0,
                                              "freeze_layers": 0, "slimfit_quant_bits": 0, "slimfit_steps": np.nan,
                                              "slimfit_frozen_share": np.nan}])
    table = bench.schedule_table(runs)
    assert list(table.columns) == ["task", "rate", "steps", "embeddings", *(f"block_{i}" for i in range(6))]
    row = table.iloc[0]
    assert len(table) == 1 and row["steps"] == 8 and row["embeddings"] == 2 and row["block_5"] == 4


def test_rate_figure_has_a_panel_per_task():
    scores = {("standard", 0): 50.0, ("static", 2 / 7): 45.0, ("slimfit", 2 / 7): 51.0, ("static", 6 / 7): 26.0,
              ("slimfit", 6 / 7): 5.0, ("slimfit-int8", 6 / 7): 4.0}
    two = pd.concat([_runs(scores), _runs(scores).assign(task="U")], ignore_index=True)
    fig = bench.rate_figure(bench.rate_curve(two))
    assert [ax.get_title() for ax in fig.axes] == ["T", "U"]
    lines = fig.axes[0].get_lines()
    assert any(list(line.get_xdata()) == pytest.approx([0, 2 / 7, 6 / 7], abs=1e-3) for line in lines)


def test_schedule_claims_pair_slimfit_with_static_over_rates_and_seeds():
    better = {("standard", 0): 50.0, ("static", 2 / 7): 45.0, ("slimfit", 2 / 7): 47.0, ("static", 6 / 7): 26.0,
              ("slimfit", 6 / 7): 30.0, ("slimfit-int8", 6 / 7): 0.0}
    worse = {**better, ("slimfit", 2 / 7): 44.0, ("slimfit", 6 / 7): 20.0}
    seeds = (1, 2, 3, 4, 5)
    runs = pd.concat([_runs(better, seeds), _runs(worse, seeds).assign(task="U")], ignore_index=True)
    table = bench.schedule_claims(runs)
    table.index = ["T", "U", "all"]
    assert list(table["n"]) == [10, 10, 20]  # 2 fractions x 5 seeds per task; int8 is no curve arm
    assert table.loc["T", "estimate"] == pytest.approx(3.0) and table.loc["T", "verdict"] == "holds"
    assert table.loc["U", "estimate"] == pytest.approx(-3.5) and table.loc["U", "verdict"] == "does not hold"
    assert table.loc["all", "estimate"] == pytest.approx(-0.25) and table.loc["all", "verdict"] == "inconclusive"
    assert "(rate, seed) pairs" in table.loc["T", "observed"] and "(T;" in table.loc["T", "claim"]
