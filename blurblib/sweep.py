"""Grids of runs: expand a spec into RunConfigs, plan their cost, run them resumably.

Every notebook and both CLI commands go through `run_sweep`, so a re-executed notebook
reuses every finished run and a killed sweep resumes where it stopped.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml
from tqdm.auto import tqdm

from . import machine, models, paths, precision, results, tasks, train
from .config import RunConfig, backfill, technique_knobs
from .errors import BlurbError, ConfigError
from .techniques import neutral_knobs
from .train import run

_CONFIG_FIELDS = {f.name for f in dataclasses.fields(RunConfig)}


@dataclass(frozen=True)
class SweepSpec:
    """A grid: tasks x models x techniques x hyperparameters x seeds.

    `techniques` holds knob settings (dicts such as `{"reinit_layers": 1}`; `{}` is standard
    fine-tuning). `hyperparameters` maps RunConfig fields to a value or a list of values (a
    grid axis). `per_task` overrides fields for one task (e.g. a smaller train_limit for NER).
    """

    tasks: tuple[str, ...]
    models: tuple[str, ...] = ("minilm-l6",)
    techniques: tuple[dict, ...] = ({},)
    seeds: tuple[int, ...] = (1, 2, 3)
    hyperparameters: dict = field(default_factory=dict)
    per_task: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> "SweepSpec":
        """Check every key and value here, so a bad spec fails before planning, with the fix."""
        if not isinstance(data, dict):
            raise ConfigError(f"a sweep spec is a mapping with keys {', '.join(_SPEC_KEYS)}, not a {type(data).__name__}")
        unknown = set(data) - set(_SPEC_KEYS)
        if unknown:
            raise ConfigError(f"unknown sweep keys {sorted(unknown)}; allowed: {', '.join(_SPEC_KEYS)}")
        if not data.get("tasks"):
            raise ConfigError("the sweep spec names no tasks; add e.g. `tasks: [BIOSSES]`")
        data = dict(data)
        data["tasks"] = tuple(tasks.get(t).name for t in _names(data["tasks"], "tasks"))
        if "models" in data:
            data["models"] = _names(data["models"], "models")
        data["techniques"] = _techniques(data.get("techniques"))
        data["seeds"] = tuple(parse_seeds(data.get("seeds", "1-3")))
        data["hyperparameters"] = {k: _axis(k, v) for k, v in _mapping(data.get("hyperparameters"), "hyperparameters").items()}
        _check_fields(data["hyperparameters"], "hyperparameters", axes=True)
        data["per_task"] = _per_task(data.get("per_task"))
        return cls(**data)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "SweepSpec":
        """A spec file; every error names the file (and the line and column of a YAML syntax error)."""
        path = Path(path)
        if not path.exists() or path.is_dir():  # not is_file(): `blurb sweep <(...)` reads a pipe
            what = "is a folder" if path.is_dir() else "not found"
            raise ConfigError(f"sweep spec {path} {what}; write a YAML file with keys tasks, models, techniques, seeds")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.MarkedYAMLError as err:
            raise ConfigError(_yaml_message(path, err)) from None
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: not a readable YAML file ({err})".replace("\n", " ")) from None
        try:
            return cls.from_dict(data or {})
        except BlurbError as err:
            raise type(err)(f"{path}: {err}") from None


_SPEC_KEYS = ("tasks", "models", "techniques", "seeds", "hyperparameters", "per_task")
_RESERVED = {"task": "tasks", "model": "models", "seed": "seeds"}


def _yaml_message(path: Path, err: yaml.MarkedYAMLError) -> str:
    """`file:line:col: problem`, the form editors jump to."""
    mark, start = err.problem_mark or err.context_mark, err.context_mark
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
    context = err.context or ""
    if context and start and start is not mark:
        context += f" (opened at line {start.line + 1}, column {start.column + 1})"
    problem = ": ".join(str(part) for part in (context, err.problem) if part)
    return f"{where}: YAML syntax error: {problem}; fix the spec there (see examples/stabilization.yaml)"


def _names(value, key: str) -> tuple[str, ...]:
    """A name or a list of names."""
    names = (value,) if isinstance(value, str) else _listed(value, key)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise ConfigError(f"sweep key {key!r}: {bad} are not names; write e.g. `{key}: [name1, name2]`")
    return names


def _listed(value, key: str) -> tuple:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"sweep key {key!r} must be a list, got {value!r}")
    if not value:
        raise ConfigError(f"sweep key {key!r} is an empty list: the grid would have no runs; name at least one")
    return tuple(value)


def _techniques(entries) -> tuple[dict, ...]:
    """A list of technique names or knob mappings; one entry alone needs no list."""
    if entries is None:
        return ({},)
    entries = [entries] if isinstance(entries, (str, dict)) else _listed(entries, "techniques")
    return tuple(technique_setting(t) for t in entries)


def _mapping(value, key: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"sweep key {key!r} must be a mapping of RunConfig fields to values, got {value!r}")
    return value


def _axis(name: str, value):
    """A value or a list of values, with YAML's `1e-5` (a string to YAML 1.1) read as a number."""
    if isinstance(value, (list, tuple)):
        return [_typed(name, v) for v in value]
    return _typed(name, value)


