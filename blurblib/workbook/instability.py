"""Where fine-tuning is unstable: a scan over the settings the literature blames, on dev only.

Tinn et al.'s remedies (freezing, layer-wise decay, re-initialisation) are cures for
*instability*: the same recipe with another seed giving a very different model, sometimes a
collapsed one. They can only be tested where instability exists, so this module first finds
it. The scan crosses what Mosbach et al. (2021), Zhang et al. (2021) and Dodge et al. (2020)
name as causes - few optimisation steps (training-set size), a head trained from scratch in
the paper's [CLS] formulation (against the encoder's native head), and the original BERT
optimiser (Adam without bias correction, no warm-up) against today's stabilised recipe - on
six BLURB tasks, several seeds per cell. The test split is never read.

A run *fails* when its dev score at the end of training is at or below the best constant
prediction on dev (`metrics.trivial_score`), or when it predicts the same thing everywhere:
failure is judged on the final model, not the best dev epoch, which would hide a late collapse.
A cell is *unstable but learnable* when some seeds fail and at least two beat the frozen
encoder's dev-tuned linear probe (`reference`, or the best constant where the probe is below it)
by a margin larger than dev-set sampling noise (`LEARNED_MARGIN`): there a remedy has something
to remove, and something to keep.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..analysis import stats
from ..data import tasks
from ..encoders import models
from ..runs import cost, reference, sweep
from ..training.config import RunConfig

# The two optimiser recipes: today's defaults, and BERT's original (BERTAdam, no warm-up).
RECIPES = {
    "stabilised": dict(adam_bias_correction=True, warmup_ratio=0.1),
    "bert-original": dict(adam_bias_correction=False, warmup_ratio=0.0),
}


@dataclass(frozen=True)
class ScanSettings:
    """What the scan crosses: tasks, training sizes per task (in running order), the fields
    every cell shares (`base`) and per-task departures, the seed blocks, the model."""

    tasks: tuple[str, ...]
    sizes: dict
    base: dict
    per_task: dict = dataclasses.field(default_factory=dict)
    seed_blocks: tuple[tuple[int, ...], ...] = ((1, 2, 3, 4, 5), (6, 7, 8, 9, 10))
    model: str = "minilm-l6"
    max_steps: int | None = None  # only cells of at most this many optimisation steps (a cheaper scan)
    # (task, size) -> learning rates crossed beside the base one there: a larger step may escape
    # the all-"O" plateau sooner or diverge, a smaller one stay on it.
    lrs: dict = dataclasses.field(default_factory=dict)
    # (task, size) cells the larger encoder is scanned at too (the paper's head, both recipes, base lr):
    # is it unstable where the small one is, and where it is not?
    larger_model: str = "mpnet-base"
    larger_cells: tuple = ()


# The whole scan (the `full` profile's). Below these sizes the calibration found no learning rate that
# learns at all (DDI from 300 sentences, HoC from 200 abstracts: every seed stays at "no
# interaction" / "no hallmark"), which is failure without instability. BIOSSES (64 training
# pairs) takes all of them, more epochs and smaller batches, so that its 80 steps compare with
# the others' 21-189.
FULL = ScanSettings(
    tasks=("BIOSSES", "GAD", "NCBI-disease", "BC5-chem", "ChemProt", "DDI", "HoC"),
    # NER at 200 sentences: between 100 (the stabilised recipe fails every seed) and 300 (none fails)
    sizes={"BIOSSES": (None,), "GAD": (300, 100, 1000), "NCBI-disease": (300, 100, 1000, 200), "BC5-chem": (100, 300, 200),
           "ChemProt": (300, 1000), "DDI": (1000,), "HoC": (1000,)},
    base=dict(lr=1e-4, epochs=3, batch_size=16, max_length=128, eval_limit=200),
    per_task={"BIOSSES": dict(epochs=10, batch_size=8, eval_limit=None)},
    # the NER tasks where seeds spread widest at the base lr: both ways at 100 sentences, and the
    # larger step at 200, where the base lr learns on every seed
    lrs={("NCBI-disease", 100): (2e-4, 5e-5), ("BC5-chem", 100): (2e-4, 5e-5),
         ("NCBI-disease", 200): (2e-4,), ("BC5-chem", 200): (2e-4,)},
    # the larger encoder on NCBI-disease at 100 sentences (the small one unstable) and 200 (where BERTAdam learns on every seed)
    larger_cells=(("NCBI-disease", 100), ("NCBI-disease", 200)),
)
# The default profile's: its cells of at most 100 steps (100 and 300 examples, BIOSSES), the
# ones a 2-core CPU trains to 10 seeds in about an hour; `full` adds 1,000 examples, DDI and HoC,
# and the larger encoder at 200 sentences.
DEFAULT = dataclasses.replace(FULL, max_steps=100, larger_cells=FULL.larger_cells[:1])  # the larger encoder: 100 sentences
# The same machinery on slices small enough for the test suite.
SMOKE = ScanSettings(tasks=("GAD",), sizes={"GAD": (24,)}, seed_blocks=((1, 2),),
                     base=dict(lr=1e-4, epochs=1, batch_size=8, max_length=48, eval_limit=24))


@dataclass(frozen=True)
class Cell:
    """One setting of the scan: everything but the seed."""

    task: str
    model: str
    head: str
    train_limit: int | None
    recipe: str
    fields: tuple = ()  # the shared and per-task RunConfig fields, as sorted (name, value) pairs

    @property
    def lr(self) -> float:
        return dict(self.fields)["lr"]

    def config(self, seed: int, precision: str) -> RunConfig:
        fields = {**dict(self.fields), "train_limit": self.train_limit, **RECIPES[self.recipe], "precision": precision}
        return RunConfig(task=self.task, model=self.model, head=self.head, seed=seed, **fields)


def paper_head(task: str) -> str:
    """The paper's formulation: the [CLS] head, the token head for NER."""

    return "token" if tasks.get(task).head_kind == "token_classification" else "cls"


