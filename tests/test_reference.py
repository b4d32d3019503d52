"""The frozen-encoder reference: the probe on synthetic data with a known answer, the real
MiniLM on tiny real slices, and the cached store."""
import json
import math

import numpy as np
import pytest
import torch
from datasets import Dataset
from scipy.stats import pearsonr

from blurblib.core.errors import ConfigError
from blurblib.data import encoding, metrics, tasks
from blurblib.encoders import packs
from blurblib.runs import reference
from blurblib.runs.reference import ReferenceConfig
from blurblib.training.train import RunConfig

# Measured with minilm-l6 on the full BIOSSES dev/test sets (16 and 20 pairs), max_length 128.
BIOSSES_DEV, BIOSSES_TEST = 73.02, 84.69


def _blobs(rng, centres, n_per, scale=0.3):
    """Points around well-separated centres: a linear probe must get every one right."""
    x = np.concatenate([c + scale * rng.standard_normal((n_per, len(c))) for c in centres])
    y = np.repeat(np.arange(len(centres)), n_per)
    return x, y


# --------------------------------------------------------------------------- synthetic probes


def test_probe_gets_separable_classes_right():
    rng = np.random.default_rng(0)
    centres = np.eye(3, 8) * 5
    x, y = _blobs(rng, centres, 30)
    x_new, y_new = _blobs(rng, centres, 10)
    probe = reference.make_probe("single_label", 1.0, 3).fit(x, y)
    assert (probe.logits(x_new).argmax(axis=1) == y_new).all()


def test_class_absent_from_train_is_never_predicted():
    rng = np.random.default_rng(1)
    x, y = _blobs(rng, np.eye(2, 8) * 5, 20)
    y = np.where(y == 1, 2, 0)  # classes 0 and 2 of 3; class 1 never seen
    logits = reference.make_probe("single_label", 0.1, 3).fit(x, y).logits(x)
    assert logits.shape == (40, 3) and (logits[:, 1] == reference.ABSENT_LOGIT).all()
    assert (logits.argmax(axis=1) == y).all()
    alone = reference.make_probe("single_label", 0.1, 3).fit(x, np.full(40, 2)).logits(x)
    assert (alone.argmax(axis=1) == 2).all()  # one class in train: it is predicted everywhere


def test_multi_label_probe_with_constant_columns_follows_the_decode_threshold():
    rng = np.random.default_rng(2)
    x, first = _blobs(rng, np.eye(2, 8) * 5, 20)
    y = np.stack([first, np.zeros(40), np.ones(40)], axis=1)  # one learnable, one never, one always
    logits = reference.make_probe("multi_label", 1.0, 3).fit(x, y).logits(x)
    assert ((logits >= 0) == y.astype(bool)).all()
    labels = tasks.get("HoC").labels[:3]
    split = Dataset.from_dict({"id": [str(i) for i in range(40)]})
    hoc_logits = np.full((40, 10), -5.0)
    hoc_logits[:, :3] = logits
    predictions = encoding.decode("HoC", hoc_logits, split, split)
    assert predictions == [[labels[j] for j in range(3) if y[i, j]] for i in range(40)]


def test_token_training_set_keeps_first_sub_words_only():
    feats = [np.arange(8.0).reshape(4, 2), np.arange(6.0).reshape(3, 2)]
    labels = [[-100, 1, -100, 0], [-100, 2, -100]]
    x, y = reference._token_training_set(feats, labels)
    assert x.tolist() == [[2.0, 3.0], [6.0, 7.0], [2.0, 3.0]] and y.tolist() == [1, 0, 2]


# --------------------------------------------------------------------------- the real encoder


@pytest.fixture(scope="module")
def biosses(one_torch_thread):
    return reference.run(ReferenceConfig("BIOSSES"))


def test_biosses_zero_shot_cosine_knows_similarity(biosses):
    assert biosses["technique"] == "zero-shot cosine" and biosses["kind"] == "reference"
    assert biosses["probe_c"] is None and biosses["n_train"] == 0 and biosses["n_features"] == 384
    assert biosses["dev_score"] == pytest.approx(BIOSSES_DEV, abs=0.5)
    assert biosses["test_score"] == pytest.approx(BIOSSES_TEST, abs=0.5)
    assert biosses["trivial_test_score"] == 0.0 and biosses["model_pretrained"] is True
    json.dumps(biosses)


