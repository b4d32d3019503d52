"""bf16 autocast, SDPA attention and `torch.compile` on a GPU, as a fraction of its peak FLOP/s, with the
steady-state steps' `torch.cuda.max_memory_allocated`."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..encoders import models
from ..training import optim
from ..workbook.efficiency import MEMORY_TASK
from . import flops
from .host import sync

# Dense bf16 tensor-core peak FLOP/s from the vendors' data sheets (without sparsity).
PEAK_BF16_FLOPS = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12,
                   "L4": 121e12, "A10": 125e12}
GPU_MODES = ("fp32-eager", "bf16-eager", "bf16-sdpa", "bf16-sdpa-compile")


def peak_flops(device_name: str) -> float | None:
    for key in sorted(PEAK_BF16_FLOPS, key=len, reverse=True):
        if key in device_name:
            return PEAK_BF16_FLOPS[key]
    return None


def max_allocated_mb(device: str) -> float | None:
    """`torch.cuda.max_memory_allocated` since the last reset (what SlimFit's memory claim is
    measured as on a GPU), in MiB; None off CUDA."""
    if not device.startswith("cuda"):
        return None
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


def training_flops_per_step(net: nn.Module, batch_size: int, seq_len: int) -> float:
    """`flops.FlopModel.training_flops` of one step of a sequence-classification model, every one of
    the `batch_size` sequences `seq_len` real tokens long."""
    model = flops.flop_model(net, per_token_head=False)
    return model.training_flops(batch_size * seq_len, batch_size, batch_size * seq_len * seq_len)


def gpu_step_time(model: str, mode: str, seq_len: int = 128, batch_size: int = 32, steps: int = 20,
                  device: str = "cuda", warmup: int = 3) -> dict:
    """Seconds per training step of a shape-true model under one mode (median of `steps`)."""
    precision, attention, *rest = mode.split("-")
    compiled = rest == ["compile"]
    torch.manual_seed(0)
    net, _ = models.load(model, MEMORY_TASK)
    net.set_attn_implementation(attention)
    net.to(device).train()
    optimizer = optim.optimizer(net.parameters(), 1e-5)
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
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        sync(device)
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    flops = training_flops_per_step(net, batch_size, seq_len)
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    peak = peak_flops(name)
    return {"model": model, "mode": mode, "seq_len": seq_len, "batch_size": batch_size, "device": name,
            "step_s_median": seconds, "step_s_min": float(np.min(times)), "step_s_max": float(np.max(times)),
            "examples_per_s": batch_size / seconds, "tflops": flops / seconds / 1e12,
            "max_memory_allocated_mb": max_allocated_mb(device),
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
