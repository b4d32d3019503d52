"""Speed and memory measurements: what blurblib's training path costs, and what freezing saves.

Seed sweeps multiply every cost by seeds x techniques x tasks, so the notebooks and
`benchmarks/` measure four things, all through this module (the scripts only print and save):

* `throughput`       - blurblib's loop (`train.run`: dynamic padding, length-grouped batches,
                       inference-mode evaluation) against the peer baseline of the LinkBERT / HF
                       example scripts: every sequence padded to the task's max length, a plain
                       `transformers.Trainer` with default settings. Interleaved repetitions.
* `memory_vs_freezing` - peak training memory of a fresh process for k frozen lower blocks,
                       plus the activation bytes autograd actually keeps (saved-tensor hooks),
                       which shows that frozen blocks keep none.
* `seeds_parallel`   - K seeds trained together (`torch.func.stack_module_state` + `vmap`)
                       against K sequential runs: same per-seed losses, and the speed-up.
* `gpu_efficiency`   - bf16 autocast, SDPA and `torch.compile` on a GPU, as a fraction of its
                       peak FLOP/s; "skipped: no CUDA device" elsewhere.

`claims` turns the measurements into `stats.Comparison` rows with the project's verdict rule.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

from . import encoding, models, paths, stats, tasks, techniques, train
from .errors import ConfigError

THROUGHPUT_TASKS = ("BIOSSES", "GAD", "NCBI-disease")
FREEZE_FRACTIONS = (0.0, 0.25, 0.5, 0.75)  # k = 0, L/4, L/2, 3L/4 frozen blocks
SLIMFIT_MEMORY_CUT = 2.2  # SlimFit (Ardakani et al. 2023): average cut, up to 3.1x ...
SLIMFIT_SCORE_BUDGET = 0.4  # ... at <= 0.4 points of accuracy
THROUGHPUT_GOAL = 2.0
MEMORY_GOAL = 1.5
MEMORY_TASK = "GAD"  # the memory and GPU probes need a head: binary classification, the smallest


def machine() -> dict:
    """Where a figure was measured: it means little without this."""
    info = {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version()}
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    with contextlib.suppress(OSError, AttributeError):
        info["load_average_1min"] = round(os.getloadavg()[0], 2)  # other work on a shared machine
    return info


def machine_label() -> str:
    m = machine()
    gpu = f", GPU {m['gpu']}" if "gpu" in m else ""
    return f"{m['cpu_count']}-core CPU ({m['cpu']}), torch {m['torch']} with {m['torch_threads']} threads{gpu}"


# ----------------------------------------------------------------------------- 1. throughput


def pad_to_max_length(split, task: str, tokenizer, max_length: int):
    """The example scripts' `padding="max_length"`: every row padded to `max_length`.

    Starts from blurblib's own encoding, so both arms see the very same token ids and labels
    and differ only in padding. NER/PICO labels are padded with -100, as `run_ner.py` does.
    """
    spec = tasks.get(task)
    token_labels = spec.head_kind == "token_classification"
    columns = [c for c in encoding.MODEL_COLUMNS if c in split.column_names]

    def pad(batch):
        features = [{c: batch[c][i] for c in columns if c != "labels"} for i in range(len(batch["input_ids"]))]
        padded = tokenizer.pad(features, padding="max_length", max_length=max_length)
        out = {c: padded[c] for c in columns if c != "labels"}
        labels = batch["labels"]
        out["labels"] = [row + [encoding.IGNORE_INDEX] * (max_length - len(row)) for row in labels] if token_labels else labels
        return out

    with encoding._no_progress_bars():
        padded = split.select_columns(columns).map(pad, batched=True, batch_size=256)
    return padded.with_format("torch")


def baseline_max_length(task: str, tokenizer) -> int:
    """The task's BLURB length capped at the model's positions: what both arms truncate to."""
    return encoding._max_length(tasks.get(task), tokenizer, None)


def _bench_config(task: str, model: str, n_examples: int, batch_size: int, seed: int) -> train.RunConfig:
    return train.RunConfig(task=task, model=model, train_limit=n_examples, eval_limit=n_examples, epochs=1,
                           batch_size=batch_size, seed=seed)


class _LoopTimer(TrainerCallback):
    """Trainer callback: wall time of the training loop only (setup excluded, as for blurblib)."""

    seconds = float("nan")

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_train_end(self, args, state, control, **kwargs):
        self.seconds = time.perf_counter() - self._start


def baseline_arm(task: str, model: str = "minilm-l6", n_examples: int = 128, batch_size: int = 16,
                 device: str = "cpu", seed: int = 1) -> dict:
    """The peer baseline: padding="max_length" + a plain `transformers.Trainer`, default settings.

    Only what a benchmark needs is set: batch size, one epoch, no checkpoint files, no logging
    integrations, no progress bar. The eval batch size matches blurblib's (2x the train batch)
    so that the eval figure compares padding and inference mode, not batch size.
    """
    from transformers import Trainer, TrainingArguments, default_data_collator, set_seed

    config = _bench_config(task, model, n_examples, batch_size, seed)
    set_seed(seed)
    net, tokenizer = models.load(model, task)
    raw, encoded = train.prepare_data(config, tokenizer)
    max_length = baseline_max_length(task, tokenizer)
    train_set = pad_to_max_length(encoded["train"], task, tokenizer, max_length)
    eval_set = pad_to_max_length(encoded["dev"], task, tokenizer, max_length)
    timer = _LoopTimer()
    with tempfile.TemporaryDirectory() as out_dir:
        args = TrainingArguments(output_dir=out_dir, per_device_train_batch_size=batch_size,
                                 per_device_eval_batch_size=2 * batch_size, num_train_epochs=1, seed=seed,
                                 report_to="none", save_strategy="no", disable_tqdm=True,
                                 use_cpu=not device.startswith("cuda"))
        trainer = Trainer(model=net, args=args, train_dataset=train_set, data_collator=default_data_collator,
                          callbacks=[timer])
        trainer.remove_callback(PrinterCallback)  # without a progress bar it prints its metrics dict
        trainer.train()
        start = time.perf_counter()
        trainer.predict(eval_set)
        eval_seconds = time.perf_counter() - start
    return {"arm": "baseline", "task": task, "n_train": len(train_set), "n_eval": len(eval_set),
            "train_seconds": timer.seconds, "eval_seconds": eval_seconds,
            "train_tokens_per_example": float(max_length), "mean_length": float(np.mean(encoded["train"]["length"]))}


def blurblib_arm(task: str, model: str = "minilm-l6", n_examples: int = 128, batch_size: int = 16,
                 device: str = "cpu", seed: int = 1) -> dict:
    """blurblib's own path: `train.run` exactly as a sweep calls it (its loop timer), then
    `train.predict_logits` on the same eval examples, timed the same way as the baseline's predict."""
    config = _bench_config(task, model, n_examples, batch_size, seed)
    record = train.run(config, device=device, progress=False)
    net, tokenizer = models.load(model, task)
    net.to(device)
    _, encoded = train.prepare_data(config, tokenizer)
    collate = encoding.collator(task, tokenizer)
    start = time.perf_counter()
    train.predict_logits(net, encoded["dev"], collate, batch_size, device)
    eval_seconds = time.perf_counter() - start
    n_train = record["n_train"]
    return {"arm": "blurblib", "task": task, "n_train": n_train, "n_eval": len(encoded["dev"]),
            "train_seconds": n_train / record["train_examples_per_s"], "eval_seconds": eval_seconds,
            "train_tokens_per_example": _padded_tokens_per_example(encoded["train"], batch_size, seed),
            "mean_length": float(np.mean(encoded["train"]["length"]))}


