"""Notebook profiles as data: how big a reproduction is, from seconds to GPU days.

* `smoke`   - seconds per notebook on 2 CPU cores; what `make test` (nbval) executes.
* `default` - what `make reproduce` runs: real data, small subsamples, minutes per notebook.
* `full`    - the whole offline grid: more seeds, full training sets; hours on a CPU.
* `paper`   - hub models on a GPU with Tinn et al.'s protocol (5 seeds, 10 for
              BIOSSES/PubMedQA/BioASQ); LinkBERT's per-task hyperparameters where Tinn et al.
              publish none.

`get(notebook, "paper", rehearse=True)` is the paper profile's rehearsal (`paper-rehearsal`,
`blurblib.workbook.rehearsal`): the same models, techniques and knobs on this CPU, tiny, with the hub
models' random-weight twins and stores under outputs/rehearsal/; derived from `paper` whenever
it is asked for.

Per-task run settings (`TASK_SETTINGS`) are shared by every notebook of a profile, so the
same run (say BIOSSES, minilm-l6, standard, seed 3) is trained once and reused everywhere.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..analysis import power
from ..core import paths, precision
from ..core.errors import UnknownNameError
from ..runs import calibration, sweep
from ..runs.sweep import SweepSpec, check_backend, run_sweep
from . import instability, parameters, rehearsal, remedies

PROFILES = ("smoke", "default", "full", "paper")

# RunConfig overrides per profile and task. Offline profiles cap train/dev/test sizes and
# sequence lengths so a CPU can afford them; `paper` uses the full splits and BLURB lengths.
# `precision="auto"` becomes bf16 where the device computes it natively, else fp32.
_SMOKE = dict(epochs=1, train_limit=24, eval_limit=24, max_length=48, batch_size=8, lr=3e-4, precision="auto")

# The default profile's recipe per task: sizes from `calibration.GRID` (what the 60-minute
# budget affords), learning rate and epochs as chosen on dev by `calibration.choose` (table
# committed at outputs/tables/05_blurb_score_calibration_choice.csv; a test checks the two agree).
DEFAULT_RECIPES: dict[str, dict] = {
    "BC5-chem": dict(lr=3e-4, epochs=4), "BC5-disease": dict(lr=3e-4, epochs=4), "NCBI-disease": dict(lr=3e-4, epochs=4),
    "BC2GM": dict(lr=3e-4, epochs=4), "JNLPBA": dict(lr=3e-4, epochs=4),
    "ChemProt": dict(lr=1e-4, epochs=6), "DDI": dict(lr=5e-5, epochs=4), "GAD": dict(lr=5e-5, epochs=1),
    "BIOSSES": dict(lr=1e-4, epochs=4), "BioASQ": dict(lr=3e-4, epochs=2), "HoC": dict(lr=1e-4, epochs=8),
    # no candidate learned anything (every epoch answers "yes" to every question): the cheapest
    "PubMedQA": dict(lr=1e-4, epochs=1),
}


def _calibrated(task: str) -> dict:
    grid = calibration.GRID[task]
    return dict(train_limit=grid.train_limit, eval_limit=grid.eval_limit, max_length=grid.max_length,
                batch_size=grid.batch_size, precision="auto", **DEFAULT_RECIPES[task])


TASK_SETTINGS: dict[str, dict[str, dict]] = {
    "smoke": {"*": _SMOKE, "BIOSSES": dict(_SMOKE, epochs=2, lr=5e-5)},
    "default": {"*": _calibrated("GAD"), **{task: _calibrated(task) for task in DEFAULT_RECIPES}},
    "full": {
        "*": dict(epochs=3, batch_size=16, lr=5e-5, train_limit=5000, eval_limit=2000, max_length=256, precision="auto"),
        "BIOSSES": dict(epochs=20, batch_size=8, lr=5e-5),
        "PubMedQA": dict(epochs=5, max_length=512),
        "BioASQ": dict(epochs=5, max_length=512),
        "GAD": dict(epochs=3, max_length=128),
    },
    # LinkBERT's released fine-tuning settings (Yasunaga et al. 2022, BLURB scripts).
    "paper": {
        "*": dict(epochs=3, batch_size=32, lr=5e-5, precision="auto"),
        "BIOSSES": dict(epochs=30, batch_size=16, lr=1e-5),
        "PubMedQA": dict(epochs=30, batch_size=16, lr=2e-5),
        "BioASQ": dict(epochs=30, batch_size=16, lr=2e-5),
        "HoC": dict(epochs=20, batch_size=32, lr=4e-5),
        "ChemProt": dict(epochs=10, batch_size=32, lr=3e-5),
        "DDI": dict(epochs=10, batch_size=32, lr=3e-5),
        "GAD": dict(epochs=10, batch_size=32, lr=2e-5),
    },
}


def task_settings(profile: str, task: str, device: str = "cpu") -> dict:
    """The RunConfig fields `profile` sets for `task` on `device` (precision resolved)."""
    settings = _requested(profile, task)
    settings["precision"] = precision.resolve(settings.get("precision", "fp32"), device)
    return settings


def _requested(profile: str, task: str) -> dict:
    """The fields `profile` asks for on `task` (`"*"`: on any task), precision unresolved; a
    rehearsal's are the rehearsed profile's at `rehearsal.RUN_SIZES`."""
    rehearsed = rehearsal.rehearsed(_check(profile))
    if rehearsed:
        return rehearsal.run_settings(_requested(rehearsed, task))
    table = TASK_SETTINGS[profile]
    return {**table["*"], **table.get(task, {})}


@dataclass(frozen=True)
class TourSettings:
    """Notebook 00: how many examples per task the length histograms tokenise."""

    length_sample: int


@dataclass(frozen=True)
class PretrainingSettings:
    """Notebook 01: the MLM arms, their budget (sub-word tokens; steps = tokens / (batch * seq);
    the first `head_warmup_steps` train only the fresh MLM head), the vocabulary sample, which
    two arms the domain-vs-general claim compares, and the heads contrasted on BIOSSES."""

    arms: tuple[str, ...]
    vocab_sample: int
    domain_arm: str
    general_arm: str
    heads: tuple[str, ...]
    pretrain_tokens: int = 0
    pretrain_batch: int = 16
    pretrain_seq: int = 128
    head_warmup_steps: int = 0
    eval_blocks: int = 32


@dataclass(frozen=True)
class StabilizationSettings:
    """Notebook 03: the task whose knob curves are drawn, and the knob values besides the main grid's."""

    knob_task: str
    knobs: dict[str, tuple]
    knob_seeds: tuple[int, ...] | None = None  # None: the profile's seeds
    knob_models: tuple[str, ...] | None = None  # None: the profile's models
    scan: instability.ScanSettings | None = None  # where fine-tuning is unstable (dev only, its own store)
    unstable: tuple = ()  # remedies.Setting: the scan's unstable-but-learnable cells the remedies are tested on
    remedy_seeds: tuple[int, ...] = ()  # seeds of the remedies grid (power.seeds_for_failure: many)


