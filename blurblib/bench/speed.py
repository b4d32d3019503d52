"""Training throughput: blurblib's loop against the peer baseline of the HF example scripts.

The baseline pads every sequence to the task's max length and trains with a plain
`transformers.Trainer` (default settings); blurblib's arm is `train.run` exactly as a sweep
calls it (dynamic padding, length-grouped batches, inference-mode evaluation). Both arms
start from the same token ids, so they differ only in how the loop spends its time.
"""
from __future__ import annotations

import tempfile
import time

import numpy as np
import pandas as pd
import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

from .. import encoding, models, tasks, train
from .settings import THROUGHPUT_TASKS


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
    """The stock transformers head the HF baseline has (`cls`, `token` for NER): both arms train
    the same model."""
    head = "token" if tasks.get(task).head_kind == "token_classification" else "cls"
    return train.RunConfig(task=task, model=model, train_limit=n_examples, eval_limit=n_examples, epochs=1,
                           batch_size=batch_size, seed=seed, head=head)


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
