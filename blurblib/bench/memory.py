"""Peak training memory against the number of frozen lower blocks (the SlimFit question).

Each measurement runs in a fresh Python process (`python -m blurblib.bench memory-probe`),
so its peak RSS is its own; `SavedTensorMeter` counts the activation bytes autograd keeps
for backward, per block, which shows that frozen blocks keep none.
"""
from __future__ import annotations

import contextlib
import copy
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..core.errors import ConfigError
from ..encoders import models
from ..training import optim, techniques, train
from ..workbook.efficiency import FREEZE_FRACTIONS, MEMORY_TASK, freeze_depths


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
    optimizer = optim.optimizer(groups, config.lr)
    trainable = [p for p in net.parameters() if p.requires_grad]
    generator = torch.Generator().manual_seed(seed)
    vocab = int(net.config.vocab_size)
    num_labels = int(net.config.num_labels)

    def batch(length):
        ids = torch.randint(1000 if vocab > 2000 else 0, vocab, (batch_size, length), generator=generator)
        labels = torch.randint(0, num_labels, (batch_size,), generator=generator)
        return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device), "labels": labels.to(device)}

    def step(inputs):
        optim.step(net(**inputs).loss, trainable, optimizer, None, config.max_grad_norm)  # a schedule costs no memory

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
        # the device-independent step total (as `slimfit.StepMemory` accounts every run's steps)
        "accounted_mb": (n_params * 4 + n_trainable * 12) / 2**20 + meter.total_mb,
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
