"""Tokenise a BLURB task for a model, batch it, and turn logits back into metric-form predictions.

    encode(dsd, task, tokenizer)      raw columns -> input_ids, attention_mask[, token_type_ids],
                                      labels, length (+ word_ids for NER/PICO)
    collator(task, tokenizer)         dynamic padding; keeps only what the model takes
    decode(task, logits, enc, raw)    logits -> predictions shaped like the raw target column

NER/PICO follow the BLURB/LinkBERT recipe: each word's label sits on its first sub-word, the
other sub-words get -100 (ignored by the loss), and a prediction is read back from the first
sub-word. Words cut off by truncation (or that tokenise to nothing) are predicted `O`, so the
metric still sees every gold word.
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence

import datasets
import numpy as np
from datasets import Dataset, DatasetDict, Value
from datasets import Sequence as SequenceFeature

from ..core.errors import ConfigError, DataError
from . import tasks

IGNORE_INDEX = -100  # label of non-first sub-words and special tokens: ignored by the loss
MULTI_LABEL_THRESHOLD = 0.5  # HoC: a hallmark is predicted when sigmoid(logit) >= 0.5
MODEL_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "labels")
_SANE_MODEL_MAX_LENGTH = 100_000  # tokenizers without a known limit report ~1e30


def _max_length(spec, tokenizer, max_length: int | None) -> int:
    length = int(max_length if max_length is not None else spec.max_length)
    if length < 8:
        raise ConfigError(f"max_length={length} is too short to hold special tokens and text; use 128 or more")
    limit = getattr(tokenizer, "model_max_length", None)
    if limit is not None and limit < _SANE_MODEL_MAX_LENGTH:
        length = min(length, int(limit))  # never more positions than the model has
    return length


@contextlib.contextmanager
def _no_progress_bars():
    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bar()


def encode(dsd: DatasetDict | Dataset, task, tokenizer, max_length: int | None = None,
           head: str | None = None) -> DatasetDict | Dataset:
    """Tokenise every split of `dsd` for `task`; returns the same kind (DatasetDict or Dataset).

    `max_length` defaults to the task's BLURB length (GAD 128, ChemProt/DDI 256, others 512)
    and is capped at the tokenizer's own limit. Pairs (BIOSSES, QA) go in as two segments;
    QA truncates the context only, unless the question alone is too long. With
    `head="biencoder"` the two sentences of a pair are encoded apart instead (`input_ids_a`,
    `input_ids_b`, ...), each up to `max_length`. Labels: class ids, float scores (BIOSSES)
    or multi-hot float vectors (HoC). `length` (tokens per example) is there for
    length-grouped batching.
    """
    spec = tasks.get(task)
    length = _max_length(spec, tokenizer, max_length)
    if isinstance(dsd, Dataset):
        return _encode_split(dsd, spec, tokenizer, length, "split", head)
    return DatasetDict({name: _encode_split(split, spec, tokenizer, length, name, head) for name, split in dsd.items()})


def _encode_split(split: Dataset, spec, tokenizer, max_length: int, split_name: str, head: str | None = None) -> Dataset:
    needed = list(spec.text_fields) + [spec.target]
    missing = [c for c in needed if c not in split.column_names]
    if missing:
        raise DataError(f"{spec.name} {split_name}: columns {missing} are missing (has {split.column_names}); "
                        f"load the data with blurblib.data.tasks.load({spec.name!r})")
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"{type(tokenizer).__name__} is not a fast (tokenizers-backed) tokenizer; encoding needs "
                          "word_ids() to align labels: load the tokenizer with models.load or use_fast=True")
    if spec.task_type in ("ner", "pico"):
        fn = _token_batch_fn(spec, tokenizer, max_length)
    elif head == "biencoder":
        fn = _separate_pair_batch_fn(spec, tokenizer, max_length)
    else:
        fn = _sequence_batch_fn(spec, tokenizer, max_length)
    with _no_progress_bars():
        encoded = split.map(fn, batched=True, batch_size=1000, remove_columns=split.column_names)
        label_feature = {
            "token_classification": SequenceFeature(Value("int64")),
            "single_label": Value("int64"),
            "regression": Value("float32"),
            "multi_label": SequenceFeature(Value("float32")),
        }[spec.head_kind]
        return encoded.cast_column("labels", label_feature)


def _label_ids(spec, values, where: str) -> list[int]:
    index = {label: i for i, label in enumerate(spec.labels)}
    out = []
    for value in values:
        if value not in index:
            raise DataError(f"{spec.name}: label {value!r} in {where} is not one of {list(spec.labels)}; "
                            "fix the data file or the task's label list")
        out.append(index[value])
    return out


def _token_batch_fn(spec, tokenizer, max_length: int):
    def fn(batch):
        enc = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
        labels, word_ids_col = [], []
        for i, tags in enumerate(batch["tags"]):
            if len(tags) != len(batch["tokens"][i]):
                raise DataError(f"{spec.name}: example {i} of a batch has {len(batch['tokens'][i])} tokens but "
                                f"{len(tags)} tags; every word needs one tag")
            tag_ids = _label_ids(spec, tags, "the tags")
            word_ids = [-1 if w is None else w for w in enc.word_ids(i)]
            row, previous = [], -1
            for w in word_ids:
                row.append(tag_ids[w] if w != -1 and w != previous else IGNORE_INDEX)
                previous = w
            labels.append(row)
            word_ids_col.append(word_ids)
        enc["labels"] = labels
        enc["word_ids"] = word_ids_col
        enc["length"] = [len(ids) for ids in enc["input_ids"]]
        return enc

    return fn


def _sequence_batch_fn(spec, tokenizer, max_length: int):
    kind = spec.head_kind

    def tokenize(batch):
        if len(spec.text_fields) == 1:
            return tokenizer(batch[spec.text_fields[0]], truncation=True, max_length=max_length)
        first, second = (batch[f] for f in spec.text_fields)
        if spec.task_type != "qa":
            return tokenizer(first, second, truncation=True, max_length=max_length)
        # QA: keep the whole question, cut the context; fall back for a question that alone is too long.
        budget = max_length - tokenizer.num_special_tokens_to_add(pair=True)
        q_lengths = [len(ids) for ids in tokenizer(first, add_special_tokens=False)["input_ids"]]
        enc = tokenizer(first, second, truncation="only_second" if max(q_lengths) < budget else "longest_first",
                        max_length=max_length)
        return enc

    def fn(batch):
        enc = tokenize(batch)
        target = batch[spec.target]
        if kind == "regression":
            enc["labels"] = [float(v) for v in target]
        elif kind == "multi_label":
            index = {label: i for i, label in enumerate(spec.labels)}
            hot = []
            for names in target:
                _label_ids(spec, names, "the label lists")
                row = [0.0] * len(spec.labels)
                for name in names:
                    row[index[name]] = 1.0
                hot.append(row)
            enc["labels"] = hot
        else:
            enc["labels"] = _label_ids(spec, target, f"column {spec.target!r}")
        enc["length"] = [len(ids) for ids in enc["input_ids"]]
        return enc

    return fn


def _separate_pair_batch_fn(spec, tokenizer, max_length: int):
    """Each sentence of a pair on its own (a bi-encoder embeds them apart); length = the longer one."""
    first_field, second_field = spec.text_fields

    def fn(batch):
        out = {}
        for suffix, name in (("a", first_field), ("b", second_field)):
            enc = tokenizer(batch[name], truncation=True, max_length=max_length)
            out[f"input_ids_{suffix}"], out[f"attention_mask_{suffix}"] = enc["input_ids"], enc["attention_mask"]
        out["labels"] = [float(v) for v in batch[spec.target]]
        out["length"] = [max(len(a), len(b)) for a, b in zip(out["input_ids_a"], out["input_ids_b"])]
        return out

    return fn


class _PairCollator:
    """Pads the two sides of a bi-encoder batch separately, each to its own longest sentence."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, features: list[dict]):
        import torch

        batch = {}
        for suffix in ("a", "b"):
            side = [{"input_ids": f[f"input_ids_{suffix}"], "attention_mask": f[f"attention_mask_{suffix}"]} for f in features]
            padded = self.tokenizer.pad(side, return_tensors="pt")
            batch[f"input_ids_{suffix}"], batch[f"attention_mask_{suffix}"] = padded["input_ids"], padded["attention_mask"]
        batch["labels"] = torch.tensor([float(f["labels"]) for f in features])
        return batch


