"""SlimFit (Ardakani et al., NAACL 2024): each step, freeze the weights that change least.

SlimFit cuts fine-tuning memory in two ways, both here:

* **Inter-layer scheduling (ILS).** Every step, the units whose weights moved least in the
  steps they last trained are frozen, `int(rate * n)` of the `n` scheduled units, so a fixed
  `n - int(rate * n)` train per step. A frozen weight does not require grad, so autograd keeps
  nothing for its gradient: a Linear saves no input, a LayerNorm no normalised input for its
  weight. What is still kept is what the gradient needs to pass *through* to a trainable weight
  below (attention's operands, the GELU input, dropout masks): SlimFit's "static activations".
* **Compressed static activations.** SlimFit's own switches (`Compression`): the GELU input at
  4 bits, the operands of attention's two matmuls at 8 bits, the input of the FFN output Linear
  at 8 bits, and a frozen LayerNorm keeping only the top 10% of its normalised input. The older
  variant's `bits=8` instead keeps every float tensor a frozen block saves as per-row int8.

The unit (`unit=`, `RunConfig.slimfit_unit`):

* `"tensor"`, as SlimFit's public code (github.com/arashardakani/SlimFit, the BERT task scripts'
  `ParameterDiffer` and training loop; `utils_ILS.py`, `ILSBERT.py` hold the layers): every weight
  with `p.dim() > 1` (embeddings, every Linear, the pooler and the classifier) and every LayerNorm
  weight is one unit; biases and LayerNorm biases are no units and train at every step. A unit's
  score is its mean relative change |w_t - w_{t-1}| / |w_{t-1}| in the step it last trained, as
  measured (no learning-rate correction); frozen units keep the score they had; scores start at
  random huge values, so the first steps visit every unit once in a random order.
* `"block"`, this project's first variant (the default of a `RunConfig`, so stored runs keep
  their meaning): the embedding stage and each encoder block are the units; freezing one
  freezes all its parameters, biases included; the head (and pooler) always train; the change
  is divided by the step's learning-rate factor (see `InterLayerScheduler.measure`).

Where the tensor variant differs from the official code, and why it must:

* weights that are exactly 0 are left out of the mean relative change (the official division
  makes the score inf or NaN, which then sorts as the largest and never freezes);
* a step at learning rate 0 (the first step of a linear warm-up) measures nothing: the official
  scripts train without warm-up, and a unit scored 0 there would stay frozen for the whole run;
  runs meant to be faithful set `warmup_ratio=0`, as the official scripts do;
* units frozen before training (`freeze_layers`, LP-FT's probe phase) are never scheduled;
* a frozen unit does not move: gradients are cleared to None here (`optim.step`), so AdamW skips
  it. Under torch < 2 the official loop's `zero_grad()` left zero gradients on units that had
  trained, and its AdamW then still moved them by momentum and weight decay; which torch the
  published numbers used is not stated.

Where the compression differs, and why (see `Compression`): the transformers models here drop
out attention *probabilities* (the official BERT drops out the values), so the probability
operand of the second matmul, up to 1/(1 - p), is kept at 7 fractional bits instead of 8 when
it exceeds 1, and the dropout mask (1 byte an entry) is kept beside it.

It composes with the other techniques: `freeze_layers` weights are never scheduled; LLRD keeps
its learning rates (a frozen unit only skips steps); re-initialised blocks are scheduled like any
other; LP-FT's probe phase runs first, untouched. `RunConfig.validate` rejects what cannot work.

Every run, with SlimFit or without, is metered the same way (`StepMemory`): per step, the
bytes autograd saves for backward plus the weights, the gradients and the optimizer state, as
SlimFit's memory claim counts them; peak and mean over the run's steps go into its record.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..core.errors import ConfigError
from . import techniques

QUANT_BITS = (0, 8)


# ----------------------------------------------------------------------------- the score


def scored_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The weights SlimFit scores a layer by: matrices (Linear, Embedding) and LayerNorm weights."""
    scored = []
    for sub in module.modules():
        for name, p in sub.named_parameters(recurse=False):
            if p.dim() > 1 or (isinstance(sub, nn.LayerNorm) and name == "weight"):
                scored.append(p)
    return scored


@torch.no_grad()
def relative_change(before: torch.Tensor, after: torch.Tensor) -> float:
    """Mean of |after - before| / |before| over the entries, SlimFit's ||(w0 - w1) / w0 / numel||_1.

    Entries that were exactly 0 are left out (SlimFit's division would make the score inf)."""
    nonzero = before != 0
    count = int(nonzero.sum())
    if count == 0:
        return 0.0
    ratio = (after.float() - before.float()).abs_().div_(before.float().abs())
    return float(torch.where(nonzero, ratio, 0.0).sum()) / count


