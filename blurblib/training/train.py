"""One fine-tuning run, from a `RunConfig` to a result record.

A plain PyTorch loop rather than `transformers.Trainer`: layer-wise learning rates, frozen
blocks and best-dev-epoch selection are each one line here, and the whole path from data to
metric fits on a page. The protocol follows Tinn et al. / the BLURB fine-tuning recipe:
AdamW (bias-corrected), linear warm-up over the first 10% of steps then linear decay,
gradient clipping at 1.0, evaluation on dev after every epoch, test scored at the best dev epoch.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import functools
import math
import resource
import time

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import set_seed
from transformers.trainer_pt_utils import LengthGroupedSampler

from ..core import machine, precision
from ..data import encoding, metrics, tasks
from ..encoders import heads, models
from . import optim, slimfit, techniques
from .config import RunConfig
from .record import RunRecord

# Subsamples are drawn with a fixed seed so that every fine-tuning seed sees the same
# examples: the spread over seeds then measures fine-tuning instability, not sampling.
SUBSAMPLE_SEED = 0


class RunFailed(Exception):
    """A run that trained but produced no usable model (NaN loss, constant predictions)."""


def _subsample(split, limit: int | None):
    """A fixed random subset: files can be sorted (by label, by document), so the first
    `limit` rows would be a biased sample."""
    if limit is None or limit >= len(split):
        return split
    return split.shuffle(seed=SUBSAMPLE_SEED).select(range(limit))


def load_splits(task: str, train_limit: int | None, eval_limit: int | None):
    """The raw splits a run (or a frozen reference) sees: the fixed train subsample and capped dev/test."""
    raw = tasks.load(tasks.get(task).name)
    raw["train"] = _subsample(raw["train"], train_limit)
    for split in ("dev", "test"):
        raw[split] = _subsample(raw[split], eval_limit)
    return raw


@functools.lru_cache(maxsize=None)
def best_constant_score(task: str, split: str, eval_limit: int | None) -> float:
    """The best constant prediction's score on a run's dev or test split (`metrics.trivial_score`).

    Records keep the bar they were trained with; this recomputes it by today's rule, so a record
    written before the rule took the best constant (GAD: "1" everywhere, not the train majority)
    is judged like a new one."""
    raw = tasks.load(tasks.get(task).name, splits=[split])[split]
    return metrics.trivial_score(task, _subsample(raw, eval_limit)[tasks.get(task).target])


def prepare_data(config: RunConfig, tokenizer):
    """Raw and encoded splits for a run, encoded for its head."""
    raw = load_splits(config.task, config.train_limit, config.eval_limit)
    return raw, encoding.encode(raw, config.task, tokenizer, config.max_length, head=config.head)


def _loader(split, collate, batch_size: int, generator: torch.Generator | None) -> DataLoader:
    """Length-grouped batches: similar lengths share a batch, so dynamic padding pads little.

    Training batches are still random (the sampler shuffles mega-batches with `generator`);
    evaluation simply walks the split sorted by length.
    """
    columns = [c for c in split.column_names if c != "length"]
    lengths = split["length"]
    if generator is None:
        order = sorted(range(len(split)), key=lengths.__getitem__)
        sampler = order
    else:
        sampler = LengthGroupedSampler(batch_size, lengths=lengths, generator=generator)
    return DataLoader(split.select_columns(columns), batch_size=batch_size, sampler=sampler, collate_fn=collate)


@torch.inference_mode()
def predict_logits(model, split, collate, batch_size: int, device: str, dtype: str = "fp32") -> list[np.ndarray]:
    """Per-example logits in dataset order (unpadded for token tasks), in the run's precision."""
    model.eval()
    loader = _loader(split, collate, batch_size * 2, generator=None)
    order = loader.sampler
    out: list[np.ndarray | None] = [None] * len(split)
    position = 0
    for batch in loader:
        mask = batch.get("attention_mask")
        batch = {k: v.to(device) for k, v in batch.items() if k != "labels"}
        with precision.autocast(device, dtype):
            logits = model(**batch).logits.float().cpu().numpy()
        for row, example_logits in enumerate(logits):
            index = order[position]
            if example_logits.ndim == 2:  # token classification: drop padding
                example_logits = example_logits[: int(mask[row].sum())]
            out[index] = example_logits
            position += 1
    return out  # type: ignore[return-value]


