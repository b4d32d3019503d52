"""What the untouched encoder already knows: a frozen-encoder reference for each task.

A fine-tuning run is only evidence of learning if it beats the encoder it started from, used
without any training of its weights. The reference sees exactly the data the runs see
(the same fixed train subsample and the same dev/test subsets, cross-encoded as `encoding`
does for the runs' cls and mean heads):

* BIOSSES: zero-shot cosine. Each sentence is encoded alone and mean-pooled, as sentence
  encoders such as all-MiniLM-L6-v2 were trained to be used; the cosine of the two vectors is
  the predicted similarity. No training data is used.
* every other task: a linear probe. Frozen features (mean-pooled last hidden states of the
  cross-encoded input, or each sub-word's hidden state for NER/PICO) feed a scikit-learn
  StandardScaler + LogisticRegression whose C is chosen on dev, never on test.

Predictions go through `encoding.decode` and `metrics.score`, so the numbers are on the same
scale as the runs'. Records land in `OUT/references/runs/<run_id>.json`, one per reference.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from ..core.errors import ConfigError
from ..data import encoding, metrics, tasks
from ..encoders import heads, models
from ..training import train
from ..training.config import content_id
from . import results

ZERO_SHOT = "zero-shot cosine"
PROBE = "linear probe"
PROBE_C_GRID = (0.01, 0.1, 1.0)
PROBE_MAX_ITER = 2000
BATCH_SIZE = 32
# Logit of a class the probe cannot predict (absent from the train subsample), and the
# decision of a multi-label column that is constant in train: far from the 0 threshold.
ABSENT_LOGIT = -1e9
CONSTANT_DECISION = 1e3
STORE_SUBDIR = "references"


@dataclass(frozen=True)
class ReferenceConfig:
    """A frozen-encoder reference for one task (no fine-tuning); its hash names it in the store."""

    task: str
    model: str = "minilm-l6"
    train_limit: int | None = None
    eval_limit: int | None = None
    max_length: int | None = None

    @property
    def kind(self) -> str:
        """Zero-shot cosine for the similarity task (a sentence encoder's native use), else a probe."""
        return ZERO_SHOT if tasks.get(self.task).task_type == "similarity" else PROBE

    @property
    def run_id(self) -> str:
        return content_id(self, "reference")

    @classmethod
    def for_run(cls, run_config) -> ReferenceConfig:
        """The reference a run must beat: same task, model and data (any object with these fields)."""
        return cls(**{f.name: getattr(run_config, f.name) for f in dataclasses.fields(cls)})

    def validate(self) -> None:
        """Fail before the encoder loads, naming the bad field."""
        tasks.get(self.task)
        models.get(self.model)
        bad = [name for name in ("train_limit", "eval_limit") if getattr(self, name) is not None
               and getattr(self, name) < 1]
        if self.max_length is not None and self.max_length < 8:
            bad.append("max_length")
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise ConfigError(f"ReferenceConfig for {self.task}/{self.model} has invalid {values}; limits must be "
                              ">= 1 (or None for the whole split) and max_length >= 8")


# --------------------------------------------------------------------------- frozen features


def prepare_data(config: ReferenceConfig, tokenizer):
    """Raw and encoded splits exactly as the runs get them (`train.load_splits`): pairs as one
    input for a probe, each sentence alone for the zero-shot cosine."""
    raw = train.load_splits(config.task, config.train_limit, config.eval_limit)
    head = "biencoder" if config.kind == ZERO_SHOT else None
    return raw, encoding.encode(raw, config.task, tokenizer, config.max_length, head=head)


def _encoder(config: ReferenceConfig, device: str = "cpu"):
    """The pretrained encoder without any task head, in eval mode on `device`, and its tokenizer."""
    model, tokenizer = models.load(config.model, config.task)
    return model.base_model.eval().to(device), tokenizer


def model_rows(split) -> list[dict]:
    """The encoder's inputs of an encoded split, one dict per example (labels left out)."""
    columns = [c for c in encoding.MODEL_COLUMNS if c in split.column_names and c != "labels"]
    return split.select_columns(columns).to_list()


@torch.inference_mode()
def features(encoder, rows: list[dict], collate, token_level: bool, batch_size: int = BATCH_SIZE) -> list[np.ndarray]:
    """Per-example frozen features in input order: a mean-pooled vector, or (T_i, H) sub-word
    states when `token_level`. Batches are grouped by length so padding costs little."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))
    out: list[np.ndarray | None] = [None] * len(rows)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        batch = collate([rows[i] for i in chunk])
        batch.pop("labels", None)
        device = next(encoder.parameters()).device  # the encoder's (a GPU for the paper profile's references)
        batch = {k: v.to(device) for k, v in batch.items()}
        hidden = encoder(**batch).last_hidden_state
        if token_level:
            lengths = batch["attention_mask"].sum(dim=1).tolist()
            values = [h[:n].float().cpu().numpy() for h, n in zip(hidden, lengths)]
        else:
            values = list(heads.mean_pool(hidden, batch["attention_mask"]).float().cpu().numpy())
        for i, value in zip(chunk, values):
            out[i] = value
    return out  # type: ignore[return-value]


def sentence_vectors(encoder, tokenizer, split, side: str) -> np.ndarray:
    """Mean-pooled vectors of one side (`a` or `b`) of a pair split encoded sentence by sentence."""
    from transformers import DataCollatorWithPadding

    rows = [{"input_ids": ids, "attention_mask": mask}
            for ids, mask in zip(split[f"input_ids_{side}"], split[f"attention_mask_{side}"])]
    return np.stack(features(encoder, rows, DataCollatorWithPadding(tokenizer, return_tensors="pt"), token_level=False))


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(min=1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(min=1e-12)
    return (a * b).sum(axis=1)


# --------------------------------------------------------------------------- the probe


def _logistic(c: float):
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=PROBE_MAX_ITER, random_state=0))


class SingleLabelProbe:
    """Softmax probe whose logits cover the task's full label list: a class absent from the
    train subsample gets `ABSENT_LOGIT`, so `encoding.decode`'s argmax never picks it."""

    def __init__(self, c: float, n_classes: int):
        self.c, self.n_classes = c, n_classes

    def fit(self, x: np.ndarray, y: np.ndarray) -> SingleLabelProbe:
        self.classes_ = np.unique(y)
        self.model_ = _logistic(self.c).fit(x, y) if len(self.classes_) > 1 else None
        return self

    def logits(self, x: np.ndarray) -> np.ndarray:
        out = np.full((len(x), self.n_classes), ABSENT_LOGIT)
        if self.model_ is None:  # one class in train: predict it everywhere
            out[:, self.classes_[0]] = 0.0
        else:
            out[:, self.classes_] = np.maximum(self.model_.predict_log_proba(x), ABSENT_LOGIT / 2)
        return out


class MultiLabelProbe:
    """One binary probe per label; logits are log-odds, so logit >= 0 means predicted, the
    threshold `encoding.decode` applies. A label constant in train keeps that constant."""

    def __init__(self, c: float, n_classes: int):
        self.c, self.n_classes = c, n_classes

    def fit(self, x: np.ndarray, y: np.ndarray) -> MultiLabelProbe:
        y = np.asarray(y).astype(int)
        self.columns_ = []
        for j in range(y.shape[1]):
            values = np.unique(y[:, j])
            self.columns_.append(_logistic(self.c).fit(x, y[:, j]) if len(values) > 1 else int(values[0]))
        return self

    def logits(self, x: np.ndarray) -> np.ndarray:
        out = np.empty((len(x), self.n_classes))
        for j, column in enumerate(self.columns_):
            if isinstance(column, int):
                out[:, j] = CONSTANT_DECISION if column else -CONSTANT_DECISION
            else:
                out[:, j] = column.decision_function(x)
        return out


def make_probe(head_kind: str, c: float, n_classes: int):
    return (MultiLabelProbe if head_kind == "multi_label" else SingleLabelProbe)(c, n_classes)


# --------------------------------------------------------------------------- one reference


def _token_training_set(feats: list[np.ndarray], labels: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Sub-word rows that carry a word's label (its first sub-word), as encoding marks them."""
    xs, ys = [], []
    for f, row in zip(feats, labels):
        row = np.asarray(row[: len(f)])
        keep = row != encoding.IGNORE_INDEX
        xs.append(f[keep])
        ys.append(row[keep])
    return np.concatenate(xs), np.concatenate(ys)


def _probe_logits(probe, feats: list[np.ndarray], token_level: bool):
    if token_level:
        return [probe.logits(f) for f in feats]
    return probe.logits(np.stack(feats))


def _score(task: str, logits, encoded_split, raw_split) -> float:
    predictions = encoding.decode(task, logits, encoded_split, raw_split)
    return metrics.score(task, predictions, raw_split[tasks.get(task).target])


def _run_probe(spec, feats: dict, encoded, raw) -> dict:
    """Fit one probe per C on train, keep the best by dev score, score it on test."""
    token_level = spec.head_kind == "token_classification"
    if token_level:
        x, y = _token_training_set(feats["train"], encoded["train"]["labels"])
    else:
        x, y = np.stack(feats["train"]), np.asarray(encoded["train"]["labels"])
    dev_scores, best = {}, None
    for c in PROBE_C_GRID:
        probe = make_probe(spec.head_kind, c, len(spec.labels)).fit(x, y)
        dev = _score(spec.name, _probe_logits(probe, feats["dev"], token_level), encoded["dev"], raw["dev"])
        dev_scores[f"{c:g}"] = dev
        if best is None or dev > best[0]:  # ties keep the smaller C (stronger regularisation)
            best = (dev, c, probe)
    dev, c, probe = best
    test = _score(spec.name, _probe_logits(probe, feats["test"], token_level), encoded["test"], raw["test"])
    return {"dev_score": dev, "test_score": test, "probe_c": c, "probe_dev_scores": dev_scores,
            "n_train": len(encoded["train"]), "n_probe_rows": int(len(x)), "n_features": int(x.shape[1])}


def _run_zero_shot(spec, encoder, tokenizer, config: ReferenceConfig, encoded, raw) -> dict:
    """Cosine of the separately encoded sentences, scored on dev and test; trains nothing."""
    out = {"probe_c": None, "probe_dev_scores": None, "n_train": 0}
    for split in ("dev", "test"):
        a = sentence_vectors(encoder, tokenizer, encoded[split], "a")
        b = sentence_vectors(encoder, tokenizer, encoded[split], "b")
        logits = cosine(a, b)[:, None]
        out[f"{split}_score"] = _score(spec.name, logits, encoded[split], raw[split])
        out["n_features"] = int(a.shape[1])
    return out


def run(config: ReferenceConfig, progress: bool = False, device: str = "cpu") -> dict:
    """The reference's record (JSON-serialisable, like `train.run`'s).

    `n_train` is the number of training examples the reference learned from: the train
    subsample for a probe, 0 for the zero-shot cosine (which uses no training data).
    """
    config.validate()
    spec = tasks.get(config.task)
    started = time.perf_counter()
    encoder, tokenizer = _encoder(config, device)
    raw, encoded = prepare_data(config, tokenizer)
    if config.kind == ZERO_SHOT:
        scores = _run_zero_shot(spec, encoder, tokenizer, config, encoded, raw)
    else:
        collate = encoding.collator(spec.name, tokenizer)
        token_level = spec.head_kind == "token_classification"
        splits = tqdm(("train", "dev", "test"), desc=f"{spec.name} features", disable=not progress, leave=False)
        feats = {split: features(encoder, model_rows(encoded[split]), collate, token_level) for split in splits}
        scores = _run_probe(spec, feats, encoded, raw)
    return {
        "run_id": config.run_id,
        "config": dataclasses.asdict(config),
        "kind": "reference",
        "technique": config.kind,
        "status": "ok",
        **scores,
        "trivial_test_score": metrics.trivial_score(spec.name, raw["test"][spec.target]),
        "wall_time_s": time.perf_counter() - started,
        "model_pretrained": models.get(config.model).pretrained,
        "torch_version": torch.__version__,
        "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


# --------------------------------------------------------------------------- many references


def store_for(out_dir) -> results.ResultsStore:
    """References live beside the runs, in their own store: `OUT/references/runs/<id>.json`."""
    return results.ResultsStore(Path(out_dir) / STORE_SUBDIR, config_id=lambda fields: ReferenceConfig(**fields).run_id,
                                known_fields={f.name for f in dataclasses.fields(ReferenceConfig)}, shape=None)


def run_references(configs, out_dir, progress: bool = True, device: str = "cpu") -> pd.DataFrame:
    """Run every reference not yet stored (each written the moment it is done; the frozen encoder's
    forward passes on `device`); return the records of `configs`, in order, one row each with the
    config fields as columns."""
    configs = list(dict.fromkeys(configs))
    for config in configs:
        config.validate()
    store = store_for(out_dir)
    todo = [c for c in configs if not store.has(c.run_id)]
    for config in tqdm(todo, desc="references", disable=not (progress and todo)):  # no bar when nothing is left to do
        store.write(run(config, progress=False, device=device))
    return _table([store.get(c.run_id) for c in configs])


def references_for(run_configs, out_dir, progress: bool = True, device: str = "cpu") -> pd.DataFrame:
    """The references the given runs must beat (one per distinct task/model/data), run if needed
    (on `device`: a large encoder's features of a whole training set take hours on a CPU)."""
    return run_references([ReferenceConfig.for_run(c) for c in run_configs], out_dir, progress, device)


def _table(records: list[dict]) -> pd.DataFrame:
    rows = []
    for record in records:
        row = {k: v for k, v in record.items() if k != "config"}
        row.update(record["config"])
        rows.append(row)
    return pd.DataFrame(rows)
