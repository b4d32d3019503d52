"""What a run costs before it runs: training FLOPs from the model's shape and the task's split sizes,
an effective FLOP/s per device and fixed per-step and per-run costs. Sweeps plan with it, `dryrun`
costs whole reproductions with it."""
from __future__ import annotations

import functools

from ..core.errors import BlurbError
from ..data import tasks
from ..encoders import models
from ..training.config import RunConfig

# Effective training throughput in FLOP/s (6 x non-embedding params x tokens per second),
# measured on this project's 2-core CPU with minilm-l6 and the BERT-base shape; the GPU
# figure assumes ~25% of an H100's dense bf16 peak, typical for BERT fine-tuning.
EFFECTIVE_FLOPS = {"cpu": 1.0e11, "cuda": 2.0e14}
# Fixed costs the FLOP count misses: per optimizer step (kernel launches, Python) and per run
# (model load, tokenisation). They dominate small models on a GPU.
STEP_OVERHEAD_S = {"cpu": 0.0, "cuda": 0.03}
RUN_OVERHEAD_S = {"cpu": 3.0, "cuda": 15.0}


@functools.lru_cache(maxsize=None)
def split_stats(task: str) -> dict:
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
    """What the plan expects `config` to take on `device`: its FLOPs at the effective rate, plus fixed costs."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    return run_flops(config) / EFFECTIVE_FLOPS[kind] + train_steps(config) * STEP_OVERHEAD_S[kind] + RUN_OVERHEAD_S[kind]


def train_steps(config: RunConfig) -> int:
    """Optimisation steps of a run: batches per epoch times epochs."""
    count = split_stats(tasks.get(config.task).name)["train"][0]
    return -(-min(count, config.train_limit or count) // config.batch_size) * config.epochs


def run_flops(config: RunConfig) -> float:
    spec = tasks.get(config.task)
    max_length = config.max_length or spec.max_length
    stats = split_stats(spec.name)
    spec = model_shape(config.model)
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


def model_shape(name: str) -> models.ModelSpec:
    """The model's registry entry or folder; a pretraining arm not built yet (its folder absent)
    is costed as the registry model its folder name starts with (`minilm-l6-pubmed-...`)."""
    try:
        return models.get(name)
    except BlurbError:
        base = models.derived_from(name)
        if base is None:
            raise
        return models.get(base)