@dataclass(frozen=True)
class Unit:
    """One schedulable layer: all its parameters freeze together, `scored` ones give its score."""

    name: str
    params: tuple[nn.Parameter, ...]
    scored: tuple[nn.Parameter, ...]

    @classmethod
    def of(cls, name: str, modules) -> "Unit":
        params = tuple(p for m in modules for p in m.parameters())
        scored = tuple(p for m in modules for p in scored_parameters(m))
        if not scored:
            raise ConfigError(f"slimfit cannot score {name}: it has no weight matrix or LayerNorm weight")
        return cls(name, params, scored)


def block_units(model: nn.Module) -> list[Unit]:
    """The embedding stage and each encoder block, bottom first, that train when training starts.

    Units frozen by another technique (`freeze_layers`) stay frozen and are not scheduled; the
    head and pooler are no units: they always train."""
    parts = techniques.encoder_parts(model)
    named = [("embeddings", parts.embedding_stage())] + [(f"block_{i}", (b,)) for i, b in enumerate(parts.blocks)]
    units = []
    for name, modules in named:
        params = [p for m in modules for p in m.parameters()]
        if params and all(p.requires_grad for p in params):
            units.append(Unit.of(name, modules))
    return units


def tensor_units(model: nn.Module) -> list[Unit]:
    """SlimFit's own units, in the model's parameter order: each trainable weight with
    `p.dim() > 1` and each LayerNorm weight (the official `p.dim() > 1 or 'LayerNorm.weight' in
    name`), head included. Biases are no units: they train at every step (they need no saved
    activation, so freezing them would save no memory)."""
    norms = {id(m.weight) for m in model.modules() if isinstance(m, nn.LayerNorm) and m.weight is not None}
    return [Unit(name, (p,), (p,)) for name, p in model.named_parameters()
            if p.requires_grad and (p.dim() > 1 or id(p) in norms)]


UNIT_KINDS = {"block": block_units, "tensor": tensor_units}


def schedulable_units(model: nn.Module, unit: str = "block") -> list[Unit]:
    """The units ILS schedules on a model: `block_units` or `tensor_units`."""
    if unit not in UNIT_KINDS:
        raise ConfigError(f"slimfit_unit={unit!r} is unknown; choose one of {', '.join(UNIT_KINDS)}")
    return UNIT_KINDS[unit](model)


def frozen_count(rate: float, n_units: int) -> int:
    """How many of `n_units` a freezing rate freezes each step: SlimFit's `int(rate * n)`."""
    return int(rate * n_units)


class InterLayerScheduler:
    """SlimFit's ILS over `units`: `choose()` before a step, `snapshot()` / `measure()` around
    the optimizer step. Knows no model, optimizer or data, so its rule can be tested alone."""

    def __init__(self, units: list[Unit], rate: float, seed: int = 0, per_lr: bool = True):
        self.units = list(units)
        self.per_lr = per_lr
        self.n_frozen = frozen_count(rate, len(self.units))
        if not 0 < self.n_frozen < len(self.units):
            raise ConfigError(f"slimfit_rate={rate!r} freezes {self.n_frozen} of the {len(self.units)} schedulable "
                              "layers each step; choose a rate that freezes at least one and leaves one to train "
                              f"(from {1 / max(len(self.units), 1):.3g} up to below 1)")
        # SlimFit starts every score at a random huge value: unmeasured layers outrank measured ones
        # and are visited in a random order. inf plus a seeded tie-break is the same, reproducibly.
        self._tiebreak = torch.rand(len(self.units), generator=torch.Generator().manual_seed(seed)).tolist()
        self.scores = [math.inf] * len(self.units)
        self.frozen = [False] * len(self.units)
        self.frozen_steps = [0] * len(self.units)
        self.steps = 0
        self._before: dict[int, list[torch.Tensor]] | None = None

    @property
    def trainable_per_step(self) -> int:
        return len(self.units) - self.n_frozen

    def choose(self) -> list[bool]:
        """Freeze the `n_frozen` lowest-scoring units for the coming step; returns the frozen flags."""
        order = sorted(range(len(self.units)), key=lambda i: (self.scores[i], self._tiebreak[i]))
        lowest = set(order[: self.n_frozen])
        for i, unit in enumerate(self.units):
            frozen = i in lowest
            for p in unit.params:
                p.requires_grad_(not frozen)
            self.frozen[i] = frozen
            self.frozen_steps[i] += frozen
        self.steps += 1
        return list(self.frozen)

    @torch.no_grad()
    def snapshot(self) -> None:
        """Copy the scored weights of this step's trainable units (just before the optimizer moves them)."""
        self._before = {i: [p.detach().clone() for p in unit.scored]
                        for i, unit in enumerate(self.units) if not self.frozen[i]}

    def measure(self, lr_factor: float = 1.0) -> None:
        """Score each unit that trained by its mean relative change (`per_lr`: per unit of
        learning rate, so that a warm-up's small first steps do not read as "unchanged").

        Frozen units keep their score (SlimFit). A step at learning rate 0 measures nothing."""
        before, self._before = self._before, None
        if before is None or lr_factor <= 0:
            return
        for i, copies in before.items():
            changes = [relative_change(b, p) for b, p in zip(copies, self.units[i].scored)]
            self.scores[i] = sum(changes) / len(changes) / (lr_factor if self.per_lr else 1.0)

    def frozen_share(self) -> dict[str, float]:
        """Per unit, the share of steps it spent frozen."""
        return {u.name: (n / self.steps if self.steps else 0.0) for u, n in zip(self.units, self.frozen_steps)}

    def release(self) -> None:
        """Every unit trainable again (as before the first `choose`)."""
        for unit in self.units:
            for p in unit.params:
                p.requires_grad_(True)