def _per_task(value) -> dict:
    """Per-task overrides keyed by canonical task name (so `biosses:` is not silently ignored)."""
    out = {}
    for task, fields in _mapping(value, "per_task").items():
        name = tasks.get(task).name
        fields = {k: _typed(k, v) for k, v in _mapping(fields, f"per_task.{task}").items()}
        _check_fields(fields, f"per_task.{task}")
        out[name] = fields
    return out


def _typed(name: str, value):
    """Turn numeric strings into numbers for float fields; other values pass unchanged."""
    if _FIELD_TYPES.get(name) == "float" and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


_FIELD_TYPES = {f.name: str(f.type) for f in dataclasses.fields(RunConfig)}
_PYTHON_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "None": (type(None),)}


def _check_fields(fields: dict, where: str, axes: bool = False) -> None:
    """RunConfig fields with values of the right type (a list is a grid axis when `axes`)."""
    bad = set(fields) - _CONFIG_FIELDS
    if bad:
        raise ConfigError(f"unknown hyperparameters {sorted(bad)} in {where}; RunConfig fields are {sorted(_CONFIG_FIELDS)}")
    reserved = sorted(set(fields) & set(_RESERVED))
    if reserved:
        raise ConfigError(f"{where} sets {reserved}; set them with the top-level keys {[_RESERVED[k] for k in reserved]}")
    for name, value in fields.items():
        for v in (value if axes and isinstance(value, list) else [value]):
            _check_type(name, v, where)


def _check_type(name: str, value, where: str) -> None:
    kind = _FIELD_TYPES[name]
    allowed = tuple(t for part in kind.split("|") for t in _PYTHON_TYPES.get(part.strip(), (object,)))
    if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):  # True is an int to Python
        raise ConfigError(f"{where}: {name}={value!r} must be of type {kind}; e.g. {name}: {_EXAMPLES.get(kind, '...')}")


_EXAMPLES = {"int": "3", "float": "1.0e-4", "str": "name", "int | None": "128 (or null for none)"}


MAX_SEEDS = 1000  # seeds in one grid: far above any study's, far below a range that exhausts memory
MAX_SEED = 2**32 - 1  # the largest seed numpy accepts (torch and random take it too)


