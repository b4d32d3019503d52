"""Shape-true twins of the paper's hub models: the real config and vocabulary, random weights.

A twin is the folder `from_pretrained("<hub id>")` would read if the checkpoint's weights were
noise: config.json and tokenizer files from `paths.shared_models_dir()` (the real files where we
have them), weights a seeded random init saved as safetensors. `install_in_hf_cache` lays it out
in a Hugging Face cache under the real hub id, as huggingface_hub does, so the offline hub path
of a cluster's compute nodes (HF_HOME + HF_HUB_OFFLINE=1) runs here end to end with no network:
in the tests, and in a CPU rehearsal of the `paper` profile (every hub model replaced by its twin).

Which configs are real. Each hub entry of the model registry names its twin's recipe
(`ModelSpec.config_from`, `config_overrides`, `vocab_from`); `table()` lists them.

* real config.json and vocabulary: pubmedbert-base, pubmedbert-base-fulltext, bert-base, scibert,
  roberta-base (an older form of the file without `model_type`: re-saved through RobertaConfig);
* completed with published sizes: pubmedbert-large (BiomedBERT-base config + BERT-large 24 layers x
  1024, 16 heads, FFN 4096; the base vocabulary, reported identical), bert-large (bert-base config +
  the same sizes; real vocabulary), biolinkbert-large (bert-base config + BERT-large sizes,
  vocab_size 28,895; real vocabulary), biolinkbert-base (bert-base config, vocab_size 28,895, the
  PubMedBERT vocabulary it reuses), biobert (bert-base config, vocab_size 28,996; real cased
  vocabulary), pubmedelectra-base (ELECTRA-base discriminator config, PubMedBERT vocabulary),
  pubmedelectra-large (the same + ELECTRA-large sizes, embeddings 1024 wide).

A twin is never taken for the checkpoint: it carries `packs.TWIN_MARKER` (what it is, the seed,
the recipe); `models.get` reports a hub entry served by a twin (offline) and a twin folder as
`pretrained=False`, loading one warns, and `install_in_hf_cache` refuses to shadow a real download.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import paths
from ..core.errors import ConfigError, UnknownNameError
from . import models, packs

TWIN_FORMAT = 1  # part of every twin's revision: bump it when what write() produces changes
_TOKENIZER_FILES = ("vocab.txt", "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json",
                    "special_tokens_map.json")
# The pretraining head the hub checkpoints hold, when the config does not name it.
_PRETRAINING_CLASS = {"BERT": "BertForMaskedLM", "ELECTRA": "ElectraForPreTraining", "RoBERTa": "RobertaForMaskedLM"}
_POSITIONS = 512  # every model here has 512 usable positions


@dataclass(frozen=True)
class Recipe:
    """Where a twin's files come from (folders under `paths.shared_models_dir()`)."""

    name: str
    hub_id: str
    config_from: str
    config_overrides: tuple[tuple[str, Any], ...]
    vocab_from: str

    @property
    def real_config(self) -> bool:
        """The model's own config.json, with nothing added."""
        return self.config_from == models.shared_folder_name(self.hub_id) and not self.config_overrides

    @property
    def real_vocab(self) -> bool:
        return self.vocab_from == models.shared_folder_name(self.hub_id)


def hub_names() -> list[str]:
    """Registry names of the hub models, each of which has a twin."""
    return [name for name, spec in models.MODELS.items() if spec.source == "hub"]


def recipe(name: str) -> Recipe:
    spec = _hub_spec(name)
    return Recipe(spec.name, spec.hub_id, spec.config_from, spec.config_overrides, spec.vocab_from)


def table():
    """One row per hub model: is its twin's config real or completed, and from what."""
    import pandas as pd

    rows = []
    for name in hub_names():
        r = recipe(name)
        rows.append({"name": name, "hub_id": r.hub_id, "config": "real" if r.real_config else "completed",
                     "config_from": r.config_from, "published_sizes": dict(r.config_overrides),
                     "vocabulary": "real" if r.real_vocab else "borrowed", "vocab_from": r.vocab_from})
    return pd.DataFrame(rows)


