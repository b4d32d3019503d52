"""The optimizer, its schedule and one training step, shared by every loop in the package.

Fine-tuning (`train.run`), continued MLM pretraining (`mlm.train_mlm`) and the benchmarks
all build AdamW with `optimizer`, schedule it with `linear_schedule` and take `step`: a
change to how blurblib optimises is one edit here, and no two loops can drift apart. Which
parameters are decayed, and at which learning rate each block trains, is `techniques.param_groups`.
"""
from __future__ import annotations

import math

import torch
from transformers import get_linear_schedule_with_warmup


def optimizer(groups, lr: float, bias_correction: bool = True) -> torch.optim.Optimizer:
    """AdamW (bias-corrected) with the fused kernel where torch has one (CPU and CUDA): one pass
    over the weights per step instead of several per tensor. On the 2-core CPU it makes
    minilm-l6's optimizer step ~5x faster, which is a third of a small-batch step; the maths is
    the same up to float rounding. transformers.Trainer also defaults to it (torch >= 2.8).

    `bias_correction=False` gives BERTAdam, the optimizer of the original BERT code, which
    Mosbach et al. (2021) found to be a main cause of failed fine-tuning runs on small data."""
    if not bias_correction:
        return BertAdam(groups, lr=lr)
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError):  # a device or dtype without the fused kernel
        return torch.optim.AdamW(groups, lr=lr)


class BertAdam(torch.optim.Optimizer):
    """AdamW without bias correction, as in the original BERT code (`BERTAdam`).

    Adam divides its moment estimates by 1 - beta**t; BERTAdam does not, so in its first steps
    the first moment is small and the second smaller still: the update m / sqrt(v) is about
    (1 - b1) / sqrt(1 - b2) = 3.2x larger than Adam's at step 1, shrinking to Adam's as t grows
    (after ~1/(1 - b2) = 1,000 steps it is within a few percent). Weight decay is decoupled, as
    in AdamW. torch has no switch for this, hence the few lines here.
    """

    def __init__(self, params, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.addcdiv_(m, v.sqrt().add_(group["eps"]), value=-group["lr"])
        return None


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
