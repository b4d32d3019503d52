"""SlimFit (Ardakani et al., NAACL 2024): each step, freeze the encoder layers that change least.

SlimFit cuts fine-tuning memory in two ways, both here:

* **Inter-layer scheduling (ILS).** Every step, the layers whose weights moved least in the
  steps they last trained are frozen, `int(rate * n)` of the `n` scheduled layers, so a fixed
  `n - int(rate * n)` layers train per step. A frozen layer's weights do not require grad, so
  autograd keeps nothing for their gradients: a Linear saves no input, a LayerNorm no
  normalised input for its weight. What a frozen layer still keeps is what the gradient needs
  to pass *through* it to a trainable layer below (attention's query, key, value and softmax
  output, the GELU input, LayerNorm statistics, dropout masks): SlimFit's "static
  activations". Above the lowest trainable layer they cannot be dropped; below it nothing
  needs a gradient and autograd records nothing at all.
* **Quantised static activations.** With `bits=8` the tensors autograd saves inside frozen
  blocks are held as int8 with one scale per row and expanded again when backward reads them.
  The gradient passed down through a frozen block becomes approximate (each saved element
  within half a quantisation step); what trainable layers save for their own weight gradients
  stays at full precision.

The scoring rule is that of SlimFit's public code (github.com/arashardakani/SlimFit, the BERT
task scripts' `ParameterDiffer` and training loop; `utils_ILS.py` holds the layers): a layer's
score is the mean relative change |w_t - w_{t-1}| / |w_{t-1}| of its weight matrices and
LayerNorm weights (biases are not scored); only the layers that trained update their score,
frozen ones keep the one they had; the layers are re-chosen every step; scores start at random
huge values, so the first steps visit every layer once in a random order. Where this version
differs, on purpose:

* the unit is the layer granularity of this project's other techniques: the embedding stage
  and each encoder block (SlimFit schedules single weight tensors). Freezing a unit freezes all
  its parameters, biases included, so "frozen" means unchanged; the head (and pooler) always
  train, and units frozen before training (`freeze_layers`) are never scheduled.
* the change is divided by the step's learning-rate factor (the schedule's lr over its peak).
  SlimFit trains without warm-up; here warm-up starts at lr 0, so a layer measured in the
  first steps would read "unchanged" and, since frozen layers keep their stale score, stay
  frozen for the whole run. Per unit of learning rate, scores from different steps compare.
* the 8-bit store is symmetric per-row absmax int8 (no clipping) for every float tensor a
  frozen block saves; SlimFit uses fixed-point 8 and 4 bits (which clip large values) for
  chosen ops in every layer and prunes LayerNorm inputs to their top 10%.

It composes with the other techniques: `freeze_layers` blocks (and the embeddings it freezes)
are never scheduled; LLRD keeps its learning rates (a frozen unit only skips steps; lower
blocks, at lower rates, change less and so freeze more often); re-initialised blocks are
scheduled like any other (they change most, so ILS tends to train them); LP-FT's probe phase
runs first, untouched, and ILS schedules the fine-tuning after it. With mixout, a frozen
block's Linear keeps its mixed weight (a fresh tensor each step), which the 8-bit store holds
in 8 bits too. `RunConfig.validate` rejects what cannot work (8 bits without a rate, a rate
that freezes nothing, fewer than two layers left to schedule).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
from torch import nn

from . import techniques
from .errors import ConfigError

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


def schedulable_units(model: nn.Module) -> list[Unit]:
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


def frozen_count(rate: float, n_units: int) -> int:
    """How many of `n_units` a freezing rate freezes each step: SlimFit's `int(rate * n)`."""
    return int(rate * n_units)


class InterLayerScheduler:
    """SlimFit's ILS over `units`: `choose()` before a step, `snapshot()` / `measure()` around
    the optimizer step. Knows no model, optimizer or data, so its rule can be tested alone."""

    def __init__(self, units: list[Unit], rate: float, seed: int = 0):
        self.units = list(units)
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
        """Score each unit that trained by its mean relative change per unit of learning rate.

        Frozen units keep their score (SlimFit). A step at learning rate 0 measures nothing."""
        before, self._before = self._before, None
        if before is None or lr_factor <= 0:
            return
        for i, copies in before.items():
            changes = [relative_change(b, p) for b, p in zip(copies, self.units[i].scored)]
            self.scores[i] = sum(changes) / len(changes) / lr_factor

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