def _padded_tokens_per_example(split, batch_size: int, seed: int) -> float:
    """Tokens the model actually processes per example under length-grouped dynamic padding."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    lengths = split["length"]
    order = list(LengthGroupedSampler(batch_size, lengths=lengths, generator=torch.Generator().manual_seed(seed)))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return sum(max(lengths[i] for i in b) * len(b) for b in batches) / len(order)


ARMS = {"baseline": baseline_arm, "blurblib": blurblib_arm}


def throughput(task_names=THROUGHPUT_TASKS, model: str = "minilm-l6", n_examples: int = 128, batch_size: int = 16,
               reps: int = 3, device: str = "cpu", warmup: bool = True, log=print) -> pd.DataFrame:
    """Interleaved repetitions (baseline, blurblib, baseline, blurblib, ...) per task.

    One row per (task, rep, arm) with train and eval examples/s. A short untimed warm-up of
    both arms first, so neither pays the process's one-time costs (kernel selection, imports).
    """
    for task in task_names:
        tasks.get(task)  # an unknown name fails now, not after the first task's repetitions
    models.get(model)
    if warmup:
        for arm in ARMS.values():
            arm(task_names[0], model, batch_size, batch_size, device)
    rows = []
    for task in task_names:
        for rep in range(reps):
            for name, arm in ARMS.items():
                row = arm(task, model, n_examples, batch_size, device)
                row.update(rep=rep, model=model, batch_size=batch_size, device=device,
                           train_examples_per_s=row["n_train"] / row["train_seconds"],
                           eval_examples_per_s=row["n_eval"] / row["eval_seconds"])
                rows.append(row)
                if log:
                    log(f"{task:13s} rep {rep} {name:8s} train {row['train_examples_per_s']:7.1f} ex/s   "
                        f"eval {row['eval_examples_per_s']:7.1f} ex/s")
    return pd.DataFrame(rows)


def throughput_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """blurblib / baseline examples/s per (task, rep): each pair ran back to back."""
    wide = df.pivot_table(index=["task", "rep"], columns="arm", values=["train_examples_per_s", "eval_examples_per_s"])
    out = pd.DataFrame({
        "train_ratio": wide[("train_examples_per_s", "blurblib")] / wide[("train_examples_per_s", "baseline")],
        "eval_ratio": wide[("eval_examples_per_s", "blurblib")] / wide[("eval_examples_per_s", "baseline")],
    })
    return out.reset_index()


def throughput_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per task: examples/s of each arm (median) and the ratio's median/min/max; a last row holds
    the geometric mean over tasks of the median ratios."""
    ratios = throughput_ratios(df)
    rows = []
    for task, group in ratios.groupby("task", sort=False):
        arms = df[df["task"] == task].groupby("arm")
        rows.append({
            "task": task, "reps": len(group),
            "baseline_train_ex_s": float(arms.get_group("baseline")["train_examples_per_s"].median()),
            "blurblib_train_ex_s": float(arms.get_group("blurblib")["train_examples_per_s"].median()),
            "train_ratio_median": float(group["train_ratio"].median()),
            "train_ratio_min": float(group["train_ratio"].min()), "train_ratio_max": float(group["train_ratio"].max()),
            "eval_ratio_median": float(group["eval_ratio"].median()),
            "eval_ratio_min": float(group["eval_ratio"].min()), "eval_ratio_max": float(group["eval_ratio"].max()),
            "baseline_tokens_per_ex": float(arms.get_group("baseline")["train_tokens_per_example"].median()),
            "blurblib_tokens_per_ex": float(arms.get_group("blurblib")["train_tokens_per_example"].median()),
        })
    summary = pd.DataFrame(rows)
    if len(summary):
        geo = {"task": "geometric mean", "reps": int(summary["reps"].min())}
        for col in summary.columns:
            if "ratio" in col:
                geo[col] = float(np.exp(np.log(summary[col]).mean()))
        summary = pd.concat([summary, pd.DataFrame([geo])], ignore_index=True)
    return summary


# ----------------------------------------------------------------------------- 2. memory


def freeze_depths(num_blocks: int, fractions=FREEZE_FRACTIONS) -> list[int]:
    """k = 0, L/4, L/2, 3L/4 (rounded down), without duplicates."""
    return sorted({int(num_blocks * f) for f in fractions})


def check_freeze_depth(model: str, freeze_layers: int) -> None:
    """Fail in the parent, with the fix, before a child process is started."""
    blocks = models.get(model).layers
    if not isinstance(freeze_layers, int) or not 0 <= freeze_layers <= blocks:
        raise ConfigError(f"freeze_layers={freeze_layers!r} for {model}: use an integer from 0 to {blocks} "
                          f"(its number of encoder blocks)")


def _proc_status_mb(field: str) -> float | None:
    """`VmHWM` (peak RSS of this address space) or `VmRSS` from /proc/self/status, in MB."""
    with contextlib.suppress(OSError):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return None


def peak_rss_mb() -> float:
    """Peak RSS of this process. Linux `VmHWM`, not `getrusage`: ru_maxrss survives exec, so
    a child started from a big parent would report the parent's size at fork time."""
    hwm = _proc_status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Restart the peak-RSS mark at the current RSS (Linux clear_refs 5); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class SavedTensorMeter:
    """Counts what autograd keeps for backward, per region (embeddings, block_i, head).

    Parameters that autograd saves are the weights themselves (no extra memory) and are left
    out; views of one storage count once. A frozen prefix (no input requires grad) must show 0.
    """

    def __init__(self, model: nn.Module):
        parts = techniques.encoder_parts(model)
        self.param_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.seen: set[int] = set()
        self.region = "embeddings"
        self.bytes_by_region: dict[str, int] = {"embeddings": 0, **{f"block_{i}": 0 for i in range(parts.num_blocks)},
                                                "head": 0}
        self.count = 0
        self._handles = [parts.embeddings.register_forward_pre_hook(self._enter("embeddings"))]
        for i, block in enumerate(parts.blocks):
            self._handles.append(block.register_forward_pre_hook(self._enter(f"block_{i}")))
        self._handles.append(parts.blocks[-1].register_forward_hook(lambda *a: setattr(self, "region", "head")))

    def _enter(self, region):
        def hook(module, args):
            self.region = region
        return hook

    def _pack(self, tensor):
        try:
            storage = tensor.untyped_storage()
            key = storage.data_ptr()
        except (RuntimeError, NotImplementedError):  # wrapper tensors without a plain storage
            return tensor
        if key not in self.param_storages and key not in self.seen:
            self.seen.add(key)
            self.bytes_by_region[self.region] += storage.nbytes()
            self.count += 1
        return tensor

    @contextlib.contextmanager
    def recording(self):
        try:
            with torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t):
                yield self
        finally:
            for handle in self._handles:
                handle.remove()

    @property
    def total_mb(self) -> float:
        return sum(self.bytes_by_region.values()) / 2**20