# ----------------------------------------------------------------------------- the 8-bit store


@dataclass(frozen=True)
class Int8Rows:
    """A tensor as int8 with one float32 scale per row (last dimension): |x - q * scale| <= scale / 2."""

    q: torch.Tensor
    scale: torch.Tensor
    dtype: torch.dtype

    @property
    def nbytes(self) -> int:
        return self.q.nbytes + self.scale.nbytes

    def dequantize(self) -> torch.Tensor:
        return (self.q.float() * self.scale).to(self.dtype)


@torch.no_grad()
def quantize_rows(x: torch.Tensor) -> Int8Rows | None:
    """Symmetric int8 per row: scale = max|row| / 127, q = round(x / scale); nothing clips.

    None for a tensor with inf or NaN entries (an additive attention mask), which no scale fits."""
    xf = x.detach().float()
    scale = xf.abs().amax(dim=-1, keepdim=True) / 127.0
    if not bool(torch.isfinite(scale).all()):
        return None
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row stays zero
    q = torch.round(xf / scale).clamp_(-127, 127).to(torch.int8)
    return Int8Rows(q, scale, x.dtype)


def _saves_bytes(x: torch.Tensor) -> bool:
    """Whether int8 rows (1 byte each plus a 4-byte scale per row) are smaller than `x`."""
    if x.dim() == 0 or x.numel() == 0:
        return False
    rows = x.numel() // x.shape[-1]
    return x.numel() + 4 * rows < x.numel() * x.element_size()


class SavedActivations:
    """Autograd's saved-tensor hooks for one forward: they count the bytes autograd keeps for
    the backward pass and, with `bits=8`, keep those saved while `quantize_now` is set (a frozen
    block runs) as `Int8Rows`.

    Parameters and buffers are never counted or quantised (autograd saves a reference, not a
    copy); a storage saved twice counts once. Use it alone to measure any model's step:
    `with SavedActivations(model) as saved: loss = model(**batch).loss` then `saved.bytes`.
    """

    def __init__(self, model: nn.Module, bits: int = 0):
        if bits not in QUANT_BITS:
            raise ConfigError(f"slimfit_quant_bits must be one of {QUANT_BITS}; got {bits!r}")
        self.bits = bits
        self._weights = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
        self.quantize_now = False
        self._hooks = None
        self._reset()

    def _reset(self) -> None:
        self.bytes = 0
        self.tensors = 0
        self.quantized_tensors = 0
        self._seen: set[int] = set()

    def __enter__(self) -> "SavedActivations":
        self._reset()
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        hooks, self._hooks = self._hooks, None
        hooks.__exit__(*exc)

    def _pack(self, x: torch.Tensor):
        storage = x.untyped_storage().data_ptr()
        if storage in self._weights:
            return x
        packed = None
        if self.bits and self.quantize_now and x.is_floating_point() and _saves_bytes(x):
            packed = quantize_rows(x)
        if packed is not None:
            self.bytes += packed.nbytes
            self.tensors += 1
            self.quantized_tensors += 1
            return packed
        if storage not in self._seen:
            self._seen.add(storage)
            self.bytes += x.untyped_storage().nbytes()
            self.tensors += 1
        return x

    @staticmethod
    def _unpack(packed):
        return packed.dequantize() if isinstance(packed, Int8Rows) else packed


