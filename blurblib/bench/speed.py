"""Training throughput: blurblib's loop against two configurations of `transformers.Trainer`.

Three arms, same model, head, tasks, batch size, examples, seed, one epoch and torch threads,
all starting from the very same token ids:

* (a) `baseline` - the HF example scripts (LinkBERT's `run_seqcls.py` / `run_ner.py`): every
  sequence padded to the task's max length (`padding="max_length"`), a plain Trainer with its
  default settings, fp32.
* (b) `tuned_trainer` - the same Trainer given its own best options here: length-grouped batches
  with dynamic padding (`DataCollatorWithPadding` / `DataCollatorForTokenClassification`),
  bf16 autocast where the device computes bf16 natively (`precision.resolve("auto")`), the fused
  AdamW kernel; dataloader defaults. What it got is recorded per row (`precision`, `optim`).
* (c) `blurblib` - `train.run` exactly as a sweep calls it (dynamic padding, length-grouped
  batches, fused AdamW, inference-mode evaluation) at `precision.resolve("auto")`.

So c/a is what blurblib gains over the scripts people copy, c/b what it gains over the Trainer
configured as well as the Trainer allows.

Every row also says how much of the computed work was model work: the real (non-padding) and
computed (padded) tokens of the batches the arm trained on, counted from their attention masks
(the Trainers' through their collator, blurblib's from the very loader `train.run` builds), the
padding share 1 - real / computed, the model FLOPs of the real tokens (`flops`: 6 N T plus
attention's 12 L H T^2 per sequence), their rate, and MFU: that rate over this machine's measured
matmul peak in the arm's precision.
"""
from __future__ import annotations

import functools
import tempfile
import time

import numpy as np
import pandas as pd
import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

from ..analysis.efficiency_findings import BASELINE, BLURBLIB, TUNED, throughput_ratios
from ..core import precision
from ..core.errors import ConfigError
from ..data import encoding, tasks
from ..encoders import models
from ..training import optim, train
from ..workbook.efficiency import THROUGHPUT_TASKS
from . import flops


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


def best_precision(device: str = "cpu") -> str:
    """What arms (b) and (c) train in: bf16 autocast where `device` computes bf16 natively, else fp32."""
    return precision.resolve("auto", device)


@functools.cache
def fused_adamw(device: str = "cpu") -> bool:
    """Whether `optim.optimizer` (what blurblib trains with) gets the fused AdamW kernel on `device`."""
    weight = torch.zeros(4, device=device, requires_grad=True)
    return bool(optim.optimizer([weight], 1e-3).defaults.get("fused"))


@functools.cache
def trainer_optim(device: str = "cpu") -> tuple[str, str]:
    """The Trainer's fused AdamW (`optim="adamw_torch_fused"`) if this transformers knows the name
    and torch has the kernel on `device` (`fused_adamw`), else `adamw_torch`.
    Returns (optim, why) - `why` is "" unless it fell back."""
    from transformers.training_args import OptimizerNames

    if "adamw_torch_fused" not in {o.value for o in OptimizerNames}:
        return "adamw_torch", "this transformers has no adamw_torch_fused"
    if not fused_adamw(device):
        return "adamw_torch", f"fused AdamW unavailable on {device}"
    return "adamw_torch_fused", ""


def _bench_config(task: str, model: str, n_examples: int, batch_size: int, seed: int,
                  run_precision: str = "fp32") -> train.RunConfig:
    """The stock transformers head the HF baseline has (`cls`, `token` for NER): all arms train
    the same model."""
    head = "token" if tasks.get(task).head_kind == "token_classification" else "cls"
    return train.RunConfig(task=task, model=model, train_limit=n_examples, eval_limit=n_examples, epochs=1,
                           batch_size=batch_size, seed=seed, head=head, precision=run_precision)


class _LoopTimer(TrainerCallback):
    """Trainer callback: wall time of the training loop only (setup excluded, as for blurblib)."""

    seconds = float("nan")

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_train_end(self, args, state, control, **kwargs):
        self.seconds = time.perf_counter() - self._start