def config(name: str, overrides: dict | None = None):
    """The twin's transformers config: the real config.json, completed with the published sizes,
    then `overrides` (none by default: shape-true is the point; a test may shrink a large model)."""
    spec = _hub_spec(name)
    cfg = models._shape_config(spec)
    cfg.update(dict(overrides or {}))
    cfg.architectures = [_architecture(spec)]
    return cfg


def write(name: str, out_dir, *, seed: int = 0, overrides: dict | None = None) -> Path:
    """Write the twin of hub model `name` into `out_dir` and return it: config.json, tokenizer
    files, model.safetensors (seeded random init of the checkpoint's pretraining class) and the
    twin marker. `models.load(str(out_dir), task)` reads it like any local checkpoint."""
    import torch
    import transformers

    spec = _hub_spec(name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = config(name, overrides)
    with torch.random.fork_rng(devices=[]):  # the caller's RNG stream is left as it was
        torch.manual_seed(seed)
        with models.quiet_transformers():
            model = getattr(transformers, cfg.architectures[0])(cfg)
    with models.quiet_transformers():
        model.save_pretrained(out)  # safetensors; tied weights (MLM decoder = embeddings) stored once
    real = _shared(spec.config_from) / "config.json"
    if recipe(name).real_config and not overrides and "model_type" in json.loads(real.read_text()):
        shutil.copyfile(real, out / "config.json")  # the hub's file byte for byte
    written = _write_tokenizer_files(spec, out)
    (out / packs.TWIN_MARKER).write_text(json.dumps(_record(spec, seed, overrides, written), indent=1) + "\n")
    return out


def install_in_hf_cache(name: str, hf_home, *, seed: int = 0, overrides: dict | None = None) -> Path:
    """Install the twin of `name` into the HF cache under `hf_home` (`<hf_home>/hub`) under its real
    hub id, and return its snapshot folder.

    The layout is huggingface_hub's: `models--org--name/blobs/<etag>` (sha256 for the LFS-tracked
    safetensors, the git blob sha1 for the small files, as the hub's ETags are), relative symlinks
    from `snapshots/<revision>/<file>` (copies where the filesystem has no symlinks), and
    `refs/main` naming the revision. The revision is a hash of the recipe (model, seed, overrides,
    source files), so installing again is a no-op. A cache whose main branch holds a real download
    of the model is refused: a twin must never hide the checkpoint.
    """
    from huggingface_hub.file_download import _cache_commit_hash_for_specific_revision, _create_symlink

    spec = _hub_spec(name)
    cache = Path(hf_home).expanduser().resolve() / "hub"
    storage = packs.hub_repo_dir(spec.hub_id, cache)
    _refuse_to_shadow(spec, storage)
    revision = _revision(spec, seed, overrides)
    snapshot = storage / "snapshots" / revision
    if not (snapshot / packs.TWIN_MARKER).exists():  # the marker goes in last: present means complete
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache, prefix=".twin-") as tmp:
            write(name, tmp, seed=seed, overrides=overrides)
            files = sorted(p.name for p in Path(tmp).iterdir() if p.name != packs.TWIN_MARKER) + [packs.TWIN_MARKER]
            (storage / "blobs").mkdir(parents=True, exist_ok=True)
            snapshot.mkdir(parents=True, exist_ok=True)
            for filename in files:
                source = Path(tmp) / filename
                blob = storage / "blobs" / _etag(source)
                new_blob = not blob.exists()
                if new_blob:
                    os.replace(source, blob)
                _create_symlink(str(blob), str(snapshot / filename), new_blob=new_blob)
    _cache_commit_hash_for_specific_revision(str(storage), "main", revision)
    return snapshot


def install_all(hf_home, names: list[str] | None = None, **kwargs) -> dict[str, Path]:
    """`install_in_hf_cache` for each of `names` (default: every hub model); name -> snapshot."""
    return {name: install_in_hf_cache(name, hf_home, **kwargs) for name in (names or hub_names())}


