"""Recipes calibrated by measurement: which learning rate and how many epochs each task needs.

A recipe is only worth running if the model learns with it, and a CPU budget leaves no room
for guesses. For every task, `GRID` holds the training-set size and sequence length the
budget allows and a few learning rates; each candidate trains once for `epochs` epochs and
is scored on dev after every epoch, so one run gives a whole learning curve. The test
split is never read here (`run_sweep(score_test=False)`): recipes are chosen on dev, and
only the final runs of a notebook see test. `choose` then picks, per task, the learning rate
and epoch count with the best dev score; `profiles` holds the result, and a test checks that
the default profile is what the committed calibration table chose.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..core.precision import resolve as resolve_precision
from ..training import train
from . import reference, sweep


@dataclass(frozen=True)
class Candidate:
    """The budget-fixed part of a task's recipe and the learning rates to try."""

    train_limit: int | None
    max_length: int
    epochs: int
    lrs: tuple[float, ...]
    batch_size: int = 16
    eval_limit: int | None = 250


# Sizes are what the default profile's 60-minute budget affords on 2 CPU cores; the learning
# rates bracket what small encoders need with a few hundred steps (5e-5, BERT's usual, left
# NER at half the F1 of 2e-4 in a first measurement). Rare-label tasks need more steps than
# the rest: with too few, every seed predicts the majority answer (no relation, no hallmark).
_SHORT = Candidate(train_limit=300, max_length=128, epochs=4, lrs=(1e-4, 3e-4))
_RARE = Candidate(train_limit=300, max_length=128, epochs=6, lrs=(1e-4, 3e-4), batch_size=8)
_LONG = Candidate(train_limit=300, max_length=256, epochs=4, lrs=(1e-4, 3e-4))
GRID: dict[str, Candidate] = {
    "BC5-chem": _SHORT, "BC5-disease": _SHORT, "NCBI-disease": _SHORT, "BC2GM": _SHORT, "JNLPBA": _SHORT,
    "ChemProt": _RARE,
    # GAD: from 300 or 1,000 examples the seeds split between predicting "1" for all (F1 69) and
    # noise; the whole training set (4,261 sentences) learns in one epoch
    "GAD": Candidate(train_limit=None, max_length=128, epochs=2, lrs=(3e-5, 5e-5)),
    # DDI: 13% positive; from 300 examples no learning rate gets off zero, from 1,000 the best
    # reached dev F1 23 (below the probe's 41); 3,000 learn
    "DDI": Candidate(train_limit=3000, max_length=128, epochs=4, lrs=(5e-5, 1e-4)),
    # HoC: 200 abstracts at 256 tokens never got off "no hallmark" (the loss stalls at the label
    # prior's entropy); all 1,295 at 128 tokens learn, slowly, and 3e-4 still stalls
    "HoC": Candidate(train_limit=None, max_length=128, epochs=8, lrs=(1e-4, 2e-4)),
    "PubMedQA": _LONG, "BioASQ": _LONG,
    "BIOSSES": Candidate(train_limit=None, max_length=128, epochs=10, lrs=(2e-5, 5e-5, 1e-4), batch_size=8, eval_limit=None),
}
# The smoke profile's grid: the same machinery on tiny slices, for tests.
SMOKE = Candidate(train_limit=24, max_length=48, epochs=2, lrs=(1e-4, 3e-4), batch_size=8, eval_limit=24)
SEED = 1


def configs(tasks=None, model: str = "minilm-l6", precision: str = "auto", candidates=None,
            device: str = "cpu") -> list[train.RunConfig]:
    """One run per (task, learning rate), with the model's native head, in the precision the
    runs of a notebook use on `device` (`auto`: bf16 where the device has it natively)."""
    candidates = candidates or GRID
    precision = resolve_precision(precision, device)
    out = []
    for task in tasks or candidates:
        c = candidates[task]
        out += [train.RunConfig(task=task, model=model, lr=lr, epochs=c.epochs, batch_size=c.batch_size,
                                train_limit=c.train_limit, eval_limit=c.eval_limit, max_length=c.max_length,
                                seed=SEED, precision=precision) for lr in c.lrs]
    return out


def run(out_dir, tasks=None, model: str = "minilm-l6", precision: str = "auto", candidates=None,
        progress: bool = True, backend: str = "local", address: str | None = None, device: str = "cpu") -> pd.DataFrame:
    """Train the grid (dev only, cached in the store at `out_dir`; on `device` and `backend` as
    `sweep.run_sweep` does) and its frozen references; return `table` of the two. At precision
    `auto` a candidate stored at another precision is reused, as the notebooks' runs are."""
    runs = configs(tasks, model, precision, candidates, device)
    records = sweep.run_sweep(runs, out_dir, device=device, progress=progress, score_test=False, backend=backend,
                              address=address, any_precision=precision == "auto")
    refs = reference.references_for(runs, out_dir, progress=progress, device=device)
    return table(records, refs)


def table(records: pd.DataFrame, references: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, lr, epoch) of every candidate's dev curve (`sweep.records_for`),
    beside the task's frozen reference on the same dev set."""
    ref_dev = dict(zip(references["task"], references["dev_score"]))
    rows = []
    for record in records.itertuples():
        degenerate = record.dev_degenerate if isinstance(getattr(record, "dev_degenerate", None), list) \
            else [False] * len(record.dev_curve)  # records from before collapse was tracked per epoch
        for epoch, (dev, collapsed) in enumerate(zip(record.dev_curve, degenerate), start=1):
            rows.append({"task": record.task, "lr": record.lr, "epoch": epoch, "dev_score": dev, "collapsed": collapsed,
                         "reference_dev": ref_dev.get(record.task), "train_limit": record.train_limit,
                         "max_length": record.max_length, "batch_size": record.batch_size,
                         "head": record.head, "status": record.status})
    frame = pd.DataFrame(rows)
    frame["margin"] = frame["dev_score"] - frame["reference_dev"]
    return frame


def choose(frame: pd.DataFrame) -> pd.DataFrame:
    """Per task, the (lr, epoch) with the best dev score: the recipe the default profile runs.
    An epoch whose dev predictions collapsed to one answer is chosen only if every one did;
    ties go to fewer epochs (cheaper)."""
    ranked = frame.assign(learned_something=~frame["collapsed"].astype(bool))
    best = (ranked.sort_values(["task", "learned_something", "dev_score", "epoch", "lr"], ascending=[True, False, False, True, True])
            .groupby("task").head(1))
    return best.set_index("task")[["lr", "epoch", "dev_score", "reference_dev", "margin", "train_limit",
                                   "max_length", "batch_size", "head"]]


def save(frame: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path
