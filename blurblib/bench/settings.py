"""What the benchmarks measure and against which goals, and their sizes per notebook profile.

The throughput sizes (tasks, repetitions, examples) live with the other notebook settings in
`blurblib.profiles`; the memory and seeds-in-parallel sizes, which only the benchmarks use, here.
"""
from __future__ import annotations

# Every BLURB head kind, and max lengths 128 to 512: sentence-pair regression (BIOSSES), relation
# classification (GAD 128, ChemProt 256), NER (NCBI-disease, 512), multi-label (HoC, 512).
THROUGHPUT_TASKS = ("BIOSSES", "GAD", "NCBI-disease", "ChemProt", "HoC")
FREEZE_FRACTIONS = (0.0, 0.25, 0.5, 0.75)  # k = 0, L/4, L/2, 3L/4 frozen blocks
SLIMFIT_MEMORY_CUT = 2.2  # SlimFit (Ardakani et al. 2023): average cut, up to 3.1x ...
SLIMFIT_SCORE_BUDGET = 0.4  # ... at <= 0.4 points of accuracy
SLIMFIT_MEMORY_CUT_MAX = 3.1  # ... "up to 3.1x" at the same budget
SLIMFIT_RATE = 0.9  # SlimFit's usual freezing rate: int(0.9 x 7) = 6 of minilm-l6's 7 layers frozen each step
THROUGHPUT_GOAL = 2.0  # blurblib vs (a) the HF example-script baseline
THROUGHPUT_TUNED_GOAL = 1.0  # blurblib vs (b) the Trainer with its own best options: at least as fast
MEMORY_GOAL = 1.5
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
# SlimFit's score across freezing rates (`slimfit_rates`): SLIMFIT_RATE's runs are the comparison's;
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
    """`table`'s entry for a notebook profile; a rehearsal's (`blurblib.rehearsal`) is the rehearsed
    profile's, sized down by `sized` (default `rehearsal.bench_settings`)."""
    from .. import rehearsal

    rehearsed = rehearsal.rehearsed(profile.name)
    if rehearsed is None:
        return table[profile.name]
    return (sized or rehearsal.bench_settings)(table[rehearsed])


def memory_settings(profile) -> dict:
    """Keyword arguments of `memory_vs_freezing` for a notebook profile (device included)."""
    from .. import rehearsal

    return {**for_profile(MEMORY_SETTINGS, profile, rehearsal.memory_settings), "device": profile.device}


def seed_settings(profile) -> dict:
    return {**for_profile(SEED_SETTINGS, profile), "device": profile.device}


def slimfit_memory_settings(profile) -> dict:
    """Keyword arguments of `slimfit_memory` for a notebook profile (device included)."""
    return {**for_profile(SLIMFIT_MEMORY_SETTINGS, profile), "device": profile.device}