def evaluate(model, task: str, encoded_split, raw_split, collate, batch_size: int, device: str,
             dtype: str = "fp32") -> tuple[float, list]:
    logits = predict_logits(model, encoded_split, collate, batch_size, device, dtype)
    predictions = encoding.decode(task, logits, encoded_split, raw_split)
    target = tasks.get(task).target
    return metrics.score(task, predictions, raw_split[target]), predictions


def _is_constant(predictions, token_level: bool = False) -> bool:
    """A degenerate model predicts the same thing for every input (for token tasks: the
    same tag for every token, usually all-O)."""
    if token_level:
        return len({tag for sentence in predictions for tag in sentence}) <= 1
    if predictions and isinstance(predictions[0], float):
        return float(np.std(predictions)) < 1e-6
    return len({tuple(p) if isinstance(p, list) else p for p in predictions}) <= 1


# Linear probing before fine-tuning (LP-FT, Kumar et al. 2022): the head alone, on the frozen
# encoder, at a learning rate a linear model on fixed features can take.
LINEAR_PROBE_LR = 1e-2


def linear_probe_phase(model, loader, config: RunConfig, device: str) -> list[float]:
    """Train only the head for `config.lpft_epochs` epochs, encoder frozen; return the losses.

    Why: a random head sends random gradients into the pretrained encoder during the first
    steps of fine-tuning and distorts the features it already has; a head fitted first on the
    frozen features starts fine-tuning from a sensible place. The encoder is frozen, so no
    activations are kept for it: an epoch costs about a forward pass.
    """
    head = heads.head_parameters(model)
    encoder = [p for p in model.base_model.parameters() if p.requires_grad]
    for p in encoder:
        p.requires_grad_(False)
    optimizer = optim.optimizer([{"params": head, "weight_decay": config.weight_decay}], LINEAR_PROBE_LR)
    losses = []
    try:
        model.train()
        for _ in range(config.lpft_epochs):
            for batch in loader:
                batch = {k: v.to(device) for k, v in batch.items()}
                with precision.autocast(device, config.precision):
                    loss = model(**batch).loss
                optim.step(loss, head, optimizer, None, config.max_grad_norm)
                losses.append(loss.item())
    finally:
        for p in encoder:
            p.requires_grad_(True)
    return losses


# Test sets small enough that their sampling matters as much as the seed's (BIOSSES has 20 pairs):
# records keep their per-example predictions, so an interval can resample test examples too.
SMALL_TEST_SET = 1000


def _keeps_predictions(spec, n_test: int) -> bool:
    return spec.head_kind != "token_classification" and n_test <= SMALL_TEST_SET


def _plain(predictions) -> list:
    """Predictions as JSON values (numpy floats and label lists made plain)."""
    return [float(p) if isinstance(p, (float, np.floating)) else (list(p) if isinstance(p, (list, tuple)) else p)
            for p in predictions]


