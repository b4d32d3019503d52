"""How each real vocabulary cuts BLURB text: the domain-vocabulary half of the pretraining-sensitivity
experiment (notebook 01; the domain-corpus half is `training.mlm` and `runs.arms`).

Gu et al. / Tinn et al. credit part of PubMedBERT's robustness to its in-domain vocabulary: biomedical
words stay whole instead of being shredded into sub-words. We measure that with the REAL tokenizer
files in `paths.shared_models_dir()` (no weights needed):

* sub-words per word and the share of words split into 2+ pieces,
* the share of NER entity mentions cut into 3+ pieces,
* the input length in sub-words (special tokens included) and how often it exceeds the task's
  `max_length` (truncation).

A "word" is a pre-token of BERT's basic tokenizer (whitespace and punctuation split) that contains a
letter or digit, so every vocabulary is judged on the same words and punctuation (never split by
anyone) does not dilute the numbers. For speed each task is measured on `sample` examples spread
evenly over its train+dev splits (dev only for EBM-PICO, which has no train split here).
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core import paths
from ..core.errors import DataError, UnknownNameError
from ..data import tasks
from ..data import tasks as task_registry
from . import packs

DEFAULT_SAMPLE = 500
DEFAULT_TERMS = ("lymphoma", "phosphorylation", "gefitinib", "acetyltransferase", "thrombocytopenia", "EGFR",
                 "hepatocellular", "naloxone", "immunohistochemistry", "BRCA1")


@dataclass(frozen=True)
class Vocabulary:
    """One tokenizer vocabulary. `folder` is under `paths.shared_models_dir()`; `None` means the
    offline MiniLM package. `entries` is checked on load so two vocabularies are never mixed up."""

    name: str
    label: str
    folder: str | None
    lowercase: bool
    kind: str  # "wordpiece" | "bpe"
    entries: int
    domain: str  # "biomedical" | "general" | "scientific"
    note: str = ""


VOCABULARIES: dict[str, Vocabulary] = {v.name: v for v in (
    Vocabulary("pubmedbert", "PubMedBERT (abstract)", "microsoft__BiomedNLP-BiomedBERT-base-uncased-abstract",
               True, "wordpiece", 28_895, "biomedical",
               "built from PubMed abstracts; config.json says vocab_size 30522 but vocab.txt (what tokenises) "
               "has 28,895 entries"),
    Vocabulary("pubmedbert-fulltext", "PubMedBERT (abstract+fulltext)",
               "microsoft__BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext", True, "wordpiece", 30_522,
               "biomedical", "a different vocabulary from the abstract model's: never mix the two"),
    Vocabulary("bert-base-uncased", "BERT-base-uncased", "google-bert__bert-base-uncased", True, "wordpiece",
               30_522, "general", "Wikipedia + BooksCorpus"),
    Vocabulary("scibert", "SciBERT (scivocab)", "allenai__scibert_scivocab_uncased", True, "wordpiece", 31_090,
               "scientific", "Semantic Scholar papers, 82% biomedical"),
    Vocabulary("biobert", "BioBERT v1.1 (cased)", "dmis-lab__biobert-base-cased-v1.1", False, "wordpiece", 28_996,
               "general", "BERT-base-cased's general vocabulary, kept by BioBERT's continued pretraining"),
    Vocabulary("biolinkbert", "BioLinkBERT-large", "michiyasunaga__BioLinkBERT-large", True, "wordpiece", 28_895,
               "biomedical", "the same vocab.txt as PubMedBERT (abstract), byte for byte"),
    Vocabulary("roberta-base", "RoBERTa-base", "FacebookAI__roberta-base", False, "bpe", 50_265, "general",
               "byte-level BPE, cased"),
    Vocabulary("minilm-l6", "MiniLM-L6 (all-MiniLM-L6-v2)", None, True, "wordpiece", 30_522, "general",
               "the offline model's vocabulary: identical to BERT-base-uncased's vocab.txt"),
)}


def names() -> list[str]:
    return list(VOCABULARIES)


def get(name: str) -> Vocabulary:
    if name not in VOCABULARIES:
        raise UnknownNameError(f"unknown vocabulary {name!r}; known: {', '.join(VOCABULARIES)}")
    return VOCABULARIES[name]


def _folder(spec: Vocabulary):
    if spec.folder is None:

        return packs.minilm_dir()
    folder = paths.shared_models_dir() / spec.folder
    if not folder.is_dir():
        raise DataError(f"vocabulary {spec.name!r}: folder {folder} is missing; set BLURB_MODELS_DIR (or "
                        "BLURB_SHARED_DIR) to the shared models folder (shared/models, see its README.md)")
    return folder


@functools.lru_cache(maxsize=None)
def tokenizer(name: str):
    """A fast tokenizer built from the vocabulary's own files, with the right casing."""
    from transformers import BertTokenizerFast, RobertaTokenizerFast

    spec = get(name)
    folder = _folder(spec)
    if spec.kind == "bpe":
        for needed in ("vocab.json", "merges.txt"):
            if not (folder / needed).is_file():
                raise DataError(f"vocabulary {name!r}: {folder / needed} is missing; restore shared/models")
        vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        merges = [tuple(line.split(" ")) for line in (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
                  if line and not line.startswith("#version")]
        tok = RobertaTokenizerFast(vocab=vocab, merges=merges, add_prefix_space=True)
    else:
        vocab_file = folder / "vocab.txt"
        if not vocab_file.is_file():
            raise DataError(f"vocabulary {name!r}: {vocab_file} is missing; restore shared/models")
        tokens = vocab_file.read_text(encoding="utf-8").split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        tok = BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=spec.lowercase)
    if len(tok) != spec.entries:
        raise DataError(f"vocabulary {name!r} in {folder} has {len(tok)} entries, expected {spec.entries}: wrong "
                        "or mixed-up files (the two PubMedBERT vocabularies differ); restore them from shared/models")
    return tok


