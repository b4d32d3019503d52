"""The instability scan's knobs (BERTAdam, no warm-up), its cells, and its failure rule."""
import numpy as np
import pandas as pd
import pytest
import torch

from blurblib.core import machine
from blurblib.runs import cost
from blurblib.training import optim
from blurblib.training.config import RunConfig
from blurblib.workbook import instability


def _update_sizes(bias_correction: bool, steps: int) -> list[float]:
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(64))
    opt = optim.optimizer([{"params": [weight], "weight_decay": 0.0}], 1e-3, bias_correction=bias_correction)
    grads = torch.Generator().manual_seed(1)
    sizes = []
    for _ in range(steps):
        before = weight.detach().clone()
        weight.grad = torch.randn(64, generator=grads)
        opt.step()
        sizes.append(float((weight.detach() - before).abs().mean()))
    return sizes


def test_bert_adam_differs_from_adamw_only_in_the_first_steps():
    adamw, bert = _update_sizes(True, 3000), _update_sizes(False, 3000)
    # step 1: m / sqrt(v) without correction is (1 - b1) / sqrt(1 - b2) = 3.16x Adam's unit step
    assert bert[0] / adamw[0] == pytest.approx(0.1 / np.sqrt(0.001), rel=1e-3)
    assert bert[9] / adamw[9] > 3  # still far larger after 10 steps
    assert bert[-1] / adamw[-1] == pytest.approx(1.0, abs=0.05)  # the same optimiser after ~1/(1-b2) steps


def test_no_warm_up_means_the_full_learning_rate_at_step_one():
    weight = torch.nn.Parameter(torch.zeros(2))
    opt = optim.optimizer([weight], 1e-4)
    no_warmup = optim.linear_schedule(opt, 0.0, 10)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4)
    opt2 = optim.optimizer([torch.nn.Parameter(torch.zeros(2))], 1e-4)
    optim.linear_schedule(opt2, 0.1, 10)
    assert opt2.param_groups[0]["lr"] == 0.0  # warm-up starts from 0
    assert no_warmup.get_last_lr()[0] == pytest.approx(1e-4)


def test_the_inducer_is_a_late_field_that_renames_only_its_own_runs():
    plain = RunConfig(task="GAD")
    assert RunConfig(task="GAD", adam_bias_correction=True).run_id == plain.run_id
    assert RunConfig(task="GAD", adam_bias_correction=False).run_id != plain.run_id


def test_the_cli_reads_booleans_as_a_user_types_them():
    from blurblib import cli

    parser = cli.build_parser()
    args = parser.parse_args(["finetune", "--task", "GAD", "--adam-bias-correction", "false", "--seeds", "1"])
    assert cli.finetune_configs(args)[0].adam_bias_correction is False
    with pytest.raises(SystemExit):
        parser.parse_args(["finetune", "--task", "GAD", "--adam-bias-correction", "maybe"])


