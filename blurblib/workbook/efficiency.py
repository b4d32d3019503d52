"""What notebook 06 trains and measures, per profile: the benchmarks' sizes, and the grids of the
freezing-depth score runs, SlimFit against static freezing and standard, the freezing-rate curve
and the >= 1,000-step runs of SlimFit as its authors built it.

The throughput sizes (tasks, repetitions, examples) live with the other notebook settings in
`profiles`; the memory, seeds-in-parallel and SlimFit sizes, which only notebook 06 uses, here.
A rehearsal's entries are the rehearsed profile's, sized down (`rehearsal`).
"""
from __future__ import annotations

import dataclasses

from ..core.errors import ConfigError
from ..encoders import models
from ..training.slimfit_arms import SLIMFIT_RATE, arm_knobs
from . import rehearsal

# Every BLURB head kind, and max lengths 128 to 512: sentence-pair regression (BIOSSES), relation
# classification (GAD 128, ChemProt 256), NER (NCBI-disease, 512), multi-label (HoC, 512).
THROUGHPUT_TASKS = ("BIOSSES", "GAD", "NCBI-disease", "ChemProt", "HoC")


FREEZE_FRACTIONS = (0.0, 0.25, 0.5, 0.75)  # k = 0, L/4, L/2, 3L/4 frozen blocks


MEMORY_TASK = "GAD"  # the memory and GPU probes need a head: binary classification, the smallest


# Memory and seed-parallel sizes per notebook profile (the throughput sizes live in profiles.py).
MEMORY_SETTINGS = {
    "smoke": dict(model_names=("minilm-l6",), seq_len=64, batch_size=4, steps=1, reps=1, fractions=(0.0, 0.5)),
    "default": dict(model_names=("minilm-l6", "bert-base-shape"), seq_len=256, batch_size=16, steps=1, reps=1),
    "full": dict(model_names=("minilm-l6", "bert-base-shape"), seq_len=256, batch_size=16, steps=2, reps=5),
    "paper": dict(model_names=("bert-base-shape", "bert-large-shape"), seq_len=256, batch_size=16, steps=2, reps=5),
}


SEED_SETTINGS = {
    "smoke": dict(ks=(2,), n_examples=4, batch_size=2, max_length=24, warmup=False),
    "default": dict(ks=(4, 8), n_examples=32, batch_size=16, max_length=64),
    "full": dict(ks=(4, 8), n_examples=128, batch_size=16, max_length=128, reps=3),
    "paper": dict(ks=(4, 8), n_examples=512, batch_size=32, max_length=128, reps=3),
}


# SlimFit vs static freezing vs standard (`slimfit_compare`): seeds of the score runs (every arm
# paired with standard over (task, seed)), and the memory probe's sizes. `steps` full-size steps
# follow SlimFit's schedule after its first cycle (on short batches), then one more has the
# lowest layer train; static arms take `steps` full-size steps after one short one.
SLIMFIT_SEEDS = {"smoke": (1,), "default": (1, 2, 3), "full": (1, 2, 3, 4, 5), "paper": (1, 2, 3, 4, 5)}


# SlimFit's score across freezing rates (`slimfit_rate_sweep`): SLIMFIT_RATE's runs are the comparison's;
# each other rate adds SlimFit and its matched static depth (0.3 and 0.6 freeze 2 and 4 of
# minilm-l6's 7 layers per step, 0.9 freezes 6).
SLIMFIT_RATES = {"smoke": (0.6,), "default": (0.3, 0.6, 0.9), "full": (0.3, 0.6, 0.9), "paper": (0.3, 0.6, 0.9)}


SLIMFIT_MEMORY_SETTINGS = {
    "smoke": dict(model_names=("minilm-l6",), seq_len=64, batch_size=4, steps=1, reps=1),
    "default": dict(model_names=("minilm-l6", "bert-base-shape"), seq_len=256, batch_size=16, steps=2, reps=3),
    "full": dict(model_names=("minilm-l6", "bert-base-shape"), seq_len=256, batch_size=16, steps=3, reps=3),
    "paper": dict(model_names=("bert-base-shape", "bert-large-shape"), seq_len=256, batch_size=16, steps=3, reps=3),
}


def for_profile(table: dict, profile, sized=None):
    """`table`'s entry for a notebook profile; a rehearsal's (`blurblib.workbook.rehearsal`) is the rehearsed
    profile's, sized down by `sized` (default `rehearsal.bench_settings`)."""
    rehearsed = rehearsal.rehearsed(profile.name)
    if rehearsed is None:
        return table[profile.name]
    return (sized or rehearsal.bench_settings)(table[rehearsed])


def memory_settings(profile) -> dict:
    """Keyword arguments of `memory_vs_freezing` for a notebook profile (device included)."""
    return {**for_profile(MEMORY_SETTINGS, profile, rehearsal.memory_settings), "device": profile.device}