def _trainer_args(out_dir: str, batch_size: int, seed: int, device: str, **options):
    """TrainingArguments with only what a benchmark needs: batch size (eval 2x, as blurblib's),
    one epoch, no checkpoint files, no logging integrations, no progress bar; plus `options`."""
    from transformers import TrainingArguments

    return TrainingArguments(output_dir=out_dir, per_device_train_batch_size=batch_size,
                             per_device_eval_batch_size=2 * batch_size, num_train_epochs=1, seed=seed,
                             report_to="none", save_strategy="no", disable_tqdm=True,
                             use_cpu=not device.startswith("cuda"), **options)


def _group_by_length_option() -> dict:
    """`group_by_length=True` in the TrainingArguments of this transformers: transformers 5 replaced
    the flag by `train_sampling_strategy="group_by_length"` (which also length-groups predict)."""
    import dataclasses

    from transformers import TrainingArguments

    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    if "train_sampling_strategy" in fields:
        return {"train_sampling_strategy": "group_by_length"}
    return {"group_by_length": True}


def _time_trainer(net, args, train_set, eval_set, collator) -> tuple[float, float, str, flops.TokenCount]:
    """Train one epoch (loop time only) then predict on `eval_set` (wall time). Also returns the
    precision the Trainer really computed in ("bf16" only if its accelerator autocasts to bf16)
    and the tokens of the batches it trained on."""
    from transformers import Trainer

    timer = _LoopTimer()
    counting = flops.CountingCollator(collator)
    trainer = Trainer(model=net, args=args, train_dataset=train_set, data_collator=counting, callbacks=[timer])
    trainer.remove_callback(PrinterCallback)  # without a progress bar it prints its metrics dict
    trainer.train()
    trained, counting.count = counting.count, flops.TokenCount()  # predict's batches are not training work
    start = time.perf_counter()
    trainer.predict(eval_set)
    eval_seconds = time.perf_counter() - start
    accelerator = trainer.accelerator
    used = "bf16" if accelerator.native_amp and str(accelerator.mixed_precision) == "bf16" else "fp32"
    return timer.seconds, eval_seconds, used, trained


def _work(net, task: str, trained: flops.TokenCount, n_train: int) -> dict:
    """The columns every arm reports about what it computed: tokens per example (padding included),
    real and computed tokens, the padding share, and the training FLOPs of the real tokens
    (`train_flops`, what MFU counts) and of the padded shapes (`computed_flops`)."""
    model = flops.flop_model(net, per_token_head=tasks.get(task).head_kind == "token_classification")
    return {"train_tokens_per_example": trained.computed_tokens / n_train, "real_tokens": trained.real_tokens,
            "computed_tokens": trained.computed_tokens, "padding_share": trained.padding_share,
            "train_flops": trained.real_flops(model), "computed_flops": trained.computed_flops(model)}


def baseline_arm(task: str, model: str = "minilm-l6", n_examples: int = 128, batch_size: int = 16,
                 device: str = "cpu", seed: int = 1) -> dict:
    """(a) The peer baseline: padding="max_length" + a plain `transformers.Trainer`, default settings, fp32.

    The eval batch size matches blurblib's (2x the train batch) so that the eval figure compares
    padding and inference mode, not batch size. The default optimizer is whatever this transformers
    defaults to (`adamw_torch_fused` from torch 2.8 on, `optim` records it).
    """
    from transformers import default_data_collator, set_seed

    config = _bench_config(task, model, n_examples, batch_size, seed)
    set_seed(seed)
    net, tokenizer = models.load(model, task)
    _, encoded = train.prepare_data(config, tokenizer)
    max_length = baseline_max_length(task, tokenizer)
    train_set = pad_to_max_length(encoded["train"], task, tokenizer, max_length)
    eval_set = pad_to_max_length(encoded["dev"], task, tokenizer, max_length)
    with tempfile.TemporaryDirectory() as out_dir:
        args = _trainer_args(out_dir, batch_size, seed, device)
        train_seconds, eval_seconds, used, trained = _time_trainer(net, args, train_set, eval_set,
                                                                   default_data_collator)
    return {"arm": BASELINE, "task": task, "n_train": len(train_set), "n_eval": len(eval_set),
            "train_seconds": train_seconds, "eval_seconds": eval_seconds,
            **_work(net, task, trained, len(train_set)), "mean_length": float(np.mean(encoded["train"]["length"])),
            "precision": used, "optim": str(getattr(args.optim, "value", args.optim)), "note": ""}


