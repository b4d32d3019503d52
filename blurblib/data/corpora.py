"""Plain-text corpora for continued masked-language-model pretraining: the domain-corpus half of the
pretraining-sensitivity experiment (notebook 01).

Two corpora of similar size, read straight from their zip files in `paths.corpora_dir()`
(nothing is extracted to disk):

* `"pubmed"` (domain): the TRAINING splits of the BLURB tasks plus about 10k PubMed abstracts.
* `"general"` (control): the Brown corpus, tags stripped, one sentence per text.

Why the care about splits: pretraining on a task's dev or test text would leak the answer into
the encoder, so only `train` splits are read for pretraining, and any text whose sentences also
occur verbatim in a BLURB dev or test split is dropped (the benchmark itself has a few such
duplicates). Every `HELDOUT_EVERY`-th PubMed abstract and Brown file is kept out of the
pretraining corpora so that `mlm.mlm_eval_loss` can measure held-out perplexity.
"""
from __future__ import annotations

import csv
import functools
import io
import random
import re
import zipfile
from pathlib import Path

from ..core import paths
from ..core.errors import DataError, UnknownNameError
from . import tasks

PUBMED_ZIP = Path("pubmed-abstracts-10k-5topics") / "all_combined_abstracts.zip"
BROWN_ZIP = Path("brown") / "brown.zip"
BROWN_NON_TEXT = {"cats.txt", "CONTENTS", "README"}

# Every 20th document (5%) is held out of pretraining for the held-out MLM loss.
HELDOUT_EVERY = 20
SPLITS = ("train", "heldout", "all")

# Sentences inside a longer text that are shorter than this (after normalisation) are too generic
# to call a leak ("Results.", "Methods:"); a whole text is compared at any length.
MIN_FINGERPRINT_CHARS = 30

CORPUS_NAMES = ("pubmed", "general")


def _zip_path(relative: Path) -> Path:
    path = paths.corpora_dir() / relative
    if not path.is_file():
        raise DataError(
            f"corpus file {path} is missing. Point BLURB_CORPORA_DIR (or BLURB_SHARED_DIR) at the "
            f"folder that holds {relative} (shared/data/corpora, see its README.md)."
        )
    return path


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"unknown corpus split {split!r}; use one of {SPLITS}.")


def _keep(index: int, split: str) -> bool:
    heldout = index % HELDOUT_EVERY == HELDOUT_EVERY - 1
    return split == "all" or (split == "heldout") == heldout


@functools.lru_cache(maxsize=1)
def pubmed_rows() -> tuple[tuple[str, str], ...]:
    """All (abstract, topic) rows of the PubMed csv, in file order."""
    path = _zip_path(PUBMED_ZIP)
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith(".csv")]
        if len(names) != 1:
            raise DataError(f"{path} should hold exactly one .csv file, found {names}; "
                            "restore the original zip from shared/data/corpora (see SHA256SUMS).")
        with archive.open(names[0]) as raw:
            reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
            rows = []
            for line_no, row in enumerate(reader, start=1):
                if len(row) != 2 or not row[0].strip():
                    raise DataError(f"{path}:{names[0]}:{line_no}: expected 2 columns (abstract, topic), "
                                    f"got {row[:3]!r}; restore the original zip (see SHA256SUMS).")
                rows.append((row[0].strip(), row[1].strip()))
    return tuple(rows)


def pubmed_abstracts(split: str = "train") -> list[str]:
    """Distinct PubMed abstract texts; `split` is "train" (95%), "heldout" (every 20th) or "all".

    The csv lists 69 abstracts twice (hits of two dental searches): they are counted once, so a
    held-out abstract never reappears in the training part.
    """
    _check_split(split)
    unique = dict.fromkeys(text for text, _ in pubmed_rows())
    return [text for i, text in enumerate(unique) if _keep(i, split)]


def _brown_line_text(line: str) -> str:
    """`The/at jury/nn ./.` -> `The jury .`; Brown's `` and '' quote marks become `"`."""
    words = [token.rsplit("/", 1)[0] for token in line.split()]
    return " ".join('"' if w in ("``", "''") else w for w in words)


