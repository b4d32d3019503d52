"""The 13 BLURB datasets: one registry entry each, and loaders for the official layout.

The files are read exactly as BLURB's `data_generation` scripts write them (see the data
folder's README), so every number downstream is comparable with the published tables:

* NER / PICO: `token<TAB>tag` lines, a blank line between sentences, `-DOCSTART-` lines
  between documents (document breaks, never tokens).
* ChemProt, DDI, BioASQ: tsv without header; GAD and BIOSSES: tsv with a header.
* HoC: the sentence-level tsv, grouped by PMID into one example per abstract (text joined
  with spaces, labels OR-ed), which is how BLURB scores it; `load_hoc_sentences` keeps
  the sentence level.
* PubMedQA: the LinkBERT-format JSON lines (`hf_jsonl/`).

Parsing is plain Python into lists, then one `Dataset.from_dict` with typed features;
results are cached in-process (keyed on the file's path, size and mtime) because
notebooks call `load` again and again.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import datasets
from datasets import Features, List, Value

from ..core import paths
from ..core.errors import DataError, UnknownNameError

SPLITS = ("train", "dev", "test")
TASK_TYPES = ("ner", "pico", "relation", "similarity", "doc_classification", "qa")

# Hallmark index 0-9 as in the HoC tsv's `k_v` labels (order from the data README / LinkBERT).
HOC_HALLMARKS = (
    "activating invasion and metastasis",
    "avoiding immune destruction",
    "cellular energetics",
    "enabling replicative immortality",
    "evading growth suppressors",
    "genomic instability and mutation",
    "inducing angiogenesis",
    "resisting cell death",
    "sustaining proliferative signaling",
    "tumor promoting inflammation",
)

_TEXT_FIELDS = {
    "ner": ("tokens",),
    "pico": ("tokens",),
    "relation": ("text",),
    "similarity": ("text_a", "text_b"),
    "doc_classification": ("text",),
    "qa": ("question", "context"),
}
_TARGET = {"ner": "tags", "pico": "tags", "relation": "label", "similarity": "label",
           "doc_classification": "labels", "qa": "label"}
_HEAD_KIND = {"ner": "token_classification", "pico": "token_classification",
              "relation": "single_label", "qa": "single_label", "similarity": "regression",
              "doc_classification": "multi_label"}

_STR = Value("string")
FEATURES = {
    "ner": Features({"id": _STR, "tokens": List(_STR), "tags": List(_STR)}),
    "pico": Features({"id": _STR, "tokens": List(_STR), "tags": List(_STR)}),
    "relation": Features({"id": _STR, "text": _STR, "label": _STR}),
    "similarity": Features({"id": _STR, "text_a": _STR, "text_b": _STR, "label": Value("float64")}),
    "doc_classification": Features({"id": _STR, "text": _STR, "labels": List(_STR)}),
    "qa": Features({"id": _STR, "question": _STR, "context": _STR, "label": _STR}),
}
HOC_SENTENCE_FEATURES = Features({"id": _STR, "pmid": _STR, "text": _STR, "labels": List(_STR)})

HOW_TO_GET_DATA = (
    "run `make data` (links data/blurb to ../shared/data/blurb) or set BLURB_DATA_DIR; "
    "elsewhere build the files with BLURB's official data_generation scripts "
    "(https://microsoft.github.io/BLURB/submit.html, see data/README.md)"
)


@dataclass(frozen=True)
class TaskSpec:
    """One BLURB dataset: what it is, how it is scored, where its files are.

    `published` holds the split counts of the BLURB paper/task page in `count_unit`
    (entity mentions for NER, non-O tokens for EBM-PICO, examples elsewhere).
    `max_length` is the sequence length the BLURB/LinkBERT recipes use;
    `low_resource` marks the small sets the notebooks treat as low-resource.
    """

    name: str
    task_type: str
    metric: str
    folder: str
    file_format: str
    labels: tuple[str, ...]
    published: dict[str, int] = field(hash=False, compare=False)
    count_unit: str = "examples"
    max_length: int = 512
    negative_label: str | None = None
    low_resource: bool = False
    label_range: tuple[float, float] | None = None  # similarity: the scale of the gold scores

    @property
    def text_fields(self) -> tuple[str, ...]:
        return _TEXT_FIELDS[self.task_type]

    @property
    def target(self) -> str:
        return _TARGET[self.task_type]

    @property
    def head_kind(self) -> str:
        """token_classification, single_label, regression or multi_label (ARCHITECTURE.md)."""
        return _HEAD_KIND[self.task_type]

    @property
    def num_labels(self) -> int:
        return 1 if self.task_type == "similarity" else len(self.labels)

    @property
    def positive_labels(self) -> tuple[str, ...]:
        """The labels that count for micro-F1 (all but the negative class)."""
        return tuple(label for label in self.labels if label != self.negative_label)

    @property
    def features(self) -> Features:
        return FEATURES[self.task_type]

    def split_path(self, split: str, data_dir: str | Path | None = None) -> Path:
        _check_split(split)
        root = Path(data_dir) if data_dir is not None else paths.data_dir()
        if self.file_format == "jsonl":
            return root / self.folder / "hf_jsonl" / f"{split}.json"
        return root / self.folder / f"{split}.tsv"


_NER_TAGS = ("O", "B", "I")
_PICO_TAGS = ("O", "I-PAR", "I-INT", "I-OUT")


def _ner(name: str, folder: str, published: tuple[int, int, int]) -> TaskSpec:
    return TaskSpec(name, "ner", "entity_f1", folder, "conll", _NER_TAGS,
                    dict(zip(SPLITS, published)), "mentions", 512, negative_label="O")


TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in (
    _ner("BC5-chem", "BC5CDR-chem", (5203, 5347, 5385)),
    _ner("BC5-disease", "BC5CDR-disease", (4182, 4244, 4424)),
    _ner("NCBI-disease", "NCBI-disease", (5134, 787, 960)),
    _ner("BC2GM", "BC2GM", (15197, 3061, 6325)),
    _ner("JNLPBA", "JNLPBA", (46750, 4551, 8662)),
    TaskSpec("EBM-PICO", "pico", "macro_token_f1", "EBM-PICO", "conll", _PICO_TAGS,
             dict(zip(SPLITS, (339167, 85321, 16364))), "non-O tokens", 512, negative_label="O"),
    TaskSpec("ChemProt", "relation", "micro_f1_positive", "ChemProt", "tsv",
             ("false", "CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9"),
             dict(zip(SPLITS, (18035, 11268, 15745))), "examples", 256, negative_label="false"),
    TaskSpec("DDI", "relation", "micro_f1_positive", "DDI", "tsv",
             ("DDI-false", "DDI-advise", "DDI-effect", "DDI-int", "DDI-mechanism"),
             dict(zip(SPLITS, (25296, 2496, 5716))), "examples", 256, negative_label="DDI-false"),
    TaskSpec("GAD", "relation", "micro_f1_positive", "GAD", "tsv+header", ("0", "1"),
             dict(zip(SPLITS, (4261, 535, 534))), "examples", 128, negative_label="0",
             low_resource=True),
    TaskSpec("BIOSSES", "similarity", "pearson", "BIOSSES", "tsv+header", (),
             dict(zip(SPLITS, (64, 16, 20))), "pairs", 128, low_resource=True, label_range=(0.0, 4.0)),
    TaskSpec("HoC", "doc_classification", "micro_f1_pairs", "HoC", "hoc-tsv", HOC_HALLMARKS,
             dict(zip(SPLITS, (1295, 186, 371))), "abstracts", 512),
    TaskSpec("PubMedQA", "qa", "accuracy", "PubMedQA", "jsonl", ("yes", "no", "maybe"),
             dict(zip(SPLITS, (450, 50, 500))), "examples", 512, low_resource=True),
    TaskSpec("BioASQ", "qa", "accuracy", "BioASQ", "tsv", ("yes", "no"),
             dict(zip(SPLITS, (670, 75, 140))), "examples", 512, low_resource=True),
)}


def names() -> list[str]:
    """The 13 canonical BLURB dataset names, in the order of the BLURB table."""
    return list(TASKS)


def get(name: str | TaskSpec) -> TaskSpec:
    """Look a task up by canonical name, case-insensitively, or by its folder name."""
    if isinstance(name, TaskSpec):
        return name
    if name in TASKS:
        return TASKS[name]
    wanted = str(name).lower()
    for spec in TASKS.values():
        if wanted in (spec.name.lower(), spec.folder.lower()):
            return spec
    raise UnknownNameError(f"unknown task {name!r}; valid names: {', '.join(TASKS)}")


def by_type(task_type: str) -> list[TaskSpec]:
    if task_type not in TASK_TYPES:
        raise UnknownNameError(f"unknown task type {task_type!r}; valid types: {', '.join(TASK_TYPES)}")
    return [spec for spec in TASKS.values() if spec.task_type == task_type]


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise UnknownNameError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")


def _root(data_dir: str | Path | None) -> Path:
    root = Path(data_dir) if data_dir is not None else paths.data_dir()
    if not root.is_dir():
        raise DataError(f"BLURB data directory {root} not found: {HOW_TO_GET_DATA}")
    return root


def present_splits(name: str, data_dir: str | Path | None = None) -> list[str]:
    """The splits of `name` whose file exists here (EBM-PICO has no train split today)."""
    spec, root = get(name), _root(data_dir)
    return [split for split in SPLITS if spec.split_path(split, root).is_file()]


def load(name: str, splits: Iterable[str] | str | None = None,
         data_dir: str | Path | None = None) -> datasets.DatasetDict:
    """Load a BLURB dataset as a `DatasetDict` (all three splits unless `splits` says which).

    A split whose file is absent raises `DataError` naming the file and how to get it;
    ask only for `present_splits(name)` to work with what is here.
    """
    spec, root = get(name), _root(data_dir)
    wanted = [splits] if isinstance(splits, str) else list(splits or SPLITS)
    out = {}
    for split in wanted:
        path = spec.split_path(split, root)
        if not path.is_file():
            present = [s for s in SPLITS if spec.split_path(s, root).is_file()]
            raise DataError(
                f"{spec.name} {split}: file {path} is missing. Get it with BLURB's official "
                f"data_generation scripts (see data/README.md and {root / 'README.md'}); "
                f"meanwhile load the splits present: tasks.load({spec.name!r}, splits={present!r})")
        stat = path.stat()
        cached = _load_split(spec.name, str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        # A fresh handle (0.5 ms): set_format/set_transform on it cannot leak into the cache.
        out[split] = cached.with_format(None)
    return datasets.DatasetDict(out)


def load_hoc_sentences(split: str, data_dir: str | Path | None = None) -> datasets.Dataset:
    """HoC at the sentence level (columns id, pmid, text, labels), as the tsv holds it."""
    path = TASKS["HoC"].split_path(split, _root(data_dir))
    if not path.is_file():
        raise DataError(f"HoC {split}: file {path} is missing: {HOW_TO_GET_DATA}")
    cols = _read_hoc_sentences(path)
    return datasets.Dataset.from_dict(cols, features=HOC_SENTENCE_FEATURES)


@lru_cache(maxsize=64)
def _load_split(name: str, path: str, size: int, mtime_ns: int) -> datasets.Dataset:
    """Parse one split file; size and mtime are in the key so an edited file is re-read."""
    spec = TASKS[name]
    path_ = Path(path)
    split = path_.stem
    if spec.file_format == "conll":
        cols = _read_conll(path_, spec.labels, split)
    elif spec.file_format == "hoc-tsv":
        cols = _hoc_abstracts(_read_hoc_sentences(path_))
    elif spec.file_format == "jsonl":
        cols = _read_pubmedqa_jsonl(path_, spec.labels)
    elif spec.task_type == "relation":
        cols = _read_relation_tsv(path_, spec.labels, header=spec.file_format == "tsv+header")
    elif spec.task_type == "similarity":
        cols = _read_biosses_tsv(path_)
    elif spec.task_type == "qa":
        cols = _read_qa_tsv(path_, spec.labels)
    else:  # a registry entry without a reader is a programming error
        raise AssertionError(f"no reader for {spec.name} ({spec.file_format})")
    if not cols["id"]:
        raise DataError(f"{path}: the {spec.name} {split} split is empty (no examples); "
                        f"re-create the file: {HOW_TO_GET_DATA}")
    return datasets.Dataset.from_dict(cols, features=spec.features)


# --- readers: plain Python, one pass, errors name file:line and the offending value -------

def _read_conll(path: Path, tagset: tuple[str, ...], split: str) -> dict[str, list]:
    allowed = frozenset(tagset)
    ids: list[str] = []
    all_tokens: list[list[str]] = []
    all_tags: list[list[str]] = []
    tokens: list[str] = []
    tags: list[str] = []
    doc: str | None = None
    seen_docs: dict[str, int] = {}
    in_doc = 0

    def flush() -> None:
        nonlocal tokens, tags, in_doc
        if tokens:
            ids.append(f"{doc}-s{in_doc}" if doc else f"{split}-{len(ids)}")
            all_tokens.append(tokens)
            all_tags.append(tags)
            in_doc += 1
            tokens, tags = [], []

    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\n")
            if not line:
                flush()
                continue
            if line.startswith("-DOCSTART-"):
                flush()
                doc = line[len("-DOCSTART-"):].strip().strip("()") or None
                if doc:  # JNLPBA train holds MEDLINE 97218353 twice; keep ids unique
                    seen_docs[doc] = seen_docs.get(doc, 0) + 1
                    if seen_docs[doc] > 1:
                        doc = f"{doc}#{seen_docs[doc]}"
                in_doc = 0
                continue
            fields = line.split("\t")
            if len(fields) != 2 or not fields[0]:
                raise DataError(f"{path}:{lineno}: expected 'token<TAB>tag' (2 fields), got "
                                f"{len(fields)} field(s): {line!r}; is this BLURB's data_generation output?")
            if fields[1] not in allowed:
                raise DataError(f"{path}:{lineno}: unknown tag {fields[1]!r} for token {fields[0]!r}; "
                                f"expected one of {', '.join(tagset)}")
            tokens.append(fields[0])
            tags.append(fields[1])
    flush()
    return {"id": ids, "tokens": all_tokens, "tags": all_tags}


def _tsv_rows(path: Path, n_cols: int, header: bool):
    """Yield (lineno, fields) of a tab-separated file, checking the column count."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\n")
            fields = line.split("\t")
            if len(fields) != n_cols:
                raise DataError(f"{path}:{lineno}: expected {n_cols} tab-separated columns, got "
                                f"{len(fields)}: {line[:120]!r}")
            if header and lineno == 1:
                continue
            yield lineno, fields


