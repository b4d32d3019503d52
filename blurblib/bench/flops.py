"""Model FLOPs of fine-tuning, the tokens it really computed, and this machine's matmul peak.

Examples/s says how fast an arm went; it cannot say how far from the hardware's limit that is,
nor how much of the work was padding. MFU (model FLOPs utilisation, Chowdhery et al. 2022,
PaLM appendix B) answers both: the FLOP/s an arm spends on the model's *real* (non-padding)
tokens over the peak FLOP/s of the precision it computed in. Padding is computed but is not
model work, so an arm that pads every sequence to the task's maximum length scores a low MFU
however busy the machine was.

Training FLOPs of one pass over sequences of real lengths T_1..T_n (`FlopModel.training_flops`):

    F = 6 * N_tok * sum(T_i)  +  6 * N_seq * n  +  12 * L * H * sum(T_i ** 2)

* N_tok: the weights of the `nn.Linear` layers every token goes through - the L encoder blocks
  (Q, K, V, attention output, the two feed-forward matrices), an embedding projection
  (ELECTRA) and a token-classification head.
* N_seq: the weights applied once per sequence - the pooler and a sequence-level head, which
  read the [CLS] state only. N = N_tok + N_seq are the encoder's and head's non-embedding
  matmul parameters; embedding lookups, biases, LayerNorm, softmax and GELU are elementwise
  (well under 1% of F) and left out, as is the optimizer step.
* 6 = 2 FLOPs per multiply-add x 3 (forward, backward to the activations, backward to the
  weights).
* 12 * L * H * T^2: per block, QK^T and AV are two T x T x H products, 2 * 2 * T^2 * H FLOPs
  forward, x 3 for training.

`TokenCount` counts, batch by batch from the attention masks, the real tokens and the computed
(padded) ones, so `padding_share = 1 - real / computed`. `matmul_peak_flops` times a large
matmul at the benchmark's thread count: the peak this machine reaches, not a data-sheet number.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from ..core import precision as precisions
from ..training import techniques
from .host import sync

MATMUL_SIZE = 2048  # fp32 2048^3 x 2 = 17 GFLOP: a fraction of a second on 2 cores, well past cache sizes
MATMUL_SIZE_CUDA = 8192  # a GPU needs larger matrices to approach its peak
MATMUL_REPS = 5  # best of: other work on a shared machine only ever slows a repetition down


def _linear_weights(modules) -> int:
    return sum(m.weight.numel() for mod in modules if mod is not None for m in mod.modules() if isinstance(m, nn.Linear))


@dataclass(frozen=True)
class FlopModel:
    """What the training FLOPs of an encoder with its head depend on (see the module docstring)."""

    per_token_params: int  # N_tok
    per_sequence_params: int  # N_seq
    num_layers: int  # L
    hidden: int  # H

    def training_flops(self, tokens: float, sequences: float, squared_lengths: float) -> float:
        """F for `sequences` sequences of `tokens` tokens in all, `squared_lengths` = sum of T_i^2."""
        return (6.0 * self.per_token_params * tokens + 6.0 * self.per_sequence_params * sequences
                + 12.0 * self.num_layers * self.hidden * squared_lengths)


def flop_model(net: nn.Module, per_token_head: bool) -> FlopModel:
    """The `FlopModel` of a BERT-style encoder with its head. `per_token_head`: the head labels every
    token (NER, PICO) rather than reading one state per sequence."""
    parts = techniques.encoder_parts(net)
    head = _linear_weights(parts.head)
    return FlopModel(per_token_params=_linear_weights((*parts.shared, *parts.blocks)) + (head if per_token_head else 0),
                     per_sequence_params=_linear_weights((parts.pooler,)) + (0 if per_token_head else head),
                     num_layers=parts.num_blocks, hidden=int(net.config.hidden_size))


@dataclass
class TokenCount:
    """Real and computed (padded) tokens of the batches a model was given, and the sums of their
    squared lengths that attention's FLOPs need."""

    sequences: int = 0
    real_tokens: int = 0
    computed_tokens: int = 0
    real_squared: int = 0  # sum of T_i^2 over sequences, T_i = the real length
    computed_squared: int = 0  # the same with every sequence at its batch's padded width

    def add(self, attention_mask) -> None:
        """One batch: `attention_mask` (batch x width) is 1 on real tokens, 0 on padding."""
        mask = torch.as_tensor(attention_mask)
        lengths = mask.reshape(-1, mask.shape[-1]).sum(-1).long()
        width = int(mask.shape[-1])
        self.sequences += int(lengths.numel())
        self.real_tokens += int(lengths.sum())
        self.computed_tokens += width * int(lengths.numel())
        self.real_squared += int((lengths * lengths).sum())
        self.computed_squared += width * width * int(lengths.numel())

    @property
    def padding_share(self) -> float:
        """The share of computed tokens that were padding (0 without padding)."""
        return 1.0 - self.real_tokens / self.computed_tokens if self.computed_tokens else float("nan")

    def real_flops(self, model: FlopModel) -> float:
        """The model FLOPs of the real tokens: what MFU counts."""
        return model.training_flops(self.real_tokens, self.sequences, self.real_squared)

    def computed_flops(self, model: FlopModel) -> float:
        """The FLOPs of the shapes actually computed, padding included."""
        return model.training_flops(self.computed_tokens, self.sequences, self.computed_squared)


def count_batches(batches) -> TokenCount:
    """The `TokenCount` of an iterable of collated batches (dicts with `attention_mask`)."""
    count = TokenCount()
    for batch in batches:
        count.add(batch["attention_mask"])
    return count


class CountingCollator:
    """A data collator that counts the tokens of every batch it builds into `self.count`: handed to
    a `transformers.Trainer`, it sees exactly the batches the Trainer trains on."""

    def __init__(self, collate):
        self.collate = collate
        self.count = TokenCount()

    def __call__(self, features):
        batch = self.collate(features)
        self.count.add(batch["attention_mask"])
        return batch


def matmul_peak_flops(precision: str = "fp32", device: str = "cpu", threads: int | None = None,
                      size: int | None = None, reps: int = MATMUL_REPS) -> float:
    """FLOP/s of the fastest of `reps` `size` x `size` matmuls in `precision` (fp32, bf16, auto) on
    `device`, with `threads` torch threads (default: the current count), after one untimed warm-up.
    Measured once per process and arguments (cached)."""
    precision = precisions.resolve(precision, device)  # `auto` -> the native one; an unknown name fails here
    size = int(size or (MATMUL_SIZE_CUDA if device.startswith("cuda") else MATMUL_SIZE))
    return _matmul_peak_flops(precision, device, int(threads or torch.get_num_threads()), size, int(reps))


@functools.cache
def _matmul_peak_flops(precision: str, device: str, threads: int, size: int, reps: int) -> float:
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        generator = torch.Generator().manual_seed(0)
        a, b = (torch.randn(size, size, generator=generator).to(device=device, dtype=dtype) for _ in range(2))
        torch.mm(a, b)
        best = math.inf
        for _ in range(max(reps, 1)):
            sync(device)
            start = time.perf_counter()
            torch.mm(a, b)
            sync(device)
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    return 2.0 * size ** 3 / best


def matmul_peaks(device: str = "cpu", threads: int | None = None, size: int | None = None) -> dict[str, float]:
    """{precision: FLOP/s} of `matmul_peak_flops` for fp32 and, where `device` computes it natively,
    bf16: every precision a benchmark arm computes in (`precision.resolve`)."""
    wanted = dict.fromkeys(["fp32", precisions.resolve("auto", device)])
    return {p: matmul_peak_flops(p, device, threads, size) for p in wanted}