def tuned_trainer_arm(task: str, model: str = "minilm-l6", n_examples: int = 128, batch_size: int = 16,
                      device: str = "cpu", seed: int = 1) -> dict:
    """(b) The same `transformers.Trainer` with its own best options here: length-grouped batches
    and dynamic padding (`DataCollatorWithPadding`, `DataCollatorForTokenClassification` for NER: the
    collators of the HF example scripts when they do not pad to max length),
    `bf16=True` where `precision.resolve("auto", device)` says the device computes bf16 natively
    (on a CPU the Trainer needs `use_cpu`; accelerate then runs forward passes - predict included -
    under CPU bf16 autocast), `optim="adamw_torch_fused"` (or `adamw_torch` where unavailable:
    `note` says why). Dataloader settings stay at their defaults."""
    from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding, set_seed

    run_precision = best_precision(device)
    optimizer_name, note = trainer_optim(device)
    config = _bench_config(task, model, n_examples, batch_size, seed)
    set_seed(seed)
    net, tokenizer = models.load(model, task)
    _, encoded = train.prepare_data(config, tokenizer)
    columns = [c for c in encoding.MODEL_COLUMNS if c in encoded["train"].column_names]
    train_set, eval_set = encoded["train"].select_columns(columns), encoded["dev"].select_columns(columns)
    if tasks.get(task).head_kind == "token_classification":
        collator = DataCollatorForTokenClassification(tokenizer, label_pad_token_id=encoding.IGNORE_INDEX)
    else:
        collator = DataCollatorWithPadding(tokenizer)
    with tempfile.TemporaryDirectory() as out_dir:
        options = dict(bf16=run_precision == "bf16", **_group_by_length_option())
        try:
            args = _trainer_args(out_dir, batch_size, seed, device, optim=optimizer_name, **options)
        except ValueError as err:  # this transformers rejects the optimizer name for this device
            if optimizer_name == "adamw_torch":
                raise
            note = f"TrainingArguments rejected {optimizer_name}: {err}".splitlines()[0][:200]
            optimizer_name = "adamw_torch"
            args = _trainer_args(out_dir, batch_size, seed, device, optim=optimizer_name, **options)
        train_seconds, eval_seconds, used, trained = _time_trainer(net, args, train_set, eval_set, collator)
    if used != run_precision:
        note = "; ".join(filter(None, [note, f"asked the Trainer for {run_precision}, it computed in {used}"]))
    return {"arm": TUNED, "task": task, "n_train": len(train_set), "n_eval": len(eval_set),
            "train_seconds": train_seconds, "eval_seconds": eval_seconds,
            **_work(net, task, trained, len(train_set)), "mean_length": float(np.mean(encoded["train"]["length"])),
            "precision": used, "optim": optimizer_name, "note": note}


