"""`blurb reproduce --profile paper --dry-run`: the cost of the paper's runs, before a GPU is spent."""
import re

from blurblib import cli
from blurblib.runs import sweep
from blurblib.runs.cost import run_flops, split_stats, train_steps
from blurblib.workbook import dryrun, profiles


def test_the_paper_dry_run_prints_gpu_hours_per_notebook_and_size(capsys):
    assert cli.main(["reproduce", "--profile", "paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "nothing is trained" in out and "20% of an H100" in out and "per optimizer step" in out
    for notebook in profiles.notebooks():
        assert notebook in out
    sizes = out.split("by model size:")[1]
    assert re.search(r"^base\s+\d+", sizes, re.M) and re.search(r"^large\s+\d+", sizes, re.M)
    total = re.search(r"total: (\d+) runs to train, ([\d.]+) GPU-hours; with 8-seed packing ([\d.]+) GPU-hours", out)
    runs, hours, packed = int(total[1]), float(total[2]), float(total[3])
    assert runs > 1000 and 0 < packed < hours  # packing saves the fixed costs, never the FLOPs


def test_packing_keeps_the_flops_and_pays_fixed_costs_once_per_pack():
    P = profiles.get("04_low_resource_reinit", "paper")
    configs = [c for c in sweep.expand(P.sweep(tasks=["BIOSSES"], techniques=[{}])) if c.model == "pubmedbert-base"]
    assert len(configs) == 10  # ten seeds of one config
    cost = dryrun.cost_model("cuda")
    flops_s = sum(run_flops(c) for c in configs) / cost.flops_per_s
    fixed = train_steps(configs[0]) * cost.step_overhead_s + cost.run_overhead_s
    assert abs(sum(dryrun._seconds(c, cost) for c in configs) - (flops_s + 10 * fixed)) < 1e-6
    assert abs(dryrun._packed_seconds(configs, cost) - (flops_s + 2 * fixed)) < 1e-6  # 10 seeds: 2 packs of 8


def test_a_split_missing_here_is_costed_from_the_published_counts():
    stats = split_stats("EBM-PICO")
    assert stats["train"][0] > stats["dev"][0] > 0  # estimated: the train split is not in this copy of BLURB
