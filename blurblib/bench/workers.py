"""Runs per hour of a real grid: one process using every core against one single-thread worker
process per core. Small encoders on a few cores gain little from intra-op threads, so the
question is which way a sweep should use the machine; `sweep.default_workers` follows it.
A third arm is how sweeps ran before bf16 and workers (fp32, one process): before and after;
a fourth (`ray=True`) runs the same grid as Ray tasks on a local Ray instance, one core each."""
from __future__ import annotations

import dataclasses
import os
import tempfile
import time

import pandas as pd
import torch

from ..runs import sweep


def runs_per_hour(configs, workers: int, threads: int, backend: str = "local") -> float:
    """Train `configs` from an empty store with `workers` processes (`threads` torch threads when
    in-process), or as Ray tasks, and return runs per hour of wall time, start-up included."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory() as store:
            start = time.perf_counter()
            sweep.run_sweep(configs, store, progress=False, workers=workers, backend=backend)
            return len(configs) * 3600 / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)


def workers_comparison(configs, reps: int = 2, ray: bool = False) -> pd.DataFrame:
    """Interleaved repetitions (A B C A B C) of: the configs in fp32 in one process with all cores
    (before), as given (bf16 where native) in one process, as given with a worker per core, and
    (`ray`) as Ray tasks on a local instance started and stopped by each repetition."""
    cores = os.cpu_count() or 1
    fp32 = [dataclasses.replace(c, precision="fp32") for c in configs]
    # arm -> (grid, worker processes, torch threads, backend)
    arms = {f"before: fp32, 1 process x {cores} threads": (fp32, 1, cores, "local"),
            f"{configs[0].precision}, 1 process x {cores} threads": (configs, 1, cores, "local"),
            f"{configs[0].precision}, {cores} workers x 1 thread": (configs, cores, 1, "local")}
    if ray:
        arms[f"{configs[0].precision}, local Ray, {cores} tasks x 1 thread"] = (configs, cores, 1, "ray")
    rows = []
    for rep in range(reps):
        for arm, (grid, workers, threads, backend) in arms.items():
            rows.append({"arm": arm, "rep": rep, "runs": len(grid),
                         "runs_per_hour": runs_per_hour(grid, workers, threads, backend)})
    return pd.DataFrame(rows)
