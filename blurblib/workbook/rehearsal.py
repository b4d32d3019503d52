"""A rehearsal of the `paper` profile on this CPU: every notebook's paper grid, tiny, on twins.

The paper profile (hub models on a GPU, 5-10 seeds, whole splits, 30 epochs on BIOSSES) cannot
run here, yet a combination of it that does not work (a model with a head, a technique on a
24-block model, a benchmark arm) should fail in minutes on a laptop, not hours into a GPU
allocation. A rehearsal keeps everything that decides *which code runs* - the models, heads,
techniques and their knobs, learning rates, precision, benchmark arms - and changes only what
decides *how long* it runs: sizes, seeds, the device and the stores. It is derived from the
paper profile each time it is asked for (`profiles.get(notebook, "paper", rehearse=True)`), so
a change to the paper profile is rehearsed with no edit here.

* Models: each hub model is replaced by its shape-true twin (`blurblib.encoders.twins`: the real config
  and vocabulary, random weights), installed into a scratch HF cache (`hf_home()`) under its real
  hub id and read by hub id with HF_HUB_OFFLINE=1, as a cluster's compute node reads the real one.
  A twin's scores are meaningless: what a rehearsal tests is that every cell runs.
* Stores: under `output_dir()` (outputs/rehearsal/), wiped at the start of every rehearsal. A
  twin's run has the real run's id, so it must never reach the paper store; `check_weights`
  refuses a twin to any other profile and anything but a twin to a rehearsal.
* Sizes (`RUN_SIZES`, `SETTINGS_SIZES`, `BENCH_SIZES`), seeds (`SEEDS`) and the thinned grids
  (`TASKS`, `MEMORY_FRACTIONS`) are data below, each with the reason; `differences()` lists what
  a rehearsal changes, notebook by notebook, for REPORT.md.

This module holds data and small functions over plain values; it imports no other blurblib
module at import time (profiles, calibration and the benchmarks' settings all read it).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..core import paths
from ..core.errors import ConfigError
from ..encoders import models, packs

# profile -> the name its rehearsal goes by (its stores, REPORT.md and every `profile` printout).
REHEARSALS = {"paper": "paper-rehearsal"}
OUTPUT_FOLDER = "rehearsal"  # under paths.outputs_dir(); gitignored

# Every fine-tuning run: one optimizer step on four examples, four dev and four test examples,
# 16 sub-words. The learning rate, precision and everything else stay the paper's.
RUN_SIZES = dict(train_limit=4, eval_limit=4, max_length=16, epochs=1, batch_size=4)

# Seeds: the first two of the profile's. Two is the fewest for which every statistic the notebooks
# compute is defined (a seed sd, a bootstrap CI, a paired Wilcoxon test, Levene's test of the seed
# spread); with one they are NaN or skipped. A profile with one seed (06) keeps its one.
SEEDS = 2
# Thinned, one seed where the notebook's statistics run over tasks, not seeds: 05's BLURB table and
# its claim (PubMedBERT's published score against ours, paired over the 12 tasks), and the SlimFit
# comparison's seeds in 06 (its arms paired with standard over (task, seed), three tasks).
NOTEBOOK_SEEDS = {"05_blurb_score": 1}
BENCH_SEEDS = 1
# Thinned: notebook 03's knob curves (scores against k frozen blocks, LLRD decay, n re-initialised
# blocks) are plots with no test: one seed, on the first model (the paper: every seed and model).
# Every knob value still runs; re-initialising 2 and 3 blocks of the 24-block model runs in 04.
KNOB_SEEDS = 1
KNOB_MODELS = 1

# The notebooks' own settings (profiles' dataclasses), where they have these fields.
SETTINGS_SIZES = dict(length_sample=20, vocab_sample=20, pretrain_tokens=1024, pretrain_batch=4, pretrain_seq=32,
                      head_warmup_steps=1, eval_blocks=2, reps=1, bench_examples=4)
# The benchmarks' sizes (blurblib.workbook.efficiency), where a table has these keys.
BENCH_SIZES = dict(seq_len=16, batch_size=2, steps=1, reps=1, n_examples=4, max_length=16)
# Thinned: the memory benchmarks start a fresh Python process per (model, depth or arm), 10-17 CPU
# seconds each here: they measure the first of their models only (bert-base-shape; bert-large-shape
# is still built and frozen at every depth by notebook 06's parameter table), and K seeds in
# parallel runs the smallest K.
BENCH_FIRST = ("model_names", "ks")
# Thinned: notebook 05's recipe calibration tries each task's first learning rate only (the paper
# grid: two or three), one run per trainable task; the curves and the choice code run all the same.
CALIBRATION_LRS = 1
# Thinned: notebook 06's memory benchmark starts a fresh Python process per (model, depth), seconds
# each for bert-large-shape; k = 0 and L/2 (what its memory claim compares) instead of 0, L/4, L/2, 3L/4.
MEMORY_FRACTIONS = (0.0, 0.5)

# The kernels' own work (frozen references, benchmarks) on one thread, as the sweep workers already
# run: on batches of four a second thread gains little, and on a busy machine (a test suite running
# beside it) two threads per process ran matmuls 3.5x slower than one, references and benchmarks 3-4x.
ENVIRONMENT = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# Thinned grids: the tasks each notebook rehearses, of the paper's (None: all of them). The large
# twins (24 x 1024) cost seconds a run, so the notebooks that cross them with many tasks run the
# tasks that cover what the paper grid does there: BIOSSES, the low-resource set the paper's size,
# stability and re-init claims are about (its runs are shared by 02, 03 and 04). Every head kind runs
# on pubmedbert-base in 05 (every trainable task) and 06 (BIOSSES, GAD, NCBI-disease). What this
# leaves out: the models of 01 other than pubmedbert-base, the large ones and ELECTRA are rehearsed
# with the sentence-pair head only, and 01's spread claim (low- against high-resource tasks) gets
# no high-resource task, so its code takes the "undecided" branch. Notebook 05 runs every trainable task on
# pubmedbert-base and 00 tours all 13, so every task appears at least once.
TASKS: dict[str, tuple[str, ...] | None] = {
    "00_blurb_tour": None,
    "01_pretraining_sensitivity": ("BIOSSES",),  # of 6: the four models on the low-resource set (its heads part too)
    "02_size_vs_instability": ("BIOSSES",),  # of 13: the small set the size claims are about
    # of 13: the techniques' claims are about the small sets; with the token head they run in 06
    # (freezing, SlimFit) on pubmedbert-base
    "03_stabilization": ("BIOSSES",),
    "04_low_resource_reinit": ("BIOSSES",),  # of 4: the claim's task
    "05_blurb_score": None,  # every trainable task (the grid leaves out a task without a train split)
    "06_efficiency": None,  # all 3: the throughput arms and SlimFit on each head kind there
}


def name_of(profile: str) -> str:
    """The rehearsal of `profile`, or the error saying which profiles have one."""
    if profile not in REHEARSALS:
        raise ConfigError(f"profile {profile!r} has no rehearsal; --rehearse rehearses {', '.join(REHEARSALS)} "
                          "(GPU profiles) on this CPU, and the offline profiles run here as they are")
    return REHEARSALS[profile]


def rehearsed(name: str) -> str | None:
    """The profile that `name` rehearses, or None when `name` is not a rehearsal."""
    return next((profile for profile, rehearsal in REHEARSALS.items() if rehearsal == name), None)


def output_dir() -> Path:
    """Where every store, table, figure, executed notebook and REPORT.md of a rehearsal goes."""

    return paths.outputs_dir() / OUTPUT_FOLDER


def hf_home() -> Path:
    """The scratch HF_HOME holding the twins (beside the model packs: kept between rehearsals, since
    a twin is the same bytes every time; several GB, never committed)."""

    return paths.cache_dir() / "hf-twins"


# ----------------------------------------------------------------------------- deriving a rehearsal


def _smaller(value, tiny):
    """A size made tiny, never larger than it was (None is "all": the tiny size)."""
    return tiny if value is None or not isinstance(value, (int, float)) else min(value, tiny)


def _sized(values: dict, sizes: dict, only_present: bool = True) -> dict:
    return {**values, **{k: _smaller(values.get(k), v) for k, v in sizes.items() if k in values or not only_present}}


def run_settings(settings: dict) -> dict:
    """A profile's RunConfig fields for a task, sized down to `RUN_SIZES` (absent: all, made tiny)."""
    return _sized(settings, RUN_SIZES, only_present=False)


