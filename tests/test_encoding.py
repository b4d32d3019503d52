"""Tokenisation, collation and decoding on real BLURB slices with the real MiniLM tokenizer."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from blurblib.core.errors import ConfigError, DataError
from blurblib.data import encoding, metrics, tasks
from blurblib.encoders import packs


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(packs.minilm_dir())


def _slice(task, split="dev", n=200):
    ds = tasks.load(task, splits=[split])[split]
    return ds.select(range(min(n, ds.num_rows)))


def _one_hot(labels, num_classes):
    """Logits that put all mass on the gold label at labelled positions (class 0 elsewhere)."""
    return [np.eye(num_classes)[np.where(np.asarray(row) < 0, 0, row)] for row in labels]


# --- NER / PICO ---------------------------------------------------------------------------

def test_ner_label_sits_on_the_first_subword_only(tokenizer):
    raw = _slice("BC5-chem", n=1)
    assert raw[0]["tokens"][:3] == ["22", "-", "oxacalcitriol"] and raw[0]["tags"][:3] == ["B", "I", "I"]
    enc = encoding.encode(raw, "BC5-chem", tokenizer)
    row = enc[0]
    pieces = tokenizer.convert_ids_to_tokens(row["input_ids"])
    oxa = [i for i, w in enumerate(row["word_ids"]) if w == 2]
    assert len(oxa) > 1 and pieces[oxa[0]] == "ox"  # a word split into several sub-words
    i_id = tasks.get("BC5-chem").labels.index("I")
    assert row["labels"][oxa[0]] == i_id and all(row["labels"][j] == -100 for j in oxa[1:])
    assert row["labels"][0] == -100 and row["labels"][-1] == -100  # [CLS], [SEP]
    assert row["length"] == len(row["input_ids"]) == len(row["labels"])


def test_every_word_gets_exactly_one_labelled_position(tokenizer):
    raw = _slice("NCBI-disease")
    enc = encoding.encode(raw, "NCBI-disease", tokenizer)
    labels = tasks.get("NCBI-disease").labels
    for words, tags, labels_row, word_ids in zip(raw["tokens"], raw["tags"], enc["labels"], enc["word_ids"]):
        labelled = [(w, lab) for w, lab in zip(word_ids, labels_row) if lab != -100]
        assert [w for w, _ in labelled] == list(range(len(words)))
        assert [labels[lab] for _, lab in labelled] == tags


@pytest.mark.parametrize("task", ["NCBI-disease", "JNLPBA", "EBM-PICO"])
def test_decode_of_one_hot_logits_recovers_the_gold_tags(tokenizer, task):
    raw = _slice(task)
    enc = encoding.encode(raw, task, tokenizer)
    logits = _one_hot(enc["labels"], len(tasks.get(task).labels))
    predictions = encoding.decode(task, logits, enc, raw)
    assert predictions == raw["tags"]
    assert metrics.score(task, predictions, raw["tags"]) == 100.0


def test_decode_accepts_one_padded_array_from_the_collator(tokenizer):
    raw = _slice("BC2GM", n=16)
    enc = encoding.encode(raw, "BC2GM", tokenizer)
    batch = encoding.collator("BC2GM", tokenizer)([enc[i] for i in range(16)])
    padded = torch.nn.functional.one_hot(batch["labels"].clamp(min=0), 3).float()  # (16, T, 3)
    assert encoding.decode("BC2GM", padded, enc, raw) == raw["tags"]


def test_truncated_words_are_predicted_O(tokenizer):
    raw = _slice("JNLPBA", n=50)
    enc = encoding.encode(raw, "JNLPBA", tokenizer, max_length=16)
    assert max(enc["length"]) == 16
    predictions = encoding.decode("JNLPBA", _one_hot(enc["labels"], 3), enc, raw)
    truncated = 0
    for words, tags, pred, word_ids in zip(raw["tokens"], raw["tags"], predictions, enc["word_ids"]):
        kept = max(word_ids) + 1
        assert len(pred) == len(words)
        assert pred[:kept] == tags[:kept] and pred[kept:] == ["O"] * (len(words) - kept)
        truncated += kept < len(words)
    assert truncated > 40  # nearly every JNLPBA sentence is longer than 14 sub-words


def test_ner_default_max_length_is_the_task_length(tokenizer):
    enc = encoding.encode(_slice("BC5-chem", n=20), "BC5-chem", tokenizer)
    assert set(enc.column_names) == {"input_ids", "token_type_ids", "attention_mask", "labels", "word_ids",
                                     "length"}
    assert enc.features["labels"].feature.dtype == "int64"


# --- sequence tasks ---------------------------------------------------------------------

def test_relation_labels_are_class_ids_and_length_follows_blurb(tokenizer):
    raw = _slice("ChemProt", n=400)
    enc = encoding.encode(raw, "ChemProt", tokenizer)
    labels = tasks.get("ChemProt").labels
    assert [labels[i] for i in enc["labels"]] == raw["label"]
    assert max(enc["length"]) <= 256
    gad = encoding.encode(_slice("GAD", n=50), "GAD", tokenizer, max_length=32)
    assert max(gad["length"]) == 32 and set(gad["labels"]) <= {0, 1}


def test_relation_decode_returns_label_names(tokenizer):
    raw = _slice("DDI", n=30)
    enc = encoding.encode(raw, "DDI", tokenizer)
    logits = np.eye(5)[enc["labels"]]
    assert encoding.decode("DDI", logits, enc, raw) == raw["label"]


def test_similarity_pairs_two_segments_and_float_labels(tokenizer):
    raw = _slice("BIOSSES", split="train", n=64)
    enc = encoding.encode(raw, "BIOSSES", tokenizer)
    assert enc.features["labels"].dtype == "float32"
    assert np.allclose(enc["labels"], raw["label"], atol=1e-6)
    row = enc[0]
    assert set(row["token_type_ids"]) == {0, 1}
    first = tokenizer(raw[0]["text_a"])["input_ids"]
    assert row["input_ids"][: len(first)] == first
    decoded = encoding.decode("BIOSSES", np.asarray(raw["label"])[:, None], enc, raw)
    assert decoded == pytest.approx(raw["label"]) and all(isinstance(v, float) for v in decoded)


def test_qa_truncates_the_context_only(tokenizer):
    raw = _slice("PubMedQA", n=20)
    enc = encoding.encode(raw, "PubMedQA", tokenizer, max_length=96)
    sep = tokenizer.sep_token_id
    for row, question in zip(enc, raw["question"]):
        q_ids = tokenizer(question, add_special_tokens=False)["input_ids"]
        assert row["input_ids"][1: 1 + len(q_ids)] == q_ids  # the whole question survives
        assert row["input_ids"][1 + len(q_ids)] == sep
        assert row["length"] == 96  # PubMedQA contexts are long: all cut to the budget


def test_qa_falls_back_when_the_question_alone_is_too_long(tokenizer):
    raw = _slice("BioASQ", n=10)
    enc = encoding.encode(raw, "BioASQ", tokenizer, max_length=12)
    assert max(enc["length"]) <= 12


def test_hoc_multi_hot_labels_and_threshold_decode(tokenizer):
    raw = _slice("HoC", n=60)
    enc = encoding.encode(raw, "HoC", tokenizer)
    spec = tasks.get("HoC")
    hot = np.asarray(enc["labels"])
    assert hot.shape == (60, 10) and enc.features["labels"].feature.dtype == "float32"
    assert hot.sum(axis=1).tolist() == [len(names) for names in raw["labels"]]
    logits = np.where(hot > 0, 2.0, -2.0)
    logits[0, 0] = 0.0  # sigmoid(0) = 0.5: on the threshold counts as predicted
    predictions = encoding.decode("HoC", logits, enc, raw)
    assert predictions[0][0] == spec.labels[0]
    assert [sorted(p) for p in predictions[1:]] == [sorted(g) for g in raw["labels"][1:]]
    assert all(isinstance(p, list) for p in predictions)


def test_max_length_is_capped_at_the_tokenizer_limit(tokenizer):
    enc = encoding.encode(_slice("HoC", n=10), "HoC", tokenizer, max_length=4096)
    assert max(enc["length"]) == tokenizer.model_max_length == 512


def test_encode_keeps_the_splits_of_a_dataset_dict(tokenizer):
    dsd = tasks.load("BIOSSES")
    enc = encoding.encode(dsd, "BIOSSES", tokenizer)
    assert {k: v.num_rows for k, v in enc.items()} == {"train": 64, "dev": 16, "test": 20}


# --- collator ---------------------------------------------------------------------------

def test_collator_pads_dynamically_and_drops_bookkeeping_columns(tokenizer):
    enc = encoding.encode(_slice("NCBI-disease", n=8), "NCBI-disease", tokenizer)
    batch = encoding.collator("NCBI-disease", tokenizer)([enc[i] for i in range(8)])
    longest = max(enc["length"])
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    assert batch["input_ids"].shape == batch["labels"].shape == (8, longest)
    short = int(np.argmin(enc["length"]))
    assert (batch["labels"][short, enc["length"][short]:] == -100).all()
    assert (batch["attention_mask"].sum(dim=1).tolist() == enc["length"])


@pytest.mark.parametrize("task, dtype, shape", [("HoC", torch.float32, (4, 10)), ("BIOSSES", torch.float32, (4,)),
                                                ("GAD", torch.int64, (4,))])
def test_collator_label_dtypes_match_the_loss(tokenizer, task, dtype, shape):
    split = "train" if task == "BIOSSES" else "dev"
    enc = encoding.encode(_slice(task, split=split, n=4), task, tokenizer)
    batch = encoding.collator(task, tokenizer)([enc[i] for i in range(4)])
    assert batch["labels"].dtype == dtype and tuple(batch["labels"].shape) == shape
    assert batch["input_ids"].shape[1] == max(enc["length"])


# --- bad input ----------------------------------------------------------------------------

def test_an_unknown_label_names_the_value(tokenizer):
    raw = _slice("GAD", n=3)
    bad = raw.map(lambda row: {"label": "2"})
    with pytest.raises(DataError, match=r"label '2'.*\['0', '1'\]"):
        encoding.encode(bad, "GAD", tokenizer)


def test_missing_columns_say_how_to_load_the_task(tokenizer):
    with pytest.raises(DataError, match=r"columns \['question', 'context'\] are missing"):
        encoding.encode(_slice("GAD", n=3), "PubMedQA", tokenizer)


def test_tags_and_tokens_of_different_lengths_are_refused(tokenizer):
    raw = _slice("NCBI-disease", n=2).map(lambda row: {"tags": row["tags"][:-1]})
    with pytest.raises(DataError, match="every word needs one tag"):
        encoding.encode(raw, "NCBI-disease", tokenizer)


def test_decode_refuses_logits_for_another_split(tokenizer):
    raw = _slice("GAD", n=5)
    enc = encoding.encode(raw, "GAD", tokenizer)
    with pytest.raises(DataError, match="4 rows of logits for 5 examples"):
        encoding.decode("GAD", np.zeros((4, 2)), enc, raw)


def test_too_short_max_length_is_a_config_error(tokenizer):
    with pytest.raises(ConfigError, match="max_length=4"):
        encoding.encode(_slice("GAD", n=2), "GAD", tokenizer, max_length=4)
