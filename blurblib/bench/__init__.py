"""Speed and memory measurements: what blurblib's training path costs, and what freezing saves.

Seed sweeps multiply every cost by seeds x techniques x tasks, so notebook 06 and
`blurb bench` (commands that only print and save) measure four things, one module each:

* `speed`    - `throughput`: blurblib's loop (`train.run`: dynamic padding, length-grouped
               batches, inference-mode evaluation, auto precision) against (a) the LinkBERT /
               HF example scripts' baseline (max-length padding, a plain `transformers.Trainer`,
               fp32) and (b) the same Trainer with its own best options (length grouping,
               dynamic padding, bf16 where native, fused AdamW), interleaved a, b, c.
* `memory`   - `memory_vs_freezing`: peak training memory of a fresh process for k frozen
               lower blocks, and the activation bytes autograd keeps (frozen blocks keep none).
* `seeds`    - `seeds_parallel`: K seeds trained together (`stack_module_state` + `vmap`)
               against K sequential runs: same per-seed losses, and the speed-up.
* `gpu`      - `gpu_efficiency`: bf16 autocast, SDPA and `torch.compile` as a fraction of the
               GPU's peak FLOP/s; "skipped: no CUDA device" elsewhere.
* `slimfit_compare` - SlimFit vs static freezing of as many layers vs standard: peak memory per
               arm in a fresh process (`slimfit_memory`); the score runs and the freezing-rate
               curve are grids of `workbook.efficiency`, read by `analysis.efficiency_findings`.

`flops` holds what throughput's MFU and padding columns rest on: the training-FLOP formula of an
encoder (`flop_model`), real and padded token counts (`TokenCount`) and this machine's measured
matmul peak (`matmul_peak_flops`).

`figures` plots the measurements, `report` saves them and writes SUMMARY.md, `host` describes the
machine every figure carries. What the measurements are judged against, and the claims, are
`analysis.efficiency_findings`; what notebook 06 trains and each profile's sizes, `workbook.efficiency`;
the SlimFit arms as knobs, `training.slimfit_arms`. Their names are re-exported here, so notebook
06 reads everything as `bench.<name>`. Names resolve on first use: `bench.commands` (the
`blurb bench` parsers) imports no torch.
"""

import importlib
import importlib.util

_HOMES = {
    "..analysis.efficiency_findings": (
        "MEMORY_GOAL",
        "SLIMFIT_MEMORY_CUT",
        "SLIMFIT_MEMORY_CUT_MAX",
        "SLIMFIT_SCORE_BUDGET",
        "THROUGHPUT_GOAL",
        "THROUGHPUT_TUNED_GOAL",
        "claims",
        "rate_curve",
        "schedule_claims",
        "schedule_table",
        "score_cost",
        "slimfit_claims",
        "slimfit_task_table",
        "throughput_ratios",
    ),
    "..training.slimfit_arms": (
        "ARMS",
        "FAITHFUL_KNOBS",
        "SLIMFIT_RATE",
        "arm_knobs",
        "arm_of",
        "matched_freeze_layers",
    ),
    "..workbook.efficiency": (
        "FREEZE_FRACTIONS",
        "LONG_RUNS",
        "LONG_RUN_SEEDS",
        "MEMORY_SETTINGS",
        "MEMORY_TASK",
        "SEED_SETTINGS",
        "SLIMFIT_MEMORY_SETTINGS",
        "SLIMFIT_RATES",
        "SLIMFIT_SEEDS",
        "THROUGHPUT_TASKS",
        "faithful_sweep",
        "freeze_depths",
        "freeze_sweep",
        "memory_settings",
        "seed_settings",
        "slimfit_memory_settings",
        "slimfit_rate_sweep",
        "slimfit_sweep",
    ),
    ".figures": (
        "memory_figure",
        "rate_figure",
        "seeds_figure",
        "slimfit_figure",
        "slimfit_memory_figure",
        "throughput_figure",
    ),
    ".flops": (
        "CountingCollator",
        "FlopModel",
        "TokenCount",
        "count_batches",
        "flop_model",
        "matmul_peak_flops",
        "matmul_peaks",
    ),
    ".gpu": ("GPU_MODES", "gpu_efficiency", "gpu_step_time", "peak_flops", "training_flops_per_step"),
    ".host": ("machine", "machine_label"),
    ".memory": (
        "SavedTensorMeter",
        "check_freeze_depth",
        "measure_memory",
        "memory_probe",
        "memory_summary",
        "memory_vs_freezing",
        "parameter_table",
        "peak_rss_mb",
    ),
    ".report": ("benchmarks_dir", "save_benchmark", "write_summary"),
    ".seeds": ("seeds_parallel", "seeds_parallel_runs", "train_parallel", "train_sequential"),
    ".slimfit_compare": ("measure_slimfit_memory", "slimfit_memory", "slimfit_memory_summary", "slimfit_probe"),
    ".speed": (
        "baseline_arm",
        "baseline_max_length",
        "best_precision",
        "blurblib_arm",
        "pad_to_max_length",
        "throughput",
        "throughput_summary",
        "trainer_optim",
        "tuned_trainer_arm",
    ),
    ".saved": ("stored",),
}
_WHERE = {name: home for home, names in _HOMES.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    elif importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a submodule: `bench.figures`
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_WHERE])