def _independent_cosines(texts_a, texts_b):
    """Plain transformers, one sentence at a time, no padding: the cosine of mean token states."""
    from transformers import AutoModel, AutoTokenizer

    folder = packs.minilm_dir()
    model, tokenizer = AutoModel.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)

    def vector(text):
        with torch.inference_mode():
            inputs = tokenizer(text, return_tensors="pt", truncation=True, max_length=128)
            return model(**inputs).last_hidden_state[0].mean(dim=0)

    return np.array([float(torch.nn.functional.cosine_similarity(vector(a), vector(b), dim=0))
                     for a, b in zip(texts_a, texts_b)])


def test_biosses_cosines_equal_an_independent_computation(biosses, one_torch_thread):
    dev = tasks.load("BIOSSES", splits="dev")["dev"]
    expected = _independent_cosines(dev["text_a"], dev["text_b"])
    config = ReferenceConfig("BIOSSES")
    encoder, tokenizer = reference._encoder(config)
    _, encoded = reference.prepare_data(config, tokenizer)
    ours = reference.cosine(reference.sentence_vectors(encoder, tokenizer, encoded["dev"], "a"),
                            reference.sentence_vectors(encoder, tokenizer, encoded["dev"], "b"))
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    assert biosses["dev_score"] == pytest.approx(100 * pearsonr(dev["label"], expected).statistic, abs=1e-3)


def test_gad_probe_scores_are_finite_percentages(one_torch_thread):
    record = reference.run(ReferenceConfig("GAD", train_limit=64, eval_limit=64, max_length=64))
    assert record["technique"] == "linear probe" and record["n_train"] == 64
    assert record["probe_c"] in reference.PROBE_C_GRID and len(record["probe_dev_scores"]) == 3
    assert record["dev_score"] == max(record["probe_dev_scores"].values())  # C chosen on dev
    for key in ("dev_score", "test_score"):
        assert math.isfinite(record[key]) and 0 <= record[key] <= 100
    json.dumps(record)


def test_ncbi_probe_predicts_one_tag_per_word(monkeypatch, one_torch_thread):
    seen = []
    real_score = metrics.score
    monkeypatch.setattr(metrics, "score", lambda task, p, r: seen.append((p, r)) or real_score(task, p, r))
    record = reference.run(ReferenceConfig("NCBI-disease", train_limit=32, eval_limit=32))
    assert len(seen) == len(reference.PROBE_C_GRID) + 2  # each C on dev, the chosen C on test, the trivial baseline
    for predictions, gold in seen:
        assert len(predictions) == len(gold) == 32
        assert [len(p) for p in predictions] == [len(g) for g in gold]
        assert {t for p in predictions for t in p} <= {"O", "B", "I"}
    assert 0 <= record["test_score"] <= 100 and record["n_probe_rows"] > 32


# --------------------------------------------------------------------------- configs and the store


def test_for_run_takes_the_runs_task_model_and_data():
    run = RunConfig(task="GAD", train_limit=64, eval_limit=64, max_length=64, seed=3, lr=1e-3, freeze_layers=2)
    direct = ReferenceConfig("GAD", train_limit=64, eval_limit=64, max_length=64)
    assert ReferenceConfig.for_run(run).run_id == direct.run_id
    assert direct.run_id.startswith("GAD__minilm-l6__reference__")
    assert ReferenceConfig("GAD", train_limit=64, eval_limit=32, max_length=64).run_id != direct.run_id
    assert ReferenceConfig("BIOSSES").kind == "zero-shot cosine" and direct.kind == "linear probe"


def test_bad_config_fails_before_loading():
    with pytest.raises(ConfigError, match="eval_limit=0"):
        reference.run_references([ReferenceConfig("GAD", eval_limit=0)], "/nonexistent", progress=False)


def test_run_references_caches_and_references_for_dedups(tmp_path, monkeypatch, one_torch_thread):
    runs = [RunConfig(task="BIOSSES", eval_limit=8, seed=s) for s in (1, 2)]
    runs.append(RunConfig(task="GAD", train_limit=16, eval_limit=16, max_length=32))
    first = reference.references_for(runs, tmp_path, progress=False)
    assert list(first["task"]) == ["BIOSSES", "GAD"]  # the two BIOSSES seeds share one reference
    assert set(first["technique"]) == {"zero-shot cosine", "linear probe"}
    assert len(list((tmp_path / "references" / "runs").glob("*.json"))) == 2

    def must_not_run(config, progress=False):
        raise AssertionError(f"{config.run_id} was already stored")

    monkeypatch.setattr(reference, "run", must_not_run)
    again = reference.references_for(runs, tmp_path, progress=False)
    assert again.equals(first)