@dataclass(frozen=True)
class ReinitSettings:
    """Notebook 04: how many top layers to re-initialise (0 is standard fine-tuning)."""

    reinit: tuple[int, ...]


@dataclass(frozen=True)
class EfficiencySettings:
    """Notebook 06: interleaved repetitions and examples per throughput measurement, and whether
    to measure at all (`measure=False` shows the committed `make bench` measurements instead)."""

    reps: int
    bench_examples: int
    measure: bool = True


@dataclass(frozen=True)
class Profile:
    """What one notebook runs under one profile, and where: `settings` holds the notebook's own
    typed knobs (None for notebooks without any); `backend` / `ray_address` say whether its
    sweeps run in local worker processes or as tasks on a Ray cluster."""

    notebook: str
    name: str
    models: tuple[str, ...]
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    techniques: tuple[dict, ...] = ({},)
    device: str = "cpu"
    results_dir: str = ""
    settings: object = None
    backend: str = "local"
    ray_address: str | None = None

    def sweep(self, tasks=None, models=None, techniques=None, seeds=None, hyperparameters=None) -> SweepSpec:
        """A SweepSpec over this profile's grid (or a slice of it) with the per-task settings;
        `hyperparameters` adds grid axes of other RunConfig fields (e.g. `{"head": [...]}`)."""
        tasks = tuple(tasks or self.tasks)
        return SweepSpec(
            tasks=tasks,
            models=tuple(models or self.models),
            techniques=tuple(techniques or self.techniques),
            seeds=tuple(seeds or self.seeds),
            hyperparameters=dict(hyperparameters or {}),
            per_task={t: task_settings(self.name, t, self.device) for t in tasks},
        )

    @property
    def any_precision(self) -> bool:
        """Whether this profile asks for precision `auto`: then a run stored at another precision
        (a store committed from a CPU with native bf16, read on one without) serves its twin."""
        return _requested(self.name, "*").get("precision") == "auto"

    @property
    def rehearsal(self) -> bool:
        """Whether this is a rehearsal (`blurblib.workbook.rehearsal`): twins of the hub models, tiny, on the CPU."""
        return rehearsal.rehearsed(self.name) is not None

    def run_sweep(self, configs, **kwargs):
        """`sweep.run_sweep` into this profile's store, on its device and backend. The hub models
        must be the real ones, or in a rehearsal their twins (`rehearsal.check_weights`)."""
        rehearsal.check_weights([c.model for c in configs], self.rehearsal, self.name)
        return run_sweep(configs, self.results_dir, device=self.device, backend=self.backend,
                         address=self.ray_address, any_precision=self.any_precision, **kwargs)

    def plan(self, configs) -> sweep.Plan:
        """What `run_sweep(configs)` would train, and its cost, against this profile's store."""
        return sweep.plan(configs, self.device, self.results_dir, any_precision=self.any_precision)

    def records_for(self, configs):
        """The stored records of exactly these configs, as `run_sweep` returns them."""
        return sweep.records_for(configs, self.results_dir, any_precision=self.any_precision)

    def calibration_dir(self):
        """The store of the recipe calibration runs (dev only), beside the results store."""
        return _out(self.name) / "calibration"

    def figure_dir(self):
        return _out(self.name) / "figures"

    def table_dir(self):
        return _out(self.name) / "tables"

    def scan_dir(self):
        """The store of the instability scan's runs (dev only), beside the results store."""
        return _out(self.name) / "scan"