def test_scan_cells_cross_heads_sizes_and_recipes():
    cells = instability.cells(instability.FULL)
    gad = [c for c in cells if c.task == "GAD"]
    assert {c.head for c in gad} == {"cls", "mean"}  # the paper's head and the native one
    assert {c.train_limit for c in gad if c.head == "cls"} == {100, 300, 1000}
    assert {c.recipe for c in gad} == set(instability.RECIPES)
    assert {c.head for c in cells if c.task == "NCBI-disease"} == {"token"}
    configs = instability.configs(instability.FULL, "bf16")
    first_block = configs[:len(configs) // 2]
    assert {c.seed for c in first_block} == {1, 2, 3, 4, 5}  # every cell to 5 seeds before any to 10
    bert = [c for c in configs if not c.adam_bias_correction]
    assert bert and all(c.warmup_ratio == 0 for c in bert)
    # the extra learning rates: both recipes, the paper's head, only where asked
    other_lr = [c for c in cells if c.lr != instability.FULL.base["lr"]]
    assert {(c.task, c.train_limit, c.lr) for c in other_lr} == {
        (task, size, lr) for (task, size), lrs in instability.FULL.lrs.items() for lr in lrs}
    assert len(other_lr) == 2 * sum(map(len, instability.FULL.lrs.values())) and {c.head for c in other_lr} == {"token"}
    assert all(c.config(1, "bf16").lr == c.lr for c in other_lr)
    larger = [c for c in cells if c.model != instability.FULL.model]
    assert {(c.task, c.train_limit) for c in larger} == set(instability.FULL.larger_cells)
    assert {c.model for c in larger} == {instability.FULL.larger_model} and len(larger) == 2 * len(instability.FULL.larger_cells)
    assert all(c.lr == instability.FULL.base["lr"] and c.head == instability.paper_head(c.task) for c in larger)


def _scan_rows(final, best, trivial=50.0, status="ok"):
    rows = []
    for seed, (f, b) in enumerate(zip(final, best), 1):
        rows.append(dict(task="GAD", model="minilm-l6", head="cls", train_limit=100, lr=1e-4, recipe="stabilised", seed=seed,
                         final_dev_score=f, dev_score=b, trivial_dev_score=trivial, status=status,
                         n_train=100, batch_size=16, epochs=3, reference_dev=55.0,
                         failed_final=f <= trivial, failed_best=b <= trivial))
    return pd.DataFrame(rows)


def test_cell_table_judges_the_end_of_training_and_marks_unstable_cells():
    # four seeds: two collapse at the end after a good best-dev epoch, two beat the reference (55) by > 5
    table = instability.cell_table(_scan_rows(final=[40.0, 49.0, 61.0, 70.0], best=[58.0, 57.0, 61.0, 70.0]))
    row = table.iloc[0]
    assert row["failed"] == 0.5 and row["failed_at_best_dev"] == 0.0  # best-dev selection hides both
    assert row["steps"] == 21 and row["seeds"] == 4
    assert row["beat_reference"] == 0.5 and bool(row["unstable_but_learnable"])
    assert 0.1 < row["failed_low"] < 0.5 < row["failed_high"] < 0.9
    stable = instability.cell_table(_scan_rows(final=[60.0, 61.0, 62.0], best=[60.0, 61.0, 62.0])).iloc[0]
    assert stable["failed"] == 0 and not stable["unstable_but_learnable"]


@pytest.mark.parametrize("final", [[40.0, 49.0, 56.0, 59.0], [40.0, 49.0, 56.0, 70.0]])
def test_a_cell_is_learnable_only_where_two_seeds_clear_the_bar_beyond_dev_noise(final):
    # seeds within LEARNED_MARGIN of the reference (GAD's, on dev) or a single lucky one do not make a cell learnable
    row = instability.cell_table(_scan_rows(final=final, best=final)).iloc[0]
    assert row["failed"] == 0.5 and not row["unstable_but_learnable"]


def test_machine_kind_names_what_must_match_for_a_pair():
    info = machine.describe("cpu")
    assert info["kind"] == machine.kind(info) and info["cpu"] in info["kind"]
    assert machine.kind(None) == machine.UNRECORDED
    other = dict(info, native_bf16=not info["native_bf16"])
    assert machine.kind(other) != info["kind"]


def test_the_default_scan_is_the_cheap_cells_of_the_full_one():

    full, default = instability.configs(instability.FULL, "bf16"), instability.configs(instability.DEFAULT, "bf16")
    assert {c.run_id for c in default} < {c.run_id for c in full}
    assert all(cost.train_steps(c) <= 100 for c in default)
    assert {c.task for c in default} == {"BIOSSES", "GAD", "NCBI-disease", "BC5-chem", "ChemProt"}


def test_chosen_settings_are_the_most_balanced_one_task_at_a_time():
    def cell(task, size, failed, learnable=True, seeds=10):
        return dict(task=task, head="token", train_limit=size, lr=1e-4, recipe="bert-original", seeds=seeds,
                    failed=failed, unstable_but_learnable=learnable)

    ncbi_half, ncbi_low, bc5 = cell("NCBI-disease", 100, 0.5), cell("NCBI-disease", 200, 0.4), cell("BC5-chem", 100, 0.2)
    table = pd.DataFrame([ncbi_low, bc5, ncbi_half, cell("GAD", 100, 0.5, learnable=False), cell("DDI", 100, 0.5, seeds=5)])
    table["model"] = "minilm-l6"
    larger = dict(cell("NCBI-disease", 300, 0.5), model="mpnet-base")  # the remedies grid trains it beside the small one
    table = pd.concat([pd.DataFrame([larger]), table], ignore_index=True)
    pick = instability.chosen_settings(table)
    assert list(zip(pick["task"], pick["train_limit"])) == [("NCBI-disease", 100), ("BC5-chem", 100)]
    only_ncbi = instability.chosen_settings(table[table["task"] != "BC5-chem"])  # a second cell of the same task
    assert list(zip(only_ncbi["task"], only_ncbi["train_limit"])) == [("NCBI-disease", 100), ("NCBI-disease", 200)]


def test_the_remedies_settings_are_what_the_committed_scan_chose():
    from blurblib.core import paths
    from blurblib.workbook import profiles

    table = pd.read_csv(paths.REPO_ROOT / "outputs" / "tables" / "03_stabilization_scan.csv")
    table["train_limit"] = table["train_limit"].astype("Int64")
    chosen = instability.chosen_settings(table)
    committed = [(s.task, s.head, s.train_limit, s.recipe, s.lr or instability.DEFAULT.base["lr"]) for s in profiles.UNSTABLE]
    assert [tuple(r) for r in chosen[["task", "head", "train_limit", "recipe", "lr"]].itertuples(index=False)] == committed
    full = profiles.get("03_stabilization", "full").settings
    assert full.unstable == profiles.UNSTABLE and len(full.remedy_seeds) >= 20


def test_notebook_02_reads_both_encoders_at_the_scan_cells_they_share():
    from blurblib.workbook import grids

    both = grids.scan_of_both_models("default")
    scan = instability.DEFAULT
    assert set(zip(both["task"], both["train_limit"])) == set(scan.larger_cells)
    assert set(both["model"]) == {scan.model, scan.larger_model} and set(both["recipe"]) == set(instability.RECIPES)
    assert len(both) == 2 * 2 * len(scan.larger_cells) and (both["seeds"] == len(sum(scan.seed_blocks, ()))).all()
    assert (both["lr"] == scan.base["lr"]).all() and both["reference_dev"].notna().all()
    assert grids.scan_of_both_models("smoke").empty  # the smoke scan trains one model


def test_per_task_says_why_a_task_has_no_unstable_setting():
    def cell(task, failed, beat, learnable=False):
        return dict(task=task, seeds=10, failed=failed, beat_reference=beat, unstable_but_learnable=learnable)

    table = pd.DataFrame([cell("NCBI-disease", 0.1, 0.7, True), cell("NCBI-disease", 0.0, 1.0),
                          cell("BIOSSES", 0.3, 0.1), cell("BIOSSES", 0.0, 1.0),  # fails, or learns: never both
                          cell("GAD", 0.8, 0.1), cell("GAD", 1.0, 0.0),          # fails, never learns
                          cell("BC5-chem", 0.0, 0.6)])                           # learns, never fails
    reading = instability.per_task(table).set_index("task")
    assert reading.loc["NCBI-disease", "unstable_but_learnable"] == 1 and reading.loc["NCBI-disease", "runs"] == 20
    assert reading.loc["NCBI-disease", "reading"] == "unstable but learnable in 1 cell of 2"
    assert reading.loc["BIOSSES", "reading"] == (
        "where seeds fail (1 cell) at most 1 beat the bar; where 2 or more beat it (1 cell) none fails")
    assert reading.loc["GAD", "reading"].startswith("seeds fail in 2 cells, but no cell has 2 seeds") and "(the most: 1)" in reading.loc["GAD", "reading"]
    assert reading.loc["BC5-chem", "reading"] == "no seed fails in any cell"
    assert reading["cells_with_failures"].tolist() == [1, 1, 2, 0] and reading["cells_that_learn"].tolist() == [2, 1, 0, 1]
