"""Runs per hour of a real grid: one process using every core against one single-thread worker
process per core. Small encoders on a few cores gain little from intra-op threads, so the
question is which way a sweep should use the machine; `sweep.default_workers` follows it."""
from __future__ import annotations

import os
import tempfile
import time

import pandas as pd
import torch

from .. import sweep


def runs_per_hour(configs, workers: int, threads: int) -> float:
    """Train `configs` from an empty store with `workers` processes (`threads` torch threads when
    in-process) and return runs per hour of wall time, start-up of the workers included."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory() as store:
            start = time.perf_counter()
            sweep.run_sweep(configs, store, progress=False, workers=workers)
            return len(configs) * 3600 / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)


def workers_comparison(configs, reps: int = 2) -> pd.DataFrame:
    """Interleaved repetitions (A B A B) of one process with all cores vs a worker per core."""
    cores = os.cpu_count() or 1
    arms = {f"1 process x {cores} threads": (1, cores), f"{cores} workers x 1 thread": (cores, 1)}
    rows = []
    for rep in range(reps):
        for arm, (workers, threads) in arms.items():
            rows.append({"arm": arm, "rep": rep, "runs": len(configs), "runs_per_hour": runs_per_hour(configs, workers, threads)})
    return pd.DataFrame(rows)
