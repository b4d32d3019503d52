"""The results store: one JSON file per finished run, written atomically.

A run's record lands under `DIR/runs/<run_id>.json` the moment it ends, via a temporary
file and `os.replace` (atomic on POSIX), so killing a sweep at any moment loses no finished
run and leaves no half-written record. Re-running a sweep skips every run_id already here.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd

from .errors import DataError


class ResultsStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.runs = self.root / "runs"

    def path(self, run_id: str) -> Path:
        return self.runs / f"{run_id}.json"

    def has(self, run_id: str) -> bool:
        return self.path(run_id).is_file()

    def get(self, run_id: str) -> dict | None:
        path = self.path(run_id)
        return _read(path) if path.is_file() else None

    def write(self, record: dict) -> Path:
        self.runs.mkdir(parents=True, exist_ok=True)
        target = self.path(record["run_id"])
        fd, tmp = tempfile.mkstemp(dir=self.runs, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(record, handle, indent=1, sort_keys=True, default=float)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def records(self) -> list[dict]:
        if not self.runs.is_dir():
            return []
        return [_read(p) for p in sorted(self.runs.glob("*.json"))]


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"corrupt run record {path}: {err}; delete the file and re-run the sweep to redo that run") from err


def load(root: str | os.PathLike) -> pd.DataFrame:
    """All records of a store as a DataFrame, one row per run, config fields as columns."""
    rows = []
    for record in ResultsStore(root).records():
        row = {k: v for k, v in record.items() if k != "config"}
        row.update(record["config"])
        rows.append(row)
    return pd.DataFrame(rows)
