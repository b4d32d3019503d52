"""Continued MLM pretraining: the masking pipeline, a few real steps on real text, checkpoints, arms."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from blurblib.core.errors import ConfigError, DataError, UnknownNameError
from blurblib.data import corpora
from blurblib.encoders import models
from blurblib.runs import arms
from blurblib.training import mlm

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def minilm():
    model, tokenizer, fresh_head = mlm.load_mlm("minilm-l6")
    return model, tokenizer, fresh_head


@pytest.fixture(scope="module")
def pubmed_blocks(minilm):
    _, tokenizer, _ = minilm
    return mlm.mlm_blocks(corpora.pubmed_abstracts("heldout")[:80], tokenizer, 128, max_blocks=64)


def test_minilm_gets_a_fresh_mlm_head_tied_to_its_embeddings(minilm):
    model, _, fresh_head = minilm
    assert fresh_head  # all-MiniLM-L6-v2 is a bare BertModel
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    released, _ = models.load("minilm-l6", "BIOSSES")
    assert torch.equal(released.bert.encoder.layer[5].output.dense.weight,
                       model.bert.encoder.layer[5].output.dense.weight)  # the encoder is the released one


def test_blocks_are_full_length_and_keep_the_text_in_order(minilm, pubmed_blocks):
    _, tokenizer, _ = minilm
    ids = pubmed_blocks["input_ids"]
    assert len(ids) == 64 and {len(b) for b in ids} == {128}
    assert all(b[0] == tokenizer.cls_token_id and b[-1] == tokenizer.sep_token_id for b in ids)
    first_text = corpora.pubmed_abstracts("heldout")[0]
    expected = tokenizer(first_text, add_special_tokens=False)["input_ids"][:126]
    assert ids[0][1:-1] == expected
    # offsets continue across texts with a gap, so no "word" spans two texts
    starts = [a for a, _ in pubmed_blocks["offset_mapping"][0][1:-1]]
    assert starts == sorted(starts)


def test_masking_rate_is_15_percent_with_80_10_10_replacement(minilm, pubmed_blocks):
    _, tokenizer, _ = minilm
    collator = mlm.mlm_collator(tokenizer, whole_word_masking=False, seed=0)
    batch = mlm.collate(collator, pubmed_blocks, range(64))
    original = torch.tensor(pubmed_blocks["input_ids"])
    masked = batch["labels"] != -100
    special = torch.tensor(pubmed_blocks["special_tokens_mask"]).bool()
    assert not (masked & special).any()
    rate = masked[~special].float().mean().item()
    assert abs(rate - 0.15) < 0.012, rate  # 8064 tokens: sd 0.004
    assert torch.equal(batch["labels"][masked], original[masked])
    as_mask_token = (batch["input_ids"][masked] == tokenizer.mask_token_id).float().mean().item()
    unchanged = (batch["input_ids"][masked] == original[masked]).float().mean().item()
    assert abs(as_mask_token - 0.8) < 0.04 and 0.05 < unchanged < 0.16


def test_whole_word_masking_masks_every_piece_of_a_chosen_word(minilm, pubmed_blocks):
    _, tokenizer, _ = minilm
    collator = mlm.mlm_collator(tokenizer, whole_word_masking=True, seed=0)
    batch = mlm.collate(collator, pubmed_blocks, range(64))
    masked = (batch["labels"] != -100).numpy()
    multi_piece_words_masked = 0
    for b, offsets in enumerate(pubmed_blocks["offset_mapping"]):
        words, current, prev_end = [], [], None
        for i, (start, end) in enumerate(offsets[1:-1], start=1):
            if current and start != prev_end:
                words.append(current)
                current = []
            current.append(i)
            prev_end = end
        words.append(current)
        for word in words[1:-1]:  # the first and last word may be cut by the block boundary
            states = set(masked[b, word])
            assert len(states) == 1, (b, word, tokenizer.convert_ids_to_tokens(
                [pubmed_blocks["input_ids"][b][i] for i in word]))
            multi_piece_words_masked += len(word) > 1 and states == {True}
    assert multi_piece_words_masked >= 20  # not vacuous: many split words were masked whole
    rate = masked[:, 1:-1].mean()
    assert 0.11 < rate < 0.20, rate
    assert (batch["input_ids"][batch["labels"] != -100] == tokenizer.mask_token_id).all()


def test_masked_positions_loss_equals_the_models_own_loss(minilm, pubmed_blocks):
    model, tokenizer, _ = minilm
    batch = mlm.collate(mlm.mlm_collator(tokenizer, seed=3), pubmed_blocks, range(4))
    model.eval()
    with torch.no_grad():
        ours, n = mlm.masked_lm_loss(model, batch)
        theirs = model(**batch).loss
    assert n == int((batch["labels"] != -100).sum()) > 0
    assert abs(float(ours) - float(theirs)) < 1e-4


def _small_config(**kw):
    base = dict(corpus="pubmed", max_steps=20, batch_size=4, seq_length=64, lr=5e-4, warmup_ratio=0.1, seed=0)
    base.update(kw)
    return mlm.PretrainConfig(**base)


def test_a_few_steps_lower_the_mlm_loss_and_are_deterministic(minilm):
    _, tokenizer, _ = minilm
    blocks = mlm.mlm_blocks(corpora.pubmed_abstracts("heldout")[:15], tokenizer, 64, max_blocks=16)
    config = _small_config()

    def eval_loss(model):
        collator = mlm.mlm_collator(tokenizer, seed=99)
        batch = mlm.collate(collator, blocks, range(16))
        model.eval()
        with torch.no_grad():
            return float(mlm.masked_lm_loss(model, batch)[0])

    runs = []
    for seed, steps in ((0, 12), (0, 4), (0, 4), (1, 4)):
        model, _, _ = mlm.load_mlm("minilm-l6", seed=seed)
        before = eval_loss(model)
        run_config = dataclasses.replace(config, seed=seed, max_steps=steps)
        losses = mlm.train_mlm(model, tokenizer, blocks, run_config, progress=False)
        runs.append((before, losses, eval_loss(model)))
    (before, losses, after), (_, short, _), (_, short_again, _), (_, short_seed1, _) = runs
    assert len(losses) == 12
    assert after < before - 1.0, (before, after)  # fresh head starts near ln(30522) = 10.3
    assert np.mean(losses[-4:]) < np.mean(losses[:4]) - 1.0
    assert short == short_again  # same config and seed -> the same run on CPU
    assert short != short_seed1


def test_head_warmup_steps_train_the_head_and_leave_the_encoder_alone(minilm):
    _, tokenizer, _ = minilm
    blocks = mlm.mlm_blocks(corpora.brown_sentences("heldout")[:60], tokenizer, 32, max_blocks=4)
    model, _, _ = mlm.load_mlm("minilm-l6", seed=0)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    config = mlm.PretrainConfig(max_steps=2, head_warmup_steps=2, batch_size=2, seq_length=32, lr=1e-3)
    mlm.train_mlm(model, tokenizer, blocks, config, progress=False)
    changed = {name for name, p in model.named_parameters() if not torch.equal(p.detach(), before[name])}
    assert changed == {"cls.predictions.bias", "cls.predictions.transform.dense.weight",
                       "cls.predictions.transform.dense.bias", "cls.predictions.transform.LayerNorm.weight",
                       "cls.predictions.transform.LayerNorm.bias"}
    assert model.get_output_embeddings().weight.requires_grad  # unfrozen again for later use


def test_pretrain_saves_safetensors_reuses_and_loads_with_models(tmp_path):
    config = mlm.PretrainConfig(corpus="general", max_steps=2, batch_size=2, seq_length=32, seed=0)
    result = mlm.pretrain(config, out_dir=tmp_path, progress=False)
    folder = result.checkpoint
    assert folder == tmp_path / config.folder_name and folder.name.startswith("minilm-l6-general-128tok-s0-")
    assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.bin"))
    assert result.fresh_head and len(result.losses) == 2 and result.tokens_seen == 2 * 2 * 32
    saved = json.loads((folder / mlm.RESULT_FILE).read_text())
    assert saved["losses"] == result.losses and saved["config"]["corpus"] == "general"

    again = mlm.pretrain(config, out_dir=tmp_path, progress=False)
    assert again.reused and again.losses == result.losses

    model, tokenizer = models.load(str(folder), "NCBI-disease")
    mlm_model, _, fresh = mlm.load_mlm(str(folder))
    assert not fresh  # the trained head is in the checkpoint
    weight = model.bert.encoder.layer[0].attention.self.query.weight
    assert torch.equal(weight, mlm_model.bert.encoder.layer[0].attention.self.query.weight)
    released, _ = models.load("minilm-l6", "NCBI-disease")
    assert not torch.equal(weight, released.bert.encoder.layer[0].attention.self.query.weight)
    assert tokenizer.tokenize("lymphoma") == ["l", "##ym", "##ph", "##oma"]

    rebuilt = mlm.pretrain(config, out_dir=tmp_path, progress=False, force=True)
    assert not rebuilt.reused and rebuilt.losses == result.losses


def test_random_init_arm_is_seeded_and_untrained(tmp_path):
    a = mlm.write_random_init(seed=0, out_dir=tmp_path / "a")
    b = mlm.write_random_init(seed=0, out_dir=tmp_path / "b")
    c = mlm.write_random_init(seed=1, out_dir=tmp_path / "c")
    record = json.loads((a / mlm.RANDOM_INIT_FILE).read_text())
    assert record["random_init"] and record["seed"] == 0 and record["architecture_of"] == "minilm-l6"
    weights = [models.load(str(p), "BIOSSES")[0].bert.encoder.layer[2].intermediate.dense.weight for p in (a, b, c)]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])
    released = models.load("minilm-l6", "BIOSSES")[0].bert.encoder.layer[2].intermediate.dense.weight
    assert not torch.equal(weights[0], released)
    assert abs(float(weights[0].detach().std()) - 0.02) < 0.002  # BERT's initializer_range
    loss = mlm.mlm_eval_loss(a, corpora.brown_sentences("heldout")[:300], max_blocks=8)
    assert abs(loss - np.log(30522)) < 0.6  # an untrained model is about uniform over the vocabulary


def test_arms_registry_and_build_arm(tmp_path):
    assert list(arms.ARMS) == ["released", "domain", "general", "random"]
    assert arms.build_arm("released", budget=1000) == "minilm-l6"
    assert arms.arm_config("domain", 4096).corpus == "pubmed"
    assert arms.arm_config("general", 4096).tokens == arms.arm_config("domain", 4096).tokens == 4096
    random_dir = arms.build_arm("random", budget=0, out_dir=tmp_path)
    assert (tmp_path / "minilm-l6-random-init-s0" / "model.safetensors").is_file()
    assert random_dir == str(tmp_path / "minilm-l6-random-init-s0")


def test_bad_configs_and_names_say_what_to_fix():
    with pytest.raises(UnknownNameError, match="released, domain, general, random"):
        arms.build_arm("wiki", budget=10)
    with pytest.raises(UnknownNameError, match="pubmed"):
        mlm.PretrainConfig(corpus="wikipedia").validate()
    with pytest.raises(ConfigError, match="seq_length=4"):
        mlm.PretrainConfig(seq_length=4).validate()
    with pytest.raises(ConfigError, match="mlm_probability=1.5"):
        mlm.PretrainConfig(mlm_probability=1.5).validate()
    with pytest.raises(ConfigError, match="head_warmup_steps=5"):
        mlm.PretrainConfig(max_steps=4, head_warmup_steps=5).validate()
    with pytest.raises(ConfigError, match="no pretraining run"):
        arms.arm_config("released", 100)
    with pytest.raises(UnknownNameError):
        mlm.load_mlm("no-such-model")


def test_too_little_text_for_one_block_is_a_data_error(minilm):
    model, tokenizer, _ = minilm
    blocks = mlm.mlm_blocks(["Too short."], tokenizer, 64)
    with pytest.raises(DataError, match="shorter than one block"):
        mlm.train_mlm(model, tokenizer, blocks, _small_config(max_steps=1), progress=False)
    with pytest.raises(DataError, match="no full 64-token block"):
        mlm.mlm_eval_loss("minilm-l6", ["Too short."], seq_length=64)
