"""The pretraining corpora: real files, right counts, and never a dev/test sentence."""
import csv
import io
import zipfile

import pytest

from blurblib.core.errors import DataError, UnknownNameError
from blurblib.data import corpora, tasks


def _joined(row, spec):
    return [" ".join(row[f]) if isinstance(row[f], list) else row[f] for f in spec.text_fields]


def test_pubmed_abstracts_match_the_readme_counts():
    rows = corpora.pubmed_rows()
    assert len(rows) == 9991
    topics = {}
    for _, topic in rows:
        topics[topic] = topics.get(topic, 0) + 1
    assert topics == {"dental_caries": 2000, "dental_pulp": 2000, "periodontal_disease": 2000,
                      "endodontic_treatment": 2000, "transposable_elements": 1991}
    assert rows[0][0].startswith("The X-linked telomeric P elements (TPs) TP5 and TP6")


def test_heldout_split_is_every_20th_document_and_disjoint():
    train, heldout = corpora.pubmed_abstracts("train"), corpora.pubmed_abstracts("heldout")
    distinct = len({text for text, _ in corpora.pubmed_rows()})
    assert distinct == 9922  # 69 abstracts are listed under two topics
    assert len(heldout) == distinct // 20 and len(train) + len(heldout) == distinct
    assert not set(train) & set(heldout)
    assert heldout[0] == corpora.pubmed_rows()[19][0]


def test_brown_tags_are_stripped_and_token_count_matches_readme():
    train, heldout = corpora.brown_sentences("train"), corpora.brown_sentences("heldout")
    assert len(corpora.brown_files()) == 500  # cats.txt, CONTENTS, README skipped
    assert corpora.count_words(train) + corpora.count_words(heldout) == 1_161_192
    assert train[0] == ("The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary "
                        'election produced " no evidence " that any irregularities took place .')
    assert not any("/at " in s or s.endswith("/.") for s in train[:2000])


def test_blurb_train_text_has_train_sentences_and_no_dev_or_test_text():
    names = ["NCBI-disease", "BIOSSES", "GAD", "EBM-PICO"]
    texts = corpora.blurb_train_text(names)
    present = set(texts)
    ncbi = tasks.load("NCBI-disease")
    assert " ".join(ncbi["train"][0]["tokens"]) in present
    for name in names:
        spec = tasks.get(name)
        for split in ("dev", "test"):
            if split not in tasks.present_splits(name):
                continue
            for row in tasks.load(name, splits=[split])[split]:
                for text in _joined(row, spec):
                    assert text not in present, f"{name} {split} text leaked into the pretraining corpus: {text}"
    # EBM-PICO has no train split: none of its (dev) text may appear
    assert corpora.blurb_train_text(["EBM-PICO"]) == []


def test_train_texts_duplicated_in_dev_or_test_are_dropped():
    spec = tasks.get("GAD")
    raw = {t for row in tasks.load("GAD", splits=["train"])["train"] for t in _joined(row, spec)}
    kept = corpora.blurb_train_text(["GAD"])
    assert 0 < len(raw) - len(kept) < 0.05 * len(raw)  # GAD repeats a few sentences across splits
    banned = corpora.dev_test_fingerprints()
    assert all(banned.isdisjoint(corpora.sentence_fingerprints(t)) for t in kept)


def test_fingerprints_match_tokenised_and_raw_forms_of_a_sentence():
    tokenised = "We now show that BRCA1 encodes a 190 - kD protein with sequence homology ."
    raw = "We now show that BRCA1 encodes a 190-kD protein, with sequence homology."
    assert corpora.sentence_fingerprints(tokenised) == corpora.sentence_fingerprints(raw)
    # a short sentence inside a longer text is too generic to call a leak; a whole short text is compared
    key = "wenowshowthatbrca1encodesa190kdproteinwithsequencehomology"
    assert corpora.sentence_fingerprints(raw) == {key}
    assert corpora.sentence_fingerprints("Results. " + raw) == {key, "results" + key}
    assert corpora.sentence_fingerprints("3 .") == {"3"}


def test_domain_corpus_is_capped_seeded_and_mixes_blurb_with_pubmed():
    a = corpora.domain_corpus(max_words=20_000, seed=0)
    assert 20_000 <= corpora.count_words(a) < 20_000 + 5_000
    assert a == corpora.domain_corpus(max_words=20_000, seed=0)
    assert a != corpora.domain_corpus(max_words=20_000, seed=1)
    abstracts = set(corpora.pubmed_abstracts("train"))
    from_pubmed = sum(t in abstracts for t in a)
    assert 0 < from_pubmed < len(a)
    assert not set(a) & set(corpora.pubmed_abstracts("heldout"))


def test_general_corpus_and_heldout_are_brown_text():
    general = corpora.corpus("general", max_words=5000)
    assert set(general) <= set(corpora.brown_sentences("train"))
    held = corpora.heldout_corpus("general", max_words=2000)
    assert set(held) <= set(corpora.brown_sentences("heldout"))


def test_unknown_names_raise_with_the_valid_choices():
    with pytest.raises(UnknownNameError, match="pubmed"):
        corpora.corpus("wikipedia")
    with pytest.raises(UnknownNameError, match="general"):
        corpora.heldout_corpus("wikipedia")
    with pytest.raises(DataError, match="heldout"):
        corpora.pubmed_abstracts("dev")
    with pytest.raises(DataError, match="max_words"):
        corpora.general_corpus(max_words=0)


def test_missing_corpus_folder_names_the_file_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("BLURB_CORPORA_DIR", str(tmp_path))
    corpora.pubmed_rows.cache_clear()
    corpora.brown_files.cache_clear()
    try:
        with pytest.raises(DataError, match="all_combined_abstracts.zip.*BLURB_CORPORA_DIR"):
            corpora.pubmed_abstracts()
        with pytest.raises(DataError, match="brown.zip"):
            corpora.brown_sentences()
    finally:
        corpora.pubmed_rows.cache_clear()
        corpora.brown_files.cache_clear()


def test_malformed_pubmed_row_names_file_and_line(tmp_path, monkeypatch):
    folder = tmp_path / corpora.PUBMED_ZIP.parent
    folder.mkdir(parents=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["A fine abstract.", "dental_caries"])
    writer.writerow(["an abstract without its topic column"])
    with zipfile.ZipFile(tmp_path / corpora.PUBMED_ZIP, "w") as archive:
        archive.writestr("all_combined_abstracts.csv", buffer.getvalue())
    monkeypatch.setenv("BLURB_CORPORA_DIR", str(tmp_path))
    corpora.pubmed_rows.cache_clear()
    try:
        with pytest.raises(DataError, match=r"all_combined_abstracts.csv:2: expected 2 columns"):
            corpora.pubmed_rows()
    finally:
        corpora.pubmed_rows.cache_clear()