def cells(settings: ScanSettings = FULL) -> list[Cell]:
    """The scan's cells in running order: the paper's head at each task's sizes (the first size
    of every task, then the second, ...), the extra learning rates, the larger encoder's cells,
    then the native head at each task's first size as the contrast, where it differs from the paper's."""
    X = settings

    def cell(task, head, size, recipe, model=X.model, **extra):
        fields = tuple(sorted({**X.base, **X.per_task.get(task, {}), **extra}.items()))
        return Cell(task, model, head, size, recipe, fields)

    out = []
    for rank in range(max(len(X.sizes[t]) for t in X.tasks)):
        for task in X.tasks:
            if rank < len(X.sizes[task]):
                out += [cell(task, paper_head(task), X.sizes[task][rank], recipe) for recipe in RECIPES]
    for (task, size), lrs in X.lrs.items():
        if task in X.tasks:
            out += [cell(task, paper_head(task), size, recipe, lr=lr) for lr in lrs for recipe in RECIPES]
    for task, size in X.larger_cells:
        if task in X.tasks:
            out += [cell(task, paper_head(task), size, recipe, model=X.larger_model) for recipe in RECIPES]
    for task in X.tasks:
        native = models.native_head(X.model, task)
        if native != paper_head(task):
            out += [cell(task, native, X.sizes[task][0], recipe) for recipe in RECIPES]
    return out


def configs(settings: ScanSettings = FULL, precision: str = "bf16") -> list[RunConfig]:
    """Every run of the scan, seed block by seed block, cheap cells first within a block: a scan
    stopped half-way has its cells at the same depth, not some complete and others empty."""
    kept = [c for c in cells(settings)
            if settings.max_steps is None or cost.train_steps(c.config(1, precision)) <= settings.max_steps]
    cheap_first = sorted(kept, key=lambda cell: cost.estimated_seconds(cell.config(1, precision)))
    return [cell.config(seed, precision) for block in settings.seed_blocks for cell in cheap_first for seed in block]


