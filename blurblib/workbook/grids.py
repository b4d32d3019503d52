"""What each notebook trains, defined once: the notebook, `blurb reproduce --dry-run` and the
tests that check a committed store all plan the same runs.

A `Grid` names the notebook's groups of runs (`parts`), the runs of its recipe calibration
(their own store) and the frozen-encoder references it reads. `for_notebook(profile)` builds
the grid of any notebook without training anything; notebook 01's pretraining arms are then
named as `arms.serve_arms` would serve them (an arm the store lacks is the one this
machine would pretrain).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..core.errors import UnknownNameError
from ..data import tasks
from ..runs import arms, calibration, reference, results, sweep
from ..training.config import RunConfig, compute_matched_control, control_label
from ..training.mlm import PretrainConfig
from . import instability, profiles, rehearsal, remedies
from .efficiency import freeze_sweep, slimfit_rate_sweep, slimfit_sweep
from .profiles import Profile


@dataclass(frozen=True)
class Grid:
    """A notebook's runs by group (`parts`), its calibration runs and which groups have references."""

    parts: dict[str, list[RunConfig]]
    calibration: list[RunConfig] = field(default_factory=list)
    referenced: tuple[str, ...] = ()  # parts whose frozen-encoder references the notebook reads
    left_out: tuple[str, ...] = ()  # grid cells that do not apply, and why
    scan: list[RunConfig] = field(default_factory=list)  # the instability scan (dev only, its own store)

    def runs(self) -> list[RunConfig]:
        """Every run of the results store, each once, in the notebook's order."""
        return list({c.run_id: c for part in self.parts.values() for c in part}.values())

    def references(self) -> list[reference.ReferenceConfig]:
        """The references of the referenced parts (in the results store)."""
        return _references([c for name in self.referenced for c in self.parts[name]])

    def calibration_references(self) -> list[reference.ReferenceConfig]:
        """The references of the calibration runs (in the calibration store)."""
        return _references(self.calibration)


def _references(runs) -> list[reference.ReferenceConfig]:
    return list(dict.fromkeys(reference.ReferenceConfig.for_run(c) for c in runs))


def tour(P: Profile) -> Grid:
    return Grid(parts={})


def pretraining_arms(P: Profile, build: bool = True) -> dict[str, str]:
    """`{arm: model}` of notebook 01: arms the store serves as they are, the rest pretrained here
    (with `build=False`, only named: what a plan needs). `paper` has no arms: the hub models are."""
    X = P.settings
    if not X.arms:
        return {name: name for name in P.models}
    base = PretrainConfig(model=P.models[0], batch_size=X.pretrain_batch, seq_length=X.pretrain_seq,
                                   head_warmup_steps=X.head_warmup_steps, precision=_precision(P))

    def served(model: str) -> bool:
        return P.plan(_arm_runs(P, model)).n_to_train == 0

    return arms.serve_arms(X.arms, X.pretrain_tokens, base, P.results_dir, served, build=build)


def _precision(P: Profile) -> str:

    return profiles.task_settings(P.name, P.tasks[0], P.device)["precision"]


def _arm_runs(P: Profile, model: str) -> list[RunConfig]:
    return sweep.expand(P.sweep(models=[model]))


def pretraining(P: Profile, arm_models: dict[str, str] | None = None) -> Grid:
    """Every arm fine-tuned on the profile's tasks, and the heads contrasted on BIOSSES."""
    arm_models = arm_models if arm_models is not None else pretraining_arms(P, build=False)
    heads = sweep.expand(P.sweep(tasks=["BIOSSES"], models=[P.models[0]], hyperparameters={"head": list(P.settings.heads)}))
    return Grid(parts={"arms": sweep.expand(P.sweep(models=list(arm_models.values()))), "heads": heads},
                referenced=("heads",))


def size(P: Profile) -> Grid:
    return Grid(parts={"main": sweep.expand(P.sweep())}, referenced=("main",))