def _out(profile: str):
    """Smoke runs write under outputs/smoke (wiped by `make test`), a rehearsal under
    outputs/rehearsal (wiped by every rehearsal), the rest under outputs/."""
    if rehearsal.rehearsed(profile):
        return rehearsal.output_dir()
    return paths.outputs_dir() / "smoke" if profile == "smoke" else paths.outputs_dir()


def _check(profile: str) -> str:
    if profile not in PROFILES and not rehearsal.rehearsed(profile):
        raise UnknownNameError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return profile


OFFLINE_SMALL, OFFLINE_LARGE = "minilm-l6", "mpnet-base"
PAPER_BASE = ("pubmedbert-base", "pubmedbert-base-fulltext", "bert-base", "biobert")
_ALL_TASKS = ("BC5-chem", "BC5-disease", "NCBI-disease", "BC2GM", "JNLPBA", "EBM-PICO",
              "ChemProt", "DDI", "GAD", "BIOSSES", "HoC", "PubMedQA", "BioASQ")

# Notebook 03's techniques: the paper's three, and LP-FT (Kumar et al. 2022), which does not
# apply to a bi-encoder (no head to probe) and is left out there with a note.
_TECHNIQUES_03 = ({}, {"freeze_layers": 3}, {"llrd_decay": 0.8}, {"reinit_layers": 1}, {"lpft_epochs": 3})

# Seeds of the default profile, from the power function: enough for 80% power on a mean
# difference of one sd of the paired differences (the smallest effect worth a claim here) at
# alpha / claims, Holm's first step over the claims of the notebook's table, and never at the
# test's floor. The claims per notebook: 01 - domain vs general and seed sd on BIOSSES, spread
# low vs high (3); 02 - gain, gain over own reference, seed sd, failure rate on BIOSSES (4);
# 03 - 4 techniques on BIOSSES (LP-FT has no head to probe there) and 5 on NCBI-disease, x 3
# kinds (27); 04 - 3 re-initialised depths x 3 kinds (9).
PLANNED_EFFECT_SD = 1.0
PLANNED_CLAIMS = {"01_pretraining_sensitivity": 3, "02_size_vs_instability": 4, "03_stabilization": 27,
                  "04_low_resource_reinit": 9}


