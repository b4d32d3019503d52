"""Committed benchmark measurements, read back: notebook 06 shows what `blurb bench` measured
(outputs/benchmarks/<name>.json, with the machine and date) unless asked to measure again, so a
reader opening it meets the real measurements in seconds, not a fresh, noisier copy."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..core.errors import DataError
from .report import benchmarks_dir


def stored(name: str, table: str | None = None, out_dir: Path | None = None) -> pd.DataFrame:
    """The `table` (default: the benchmark's main one) of the committed `<name>.json`; its machine
    and date are printed, and kept in `frame.attrs`."""
    path = Path(out_dir) if out_dir is not None else benchmarks_dir()
    path = path / f"{name}.json"
    if not path.is_file():
        command = name.split("_")[0]  # every benchmark's files start with its command's name
        raise DataError(f"no committed {name} measurement at {path}; run `blurb bench {command}` to measure it, "
                        "or set MEASURE=True in notebook 06 to measure it here")
    payload = json.loads(path.read_text())
    frame = pd.DataFrame(payload["tables"][table or name])
    machine = payload.get("machine", {})
    frame.attrs.update(measured_at=payload.get("measured_at"), machine=machine, settings=payload.get("settings", {}))
    print(f"{name}: the committed measurement of {payload.get('measured_at', '?')} on {machine.get('cpu', '?')} "
          f"({machine.get('torch_threads', '?')} threads), from {path.name}; MEASURE=True measures on this machine")
    return frame
