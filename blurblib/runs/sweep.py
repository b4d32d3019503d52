"""Grids of runs, run resumably: the store's record of a run, worker processes (or Ray) for the rest, the
records of a grid, and its plan (runs done, hours left by the `cost` model). `SweepSpec` and `expand` (the
grid as data) live in `spec` and are re-exported here.

Every notebook and both CLI commands go through `run_sweep`, so a re-executed notebook
reuses every finished run and a killed sweep resumes where it stopped.
"""
from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import pandas as pd
from tqdm.auto import tqdm

from ..core import machine, paths, precision
from ..core.errors import BlurbError, ConfigError
from ..training import train
from ..training.config import RunConfig, backfill
from ..training.train import run
from . import cost, results
from .ray_backend import train_on_ray
from .spec import MAX_SEED, MAX_SEEDS, SweepSpec, applicable, expand, parse_seeds, technique_setting  # noqa: F401 (the front door)


def stored(store: results.ResultsStore, config: RunConfig, any_precision: bool = False) -> dict | None:
    """The store's record of `config`; with `any_precision` (a run asked for at precision `auto`),
    else the record of the same run at another precision. A record keeps its own id and precision."""
    for candidate in _precision_twins(config) if any_precision else (config,):
        record = store.get(candidate.run_id)
        if record is not None:
            return record
    return None


def _precision_twins(config: RunConfig) -> list[RunConfig]:
    return [dataclasses.replace(config, precision=p) for p in precision.alternatives(config.precision)]


def run_sweep(configs: list[RunConfig], out_dir, device: str = "cpu", progress: bool = True,
              workers: int | None = None, score_test: bool = True, backend: str = "local",
              address: str | None = None, any_precision: bool = False) -> pd.DataFrame:
    """Run every config not yet in the store; return the store's records for these configs.

    Every run to train is validated before the first one starts, so a typo fails in a second, not
    an hour in. Each record is written the moment its run ends. Runs another process is
    training now (a second notebook, the CLI) are left to it; the sweep waits for their
    records at the end, so the returned table is complete either way. `workers` processes
    (default `default_workers(device)`) train runs side by side, each on its share of the
    cores; a run's numbers do not depend on which worker trained it. `score_test=False`
    trains without ever reading test (recipe calibration chooses on dev). `backend="ray"` runs
    each pending run as a Ray task instead (`workers` is then Ray's to decide), on a local
    instance or the cluster at `address` (see `blurblib.runs.ray_backend`). `any_precision` lets a
    stored record of the same run at another precision stand in (runs asked for at `auto`);
    what is trained is always trained at the config's own precision.
    """
    check_backend(backend, address)
    store = results.ResultsStore(out_dir)
    todo = [c for c in configs if stored(store, c, any_precision) is None]
    for config in todo:  # a stored run needs nothing it names (a clean clone has no arm checkpoints)
        config.validate()
    workers = min(default_workers(device) if workers is None else workers, len(todo))
    if todo and progress:
        print(f"{len(configs) - len(todo)} of {len(configs)} runs already in {paths.shown(out_dir)}; running {len(todo)}"
              + (" as Ray tasks" if backend == "ray" else f" in {workers} worker processes" if workers > 1 else ""))
    if backend == "ray" and todo:

        busy = train_on_ray(store, todo, device, progress, score_test, address)
    elif workers > 1:
        busy = _train_in_workers(store, todo, device, workers, progress, score_test)
    else:
        busy = [c for c in tqdm(todo, desc="runs", disable=not (progress and todo)) if not _train_claimed(store, c, device, score_test)]
    if busy:
        _wait_for_others(store, busy, device, score_test)
    return records_for(configs, out_dir, any_precision)


BACKENDS = ("local", "ray")