def power_seeds(notebook: str) -> tuple[int, ...]:
    """Seeds 1..n, n from `power.seeds_for_paired` for the notebook's planned claims."""
    return tuple(range(1, power.seeds_for_paired(PLANNED_EFFECT_SD, claims=PLANNED_CLAIMS[notebook]) + 1))


def seed_plan(P: "Profile") -> str:
    """The sentence each notebook prints: its seeds, and what they can detect."""
    claims = PLANNED_CLAIMS.get(P.notebook, 1)
    return (f"{len(P.seeds)} seeds; with {claims} claims (Holm): " + power.note("paired", len(P.seeds), claims)
            + f"; 80% power for 1 sd needs {power.seeds_for_paired(PLANNED_EFFECT_SD, claims=claims)}")


# The settings the remedies are tested on: `instability.chosen_settings` on the default profile's
# committed scan (outputs/tables/03_stabilization_scan.csv; a test checks the two agree). Their
# grid trains 22 seeds x 10 arms in the default profile and `remedies.planned_seeds` (42) in `full` (`blurb remedies`).
# Both are NCBI-disease: no other task's cell is unstable and learnable (BC5-chem's learning seeds stay
# within 5 points of its strong frozen probe; GAD's of "always 1"), so the verdicts speak for one task.
UNSTABLE = (
    remedies.Setting("NCBI-disease", "token", 100, "bert-original",
                     why="the most balanced unstable-but-learnable cell of the scan"),
    remedies.Setting("NCBI-disease", "token", 200, "bert-original", lr=2e-4,
                     why="the scan's other unstable-but-learnable cell: twice the sentences, twice the learning rate"),
)
# The default profile's remedies grid: the power function's seeds for a paired mean difference of
# one sd at Holm over the table's claims, and never under 20. Failure-rate claims at that count see
# only large cures (the power column says which); the full profile's 40-odd seeds, smaller ones.
DEFAULT_REMEDY_SEEDS = tuple(range(1, max(20, power.seeds_for_paired(
    PLANNED_EFFECT_SD, claims=remedies.claims_per_setting() * len(UNSTABLE))) + 1))