def parse_seeds(seeds) -> list[int]:
    """`"1-5"` -> [1..5], `"1,3,7"` -> [1, 3, 7]; lists pass through. Each seed lies in
    0..MAX_SEED and a grid holds at most MAX_SEEDS, checked before a range is expanded."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        return _checked_seeds([seeds], str(seeds))
    if isinstance(seeds, (list, tuple)) and seeds and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        return _checked_seeds(list(seeds), str(list(seeds)))
    if not isinstance(seeds, str):
        raise ConfigError(f"cannot read seeds {seeds!r}; use a range like 1-5, a list like 1,3,7 or a list of integers")
    out: list[int] = []
    for part in seeds.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            lo, hi = int(lo), int(hi or lo)
        except ValueError:
            raise ConfigError(f"cannot read seeds {seeds!r}; use a range like 1-5 or a list like 1,3,7") from None
        if hi < lo:
            raise ConfigError(f"seed range {part.strip()!r} is empty; write it low-high, like {hi}-{lo}")
        _checked_seeds([lo, hi], seeds, count=len(out) + hi - lo + 1)
        out.extend(range(lo, hi + 1))
    return out


def _checked_seeds(seeds: list[int], asked: str, count: int | None = None) -> list[int]:
    """The seeds unchanged, or the error naming what was asked and what is accepted."""
    count = len(seeds) if count is None else count
    if count > MAX_SEEDS:
        raise ConfigError(f"seeds {asked} make {count} seeds; a grid takes at most {MAX_SEEDS} "
                          "(e.g. 1-5 for the paper's five): ask for fewer")
    bad = [s for s in seeds if not 0 <= s <= MAX_SEED]
    if bad:
        raise ConfigError(f"seeds {asked}: {bad[0]} is not a seed; seeds are integers from 0 to {MAX_SEED}")
    return seeds


def technique_setting(entry) -> dict:
    """A technique name (its default knob) or a dict of knobs -> a dict of RunConfig knobs."""
    if isinstance(entry, str):
        return technique_knobs(entry)
    if entry is not None and not isinstance(entry, dict):
        raise ConfigError(f"technique {entry!r} is neither a name nor a mapping of knobs; "
                          "write e.g. `reinit` or `{reinit_layers: 1}`")
    entry = dict(entry or {})
    name = entry.pop("technique", None)
    setting = technique_knobs(name) if name else {}
    knobs = neutral_knobs()  # every technique's knob, from the registry: a new technique needs no edit here
    bad = set(entry) - set(knobs)
    if bad:
        raise ConfigError(f"unknown technique knobs {sorted(bad)}; use {list(knobs)}")
    entry = {k: _typed(k, v) for k, v in entry.items()}
    for knob, value in entry.items():
        _check_type(knob, value, "techniques")
    setting.update(entry)
    return setting


def expand(spec: SweepSpec) -> list[RunConfig]:
    """Every RunConfig of the grid, in a stable order (seed innermost)."""
    axes = {k: v if isinstance(v, list) else [v] for k, v in spec.hyperparameters.items()}
    _check_fields(axes, "hyperparameters", axes=True)
    configs = []
    for task, model, knobs in itertools.product(spec.tasks, spec.models, spec.techniques):
        task = tasks.get(task).name
        for values in itertools.product(*axes.values()):
            fields = {**dict(zip(axes, values)), **knobs, **spec.per_task.get(task, {})}
            for seed in spec.seeds:
                configs.append(RunConfig(task=task, model=model, seed=seed, **fields))
    return configs


def applicable(configs: list[RunConfig]) -> tuple[list[RunConfig], list[str]]:
    """Split a grid into the runs whose technique fits their head and the reasons the others
    do not (LP-FT on a bi-encoder, which has no head to probe), so a notebook can say what it
    leaves out instead of failing or dropping it silently."""
    kept, left_out = [], []
    for config in configs:
        try:
            config.validate()
            kept.append(config)
        except ConfigError as err:
            left_out.append(f"{config.task} {config.technique} ({config.head} head): {err}")
    return kept, sorted(set(left_out))


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
    instance or the cluster at `address` (see `blurblib.ray_backend`). `any_precision` lets a
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
        from .ray_backend import train_on_ray

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


# ---- planning: how much compute a sweep needs, before running it -------------------------

# Effective training throughput in FLOP/s (6 x non-embedding params x tokens per second),
# measured on this project's 2-core CPU with minilm-l6 and the BERT-base shape; the GPU
# figure assumes ~25% of an H100's dense bf16 peak, typical for BERT fine-tuning.
EFFECTIVE_FLOPS = {"cpu": 1.0e11, "cuda": 2.0e14}
# Fixed costs the FLOP count misses: per optimizer step (kernel launches, Python) and per run
# (model load, tokenisation). They dominate small models on a GPU.
STEP_OVERHEAD_S = {"cpu": 0.0, "cuda": 0.03}
RUN_OVERHEAD_S = {"cpu": 3.0, "cuda": 15.0}


@functools.lru_cache(maxsize=None)
def _split_stats(task: str) -> dict:
    """Examples per split and mean words per example (a proxy for sub-word length). A split
    missing here (EBM-PICO's train) is estimated from dev, scaled by the published counts, so a
    plan for a cluster that has it can still be costed."""
    spec = tasks.get(task)
    stats = {}
    for split in tasks.present_splits(task):
        data = tasks.load(task, splits=[split])[split]
        words = sum(len(" ".join(map(str, data[f])).split()) if f != "tokens" else sum(map(len, data[f])) for f in spec.text_fields)
        stats[split] = (len(data), words / max(len(data), 1))
    if "train" not in stats and "dev" in stats and spec.published.get("train") and spec.published.get("dev"):
        count, words = stats["dev"]
        stats["train"] = (round(count * spec.published["train"] / spec.published["dev"]), words)
    return stats


def estimated_seconds(config: RunConfig, device: str = "cpu") -> float:
    """What the plan expects `config` to take on `device` (the cost model below)."""
    return _run_seconds(config, device)


def _run_seconds(config: RunConfig, device: str) -> float:
    kind = "cuda" if device.startswith("cuda") else "cpu"
    return _run_flops(config) / EFFECTIVE_FLOPS[kind] + train_steps(config) * STEP_OVERHEAD_S[kind] + RUN_OVERHEAD_S[kind]


def train_steps(config: RunConfig) -> int:
    """Optimisation steps of a run: batches per epoch times epochs."""
    count = _split_stats(tasks.get(config.task).name)["train"][0]
    return -(-min(count, config.train_limit or count) // config.batch_size) * config.epochs


def _run_flops(config: RunConfig) -> float:
    spec = tasks.get(config.task)
    max_length = config.max_length or spec.max_length
    stats = _split_stats(spec.name)
    spec = _model_shape(config.model)
    params = 12 * spec.layers * spec.hidden**2  # attention + FFN weights of the encoder blocks
    total = 0.0
    for split, (count, words) in stats.items():
        tokens = min(max_length, 1.4 * words + 3)
        if split == "train":
            n = min(count, config.train_limit or count)
            total += 6 * params * tokens * n * config.epochs
        else:
            n = min(count, config.eval_limit or count)
            passes = config.epochs if split == "dev" else 1
            total += 2 * params * tokens * n * passes
    return total


def _model_shape(name: str) -> models.ModelSpec:
    """The model's registry entry or folder; a pretraining arm not built yet (its folder absent)
    is costed as the registry model its folder name starts with (`minilm-l6-pubmed-...`)."""
    try:
        return models.get(name)
    except BlurbError:
        base = models.derived_from(name)
        if base is None:
            raise
        return models.get(base)


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
                     "hours": 0.0 if done else _run_seconds(config, device) / 3600})
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
