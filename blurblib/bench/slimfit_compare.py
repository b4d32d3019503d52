"""SlimFit against static freezing and standard fine-tuning, at the same frozen fraction.

SlimFit (`blurblib.slimfit`) claims 2.2x lower fine-tuning memory on average, up to 3.1x, at
<= 0.4 points of accuracy. Static freezing of the lower blocks (notebook 06's memory curve) already
cuts memory, so the question is what SlimFit's schedule and 8-bit store add over it. Four arms,
the same for the score runs and the memory probe:

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

import dataclasses
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import torch

from .. import models, optim, slimfit, techniques, train
from ..errors import ConfigError
from .memory import _proc_status_mb, peak_rss_mb, reset_peak_rss
from .settings import MEMORY_TASK, SLIMFIT_RATE, SLIMFIT_SEEDS, for_profile

ARMS = ("standard", "static", "slimfit", "slimfit-int8", "slimfit-faithful")

# SlimFit as its authors built it: tensor units (biases always train), their compression, no warm-up.
FAITHFUL_KNOBS = {"slimfit_unit": "tensor", "slimfit_gelu_bits": 4, "slimfit_attention_bits": 8, "slimfit_ffn_bits": 8,
                  "slimfit_ln_keep": 0.1}
# Runs long enough for the schedule to mean something (the official ones: 3 GLUE epochs, thousands
# of steps): >= 1,000 optimizer steps at batch 16 (GAD 4,261 x 4 / 16 = 1,068; ChemProt 4,000 x 4 / 16
# = 1,000; NCBI-disease ~5,400 x 3 / 16 ~ 1,017). Data for `faithful_sweep`: not trained yet.
LONG_RUNS = {"GAD": {"train_limit": None, "epochs": 4, "batch_size": 16},
             "ChemProt": {"train_limit": 4000, "epochs": 4, "batch_size": 16},
             "NCBI-disease": {"train_limit": None, "epochs": 3, "batch_size": 16}}
LONG_RUN_SEEDS = (1, 2, 3, 4, 5)


def scheduled_units(model: str) -> int:
    """The layers SlimFit schedules on a model with nothing frozen beforehand: embeddings + blocks."""
    return models.get(model).layers + 1


def matched_freeze_layers(model: str, rate: float = SLIMFIT_RATE) -> int:
    """The static depth that freezes as many layers as SlimFit at `rate` freezes each step.

    SlimFit schedules the embedding stage and each block, L + 1 units, and freezes
    `int(rate * (L + 1))` of them every step; `freeze_layers=k` freezes the embeddings and the
    lower k blocks, k + 1 units. So k = int(rate * (L + 1)) - 1: on minilm-l6 (7 units) rate 0.9
    freezes 6 per step and k = 5 freezes the same 6 (embeddings + 5 of 6 blocks); on BERT-base
    (13 units) 11 and k = 10. Both arms then train one (minilm) or two (BERT-base) layers per step,
    plus the head; what differs is which: the top block always (static), or the layers whose
    weights still change most, re-chosen every step (SlimFit). Matching by layers, SlimFit's own
    unit of its freezing rate, is not matching by parameters: the embedding layer holds half of
    minilm-l6's weights (11.7M of 22.7M), so a SlimFit step that trains it trains more than a static one.
    """
    units = scheduled_units(model)
    frozen = slimfit.frozen_count(rate, units)
    if frozen < 2 or frozen >= units:
        raise ConfigError(f"slimfit_rate={rate:g} freezes {frozen} of {model}'s {units} layers each step; static "
                          "freezing can match 2 up to all but one (the embeddings and at least one block, leaving one "
                          f"to train): choose a rate from {2 / units:.3g} up to below 1")
    return frozen - 1


def arm_knobs(model: str, rate: float = SLIMFIT_RATE, int8: bool = True, faithful: bool = False) -> dict[str, dict]:
    """`{arm: RunConfig knobs}` for one model (the static depth depends on its number of blocks).
    `slimfit` is the block variant; `faithful` adds SlimFit as its authors built it (`FAITHFUL_KNOBS`)."""
    arms = {"standard": {}, "static": {"freeze_layers": matched_freeze_layers(model, rate)},
            "slimfit": {"slimfit_rate": rate}}
    if int8:
        arms["slimfit-int8"] = {"slimfit_rate": rate, "slimfit_quant_bits": 8}
    if faithful:
        arms["slimfit-faithful"] = {"slimfit_rate": rate, **FAITHFUL_KNOBS}
    return arms


def frozen_per_step(model: str, knobs: dict) -> int:
    """Layers (embedding stage, blocks) frozen during each step under an arm's knobs."""
    if knobs.get("slimfit_rate"):
        return slimfit.frozen_count(knobs["slimfit_rate"], scheduled_units(model))
    k = knobs.get("freeze_layers", 0)
    return k + 1 if k else 0