def run(configs_: list[RunConfig], store, workers: int | None = None, progress: bool = True,
        any_precision: bool = True) -> pd.DataFrame:
    """Train what is missing (resumable), dev only, and the frozen references the cells must
    beat; return the runs with their cell and verdicts (`records`). A run stored at the other
    precision stands in (`any_precision`): the committed scan serves a CPU without native bf16."""
    sweep.run_sweep(configs_, store, workers=workers, progress=progress, score_test=False, any_precision=any_precision)
    refs = reference.references_for(configs_, store, progress=progress)
    return records(configs_, store, refs, any_precision)


# ----------------------------------------------------------------------------- analysis

# A seed "learned" when its final dev score beats the cell's bar (reference or best constant) by
# more than the sampling noise of a 200-example dev set (about 3.5 points of F1 for a balanced
# binary task, one standard error): GAD's seeds 0.3-4 points above "always 1" on dev all fell
# below it on test. A cell needs two such seeds: one can be luck.
LEARNED_MARGIN = 5.0
LEARNED_SEEDS = 2


CELL_COLUMNS = ["task", "model", "head", "train_limit", "lr", "recipe"]


def recipe_of(row) -> str:
    for name, knobs in RECIPES.items():
        if all(row[k] == v for k, v in knobs.items()):
            return name
    return "other"


def records(configs_: list[RunConfig], store, refs: pd.DataFrame | None = None,
            any_precision: bool = True) -> pd.DataFrame:
    """The scan's stored runs with their cell, the end-of-training verdict and the reference."""
    df = sweep.records_for(configs_, store, any_precision=any_precision)
    if df.empty:
        return df
    df["recipe"] = [recipe_of(r) for _, r in df.iterrows()]
    df["train_limit"] = df["train_limit"].astype("Int64")
    final = pd.to_numeric(df["final_dev_score"], errors="coerce")
    degenerate = df["dev_degenerate"].map(lambda d: bool(d[-1]) if isinstance(d, list) and d else True)
    df["failed_final"] = (df["status"] != "ok") | final.isna() | (final <= df["trivial_dev_score"] + 1e-9) | degenerate
    best = pd.to_numeric(df["dev_score"], errors="coerce")
    df["failed_best"] = (df["status"] != "ok") | best.isna() | (best <= df["trivial_dev_score"] + 1e-9)
    if refs is not None and not refs.empty:
        by_data = {_data_key(r): r["dev_score"] for _, r in refs.iterrows()}
        df["reference_dev"] = [by_data.get(_data_key(r), np.nan) for _, r in df.iterrows()]
    return df


REFERENCE_KEY = ("task", "model", "train_limit", "eval_limit", "max_length")


def _data_key(row) -> tuple:
    """What a frozen reference shares with a run: the model and the data it saw (None for "all")."""
    def plain(value):
        return None if value is None or pd.isna(value) else (int(value) if not isinstance(value, str) else value)
    return tuple(plain(row[k]) for k in REFERENCE_KEY)


TABLE_COLUMNS = ["steps", "seeds", "failed", "failed_low", "failed_high", "failed_at_best_dev", "final_dev_mean",
                 "final_dev_sd", "trivial_dev", "reference_dev", "beat_reference", "unstable_but_learnable"]