# ----------------------------------------------------------------------------- in a training loop


def _lr_factor(optimizer: torch.optim.Optimizer) -> float:
    """The schedule's current learning rate over its peak (1 without a schedule)."""
    group = optimizer.param_groups[0]
    peak = group.get("initial_lr", group["lr"])
    return group["lr"] / peak if peak else 0.0


class SlimFit:
    """ILS and the activation store on one model and its optimizer, for `train.run`.

    `with slimfit.step():` around a step's forward chooses the units that train and measures
    (and quantises) what autograd keeps; hooks on the optimizer score the units that trained.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, rate: float, bits: int = 0,
                 seed: int = 0):
        self.scheduler = InterLayerScheduler(schedulable_units(model), rate, seed)
        self.saved = SavedActivations(model, bits)
        self._blocks = techniques.encoder_parts(model).blocks
        self._block_frozen = [False] * len(self._blocks)
        self._in_step = False
        scheduled = {id(p) for u in self.scheduler.units for p in u.params}
        self._always_trained = sum(p.numel() for p in model.parameters() if p.requires_grad and id(p) not in scheduled)
        self._saved_bytes: list[int] = []
        self._trainable_params: list[int] = []
        self._handles = [optimizer.register_step_pre_hook(lambda *_: self.scheduler.snapshot()),
                         optimizer.register_step_post_hook(lambda opt, *_: self.scheduler.measure(_lr_factor(opt)))]
        for i, block in enumerate(self._blocks):
            self._handles.append(block.register_forward_pre_hook(self._entering(i)))
            self._handles.append(block.register_forward_hook(self._leaving, always_call=True))

    def _entering(self, i: int):
        def hook(module, args):
            if self._in_step:
                self.saved.quantize_now = self._block_frozen[i]
        return hook

    def _leaving(self, module, args, output):
        self.saved.quantize_now = False

    @contextlib.contextmanager
    def step(self):
        """One training step's forward: schedule the units, then record what autograd keeps."""
        self.scheduler.choose()
        self._block_frozen = [not any(p.requires_grad for p in b.parameters()) for b in self._blocks]
        self._trainable_params.append(self._always_trained + sum(
            p.numel() for u, frozen in zip(self.scheduler.units, self.scheduler.frozen) if not frozen for p in u.params))
        self._in_step = True
        try:
            with self.saved:
                yield self
        finally:
            self._in_step = False
            self.saved.quantize_now = False
            self._saved_bytes.append(self.saved.bytes)

    def summary(self) -> dict:
        """The run record's SlimFit fields."""
        share = self.scheduler.frozen_share()
        steps = len(self._saved_bytes)
        return {
            "slimfit_frozen_share": share,
            "slimfit_mean_frozen": sum(share.values()) / len(share),
            "slimfit_trainable_layers": self.scheduler.trainable_per_step,
            "slimfit_steps": self.scheduler.steps,
            "slimfit_saved_activation_mb": sum(self._saved_bytes) / steps / 2**20 if steps else None,
            "slimfit_peak_saved_activation_mb": max(self._saved_bytes) / 2**20 if steps else None,
            "slimfit_mean_trainable_params": sum(self._trainable_params) / steps if steps else None,
        }

    def close(self) -> dict:
        """Remove the hooks, make every unit trainable again, and return `summary()`."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.scheduler.release()
        return self.summary()


def attach(model: nn.Module, config, optimizer: torch.optim.Optimizer) -> SlimFit | None:
    """SlimFit on a model and its optimizer as a run config asks (None when `slimfit_rate` is 0).

    Call it after the optimizer is built (every unit must be in it) and before training."""
    if not config.slimfit_rate:
        return None
    return SlimFit(model, optimizer, config.slimfit_rate, config.slimfit_quant_bits, seed=config.seed)


def step(slimfit: SlimFit | None):
    """`slimfit.step()`, or nothing for a run without SlimFit."""
    return contextlib.nullcontext() if slimfit is None else slimfit.step()


def finish(slimfit: SlimFit | None) -> dict:
    """The record fields of a SlimFit run after its hooks are removed ({} without SlimFit)."""
    return {} if slimfit is None else slimfit.close()
