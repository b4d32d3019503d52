"""What notebook 01 shows of its pretraining arms: MLM loss curves, held-out MLM loss on every corpus
(read from the arm store when it holds them, else computed and stored), and what each arm is."""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

from ..data import corpora
from ..encoders.models import quiet_transformers
from ..runs.arms import ARMS, pretrain_record, read_arm_record, update_arm_record
from ..training.mlm import PretrainConfig, mlm_eval_loss

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def loss_curves(arm_models: dict[str, str], store_dir: str | Path | None = None) -> pd.DataFrame:
    """Training MLM loss per step of every arm that was pretrained (read from its `pretrain.json`,
    or the store's copy): columns arm, step, tokens (seen so far), loss. Arms without a pretraining
    run have no rows."""
    import pandas as pd

    frames = []
    for arm, model in arm_models.items():
        data = pretrain_record(model, store_dir)
        if data is None:
            continue
        config = PretrainConfig(**data["config"])
        per_step = config.batch_size * config.seq_length
        losses = data["losses"]
        frames.append(pd.DataFrame({"arm": arm, "step": range(1, len(losses) + 1),
                                    "tokens": [per_step * (i + 1) for i in range(len(losses))], "loss": losses}))
    if not frames:
        return pd.DataFrame(columns=["arm", "step", "tokens", "loss"])
    return pd.concat(frames, ignore_index=True)


def heldout_losses(arm_models: dict[str, str], corpus_names=corpora.CORPUS_NAMES, max_blocks: int = 64,
                   seq_length: int = 128, store_dir: str | Path | None = None) -> pd.DataFrame:
    """Held-out MLM loss of every arm on every corpus's held-out text (never pretrained on), with the
    same seeded masks for all arms: rows arm x corpus, columns loss, perplexity and `mlm_head`
    ("trained", or "untrained" for the released and random arms, which score near ln(vocabulary) =
    10.3 whatever their encoder: the number then says nothing about the encoder). With `store_dir`,
    losses the store holds for these settings are read, not recomputed, and new ones are stored."""
    import pandas as pd

    key = f"{','.join(corpus_names)}/{max_blocks}x{seq_length}"
    rows = []
    level = log.level
    log.setLevel(logging.ERROR)  # the untrained-head warnings are the `mlm_head` column
    try:
        with quiet_transformers():
            for arm, model in arm_models.items():
                stored = (read_arm_record(store_dir, model) or {}).get("heldout", {}) if store_dir is not None else {}
                losses = stored.get(key) or _heldout(model, corpus_names, max_blocks, seq_length)
                if store_dir is not None and key not in stored:
                    update_arm_record(store_dir, model, heldout={**stored, key: losses})
                trained_head = pretrain_record(model, store_dir) is not None
                rows += [{"arm": arm, "corpus": name, "loss": loss, "perplexity": math.exp(loss),
                          "mlm_head": "trained" if trained_head else "untrained"} for name, loss in losses.items()]
    finally:
        log.setLevel(level)
    return pd.DataFrame(rows)


def _heldout(model: str, corpus_names, max_blocks: int, seq_length: int) -> dict[str, float]:
    return {name: mlm_eval_loss(model, corpora.heldout_corpus(name), seq_length=seq_length, max_blocks=max_blocks)
            for name in corpus_names}


def arm_table(arm_models: dict[str, str], store_dir: str | Path | None = None) -> pd.DataFrame:
    """What each arm is: its description, the model it fine-tunes (registry name or checkpoint folder
    name), and for pretrained arms the budget, steps, last training losses, wall time and precision."""
    import pandas as pd

    rows = []
    for arm, model in arm_models.items():
        data = pretrain_record(model, store_dir)
        row = {"arm": arm, "description": ARMS[arm].description if arm in ARMS else "",
               "model": Path(model).name}  # a registry name, or the checkpoint folder's name
        if data is not None:
            losses = data["losses"]
            row.update({"tokens": data["tokens_seen"], "steps": len(losses),
                        "head_warmup_steps": data["config"]["head_warmup_steps"],
                        "final_loss": sum(losses[-5:]) / len(losses[-5:]), "wall_time_s": data["wall_time_s"],
                        "precision": data["config"].get("precision", "fp32")})
        rows.append(row)
    return pd.DataFrame(rows)
