"""The task heads: shapes, losses, and that a bi-encoder starts from the encoder's zero-shot cosine."""
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from blurblib.core.errors import ConfigError
from blurblib.data import encoding
from blurblib.encoders import heads, models
from blurblib.runs import reference
from blurblib.training import techniques, train
from blurblib.training.train import RunConfig


def _batch(task, head, n=4, max_length=48):
    model, tokenizer = models.load("minilm-l6", task, head=head)
    raw = train.load_splits(task, train_limit=n, eval_limit=n)["train"]
    encoded = encoding.encode(raw, task, tokenizer, max_length, head=head)
    batch = encoding.collator(task, tokenizer, head=head)([encoded[i] for i in range(n)])
    return model, batch


@pytest.mark.parametrize("task, head, width", [
    ("GAD", "mean", 2), ("GAD", "cls", 2), ("HoC", "mean", 10), ("PubMedQA", "mean", 3),
    ("BIOSSES", "mean", 1), ("BIOSSES", "biencoder", 1),
])
def test_sequence_heads_give_one_row_of_logits_and_a_finite_loss(task, head, width, one_torch_thread):
    torch.manual_seed(0)
    model, batch = _batch(task, head)
    out = model(**batch)
    assert out.logits.shape == (4, width)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss) and out.loss > 0
    out.loss.backward()  # the encoder learns through every head
    assert model.base_model.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0


def test_mean_head_is_mean_pooling_then_linear(one_torch_thread):
    torch.manual_seed(0)
    model, batch = _batch("GAD", "mean")
    model.eval()
    hidden = model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    expected = pooled @ model.classifier.weight.T + model.classifier.bias
    torch.testing.assert_close(model(**batch).logits, expected, atol=1e-5, rtol=1e-5)
    assert model.base_model.pooler is None  # mean pooling replaces BERT's pooler


def test_biencoder_at_step_zero_ranks_pairs_as_the_zero_shot_cosine(one_torch_thread):
    config = RunConfig(task="BIOSSES", eval_limit=None, max_length=128)
    assert config.head == "biencoder"  # the native head of a sentence encoder on similarity
    model, tokenizer = models.load("minilm-l6", "BIOSSES", head="biencoder")
    raw, encoded = train.prepare_data(config, tokenizer)
    collate = encoding.collator("BIOSSES", tokenizer, head="biencoder")
    logits = np.concatenate(train.predict_logits(model, encoded["dev"], collate, 8, "cpu"))
    zero_shot = reference.run(reference.ReferenceConfig.for_run(config))
    ref_encoder, ref_tokenizer = reference._encoder(reference.ReferenceConfig.for_run(config))
    cosines = reference.cosine(reference.sentence_vectors(ref_encoder, ref_tokenizer, encoded["dev"], "a"),
                               reference.sentence_vectors(ref_encoder, ref_tokenizer, encoded["dev"], "b"))
    assert spearmanr(logits, cosines).statistic == pytest.approx(1.0)
    np.testing.assert_allclose(logits, 4.0 * cosines, atol=1e-4)  # the cosine on the 0-4 label scale
    score, _ = train.evaluate(model, "BIOSSES", encoded["dev"], raw["dev"], collate, 8, "cpu")
    assert score == pytest.approx(zero_shot["dev_score"], abs=1e-3)


def test_biencoder_loss_is_mse_on_the_normalised_scale():
    encoder = models.load("minilm-l6", "BIOSSES", head="biencoder")[0].base_model
    model = heads.BiEncoderSimilarity(encoder, (0.0, 4.0))
    ids = torch.tensor([[101, 2054, 102]])
    mask = torch.ones_like(ids)
    out = model(ids, mask, ids, mask, labels=torch.tensor([2.0]))  # identical sentences: cosine 1
    assert out.logits.item() == pytest.approx(4.0, abs=1e-4)
    assert out.loss.item() == pytest.approx((1.0 - 0.5) ** 2, abs=1e-4)