def memory_probe(model: str = "minilm-l6", freeze_layers: int = 0, seq_len: int = 256, batch_size: int = 16,
                 steps: int = 2, device: str = "cpu", seed: int = 0) -> dict:
    """Train `steps` AdamW steps on random token ids with the bottom `freeze_layers` blocks frozen,
    in THIS process, and report its peak memory. Call it through `measure_memory` (a fresh
    process) for a clean peak.

    CPU: `peak_mb` is the peak RSS of the training phase (the mark is reset after loading, so
    a loading transient does not count; the RSS still holds the Python runtime and the
    weights). CUDA: `torch.cuda.max_memory_allocated` (weights included). The first step runs
    on an 8-token batch so that the optimizer state exists before the full-size steps (the
    real peak: weights + grads + Adam state + activations), at a fraction of a full step's cost.
    """
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(seed)
    task = MEMORY_TASK
    net, _ = models.load(model, task)
    config = train.RunConfig(task=task, model=model, freeze_layers=freeze_layers)
    techniques.prepare(net, config)
    net.to(device).train()
    load_peak_mb = peak_rss_mb()
    # Loading has its own transient peak (safetensors reads, random init); training's is what we want.
    reset = reset_peak_rss()
    loaded_mb = _proc_status_mb("VmRSS") or load_peak_mb
    groups = techniques.param_groups(net, config, config.lr, config.weight_decay)
    optimizer = train.make_optimizer(groups, config.lr)
    trainable = [p for p in net.parameters() if p.requires_grad]
    generator = torch.Generator().manual_seed(seed)
    vocab = int(net.config.vocab_size)
    num_labels = int(net.config.num_labels)

    def batch(length):
        ids = torch.randint(1000 if vocab > 2000 else 0, vocab, (batch_size, length), generator=generator)
        labels = torch.randint(0, num_labels, (batch_size,), generator=generator)
        return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device), "labels": labels.to(device)}

    def step(inputs):
        loss = net(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step(batch(8))
    meter = SavedTensorMeter(net)
    step_seconds = []
    for i in range(steps):
        start = time.perf_counter()
        if i == 0:
            with meter.recording():
                step(batch(seq_len))
        else:
            step(batch(seq_len))
        step_seconds.append(time.perf_counter() - start)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = peak_rss_mb()
    n_params = sum(p.numel() for p in net.parameters())
    n_trainable = sum(p.numel() for p in trainable)
    blocks = techniques.encoder_parts(net).num_blocks
    return {
        "model": model, "pretrained": models.get(model).pretrained, "num_blocks": blocks,
        "freeze_layers": freeze_layers, "seq_len": seq_len, "batch_size": batch_size, "steps": steps,
        "device": device, "peak_mb": peak, "loaded_rss_mb": loaded_mb, "load_peak_mb": load_peak_mb,
        "peak_is_training_only": reset or device.startswith("cuda"),
        "n_params": n_params, "n_trainable": n_trainable,
        "weights_mb": n_params * 4 / 2**20, "grads_mb": n_trainable * 4 / 2**20, "adam_state_mb": n_trainable * 8 / 2**20,
        "saved_activation_mb": meter.total_mb, "saved_tensors": meter.count,
        "saved_mb_by_region": {k: v / 2**20 for k, v in meter.bytes_by_region.items()},
        "step_seconds": float(np.median(step_seconds)),
    }


def measure_memory(model: str = "minilm-l6", freeze_layers: int = 0, seq_len: int = 256, batch_size: int = 16,
                   steps: int = 2, device: str = "cpu", timeout: float = 900) -> dict:
    """`memory_probe` in a fresh Python process, so the peak RSS is this measurement's alone."""
    check_freeze_depth(model, freeze_layers)
    spec = json.dumps(dict(model=model, freeze_layers=freeze_layers, seq_len=seq_len, batch_size=batch_size,
                           steps=steps, device=device))
    done = subprocess.run([sys.executable, "-m", "blurblib.bench", "memory-probe", spec], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"memory probe {spec} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def memory_vs_freezing(model_names=("minilm-l6", "bert-base-shape"), seq_len: int = 256, batch_size: int = 16,
                       steps: int = 2, reps: int = 1, fractions=FREEZE_FRACTIONS, device: str = "cpu",
                       log=print) -> pd.DataFrame:
    """One fresh process per (rep, model, k); reps are the outer loop so drifts spread evenly."""
    rows = []
    for rep in range(reps):
        for name in model_names:
            for k in freeze_depths(models.get(name).layers, fractions):
                row = measure_memory(name, k, seq_len, batch_size, steps, device)
                row["rep"] = rep
                rows.append(row)
                if log:
                    log(f"{name:16s} k={k:2d} rep {rep}: peak {row['peak_mb']:7.0f} MB, saved activations "
                        f"{row['saved_activation_mb']:6.0f} MB, {row['n_trainable'] / 1e6:5.1f}M trainable")
    return pd.DataFrame(rows)


def memory_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per model and k: median peak, peak relative to k=0 (median/min/max over reps) and the parts."""
    rows = []
    for (name, k), group in df.groupby(["model", "freeze_layers"], sort=True):
        base = df[(df["model"] == name) & (df["freeze_layers"] == 0)].set_index("rep")["peak_mb"]
        cut = (base / group.set_index("rep")["peak_mb"]).dropna()
        first = group.iloc[0]
        rows.append({
            "model": name, "pretrained": bool(first["pretrained"]), "num_blocks": int(first["num_blocks"]),
            "freeze_layers": int(k), "reps": len(group), "peak_mb": float(group["peak_mb"].median()),
            "peak_mb_min": float(group["peak_mb"].min()), "peak_mb_max": float(group["peak_mb"].max()),
            "cut_vs_k0_median": float(cut.median()) if len(cut) else float("nan"),
            "cut_vs_k0_min": float(cut.min()) if len(cut) else float("nan"),
            "cut_vs_k0_max": float(cut.max()) if len(cut) else float("nan"),
            "trainable_M": first["n_trainable"] / 1e6, "weights_mb": first["weights_mb"],
            "grads_plus_adam_mb": first["grads_mb"] + first["adam_state_mb"],
            "saved_activation_mb": float(group["saved_activation_mb"].median()),
            "frozen_blocks_saved_mb": float(sum(first["saved_mb_by_region"].get(f"block_{i}", 0.0) for i in range(int(k)))
                                            + (first["saved_mb_by_region"]["embeddings"] if k else 0.0)),
        })
    return pd.DataFrame(rows)


def parameter_table(model_names=("minilm-l6",), fractions=FREEZE_FRACTIONS) -> pd.DataFrame:
    """Trainable parameters per freezing depth: what the optimizer state and gradients scale with."""
    rows = []
    for name in model_names:
        spec = models.get(name)
        net, _ = models.load(name, MEMORY_TASK)
        total = sum(p.numel() for p in net.parameters())
        for k in freeze_depths(spec.layers, fractions):
            config = train.RunConfig(task=MEMORY_TASK, model=name, freeze_layers=k)
            probe = copy.deepcopy(net)
            techniques.prepare(probe, config)
            trainable = sum(p.numel() for p in probe.parameters() if p.requires_grad)
            rows.append({"model": name, "pretrained": spec.pretrained, "blocks": spec.layers, "frozen_blocks": k,
                         "params_M": round(total / 1e6, 2), "trainable_M": round(trainable / 1e6, 2),
                         "trainable_share": round(trainable / total, 3)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- 3. seeds in parallel


def _no_dropout(net: nn.Module) -> nn.Module:
    """Training in eval mode: BERT has no batch norm, so this only switches dropout off (the
    equivalence check needs the same computation per seed, and vmap would draw other masks)."""
    return net.eval()


def _seed_batches(task: str, tokenizer, seeds, n_examples: int, batch_size: int, max_length: int, epochs: int):
    """Each seed's batches as train.run draws them (its own length-grouped order), materialised."""
    config = train.RunConfig(task=task, train_limit=n_examples, eval_limit=1, batch_size=batch_size,
                             max_length=max_length, epochs=epochs)  # dev/test are not used here
    _, encoded = train.prepare_data(config, tokenizer)
    collate = encoding.collator(task, tokenizer)
    per_seed = []
    for seed in seeds:
        loader = train._loader(encoded["train"], collate, batch_size, torch.Generator().manual_seed(seed))
        per_seed.append([dict(b) for _ in range(epochs) for b in loader])
    return per_seed


def _seed_models(task: str, model: str, seeds, device: str):
    """One model per seed (the head drawn from that seed, as in train.run) and the tokenizer."""
    from transformers import set_seed

    nets, tokenizer = [], None
    for seed in seeds:
        set_seed(seed)
        net, tokenizer = models.load(model, task)
        nets.append(_no_dropout(net).to(device))
    return nets, tokenizer


def _schedule(optimizer, steps: int, warmup_ratio: float):
    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(optimizer, math.ceil(warmup_ratio * steps), steps)


class SequentialSeeds:
    """K ordinary runs, advanced one step at a time: the step of `train.run` (fused AdamW,
    warm-up then linear decay, clipping at max_grad_norm) for each seed in turn."""

    def __init__(self, nets, config: train.RunConfig, steps: int, device: str = "cpu"):
        self.device, self.max_grad_norm = device, config.max_grad_norm
        self.runs = []
        for net in nets:
            optimizer = train.make_optimizer(techniques.standard_param_groups(net, config.lr, config.weight_decay),
                                             config.lr)
            self.runs.append((net, optimizer, _schedule(optimizer, steps, config.warmup_ratio),
                              [p for p in net.parameters() if p.requires_grad]))

    def step(self, seed_batches) -> torch.Tensor:
        """One optimizer step of every seed on its own batch; the K losses."""
        losses = []
        for (net, optimizer, scheduler, trainable), batch in zip(self.runs, seed_batches):
            loss = net(**{k: v.to(self.device) for k, v in batch.items()}).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, self.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach())
        return torch.stack(losses)

    def weights(self) -> list[dict]:
        return [{n: p.detach().clone() for n, p in net.named_parameters()} for net, *_ in self.runs]