# ----------------------------------------------------------------------------- SlimFit's compression


@dataclass(frozen=True)
class FixedPoint:
    """A tensor as SlimFit's fixed point: codes round(x * 2**frac) clamped to `bits` (signed or
    not), 4-bit codes packed two a byte. In range, |x - dequantize()| <= 2**-(frac + 1); outside
    it, x is clipped to the range (as the official `quantize` does)."""

    q: torch.Tensor
    bits: int
    frac: int
    signed: bool
    shape: torch.Size
    dtype: torch.dtype

    @property
    def nbytes(self) -> int:
        return self.q.nbytes

    def codes(self) -> torch.Tensor:
        if self.bits != 4:
            return self.q.float()
        numel = math.prod(self.shape)
        pairs = torch.stack((torch.div(self.q, 16, rounding_mode="floor"), self.q % 16), dim=-1)
        return pairs.flatten()[:numel].float() - (8 if self.signed else 0)

    def dequantize(self) -> torch.Tensor:
        return (self.codes() / 2**self.frac).reshape(self.shape).to(self.dtype)


def fixed_range(bits: int, frac: int, signed: bool = True) -> tuple[float, float]:
    """The smallest and largest value a fixed-point code holds."""
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    return lo / 2**frac, hi / 2**frac


@torch.no_grad()
def fixed_point(x: torch.Tensor, bits: int, frac: int, signed: bool = True) -> FixedPoint:
    """`x` as a `FixedPoint` (bits 4 or 8): SlimFit's `quantize(x, int_bits, frac_bits)` with
    `bits = int_bits + frac_bits + 1` (signed), e.g. its (3, 4) is `bits=8, frac=4`."""
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    codes = torch.round(x.detach().float() * 2**frac).clamp_(lo, hi)
    if bits == 4:
        flat = (codes.flatten() + (8 if signed else 0)).to(torch.uint8)
        flat = torch.cat((flat, flat.new_zeros(flat.numel() % 2)))
        q = flat[0::2] * 16 + flat[1::2]
    elif bits == 8:
        q = codes.to(torch.int8 if signed else torch.uint8)
    else:
        raise ConfigError(f"fixed_point stores 4 or 8 bits; got bits={bits!r}")
    return FixedPoint(q, bits, frac, signed, x.shape, x.dtype)


def _save(ctx, packed: dict) -> None:
    """Codes through `save_for_backward` (so the saved-tensor meter counts them), the rest on ctx."""
    names = [k for k, v in packed.items() if v is not None]
    ctx.fixed = {k: dataclasses.replace(packed[k], q=None) for k in names}
    ctx.save_for_backward(*[packed[k].q for k in names])


def _restore(ctx) -> dict:
    return {k: dataclasses.replace(meta, q=q).dequantize() for (k, meta), q in zip(ctx.fixed.items(), ctx.saved_tensors)}


class GeluQ4(torch.autograd.Function):
    """GELU keeping its input for backward at 4 bits (SlimFit's `ILSGELU`: (2, 1), step 0.5 in [-4, 3.5])."""

    @staticmethod
    def forward(ctx, x, approximate):
        ctx.approximate = approximate
        _save(ctx, {"x": fixed_point(x, 4, 1)})
        return nn.functional.gelu(x, approximate=approximate)

    @staticmethod
    def backward(ctx, grad):
        return grad * _gelu_derivative(_restore(ctx)["x"].float(), ctx.approximate).to(grad.dtype), None


def _gelu_derivative(x: torch.Tensor, approximate: str) -> torch.Tensor:
    """d GELU / dx, written out (a backward that ran autograd again would save tensors again)."""
    if approximate == "tanh":
        c = math.sqrt(2 / math.pi)
        t = torch.tanh(c * (x + 0.044715 * x**3))
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)
    return 0.5 * (1 + torch.erf(x / math.sqrt(2))) + x * torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _operand_format(x: torch.Tensor) -> tuple[int, int, bool]:
    """(bits, frac, signed) of an attention-matmul operand: signed (3, 4) as the official `ILSmatmul`;
    probabilities (non-negative) unsigned with 8 fractional bits (`ILSsoftmax_matmul`), 7 where
    dropout scaled them above 1 (transformers drops out probabilities, the official BERT values)."""
    if bool((x >= 0).all()):
        return (8, 8, False) if float(x.max()) <= 1 else (8, 7, False)
    return 8, 4, True