def stabilization(P: Profile) -> Grid:
    """The techniques against standard on every task (those that fit the head), the
    compute-matched controls of those that add epochs (LP-FT's), and the knob curves on one task."""
    main, left_out = sweep.applicable(sweep.expand(P.sweep()))
    X = P.settings
    knobs = [c for knob, values in X.knobs.items()
             for c in sweep.expand(P.sweep(tasks=[X.knob_task], models=X.knob_models,
                                               techniques=[{knob: v} for v in values], seeds=X.knob_seeds))]
    parts = {"main": main, "controls": list(controls_of(main).values()), "knobs": knobs}
    if X.unstable:
        parts["remedies"] = [a.config for a in remedy_configs(P)]
    return Grid(parts=parts, referenced=("main",), left_out=tuple(left_out), scan=scan_configs(P))


def controls_of(configs: list[RunConfig]) -> dict[str, RunConfig]:
    """run id -> compute-matched control, for every config that trains extra epochs (LP-FT)."""
    return {c.run_id: control for c in configs if (control := compute_matched_control(c)) is not None}


def with_controls(P: Profile, configs: list[RunConfig]) -> pd.DataFrame:
    """The stored runs of `configs` and of their compute-matched controls, each control named in
    the `technique` column by what it is (`standard +3 epochs`), so that tables, plots and
    claims show it as an arm of its own beside the technique it controls."""
    labelled = {}
    for config in configs:
        control = compute_matched_control(config)
        if control is not None:
            labelled.setdefault(control_label(config), {})[control.run_id] = control
    frames = [P.records_for(configs)]
    frames += [P.records_for(list(controls.values())).assign(technique=label) for label, controls in labelled.items()]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def remedy_configs(P: Profile) -> list[remedies.ArmConfig]:
    """The remedies grid's runs (arm, config, setting) on the profile's chosen unstable settings."""
    X = P.settings
    return remedies.configs(X.unstable, X.scan, X.remedy_seeds, _precision(P)) if X.unstable else []


def unstable_runs(profile: str) -> pd.DataFrame:
    """The stored remedies grid on notebook 03's chosen unstable settings under `profile`, each run
    with its `arm` and `setting`: notebooks 02 and 04 read their claims where fine-tuning is
    unstable from it (03 or `blurb remedies` trains it). Empty where the profile lists none."""
    P03 = profiles.get("03_stabilization", profile)
    arm_configs = remedy_configs(P03)
    return remedies.records(arm_configs, P03.results_dir, P03.any_precision) if arm_configs else pd.DataFrame()


def scan_of_both_models(profile: str) -> pd.DataFrame:
    """Notebook 03's scan at the cells it trains both encoders at (`ScanSettings.larger_cells`: the
    paper's head, the base learning rate), a row per cell and model, from the stored runs: where
    notebook 02 asks whether the larger encoder is unstable where the small one is, and where it is
    not. Empty where the profile scans no larger encoder."""
    scan = profiles.get("03_stabilization", profile).settings.scan
    if scan is None or not scan.larger_cells:
        return pd.DataFrame()
    table = scan_table(profile, lambda c: (c.task, c.train_limit) in set(scan.larger_cells)
                       and c.lr == scan.base["lr"] and c.head == instability.paper_head(c.task))
    return table.sort_values(["task", "train_limit", "recipe", "model"], ignore_index=True)


def scan_table(profile: str, keep=None) -> pd.DataFrame:
    """Notebook 03's scan under `profile` as `instability.cell_table` rows, from the stored runs
    (03 or `blurb scan` trains them), of the runs whose config `keep` accepts (all by default)."""
    P03 = profiles.get("03_stabilization", profile)
    configs = [c for c in scan_configs(P03) if keep is None or keep(c)]
    if not configs:
        return pd.DataFrame(columns=[*instability.CELL_COLUMNS, *instability.TABLE_COLUMNS])
    refs = reference.references_for(configs, P03.scan_dir(), progress=False)
    return instability.cell_table(instability.records(configs, P03.scan_dir(), refs))


def scan_configs(P: Profile) -> list[RunConfig]:
    """The instability scan of notebook 03's profile, at the precision its runs train at."""
    scan = getattr(P.settings, "scan", None)
    return [] if scan is None else instability.configs(scan, _precision(P))


def reinit(P: Profile) -> Grid:
    return Grid(parts={"main": sweep.expand(P.sweep(techniques=[{"reinit_layers": n} for n in P.settings.reinit]))},
                referenced=("main",))