def pieces(term: str, vocabulary: str) -> list[str]:
    """The sub-words `vocabulary` cuts one word into."""
    return tokenizer(vocabulary).tokenize(term)


def how_they_cut(terms=DEFAULT_TERMS, vocabularies=None) -> pd.DataFrame:
    """Rows = terms, columns = vocabularies, cells = the sub-words joined by spaces (`l ##ym ##ph ##oma`)."""
    vocabularies = list(vocabularies or VOCABULARIES)
    table = {v: [" ".join(pieces(term, v)) for term in terms] for v in vocabularies}
    return pd.DataFrame(table, index=pd.Index(list(terms), name="term"))


def piece_counts(terms=DEFAULT_TERMS, vocabularies=None) -> pd.DataFrame:
    """Like `how_they_cut`, with the number of sub-words instead of the sub-words."""
    vocabularies = list(vocabularies or VOCABULARIES)
    table = {v: [len(pieces(term, v)) for term in terms] for v in vocabularies}
    return pd.DataFrame(table, index=pd.Index(list(terms), name="term"))


# ----------------------------------------------------------------------------- task text


@functools.lru_cache(maxsize=64)
def task_sample(task: str, sample: int | None = DEFAULT_SAMPLE) -> tuple[dict, ...]:
    """`sample` examples spread evenly over train+dev (all of them when `sample` is None)."""

    spec = tasks.get(task)
    splits = [s for s in ("train", "dev") if s in tasks.present_splits(spec.name)]
    if not splits:
        raise DataError(f"task {spec.name!r} has neither a train nor a dev split here; run `blurb data check`")
    if sample is not None and sample < 1:
        raise DataError(f"sample must be a positive number of examples (or None for all), got {sample}")
    dsd = tasks.load(spec.name, splits=splits)
    sizes = [len(dsd[split]) for split in splits]
    total = sum(sizes)
    wanted = np.arange(total) if sample is None or sample >= total else \
        np.linspace(0, total - 1, sample).round().astype(int)
    rows, offset = [], 0
    for split, size in zip(splits, sizes):
        local = [int(i - offset) for i in wanted if offset <= i < offset + size]
        if local:
            table = dsd[split].select(local)[:]  # columnar read: row iteration of a Dataset is slow
            rows.extend(dict(zip(table, values)) for values in zip(*table.values()))
        offset += size
    return tuple(rows)


_PRE_TOKENIZER = None


def _words(text: str) -> list[str]:
    global _PRE_TOKENIZER
    if _PRE_TOKENIZER is None:
        from tokenizers.pre_tokenizers import BertPreTokenizer

        _PRE_TOKENIZER = BertPreTokenizer()
    return [w for w, _ in _PRE_TOKENIZER.pre_tokenize_str(text)]


def _units(spec, row: dict) -> list[str]:
    """NER/PICO: the given tokens (mentions are spans of them); other tasks: each text field."""
    if spec.task_type in ("ner", "pico"):
        return list(row["tokens"])
    return [row[f] for f in spec.text_fields]


def _has_alnum(word: str) -> bool:
    return any(c.isalnum() for c in word)