def check_backend(backend: str, address: str | None) -> None:
    """A clear error for a backend that does not exist or an address without Ray."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; use 'local' (processes on this machine) or 'ray' (a Ray cluster)")
    if address and backend != "ray":
        raise ConfigError(f"address {address!r} names a Ray cluster; add backend 'ray' (--backend ray) or drop the address")


def default_workers(device: str = "cpu") -> int:
    """One single-thread process per core on a CPU, one process on a GPU; `BLURB_WORKERS`
    overrides. Small encoders gain little from a second torch thread, so one run per core
    finishes more runs per hour: 298 against 260 for one two-thread process on an idle 2-core
    AMD EPYC (`blurb bench workers`, outputs/benchmarks/workers.csv)."""
    if os.environ.get("BLURB_WORKERS", "").strip():
        return max(1, env_int("BLURB_WORKERS", "worker processes", minimum=0))
    return 1 if device.startswith("cuda") else max(1, os.cpu_count() or 1)


def env_int(name: str, what: str, minimum: int = 1) -> int:
    """An integer setting from the environment, or the error naming the variable, its value and
    what it accepts (a typo there must not end a sweep in a traceback)."""
    raw = os.environ[name].strip()
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ConfigError(f"{name}={os.environ[name]!r} is not a number of {what}: set it to a whole number "
                          f">= {minimum} (e.g. {name}={max(minimum, 2)}), or unset it for the default")
    return value


def _train_in_workers(store: results.ResultsStore, todo: list[RunConfig], device: str, workers: int,
                      progress: bool, score_test: bool) -> list[RunConfig]:
    """Train `todo` in a pool of fresh processes (spawned: safe from notebooks and threads);
    return the runs another process held. A run that raises stops the sweep, as in-process.

    A worker that dies without an error (the kernel's out-of-memory killer, a kill -9) breaks the
    pool: the runs that were queued go to a new pool, and the runs that were in training are
    retried one at a time, each in a pool of its own, so a death there is that run's. A run whose
    worker dies alone is reported with its config, the others go on, and the call raises at the end.
    """
    threads = max(1, (os.cpu_count() or 1) // workers)
    busy, killed, queue, alone = [], [], list(todo), []
    with tqdm(total=len(todo), desc="runs", disable=not progress) as bar:
        while queue or alone:
            if queue:
                held, lost = _pool_pass(store, queue, device, workers, threads, score_test, bar)
                busy += held
                in_training = [c for c in lost if store.drop_dead_claim(c.run_id) is not None]
                if lost and not in_training and len(lost) == len(queue):
                    raise BlurbError(f"the worker processes died before training any of {len(lost)} runs (at start-up: "
                                     "an import or out of memory); run the sweep with BLURB_WORKERS=1 to see the error")
                queue = [c for c in lost if c not in in_training]
                alone += in_training
                continue
            config = alone.pop(0)
            held, lost = _pool_pass(store, [config], device, 1, max(threads, 1), score_test, bar)
            busy += held
            if lost:
                store.drop_dead_claim(config.run_id)
                killed.append(config)
                tqdm.write(_killed_report(config), file=sys.stderr)
                bar.update()
    if killed:
        raise BlurbError(f"{len(killed)} of {len(todo)} runs were killed while training, most likely for memory "
                         f"(every other run is stored in {store.runs}): "
                         + ", ".join(c.run_id for c in killed)
                         + ". Give each run more memory (fewer workers: BLURB_WORKERS=1 or workers=1; a smaller "
                         "batch_size or max_length) and run the same sweep again: only these are trained")
    return busy


def _pool_pass(store: results.ResultsStore, todo: list[RunConfig], device: str, workers: int, threads: int,
               score_test: bool, bar) -> tuple[list[RunConfig], list[RunConfig]]:
    """One pool over `todo`: (runs another process held, runs lost when a worker died)."""
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init, initargs=(threads,))
    busy, lost = [], []
    try:
        futures = {pool.submit(_train_claimed_at, str(store.root), c, device, score_test): c for c in todo}
        for future in as_completed(futures):
            try:
                if not future.result():
                    busy.append(futures[future])
            except BrokenProcessPool:
                lost.append(futures[future])
                continue
            bar.update()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return busy, [c for c in todo if c in lost and not store.has(c.run_id)]


def _killed_report(config: RunConfig) -> str:
    return (f"run {config.run_id}: its worker process was killed while training it (no Python error: most likely the "
            f"out-of-memory killer; `dmesg` or the job's log says)\n  config: {config}\nthe sweep goes on with the other runs")


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _train_claimed_at(root: str, config: RunConfig, device: str, score_test: bool) -> bool:
    return _train_claimed(results.ResultsStore(root), config, device, score_test)


POLL_S = 2.0  # how often a sweep looks for the records of runs another process is training


def _train_claimed(store: results.ResultsStore, config: RunConfig, device: str, score_test: bool = True) -> bool:
    """Claim, train and store one run; False (nothing done) while another process holds it."""
    claim = store.claim(config.run_id)
    if claim is None:
        return False
    with claim:
        if not store.has(config.run_id):  # another process may have finished it since the plan
            store.write(run(config, device=device, progress=False, score_test=score_test))  # one bar over runs, not one per run
    return True


CLAIM_WAIT_S = 24 * 3600  # longest wait for another process's runs; BLURB_CLAIM_WAIT_S overrides


def claim_wait_s() -> int:
    """How long a sweep waits for runs another process holds: a hung process, or one on another
    host (which this host cannot see die), must not keep a sweep waiting forever."""
    if os.environ.get("BLURB_CLAIM_WAIT_S", "").strip():
        return env_int("BLURB_CLAIM_WAIT_S", "seconds to wait for another process's runs", minimum=0)
    return CLAIM_WAIT_S


def _wait_for_others(store: results.ResultsStore, busy: list[RunConfig], device: str, score_test: bool = True) -> None:
    """Poll until every run another process claimed has a record; train those it gave up. After
    `claim_wait_s()` seconds, raise naming each holder (host, pid, since when) and its lock file."""
    limit = claim_wait_s()
    holders = sorted({_holder(store, c) for c in busy if store.holder(c.run_id)})
    print(f"{len(busy)} run(s) of this sweep are being trained by another process ({'; '.join(holders) or 'just finished'}); "
          f"waiting up to {limit} s for their records in {store.runs}, checking every {POLL_S:g} s. A lock whose "
          f"process is gone from another machine must be deleted by hand: {store.locks}/<run_id>.lock", flush=True)
    started = time.monotonic()
    while busy:
        busy = [c for c in busy if not store.has(c.run_id) and not _train_claimed(store, c, device, score_test)]
        if busy and time.monotonic() - started >= limit:
            raise BlurbError(_wait_expired(store, busy, limit))
        if busy:
            time.sleep(POLL_S)
    print(f"the other process's runs are in (waited {time.monotonic() - started:.0f} s)", flush=True)


def _holder(store: results.ResultsStore, config: RunConfig) -> str:
    return results.describe_holder(store.holder(config.run_id), store.lock_path(config.run_id))


def _wait_expired(store: results.ResultsStore, busy: list[RunConfig], limit: int) -> str:
    lines = "\n".join(f"  {c.run_id}: held by {_holder(store, c)} ({store.lock_path(c.run_id)})" for c in busy)
    return (f"waited {limit} s for {len(busy)} run(s) another process claimed, and they have no record yet:\n{lines}\n"
            "If that process still trains them, wait for it and run the sweep again (finished runs are kept), or set "
            "BLURB_CLAIM_WAIT_S to wait longer. If it is hung or gone (another host's processes cannot be checked from "
            "here), stop it and delete its lock file, then run the sweep again")


def records_for(configs: list[RunConfig], out_dir, any_precision: bool = False) -> pd.DataFrame:
    """The stored records of exactly these configs (a notebook's view of a shared store); with
    `any_precision`, a run's twin at another precision where the run itself is not stored."""
    store = results.ResultsStore(out_dir)
    wanted = [stored(store, c, any_precision) for c in configs]
    rows = []
    for record in wanted:
        if record is not None:
            row = {k: v for k, v in record.items() if k != "config"}
            row.update(backfill(record["config"]))  # a record older than a knob reads as the knob off
            rows.append(_judged_today(row))
    return pd.DataFrame(rows)


def _judged_today(row: dict) -> dict:
    """A stored record with today's failure bar (the best constant prediction on its splits) and
    its machine's kind (`unrecorded` for records older than the machine field)."""
    limit = row.get("eval_limit")
    limit = None if limit is None or (isinstance(limit, float) and math.isnan(limit)) else int(limit)
    for split in ("dev", "test"):
        if row.get(f"trivial_{split}_score") is not None:
            row[f"trivial_{split}_score"] = train.best_constant_score(row["task"], split, limit)
    row["machine_kind"] = machine.kind(row.get("machine"))
    return row


@dataclass(frozen=True)
class Plan:
    n_runs: int
    n_done: int
    estimated_hours: float
    device: str
    by_task: pd.DataFrame
    n_other_precision: int = 0  # of n_done: served by the same run stored at another precision

    @property
    def n_to_train(self) -> int:
        return self.n_runs - self.n_done


def plan(configs: list[RunConfig], device: str = "cpu", out_dir=None, any_precision: bool = False) -> Plan:
    """Number of runs and a compute estimate, so a `paper` user knows the GPU hours first;
    `any_precision` as in `run_sweep`."""
    store = results.ResultsStore(out_dir) if out_dir else None
    rows = []
    for config in configs:
        record = stored(store, config, any_precision) if store else None
        done = record is not None
        rows.append({"task": config.task, "model": config.model, "runs": 1, "done": int(done),
                     "other_precision": int(done and record["config"].get("precision") != config.precision),
                     "hours": 0.0 if done else cost.estimated_seconds(config, device) / 3600})
    frame = pd.DataFrame(rows)
    if not rows:
        return Plan(0, 0, 0.0, device, frame)
    by_task = frame.groupby(["task", "model"], as_index=False)[["runs", "done", "hours"]].sum()
    return Plan(len(configs), int(frame["done"].sum()), float(frame["hours"].sum()), device, by_task,
                int(frame["other_precision"].sum()))


def format_plan(p: Plan) -> str:
    reused = f", {p.n_other_precision} of them stored at another precision" if p.n_other_precision else ""
    lines = [f"{p.n_runs} runs ({p.n_done} already done{reused}); estimated {p.estimated_hours:.2f} h "
             f"({p.estimated_hours * 60:.1f} min) on {p.device} for the rest"]
    if len(p.by_task):
        table = p.by_task.assign(minutes=p.by_task["hours"] * 60).drop(columns="hours")
        lines.append(table.to_string(index=False, float_format=lambda x: f"{x:.1f}"))
    return "\n".join(lines)
