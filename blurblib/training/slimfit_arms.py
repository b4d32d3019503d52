"""The arms of the SlimFit comparison as RunConfig knobs, and which arm a run is.

Four arms share a frozen fraction: `standard` (every layer trains), `static` (the embeddings and
the lower blocks frozen for the whole run, as many layers as SlimFit freezes each step),
`slimfit` (SlimFit's inter-layer scheduling, the block variant; `slimfit-int8` stores what frozen
blocks keep as int8) and `slimfit-faithful` (SlimFit as its authors built it: single weight
tensors scheduled, biases always trained, their 4/8-bit activations and LayerNorm pruning).
"""
from __future__ import annotations

import math

import pandas as pd

from ..core.errors import ConfigError
from ..encoders import models
from . import slimfit

SLIMFIT_RATE = 0.9  # SlimFit's usual freezing rate: int(0.9 x 7) = 6 of minilm-l6's 7 layers frozen each step

ARMS = ("standard", "static", "slimfit", "slimfit-int8", "slimfit-faithful")


# SlimFit as its authors built it: tensor units (biases always train), their compression, no warm-up.
FAITHFUL_KNOBS = {"slimfit_unit": "tensor", "slimfit_gelu_bits": 4, "slimfit_attention_bits": 8, "slimfit_ffn_bits": 8,
                  "slimfit_ln_keep": 0.1}


def scheduled_units(model: str) -> int:
    """The layers SlimFit schedules on a model with nothing frozen beforehand: embeddings + blocks."""
    return models.get(model).layers + 1


def matched_freeze_layers(model: str, rate: float = SLIMFIT_RATE) -> int:
    """The static depth that freezes as many layers as SlimFit at `rate` freezes each step.

    SlimFit schedules the embedding stage and each block, L + 1 units, and freezes
    `int(rate * (L + 1))` of them every step; `freeze_layers=k` freezes the embeddings and the
    lower k blocks, k + 1 units. So k = int(rate * (L + 1)) - 1: on minilm-l6 (7 units) rate 0.9
    freezes 6 per step and k = 5 freezes the same 6 (embeddings + 5 of 6 blocks); on BERT-base
    (13 units) 11 and k = 10. Both arms then train one (minilm) or two (BERT-base) layers per step,
    plus the head; what differs is which: the top block always (static), or the layers whose
    weights still change most, re-chosen every step (SlimFit). Matching by layers, SlimFit's own
    unit of its freezing rate, is not matching by parameters: the embedding layer holds half of
    minilm-l6's weights (11.7M of 22.7M), so a SlimFit step that trains it trains more than a static one.
    """
    units = scheduled_units(model)
    frozen = slimfit.frozen_count(rate, units)
    if frozen < 2 or frozen >= units:
        raise ConfigError(f"slimfit_rate={rate:g} freezes {frozen} of {model}'s {units} layers each step; static "
                          "freezing can match 2 up to all but one (the embeddings and at least one block, leaving one "
                          f"to train): choose a rate from {2 / units:.3g} up to below 1")
    return frozen - 1


def arm_knobs(model: str, rate: float = SLIMFIT_RATE, int8: bool = True, faithful: bool = False) -> dict[str, dict]:
    """`{arm: RunConfig knobs}` for one model (the static depth depends on its number of blocks).
    `slimfit` is the block variant; `faithful` adds SlimFit as its authors built it (`FAITHFUL_KNOBS`)."""
    arms = {"standard": {}, "static": {"freeze_layers": matched_freeze_layers(model, rate)},
            "slimfit": {"slimfit_rate": rate}}
    if int8:
        arms["slimfit-int8"] = {"slimfit_rate": rate, "slimfit_quant_bits": 8}
    if faithful:
        arms["slimfit-faithful"] = {"slimfit_rate": rate, **FAITHFUL_KNOBS}
    return arms


def frozen_per_step(model: str, knobs: dict) -> int:
    """Layers (embedding stage, blocks) frozen during each step under an arm's knobs."""
    if knobs.get("slimfit_rate"):
        return slimfit.frozen_count(knobs["slimfit_rate"], scheduled_units(model))
    k = knobs.get("freeze_layers", 0)
    return k + 1 if k else 0


def arm_of(row) -> str:
    """Which arm a run (config or table row) belongs to, from its knobs (a record that predates the
    SlimFit fields reads them as off)."""
    def value(name):
        v = getattr(row, name, None) if not isinstance(row, (dict, pd.Series)) else row.get(name)
        return 0 if v is None or (isinstance(v, float) and math.isnan(v)) else v

    if value("slimfit_rate"):
        if value("slimfit_unit") == "tensor":
            return "slimfit-faithful"
        return "slimfit-int8" if value("slimfit_quant_bits") == 8 else "slimfit"
    if value("freeze_layers"):
        return "static"
    return "standard"
