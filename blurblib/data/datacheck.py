"""`blurb data check`: our split counts against the published BLURB counts.

Counted as BLURB counts them: entity mentions (B tags) for NER, non-O tokens for EBM-PICO,
examples (abstracts for HoC) elsewhere. Differences the data README documents are shown
as known, so a user can tell an explained difference from a broken copy.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import tasks
from .tasks import SPLITS, TaskSpec

# (task, split) -> (our count minus the published count, whether it is harmless)
KNOWN_DIFFERENCES: dict[tuple[str, str], tuple[int, bool]] = {
    # The official BLURB file (and LinkBERT's copy) has 4246 mentions; the paper's table says 4244.
    ("BC5-disease", "dev"): (2, True),
    # The official file has 87308 non-O tokens; the paper says 85321; unexplained (data README).
    ("EBM-PICO", "dev"): (1987, False),
}
COLUMNS = ["dataset", "split", "ours", "published", "unit", "status"]


def count(spec: TaskSpec, dataset) -> int:
    """Size of one split in the task's published unit."""
    if spec.task_type == "ner":
        return sum(tags.count("B") for tags in dataset["tags"])
    if spec.task_type == "pico":
        return sum(len(tags) - tags.count("O") for tags in dataset["tags"])
    return len(dataset)


def _status(spec: TaskSpec, split: str, ours: int) -> str:
    delta = ours - spec.published[split]
    if delta == 0:
        return "ok"
    known = KNOWN_DIFFERENCES.get((spec.name, split))
    if known and known[0] == delta:
        return f"{'ok' if known[1] else 'differs'} ({delta:+d}, known: see data README)"
    return f"differs ({delta:+d})"


def check(data_dir: str | Path | None = None) -> pd.DataFrame:
    """One row per dataset and split: our count, the published one, status ok/differs/missing."""
    rows = []
    for spec in tasks.TASKS.values():
        present = tasks.present_splits(spec.name, data_dir)
        loaded = tasks.load(spec.name, splits=present, data_dir=data_dir) if present else {}
        for split in SPLITS:
            ours = count(spec, loaded[split]) if split in loaded else None
            status = _status(spec, split, ours) if ours is not None else "missing"
            rows.append([spec.name, split, ours, spec.published[split], spec.count_unit, status])
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["ours"] = table["ours"].astype("Int64")
    return table


def summary(table: pd.DataFrame) -> str:
    """One line: how many datasets are complete, what is missing, what differs unexplained."""
    datasets_ = list(dict.fromkeys(table["dataset"]))
    ok = table["status"].str.startswith("ok")
    complete = [d for d in datasets_ if ok[table["dataset"] == d].all()]
    line = f"{len(complete)} of {len(datasets_)} datasets complete"
    missing = table[table["status"] == "missing"]
    if len(missing):
        line += "; missing: " + ", ".join(f"{d} {s}" for d, s in zip(missing["dataset"], missing["split"]))
    differs = table[table["status"].str.startswith("differs")]
    if len(differs):
        line += "; differs: " + ", ".join(
            f"{d} {s} ({st[st.index('(') + 1:].split(',')[0].rstrip(')')})"
            for d, s, st in zip(differs["dataset"], differs["split"], differs["status"]))
    return line


def format_table(table: pd.DataFrame) -> str:
    """The table as `blurb data check` prints it, with the summary line below."""
    shown = table.copy()
    shown["ours"] = shown["ours"].astype(object).where(shown["ours"].notna(), "-")
    return shown.to_string(index=False) + "\n\n" + summary(table)
