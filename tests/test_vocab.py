"""Real vocabularies on real BLURB text: numbers that would be wrong if a file or a count were mixed up."""
import shutil

import numpy as np
import pytest

from blurblib.core.errors import DataError, UnknownNameError
from blurblib.data import tasks
from blurblib.encoders import vocab


def test_every_vocabulary_loads_with_its_published_size():
    sizes = {name: len(vocab.tokenizer(name)) for name in vocab.names()}
    assert sizes == {"pubmedbert": 28_895, "pubmedbert-fulltext": 30_522, "bert-base-uncased": 30_522,
                     "scibert": 31_090, "biobert": 28_996, "biolinkbert": 28_895, "roberta-base": 50_265,
                     "minilm-l6": 30_522}


def test_the_two_pubmedbert_vocabularies_are_different_files():
    abstract, fulltext = vocab.tokenizer("pubmedbert"), vocab.tokenizer("pubmedbert-fulltext")
    assert abstract.convert_tokens_to_ids("lymphoma") != fulltext.convert_tokens_to_ids("lymphoma")
    assert abstract.convert_tokens_to_ids("[MASK]") == 4 and fulltext.convert_tokens_to_ids("[MASK]") == 4


def test_how_they_cut_biomedical_terms():
    cut = vocab.how_they_cut(["lymphoma", "EGFR", "gefitinib"], ["pubmedbert", "bert-base-uncased", "biobert"])
    assert cut.loc["lymphoma", "pubmedbert"] == "lymphoma"
    assert cut.loc["lymphoma", "bert-base-uncased"] == "l ##ym ##ph ##oma"
    assert cut.loc["EGFR", "pubmedbert"] == "egfr"  # uncased
    assert cut.loc["EGFR", "biobert"] == "E ##G ##F ##R"  # cased: BioBERT keeps BERT-cased's vocabulary
    counts = vocab.piece_counts(vocab.DEFAULT_TERMS)
    assert (counts["pubmedbert"] == 1).all()
    assert (counts["bert-base-uncased"] >= 3).all()
    assert counts["minilm-l6"].equals(counts["bert-base-uncased"])  # MiniLM uses BERT's vocab.txt


def test_roberta_is_read_as_byte_level_bpe_with_prefix_space():
    assert vocab.pieces("lymphoma", "roberta-base") == ["Ġlymph", "oma"]


def test_pubmedbert_cuts_ncbi_disease_into_fewer_pieces_than_bert():
    stats = {v: vocab.task_stats("NCBI-disease", v, sample=200) for v in ("pubmedbert", "bert-base-uncased")}
    pub, bert = stats["pubmedbert"], stats["bert-base-uncased"]
    assert pub["words"] == bert["words"] > 3000  # the same words are judged for every vocabulary
    assert 1.0 < pub["subwords_per_word"] < bert["subwords_per_word"] - 0.15
    assert pub["words_split_pct"] < bert["words_split_pct"] / 2
    assert pub["mentions_3plus_pct"] < bert["mentions_3plus_pct"] - 10
    assert pub["unk_words_pct"] < 0.1 and bert["unk_words_pct"] < 0.1
    assert pub["seq_len_mean"] < bert["seq_len_mean"]


def test_mentions_are_counted_from_the_bio_tags():
    rows = vocab.task_sample("NCBI-disease", 200)
    expected = sum(tag == "B" for row in rows for tag in row["tags"])
    assert vocab.task_stats("NCBI-disease", "pubmedbert", sample=200)["mentions"] == expected > 100


def test_sample_is_spread_over_train_and_dev():
    rows = vocab.task_sample("BIOSSES", None)
    assert len(rows) == 64 + 16
    picked = vocab.task_sample("NCBI-disease", 10)
    ids = [r["id"] for r in picked]
    train = tasks.load("NCBI-disease", splits=["train"])["train"]
    assert ids[0] == train[0]["id"] and len(set(ids)) == 10
    assert vocab.task_sample("EBM-PICO", 5)  # dev only: EBM-PICO has no train split here


def test_sequence_lengths_and_truncation_on_bioasq():
    lengths = vocab.sequence_lengths("BioASQ", "pubmedbert", sample=40)
    bert_lengths = vocab.sequence_lengths("BioASQ", "bert-base-uncased", sample=40)
    assert len(lengths) == 40 and lengths.min() > 10
    assert np.mean(lengths) < np.mean(bert_lengths)
    tokenizer = vocab.tokenizer("pubmedbert")
    row = vocab.task_sample("BioASQ", 40)[0]
    assert lengths[0] == len(tokenizer(row["question"], row["context"])["input_ids"])
    table = vocab.vocabulary_table(["BioASQ", "GAD"], ["pubmedbert", "bert-base-uncased"], sample=40)
    assert list(table.columns[:2]) == ["task", "vocabulary"] and len(table) == 4
    bioasq = table.set_index(["task", "vocabulary"]).loc["BioASQ"]
    assert bioasq.loc["pubmedbert", "truncated_pct"] > 10  # long snippets exceed 512 sub-words
    assert bioasq.loc["pubmedbert", "max_length"] == 512
    assert np.isnan(bioasq.loc["pubmedbert", "mentions_3plus_pct"])  # not an NER task


def test_unknown_names_and_bad_sample_say_what_is_valid():
    with pytest.raises(UnknownNameError, match="pubmedbert"):
        vocab.get("pubmedbert-large")
    with pytest.raises(UnknownNameError):
        vocab.vocabulary_table(["NCBI"], ["pubmedbert"], sample=5)
    with pytest.raises(DataError, match="sample must be"):
        vocab.task_sample("GAD", 0)


def test_mixed_up_vocabulary_files_are_refused(tmp_path, monkeypatch):
    shared = vocab.paths.shared_models_dir()
    wrong = tmp_path / "microsoft__BiomedNLP-BiomedBERT-base-uncased-abstract"
    wrong.mkdir()
    shutil.copy(shared / "microsoft__BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext" / "vocab.txt", wrong)
    monkeypatch.setenv("BLURB_MODELS_DIR", str(tmp_path))
    vocab.tokenizer.cache_clear()
    try:
        with pytest.raises(DataError, match="30522 entries, expected 28895"):
            vocab.tokenizer("pubmedbert")
        with pytest.raises(DataError, match="BLURB_MODELS_DIR"):
            vocab.tokenizer("scibert")
    finally:
        vocab.tokenizer.cache_clear()
