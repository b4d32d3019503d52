"""The run schema: `RunConfig`, everything that decides a fine-tuning run's result.

One dataclass is the only description of a run: sweeps expand into it, profiles fill it,
`blurb finetune`'s flags are generated from its fields (with the help text each field
carries), and the hash of its fields names the run in the results store. Technique knobs
are fields too; which field belongs to which technique, and its neutral value, is the
technique registry's (`TECHNIQUES`, below; the operations are `blurblib.training.techniques`).

This module imports no torch at import time (the CLI builds its parser from it in
milliseconds); the registries it checks against are imported when a config needs them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass

from ..core.errors import BlurbError, ConfigError, UnknownNameError


def _field(default, help: str):
    """A RunConfig field with its help text, which `blurb finetune --help` shows (the CLI's
    flags are generated from these fields, as `transformers.HfArgumentParser` does)."""
    return dataclasses.field(default=default, metadata={"help": help})


def _late_field(default, help: str):
    """A RunConfig field added after runs were stored. At its default it is left out of the run
    id, so every stored id stays valid, and a record (or table row) written before it existed
    reads as the default (`backfill`): a run that predates a knob is a run with the knob off."""
    return dataclasses.field(default=default, metadata={"help": help, "late": True})


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides a run's result. Its hash names the run in the results store.

    The technique knobs compose: `freeze_layers=3, llrd_decay=0.9` is a valid run.
    """

    task: str = _field(dataclasses.MISSING, "BLURB task (blurblib.data.tasks)")
    model: str = _field("minilm-l6", "encoder from the model registry (blurblib.encoders.models)")
    freeze_layers: int = _field(0, "freeze technique: the embeddings and the bottom k encoder blocks stay fixed")
    reinit_layers: int = _field(0, "reinit technique: re-initialise the top n encoder blocks and the pooler")
    llrd_decay: float = _field(1.0, "llrd technique: block i trains at lr * decay**(L - i); 1 is off")
    mixout: float = _field(0.0, "mixout technique: probability of mixing a weight back to its pretrained value")
    lr: float = _field(5e-5, "peak learning rate of AdamW")
    batch_size: int = _field(16, "training examples per optimizer step")
    epochs: int = _field(3, "passes over the training set; dev is scored after each")
    seed: int = _field(1, "fine-tuning seed (head init, dropout, batch order); the subsample stays fixed")
    max_length: int | None = _field(None, "sub-word tokens per input (None: the task's BLURB length)")
    train_limit: int | None = _field(None, "train on a fixed random subset of this many examples (None: all)")
    eval_limit: int | None = _field(None, "score dev and test on at most this many examples (None: all)")
    weight_decay: float = _field(0.01, "AdamW weight decay (never on biases and LayerNorm weights)")
    warmup_ratio: float = _field(0.1, "share of the steps with a linear learning-rate warm-up")
    max_grad_norm: float = _field(1.0, "gradient clipping norm")
    lpft_epochs: int = _field(0, "lpft technique: epochs training only the head on the frozen encoder first")
    head: str = _field("native", "cls, mean, biencoder or token; native: the model registry's head for the task")
    precision: str = _field("fp32", "fp32 or bf16 (autocast: weights and optimizer state stay fp32)")
    slimfit_rate: float = _late_field(0.0, "slimfit technique: share of the scheduled layers (embeddings, encoder "
                                      "blocks) frozen each step, those whose weights changed least; 0 is off")
    adam_bias_correction: bool = _late_field(True, "AdamW's bias correction of its moment estimates; False is the "
                                              "original BERTAdam, whose first steps are larger (an instability inducer)")
    slimfit_quant_bits: int = _late_field(0, "slimfit technique: 8 keeps the activations frozen blocks save for "
                                          "backward as int8 rows; 0 keeps them at full precision")
    slimfit_unit: str = _late_field("block", "slimfit technique: what it schedules; tensor is SlimFit's own (each "
                                    "weight matrix and LayerNorm weight; biases always train), block the first "
                                    "variant (embeddings and encoder blocks, biases included; the default so that "
                                    "stored runs keep their ids)")
    slimfit_gelu_bits: int = _late_field(0, "slimfit compression: 4 keeps each GELU input for backward at 4 bits "
                                         "(SlimFit's); 0 is off")
    slimfit_attention_bits: int = _late_field(0, "slimfit compression: 8 keeps the operands of attention's matmuls "
                                              "and its probabilities at 8 bits (SlimFit's); 0 is off")
    slimfit_ffn_bits: int = _late_field(0, "slimfit compression: 8 keeps the input of each FFN output Linear at "
                                        "8 bits (SlimFit's); 0 is off")
    slimfit_ln_keep: float = _late_field(0.0, "slimfit compression: a frozen LayerNorm keeps this top share of its "
                                         "normalised input (SlimFit's 0.1); 0 is off")

    def __post_init__(self):
        # "native" names a head only relative to the model: store the concrete one, so the run id
        # says which formulation was trained (an unknown model is left for validate() to name).
        if self.head == "native":
            from ..encoders import models  # lazy: `blurb --help` builds its flags from this module without torch

            try:
                object.__setattr__(self, "head", models.native_head(self.model, self.task))
            except BlurbError:
                pass

    @property
    def technique(self) -> str:
        """A readable label derived from the knobs, so it can never disagree with them."""
        return technique_label(self)

    @property
    def run_id(self) -> str:
        return content_id(self, self.technique, f"s{self.seed}")

    def validate(self) -> None:
        """Fail before training starts, with the name of the bad field."""
        # lazy: `blurb --help` builds its flags from this module, and these import torch
        from ..core import precision
        from ..data import tasks
        from ..encoders import heads, models

        tasks.get(self.task)
        models.get(self.model)
        checks = {
            "lr": (_finite(self.lr) and 0 < self.lr <= 1, "a finite number in (0, 1], e.g. 5e-5"),
            "batch_size": self.batch_size >= 1,
            "weight_decay": (_finite(self.weight_decay) and 0 <= self.weight_decay <= 1, "a finite number in [0, 1], e.g. 0.01"),
            "max_grad_norm": (_finite(self.max_grad_norm) and self.max_grad_norm > 0, "a finite number > 0, e.g. 1.0"),
            "seed": (_whole(self.seed) and 0 <= self.seed <= 2**32 - 1, "an integer from 0 to 2**32 - 1"),
            "epochs": self.epochs >= 1,
            "freeze_layers": self.freeze_layers >= 0,
            "reinit_layers": self.reinit_layers >= 0,
            "llrd_decay": (_finite(self.llrd_decay) and 0 < self.llrd_decay <= 1, "a number in (0, 1]; 1 is off"),
            "mixout": (_finite(self.mixout) and 0 <= self.mixout < 1, "a probability in [0, 1)"),
            "warmup_ratio": (_finite(self.warmup_ratio) and 0 <= self.warmup_ratio < 1, "a number in [0, 1)"),
            "train_limit": self.train_limit is None or self.train_limit >= 1,
            "eval_limit": self.eval_limit is None or self.eval_limit >= 1,
            "max_length": self.max_length is None or self.max_length >= 8,
            "lpft_epochs": self.lpft_epochs >= 0,
            "precision": self.precision in precision.PRECISIONS,
            "slimfit_rate": (_finite(self.slimfit_rate) and 0 <= self.slimfit_rate < 1, "a share in [0, 1); 0 is off"),
            "slimfit_quant_bits": self.slimfit_quant_bits in (0, 8),
            "slimfit_unit": (self.slimfit_unit in ("block", "tensor"), "tensor or block"),
            "slimfit_gelu_bits": (self.slimfit_gelu_bits in (0, 4), "4, or 0 for off"),
            "slimfit_attention_bits": (self.slimfit_attention_bits in (0, 8), "8, or 0 for off"),
            "slimfit_ffn_bits": (self.slimfit_ffn_bits in (0, 8), "8, or 0 for off"),
            "slimfit_ln_keep": (_finite(self.slimfit_ln_keep) and 0 <= self.slimfit_ln_keep < 1,
                                "a share in [0, 1), e.g. 0.1; 0 is off"),
        }
        checks = {name: check if isinstance(check, tuple) else (check, None) for name, check in checks.items()}
        bad = [name for name, (ok, _) in checks.items() if not ok]
        if bad:
            values = "; ".join(f"{name}={getattr(self, name)!r}" + (f" (accepted: {checks[name][1]})" if checks[name][1] else "")
                               for name in bad)
            raise ConfigError(f"RunConfig for {self.task}/{self.model} has invalid {values}; set a valid value "
                              "(see blurblib.training.config.RunConfig, or `blurb finetune --help`)")
        heads.check(self.head, tasks.get(self.task).head_kind, self.task)
        if self.lpft_epochs and self.head == "biencoder":
            raise ConfigError("lpft_epochs needs a head with weights to probe; the biencoder head has none "
                              "(its step-0 model already is the zero-shot cosine): use head 'mean' or lpft_epochs=0")
        self._validate_slimfit(models.get(self.model).layers)

    def _validate_slimfit(self, blocks: int) -> None:
        """SlimFit schedules the embeddings and the blocks that `freeze_layers` leaves trainable."""
        if self.slimfit_quant_bits and not self.slimfit_rate:
            raise ConfigError(f"slimfit_quant_bits={self.slimfit_quant_bits} stores what frozen blocks keep in 8 bits, "
                              "but slimfit_rate=0 freezes none: set slimfit_rate (e.g. 0.9) or slimfit_quant_bits=0")
        self._validate_slimfit_stores()
        if not self.slimfit_rate or self.slimfit_unit == "tensor":
            return  # tensor units: their number is the model's, slimfit.attach names a rate that freezes none
        if not 0 <= self.freeze_layers <= blocks:
            return  # techniques.prepare names the bad freeze_layers
        units = blocks - self.freeze_layers + (0 if self.freeze_layers else 1)
        if units < 2:
            raise ConfigError(f"freeze_layers={self.freeze_layers} leaves slimfit {units} of {self.model}'s layers to "
                              "schedule; it needs two (one frozen, one training each step): lower freeze_layers")
        frozen = int(self.slimfit_rate * units)  # SlimFit's rule, as slimfit.frozen_count
        if frozen == 0:
            raise ConfigError(f"slimfit_rate={self.slimfit_rate:g} freezes int({self.slimfit_rate:g} x {units}) = 0 of "
                              f"the {units} layers slimfit schedules on {self.model} (the embeddings and the blocks "
                              f"freeze_layers={self.freeze_layers} leaves trainable): raise slimfit_rate to at least "
                              f"{math.ceil(1000 / units) / 1000:g}")


    def _validate_slimfit_stores(self) -> None:
        """The unit and compression knobs mean something only with SlimFit on, and one store each."""
        compress = [f"{name}={getattr(self, name)!r}" for name in SLIMFIT_COMPRESSION if getattr(self, name)]
        if (compress or self.slimfit_unit != "block") and not self.slimfit_rate:
            knobs = ", ".join(compress + ([f"slimfit_unit={self.slimfit_unit!r}"] if self.slimfit_unit != "block" else []))
            raise ConfigError(f"{knobs} belong to SlimFit, but slimfit_rate=0 turns it off: set slimfit_rate "
                              "(e.g. 0.9) or leave those knobs at their defaults")
        if self.slimfit_quant_bits and self.slimfit_unit == "tensor":
            raise ConfigError("slimfit_quant_bits=8 stores what wholly frozen blocks keep, and slimfit_unit='tensor' "
                              "never freezes a whole block (biases train): use the compression knobs "
                              "(slimfit_gelu_bits, slimfit_attention_bits, slimfit_ffn_bits, slimfit_ln_keep) instead")
        if self.slimfit_quant_bits and compress:
            raise ConfigError(f"slimfit_quant_bits=8 and {', '.join(compress)} would store the same tensors twice: "
                              "choose one (slimfit_quant_bits=0 for SlimFit's own compression)")