def _peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run(config: RunConfig, device: str = "cpu", progress: bool = True, score_test: bool = True) -> RunRecord:
    """Fine-tune once and return the result record (see ARCHITECTURE.md, "Run records").

    `score_test=False` never reads the test split (`test_score` is None): recipes are chosen
    on dev, and only the final runs see test.

    A NaN/inf loss or a constant-prediction model returns `status="failed"` with the reason;
    any other exception propagates (it is a bug or bad input, not an unstable seed).
    """
    config.validate()
    spec = tasks.get(config.task)
    started = time.perf_counter()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    set_seed(config.seed)
    model, tokenizer = models.load(config.model, spec.name, head=config.head)
    generator = torch.Generator().manual_seed(config.seed)
    techniques.prepare(model, config, generator)
    model.to(device)
    raw, encoded = prepare_data(config, tokenizer)
    collate = encoding.collator(spec.name, tokenizer, head=config.head)
    evaluate_split = functools.partial(evaluate, model, spec.name, collate=collate, batch_size=config.batch_size,
                                       device=device, dtype=config.precision)

    groups = techniques.param_groups(model, config, config.lr, config.weight_decay)
    optimizer = optim.optimizer(groups, config.lr, bias_correction=config.adam_bias_correction)
    train_loader = _loader(encoded["train"], collate, config.batch_size, generator)
    scheduler = optim.linear_schedule(optimizer, config.warmup_ratio, len(train_loader) * config.epochs)
    trainable = [p for p in model.parameters() if p.requires_grad]
    ils = slimfit.attach(model, config, optimizer)  # None unless config.slimfit_rate: layers frozen step by step

    record: RunRecord = {
        "run_id": config.run_id,
        "config": dataclasses.asdict(config),
        "technique": config.technique,
        "status": "ok",
        "failure_reason": None,
        "n_train": len(encoded["train"]),
        "n_params": sum(p.numel() for p in model.parameters()),
        "n_trainable_params": sum(p.numel() for p in trainable),
        "model_pretrained": models.get(config.model).pretrained,
        "device": device,
        "machine": machine.describe(device),
        "torch_version": torch.__version__,
    }
    dev_curve, dev_degenerate, train_losses, best_dev, best_epoch, best_weights = [], [], [], -math.inf, None, None
    token_level = spec.head_kind == "token_classification"
    train_seconds, step = 0.0, 0
    bar = tqdm(total=len(train_loader) * config.epochs, desc=f"{config.task} {config.technique} s{config.seed}", disable=not progress, leave=False)
    try:
        if config.lpft_epochs:
            probe_losses = linear_probe_phase(model, train_loader, config, device)
            record["linear_probe_loss_last"] = float(np.mean(probe_losses[-10:]))
        for epoch in range(1, config.epochs + 1):
            model.train()
            epoch_start = time.perf_counter()
            for batch in train_loader:
                batch = {k: v.to(device) for k, v in batch.items()}
                with precision.autocast(device, config.precision), slimfit.step(ils):
                    loss = model(**batch).loss
                if not torch.isfinite(loss):
                    raise RunFailed(f"non-finite loss ({loss.item()}) at epoch {epoch}, step {step}")
                optim.step(loss, trainable, optimizer, scheduler, config.max_grad_norm)
                train_losses.append(loss.item())
                step += 1
                bar.update()
            train_seconds += time.perf_counter() - epoch_start
            dev_score, dev_predictions = evaluate_split(encoded["dev"], raw["dev"])
            dev_curve.append(dev_score)
            dev_degenerate.append(_is_constant(dev_predictions, token_level=token_level))
            # a collapsed epoch (GAD: "1" for every sentence scores F1 69) is chosen only if all are
            if best_epoch is None or (not dev_degenerate[-1], dev_score) > (not dev_degenerate[best_epoch - 1], best_dev):
                best_dev, best_epoch, predictions = dev_score, epoch, dev_predictions
                # a copy only when a later epoch could overwrite the weights that test must see
                best_weights = copy.deepcopy(model.state_dict()) if score_test and epoch < config.epochs else None
        test_score, split = None, "dev"
        if score_test:
            # the end of training first (what Mosbach et al. judge failure on), then the best dev epoch
            final_test, final_predictions = evaluate_split(encoded["test"], raw["test"])
            test_score, predictions = final_test, final_predictions
            if best_weights is not None:  # the best dev epoch was not the last
                model.load_state_dict(best_weights)
                test_score, predictions = evaluate_split(encoded["test"], raw["test"])
            split = "test"
            record.update(final_test_score=final_test,
                          final_test_degenerate=_is_constant(final_predictions, token_level=token_level))
            if _keeps_predictions(spec, len(predictions)):
                record["test_predictions"] = _plain(predictions)
        if _is_constant(predictions, token_level=token_level):
            # the score of a collapsed model is real (it is what fine-tuning produced): keep it
            record.update(status="failed", failure_reason=f"degenerate model: the same prediction for every {split} example")
    except RunFailed as failure:
        record.update(status="failed", failure_reason=str(failure))
        test_score = None
    finally:
        bar.close()

    record.update(
        dev_score=best_dev if best_epoch is not None else None,
        test_score=test_score,
        best_epoch=best_epoch,
        dev_curve=dev_curve,
        dev_degenerate=dev_degenerate,
        final_dev_score=dev_curve[-1] if dev_curve else None,
        train_loss_first=train_losses[0] if train_losses else None,
        train_loss_last=float(np.mean(train_losses[-10:])) if train_losses else None,
        trivial_test_score=metrics.trivial_score(spec.name, raw["test"][spec.target]) if score_test else None,
        trivial_dev_score=metrics.trivial_score(spec.name, raw["dev"][spec.target]),
        wall_time_s=time.perf_counter() - started,
        train_examples_per_s=(len(encoded["train"]) * len(dev_curve) / train_seconds) if train_seconds else None,
        peak_memory_mb=_peak_memory_mb(device),
        **slimfit.finish(ils),
        finished_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    return record
