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
* `slimfit_compare` - SlimFit vs static freezing of as many layers vs standard: the score runs
               (`slimfit_sweep`) and peak memory per arm in a fresh process (`slimfit_memory`).
* `slimfit_rates` - the same arms' scores across freezing rates (`slimfit_rate_sweep`,
               `rate_curve`), and how SlimFit's schedule spread the steps over the layers.

`flops` holds what throughput's MFU and padding columns rest on: the training-FLOP formula of an
encoder (`flop_model`), real and padded token counts (`TokenCount`) and this machine's measured
matmul peak (`matmul_peak_flops`).

`verdicts.claims` (and `slimfit_claims`) turns the measurements into claim rows with the project's verdict rule,
`figures` plots them, `report` saves them and writes SUMMARY.md; `settings` holds the goals
and the per-profile sizes, `host` the machine description every figure carries.
"""
from .figures import memory_figure, seeds_figure, slimfit_figure, slimfit_memory_figure, throughput_figure
from .flops import CountingCollator, FlopModel, TokenCount, count_batches, flop_model, matmul_peak_flops, matmul_peaks
from .gpu import GPU_MODES, gpu_efficiency, gpu_step_time, peak_flops, training_flops_per_step
from .host import machine, machine_label
from .memory import (SavedTensorMeter, check_freeze_depth, freeze_depths, measure_memory, memory_probe,
                     memory_summary, memory_vs_freezing, parameter_table, peak_rss_mb)
from .report import benchmarks_dir, save_benchmark, write_summary
from .stored import stored
from .seeds import seeds_parallel, seeds_parallel_runs, train_parallel, train_sequential
from .settings import (FREEZE_FRACTIONS, MEMORY_GOAL, MEMORY_SETTINGS, MEMORY_TASK, SEED_SETTINGS,
                       SLIMFIT_MEMORY_CUT, SLIMFIT_MEMORY_CUT_MAX, SLIMFIT_MEMORY_SETTINGS, SLIMFIT_RATE, SLIMFIT_RATES,
                       SLIMFIT_SCORE_BUDGET, SLIMFIT_SEEDS, THROUGHPUT_GOAL, THROUGHPUT_TASKS, THROUGHPUT_TUNED_GOAL,
                       memory_settings, seed_settings, slimfit_memory_settings)
from .slimfit_rates import rate_curve, rate_figure, schedule_claims, schedule_table, slimfit_rate_sweep
from .slimfit_compare import (ARMS, arm_knobs, arm_of, matched_freeze_layers, measure_slimfit_memory, slimfit_memory,
                              slimfit_memory_summary, slimfit_probe, slimfit_sweep)
from .speed import (baseline_arm, baseline_max_length, best_precision, blurblib_arm, pad_to_max_length, throughput,
                    throughput_ratios, throughput_summary, trainer_optim, tuned_trainer_arm)
from .verdicts import claims, freeze_sweep, score_cost, slimfit_claims, slimfit_task_table

__all__ = [
    "memory_figure", "seeds_figure", "throughput_figure", "CountingCollator", "FlopModel", "TokenCount",
    "count_batches", "flop_model", "matmul_peak_flops", "matmul_peaks", "GPU_MODES", "gpu_efficiency", "gpu_step_time",
    "peak_flops", "training_flops_per_step", "machine", "machine_label", "SavedTensorMeter",
    "check_freeze_depth", "freeze_depths", "measure_memory", "memory_probe", "memory_summary",
    "memory_vs_freezing", "parameter_table", "peak_rss_mb", "benchmarks_dir", "save_benchmark",
    "write_summary", "stored", "seeds_parallel", "seeds_parallel_runs", "train_parallel", "train_sequential",
    "FREEZE_FRACTIONS", "MEMORY_GOAL", "MEMORY_SETTINGS", "MEMORY_TASK", "SEED_SETTINGS",
    "SLIMFIT_MEMORY_CUT", "SLIMFIT_SCORE_BUDGET", "THROUGHPUT_GOAL", "THROUGHPUT_TASKS", "THROUGHPUT_TUNED_GOAL",
    "memory_settings", "seed_settings", "baseline_arm", "baseline_max_length", "best_precision", "blurblib_arm",
    "pad_to_max_length", "throughput", "throughput_ratios", "throughput_summary", "trainer_optim",
    "tuned_trainer_arm", "claims", "freeze_sweep", "score_cost",
    "slimfit_figure", "slimfit_memory_figure", "SLIMFIT_MEMORY_CUT_MAX", "SLIMFIT_MEMORY_SETTINGS", "SLIMFIT_RATE", "SLIMFIT_SEEDS",
    "slimfit_memory_settings", "ARMS", "arm_knobs", "arm_of", "matched_freeze_layers", "measure_slimfit_memory",
    "slimfit_memory", "slimfit_memory_summary", "slimfit_probe", "slimfit_sweep", "SLIMFIT_RATES", "rate_curve",
    "rate_figure", "schedule_claims", "schedule_table", "slimfit_rate_sweep", "slimfit_claims", "slimfit_task_table",
]
