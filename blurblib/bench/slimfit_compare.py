"""SlimFit against static freezing and standard fine-tuning, at the same frozen fraction.

SlimFit (`blurblib.training.slimfit`) claims 2.2x lower fine-tuning memory on average, up to 3.1x, at
<= 0.4 points of accuracy. Static freezing of the lower blocks (notebook 06's memory curve) already
cuts memory, so the question is what SlimFit's schedule and 8-bit store add over it. The arms
(`training.slimfit_arms`), the same for the score runs (`workbook.efficiency`) and the memory probe:

* `standard`     - every layer trains;
* `static`       - the embeddings and the lower blocks frozen for the whole run, as many layers
                   as SlimFit freezes each step (`matched_freeze_layers`);
* `slimfit`      - SlimFit's inter-layer scheduling at `SLIMFIT_RATE` (0.9);
* `slimfit-int8` - the same, with what frozen blocks keep for backward stored as int8;
* `slimfit-faithful` - SlimFit as its authors built it (`FAITHFUL_KNOBS`): single weight tensors
                   scheduled, biases always trained, their 4/8-bit activations and LayerNorm pruning
                   (memory by default; score runs in `faithful_sweep`, the >= 1,000-step grid).

Memory is measured per arm in a fresh process (`measure_slimfit_memory`), as `memory.measure_memory`
does for static freezing, over a few full-size steps: the peak over the steps is the arm's. Beside
the process peak, each arm's steps are accounted device-independently (`slimfit.StepMemory`: saved
for backward + weights + gradients + optimizer state), as every training run's record is.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import torch

from ..core.errors import ConfigError
from ..encoders import models
from ..training import optim, slimfit, techniques, train
from ..training.slimfit_arms import ARMS, FAITHFUL_KNOBS, SLIMFIT_RATE, arm_knobs, frozen_per_step, scheduled_units  # noqa: F401 (re-exported)
from ..workbook.efficiency import MEMORY_TASK
from .memory import _proc_status_mb, peak_rss_mb, reset_peak_rss

# ----------------------------------------------------------------------------- memory


def slimfit_probe(model: str = "minilm-l6", knobs: dict | None = None, seq_len: int = 256, batch_size: int = 16,
                  steps: int = 2, device: str = "cpu", seed: int = 1) -> dict:
    """Peak training memory of one arm in THIS process (call it through `measure_slimfit_memory`).

    As `memory.memory_probe`: AdamW steps on random token ids (memory does not depend on their
    values), fp32, CPU peak RSS (`VmHWM`, reset after loading) or CUDA max allocated. Warm-up first,
    so the optimizer state exists before the full-size steps, as in any run after its first steps:
    one 8-token step for a static arm, SlimFit's whole first cycle for a SlimFit arm (its first
    steps train every layer once, each creating that layer's Adam state). Then `steps` full-size
    steps; a SlimFit arm follows its schedule, and takes one more in which its lowest layer trains:
    the step every run takes in its first cycle, here with every layer's Adam state in place, as
    when a run trains that layer again later (a run that trains it only in its first cycle has at
    most the blocks' Adam state less then: 85 MB on minilm-l6, 680 MB on BERT-base; `peak_schedule_mb`
    is the peak without this step). Each step has its own peak (the mark is reset before it); the
    arm's `peak_mb` is the highest. `saved_mb` is what autograd keeps for backward in that
    step (`slimfit.SavedActivations`, the meter SlimFit runs use, int8 rows at their packed size).
    """
    knobs = dict(knobs or {})
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(seed)
    runtime_mb = _proc_status_mb("VmRSS") or peak_rss_mb()  # the Python runtime and libraries, no model yet
    config = train.RunConfig(task=MEMORY_TASK, model=model, seed=seed, **knobs)
    config.validate()
    net, _ = models.load(model, MEMORY_TASK)
    techniques.prepare(net, config)
    net.to(device).train()
    reset_peak_rss()
    loaded_mb = _proc_status_mb("VmRSS") or peak_rss_mb()
    optimizer = optim.optimizer(techniques.param_groups(net, config, config.lr, config.weight_decay), config.lr)
    trainable = [p for p in net.parameters() if p.requires_grad]
    meter = slimfit.attach(net, config, optimizer)  # SlimFit, or the meter alone (every arm is accounted alike)
    ils = meter if isinstance(meter, slimfit.SlimFit) else None
    generator = torch.Generator().manual_seed(seed)
    vocab, num_labels = int(net.config.vocab_size), int(net.config.num_labels)

    def batch(length):
        ids = torch.randint(1000 if vocab > 2000 else 0, vocab, (batch_size, length), generator=generator)
        labels = torch.randint(0, num_labels, (batch_size,), generator=generator)
        return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device), "labels": labels.to(device)}

    def step(inputs) -> dict:
        saved = meter.saved
        with meter.step():
            loss = net(**inputs).loss
        trained = [u.name for u, f in zip(ils.scheduler.units, ils.scheduler.frozen) if not f] if ils else []
        optim.step(loss, trainable, optimizer, None, config.max_grad_norm)  # a schedule costs no memory
        return {"trained": trained, "saved_mb": saved.bytes / 2**20, "quantized_tensors": saved.quantized_tensors}

    def peak() -> float:
        if cuda:
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() / 2**20
        return peak_rss_mb()

    for _ in range(math.ceil(len(ils.scheduler.units) / ils.scheduler.trainable_per_step) if ils else 1):
        step(batch(8))
    measured = []
    for i in range(steps + (1 if ils else 0)):
        lowest = ils is not None and i == steps
        if lowest:  # the highest score trains: the lowest scheduled layer, with the others ILS picks
            ils.scheduler.scores[0] = math.inf
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            reset_peak_rss()
        start = time.perf_counter()
        row = step(batch(seq_len))
        measured.append({"step": i, "lowest_layer_forced": lowest, **row, "peak_mb": peak(),
                         "seconds": time.perf_counter() - start})
    warmup = len(meter.memory.rows) - len(measured)
    accounted = [slimfit.StepMemory.total(r) / 2**20 for r in meter.memory.rows[warmup:]]
    summary = meter.close()
    schedule = [m for m in measured if not m["lowest_layer_forced"]]
    n_params = sum(p.numel() for p in net.parameters())
    return {
        "model": model, "pretrained": models.get(model).pretrained, "num_blocks": models.get(model).layers,
        "technique": config.technique, "knobs": knobs,
        "units": len(ils.scheduler.units) if ils else scheduled_units(model),
        "frozen_per_step": ils.scheduler.n_frozen if ils else frozen_per_step(model, knobs),
        "seq_len": seq_len, "batch_size": batch_size,
        "steps": len(measured), "device": device,
        "peak_mb": max(m["peak_mb"] for m in measured),
        "peak_schedule_mb": max(m["peak_mb"] for m in schedule),
        "peak_lowest_layer_mb": next((m["peak_mb"] for m in measured if m["lowest_layer_forced"]), None),
        "runtime_mb": runtime_mb, "loaded_rss_mb": loaded_mb,
        "saved_activation_mb": max(m["saved_mb"] for m in measured),
        "saved_activation_mb_mean": float(np.mean([m["saved_mb"] for m in measured])),
        # saved for backward + weights + gradients + optimizer state (`slimfit.StepMemory`), per measured step
        "accounted_peak_mb": max(accounted), "accounted_mean_mb": float(np.mean(accounted)),
        "n_params": n_params, "n_trainable": sum(p.numel() for p in trainable),
        "mean_trainable": summary.get("slimfit_mean_trainable_params", sum(p.numel() for p in trainable)),
        "step_seconds": float(np.median([m["seconds"] for m in measured])),
        "per_step": measured,
    }


def measure_slimfit_memory(model: str = "minilm-l6", knobs: dict | None = None, seq_len: int = 256,
                           batch_size: int = 16, steps: int = 2, device: str = "cpu", timeout: float = 1800) -> dict:
    """`slimfit_probe` in a fresh Python process, so its peak RSS is this arm's alone."""
    knobs = dict(knobs or {})
    train.RunConfig(task=MEMORY_TASK, model=model, **knobs).validate()  # fail here, with the fix, not in the child
    spec = json.dumps(dict(model=model, knobs=knobs, seq_len=seq_len, batch_size=batch_size, steps=steps, device=device))
    done = subprocess.run([sys.executable, "-m", "blurblib.bench", "slimfit-probe", spec], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"slimfit memory probe {spec} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def slimfit_memory(model_names=("minilm-l6", "bert-base-shape"), seq_len: int = 256, batch_size: int = 16,
                   steps: int = 2, reps: int = 1, device: str = "cpu", rate: float = SLIMFIT_RATE, int8: bool = True,
                   arms=ARMS, log=print) -> pd.DataFrame:
    """One fresh process per (rep, model, arm), reps the outer loop; one row each (`slimfit_probe`).
    `arms`: a subset of `ARMS` to measure (standard is what the others are compared with)."""
    unknown = set(arms) - set(ARMS)
    if unknown:
        raise ConfigError(f"unknown arms {sorted(unknown)}; choose from {', '.join(ARMS)}")
    rows = []
    for rep in range(reps):
        for name in model_names:
            for arm, knobs in arm_knobs(name, rate, int8, faithful=True).items():
                if arm not in arms:
                    continue
                row = {"arm": arm, "rep": rep, **measure_slimfit_memory(name, knobs, seq_len, batch_size, steps, device)}
                rows.append(row)
                if log:
                    log(f"{name:16s} {arm:13s} rep {rep}: peak {row['peak_mb']:7.0f} MB (schedule "
                        f"{row['peak_schedule_mb']:7.0f}), saved for backward {row['saved_activation_mb']:6.0f} MB, "
                        f"{row['step_seconds']:5.1f} s/step")
    return pd.DataFrame(rows)


