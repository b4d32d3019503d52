"""Stabilisation techniques for fine-tuning, as small functions that compose in one run config.

Tinn et al. (2023) found fine-tuning of BERT-style biomedical models unstable, above all for
large models and small data sets, and that simple techniques fix much of it: freezing lower
layers helps standard BERT-base models, layer-wise learning-rate decay (LLRD) helps BERT-large
and ELECTRA models, and re-initialising the top layer is the best choice for a tiny data set
such as BIOSSES. Mixout (Lee et al. 2020) comes from the wider stability literature. SlimFit
(Ardakani et al. 2024, `blurblib.training.slimfit`) freezes the layers that change least, step by step,
to cut fine-tuning memory.

Every function finds the parts of the model through `encoder_parts(model)`, which knows the
layout shared by BERT, ELECTRA, MPNet and RoBERTa encoders (`model.base_model` with
`embeddings`, `encoder.layer[i]` and an optional `pooler`) and refuses anything else.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..core.errors import ConfigError

SUPPORTED_MODEL_TYPES = {"bert": "BERT", "electra": "ELECTRA", "mpnet": "MPNet", "roberta": "RoBERTa"}


@dataclass(frozen=True)
class EncoderParts:
    """The pieces of a transformer encoder, bottom to top.

    `shared` holds base-model modules outside the embeddings, blocks and pooler (MPNet's
    relative-position bias used by every block, ELECTRA's `embeddings_project`): they are
    treated as part of the embedding stage. `head` is everything outside `model.base_model`.
    """

    architecture: str
    embeddings: nn.Module
    shared: tuple[nn.Module, ...]
    blocks: tuple[nn.Module, ...]
    pooler: nn.Module | None
    head: tuple[nn.Module, ...]

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    def embedding_stage(self) -> tuple[nn.Module, ...]:
        return (self.embeddings, *self.shared)


def encoder_parts(model: nn.Module) -> EncoderParts:
    """Embeddings, encoder blocks (bottom first), pooler or None, and head of a supported encoder."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    architecture = f"{type(model).__name__} (model_type {model_type!r})"
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ConfigError(f"stabilisation techniques support {', '.join(SUPPORTED_MODEL_TYPES.values())} encoders; "
                          f"got {architecture}. Use technique 'standard' for this model")
    base = model.base_model
    encoder = getattr(base, "encoder", None)
    layers = getattr(encoder, "layer", None)
    embeddings = getattr(base, "embeddings", None)
    if not isinstance(layers, nn.ModuleList) or not isinstance(embeddings, nn.Module):
        raise ConfigError(f"{architecture} does not have the expected base_model.embeddings and "
                          "base_model.encoder.layer; techniques cannot find its blocks")
    pooler = getattr(base, "pooler", None)
    shared = [m for name, m in base.named_children() if name not in ("embeddings", "encoder", "pooler")]
    shared += [m for name, m in encoder.named_children() if name != "layer"]
    shared = tuple(m for m in shared if any(True for _ in m.parameters()))
    head = tuple(m for m in model.children() if m is not base) if base is not model else ()
    return EncoderParts(type(model).__name__, embeddings, shared, tuple(layers), pooler, head)


def _check_count(value: int, parts: EncoderParts, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= parts.num_blocks:
        raise ConfigError(f"{what} must be an integer from 0 to {parts.num_blocks} (the {parts.architecture} has "
                          f"{parts.num_blocks} encoder blocks); got {value!r}")
    return value


def _param_names(model: nn.Module, modules) -> list[str]:
    wanted = {id(p) for m in modules for p in m.parameters()}
    return [name for name, p in model.named_parameters() if id(p) in wanted]


def freeze_lower(model: nn.Module, k: int, embeddings: bool = True) -> list[str]:
    """Stop gradients for the embeddings and the bottom `k` encoder blocks.

    Why: the lower layers hold general linguistic features that fine-tuning on a small task
    mostly disturbs; Tinn et al. found freezing them stabilises BERT-base models. Returns the
    names of the parameters now frozen.
    """
    parts = encoder_parts(model)
    _check_count(k, parts, "freeze_layers")
    modules = list(parts.blocks[:k]) + (list(parts.embedding_stage()) if embeddings else [])
    for module in modules:
        module.requires_grad_(False)
    return _param_names(model, modules)


def _generator(seed_or_generator) -> torch.Generator | None:
    if seed_or_generator is None or isinstance(seed_or_generator, torch.Generator):
        return seed_or_generator
    return torch.Generator().manual_seed(int(seed_or_generator))


@torch.no_grad()
def _reinit_module(module: nn.Module, std: float, generator: torch.Generator | None) -> None:
    def normal_(tensor):  # drawn on CPU so a seed gives the same values on every device
        tensor.copy_(torch.empty(tensor.shape, dtype=tensor.dtype).normal_(0.0, std, generator=generator))

    covered = set()
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            normal_(sub.weight)
            if sub.bias is not None:
                sub.bias.zero_()
        elif isinstance(sub, nn.Embedding):
            normal_(sub.weight)
            if sub.padding_idx is not None:
                sub.weight[sub.padding_idx].zero_()
        elif isinstance(sub, nn.LayerNorm):
            if sub.weight is not None:
                sub.weight.fill_(1.0)
            if sub.bias is not None:
                sub.bias.zero_()
        else:
            continue
        covered.update(id(p) for p in sub.parameters(recurse=False))
    missed = [name for name, p in module.named_parameters() if id(p) not in covered]
    if missed:
        raise ConfigError(f"reinit_top does not know how to re-initialise {missed} in {type(module).__name__}")


def reinit_top(model: nn.Module, n: int, pooler: bool = True, generator=None) -> list[str]:
    """Re-draw the top `n` encoder blocks (and the pooler) as at pre-training start.

    Linear and Embedding weights ~ N(0, config.initializer_range), biases 0, LayerNorm weight 1
    and bias 0; lower blocks are untouched (bit-identical). Why: the top layers specialise to
    the pre-training objective and transfer worst (Zhang et al. 2021); Tinn et al. found
    re-initialising the top layer the best choice for low-resource tasks such as BIOSSES.
    `generator` is a `torch.Generator` or an int seed, for a reproducible draw. Returns the
    names of the re-initialised parameters.
    """
    parts = encoder_parts(model)
    _check_count(n, parts, "reinit_layers")
    std = float(model.config.initializer_range)
    gen = _generator(generator)
    modules = list(parts.blocks[len(parts.blocks) - n:]) if n else []
    if pooler and parts.pooler is not None:
        modules.append(parts.pooler)
    for module in modules:
        _reinit_module(module, std, gen)
    return _param_names(model, modules)


def _no_weight_decay_ids(model: nn.Module) -> set[int]:
    """Biases and LayerNorm weights: decaying them towards 0 only hurts (BERT's recipe)."""
    ids = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if name == "bias" or isinstance(module, nn.LayerNorm):
                ids.add(id(param))
    return ids


def _split_by_decay(named_params, lr, weight_decay, label, no_decay) -> list[dict]:
    groups = []
    for suffix, wd, keep in (("decay", weight_decay, False), ("no_decay", 0.0, True)):
        chosen = [(n, p) for n, p in named_params if (id(p) in no_decay) == keep]
        if chosen:
            groups.append({"params": [p for _, p in chosen], "param_names": [n for n, _ in chosen], "lr": lr,
                           "weight_decay": wd, "name": f"{label}/{suffix}"})
    return groups


def standard_param_groups(model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """AdamW groups as in BERT: weight decay on everything but biases and LayerNorm weights."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return _split_by_decay(trainable, lr, weight_decay, "all", _no_weight_decay_ids(model))


def llrd_param_groups(model: nn.Module, lr: float, decay: float, weight_decay: float) -> list[dict]:
    """Layer-wise learning-rate decay: the lower the layer, the smaller its learning rate.

    Head and pooler get `lr`; encoder block i (0 = bottom, L blocks) gets `lr * decay**(L - i)`;
    the embeddings get `lr * decay**(L + 1)`. No weight decay on biases and LayerNorm weights;
    frozen parameters are left out. Why: lower layers need less change (Howard & Ruder 2018);
    Tinn et al. found LLRD the most effective technique for BERT-large and ELECTRA models.
    Each group carries `name` and `param_names` for logging.
    """
    if not 0.0 < decay <= 1.0:
        raise ConfigError(f"llrd_decay must be in (0, 1]; got {decay!r} (1 means no decay)")
    parts = encoder_parts(model)
    L = parts.num_blocks
    stage_of: dict[int, tuple[str, float]] = {}
    for module in parts.embedding_stage():
        for p in module.parameters():
            stage_of[id(p)] = ("embeddings", lr * decay ** (L + 1))
    for i, block in enumerate(parts.blocks):
        for p in block.parameters():
            stage_of[id(p)] = (f"block_{i}", lr * decay ** (L - i))
    stages: dict[str, tuple[float, list]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        label, stage_lr = stage_of.get(id(p), ("head", lr))  # head and pooler
        stages.setdefault(label, (stage_lr, []))[1].append((name, p))
    no_decay = _no_weight_decay_ids(model)
    order = ["embeddings"] + [f"block_{i}" for i in range(L)] + ["head"]
    groups = []
    for label in order:
        if label in stages:
            stage_lr, named = stages[label]
            groups += _split_by_decay(named, stage_lr, weight_decay, label, no_decay)
    return groups


class MixLinear(nn.Linear):
    """A Linear layer whose weight is mixed toward a target (the pretrained weight) in training.

    Each forward in training replaces every weight entry by its target with probability `p`,
    then rescales so the expected weight is the current one: (M*W + (1-M)*T - p*T) / (1-p)
    with M ~ Bernoulli(1-p) (Lee et al. 2020, eq. 3). At eval time it is the plain Linear.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, p: float = 0.0,
                 device=None, dtype=None):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.p = p

    @classmethod
    def from_linear(cls, linear: nn.Linear, p: float) -> "MixLinear":
        """Wraps the same Parameter objects (optimizer state and requires_grad carry over)."""
        mix = cls(linear.in_features, linear.out_features, bias=linear.bias is not None, p=p, device="meta")
        mix.weight = linear.weight
        mix.bias = linear.bias
        mix.register_buffer("target", linear.weight.detach().clone(), persistent=False)
        return mix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return F.linear(x, self.weight, self.bias)
        keep = torch.empty_like(self.weight).bernoulli_(1.0 - self.p)
        mixed = (keep * self.weight + (1.0 - keep) * self.target - self.p * self.target) / (1.0 - self.p)
        return F.linear(x, mixed, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mixout_p={self.p}"


def apply_mixout(model: nn.Module, p: float) -> int:
    """Replace every Linear in the encoder blocks by a `MixLinear` mixing toward its current weight.

    Why: mixout regularises fine-tuning toward the pretrained weights instead of toward zero,
    and Lee et al. (2020) found it cuts the rate of failed runs of BERT-large on small GLUE
    tasks. Call it before training starts (the targets are the weights at call time). `p=0` is
    an exact identity. Returns the number of layers replaced.
    """
    if not 0.0 <= p < 1.0:
        raise ConfigError(f"mixout probability must be in [0, 1); got {p!r}")
    parts = encoder_parts(model)
    replaced = 0
    for block in parts.blocks:
        for parent in list(block.modules()):
            for child_name, child in list(parent.named_children()):
                if type(child) is nn.Linear:
                    setattr(parent, child_name, MixLinear.from_linear(child, p))
                    replaced += 1
    return replaced


# The registry is part of the run schema (`blurblib.training.config`, no torch): named here too, where
# the operations it switches on live.
from .config import TECHNIQUES, Technique, active, family, get, is_standard, knob_values, names, neutral_knobs  # noqa: E402,F401


def prepare(model: nn.Module, cfg, generator=None) -> dict:
    """Apply reinit, then mixout, then freezing, in place, from a run config's fields.

    Order matters: mixout's targets are the weights training starts from (re-drawn ones for
    re-initialised blocks), and frozen blocks must not overlap re-initialised ones (a frozen
    random block is never trained). Plain fine-tuning touches nothing, on any architecture.
    Returns what was done, for the run record.
    """
    knobs = knob_values(cfg)
    done = {"reinit_params": 0, "mixout_layers": 0, "frozen_params": 0}
    if knobs["reinit_layers"] == 0 and knobs["mixout"] == 0 and knobs["freeze_layers"] == 0:
        return done
    parts = encoder_parts(model)
    freeze, reinit = knobs["freeze_layers"], knobs["reinit_layers"]
    _check_count(freeze, parts, "freeze_layers")
    _check_count(reinit, parts, "reinit_layers")
    if freeze + reinit > parts.num_blocks:
        raise ConfigError(f"freeze_layers={freeze} and reinit_layers={reinit} overlap on a {parts.num_blocks}-block "
                          "model: a frozen re-initialised block would stay random; lower one of them")
    if reinit:
        done["reinit_params"] = len(reinit_top(model, reinit, generator=generator))
    if knobs["mixout"]:
        done["mixout_layers"] = apply_mixout(model, knobs["mixout"])
    if freeze:
        done["frozen_params"] = len(freeze_lower(model, freeze))
    return done


def param_groups(model: nn.Module, cfg, lr: float, weight_decay: float) -> list[dict]:
    """Optimizer groups: LLRD when cfg.llrd_decay != 1, else the standard decay/no-decay pair."""
    decay = knob_values(cfg)["llrd_decay"]
    if decay != 1:
        return llrd_param_groups(model, lr, decay, weight_decay)
    return standard_param_groups(model, lr, weight_decay)