# notebook -> profile -> fields of Profile. Seeds: the paper uses 5, and 10 for the small sets.
_NOTEBOOKS: dict[str, dict[str, dict]] = {
    "00_blurb_tour": {
        p: dict(models=(OFFLINE_SMALL,), tasks=_ALL_TASKS, seeds=(1,), settings=TourSettings(length_sample=200 if p == "smoke" else 2000))
        for p in PROFILES
    },
    # Pretraining budgets are sub-word tokens per MLM arm (steps = tokens / (batch * seq)); the first
    # head_warmup_steps train only the fresh MLM head. `default` (2 arms x 131k tokens, ~2 min each on
    # 2 cores) leaves the 18 new fine-tuning runs ~6 min; `full` uses ~1.2M tokens, about the whole
    # Brown corpus (the general arm's text). `paper` has no arms: it compares the hub models as they are.
    "01_pretraining_sensitivity": {
        "smoke": dict(models=(OFFLINE_SMALL,), tasks=("BIOSSES",), seeds=(1, 2),
                      settings=PretrainingSettings(arms=("released", "domain", "general", "random"), pretrain_tokens=256,
                                                   pretrain_batch=4, pretrain_seq=32, head_warmup_steps=1, eval_blocks=2,
                                                   vocab_sample=20, domain_arm="domain", general_arm="general",
                                                   heads=("cls", "biencoder"))),
        # Every seed fine-tunes the same seed-0 checkpoint of each arm. Seeds 4-12 were trained from
        # checkpoints pretrained again, whose MLM loss matched the committed record's at every step.
        "default": dict(models=(OFFLINE_SMALL,), tasks=("BIOSSES",), seeds=power_seeds("01_pretraining_sensitivity"),
                        settings=PretrainingSettings(arms=("released", "domain", "general", "random"), pretrain_tokens=131_072,
                                                     pretrain_batch=16, pretrain_seq=128, head_warmup_steps=8, eval_blocks=32,
                                                     vocab_sample=200, domain_arm="domain", general_arm="general",
                                                     heads=("cls", "mean", "biencoder"))),
        "full": dict(models=(OFFLINE_SMALL,), tasks=("BIOSSES", "GAD", "BioASQ", "PubMedQA", "NCBI-disease", "ChemProt"),
                     seeds=(1, 2, 3, 4, 5),
                     settings=PretrainingSettings(arms=("released", "domain", "general", "random"), pretrain_tokens=1_200_000,
                                                  pretrain_batch=32, pretrain_seq=128, head_warmup_steps=30, eval_blocks=64,
                                                  vocab_sample=1000, domain_arm="domain", general_arm="general",
                                                  heads=("cls", "mean", "biencoder"))),
        "paper": dict(models=PAPER_BASE, tasks=("BIOSSES", "GAD", "BioASQ", "PubMedQA", "NCBI-disease", "ChemProt"),
                      seeds=tuple(range(1, 11)), device="cuda",
                      settings=PretrainingSettings(arms=(), vocab_sample=2000, domain_arm="pubmedbert-base", general_arm="bert-base",
                                                   heads=("cls", "mean", "biencoder"))),
    },
    "02_size_vs_instability": {
        "smoke": dict(models=(OFFLINE_SMALL, OFFLINE_LARGE), tasks=("BIOSSES",), seeds=(1, 2)),
        "default": dict(models=(OFFLINE_SMALL, OFFLINE_LARGE), tasks=("BIOSSES",), seeds=power_seeds("02_size_vs_instability")),
        "full": dict(models=(OFFLINE_SMALL, OFFLINE_LARGE), tasks=("BIOSSES", "GAD", "BioASQ", "PubMedQA", "NCBI-disease"),
                     seeds=tuple(range(1, 11))),
        "paper": dict(models=("pubmedbert-base", "pubmedbert-large", "pubmedelectra-base", "pubmedelectra-large"),
                      tasks=_ALL_TASKS, seeds=tuple(range(1, 11)), device="cuda"),
    },
    "03_stabilization": {
        "smoke": dict(models=(OFFLINE_SMALL,), tasks=("BIOSSES", "GAD"), seeds=(1, 2),
                      techniques=_TECHNIQUES_03,
                      settings=StabilizationSettings(knob_task="BIOSSES", knobs={"reinit_layers": (2,)},
                                                     scan=instability.SMOKE)),
        # the re-init knob's runs are notebook 04's: the knob curve costs nothing extra
        # BIOSSES and a subsampled NER set (300 sentences): the low-resource settings where both
        # the bi-encoder and the token head learn clearly within the budget (GAD needs 1,000 examples)
        "default": dict(models=(OFFLINE_SMALL,), tasks=("BIOSSES", "NCBI-disease"), seeds=power_seeds("03_stabilization"),
                        techniques=_TECHNIQUES_03,
                        settings=StabilizationSettings(knob_task="BIOSSES", knobs={"reinit_layers": (2, 3)},
                                                       scan=instability.DEFAULT, unstable=UNSTABLE,
                                                       remedy_seeds=DEFAULT_REMEDY_SEEDS)),
        "full": dict(models=(OFFLINE_SMALL, OFFLINE_LARGE), tasks=("BIOSSES", "GAD", "BioASQ", "PubMedQA", "NCBI-disease", "ChemProt"),
                     seeds=tuple(range(1, 11)),
                     techniques=_TECHNIQUES_03,
                     settings=StabilizationSettings(knob_task="BIOSSES", knobs={"freeze_layers": (1, 2, 4, 5), "llrd_decay": (0.95, 0.9, 0.7, 0.6), "reinit_layers": (2, 3)},
                                                    scan=instability.FULL, unstable=UNSTABLE,
                                                    remedy_seeds=tuple(range(1, remedies.planned_seeds(len(UNSTABLE)) + 1)))),
        "paper": dict(models=("pubmedbert-base", "pubmedbert-large", "pubmedelectra-base"), tasks=_ALL_TASKS, seeds=tuple(range(1, 11)),
                      techniques=({}, {"freeze_layers": 6}, {"llrd_decay": 0.9}, {"reinit_layers": 1}), device="cuda",
                      settings=StabilizationSettings(knob_task="BIOSSES", knobs={"freeze_layers": (3, 9), "llrd_decay": (0.95, 0.8), "reinit_layers": (2, 3)})),
    },
    "04_low_resource_reinit": {
        "smoke": dict(models=(OFFLINE_SMALL,), tasks=("BIOSSES",), seeds=(1, 2), settings=ReinitSettings(reinit=(0, 1))),
        "default": dict(models=(OFFLINE_SMALL,), tasks=("BIOSSES",), seeds=power_seeds("04_low_resource_reinit"),
                        settings=ReinitSettings(reinit=(0, 1, 2, 3))),
        "full": dict(models=(OFFLINE_SMALL, OFFLINE_LARGE), tasks=("BIOSSES", "PubMedQA", "BioASQ", "GAD"), seeds=tuple(range(1, 11)),
                     settings=ReinitSettings(reinit=(0, 1, 2, 3))),
        "paper": dict(models=("pubmedbert-base", "pubmedbert-large"), tasks=("BIOSSES", "PubMedQA", "BioASQ", "GAD"),
                      seeds=tuple(range(1, 11)), device="cuda", settings=ReinitSettings(reinit=(0, 1, 2, 3))),
    },
    "05_blurb_score": {
        "smoke": dict(models=(OFFLINE_SMALL,), tasks=("BIOSSES", "GAD", "NCBI-disease"), seeds=(1,)),
        "default": dict(models=(OFFLINE_SMALL,), tasks=tuple(t for t in _ALL_TASKS if t != "EBM-PICO"), seeds=(1, 2)),
        "full": dict(models=(OFFLINE_SMALL,), tasks=tuple(t for t in _ALL_TASKS if t != "EBM-PICO"), seeds=(1, 2, 3, 4, 5)),
        "paper": dict(models=("pubmedbert-base",), tasks=_ALL_TASKS, seeds=(1, 2, 3, 4, 5), device="cuda"),
    },
    "06_efficiency": {
        "smoke": dict(models=(OFFLINE_SMALL,), tasks=("BIOSSES",), seeds=(1,), settings=EfficiencySettings(reps=1, bench_examples=32)),
        # the first two tasks also give the score cost of freezing: runs 03 and 05 already made
        "default": dict(models=(OFFLINE_SMALL,), tasks=("BIOSSES", "NCBI-disease", "GAD"), seeds=(1,),
                        settings=EfficiencySettings(reps=2, bench_examples=64, measure=False)),
        "full": dict(models=(OFFLINE_SMALL,), tasks=("BIOSSES", "GAD", "NCBI-disease"), seeds=(1,), settings=EfficiencySettings(reps=5, bench_examples=256)),
        "paper": dict(models=("pubmedbert-base",), tasks=("BIOSSES", "GAD", "NCBI-disease"), seeds=(1,), device="cuda",
                      settings=EfficiencySettings(reps=5, bench_examples=512)),
    },
}


