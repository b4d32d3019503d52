"""The optimizer, its schedule and one training step, shared by every loop in the package.

Fine-tuning (`train.run`), continued MLM pretraining (`pretrain.train_mlm`) and the benchmarks
all build AdamW with `optimizer`, schedule it with `linear_schedule` and take `step`: a
change to how blurblib optimises is one edit here, and no two loops can drift apart. Which
parameters are decayed, and at which learning rate each block trains, is `techniques.param_groups`.
"""
from __future__ import annotations

import math

import torch
from transformers import get_linear_schedule_with_warmup


def optimizer(groups, lr: float) -> torch.optim.AdamW:
    """AdamW (bias-corrected) with the fused kernel where torch has one (CPU and CUDA): one pass
    over the weights per step instead of several per tensor. On the 2-core CPU it makes
    minilm-l6's optimizer step ~5x faster, which is a third of a small-batch step; the maths is
    the same up to float rounding. transformers.Trainer also defaults to it (torch >= 2.8)."""
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError):  # a device or dtype without the fused kernel
        return torch.optim.AdamW(groups, lr=lr)


def linear_schedule(optimizer: torch.optim.Optimizer, warmup_ratio: float, total_steps: int):
    """BERT's schedule: linear warm-up over the first `warmup_ratio` of the steps, then linear
    decay to 0."""
    return get_linear_schedule_with_warmup(optimizer, math.ceil(warmup_ratio * total_steps), total_steps)


def step(loss: torch.Tensor, trainable, optimizer: torch.optim.Optimizer, scheduler, max_grad_norm: float) -> None:
    """Backward, clip the gradient norm, step the optimizer and the schedule (None: a constant
    learning rate), drop the gradients."""
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