def _check_label(path: Path, lineno: int, label: str, labels: tuple[str, ...]) -> str:
    if label not in labels:
        raise DataError(f"{path}:{lineno}: unknown label {label!r}; expected one of {', '.join(labels)}")
    return label


def _read_relation_tsv(path: Path, labels: tuple[str, ...], header: bool) -> dict[str, list]:
    cols: dict[str, list] = {"id": [], "text": [], "label": []}
    for lineno, (ex_id, text, label) in _tsv_rows(path, 3, header):
        cols["id"].append(ex_id)
        cols["text"].append(text)
        cols["label"].append(_check_label(path, lineno, label, labels))
    return cols


def _read_biosses_tsv(path: Path) -> dict[str, list]:
    cols: dict[str, list] = {"id": [], "text_a": [], "text_b": [], "label": []}
    for lineno, (pair_id, sent1, sent2, score) in _tsv_rows(path, 4, header=True):
        try:
            value = float(score)
        except ValueError:
            raise DataError(f"{path}:{lineno}: score {score!r} is not a number; "
                            "BIOSSES scores are floats between 0 and 4") from None
        cols["id"].append(pair_id)
        cols["text_a"].append(sent1)
        cols["text_b"].append(sent2)
        cols["label"].append(value)
    return cols


def _read_qa_tsv(path: Path, labels: tuple[str, ...]) -> dict[str, list]:
    cols: dict[str, list] = {"id": [], "question": [], "context": [], "label": []}
    for lineno, (q_id, question, context, label) in _tsv_rows(path, 4, header=False):
        cols["id"].append(q_id)
        cols["question"].append(question)
        cols["context"].append(context)
        cols["label"].append(_check_label(path, lineno, label, labels))
    return cols