def blurblib_arm(task: str, model: str = "minilm-l6", n_examples: int = 128, batch_size: int = 16,
                 device: str = "cpu", seed: int = 1) -> dict:
    """(c) blurblib's own path: `train.run` exactly as a sweep calls it (its loop timer), at
    `precision.resolve("auto", device)`, then `train.predict_logits` on the same eval examples in
    that precision, timed the same way as the Trainers' predict. Its tokens are counted from the
    loader `train.run` trains on, rebuilt with the run's seed: the same length-grouped batches."""
    run_precision = best_precision(device)
    config = _bench_config(task, model, n_examples, batch_size, seed, run_precision)
    record = train.run(config, device=device, progress=False)
    net, tokenizer = models.load(model, task)
    net.to(device)
    _, encoded = train.prepare_data(config, tokenizer)
    trained = flops.count_batches(train._loader(encoded["train"], encoding.collator(task, tokenizer, head=config.head),
                                                batch_size, torch.Generator().manual_seed(config.seed)))
    collate = encoding.collator(task, tokenizer)
    start = time.perf_counter()
    train.predict_logits(net, encoded["dev"], collate, batch_size, device, dtype=run_precision)
    eval_seconds = time.perf_counter() - start
    n_train = record["n_train"]
    return {"arm": BLURBLIB, "task": task, "n_train": n_train, "n_eval": len(encoded["dev"]),
            "train_seconds": n_train / record["train_examples_per_s"], "eval_seconds": eval_seconds,
            **_work(net, task, trained, n_train), "mean_length": float(np.mean(encoded["train"]["length"])),
            "precision": run_precision, "optim": "adamw_torch_fused" if fused_adamw(device) else "adamw_torch", "note": ""}


ARMS = {BASELINE: baseline_arm, TUNED: tuned_trainer_arm, BLURBLIB: blurblib_arm}  # the interleaving order


def throughput(task_names=THROUGHPUT_TASKS, model: str = "minilm-l6", n_examples: int = 128, batch_size: int = 16,
               reps: int = 3, device: str = "cpu", warmup: bool = True, log=print, threads: int | None = None,
               arms=tuple(ARMS)) -> pd.DataFrame:
    """Interleaved repetitions (a, b, c, a, b, c, ...) per task: see the module docstring for the arms.

    One row per (task, rep, arm) with train and eval examples/s, the arm's precision and
    optimizer, and the torch threads it ran with: `threads` (default: the process's current
    count) is set before every arm, so all three compute with the same number. A short untimed
    warm-up of every arm first, so none pays the process's one-time costs (kernel selection,
    imports).

    The work columns (`_work`: real and computed tokens, `padding_share`, `train_flops`) come
    with `train_flop_s` (real-token training FLOPs / loop seconds), `peak_flop_s` (this machine's
    matmul peak in the arm's precision at the same threads, `flops.matmul_peak_flops`, measured
    once before the first arm) and `mfu` = train_flop_s / peak_flop_s.
    """
    for task in task_names:
        tasks.get(task)  # an unknown name fails now, not after the first task's repetitions
    models.get(model)
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise ConfigError(f"unknown throughput arm(s) {unknown}; use {', '.join(ARMS)}")
    arms = [a for a in ARMS if a in arms]  # always a, b, c order
    before = torch.get_num_threads()
    threads = int(threads or before)
    rows = []
    try:
        peaks = flops.matmul_peaks(device, threads)  # before any arm: every precision an arm can compute in
        if log:
            log(f"matmul peak at {threads} torch threads: " + ", ".join(f"{p} {v / 1e9:.1f} GFLOP/s" for p, v in peaks.items()))
        if warmup:
            for name in arms:
                torch.set_num_threads(threads)
                ARMS[name](task_names[0], model, batch_size, batch_size, device)
        for task in task_names:
            for rep in range(reps):
                for name in arms:
                    torch.set_num_threads(threads)
                    row = ARMS[name](task, model, n_examples, batch_size, device)
                    row.update(rep=rep, model=model, batch_size=batch_size, device=device,
                               torch_threads=torch.get_num_threads(),
                               train_examples_per_s=row["n_train"] / row["train_seconds"],
                               eval_examples_per_s=row["n_eval"] / row["eval_seconds"],
                               train_flop_s=row["train_flops"] / row["train_seconds"])
                    peak = flops.matmul_peak_flops(row["precision"], device, threads)  # cached: measured above
                    row.update(peak_flop_s=peak, mfu=row["train_flop_s"] / peak)
                    rows.append(row)
                    if log:
                        log(f"{task:13s} rep {rep} {name:13s} {row['precision']:4s} train "
                            f"{row['train_examples_per_s']:7.1f} ex/s   eval {row['eval_examples_per_s']:7.1f} ex/s   "
                            f"padding {row['padding_share']:4.0%}   MFU {row['mfu']:5.1%}")
    finally:
        torch.set_num_threads(before)
    return pd.DataFrame(rows)