class ParallelSeeds:
    """The same K runs as one: parameters stacked along a new first axis, the forward vmapped.

    AdamW is elementwise, so one AdamW over the stacked tensors is K independent AdamWs; the
    only per-model coupling in the step is gradient clipping, done here with per-seed norms.
    `attention` picks the vmapped model's attention kernel ("sdpa" or "eager"); the results
    are the same within float tolerance. The nets are copied, not trained in place.
    """

    def __init__(self, nets, config: train.RunConfig, steps: int, pad_id: int, device: str = "cpu",
                 attention: str = "sdpa"):
        from torch.func import functional_call, stack_module_state, vmap

        self.params, self.buffers = stack_module_state(list(nets))
        template = copy.deepcopy(nets[0]).to("meta")
        template.set_attn_implementation(attention)
        names = {id(p): n for n, p in nets[0].named_parameters()}
        groups = []
        for group in techniques.standard_param_groups(nets[0], config.lr, config.weight_decay):
            groups.append({**{k: v for k, v in group.items() if k not in ("params", "param_names")},
                           "params": [self.params[names[id(p)]] for p in group["params"]]})
        self.optimizer = train.make_optimizer(groups, config.lr)
        self.scheduler = _schedule(self.optimizer, steps, config.warmup_ratio)
        self.trainable = [p for g in groups for p in g["params"]]
        self.token_labels = tasks.get(config.task).head_kind == "token_classification"
        self.pad_id, self.device, self.attention, self.max_grad_norm = pad_id, device, attention, config.max_grad_norm

        def loss_of(p, b, batch):
            return functional_call(template, (p, b), args=(), kwargs=batch).loss

        self.batched_loss = vmap(loss_of, in_dims=(0, 0, 0))

    def step(self, seed_batches) -> torch.Tensor:
        batch = _stack_step(seed_batches, self.pad_id, self.token_labels, self.device, self.attention)
        with warnings.catch_warnings():
            # CPU SDPA has no vmap batching rule yet: torch loops over the seeds and says so at every call.
            warnings.filterwarnings("ignore", message=".*batching rule.*")
            loss = self.batched_loss(self.params, self.buffers, batch)
            loss.sum().backward()  # seeds share no parameters: each gradient is its own seed's
        # clip_grad_norm_ per seed: the norm over all of a seed's gradients (a norm of per-tensor norms).
        norms = torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(p.grad.flatten(1), dim=1) for p in self.trainable]), dim=0)
        coef = (self.max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
        for p in self.trainable:
            p.grad.mul_(coef.view(-1, *([1] * (p.dim() - 1))))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()


def train_sequential(nets, batches, config: train.RunConfig, device: str = "cpu") -> torch.Tensor:
    """K ordinary runs (in place); `batches[k]` is seed k's list of batches. Losses, shape (K, steps)."""
    runs = SequentialSeeds(nets, config, len(batches[0]), device)
    return torch.stack([runs.step([b[i] for b in batches]) for i in range(len(batches[0]))], dim=1).cpu()


def train_parallel(nets, batches, config: train.RunConfig, pad_id: int, device: str = "cpu",
                   attention: str = "sdpa") -> tuple[torch.Tensor, dict]:
    """The same K runs as one (see `ParallelSeeds`). Losses (K, steps) and the stacked parameters."""
    run = ParallelSeeds(nets, config, len(batches[0]), pad_id, device, attention)
    losses = torch.stack([run.step([b[i] for b in batches]) for i in range(len(batches[0]))], dim=1).cpu()
    return losses, run.params


def _stack_step(batches, pad_id: int, token_labels: bool, device: str, attention: str = "sdpa") -> dict:
    """One step's K batches padded to a common length and stacked: (K, B, T).

    The attention mask goes in prepared, as (K, B, 1, 1, T): from a 2-D mask transformers takes a
    data-dependent branch ("is there any padding?") that vmap cannot trace. SDPA takes a
    boolean mask (True = attend); eager attention adds a float mask (0 or the dtype's minimum).
    """
    length = max(b["input_ids"].shape[1] for b in batches)
    stacked = {}
    for key in batches[0]:
        fill = {"input_ids": pad_id, "labels": encoding.IGNORE_INDEX}.get(key, 0)
        per_token = key != "labels" or token_labels  # HoC's multi-hot labels are (B, classes): not padded
        rows = [torch.nn.functional.pad(b[key], (0, length - b[key].shape[1]), value=fill) if per_token else b[key]
                for b in batches]
        stacked[key] = torch.stack(rows).to(device)
    keep = stacked["attention_mask"].bool()[:, :, None, None, :]
    if attention == "eager":
        stacked["attention_mask"] = torch.zeros(keep.shape, device=device).masked_fill(~keep, torch.finfo(torch.float32).min)
    else:
        stacked["attention_mask"] = keep
    return stacked


def seeds_parallel(k: int = 4, task: str = "GAD", model: str = "minilm-l6", n_examples: int = 64,
                   batch_size: int = 16, max_length: int = 64, epochs: int = 1, device: str = "cpu",
                   first_seed: int = 1, attention: str = "sdpa", parallel_first: bool = True,
                   warmup: bool = True) -> dict:
    """K seeds sequentially vs together; per-seed losses and final weights must agree.

    Seeds differ in the head's initialisation and the data order, as in `train.run`. Dropout
    is off in both arms (see `_no_dropout`). The two arms advance step by step, alternately
    (`parallel_first` says which goes first at step 0), each step timed on its own: on a shared
    machine both then see the same background load. Model building and data are outside the
    timers; with `warmup`, both arms first take one untimed step, so neither pays one-time costs.
    """
    seeds = list(range(first_seed, first_seed + k))
    config = train.RunConfig(task=task, model=model, batch_size=batch_size, max_length=max_length, epochs=epochs)
    nets, tokenizer = _seed_models(task, model, seeds, device)
    batches = _seed_batches(task, tokenizer, seeds, n_examples, batch_size, max_length, epochs)
    pad_id, steps = tokenizer.pad_token_id, len(batches[0])
    start_state = [copy.deepcopy(n.state_dict()) for n in nets]
    if warmup:
        first = [b[0] for b in batches]
        ParallelSeeds(nets, config, steps, pad_id, device, attention).step(first)
        SequentialSeeds(nets, config, steps, device).step(first)
        for net, state in zip(nets, start_state):
            net.load_state_dict(state)

    arms = {"parallel": ParallelSeeds(nets, config, steps, pad_id, device, attention),
            "sequential": SequentialSeeds(nets, config, steps, device)}
    seconds = {name: 0.0 for name in arms}
    losses = {name: [] for name in arms}
    for i in range(steps):
        step_batches = [b[i] for b in batches]
        order = ("parallel", "sequential") if (i % 2 == 0) == parallel_first else ("sequential", "parallel")
        for name in order:
            _sync(device)
            start = time.perf_counter()
            losses[name].append(arms[name].step(step_batches))
            _sync(device)
            seconds[name] += time.perf_counter() - start
    parallel_losses = torch.stack(losses["parallel"], dim=1).cpu()
    sequential_losses = torch.stack(losses["sequential"], dim=1).cpu()
    stacked = arms["parallel"].params
    param_diff = max(float((stacked[name][i].detach() - p).abs().max())
                     for i, weights in enumerate(arms["sequential"].weights()) for name, p in weights.items())
    loss_diff = float((parallel_losses - sequential_losses).abs().max())
    # The stacked batch is padded to the longest of the K seeds' batches: more tokens than K runs see.
    own_tokens = sum(b["input_ids"].numel() for seed_batches in batches for b in seed_batches)
    stacked_tokens = sum(k * max(b[i]["input_ids"].numel() for b in batches) for i in range(steps))
    return {"k": k, "task": task, "model": model, "device": device, "attention": attention,
            "steps_per_seed": steps, "batch_size": batch_size, "max_length": max_length,
            "token_overhead": stacked_tokens / own_tokens,
            "sequential_s": seconds["sequential"], "parallel_s": seconds["parallel"],
            "speedup": seconds["sequential"] / seconds["parallel"], "max_loss_diff": loss_diff,
            "max_param_diff": param_diff, "same_results": bool(loss_diff < 1e-4 and param_diff < 1e-3),
            "dropout": "off in both arms", "sequential_losses": sequential_losses.tolist(),
            "parallel_losses": parallel_losses.tolist()}


def seeds_parallel_runs(ks=(4, 8), reps: int = 1, log=print, **kwargs) -> pd.DataFrame:
    rows = []
    for rep in range(reps):
        for k in ks:
            row = seeds_parallel(k, parallel_first=rep % 2 == 0, **kwargs)
            row["rep"] = rep
            rows.append(row)
            if log:
                log(f"K={k} rep {rep}: sequential {row['sequential_s']:.2f} s, parallel {row['parallel_s']:.2f} s, "
                    f"speed-up {row['speedup']:.2f}x, max |loss diff| {row['max_loss_diff']:.1e}")
    return pd.DataFrame(rows)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------- 4. GPU efficiency

# Dense bf16 tensor-core peak FLOP/s from the vendors' data sheets (without sparsity).
PEAK_BF16_FLOPS = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12,
                   "L4": 121e12, "A10": 125e12}
