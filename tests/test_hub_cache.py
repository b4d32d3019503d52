"""The paper's hub models read by hub id from a Hugging Face cache, offline, as on a cluster's compute
nodes (HF_HOME filled on a login node, HF_HUB_OFFLINE=1), with the cache filled here by a shape-true twin
(`blurblib.encoders.twins`: the real config and vocabulary of BiomedBERT-base, random weights as safetensors)."""
from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants, scan_cache_dir
from safetensors import safe_open

from blurblib.core import paths
from blurblib.core.errors import ConfigError, ModelUnavailableError
from blurblib.encoders import models, packs, twins
from blurblib.training import train
from blurblib.training.config import RunConfig

PUBMEDBERT = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
PUBMEDBERT_LARGE = "microsoft/BiomedNLP-BiomedBERT-large-uncased-abstract"
TWIN_FILES = {"config.json", "vocab.txt", "tokenizer_config.json", "model.safetensors", packs.TWIN_MARKER}


def bert_parameters(vocab=30522, hidden=768, layers=12, ffn=3072, positions=512, token_types=2, outputs=1) -> int:
    """BertForSequenceClassification's parameter count, worked out from the published architecture."""
    embeddings = (vocab + positions + token_types) * hidden + 2 * hidden
    block = 4 * (hidden * hidden + hidden) + (hidden * ffn + ffn) + (ffn * hidden + hidden) + 2 * 2 * hidden
    pooler, head = hidden * hidden + hidden, hidden * outputs + outputs
    return embeddings + layers * block + pooler + head