def candidate(c):
    """A recipe-calibration candidate (`calibration.Candidate`) at `RUN_SIZES`, with its first
    `CALIBRATION_LRS` learning rates."""
    names = {f.name for f in dataclasses.fields(c)}
    values = {k: getattr(c, k) for k in RUN_SIZES if k in names}
    return dataclasses.replace(c, **_sized(values, RUN_SIZES), lrs=tuple(c.lrs)[:CALIBRATION_LRS])


def bench_settings(entry):
    """A benchmark table's entry sized down: a dict of sizes gets `BENCH_SIZES` (and the first of
    each `BENCH_FIRST` list), a tuple of seeds its first `BENCH_SEEDS`."""
    if isinstance(entry, tuple):
        return entry[:BENCH_SEEDS]
    return {**_sized(entry, BENCH_SIZES), **{k: tuple(entry[k])[:1] for k in BENCH_FIRST if k in entry}}


def memory_settings(entry: dict) -> dict:
    """The memory benchmark's sizes, and its thinned freezing depths (`MEMORY_FRACTIONS`)."""
    return {**bench_settings(entry), "fractions": MEMORY_FRACTIONS}


def settings(obj):
    """A notebook's settings dataclass with its size fields at `SETTINGS_SIZES` (None stays None)."""
    if obj is None:
        return None
    values = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    return dataclasses.replace(obj, **{k: v for k, v in _sized(values, SETTINGS_SIZES).items() if k in SETTINGS_SIZES})