def throughput_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per task: each arm's train and eval examples/s (`<arm>_train_ex_s` median, `_min`, `_max`;
    same for `_eval_ex_s`), tokens per example, precision; the ratios c/a (`train_ratio_*`,
    `eval_ratio_*`) and c/b (`train_ratio_tuned_*`, `eval_ratio_tuned_*`) as median/min/max over
    repetitions. Where `df` has the work columns, also each arm's `<arm>_padding_share`,
    `_real_tokens`, `_computed_tokens` (per repetition), `_gflop_s` (real-token training GFLOP/s,
    median/min/max), `_peak_gflop_s` and `_mfu` (median/min/max). A last row holds the geometric
    mean over tasks of each ratio column."""
    ratios = throughput_ratios(df)
    ratio_cols = [c for c in ratios.columns if "ratio" in c]
    arms = [a for a in ARMS if a in set(df["arm"])]
    rows = []
    by_task = dict(tuple(ratios.groupby("task", sort=False)))
    for task in (t for t in dict.fromkeys(df["task"]) if t in by_task):  # the order the tasks ran in
        group = by_task[task]
        by_arm = df[df["task"] == task].groupby("arm")
        row = {"task": task, "reps": len(group)}
        for arm in arms:
            g = by_arm.get_group(arm)
            for what in ("train", "eval"):
                values = g[f"{what}_examples_per_s"]
                row[f"{arm}_{what}_ex_s"] = float(values.median())
                row[f"{arm}_{what}_ex_s_min"] = float(values.min())
                row[f"{arm}_{what}_ex_s_max"] = float(values.max())
        for col in ratio_cols:
            row[f"{col}_median"] = float(group[col].median())
            row[f"{col}_min"] = float(group[col].min())
            row[f"{col}_max"] = float(group[col].max())
        for arm in arms:
            row[f"{arm}_tokens_per_ex"] = float(by_arm.get_group(arm)["train_tokens_per_example"].median())
        if "precision" in df.columns:
            for arm in arms:
                row[f"{arm}_precision"] = "/".join(sorted(set(by_arm.get_group(arm)["precision"])))
        if "mfu" in df.columns:
            for arm in arms:
                row.update(_work_summary(by_arm.get_group(arm), arm))
        rows.append(row)
    summary = pd.DataFrame(rows)
    if len(summary):
        geo = {"task": "geometric mean", "reps": int(summary["reps"].min())}
        for col in summary.columns:
            if "ratio" in col:
                geo[col] = float(np.exp(np.log(summary[col]).mean()))
        summary = pd.concat([summary, pd.DataFrame([geo])], ignore_index=True)
    return summary


def _work_summary(rows: pd.DataFrame, arm: str) -> dict:
    """One arm's padding, real-token FLOP/s and MFU over its repetitions of one task."""
    gflop_s, mfu = rows["train_flop_s"] / 1e9, rows["mfu"]
    return {f"{arm}_padding_share": float(rows["padding_share"].median()),
            f"{arm}_real_tokens": float(rows["real_tokens"].median()),
            f"{arm}_computed_tokens": float(rows["computed_tokens"].median()),
            f"{arm}_gflop_s": float(gflop_s.median()), f"{arm}_gflop_s_min": float(gflop_s.min()),
            f"{arm}_gflop_s_max": float(gflop_s.max()), f"{arm}_peak_gflop_s": float(rows["peak_flop_s"].median() / 1e9),
            f"{arm}_mfu": float(mfu.median()), f"{arm}_mfu_min": float(mfu.min()), f"{arm}_mfu_max": float(mfu.max())}
