"""The run record: what `train.run` returns and the results store keeps, as a type.

`RunConfig` is a run's input; `RunRecord` is its output, one JSON file per run. Fields added
over time are optional (`total=False`): a record written before a field existed simply lacks
it, and readers treat it as unknown. `check` is what the store verifies on every read and write,
besides the run id (`results.record_problem`): the fields every record has, with their types.
"""
from __future__ import annotations

import math
from typing import Any, TypedDict


class _Required(TypedDict):
    run_id: str
    config: dict[str, Any]  # RunConfig's fields (late ones absent in records older than them)
    status: str  # "ok" or "failed"


class RunRecord(_Required, total=False):
    technique: str
    failure_reason: str | None
    dev_score: float | None  # best dev epoch
    test_score: float | None  # at the best dev epoch; None for a dev-only run (calibration, the scan)
    best_epoch: int | None
    dev_curve: list[float]
    dev_degenerate: list[bool]
    final_dev_score: float | None  # the model at the end of training: what failure is judged on
    final_test_score: float | None
    final_test_degenerate: bool
    test_predictions: list  # small test sets only (<= 1,000 examples, not token tasks)
    trivial_dev_score: float  # the best constant prediction's score on dev
    trivial_test_score: float | None
    train_loss_first: float | None
    train_loss_last: float | None
    n_train: int
    n_params: int
    n_trainable_params: int
    model_pretrained: bool
    device: str
    machine: dict[str, Any]  # machine.describe(); `source` where inferred for an older record
    torch_version: str
    wall_time_s: float
    train_examples_per_s: float | None
    peak_memory_mb: float
    finished_at: str
    linear_probe_loss_last: float  # LP-FT runs
    # memory accounted per step (saved tensors, weights, gradients, optimizer state), and SlimFit's
    memory_steps: int
    memory_peak_mb: float
    memory_mean_mb: float
    slimfit_frozen_share: dict[str, float]
    slimfit_steps: int


STATUSES = ("ok", "failed")
_NUMBERS = ("dev_score", "test_score", "final_dev_score", "final_test_score", "trivial_dev_score", "trivial_test_score")


def check(record: dict) -> str | None:
    """Why `record` is not a well-formed run record, or None: the required fields with their
    types, a known status, and scores that are numbers (or None), never text or NaN."""
    for name, kind in (("run_id", str), ("config", dict), ("status", str)):
        if not isinstance(record.get(name), kind):
            return f"its {name} is {record.get(name)!r}, not a {kind.__name__}"
    if record["status"] not in STATUSES:
        return f"its status {record['status']!r} is none of {', '.join(STATUSES)}"
    for name in _NUMBERS:
        value = record.get(name)
        if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                      and math.isfinite(value)):
            return f"its {name} is {value!r}, not a finite number or null"
    return None