def arm_of(row) -> str:
    """Which arm a run (config or table row) belongs to, from its knobs (a record that predates the
    SlimFit fields reads them as off)."""
    def value(name):
        v = getattr(row, name, None) if not isinstance(row, (dict, pd.Series)) else row.get(name)
        return 0 if v is None or (isinstance(v, float) and math.isnan(v)) else v

    if value("slimfit_rate"):
        if value("slimfit_unit") == "tensor":
            return "slimfit-faithful"
        return "slimfit-int8" if value("slimfit_quant_bits") == 8 else "slimfit"
    if value("freeze_layers"):
        return "static"
    return "standard"


def slimfit_sweep(profile, seeds=None, rate: float = SLIMFIT_RATE, int8: bool = True):
    """The score runs of the comparison: the four arms on the profile's tasks and first model.

    The runs use the profile's per-task settings (`profile.sweep`), so the standard arm is the very
    runs notebooks 03 and 05 train (the results store serves them once) and every other arm differs
    from it only in its knobs. Seeds: `SLIMFIT_SEEDS` of the profile (default 1-3; every arm is
    paired with standard over (task, seed)), or `seeds`. The frozen fractions are matched as
    `matched_freeze_layers` says; its docstring is why that is the fair static baseline.
    """
    model = profile.models[0]
    return profile.sweep(models=[model], techniques=tuple(arm_knobs(model, rate, int8).values()),
                         seeds=tuple(seeds or for_profile(SLIMFIT_SEEDS, profile)))  # a rehearsal: its first seeds


def faithful_sweep(profile, seeds=LONG_RUN_SEEDS, rate: float = SLIMFIT_RATE, long_runs=None, warmup_ratio: float = 0.0):
    """SlimFit as its authors built it, its block variant, static freezing and standard, on runs of
    >= 1,000 steps (`LONG_RUNS`, the profile's other settings) over 5 seeds: the grid that decides
    SlimFit's claims. Every arm trains without warm-up, as the official scripts do (a paired
    comparison varies the technique alone). The profile's own short runs (`slimfit_sweep`) are
    the contrast."""
    model = profile.models[0]
    long_runs = long_runs or LONG_RUNS
    tasks = tuple(long_runs)
    spec = profile.sweep(tasks=tasks, models=[model], seeds=tuple(seeds),
                         techniques=tuple(arm_knobs(model, rate, int8=False, faithful=True).values()))
    per_task = {t: {**spec.per_task.get(t, {}), **long_runs[t], "warmup_ratio": warmup_ratio} for t in tasks}
    return dataclasses.replace(spec, per_task=per_task)


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


def memory_model_for(runs_model: str, memory: pd.DataFrame) -> str | None:
    """The measured model whose memory stands for a run's model: itself, its `-shape` twin, or one
    with as many blocks (a hub model's memory is its architecture's)."""
    measured = list(dict.fromkeys(memory["model"]))
    for name in (runs_model, f"{runs_model}-shape"):
        if name in measured:
            return name
    blocks = models.get(runs_model).layers if runs_model in models.MODELS else None
    return next((name for name in measured if name in models.MODELS and models.get(name).layers == blocks), None)