@pytest.fixture(scope="module")
def hf_home():
    """One HF_HOME holding the BiomedBERT-base twin under its real hub id (440 MB, removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="hf-home-") as home:
        twins.install_in_hf_cache("pubmedbert-base", home)
        yield Path(home)


@pytest.fixture
def offline(hf_home):
    """This process (huggingface_hub's import-time constants) and its workers (the environment) read that cache."""
    with packs.using_hf_home(hf_home, offline=True):
        yield hf_home


def _file_tensor(snapshot: Path, key: str) -> torch.Tensor:
    with safe_open(str(snapshot / "model.safetensors"), "pt") as weights:
        return weights.get_tensor(key)


# --- the twin and its place in the cache ------------------------------------------------------------

def test_the_twin_is_laid_out_as_huggingface_hub_lays_out_a_download(hf_home):
    info = scan_cache_dir(hf_home / "hub")  # huggingface_hub's own reader: it reports any layout it cannot parse
    (repo,) = info.repos
    assert not info.warnings and repo.repo_id == PUBMEDBERT
    (revision,) = repo.revisions
    assert revision.refs == frozenset({"main"}) and {f.file_name for f in revision.files} == TWIN_FILES
    snapshot = revision.snapshot_path
    shared = paths.shared_models_dir() / models.shared_folder_name(PUBMEDBERT)
    for name in ("config.json", "vocab.txt", "tokenizer_config.json"):  # the real files, byte for byte
        assert (snapshot / name).read_bytes() == (shared / name).read_bytes(), name
    blobs = {f.file_name: f.blob_path.name for f in revision.files}
    assert blobs["model.safetensors"] == packs.sha256(snapshot / "model.safetensors")  # LFS ETag
    # Small files are named by their git blob id, as the hub's ETag names them: bert-base-uncased's
    # config.json is git blob 45a2321a... (shared/models/README.md), and that is what we compute.
    assert twins._etag(paths.shared_models_dir() / "google-bert__bert-base-uncased" / "config.json").startswith("45a2321a")
    assert os.readlink(snapshot / "config.json") == f"../../blobs/{blobs['config.json']}"  # relative, as hf does
    start = time.perf_counter()
    assert twins.install_in_hf_cache("pubmedbert-base", hf_home) == snapshot  # same recipe: same revision
    assert time.perf_counter() - start < 1.0


def test_the_pinned_hf_cli_runs_the_fetch_command_and_finds_the_twin(hf_home):
    """The command our error prints parses under the pinned `hf`, which sees the twin as a complete download."""
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    command = shlex.split(packs.hub_fetch_command(PUBMEDBERT))
    done = subprocess.run([str(Path(sys.executable).parent / command[0]), *command[1:]], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert str(packs.hub_repo_dir(PUBMEDBERT, hf_home / "hub") / "snapshots") in done.stdout


def test_a_twin_never_hides_a_real_download(tmp_path):
    repo = packs.hub_repo_dir(PUBMEDBERT, tmp_path / "hub")
    (repo / "snapshots" / "d673b8835373c6fa116d6d8006b33d48734e305d").mkdir(parents=True)
    (repo / "snapshots" / "d673b8835373c6fa116d6d8006b33d48734e305d" / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("d673b8835373c6fa116d6d8006b33d48734e305d")
    with pytest.raises(ConfigError, match="would hide the checkpoint"):
        twins.install_in_hf_cache("pubmedbert-base", tmp_path)
    assert not (repo / "blobs").exists()


# --- fine-tuning by registry name from the cache, offline ------------------------------------------

def test_finetune_by_registry_name_reads_the_twin_from_the_cache(offline, one_torch_thread):
    config = RunConfig(task="BIOSSES", model="pubmedbert-base", train_limit=8, eval_limit=8, max_length=32,
                       epochs=1, batch_size=8)
    with pytest.warns(UserWarning, match="shape-true twin of microsoft/BiomedNLP-BiomedBERT-base"):
        record = train.run(config, progress=False)
    assert record["status"] == "ok", record["failure_reason"]
    assert record["n_params"] == record["n_trainable_params"] == bert_parameters() == 109_483_009
    assert record["config"]["head"] == "cls" and record["n_train"] == 8 and len(record["dev_curve"]) == 1
    assert math.isfinite(record["dev_score"]) and math.isfinite(record["test_score"])
    assert math.isfinite(record["train_loss_first"]) and record["model_pretrained"] is False  # a twin says so


def test_load_by_registry_name_reads_the_cached_weights_and_the_real_vocabulary(offline):
    with pytest.warns(UserWarning, match="random weights"):
        model, tokenizer = models.load("pubmedbert-base", "GAD")
    snapshot = packs.cached_hub_file(PUBMEDBERT, "config.json").parent
    key = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(model.bert.embeddings.word_embeddings.weight, _file_tensor(snapshot, key))  # not a fresh init
    assert model.config.vocab_size == 30522 and len(tokenizer) == 28895  # as the official checkpoint
    assert tokenizer.tokenize("Gefitinib lymphoma phosphorylation") == ["gefitinib", "lymphoma", "phosphorylation"]
    assert models.get(str(snapshot)).pretrained is False  # the twin's folder, passed as a directory, says so too


def test_safetensors_in_the_conversion_pull_request_are_read_offline(hf_home, tmp_path, monkeypatch):
    """A repo whose main holds only pickles has its safetensors in the conversion bot's pull request
    (cached as refs/refs/pr/N): the offline loader reads the weights from that revision."""
    twin = packs.hub_repo_dir(PUBMEDBERT, hf_home / "hub")
    snapshot = next((twin / "snapshots").iterdir())
    repo = packs.hub_repo_dir(PUBMEDBERT, tmp_path / "hub")
    main, pr = models.get("pubmedbert-base").revision, "b" * 40  # the pinned commit, and the bot's
    for revision, names in ((main, ("config.json", "vocab.txt", "tokenizer_config.json")), (pr, ("model.safetensors",))):
        (repo / "snapshots" / revision).mkdir(parents=True)
        for name in names:
            (repo / "snapshots" / revision / name).symlink_to((snapshot / name).resolve())
    (repo / "refs" / "refs" / "pr").mkdir(parents=True)
    (repo / "refs" / "refs" / "pr" / "3").write_text(pr)
    with packs.using_hf_home(tmp_path, offline=True):
        assert packs.cached_weights_revision(PUBMEDBERT, main) == pr
        assert "in HF cache" in next(l for l in models.format_table().splitlines() if l.startswith("pubmedbert-base "))
        model, _ = models.load("pubmedbert-base", "BIOSSES")
        assert models.get("pubmedbert-base").pretrained is True  # no twin marker on main: taken as the checkpoint
    key = "bert.encoder.layer.11.output.dense.weight"
    assert torch.equal(model.bert.encoder.layer[11].output.dense.weight, _file_tensor(snapshot, key))


# --- what is not in the cache fails at once, naming the fetch ---------------------------------------

def test_a_model_missing_from_the_cache_fails_at_once_with_the_fetch_command(offline):
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as err:
        train.run(RunConfig(task="BIOSSES", model="pubmedbert-large", train_limit=8, eval_limit=8), progress=False)
    seconds = time.perf_counter() - start
    message = str(err.value)
    assert seconds < 1.0, seconds  # file lookups only: no request, no retry, no timeout
    assert "'pubmedbert-large'" in message and str(offline / "hub") in message and "HF_HUB_OFFLINE=1" in message
    pin = models.get("pubmedbert-large").revision
    assert f'hf download {PUBMEDBERT_LARGE} --revision {pin} --include "*.json" --include "*.txt" --include "*.safetensors"' in message
    assert f"snapshot_download('{PUBMEDBERT_LARGE}', revision='{pin}'" in message
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError, match="hf download"):
        packs.fetch_hub(PUBMEDBERT_LARGE)  # the login-node helper, offline: it says so at once too
    assert time.perf_counter() - start < 1.0
    snapshot = packs.cached_hub_file(PUBMEDBERT, "config.json").parent
    assert packs.fetch_hub(PUBMEDBERT) == snapshot  # main: the twin
    with pytest.raises(ModelUnavailableError, match="--revision d673b8835373c6fa116d6d8006b33d48734e305d"):
        models.fetch(["pubmedbert-base"])  # the registry's pin: a twin is not the pinned checkpoint
    with pytest.raises(ConfigError, match="minilm-l6 are not"):
        models.fetch(["minilm-l6"])


def test_a_cached_model_without_safetensors_fails_at_once_naming_the_fix(tmp_path):
    repo = packs.hub_repo_dir(PUBMEDBERT, tmp_path / "hub")
    pin = models.get("pubmedbert-base").revision
    snapshot = repo / "snapshots" / pin
    snapshot.mkdir(parents=True)
    shared = paths.shared_models_dir() / models.shared_folder_name(PUBMEDBERT)
    for name in ("config.json", "vocab.txt", "tokenizer_config.json"):
        (snapshot / name).write_bytes((shared / name).read_bytes())
    (snapshot / "pytorch_model.bin").write_bytes(b"a pickle is never loaded")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(pin)
    with packs.using_hf_home(tmp_path, offline=True):
        start = time.perf_counter()
        with pytest.raises(ModelUnavailableError) as err:
            models.load("pubmedbert-base", "GAD")
        assert time.perf_counter() - start < 2.0
        status = next(l for l in models.format_table().splitlines() if l.startswith("pubmedbert-base "))
    assert "without safetensors" in str(err.value) and "pytorch_model.bin" in str(err.value)
    assert f"fetch_hub('{PUBMEDBERT}', revision='{pin}')" in str(err.value) and "in HF cache without safetensors" in status


def test_using_hf_home_points_huggingface_hub_there_and_restores_it(tmp_path):
    before = (constants.HF_HOME, constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE, os.environ.get("HF_HOME"))
    with packs.using_hf_home(tmp_path, offline=True):
        assert packs.hub_cache_dir() == tmp_path.resolve() / "hub" == Path(os.environ["HF_HUB_CACHE"])
        assert constants.HF_HUB_OFFLINE is True and os.environ["HF_HOME"] == str(tmp_path.resolve())
        status = next(l for l in models.format_table().splitlines() if l.startswith("bert-base "))
        assert status.endswith("hub (offline): @86b5e09 not in HF cache")
    assert (constants.HF_HOME, constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE, os.environ.get("HF_HOME")) == before


# --- every hub model has a shape-true twin -----------------------------------------------------------

PUBLISHED = {"110M": 110e6, "125M": 125e6, "335M": 335e6, "340M": 340e6}


@pytest.mark.parametrize("name", twins.hub_names())
def test_every_hub_model_has_a_twin_of_its_published_shape(name):
    spec, recipe = models.get(name), twins.recipe(name)
    config = twins.config(name)
    assert (config.num_hidden_layers, config.hidden_size) == (spec.layers, spec.hidden)
    assert config.model_type == spec.family.lower() and config.architectures[0].endswith(("ForMaskedLM", "ForPreTraining"))
    vocab = paths.shared_models_dir() / recipe.vocab_from
    entries = (len((vocab / "vocab.txt").read_text().splitlines()) if (vocab / "vocab.txt").is_file()
               else len(json.loads((vocab / "vocab.json").read_text())))
    assert config.vocab_size >= entries  # BiomedBERT's config has 30,522 rows for 28,895 entries, like the checkpoint
    with torch.device("meta"):
        import transformers

        encoder = transformers.AutoModel.from_config(config)
    count = sum(p.numel() for p in encoder.parameters())
    assert abs(count / PUBLISHED[spec.size] - 1) < 0.03, (name, count)
    assert recipe.real_config == (name in {"pubmedbert-base", "pubmedbert-base-fulltext", "bert-base", "scibert",
                                           "roberta-base"})


def test_overrides_shrink_a_twin_only_when_asked():
    assert twins.config("pubmedbert-large").num_hidden_layers == 24
    small = twins.config("pubmedbert-large", {"num_hidden_layers": 2})
    assert (small.num_hidden_layers, small.hidden_size) == (2, 1024)
    spec = models.MODELS["pubmedbert-large"]
    assert twins._revision(spec, 0, None) != twins._revision(spec, 0, {"num_hidden_layers": 2}) != \
        twins._revision(spec, 1, {"num_hidden_layers": 2})


def test_the_docs_list_every_hub_model_and_how_its_twin_was_completed():
    section = (paths.REPO_ROOT / "docs" / "paper-models.md").read_text().split("# Running the paper's models")[1].split("\n## ")[0]
    for name in twins.hub_names():
        row = next(line for line in section.splitlines() if line.startswith(f"| `{name}` |"))
        assert f"`{models.get(name).hub_id}`" in row
        assert row.split("|")[4].strip().startswith("real") == twins.recipe(name).real_config, row
        revision = models.get(name).revision
        assert row.split("|")[6].strip() == (f"`{revision[:7]}`" if revision else "main"), row
    assert packs.hub_fetch_command(PUBMEDBERT, models.get("pubmedbert-base").revision) in section
