"""K seeds of one config trained together (stacked parameters + `torch.func.vmap`) against
K sequential runs: the same per-seed losses and weights, and the speed-up."""
from __future__ import annotations

import copy
import time
import warnings

import pandas as pd
import torch
from torch import nn

from ..data import encoding, tasks
from ..encoders import models
from ..training import optim, techniques, train
from .host import sync


def _no_dropout(net: nn.Module) -> nn.Module:
    """Training in eval mode: BERT has no batch norm, so this only switches dropout off (the
    equivalence check needs the same computation per seed, and vmap would draw other masks)."""
    return net.eval()


def _seed_batches(task: str, tokenizer, seeds, n_examples: int, batch_size: int, max_length: int, epochs: int):
    """Each seed's batches as train.run draws them (its own length-grouped order), materialised."""
    config = train.RunConfig(task=task, train_limit=n_examples, eval_limit=1, batch_size=batch_size,
                             max_length=max_length, epochs=epochs, head="cls")  # dev/test are not used here
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


class SequentialSeeds:
    """K ordinary runs, advanced one step at a time: the step of `train.run` (fused AdamW,
    warm-up then linear decay, clipping at max_grad_norm) for each seed in turn."""

    def __init__(self, nets, config: train.RunConfig, steps: int, device: str = "cpu"):
        self.device, self.max_grad_norm = device, config.max_grad_norm
        self.runs = []
        for net in nets:
            optimizer = optim.optimizer(techniques.standard_param_groups(net, config.lr, config.weight_decay),
                                             config.lr)
            self.runs.append((net, optimizer, optim.linear_schedule(optimizer, config.warmup_ratio, steps),
                              [p for p in net.parameters() if p.requires_grad]))

    def step(self, seed_batches) -> torch.Tensor:
        """One optimizer step of every seed on its own batch; the K losses."""
        losses = []
        for (net, optimizer, scheduler, trainable), batch in zip(self.runs, seed_batches):
            loss = net(**{k: v.to(self.device) for k, v in batch.items()}).loss
            optim.step(loss, trainable, optimizer, scheduler, self.max_grad_norm)
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
        self.optimizer = optim.optimizer(groups, config.lr)
        self.scheduler = optim.linear_schedule(self.optimizer, config.warmup_ratio, steps)
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
    config = train.RunConfig(task=task, model=model, batch_size=batch_size, max_length=max_length, epochs=epochs, head="cls")
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
            sync(device)
            start = time.perf_counter()
            losses[name].append(arms[name].step(step_batches))
            sync(device)
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