class MatmulQ8(torch.autograd.Function):
    """`a @ b` keeping its operands for backward at 8 bits, each only where the other needs it."""

    @staticmethod
    def forward(ctx, a, b):
        _save(ctx, {"a": fixed_point(a, *_operand_format(a)) if ctx.needs_input_grad[1] else None,
                    "b": fixed_point(b, *_operand_format(b)) if ctx.needs_input_grad[0] else None})
        return torch.matmul(a, b)

    @staticmethod
    def backward(ctx, grad):
        kept = _restore(ctx)
        grad_a = torch.matmul(grad, kept["b"].to(grad.dtype).transpose(-1, -2)) if "b" in kept else None
        grad_b = torch.matmul(kept["a"].to(grad.dtype).transpose(-1, -2), grad) if "a" in kept else None
        return grad_a, grad_b


class SoftmaxQ8(torch.autograd.Function):
    """Softmax keeping its output for backward as unsigned 8 bits, 8 of them fractional (as the
    official fused `ILSsoftmax_matmul` keeps the probabilities)."""

    @staticmethod
    def forward(ctx, x, dim):
        p = torch.softmax(x, dim)
        ctx.dim = dim
        _save(ctx, {"p": fixed_point(p, 8, 8, signed=False)})
        return p

    @staticmethod
    def backward(ctx, grad):
        p = _restore(ctx)["p"].to(grad.dtype)
        return p * (grad - (grad * p).sum(ctx.dim, keepdim=True)), None


