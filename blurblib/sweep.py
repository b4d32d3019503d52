"""Grids of runs: expand a spec into RunConfigs, plan their cost, run them resumably.

Every notebook and both CLI commands go through `run_sweep`, so a re-executed notebook
reuses every finished run and a killed sweep resumes where it stopped.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml
from tqdm.auto import tqdm

from . import models, results, tasks
from .errors import ConfigError
from .train import RunConfig, run, technique_knobs

_CONFIG_FIELDS = {f.name for f in dataclasses.fields(RunConfig)}
_KNOBS = ("freeze_layers", "reinit_layers", "llrd_decay", "mixout")


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
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown sweep keys {sorted(unknown)}; allowed: tasks, models, techniques, seeds, hyperparameters, per_task")
        data = dict(data)
        data["techniques"] = tuple(technique_setting(t) for t in data.get("techniques", [{}]))
        data["seeds"] = tuple(parse_seeds(data.get("seeds", "1-3")))
        for key in ("tasks", "models"):
            if key in data:
                value = data[key]
                data[key] = (value,) if isinstance(value, str) else tuple(value)
        return cls(**data)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "SweepSpec":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"sweep spec {path} not found; write a YAML file with keys tasks, models, techniques, seeds")
        return cls.from_dict(yaml.safe_load(path.read_text()) or {})


def parse_seeds(seeds) -> list[int]:
    """`"1-5"` -> [1..5], `"1,3,7"` -> [1, 3, 7]; lists pass through."""
    if isinstance(seeds, int):
        return [seeds]
    if not isinstance(seeds, str):
        return [int(s) for s in seeds]
    out: list[int] = []
    for part in seeds.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            out.extend(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            raise ConfigError(f"cannot read seeds {seeds!r}; use a range like 1-5 or a list like 1,3,7") from None
    return out


def technique_setting(entry) -> dict:
    """A technique name (its default knob) or a dict of knobs -> a dict of RunConfig knobs."""
    if isinstance(entry, str):
        return technique_knobs(entry)
    entry = dict(entry or {})
    name = entry.pop("technique", None)
    setting = technique_knobs(name) if name else {}
    bad = set(entry) - set(_KNOBS)
    if bad:
        raise ConfigError(f"unknown technique knobs {sorted(bad)}; use {list(_KNOBS)}")
    setting.update(entry)
    return setting


def expand(spec: SweepSpec) -> list[RunConfig]:
    """Every RunConfig of the grid, in a stable order (seed innermost)."""
    axes = {k: v if isinstance(v, list) else [v] for k, v in spec.hyperparameters.items()}
    bad = set(axes) - _CONFIG_FIELDS
    if bad:
        raise ConfigError(f"unknown hyperparameters {sorted(bad)}; RunConfig fields are {sorted(_CONFIG_FIELDS)}")
    configs = []
    for task, model, knobs in itertools.product(spec.tasks, spec.models, spec.techniques):
        task = tasks.get(task).name
        for values in itertools.product(*axes.values()):
            fields = dict(zip(axes, values), **knobs, **spec.per_task.get(task, {}))
            for seed in spec.seeds:
                configs.append(RunConfig(task=task, model=model, seed=seed, **fields))
    return configs


def configs_from_cli(args) -> list[RunConfig]:
    """`blurb finetune` arguments -> one config per seed."""
    knobs = technique_knobs(args.technique)
    for knob in _KNOBS:
        value = getattr(args, knob, None)
        if value is not None:
            knobs[knob] = value
    extra = {k: getattr(args, k) for k in ("lr", "batch_size", "epochs", "max_length", "train_limit") if getattr(args, k) is not None}
    return [RunConfig(task=tasks.get(args.task).name, model=args.model, seed=s, **knobs, **extra) for s in parse_seeds(args.seeds)]


def run_sweep(configs: list[RunConfig], out_dir, device: str = "cpu", progress: bool = True) -> pd.DataFrame:
    """Run every config not yet in the store; return the store's records for these configs.

    All configs are validated before the first run starts, so a typo fails in a second, not
    an hour in. Each record is written the moment its run ends.
    """
    for config in configs:
        config.validate()
    store = results.ResultsStore(out_dir)
    todo = [c for c in configs if not store.has(c.run_id)]
    if todo and progress:
        print(f"{len(configs) - len(todo)} of {len(configs)} runs already in {out_dir}; running {len(todo)}")
    for config in tqdm(todo, desc="runs", disable=not progress):
        store.write(run(config, device=device, progress=False))  # one bar over runs, not one per run
    return records_for(configs, out_dir)


def records_for(configs: list[RunConfig], out_dir) -> pd.DataFrame:
    """The stored records of exactly these configs (a notebook's view of a shared store)."""
    store = results.ResultsStore(out_dir)
    wanted = [store.get(c.run_id) for c in configs]
    rows = []
    for record in wanted:
        if record is not None:
            row = {k: v for k, v in record.items() if k != "config"}
            row.update(record["config"])
            rows.append(row)
    return pd.DataFrame(rows)


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
    """Examples per split and mean words per example (a proxy for sub-word length)."""
    spec = tasks.get(task)
    stats = {}
    for split in tasks.present_splits(task):
        data = tasks.load(task, splits=[split])[split]
        words = sum(len(" ".join(map(str, data[f])).split()) if f != "tokens" else sum(map(len, data[f])) for f in spec.text_fields)
        stats[split] = (len(data), words / max(len(data), 1))
    return stats


def _run_seconds(config: RunConfig, device: str) -> float:
    kind = "cuda" if device.startswith("cuda") else "cpu"
    count = _split_stats(tasks.get(config.task).name)["train"][0]
    steps = -(-min(count, config.train_limit or count) // config.batch_size) * config.epochs
    return _run_flops(config) / EFFECTIVE_FLOPS[kind] + steps * STEP_OVERHEAD_S[kind] + RUN_OVERHEAD_S[kind]


def _run_flops(config: RunConfig) -> float:
    spec = tasks.get(config.task)
    max_length = config.max_length or spec.max_length
    stats = _split_stats(spec.name)
    spec = models.get(config.model)
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


@dataclass(frozen=True)
class Plan:
    n_runs: int
    n_done: int
    estimated_hours: float
    device: str
    by_task: pd.DataFrame


def plan(configs: list[RunConfig], device: str = "cpu", out_dir=None) -> Plan:
    """Number of runs and a compute estimate, so a `paper` user knows the GPU hours first."""
    store = results.ResultsStore(out_dir) if out_dir else None
    rows = []
    for config in configs:
        done = bool(store and store.has(config.run_id))
        rows.append({"task": config.task, "model": config.model, "runs": 1, "done": int(done),
                     "hours": 0.0 if done else _run_seconds(config, device) / 3600})
    frame = pd.DataFrame(rows)
    by_task = frame.groupby(["task", "model"], as_index=False)[["runs", "done", "hours"]].sum() if rows else frame
    return Plan(len(configs), int(frame["done"].sum()) if rows else 0, float(frame["hours"].sum()) if rows else 0.0, device, by_task)


def format_plan(p: Plan) -> str:
    lines = [f"{p.n_runs} runs ({p.n_done} already done); estimated {p.estimated_hours:.2f} h "
             f"({p.estimated_hours * 60:.1f} min) on {p.device} for the rest"]
    if len(p.by_task):
        table = p.by_task.assign(minutes=p.by_task["hours"] * 60).drop(columns="hours")
        lines.append(table.to_string(index=False, float_format=lambda x: f"{x:.1f}"))
    return "\n".join(lines)
