"""The run schema: `RunConfig`, everything that decides a fine-tuning run's result.

One dataclass is the only description of a run: sweeps expand into it, profiles fill it,
`blurb finetune`'s flags are generated from its fields (with the help text each field
carries), and the hash of its fields names the run in the results store. Technique knobs
are fields too; which field belongs to which technique, and its neutral value, is the
technique registry's (`blurblib.techniques.TECHNIQUES`).

This module imports no torch at import time (the CLI builds its parser from it in
milliseconds); the registries it checks against are imported when a config needs them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass

from .errors import BlurbError, ConfigError


def _field(default, help: str):
    """A RunConfig field with its help text, which `blurb finetune --help` shows (the CLI's
    flags are generated from these fields, as `transformers.HfArgumentParser` does)."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides a run's result. Its hash names the run in the results store.

    The technique knobs compose: `freeze_layers=3, llrd_decay=0.9` is a valid run.
    """

    task: str = _field(dataclasses.MISSING, "BLURB task (blurblib.tasks)")
    model: str = _field("minilm-l6", "encoder from the model registry (blurblib.models)")
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

    def __post_init__(self):
        # "native" names a head only relative to the model: store the concrete one, so the run id
        # says which formulation was trained (an unknown model is left for validate() to name).
        if self.head == "native":
            from . import models

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
        from . import heads, models, precision, tasks

        tasks.get(self.task)
        models.get(self.model)
        checks = {
            "lr": self.lr > 0,
            "batch_size": self.batch_size >= 1,
            "epochs": self.epochs >= 1,
            "freeze_layers": self.freeze_layers >= 0,
            "reinit_layers": self.reinit_layers >= 0,
            "llrd_decay": 0 < self.llrd_decay <= 1,
            "mixout": 0 <= self.mixout < 1,
            "warmup_ratio": 0 <= self.warmup_ratio < 1,
            "train_limit": self.train_limit is None or self.train_limit >= 1,
            "eval_limit": self.eval_limit is None or self.eval_limit >= 1,
            "max_length": self.max_length is None or self.max_length >= 8,
            "lpft_epochs": self.lpft_epochs >= 0,
            "precision": self.precision in precision.PRECISIONS,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise ConfigError(f"RunConfig for {self.task}/{self.model} has invalid {values}; see blurblib.config.RunConfig")
        heads.check(self.head, tasks.get(self.task).head_kind, self.task)
        if self.lpft_epochs and self.head == "biencoder":
            raise ConfigError("lpft_epochs needs a head with weights to probe; the biencoder head has none "
                              "(its step-0 model already is the zero-shot cosine): use head 'mean' or lpft_epochs=0")


def content_id(config, *labels: str) -> str:
    """`task__model__<labels>__<hash of every field>`: readable, and equal for equal configs in
    every clone and on every backend (the store's cache key)."""
    payload = json.dumps(dataclasses.asdict(config), sort_keys=True)
    digest = hashlib.sha1(payload.encode()).hexdigest()[:10]
    model = re.sub(r"[^A-Za-z0-9.-]+", "-", config.model.rstrip("/").split("/")[-1])
    return "__".join((config.task, model, *labels, digest))


def technique_label(config) -> str:
    """`standard`, or the active knobs in registry order: `freeze3`, `llrd0.8`, `freeze3+llrd0.9`."""
    from . import techniques

    return "+".join(f"{t.name}{getattr(config, t.knob):g}" for t in techniques.active(config)) or "standard"


def technique_knobs(name: str) -> dict:
    """The RunConfig knobs of a technique at its usual value: `reinit` -> {"reinit_layers": 1}."""
    from . import techniques

    technique = techniques.get(name)
    return {} if technique.knob is None else {technique.knob: technique.default}