def profile_fields(notebook: str, fields: dict) -> dict:
    """The fields of `profiles.Profile` for a notebook's rehearsal, from the rehearsed profile's:
    the same models, techniques and knobs; its tasks thinned (`TASKS`, paper order kept), its
    first `SEEDS` seeds, tiny settings, the CPU, and stores under `output_dir()`."""
    seeds = tuple(fields["seeds"])[:NOTEBOOK_SEEDS.get(notebook, SEEDS)]
    keep = TASKS.get(notebook)
    out = {**fields, "seeds": seeds, "device": "cpu", "settings": settings(fields.get("settings"))}
    if keep is not None:
        out["tasks"] = tuple(t for t in fields["tasks"] if t in keep)
    if dataclasses.is_dataclass(out["settings"]) and "knob_seeds" in {f.name for f in dataclasses.fields(out["settings"])}:
        X = out["settings"]
        out["settings"] = dataclasses.replace(X, knob_seeds=tuple(X.knob_seeds or seeds)[:KNOB_SEEDS],
                                              knob_models=tuple(X.knob_models or out["models"])[:KNOB_MODELS])
    out.pop("results_dir", None)  # the rehearsal's own store (profiles.get)
    return out


def differences(rehearsed_profile, rehearsal) -> list[str]:
    """What the rehearsal of one notebook changes, one line per field: the paper value -> the
    rehearsal's (models, techniques and knobs are never among them)."""
    lines = []
    for field in ("tasks", "seeds", "device"):
        before, after = getattr(rehearsed_profile, field), getattr(rehearsal, field)
        if before != after:
            lines.append(f"{field}: {_shown(before)} -> {_shown(after)}")
    if rehearsed_profile.settings is not None:
        for f in dataclasses.fields(rehearsed_profile.settings):
            before, after = getattr(rehearsed_profile.settings, f.name), getattr(rehearsal.settings, f.name)
            if before != after:
                lines.append(f"{f.name}: {_shown(before)} -> {_shown(after)}")
    return lines


def _shown(value) -> str:
    if value is None:
        return "the profile's"
    if isinstance(value, tuple) and len(value) > 4 and all(isinstance(v, int) for v in value):
        return f"{len(value)} ({value[0]}-{value[-1]})"
    if isinstance(value, tuple):
        return ", ".join(map(str, value)) or "none"
    return str(value)


# ----------------------------------------------------------------------------- which weights


def check_weights(model_names, rehearsing: bool, profile: str = "") -> None:
    """A rehearsal fine-tunes twins of the hub models only (read offline), and no other profile
    ever fine-tunes a twin: a twin's run carries the real run's id, and in the paper store it
    would pass for the checkpoint's."""

    for name in sorted(set(model_names)):
        spec = models.MODELS.get(name)
        if spec is None or spec.source != "hub":
            continue
        twin = packs.cached_twin(spec.hub_id) is not None
        if rehearsing and not (twin and packs.offline_by_env()):
            raise ConfigError(
                f"the rehearsal fine-tunes shape-true twins of the hub models, read offline; {name} ({spec.hub_id}) is "
                f"{'not a twin' if not twin else 'a twin, but HF_HUB_OFFLINE is not set'} in the HF cache "
                f"{packs.hub_cache_dir()}. Run `blurb reproduce --profile paper --rehearse` (it installs the twins into "
                f"{hf_home()} and points HF_HOME there), or do both yourself: blurblib.encoders.twins.install_all(HOME, "
                "names=[...]) and `with blurblib.encoders.packs.using_hf_home(HOME): ...`")
        if not rehearsing and twin:
            raise ConfigError(
                f"the HF cache {packs.hub_cache_dir()} holds a shape-true twin of {spec.hub_id} (random weights), and "
                f"profile {profile!r} would store its runs under the real model's run ids. Point HF_HOME at the cache "
                "with the real checkpoints, or rehearse (--rehearse: its own store under outputs/rehearsal/)")


def hub_models(profiles_of_notebooks) -> list[str]:
    """The hub models the given notebook profiles fine-tune or load: the twins a rehearsal installs."""

    names = {m for P in profiles_of_notebooks for m in P.models}
    return sorted(n for n in names if n in models.MODELS and models.MODELS[n].source == "hub")