# ----------------------------------------------------------------------------- helpers


def _hub_spec(name: str) -> models.ModelSpec:
    spec = models.MODELS.get(name)
    if spec is None or spec.source != "hub":
        raise UnknownNameError(f"{name!r} is not a hub model of the registry; twins exist for: {', '.join(hub_names())}")
    return spec


def _shared(folder: str) -> Path:
    path = paths.shared_models_dir() / folder
    if not path.is_dir():
        raise ConfigError(f"a twin needs {path} (real configs and vocabularies, no weights); set BLURB_MODELS_DIR "
                          "or BLURB_SHARED_DIR to the folder that holds it")
    return path


def _architecture(spec: models.ModelSpec) -> str:
    """The class the checkpoint was saved from: its config's `architectures`, else the family's pretraining class."""
    raw = json.loads((_shared(spec.config_from) / "config.json").read_text())
    return (raw.get("architectures") or [_PRETRAINING_CLASS[spec.family]])[0]


def _write_tokenizer_files(spec: models.ModelSpec, out: Path) -> dict[str, str]:
    """Copy the real tokenizer files; where the hub's tokenizer_config.json was not obtained, write
    one from the registry (casing, positions). Returns file -> where it came from."""
    folder = _shared(spec.vocab_from)
    written = {}
    for filename in _TOKENIZER_FILES:
        if (folder / filename).is_file():
            shutil.copyfile(folder / filename, out / filename)
            written[filename] = f"shared/models/{spec.vocab_from}"
    if "tokenizer_config.json" not in written and spec.family != "RoBERTa":
        settings = {"do_lower_case": spec.lowercase, "model_max_length": _POSITIONS}
        (out / "tokenizer_config.json").write_text(json.dumps(settings) + "\n")
        written["tokenizer_config.json"] = "written from the registry (casing, 512 positions)"
    return written


def _record(spec: models.ModelSpec, seed: int, overrides: dict | None, tokenizer_files: dict) -> dict:
    r = recipe(spec.name)
    return {"written_by": "blurblib.twins", "format": TWIN_FORMAT, "twin_of": spec.hub_id,
            "architecture_of": spec.name, "random_init": True, "seed": seed, "overrides": dict(overrides or {}),
            "config_source": (f"real: shared/models/{r.config_from}/config.json" if r.real_config else
                       f"completed: shared/models/{r.config_from}/config.json + published sizes "
                       f"{dict(r.config_overrides)}"),
            "tokenizer_files": tokenizer_files}


def _revision(spec: models.ModelSpec, seed: int, overrides: dict | None) -> str:
    """A 40-hex revision named by the recipe and the bytes of its source files."""
    sources = {f"config/{spec.config_from}": packs.sha256(_shared(spec.config_from) / "config.json")}
    folder = _shared(spec.vocab_from)
    sources.update({f"vocab/{spec.vocab_from}/{f}": packs.sha256(folder / f)
                    for f in _TOKENIZER_FILES if (folder / f).is_file()})
    key = {"format": TWIN_FORMAT, "hub_id": spec.hub_id, "seed": seed, "recipe": list(spec.config_overrides),
           "overrides": sorted(dict(overrides or {}).items()), "sources": sources}
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def _etag(path: Path) -> str:
    """The name huggingface_hub gives a blob: the hub's ETag, sha256 for LFS files (weights) and the
    git blob sha1 for regular ones."""
    if path.suffix == ".safetensors":
        return packs.sha256(path)
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _refuse_to_shadow(spec: models.ModelSpec, storage: Path) -> None:
    main = storage / "refs" / "main"
    if not main.is_file():
        return
    current = storage / "snapshots" / main.read_text().strip()
    if current.is_dir() and not (current / packs.TWIN_MARKER).exists():
        raise ConfigError(f"{storage} holds a download of {spec.hub_id} (main -> {current.name}); a twin installed "
                          "there would hide the checkpoint. Install twins into their own HF_HOME (a scratch folder)")