@pytest.mark.parametrize("knobs", [{"freeze_layers": 3}, {"reinit_layers": 1}, {"llrd_decay": 0.8}, {"mixout": 0.1}])
@pytest.mark.parametrize("head", ["mean", "biencoder"])
def test_every_technique_works_with_every_pooled_head(head, knobs, one_torch_thread):
    model, _ = models.load("minilm-l6", "BIOSSES", head=head)
    parts = techniques.encoder_parts(model)
    assert parts.num_blocks == 6 and parts.pooler is None
    config = RunConfig(task="BIOSSES", head=head, **knobs)
    techniques.prepare(model, config, generator=0)
    groups = techniques.param_groups(model, config, 1e-4, 0.01)
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())


def test_native_heads_come_from_the_registry():
    assert models.native_head("minilm-l6", "GAD") == "mean"
    assert models.native_head("minilm-l6", "BIOSSES") == "biencoder"
    assert models.native_head("mpnet-base", "HoC") == "mean"
    assert models.native_head("bert-base-shape", "BIOSSES") == "cls"  # MLM-pretrained: the paper's head
    assert models.native_head("minilm-l6", "NCBI-disease") == "token"
    assert RunConfig(task="GAD").head == "mean" and RunConfig(task="GAD", model="bert-base-shape").head == "cls"


@pytest.mark.parametrize("task, head", [("GAD", "biencoder"), ("NCBI-disease", "mean"), ("BIOSSES", "token"), ("GAD", "max")])
def test_a_head_that_does_not_fit_the_task_is_refused(task, head):
    with pytest.raises(ConfigError, match=f"head '{head}' does not fit {task}"):
        RunConfig(task=task, head=head).validate()


def test_lpft_trains_the_head_first_and_is_refused_for_a_headless_biencoder(one_torch_thread):
    with pytest.raises(ConfigError, match="biencoder head has none"):
        RunConfig(task="BIOSSES", lpft_epochs=2).validate()
    tiny = dict(task="GAD", epochs=1, train_limit=16, eval_limit=16, max_length=32, batch_size=8)
    record = train.run(RunConfig(lpft_epochs=3, **tiny), progress=False)
    assert record["technique"] == "lpft3" and record["status"] in ("ok", "failed")
    assert record["linear_probe_loss_last"] < 0.75  # 3 epochs on the frozen features fit the head a little
    model, tokenizer = models.load("minilm-l6", "GAD", head="mean")
    before = [p.detach().clone() for p in model.base_model.parameters()]
    loader = train._loader(train.prepare_data(RunConfig(**tiny), tokenizer)[1]["train"],
                           encoding.collator("GAD", tokenizer), 8, torch.Generator().manual_seed(0))
    head_before = model.classifier.weight.detach().clone()
    train.linear_probe_phase(model, loader, RunConfig(lpft_epochs=1, **tiny), "cpu")
    assert all(torch.equal(a, b) for a, b in zip(before, model.base_model.parameters()))  # encoder untouched
    assert not torch.equal(head_before, model.classifier.weight)
    assert all(p.requires_grad for p in model.parameters())  # unfrozen again for fine-tuning


def test_checkpoints_derived_from_a_sentence_encoder_keep_its_head(tmp_path):
    import json

    pretrained, random_init, foreign = (tmp_path / name for name in ("pretrained", "random", "foreign"))
    for folder in (pretrained, random_init, foreign):
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": "bert", "num_hidden_layers": 6, "hidden_size": 384}))
        (folder / "model.safetensors").write_bytes(b"")
    (pretrained / "pretrain.json").write_text(json.dumps({"config": {"model": "minilm-l6"}}))
    (random_init / "random_init.json").write_text(json.dumps({"random_init": True, "architecture_of": "minilm-l6"}))
    assert models.native_head(str(pretrained), "BIOSSES") == "biencoder"
    assert models.native_head(str(random_init), "GAD") == "mean"
    assert models.native_head(str(foreign), "BIOSSES") == "cls"  # a user's checkpoint: the paper's head