SLIMFIT_COMPRESSION = ("slimfit_gelu_bits", "slimfit_attention_bits", "slimfit_ffn_bits", "slimfit_ln_keep")


def _finite(value) -> bool:
    """A real number that is not NaN or infinite (NaN compares false, inf passes `> 0`)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def content_id(config, *labels: str) -> str:
    """`task__model__<labels>__<hash of the fields>`: readable, and equal for equal configs in
    every clone and on every backend (the store's cache key). Every field counts except late
    ones (`_late_field`) at their default, so a knob added later keeps every stored id."""
    payload = json.dumps(_id_fields(config), sort_keys=True)
    digest = hashlib.sha1(payload.encode()).hexdigest()[:10]
    model = re.sub(r"[^A-Za-z0-9.-]+", "-", config.model.rstrip("/").split("/")[-1])
    return "__".join((config.task, model, *labels, digest))


def _id_fields(config) -> dict:
    """Every field, less the late ones at their default (so adding a knob renames no stored run)."""
    values = dataclasses.asdict(config)
    for f in dataclasses.fields(config):
        if f.metadata.get("late") and values[f.name] == f.default:
            del values[f.name]
    return values


def late_defaults() -> dict:
    """RunConfig's late fields at their defaults: what a record written before them ran with."""
    return {f.name: f.default for f in dataclasses.fields(RunConfig) if f.metadata.get("late")}


def backfill(fields: dict) -> dict:
    """A stored record's config fields, with the late fields it predates at their defaults."""
    return {**late_defaults(), **fields}


def technique_label(config) -> str:
    """`standard`, or the active knobs in registry order: `freeze3`, `llrd0.8`, `freeze3+llrd0.9`;
    a technique's qualifiers away from their neutral value follow its knob: `slimfit0.9-int8`."""
    def label(t) -> str:
        qualifiers = "".join(f"-{short}{_label_value(getattr(config, field))}" for field, short, neutral in t.qualifiers
                             if getattr(config, field) != neutral)
        return f"{t.name}{getattr(config, t.knob):g}{qualifiers}"

    return "+".join(label(t) for t in active(config)) or "standard"


def _label_value(value) -> str:
    """A knob's value in a label: numbers as `:g` (0.9, 8), words as they are (tensor)."""
    return value if isinstance(value, str) else f"{value:g}"


def technique_knobs(name: str) -> dict:
    """The RunConfig knobs of a technique at its usual value: `reinit` -> {"reinit_layers": 1}."""
    technique = get(name)
    return {} if technique.knob is None else {technique.knob: technique.default}


# ----------------------------------------------------------------------------- the technique registry
# Part of the run schema: which RunConfig field turns each technique on, and at which value it is
# off. The operations themselves (torch) are `blurblib.training.techniques`.


@dataclass(frozen=True)
class Technique:
    """A technique as data: which run-config field (`knob`) turns it on, the knob's neutral value
    (the technique off), its usual value, and the values a notebook sweeps. `standard` has no
    knob. Adding a technique is one entry here, a `RunConfig` field for its knob, and the code
    that reads it (`prepare` for the model, `param_groups` for the optimizer, or the loop).
    `qualifiers` are `(field, short, neutral)` of other RunConfig fields that refine an active
    technique and name it apart in the run label (`slimfit0.9-int8`). `extra_epochs`: the knob
    counts epochs the technique trains on top of the recipe's (LP-FT's head-only epochs), which
    its compute-matched control (`compute_matched_control`) gives standard fine-tuning instead."""

    name: str
    description: str
    knob: str | None
    neutral: float | int | None
    default: float | int | None
    sweep: tuple = ()
    reference: str = ""
    qualifiers: tuple[tuple[str, str, float | int], ...] = ()
    extra_epochs: bool = False


TECHNIQUES: dict[str, Technique] = {t.name: t for t in [
    Technique("standard", "plain fine-tuning: AdamW (bias-corrected), linear warmup and decay", None, None, None,
              reference="Devlin et al. 2019"),
    Technique("freeze", "freeze the embeddings and the bottom k encoder blocks", "freeze_layers", 0, 3,
              (1, 2, 3, 4, 5), "Tinn et al. 2023: helps BERT-base models"),
    Technique("llrd", "layer-wise learning-rate decay: block i at lr * decay**(L - i)", "llrd_decay", 1.0, 0.9,
              (0.95, 0.9, 0.8, 0.7), "Howard & Ruder 2018; Tinn et al. 2023: helps BERT-large and ELECTRA"),
    Technique("reinit", "re-initialise the top n encoder blocks and the pooler", "reinit_layers", 0, 1,
              (1, 2, 3), "Zhang et al. 2021; Tinn et al. 2023: best for low-resource tasks (BIOSSES)"),
    Technique("mixout", "mix encoder Linear weights toward the pretrained ones with probability p", "mixout", 0.0, 0.1,
              (0.1, 0.3, 0.5, 0.7, 0.9), "Lee et al. 2020"),
    Technique("lpft", "linear probe first: k epochs training only the head on the frozen encoder, then fine-tune all",
              "lpft_epochs", 0, 3, (1, 3, 5), "Kumar et al. 2022: fine-tuning distorts pretrained features; LP-FT does not",
              extra_epochs=True),
    Technique("slimfit", "SlimFit: each step freeze the share `rate` of the scheduled units (slimfit_unit: weight "
              "tensors as its authors, or embedding/block layers) whose weights changed least (inter-layer "
              "scheduling); its activation compression by the slimfit_*_bits / slimfit_ln_keep switches; with "
              "slimfit_quant_bits=8 what frozen blocks keep is int8 rows",
              "slimfit_rate", 0.0, 0.9, (0.5, 0.75, 0.9), "Ardakani et al. 2024: up to 95% of layers frozen, "
              "fine-tuning memory cut 2.2x on average",
              qualifiers=(("slimfit_quant_bits", "int", 0), ("slimfit_unit", "", "block"), ("slimfit_gelu_bits", "gelu", 0),
                          ("slimfit_attention_bits", "att", 0), ("slimfit_ffn_bits", "ffn", 0),
                          ("slimfit_ln_keep", "ln", 0.0))),
]}


def neutral_knobs() -> dict:
    """Every technique's knob at its neutral value, read from the registry when asked (so an
    entry added at run time counts): a config with all of them is plain fine-tuning."""
    return {t.knob: t.neutral for t in TECHNIQUES.values() if t.knob}


def names() -> list[str]:
    return list(TECHNIQUES)


def get(name: str) -> Technique:
    if name not in TECHNIQUES:
        raise UnknownNameError(f"unknown technique {name!r}; known techniques: {', '.join(TECHNIQUES)}")
    return TECHNIQUES[name]


def active(cfg) -> list[Technique]:
    """The techniques a config's knobs turn on (knob away from its neutral value), in registry
    order. Works on configs and on table rows (anything with the knobs as attributes)."""
    knobs = knob_values(cfg)
    return [t for t in TECHNIQUES.values() if t.knob and knobs[t.knob] != t.neutral]


def family(cfg) -> str:
    """The technique a run belongs to (the first active one, e.g. `llrd` for `llrd_decay=0.8`),
    or `standard`: the claim it tests, read from its fields rather than parsed back out of its label."""
    on = active(cfg)
    return on[0].name if on else "standard"


def knob_values(cfg) -> dict:
    """The knob values of a config or table row. A knob added after runs were stored (a late
    RunConfig field) reads as its neutral value where the row predates it (absent, or NaN in a
    table mixing old and new records): such a run ran with it off."""
    neutral, late = neutral_knobs(), late_defaults()
    knobs, missing = {}, []
    for k in neutral:
        if hasattr(cfg, k):
            value = getattr(cfg, k)
            knobs[k] = late[k] if k in late and value != value else value  # value != value: NaN
        elif k in late:
            knobs[k] = late[k]
        else:
            missing.append(k)
    if missing:
        raise ConfigError(f"run config {type(cfg).__name__} lacks the technique fields {missing}")
    return knobs


def control_label(cfg) -> str | None:
    """`standard +3 epochs` for a config or row whose techniques train 3 epochs on top of the
    recipe (LP-FT's probe; `freeze3 +3 epochs` for LP-FT with freezing), None where none do."""
    extra = _extra_epochs(cfg)
    if not extra:
        return None
    others = "+".join(t.name + f"{knob_values(cfg)[t.knob]:g}" for t in active(cfg) if not t.extra_epochs)
    return f"{others or 'standard'} +{extra:g} epochs"


def compute_matched_control(config: RunConfig) -> RunConfig | None:
    """The same run without the techniques that add epochs, given those epochs as ordinary
    training (LP-FT's 3 head-only epochs -> 3 more epochs): what such a technique must beat for
    its gain to be more than more training. None for a config that adds none."""
    extra = _extra_epochs(config)
    if not extra:
        return None
    off = {t.knob: t.neutral for t in active(config) if t.extra_epochs}
    return dataclasses.replace(config, **off, epochs=config.epochs + extra)


def _extra_epochs(cfg) -> int:
    knobs = knob_values(cfg)
    return sum(int(knobs[t.knob]) for t in active(cfg) if t.extra_epochs)


def is_standard(cfg) -> bool:
    return knob_values(cfg) == neutral_knobs()