def trainable_tasks(P: Profile) -> list[str]:
    """The profile's tasks that have a training split here (EBM-PICO may not)."""
    return [t for t in P.tasks if "train" in tasks.present_splits(t)]


def calibration_candidates(profile: str) -> dict[str, calibration.Candidate]:
    """The candidates a profile calibrates: `calibration.GRID`, or tiny `calibration.SMOKE` slices for
    every task; a rehearsal's are the rehearsed profile's at the rehearsal's sizes, same learning rates."""
    rehearsed = rehearsal.rehearsed(profile)
    if rehearsed:
        return {task: rehearsal.candidate(c) for task, c in calibration_candidates(rehearsed).items()}
    return {task: calibration.SMOKE for task in calibration.GRID} if profile == "smoke" else calibration.GRID


def blurb_score(P: Profile) -> Grid:
    """Every trainable task at its recipe, and the calibration runs the recipes were chosen from."""
    trainable = trainable_tasks(P)
    candidates = calibration.configs(tasks=trainable, model=P.models[0], candidates=calibration_candidates(P.name),
                                     device=P.device)
    return Grid(parts={"main": sweep.expand(P.sweep(tasks=trainable))}, calibration=candidates, referenced=("main",))


def efficiency(P: Profile) -> Grid:

    return Grid(parts={"freeze": sweep.expand(freeze_sweep(P)), "slimfit": sweep.expand(slimfit_sweep(P)),
                       "slimfit_rates": sweep.expand(slimfit_rate_sweep(P))})


GRIDS = {
    "00_blurb_tour": tour,
    "01_pretraining_sensitivity": pretraining,
    "02_size_vs_instability": size,
    "03_stabilization": stabilization,
    "04_low_resource_reinit": reinit,
    "05_blurb_score": blurb_score,
    "06_efficiency": efficiency,
}


def for_notebook(P: Profile) -> Grid:
    if P.notebook not in GRIDS:
        raise UnknownNameError(f"no grid for notebook {P.notebook!r}; grids exist for {', '.join(GRIDS)}")
    return GRIDS[P.notebook](P)


def stored_training(P: Profile) -> tuple[int, float]:
    """The runs of the notebook's grid that its stores hold, and the sum of their recorded wall times:
    what training them again from an empty store took, run by run, on the machines that trained them."""
    grid = for_notebook(P)
    parts = [(grid.runs(), P.results_dir, P.any_precision), (grid.calibration, P.calibration_dir(), P.any_precision)]
    parts += [(grid.scan, P.scan_dir(), True)] if grid.scan else []
    count, seconds = 0, 0.0
    for configs, where, any_precision in parts:
        store = results.ResultsStore(where)
        for config in configs:
            record = sweep.stored(store, config, any_precision)
            if record is not None and record.get("wall_time_s") is not None:
                count, seconds = count + 1, seconds + float(record["wall_time_s"])
    return count, seconds


@dataclass(frozen=True)
class NotebookPlan:
    """What executing a notebook would train: its runs, calibration runs and references missing."""

    notebook: str
    runs: sweep.Plan
    calibration: sweep.Plan
    references_missing: int
    references: int
    scan: sweep.Plan | None = None

    @property
    def to_train(self) -> int:
        scan = self.scan.n_to_train if self.scan is not None else 0
        return self.runs.n_to_train + self.calibration.n_to_train + self.references_missing + scan


def plan(P: Profile) -> NotebookPlan:
    """The notebook's plan against its profile's stores, computed without training anything."""
    grid = for_notebook(P)
    pairs = [(r, P.results_dir) for r in grid.references()] + [(r, P.calibration_dir()) for r in grid.calibration_references()]
    missing = sum(not reference.store_for(where).has(r.run_id) for r, where in pairs)
    calibration_plan = sweep.plan(grid.calibration, P.device, Path(P.calibration_dir()), any_precision=P.any_precision)
    scan_plan = sweep.plan(grid.scan, P.device, Path(P.scan_dir()), any_precision=True) if grid.scan else None
    return NotebookPlan(P.notebook, P.plan(grid.runs()), calibration_plan, missing, len(pairs), scan_plan)