def cell_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per cell: seeds, failure rate at the end of training with its Wilson interval, the same
    judged at the best dev epoch (what best-dev selection shows), final dev mean and seed sd,
    the frozen reference, the share of seeds above it by `LEARNED_MARGIN` (above the best constant,
    where the probe is below that), and whether the cell is unstable but learnable (some seeds
    fail, at least `LEARNED_SEEDS` beat the bar)."""
    rows = []
    if df.empty:  # a profile without a scan (the paper's)
        return pd.DataFrame(columns=[*CELL_COLUMNS, *TABLE_COLUMNS])
    for key, g in df.groupby(CELL_COLUMNS, sort=False, dropna=False):
        final = pd.to_numeric(g["final_dev_score"], errors="coerce")
        n, failures = len(g), int(g["failed_final"].sum())
        low, high = stats.wilson_interval(failures, n)
        ref = float(g["reference_dev"].iloc[0]) if "reference_dev" in g else np.nan
        bar = max(ref, float(g["trivial_dev_score"].iloc[0]))  # a probe can sit below the best constant
        beaten = int((final > bar + LEARNED_MARGIN).sum()) if np.isfinite(ref) else 0
        beat = beaten / n if np.isfinite(ref) else np.nan
        rows.append({**dict(zip(CELL_COLUMNS, key)), "steps": _steps(g.iloc[0]), "seeds": n,
                     "failed": failures / n, "failed_low": low, "failed_high": high,
                     "failed_at_best_dev": float(g["failed_best"].mean()),
                     "final_dev_mean": float(final.mean()), "final_dev_sd": float(final.std(ddof=1)) if n > 1 else np.nan,
                     "trivial_dev": float(g["trivial_dev_score"].iloc[0]), "reference_dev": ref, "beat_reference": beat,
                     "unstable_but_learnable": bool(0 < failures < n and beaten >= LEARNED_SEEDS)})
    return pd.DataFrame(rows)


def per_task(table: pd.DataFrame) -> pd.DataFrame:
    """Per task, what the scan found: its cells and runs, how many cells are unstable but
    learnable, and where none is, why (`reading`): the cells where seeds fail never had
    `LEARNED_SEEDS` seeds above the bar, or the cells that learn never had a seed fail."""
    rows = []
    for task, cells in table.groupby("task", sort=False):
        above = (cells["beat_reference"].fillna(0) * cells["seeds"]).round().astype(int)
        failing, learning = cells[cells["failed"] > 0], cells[above >= LEARNED_SEEDS]
        most_above = int(above[failing.index].max()) if len(failing) else None
        found = int(cells["unstable_but_learnable"].sum())
        if found:
            reading = f"unstable but learnable in {_cells(found)} of {len(cells)}"
        elif failing.empty:
            reading = "no seed fails in any cell"
        elif learning.empty:
            reading = (f"seeds fail in {_cells(len(failing))}, but no cell has {LEARNED_SEEDS} seeds "
                       f"{LEARNED_MARGIN:g} points above the bar (the most: {most_above})")
        else:
            reading = (f"where seeds fail ({_cells(len(failing))}) at most {most_above} beat the bar; "
                       f"where {LEARNED_SEEDS} or more beat it ({_cells(len(learning))}) none fails")
        rows.append({"task": task, "cells": len(cells), "runs": int(cells["seeds"].sum()),
                     "unstable_but_learnable": found, "cells_with_failures": len(failing),
                     "cells_that_learn": len(learning), "reading": reading})
    return pd.DataFrame(rows, columns=["task", "cells", "runs", "unstable_but_learnable", "cells_with_failures",
                                       "cells_that_learn", "reading"])


def _cells(n: int) -> str:
    return f"{n} cell" if n == 1 else f"{n} cells"


def _steps(row) -> int:
    """Optimisation steps of a run: batches per epoch times epochs."""
    return int(np.ceil(row["n_train"] / row["batch_size"]) * row["epochs"])


def chosen_settings(table: pd.DataFrame, k: int = 2, min_seeds: int = 10, model: str = FULL.model) -> pd.DataFrame:
    """The settings the remedies are tested on: the `k` most balanced unstable-but-learnable
    cells of the scan's model (the remedies grid trains the larger one beside it), each task's
    best before any task's second (a remedy's verdict then speaks for more than one task where
    the scan found instability in more than one)."""
    picked = unstable_settings(table[table["model"] == model], min_seeds)
    firsts = ~picked.duplicated("task")
    return pd.concat([picked[firsts], picked[~firsts]]).head(k)


def unstable_settings(table: pd.DataFrame, min_seeds: int = 10) -> pd.DataFrame:
    """The cells where remedies can be tested, most unstable first (failure rate nearest 1/2; ties
    in the scan's order)."""
    picked = table[table["unstable_but_learnable"] & (table["seeds"] >= min_seeds)]
    return picked.assign(balance=(picked["failed"] - 0.5).abs()).sort_values("balance", kind="stable").drop(columns="balance")