def seed_settings(profile) -> dict:
    return {**for_profile(SEED_SETTINGS, profile), "device": profile.device}


def slimfit_memory_settings(profile) -> dict:
    """Keyword arguments of `slimfit_memory` for a notebook profile (device included)."""
    return {**for_profile(SLIMFIT_MEMORY_SETTINGS, profile), "device": profile.device}


def freeze_depths(num_blocks: int, fractions=FREEZE_FRACTIONS) -> list[int]:
    """k = 0, L/4, L/2, 3L/4 (rounded down), without duplicates."""
    return sorted({int(num_blocks * f) for f in fractions})


# Runs long enough for the schedule to mean something (the official ones: 3 GLUE epochs, thousands
# of steps): >= 1,000 optimizer steps at batch 16 (GAD 4,261 x 4 / 16 = 1,068; ChemProt 4,000 x 4 / 16
# = 1,000; NCBI-disease ~5,400 x 3 / 16 ~ 1,017). Data for `faithful_sweep`: not trained yet.
LONG_RUNS = {"GAD": {"train_limit": None, "epochs": 4, "batch_size": 16},
             "ChemProt": {"train_limit": 4000, "epochs": 4, "batch_size": 16},
             "NCBI-disease": {"train_limit": None, "epochs": 3, "batch_size": 16}}


LONG_RUN_SEEDS = (1, 2, 3, 4, 5)


def freeze_sweep(profile, n_tasks: int = 2):
    """The score cost of each freezing depth: the profile's model on its first two tasks, at
    the depths its memory benchmark measures, with the profile's per-task run settings."""
    fractions = memory_settings(profile).get("fractions", FREEZE_FRACTIONS)  # a rehearsal's are thinned
    depths = freeze_depths(models.get(profile.models[0]).layers, fractions)
    return profile.sweep(tasks=profile.tasks[:n_tasks], models=profile.models[:1],
                         techniques=tuple({"freeze_layers": k} for k in depths))


def slimfit_sweep(profile, seeds=None, rate: float = SLIMFIT_RATE, int8: bool = True):
    """The score runs of the comparison: the four arms on the profile's tasks and first model.

    The runs use the profile's per-task settings (`profile.sweep`), so the standard arm is the very
    runs notebooks 03 and 05 train (the results store serves them once) and every other arm differs
    from it only in its knobs. Seeds: `SLIMFIT_SEEDS` of the profile (default 1-3; every arm is
    paired with standard over (task, seed)), or `seeds`. The frozen fractions are matched as
    `matched_freeze_layers` says; its docstring is why that is the fair static baseline.
    """
    model = profile.models[0]
    return profile.sweep(models=[model], techniques=tuple(arm_knobs(model, rate, int8).values()),
                         seeds=tuple(seeds or for_profile(SLIMFIT_SEEDS, profile)))  # a rehearsal: its first seeds


def faithful_sweep(profile, seeds=LONG_RUN_SEEDS, rate: float = SLIMFIT_RATE, long_runs=None, warmup_ratio: float = 0.0):
    """SlimFit as its authors built it, its block variant, static freezing and standard, on runs of
    >= 1,000 steps (`LONG_RUNS`, the profile's other settings) over 5 seeds: the grid that decides
    SlimFit's claims. Every arm trains without warm-up, as the official scripts do (a paired
    comparison varies the technique alone). The profile's own short runs (`slimfit_sweep`) are
    the contrast."""
    model = profile.models[0]
    long_runs = long_runs or LONG_RUNS
    tasks = tuple(long_runs)
    spec = profile.sweep(tasks=tasks, models=[model], seeds=tuple(seeds),
                         techniques=tuple(arm_knobs(model, rate, int8=False, faithful=True).values()))
    per_task = {t: {**spec.per_task.get(t, {}), **long_runs[t], "warmup_ratio": warmup_ratio} for t in tasks}
    return dataclasses.replace(spec, per_task=per_task)


def slimfit_rate_sweep(profile, rates=None, seeds=None):
    """SlimFit and its matched static depth at each curve rate other than `SLIMFIT_RATE` (whose
    runs, with standard's, are the main comparison's), on the profile's tasks, first model and
    SlimFit seeds."""
    model = profile.models[0]
    asked = tuple(rates or for_profile(SLIMFIT_RATES, profile, sized=tuple))  # a rehearsal: every rate, tiny
    others = tuple(r for r in asked if r != SLIMFIT_RATE)
    if not others:
        raise ConfigError(f"the SlimFit rate curve needs a rate other than {SLIMFIT_RATE:g} (the main comparison's); "
                          f"got {asked!r}")
    knobs = [arm_knobs(model, rate, int8=False) for rate in others]
    techniques = tuple(k for arms in knobs for k in (arms["static"], arms["slimfit"]))
    return profile.sweep(models=[model], techniques=techniques,
                         seeds=tuple(seeds or for_profile(SLIMFIT_SEEDS, profile)))