class _ModelInputsCollator:
    """Drops bookkeeping columns (`length`, `word_ids`, ...) then pads with the HF collator."""

    def __init__(self, inner, keep: tuple[str, ...]):
        self.inner, self.keep = inner, keep

    def __call__(self, features: list[dict]):
        return self.inner([{k: v for k, v in f.items() if k in self.keep} for f in features])


def collator(task, tokenizer, head: str | None = None):
    """Dynamic padding to the longest example of each batch (labels padded with -100 for NER/PICO;
    the two sentences of a bi-encoder pair padded apart)."""
    from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

    spec = tasks.get(task)
    if head == "biencoder":
        return _PairCollator(tokenizer)
    if spec.head_kind == "token_classification":
        inner = DataCollatorForTokenClassification(tokenizer, label_pad_token_id=IGNORE_INDEX, return_tensors="pt")
    else:
        inner = DataCollatorWithPadding(tokenizer, return_tensors="pt")
    return _ModelInputsCollator(inner, MODEL_COLUMNS)


def _as_rows(logits, n: int, what: str) -> list[np.ndarray]:
    """Per-example logits from a padded array, a tensor, or a list of ragged arrays."""
    if hasattr(logits, "detach"):
        logits = logits.detach().float().cpu().numpy()
    rows = [np.asarray(r, dtype=np.float64) for r in logits] if not isinstance(logits, np.ndarray) else logits
    if len(rows) != n:
        raise DataError(f"{what}: {len(rows)} rows of logits for {n} examples; decode the whole split, in order")
    return rows