def _read_pubmedqa_jsonl(path: Path, labels: tuple[str, ...]) -> dict[str, list]:
    cols: dict[str, list] = {"id": [], "question": [], "context": [], "label": []}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                q_id, question, context, label = (row["id"], row["sentence1"], row["sentence2"], row["label"])
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise DataError(f"{path}:{lineno}: expected a JSON object with id, sentence1, sentence2 "
                                f"and label ({err}): {line[:120]!r}") from None
            cols["id"].append(str(q_id))
            cols["question"].append(question)
            cols["context"].append(context)
            cols["label"].append(_check_label(path, lineno, label, labels))
    return cols


def _read_hoc_sentences(path: Path) -> dict[str, list]:
    """The HoC tsv: `labels<TAB>sentence<TAB><PMID>_s<n>`, labels as 10 `k_v` items."""
    cols: dict[str, list] = {"id": [], "pmid": [], "text": [], "labels": []}
    n = len(HOC_HALLMARKS)
    for lineno, (raw_labels, sentence, index) in _tsv_rows(path, 3, header=True):
        items = raw_labels.split(",")
        flags = {}
        for item in items:
            k, _, v = item.partition("_")
            if not (k.isdigit() and int(k) < n and v in ("0", "1")):
                raise DataError(f"{path}:{lineno}: unknown label {item!r}; expected 'k_v' with "
                                f"k in 0..{n - 1} and v in 0/1")
            flags[int(k)] = v == "1"
        if len(flags) != n or len(items) != n:
            raise DataError(f"{path}:{lineno}: expected {n} hallmark flags, got {raw_labels!r}")
        pmid, sep, _ = index.rpartition("_s")
        if not sep or not pmid:
            raise DataError(f"{path}:{lineno}: index {index!r} is not '<PMID>_s<sentence number>'")
        cols["id"].append(index)
        cols["pmid"].append(pmid)
        cols["text"].append(sentence)
        cols["labels"].append([HOC_HALLMARKS[k] for k in range(n) if flags[k]])
    return cols


def _hoc_abstracts(sent: dict[str, list]) -> dict[str, list]:
    """Group sentences by PMID (first-seen order): text joined with spaces, labels OR-ed."""
    texts: dict[str, list[str]] = {}
    flags: dict[str, set[str]] = {}
    for pmid, text, labels in zip(sent["pmid"], sent["text"], sent["labels"]):
        texts.setdefault(pmid, []).append(text)
        flags.setdefault(pmid, set()).update(labels)
    return {"id": list(texts),
            "text": [" ".join(parts) for parts in texts.values()],
            "labels": [[h for h in HOC_HALLMARKS if h in flags[pmid]] for pmid in texts]}