def notebooks() -> list[str]:
    return list(_NOTEBOOKS)


def get(notebook: str, profile: str = "default", rehearse: bool = False, **overrides) -> Profile:
    """The Profile of `notebook` under `profile` (with `rehearse`, under its rehearsal, derived
    from it now: `blurblib.workbook.rehearsal`); non-None keyword overrides replace fields.

    This is what a notebook's `parameters` cell feeds: `profiles.get("03_stabilization",
    PROFILE, models=MODELS, tasks=TASKS, seeds=SEEDS, device=DEVICE, results_dir=RESULTS_DIR,
    backend=BACKEND, ray_address=RAY_ADDRESS, rehearse=REHEARSE)`.
    """
    if notebook not in _NOTEBOOKS:
        raise UnknownNameError(f"unknown notebook {notebook!r}; profiles exist for {', '.join(_NOTEBOOKS)}")
    profile = rehearsal.name_of(_check(profile)) if rehearse else _check(profile)
    rehearsed = rehearsal.rehearsed(profile)
    fields = dict(_NOTEBOOKS[notebook][rehearsed or profile])
    if rehearsed:
        fields = rehearsal.profile_fields(notebook, fields)
    fields.setdefault("results_dir", str(_out(profile) / ("results-paper" if profile == "paper" else "results")))
    for key, value in parameters.coerce(overrides).items():
        if value is not None:
            fields[key] = tuple(value) if isinstance(value, list) else value
    check_backend(fields.get("backend", "local"), fields.get("ray_address"))
    return Profile(notebook=notebook, name=profile, **fields)


def replace(profile: Profile, **changes) -> Profile:
    return dataclasses.replace(profile, **changes)