def _mentions(tags: list[str]) -> list[tuple[int, int]]:
    from seqeval.metrics.sequence_labeling import get_entities

    return [(start, end) for _, start, end in get_entities(list(tags))]


def sequence_lengths(task: str, vocabulary: str, sample: int | None = DEFAULT_SAMPLE) -> np.ndarray:
    """Input length in sub-words (with special tokens, no truncation) of each sampled example, the way
    the model sees it: NER tokens as pre-split words, pairs (BIOSSES, QA) as a sentence pair."""

    spec = tasks.get(task)
    tok = tokenizer(vocabulary)
    rows = task_sample(spec.name, sample)
    if spec.task_type in ("ner", "pico"):
        enc = tok([list(r["tokens"]) for r in rows], is_split_into_words=True, add_special_tokens=True)
    elif len(spec.text_fields) == 2:
        a, b = spec.text_fields
        enc = tok([r[a] for r in rows], [r[b] for r in rows], add_special_tokens=True)
    else:
        enc = tok([r[spec.text_fields[0]] for r in rows], add_special_tokens=True)
    return np.array([len(ids) for ids in enc["input_ids"]])


def task_stats(task: str, vocabulary: str, sample: int | None = DEFAULT_SAMPLE) -> dict:
    """One row of `vocabulary_table`: how `vocabulary` cuts the sampled text of `task`."""

    spec = tasks.get(task)
    tok = tokenizer(vocabulary)
    rows = task_sample(spec.name, sample)
    word_lists, unit_of_word = [], []
    for row in rows:
        words, owners = [], []
        for u, unit in enumerate(_units(spec, row)):
            for w in _words(unit):
                words.append(w)
                owners.append(u)
        word_lists.append(words)
        unit_of_word.append(np.array(owners, dtype=int))
    enc = tok(word_lists, is_split_into_words=True, add_special_tokens=False)
    unk_id = tok.unk_token_id
    per_word_all, unk_words, mention_pieces = [], 0, []
    for i, words in enumerate(word_lists):
        ids = np.array([w for w in enc.word_ids(i) if w is not None], dtype=int)
        counts = np.bincount(ids, minlength=len(words)) if len(words) else np.zeros(0, dtype=int)
        alnum = np.array([_has_alnum(w) for w in words], dtype=bool)
        per_word_all.append(counts[alnum])
        if unk_id is not None:
            token_ids = np.array(enc["input_ids"][i])
            unk_owner = ids[token_ids == unk_id] if len(token_ids) else np.zeros(0, dtype=int)
            unk_words += int(np.isin(np.flatnonzero(alnum), unk_owner).sum())
        if spec.task_type in ("ner", "pico"):
            per_unit = np.bincount(unit_of_word[i], weights=counts, minlength=len(rows[i]["tokens"]))
            mention_pieces.extend(int(per_unit[s:e + 1].sum()) for s, e in _mentions(rows[i]["tags"]))
    per_word = np.concatenate(per_word_all) if per_word_all else np.zeros(0)
    lengths = sequence_lengths(spec.name, vocabulary, sample)
    n_words = len(per_word)
    mentions = np.array(mention_pieces)
    return {
        "task": spec.name,
        "vocabulary": vocabulary,
        "examples": len(rows),
        "words": n_words,
        "subwords_per_word": float(per_word.mean()) if n_words else float("nan"),
        "words_split_pct": 100.0 * float((per_word >= 2).mean()) if n_words else float("nan"),
        "unk_words_pct": 100.0 * unk_words / n_words if n_words else float("nan"),
        "mentions": len(mentions),
        "mentions_3plus_pct": 100.0 * float((mentions >= 3).mean()) if len(mentions) else float("nan"),
        "seq_len_mean": float(lengths.mean()),
        "seq_len_p95": float(np.percentile(lengths, 95)),
        "seq_len_max": int(lengths.max()),
        "max_length": spec.max_length,
        "truncated_pct": 100.0 * float((lengths > spec.max_length).mean()),
    }


def vocabulary_table(tasks=None, vocabularies=None, sample: int | None = DEFAULT_SAMPLE) -> pd.DataFrame:
    """One row per (task, vocabulary): sub-words per word, % words split, % unknown words,
    % NER mentions cut into 3+ pieces, sequence length (mean, p95, max) and % truncated at the
    task's max_length. Percentages are 0-100."""

    task_names = [task_registry.get(t).name for t in (tasks or task_registry.names())]
    vocab_names = [get(v).name for v in (vocabularies or VOCABULARIES)]
    rows = [task_stats(t, v, sample) for t in task_names for v in vocab_names]
    return pd.DataFrame(rows)