class LinearInputQ8(torch.autograd.Function):
    """A Linear keeping its input for its weight's gradient at 8 bits, (3, 4) (the official FFN
    output `ILSLinear(..., Qflag=True)`); the input's gradient needs only the weight."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        _save(ctx, {"x": fixed_point(x, 8, 4)})
        ctx.weight = weight
        return nn.functional.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = _restore(ctx)["x"], ctx.weight
        grad_x = torch.matmul(grad, weight.to(grad.dtype)) if ctx.needs_input_grad[0] else None
        flat_grad, flat_x = grad.reshape(-1, grad.shape[-1]).float(), x.reshape(-1, x.shape[-1]).float()
        grad_w = (flat_grad.T @ flat_x).to(weight.dtype) if ctx.needs_input_grad[1] else None
        grad_b = flat_grad.sum(0) if ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


class PrunedLayerNorm(torch.autograd.Function):
    """A frozen LayerNorm keeping for backward only the `keep` share of its normalised input that
    is largest in magnitude (values and int32 positions) and each row's std (the official
    `ILSLayerNormFunction` when not caching, with dropit's `select_mink` over the whole tensor).
    Its bias still gets its gradient."""

    @staticmethod
    def forward(ctx, x, shape, weight, bias, eps, keep):
        xf = x.float()
        mean = xf.mean(-1, keepdim=True)
        std = (xf.var(-1, unbiased=False, keepdim=True) + eps).sqrt()
        y = ((xf - mean) / std).to(x.dtype).flatten()
        index = y.abs().topk(max(1, int(y.numel() * keep)), sorted=False).indices
        ctx.numel, ctx.shape, ctx.dtype = y.numel(), x.shape, x.dtype
        ctx.save_for_backward(y[index], index.to(torch.int32), std, weight)
        return nn.functional.layer_norm(x, shape, weight, bias, eps)

    @staticmethod
    def backward(ctx, grad):
        values, index, std, weight = ctx.saved_tensors
        y = torch.zeros(ctx.numel, dtype=torch.float32, device=grad.device)
        y = y.scatter_(0, index.long(), values.float()).reshape(ctx.shape)
        dxhat = grad.float() * (weight.float() if weight is not None else 1.0)
        grad_x = (dxhat - dxhat.mean(-1, keepdim=True) - y * (dxhat * y).mean(-1, keepdim=True)) / std
        grad_b = grad.reshape(-1, grad.shape[-1]).sum(0) if ctx.needs_input_grad[3] else None
        return grad_x.to(ctx.dtype), None, None, grad_b, None, None


@dataclass(frozen=True)
class Compression:
    """SlimFit's activation compression, each switch off at 0: `gelu_bits=4` (the GELU input),
    `attention_bits=8` (both operands of QK^T and of PV, and the probabilities softmax keeps),
    `ffn_bits=8` (the input of each block's FFN output Linear, where its weight trains), and
    `ln_keep=0.1` (a frozen LayerNorm keeps its top 10%). The official code applies all four in
    every layer, frozen or not (pruning only where the LayerNorm is frozen)."""

    gelu_bits: int = 0
    attention_bits: int = 0
    ffn_bits: int = 0
    ln_keep: float = 0.0

    @classmethod
    def official(cls) -> "Compression":
        return cls(4, 8, 8, 0.1)

    @classmethod
    def of(cls, config) -> "Compression":
        return cls(*(getattr(config, f"slimfit_{f.name}") for f in dataclasses.fields(cls)))

    @property
    def active(self) -> bool:
        return any(dataclasses.astuple(self))


def _name(func) -> str:
    return getattr(func, "__name__", "")


def _wants_grad(*tensors) -> bool:
    return torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in tensors)


class Compressing(TorchFunctionMode):
    """Routes a forward's GELU, attention matmuls and softmax, FFN output Linears and frozen
    LayerNorms to the compressing functions above, as `compression` switches them on. Attention
    is recognised by its 4-D operands (eager attention) or as `scaled_dot_product_attention`,
    which is computed as its math definition with the compressed pieces."""

    def __init__(self, compression: Compression, ffn_weights=()):
        super().__init__()
        self.compression = compression
        self.ffn_weights = {id(w) for w in ffn_weights}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        handler = self._handler(func, args, kwargs)
        return handler(*args, **kwargs) if handler else func(*args, **kwargs)

    def _handler(self, func, args, kwargs):
        c, name, x = self.compression, _name(func), args[0] if args else None
        if not isinstance(x, torch.Tensor):
            return None
        if c.gelu_bits and func is nn.functional.gelu and _wants_grad(x):
            return lambda x, approximate="none": GeluQ4.apply(x, approximate)
        if c.attention_bits and func is nn.functional.scaled_dot_product_attention and _wants_grad(*args[:3]):
            return self._attention
        if c.attention_bits and name in ("matmul", "__matmul__") and len(args) == 2 and x.dim() == 4 \
                and isinstance(args[1], torch.Tensor) and args[1].dim() == 4 and _wants_grad(*args):
            return lambda a, b: MatmulQ8.apply(a, b)
        has_dim = len(args) > 1 or kwargs.get("dim") is not None
        if c.attention_bits and name == "softmax" and x.dim() == 4 and has_dim and _wants_grad(x) \
                and kwargs.get("dtype") is None:
            return lambda x, dim, *_, **__: SoftmaxQ8.apply(x, dim)
        if c.ffn_bits and func is nn.functional.linear and len(args) > 1 and id(args[1]) in self.ffn_weights \
                and args[1].requires_grad and torch.is_grad_enabled():
            return lambda x, w, b=None: LinearInputQ8.apply(*_autocast(x, w, b))
        if c.ln_keep and func is nn.functional.layer_norm and _frozen_norm(args, kwargs) and _wants_grad(x):
            return self._layer_norm
        return None

    def _attention(self, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        """`scaled_dot_product_attention` by its definition, with SlimFit's 8-bit operands."""
        if enable_gqa and k.shape[-3] != q.shape[-3]:
            k = k.repeat_interleave(q.shape[-3] // k.shape[-3], -3)
            v = v.repeat_interleave(q.shape[-3] // v.shape[-3], -3)
        scores = MatmulQ8.apply(q, k.transpose(-1, -2)) * (scale if scale is not None else q.shape[-1] ** -0.5)
        if is_causal:
            causal = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
            scores = scores.masked_fill(~causal, float("-inf"))
        if attn_mask is not None:
            scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool \
                else scores + attn_mask
        probs = SoftmaxQ8.apply(scores, -1)
        if dropout_p:
            probs = nn.functional.dropout(probs, dropout_p, training=True)
        return MatmulQ8.apply(probs, v)

    def _layer_norm(self, x, shape, weight=None, bias=None, eps=1e-5):
        return PrunedLayerNorm.apply(x, shape, weight, bias, eps, self.compression.ln_keep)


def _frozen_norm(args, kwargs) -> bool:
    weight = args[2] if len(args) > 2 else kwargs.get("weight")
    return isinstance(weight, torch.Tensor) and not weight.requires_grad


def _autocast(x, weight, bias):
    """A Linear's operands in autocast's dtype, where autocast is on (a custom Function's inputs are
    not cast for it): the saved codes then hold what the layer computed with."""
    kind = x.device.type
    if not torch.is_autocast_enabled(kind):
        return x, weight, bias
    dtype = torch.get_autocast_dtype(kind)
    return x.to(dtype), weight, bias


def ffn_output_linears(model: nn.Module) -> list[nn.Linear]:
    """Each encoder block's FFN output Linear: the one that reads the intermediate (GELU) width."""
    width = getattr(model.config, "intermediate_size", None)
    return [m for b in techniques.encoder_parts(model).blocks for m in b.modules()
            if isinstance(m, nn.Linear) and m.in_features == width]


# ----------------------------------------------------------------------------- memory per step


def _nbytes(tensors) -> int:
    return sum(t.nbytes for t in tensors if isinstance(t, torch.Tensor))


class StepMemory:
    """What one training step holds, the accounting of SlimFit's claim made device-independent:
    the bytes autograd saves for backward (`SavedActivations`), every weight, the gradients of
    the parameters that trained, and the optimizer state (every state tensor, less the step
    counters). The step's figure is their sum: the forward's saved tensors are alive while the
    gradients are made and the state is updated (an upper bound by the gradients made while the
    first saved tensors are freed). Hooks on the optimizer read the gradients before its step
    and the state after it."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer):
        self.weights = _nbytes(model.parameters())
        self.optimizer = optimizer
        self.rows: list[dict] = []
        self._pending: dict | None = None
        self._handles = [optimizer.register_step_pre_hook(self._gradients),
                         optimizer.register_step_post_hook(self._state)]

    def forward_done(self, saved_bytes: int) -> None:
        """A step's forward kept `saved_bytes`; its gradients and state follow from the hooks."""
        self._pending = {"saved": saved_bytes, "weights": self.weights, "grads": 0, "state": self.state_bytes()}
        self.rows.append(self._pending)

    def state_bytes(self) -> int:
        return sum(_nbytes(v for v in state.values() if isinstance(v, torch.Tensor) and v.dim() > 0)
                   for state in self.optimizer.state.values())

    def _gradients(self, optimizer, *_):
        if self._pending is not None:
            self._pending["grads"] = _nbytes(p.grad for g in optimizer.param_groups for p in g["params"])

    def _state(self, optimizer, *_):
        if self._pending is not None:
            self._pending["state"] = self.state_bytes()
            self._pending = None

    @staticmethod
    def total(row: dict) -> int:
        return row["saved"] + row["weights"] + row["grads"] + row["state"]

    def summary(self) -> dict:
        """The run record's memory fields (MiB): the step total's peak and mean, and its parts."""
        if not self.rows:
            return {}
        mib = 2**20
        totals = [self.total(r) for r in self.rows]
        part = lambda key, f: f(r[key] for r in self.rows) / mib  # noqa: E731
        mean = lambda values: sum(values) / len(self.rows)  # noqa: E731
        return {"memory_steps": len(self.rows), "memory_peak_mb": max(totals) / mib, "memory_mean_mb": mean(totals) / mib,
                "memory_saved_peak_mb": part("saved", max), "memory_saved_mean_mb": part("saved", mean),
                "memory_weights_mb": self.weights / mib, "memory_grads_peak_mb": part("grads", max),
                "memory_grads_mean_mb": part("grads", mean), "memory_state_peak_mb": part("state", max)}

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


# ----------------------------------------------------------------------------- in a training loop


def _lr_factor(optimizer: torch.optim.Optimizer) -> float:
    """The schedule's current learning rate over its peak (1 without a schedule)."""
    group = optimizer.param_groups[0]
    peak = group.get("initial_lr", group["lr"])
    return group["lr"] / peak if peak else 0.0


class Metered:
    """Every run's meter: `with metered.step():` around a step's forward records what autograd
    keeps, and `StepMemory` the step's weights, gradients and optimizer state."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, bits: int = 0):
        self.saved = SavedActivations(model, bits)
        self.memory = StepMemory(model, optimizer)

    @contextlib.contextmanager
    def step(self):
        try:
            with self.saved:
                yield self
        finally:
            self.memory.forward_done(self.saved.bytes)

    def summary(self) -> dict:
        return self.memory.summary()

    def close(self) -> dict:
        """Remove the hooks and return `summary()`."""
        self.memory.close()
        return self.summary()


class SlimFit(Metered):
    """ILS, the activation stores and the meter on one model and its optimizer, for `train.run`.

    `with slimfit.step():` around a step's forward chooses the units that train, compresses (as
    `compression` says) and measures what autograd keeps; hooks on the optimizer score the units
    that trained. `unit="tensor"` is SlimFit's own scheduling, `"block"` this project's variant
    (module docstring)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, rate: float, bits: int = 0,
                 seed: int = 0, unit: str = "block", compression: Compression = Compression()):
        super().__init__(model, optimizer, bits)
        self.scheduler = InterLayerScheduler(schedulable_units(model, unit), rate, seed, per_lr=unit == "block")
        self.compression = compression
        self._ffn_weights = [m.weight for m in ffn_output_linears(model)] if compression.ffn_bits else []
        self._blocks = techniques.encoder_parts(model).blocks
        self._block_frozen = [False] * len(self._blocks)
        self._in_step = False
        scheduled = {id(p) for u in self.scheduler.units for p in u.params}
        self._always_trained = sum(p.numel() for p in model.parameters() if p.requires_grad and id(p) not in scheduled)
        self._saved_bytes: list[int] = []
        self._trainable_params: list[int] = []
        self._handles = [optimizer.register_step_pre_hook(lambda *_: self.scheduler.snapshot()),
                         optimizer.register_step_post_hook(lambda opt, *_: self.scheduler.measure(_lr_factor(opt)))]
        for i, block in enumerate(self._blocks if bits else ()):
            self._handles.append(block.register_forward_pre_hook(self._entering(i)))
            self._handles.append(block.register_forward_hook(self._leaving, always_call=True))

    def _entering(self, i: int):
        def hook(module, args):
            if self._in_step:
                self.saved.quantize_now = self._block_frozen[i]
        return hook

    def _leaving(self, module, args, output):
        self.saved.quantize_now = False

    def _compressing(self):
        if not self.compression.active:
            return contextlib.nullcontext()
        return Compressing(self.compression, self._ffn_weights)

    @contextlib.contextmanager
    def step(self):
        """One training step's forward: schedule the units, then record what autograd keeps."""
        self.scheduler.choose()
        self._block_frozen = [not any(p.requires_grad for p in b.parameters()) for b in self._blocks]
        self._trainable_params.append(self._always_trained + sum(
            p.numel() for u, frozen in zip(self.scheduler.units, self.scheduler.frozen) if not frozen for p in u.params))
        self._in_step = True
        try:
            with super().step(), self._compressing():
                yield self
        finally:
            self._in_step = False
            self.saved.quantize_now = False
            self._saved_bytes.append(self.saved.bytes)

    def summary(self) -> dict:
        """The run record's SlimFit and memory fields."""
        share = self.scheduler.frozen_share()
        steps = len(self._saved_bytes)
        return {
            "slimfit_frozen_share": share,
            "slimfit_mean_frozen": sum(share.values()) / len(share),
            "slimfit_units": len(self.scheduler.units),
            "slimfit_trainable_layers": self.scheduler.trainable_per_step,
            "slimfit_steps": self.scheduler.steps,
            "slimfit_saved_activation_mb": sum(self._saved_bytes) / steps / 2**20 if steps else None,
            "slimfit_peak_saved_activation_mb": max(self._saved_bytes) / 2**20 if steps else None,
            "slimfit_mean_trainable_params": sum(self._trainable_params) / steps if steps else None,
            **super().summary(),
        }

    def close(self) -> dict:
        """Remove the hooks, make every unit trainable again, and return `summary()`."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.scheduler.release()
        return super().close()


def attach(model: nn.Module, config, optimizer: torch.optim.Optimizer) -> Metered:
    """SlimFit on a model and its optimizer as a run config asks, or (`slimfit_rate` 0) the meter
    alone, so that every run's record has the same memory accounting.

    Call it after the optimizer is built (every unit must be in it) and before training."""
    if not config.slimfit_rate:
        return Metered(model, optimizer)
    return SlimFit(model, optimizer, config.slimfit_rate, config.slimfit_quant_bits, seed=config.seed,
                   unit=config.slimfit_unit, compression=Compression.of(config))


def step(slimfit: Metered | None):
    """`slimfit.step()`, or nothing without a meter."""
    return contextlib.nullcontext() if slimfit is None else slimfit.step()


def finish(slimfit: Metered | None) -> dict:
    """The record fields of a run after its hooks are removed: memory, and SlimFit's ({} without a meter)."""
    return {} if slimfit is None else slimfit.close()