def slimfit_memory_summary(memory: pd.DataFrame) -> pd.DataFrame:
    """Per model and arm: median peak, its cut against standard (per rep: median, min, max), the
    same cut on the peak above the runtime's RSS (Python and libraries, before the model is
    loaded: what a GPU's allocated memory would count), and what autograd kept for backward."""
    rows = []
    for (name, arm), group in memory.groupby(["model", "arm"], sort=False):
        base = memory[(memory["model"] == name) & (memory["arm"] == "standard")].set_index("rep")
        own = group.set_index("rep")
        cut = (base["peak_mb"] / own["peak_mb"]).dropna()
        above = ((base["peak_mb"] - base["runtime_mb"]) / (own["peak_mb"] - own["runtime_mb"])).dropna()
        first = group.iloc[0]
        rows.append({
            "model": name, "arm": arm, "technique": first["technique"],
            "frozen_per_step": f"{int(first['frozen_per_step'])}/{int(first['units'])}", "reps": len(group),
            "peak_mb": float(group["peak_mb"].median()), "peak_mb_min": float(group["peak_mb"].min()),
            "peak_mb_max": float(group["peak_mb"].max()),
            "cut_vs_standard": float(cut.median()) if len(cut) else float("nan"),
            "cut_min": float(cut.min()) if len(cut) else float("nan"),
            "cut_max": float(cut.max()) if len(cut) else float("nan"),
            "cut_above_runtime": float(above.median()) if len(above) else float("nan"),
            "peak_schedule_mb": float(group["peak_schedule_mb"].median()),
            "peak_lowest_layer_mb": float(pd.to_numeric(group["peak_lowest_layer_mb"]).median()),
            "runtime_mb": float(group["runtime_mb"].median()),
            "saved_activation_mb": float(group["saved_activation_mb"].median()),
            "saved_cut_vs_standard": float((base["saved_activation_mb"] / own["saved_activation_mb"]).median()),
            "trainable_M": float(first["mean_trainable"]) / 1e6,
        })
    return pd.DataFrame(rows)