def decode(task, logits, encoded_split: Dataset, raw_split: Dataset) -> list:
    """Predictions in the form of the raw target column, ready for `metrics.score`.

    NER/PICO: a tag list per ORIGINAL word, read from each word's first sub-word; words lost
    to truncation get 'O'. Relation/QA: label names. BIOSSES: floats. HoC: lists of hallmark
    names with sigmoid(logit) >= 0.5. `logits` may be one padded array (n, T, C) or a list
    of per-example arrays (T_i, C).
    """
    spec = tasks.get(task)
    n = raw_split.num_rows
    if encoded_split.num_rows != n:
        raise DataError(f"{spec.name}: encoded split has {encoded_split.num_rows} rows, raw split {n}; "
                        "pass the encoded and raw versions of the same split")
    rows = _as_rows(logits, n, spec.name)
    kind = spec.head_kind
    if kind == "token_classification":
        return _decode_tokens(spec, rows, encoded_split["word_ids"], raw_split["tokens"])
    array = np.asarray(rows, dtype=np.float64)
    if kind == "regression":
        return [float(v) for v in array.reshape(n, -1)[:, 0]]
    if kind == "multi_label":
        hot = array >= 0.0  # sigmoid(x) >= 0.5  <=>  x >= 0
        return [[spec.labels[j] for j in np.flatnonzero(row)] for row in hot]
    return [spec.labels[j] for j in array.argmax(axis=-1)]


def _decode_tokens(spec, rows, word_ids_col: Sequence, tokens_col: Sequence) -> list[list[str]]:
    predictions = []
    for row, word_ids, words in zip(rows, word_ids_col, tokens_col):
        tags = ["O"] * len(words)
        if len(row) < len(word_ids):
            raise DataError(f"{spec.name}: logits cover {len(row)} positions but the example has {len(word_ids)} "
                            "tokens; pass unpadded or right-padded logits of the whole sequence")
        best = np.asarray(row)[: len(word_ids)].argmax(axis=-1)
        previous = -1
        for position, w in enumerate(word_ids):
            if w != -1 and w != previous:
                tags[w] = spec.labels[int(best[position])]
            previous = w
        predictions.append(tags)
    return predictions