GPU_MODES = ("fp32-eager", "bf16-eager", "bf16-sdpa", "bf16-sdpa-compile")


def peak_flops(device_name: str) -> float | None:
    for key in sorted(PEAK_BF16_FLOPS, key=len, reverse=True):
        if key in device_name:
            return PEAK_BF16_FLOPS[key]
    return None


def training_flops_per_step(net: nn.Module, batch_size: int, seq_len: int) -> float:
    """6 x (matmul weights of the blocks and head) x tokens, plus attention's 12 x L x T^2 x H per sequence."""
    parts = techniques.encoder_parts(net)
    dense = sum(m.weight.numel() for block in parts.blocks for m in block.modules() if isinstance(m, nn.Linear))
    dense += sum(m.weight.numel() for mod in (parts.pooler, *parts.head) if mod is not None
                 for m in mod.modules() if isinstance(m, nn.Linear))
    hidden = int(net.config.hidden_size)
    tokens = batch_size * seq_len
    return 6.0 * dense * tokens + 12.0 * parts.num_blocks * seq_len * seq_len * hidden * batch_size


def gpu_step_time(model: str, mode: str, seq_len: int = 128, batch_size: int = 32, steps: int = 20,
                  device: str = "cuda", warmup: int = 3) -> dict:
    """Seconds per training step of a shape-true model under one mode (median of `steps`)."""
    precision, attention, *rest = mode.split("-")
    compiled = rest == ["compile"]
    torch.manual_seed(0)
    net, _ = models.load(model, MEMORY_TASK)
    net.set_attn_implementation(attention)
    net.to(device).train()
    optimizer = train.make_optimizer(net.parameters(), 1e-5)
    forward = torch.compile(net) if compiled else net
    ids = torch.randint(1000, int(net.config.vocab_size), (batch_size, seq_len), device=device)
    labels = torch.randint(0, int(net.config.num_labels), (batch_size,), device=device)
    dtype = torch.bfloat16 if precision == "bf16" else None

    def step():
        with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype is not None):
            loss = forward(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    flops = training_flops_per_step(net, batch_size, seq_len)
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    peak = peak_flops(name)
    return {"model": model, "mode": mode, "seq_len": seq_len, "batch_size": batch_size, "device": name,
            "step_s_median": seconds, "step_s_min": float(np.min(times)), "step_s_max": float(np.max(times)),
            "examples_per_s": batch_size / seconds, "tflops": flops / seconds / 1e12,
            "fraction_of_peak": (flops / seconds / peak) if peak else float("nan")}


def gpu_efficiency(model_names=("bert-base-shape", "bert-large-shape"), modes=GPU_MODES, seq_len: int = 128,
                   batch_size: int = 32, steps: int = 20, device: str = "cuda", log=print) -> pd.DataFrame | None:
    """The GPU table, or None (after printing "skipped: no CUDA device") when there is no GPU."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        if log:
            log("skipped: no CUDA device")
        return None
    rows = []
    for name in model_names:
        for mode in modes:
            row = gpu_step_time(name, mode, seq_len, batch_size, steps, device)
            rows.append(row)
            if log:
                log(f"{name:18s} {mode:18s} {row['examples_per_s']:8.1f} ex/s  {row['tflops']:7.1f} TFLOP/s  "
                    f"{row['fraction_of_peak']:.1%} of peak")
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- profiles, sweeps, claims

# Memory and seed-parallel sizes per notebook profile (the throughput sizes live in profiles.py).
MEMORY_SETTINGS = {
    "smoke": dict(model_names=("minilm-l6",), seq_len=64, batch_size=4, steps=1, reps=1, fractions=(0.0, 0.5)),
    "default": dict(model_names=("minilm-l6", "bert-base-shape"), seq_len=256, batch_size=16, steps=1, reps=1),
    "full": dict(model_names=("minilm-l6", "bert-base-shape"), seq_len=256, batch_size=16, steps=2, reps=5),
    "paper": dict(model_names=("bert-base-shape", "bert-large-shape"), seq_len=256, batch_size=16, steps=2, reps=5),
}
SEED_SETTINGS = {
    "smoke": dict(ks=(2,), n_examples=4, batch_size=2, max_length=24, warmup=False),
    "default": dict(ks=(4, 8), n_examples=64, batch_size=16, max_length=64),
    "full": dict(ks=(4, 8), n_examples=128, batch_size=16, max_length=128, reps=3),
    "paper": dict(ks=(4, 8), n_examples=512, batch_size=32, max_length=128, reps=3),
}


def memory_settings(profile) -> dict:
    """Keyword arguments of `memory_vs_freezing` for a notebook profile (device included)."""
    return {**MEMORY_SETTINGS[profile.name], "device": profile.device}


def seed_settings(profile) -> dict:
    return {**SEED_SETTINGS[profile.name], "device": profile.device}


def freeze_sweep(profile, n_tasks: int = 2):
    """The score cost of each freezing depth: the profile's model on its first two tasks, at
    the depths its memory benchmark measures, with the profile's per-task run settings."""
    fractions = MEMORY_SETTINGS[profile.name].get("fractions", FREEZE_FRACTIONS)
    depths = freeze_depths(models.get(profile.models[0]).layers, fractions)
    return profile.sweep(tasks=profile.tasks[:n_tasks], models=profile.models[:1],
                         techniques=tuple({"freeze_layers": k} for k in depths))


def score_cost(runs: pd.DataFrame, score: str = "test_score") -> pd.DataFrame:
    """Per task and depth: mean score and its change from k=0 over the same seeds (points)."""
    rows = []
    for (task, k), group in runs.groupby(["task", "freeze_layers"], sort=True):
        base = runs[(runs["task"] == task) & (runs["freeze_layers"] == 0)].set_index("seed")[score]
        diff = (group.set_index("seed")[score] - base).dropna()
        rows.append({"task": task, "freeze_layers": int(k), "seeds": len(group), "mean_score": float(group[score].mean()),
                     "change_vs_k0": float(diff.mean()) if len(diff) else float("nan"),
                     "change_min": float(diff.min()) if len(diff) else float("nan"),
                     "change_max": float(diff.max()) if len(diff) else float("nan")})
    return pd.DataFrame(rows)


def _comparison(claim: str, effect: str, diff) -> stats.Comparison:
    """The project's rule on a signed effect (positive = the claim is right): mean, bootstrap CI,
    one-sided Wilcoxon p each way, `stats.verdict`."""
    diff = np.asarray(diff, dtype=float)
    if len(diff) == 0:
        return stats.Comparison(claim, effect, float("nan"), float("nan"), float("nan"), float("nan"), 0, "inconclusive")
    lo, hi = stats.bootstrap_ci(diff)
    p = stats.wilcoxon_greater(diff)
    return stats.Comparison(claim, effect, float(diff.mean()), lo, hi, p, len(diff),
                            stats.verdict(lo, hi, p, stats.wilcoxon_greater(-diff), len(diff)))


def _ratio_claim(claim: str, ratios, target: float, what: str) -> tuple[stats.Comparison, str]:
    """Claim "ratio >= target": effect log(ratio) - log(target) per pair (positive = claim right)."""
    ratios = np.asarray([r for r in ratios if r is not None and np.isfinite(r) and r > 0], dtype=float)
    diff = np.log(ratios) - np.log(target)
    comparison = _comparison(claim, f"log({what}) - log({target:g})", diff)
    if len(diff) == 0:
        return comparison, "not measured"
    observed = (f"{np.exp(diff.mean()) * target:.2f}x (min {ratios.min():.2f}, median {np.median(ratios):.2f}, "
                f"max {ratios.max():.2f}; n={len(ratios)})")
    return comparison, observed


def _memory_cuts(memory: pd.DataFrame, fraction: float) -> tuple[str | None, list[float]]:
    """Peak(k=0) / peak(k=fraction x L) per rep, for the largest model measured."""
    if memory is None or not len(memory):
        return None, []
    name = memory.sort_values("n_params")["model"].iloc[-1]
    rows = memory[memory["model"] == name]
    k = int(rows["num_blocks"].iloc[0] * fraction)
    base = rows[rows["freeze_layers"] == 0].set_index("rep")["peak_mb"]
    frozen = rows[rows["freeze_layers"] == k].set_index("rep")["peak_mb"]
    return f"{name} k={k}", list((base / frozen).dropna())


def claims(throughput_df: pd.DataFrame | None = None, memory: pd.DataFrame | None = None,
           runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Claim vs observed, one `stats.Comparison` per row plus a readable `observed` column."""
    rows = []
    if throughput_df is not None and len(throughput_df):
        ratios = throughput_ratios(throughput_df)["train_ratio"]
        rows.append(_ratio_claim(f"blurblib trains >= {THROUGHPUT_GOAL:g}x the examples/s of the HF-Trainer max-length "
                                 "baseline (geometric mean over tasks)", ratios, THROUGHPUT_GOAL,
                                 "blurblib/baseline train examples/s"))
    which, cuts = _memory_cuts(memory, 0.5)
    rows.append(_ratio_claim(f"freezing half the blocks cuts peak training memory >= {MEMORY_GOAL:g}x ({which or 'BERT-base shape'})",
                             cuts, MEMORY_GOAL, "peak(k=0)/peak(k=L/2)"))
    which, cuts = _memory_cuts(memory, 0.75)
    rows.append(_ratio_claim(f"SlimFit: {SLIMFIT_MEMORY_CUT:g}x average memory cut, here with static freezing of the "
                             f"lower 3/4 of the blocks ({which or 'BERT-base shape'})", cuts, SLIMFIT_MEMORY_CUT,
                             "peak(k=0)/peak(k=3L/4)"))
    rows.append(_score_budget_claim(runs))
    table = stats.claims_table([c for c, _ in rows])
    table["observed"] = [o for _, o in rows]
    return table


def _score_budget_claim(runs: pd.DataFrame | None, fraction: float = 0.5) -> tuple[stats.Comparison, str]:
    """SlimFit's accuracy budget for half the blocks frozen: (score_k - score_0) + 0.4 > 0 per (task, seed)."""
    claim = f"SlimFit: freezing costs <= {SLIMFIT_SCORE_BUDGET:g} points (here: half the blocks frozen, static)"
    effect = f"test score(k=L/2) - score(k=0) + {SLIMFIT_SCORE_BUDGET:g} (points)"
    diff = []
    if runs is not None and len(runs):
        k = int(models.get(runs["model"].iloc[0]).layers * fraction)
        score = pd.to_numeric(runs["test_score"], errors="coerce")
        frame = runs.assign(score=score)
        base = frame[frame["freeze_layers"] == 0].set_index(["task", "seed"])["score"]
        frozen = frame[frame["freeze_layers"] == k].set_index(["task", "seed"])["score"]
        diff = list((frozen - base).dropna() + SLIMFIT_SCORE_BUDGET)
    comparison = _comparison(claim, effect, diff)
    if not diff:
        return comparison, "not measured"
    change = np.asarray(diff) - SLIMFIT_SCORE_BUDGET
    observed = f"{change.mean():+.2f} points (min {change.min():+.2f}, max {change.max():+.2f}; n={len(change)})"
    return comparison, observed


# ----------------------------------------------------------------------------- figures


def throughput_figure(df: pd.DataFrame):
    import matplotlib.pyplot as plt
    import seaborn as sns

    ratios = throughput_ratios(df)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    sns.barplot(data=df, x="task", y="train_examples_per_s", hue="arm", estimator="median", errorbar=("pi", 100),
                ax=axes[0])
    axes[0].set_ylabel("training examples / s")
    axes[0].set_title("throughput (bars: median of reps; whiskers: min-max)")
    sns.stripplot(data=ratios, x="task", y="train_ratio", size=7, ax=axes[1])
    axes[1].axhline(THROUGHPUT_GOAL, color="grey", ls="--", label=f"goal {THROUGHPUT_GOAL:g}x")
    axes[1].axhline(1.0, color="black", lw=0.8)
    axes[1].set_ylabel("blurblib / baseline")
    axes[1].set_title("speed-up per repetition")
    axes[1].legend()
    fig.tight_layout()
    return fig


def memory_figure(memory: pd.DataFrame, cost: pd.DataFrame | None = None):
    """Peak memory against k (left), with the saved activations; the score cost beside it (right)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    summary = memory_summary(memory)
    n = 2 if cost is not None and len(cost) else 1
    fig, axes = plt.subplots(1, n + 1, figsize=(4.6 * (n + 1), 3.6), squeeze=False)
    axes = axes[0]
    sns.lineplot(data=summary, x="freeze_layers", y="peak_mb", hue="model", marker="o", ax=axes[0])
    axes[0].set_title("peak training memory")
    axes[0].set_xlabel("frozen lower blocks k")
    axes[0].set_ylabel("MB (peak RSS; CUDA: max allocated)")
    sns.lineplot(data=summary, x="freeze_layers", y="saved_activation_mb", hue="model", marker="o", ax=axes[1])
    axes[1].set_title("activations kept for backward")
    axes[1].set_xlabel("frozen lower blocks k")
    axes[1].set_ylabel("MB")
    if n == 2:
        sns.pointplot(data=cost, x="freeze_layers", y="change_vs_k0", hue="task",
                      dodge=0.2 if cost["task"].nunique() > 1 else False, ax=axes[2])
        axes[2].axhline(-SLIMFIT_SCORE_BUDGET, color="grey", ls="--", label=f"-{SLIMFIT_SCORE_BUDGET:g} (SlimFit)")
        axes[2].axhline(0.0, color="black", lw=0.8)
        axes[2].set_title("score cost")
        axes[2].set_xlabel("frozen lower blocks k")
        axes[2].set_ylabel("test score change vs k=0 (points)")
        axes[2].legend(fontsize=8)
    fig.tight_layout()
    return fig


def seeds_figure(df: pd.DataFrame):
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    sns.pointplot(data=df, x="k", y="speedup", estimator="median", errorbar=("pi", 100), ax=ax)
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xlabel("seeds trained together (K)")
    ax.set_ylabel("sequential time / parallel time")
    ax.set_title(f"seeds in parallel ({df['device'].iloc[0]}): median, min-max")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- saving


def benchmarks_dir(quick: bool = False) -> Path:
    """`outputs/benchmarks/` (committed from a real run); `--quick` sanity runs go to
    `outputs/smoke/benchmarks/`, which git ignores and `make test` wipes."""
    return paths.outputs_dir() / ("smoke/benchmarks" if quick else "benchmarks")


def save_benchmark(name: str, tables: dict[str, pd.DataFrame], figure=None, meta: dict | None = None,
                   out_dir: Path | None = None) -> list[Path]:
    """`<name>.json` (machine, settings and every table's rows), one CSV per table, `<name>.png`."""
    out_dir = Path(out_dir) if out_dir is not None else benchmarks_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    payload = {"benchmark": name, "machine": machine(), "settings": meta or {},
               "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "tables": {key: json.loads(df.to_json(orient="records")) for key, df in tables.items()}}
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1) + "\n")
    written.append(path)
    for key, df in tables.items():
        path = out_dir / (f"{name}.csv" if key == name else f"{name}_{key}.csv")
        df.drop(columns=[c for c in df.columns if df[c].map(lambda v: isinstance(v, (list, dict))).any()]).to_csv(
            path, index=False, float_format="%.4g")
        written.append(path)
    if figure is not None:
        path = out_dir / f"{name}.png"
        figure.savefig(path, dpi=110, bbox_inches="tight")
        written.append(path)
    return written


def _range(median: float, lo: float, hi: float, fmt: str = ".2f", unit: str = "") -> str:
    return f"{median:{fmt}}{unit} ({lo:{fmt}}–{hi:{fmt}})"


def write_summary(out_dir: Path | None = None) -> Path:
    """SUMMARY.md from the saved JSON files: every figure as median (min–max), with its machine."""
    from .plots import to_markdown

    out_dir = Path(out_dir) if out_dir is not None else benchmarks_dir()
    loaded = {}
    for name in ("throughput", "memory", "seeds_parallel", "gpu"):
        path = out_dir / f"{name}.json"
        if path.is_file():
            loaded[name] = json.loads(path.read_text())
    lines = ["# Benchmarks", "", "Figures are median (min–max) over repetitions. Regenerate with `make bench`.", ""]
    machines = {json.dumps({k: v for k, v in d["machine"].items() if k != "load_average_1min"}, sort_keys=True)
                for d in loaded.values()}
    for m in machines:
        m = json.loads(m)
        lines.append(f"Machine: {m.get('cpu_count')}-core CPU ({m.get('cpu')}), torch {m.get('torch')} with "
                     f"{m.get('torch_threads')} threads" + (f", GPU {m['gpu']}" if m.get("gpu") else "") + ".")
    if "throughput" in loaded:
        d = loaded["throughput"]
        st = d["settings"]
        s = pd.DataFrame(d["tables"]["summary"])
        table = pd.DataFrame({
            "task": s["task"],
            "baseline train ex/s": s["baseline_train_ex_s"].map(lambda v: f"{v:.1f}" if v == v else "–"),
            "blurblib train ex/s": s["blurblib_train_ex_s"].map(lambda v: f"{v:.1f}" if v == v else "–"),
            "train speed-up": [_range(a, b, c, unit="x") for a, b, c in
                               zip(s["train_ratio_median"], s["train_ratio_min"], s["train_ratio_max"])],
            "eval speed-up": [_range(a, b, c, unit="x") for a, b, c in
                              zip(s["eval_ratio_median"], s["eval_ratio_min"], s["eval_ratio_max"])],
            "tokens/example (baseline → blurblib)": [f"{a:.0f} → {b:.0f}" if b == b else "" for a, b in
                                                      zip(s["baseline_tokens_per_ex"], s["blurblib_tokens_per_ex"])],
        })
        lines += ["", "## Training throughput: blurblib vs the HF example-script baseline", "",
                  f"{st['model']}, batch {st['batch_size']}, {st['examples']} training examples per run, "
                  f"{st['reps']} interleaved repetitions, {st['device']}. Baseline: {st['baseline']}. "
                  f"blurblib: {st['blurblib']}. The geometric-mean row is over the per-task values.", "",
                  to_markdown(table)]
    if "memory" in loaded:
        d = loaded["memory"]
        st = d["settings"]
        s = pd.DataFrame(d["tables"]["summary"])
        table = pd.DataFrame({
            "model": s["model"] + s["pretrained"].map(lambda p: "" if p else " (random init)"),
            "frozen blocks": s["freeze_layers"].astype(int).astype(str) + "/" + s["num_blocks"].astype(int).astype(str),
            "trainable M": s["trainable_M"].map(lambda v: f"{v:.1f}"),
            "peak MB": [_range(a, b, c, ".0f") for a, b, c in zip(s["peak_mb"], s["peak_mb_min"], s["peak_mb_max"])],
            "k=0 / k": [_range(a, b, c, unit="x") for a, b, c in
                        zip(s["cut_vs_k0_median"], s["cut_vs_k0_min"], s["cut_vs_k0_max"])],
            "saved activations MB": s["saved_activation_mb"].map(lambda v: f"{v:.0f}"),
            "kept by frozen blocks MB": s["frozen_blocks_saved_mb"].map(lambda v: f"{v:.1f}"),
        })
        lines += ["", "## Peak training memory vs frozen lower blocks", "",
                  f"seq {st['seq_len']}, batch {st['batch_size']}, AdamW, {st['reps']} repetition(s), one fresh "
                  f"process per measurement; {st['peak']}. Saved activations: bytes autograd keeps for backward "
                  "(saved-tensor hooks, parameters excluded).", "", to_markdown(table)]
    if "seeds_parallel" in loaded:
        d = loaded["seeds_parallel"]
        st = d["settings"]
        s = pd.DataFrame(d["tables"]["summary"])
        table = pd.DataFrame({
            "K": s["k"].astype(int), "sequential s": s["sequential_s"].map(lambda v: f"{v:.2f}"),
            "parallel s": s["parallel_s"].map(lambda v: f"{v:.2f}"),
            "speed-up": [_range(a, b, c, unit="x") for a, b, c in zip(s["speedup_median"], s["speedup_min"], s["speedup_max"])],
            "tokens, parallel / sequential": s["token_overhead"].map(lambda v: f"{v:.2f}") if "token_overhead" in s else "",
            "max abs. loss diff": s["max_loss_diff"].map(lambda v: f"{v:.1e}"),
            "max abs. weight diff": s["max_param_diff"].map(lambda v: f"{v:.1e}"),
            "same per-seed results": s["same_results"].map({True: "yes", False: "NO"}),
        })
        lines += ["", "## Seeds in parallel (vmap over stacked parameters) vs sequential", "",
                  f"{st['model']} on {st['task']}, {st['n_examples']} examples, batch {st['batch_size']}, max length "
                  f"{st['max_length']}, {st['device']}; {st['note']}.", "", to_markdown(table)]
    loads = {name: d["machine"].get("load_average_1min") for name, d in loaded.items()}
    if any(v is not None for v in loads.values()):
        lines += ["", "1-minute load average when each benchmark finished: " +
                  ", ".join(f"{k} {v}" for k, v in loads.items() if v is not None) +
                  f" (the benchmark's own {machine().get('torch_threads', 2)} threads account for about that many; "
                  "more means other work shared the CPU, which slows both arms of a comparison alike only "
                  "on average)."]
    lines += ["", "## GPU: bf16, SDPA, torch.compile", ""]
    if "gpu" in loaded:
        g = pd.DataFrame(loaded["gpu"]["tables"]["gpu"])
        table = g[["model", "mode", "examples_per_s", "step_s_median", "step_s_min", "step_s_max", "tflops",
                   "fraction_of_peak"]]
        lines.append(to_markdown(table, floatfmt=".3g"))
    else:
        lines.append("skipped: no CUDA device on the machine that ran `make bench`.")
    path = out_dir / "SUMMARY.md"
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------- child process entry


def _main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m blurblib.bench", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    probe = sub.add_parser("memory-probe", help="one memory measurement in this process; prints one JSON line")
    probe.add_argument("spec", help='JSON: {"model", "freeze_layers", "seq_len", "batch_size", "steps", "device"}')
    args = parser.parse_args(argv)
    try:
        spec = json.loads(args.spec)
    except json.JSONDecodeError as err:
        raise ConfigError(f"memory-probe needs a JSON object, got {args.spec!r}: {err}") from None
    allowed = {"model", "freeze_layers", "seq_len", "batch_size", "steps", "device", "seed"}
    if not isinstance(spec, dict) or set(spec) - allowed:
        raise ConfigError(f"memory-probe spec {args.spec!r}: use a JSON object with keys from {sorted(allowed)}")
    print(json.dumps(memory_probe(**spec)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