@functools.lru_cache(maxsize=1)
def brown_files() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(file name, sentences) for the 500 Brown samples, in archive order."""
    path = _zip_path(BROWN_ZIP)
    files = []
    with zipfile.ZipFile(path) as archive:
        for name in sorted(archive.namelist()):
            base = name.rsplit("/", 1)[-1]
            if not base or base in BROWN_NON_TEXT:
                continue
            text = archive.read(name).decode("utf-8")
            sentences = tuple(s for s in (_brown_line_text(line) for line in text.splitlines()) if s)
            files.append((base, sentences))
    if not files:
        raise DataError(f"{path} holds no Brown text files; restore the original zip (see SHA256SUMS).")
    return tuple(files)


def brown_sentences(split: str = "train") -> list[str]:
    """Brown sentences, tags stripped; held-out split = every 20th of the 500 files."""
    _check_split(split)
    return [s for i, (_, sentences) in enumerate(brown_files()) if _keep(i, split) for s in sentences]


# --- BLURB text -------------------------------------------------------------------------------

def _split_texts(spec, split) -> list[str]:
    """The input text of every example of a split, field by field, as a reader would see it
    (NER tokens joined with spaces). Read by column: row-wise iteration of a Dataset is slow."""
    texts = []
    table = split[:]  # one columnar read (a Dataset column would be iterated row by row)
    columns = [table[field] for field in spec.text_fields]
    for values in zip(*columns):
        for value in values:
            text = " ".join(value) if isinstance(value, (list, tuple)) else str(value)
            if text.strip():
                texts.append(text)
    return texts


def _task_names(task_names) -> list[str]:

    return list(tasks.names()) if task_names is None else list(task_names)


def blurb_train_text(tasks=None) -> list[str]:
    """The text of the TRAINING splits of the BLURB tasks, never dev or test.

    One string per input field of each example (NER tokens joined with spaces, relation
    sentences, both BIOSSES sentences, HoC abstracts, QA question and context), exact duplicates
    removed (BC5-chem and BC5-disease share their sentences), and anything whose sentences also
    occur in a dev or test split dropped. Tasks without a train split (EBM-PICO) are skipped.
    """
    return list(_blurb_train_text(tuple(_task_names(tasks))))


@functools.lru_cache(maxsize=8)
def _blurb_train_text(names: tuple[str, ...]) -> tuple[str, ...]:
    texts = []
    for name in names:
        texts.extend(_train_texts_of(name))
    unique = dict.fromkeys(texts)
    banned = dev_test_fingerprints()
    return tuple(t for t in unique if not _overlaps(t, banned))


def _train_texts_of(name: str) -> list[str]:

    if "train" not in tasks.present_splits(name):
        return []  # no train split here (EBM-PICO): none of its text is used for pretraining
    dsd = tasks.load(name, splits=["train"])
    return _split_texts(tasks.get(name), dsd["train"])


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def sentence_fingerprints(text: str) -> set[str]:
    """Lower-cased, punctuation- and space-free keys: the whole text, and each of its sentences
    that is long enough to be specific.

    Normalising away spaces and punctuation makes a tokenised NER sentence ("cells ( n = 3 ) .")
    match the same raw sentence ("cells (n=3).") and the comma-free PubMed csv match a BLURB copy.
    """
    prints = set()
    for sentence in _SENTENCE_END.split(text):
        key = _NON_ALNUM.sub("", sentence.lower())
        if len(key) >= MIN_FINGERPRINT_CHARS:
            prints.add(key)
    whole = _NON_ALNUM.sub("", text.lower())
    if whole:  # a whole text counts at any length: NER has one-token "sentences" like "3 ."
        prints.add(whole)
    return prints


def _overlaps(text: str, banned: frozenset[str]) -> bool:
    return not banned.isdisjoint(sentence_fingerprints(text))


@functools.lru_cache(maxsize=1)
def dev_test_fingerprints() -> frozenset[str]:
    """Fingerprints of every dev and test text of every BLURB task (what must never be pretrained on)."""

    prints: set[str] = set()
    for name in tasks.names():
        spec = tasks.get(name)
        for split in ("dev", "test"):
            if split not in tasks.present_splits(name):
                continue
            dsd = tasks.load(name, splits=[split])
            for text in _split_texts(spec, dsd[split]):
                prints |= sentence_fingerprints(text)
    return frozenset(prints)


# --- the two pretraining corpora ---------------------------------------------------------------

def count_words(texts) -> int:
    """Whitespace words: the unit of the corpora's budgets (`max_words`)."""
    return sum(len(t.split()) for t in texts)


def _shuffled_capped(texts: list[str], max_words: int | None, seed: int) -> list[str]:
    """Shuffle (seeded) so that a capped corpus is a fair mixture, then keep `max_words` words."""
    if max_words is not None and max_words <= 0:
        raise DataError(f"max_words must be positive, got {max_words}; pass None for the whole corpus.")
    texts = list(texts)
    random.Random(seed).shuffle(texts)
    if max_words is None:
        return texts
    kept, words = [], 0
    for text in texts:
        if words >= max_words:
            break
        kept.append(text)
        words += len(text.split())
    return kept


def domain_corpus(max_words: int | None = None, seed: int = 0) -> list[str]:
    """BLURB train text + PubMed abstracts (train part, dev/test overlaps dropped), shuffled."""
    banned = dev_test_fingerprints()
    abstracts = [t for t in pubmed_abstracts("train") if not _overlaps(t, banned)]
    return _shuffled_capped(list(dict.fromkeys(blurb_train_text() + abstracts)), max_words, seed)


def general_corpus(max_words: int | None = None, seed: int = 0) -> list[str]:
    """Brown sentences (train part), shuffled: the general-English control corpus."""
    return _shuffled_capped(brown_sentences("train"), max_words, seed)


def corpus(name: str, max_words: int | None = None, seed: int = 0) -> list[str]:
    """The pretraining corpus called `name` ("pubmed" or "general")."""
    if name == "pubmed":
        return domain_corpus(max_words, seed)
    if name == "general":
        return general_corpus(max_words, seed)
    raise UnknownNameError(f"unknown corpus {name!r}; use one of {CORPUS_NAMES}.")


def heldout_corpus(name: str, max_words: int | None = None, seed: int = 0) -> list[str]:
    """Held-out text of corpus `name` (never pretrained on), for held-out MLM loss."""
    if name == "pubmed":
        texts = pubmed_abstracts("heldout")
    elif name == "general":
        texts = brown_sentences("heldout")
    else:
        raise UnknownNameError(f"unknown corpus {name!r}; use one of {CORPUS_NAMES}.")
    return _shuffled_capped(texts, max_words, seed)
