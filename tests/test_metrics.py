"""BLURB's metrics on hand-computed cases, the BLURB score fixture, and the trivial baseline."""
import math

import pytest

from blurblib.core.errors import DataError, UnknownNameError
from blurblib.data import metrics, tasks

H = tasks.HOC_HALLMARKS

# The BLURB leaderboard's PubMedBERT (uncased, abstracts) row, with its GAD 83.96: BLURB score 81.16.
# (Gu et al.'s paper prints GAD 82.34: `findings.PUBMEDBERT` follows the paper.)
PUBMEDBERT = {"BC5-chem": 93.33, "BC5-disease": 85.62, "NCBI-disease": 87.82, "BC2GM": 84.52,
              "JNLPBA": 79.10, "EBM-PICO": 73.38, "ChemProt": 77.24, "DDI": 82.36, "GAD": 83.96,
              "BIOSSES": 92.30, "HoC": 82.32, "PubMedQA": 55.84, "BioASQ": 87.56}


# --- per-task scores -------------------------------------------------------------------------

def test_ner_entity_f1_by_hand():
    refs = [["B", "I", "O", "B"], ["O", "B"]]        # 3 gold entities
    preds = [["B", "I", "O", "O"], ["O", "B"]]       # 2 predicted, both exact
    assert metrics.score("NCBI-disease", preds, refs) == pytest.approx(80.0)  # P=1, R=2/3
    # a boundary error is a miss AND a false positive: P=1/2, R=1/3 -> F1 = 0.4
    assert metrics.score("NCBI-disease", [["B", "O", "O", "O"], ["O", "B"]], refs) == pytest.approx(40.0)


def test_ner_uses_seqeval_default_mode_where_i_after_o_starts_an_entity():
    assert metrics.score("BC2GM", [["O", "B"]], [["O", "I"]]) == pytest.approx(100.0)
    # B B is two entities, B I one
    assert metrics.score("BC2GM", [["B", "I"]], [["B", "B"]]) == pytest.approx(0.0)


def test_pico_macro_word_f1_over_par_int_out_by_hand():
    refs = [["I-PAR", "I-PAR", "O"], ["I-INT", "I-OUT", "O"]]
    preds = [["I-PAR", "O", "O"], ["I-INT", "I-INT", "I-OUT"]]
    # PAR: P=1 R=1/2 F=2/3; INT: P=1/2 R=1 F=2/3; OUT: P=0 R=0 F=0; O is not a class
    assert metrics.score("EBM-PICO", preds, refs) == pytest.approx(100 * 4 / 9)
    # all-O predictions score 0 although 1/3 of the words are O
    assert metrics.score("EBM-PICO", [["O"] * 3, ["O"] * 3], refs) == 0.0


def test_relation_micro_f1_excludes_the_negative_class():
    refs = ["false", "false", "false", "CPR:3"]
    # all-negative: 75 % accuracy, but no positive found -> 0
    assert metrics.score("ChemProt", ["false"] * 4, refs) == 0.0
    # one right positive, one false positive: P=1/2, R=1 -> 2/3 (accuracy would be 75)
    preds = ["false", "false", "CPR:4", "CPR:3"]
    assert metrics.score("ChemProt", preds, refs) == pytest.approx(100 * 2 / 3)
    # a wrong positive class counts as FP and FN: P=0/1, R=0/1
    assert metrics.score("ChemProt", ["false", "false", "false", "CPR:4"], refs) == 0.0


def test_ddi_and_gad_negatives():
    refs = ["DDI-false", "DDI-effect", "DDI-int", "DDI-false"]
    preds = ["DDI-effect", "DDI-effect", "DDI-false", "DDI-false"]
    assert metrics.score("DDI", preds, refs) == pytest.approx(50.0)  # TP1, FP1, FN1
    # GAD: "1" is the only positive class; "0" is excluded
    assert metrics.score("GAD", ["1", "1", "0", "0"], ["1", "0", "1", "0"]) == pytest.approx(50.0)
    assert metrics.score("GAD", ["0", "0"], ["0", "0"]) == 0.0  # no positive anywhere: F1 0, as LinkBERT


def test_biosses_pearson_by_hand():
    # dx=[-1.5,-.5,.5,1.5], dy=[-1.75,-.75,.25,2.25]: r = 6.5 / sqrt(5 * 8.75)
    assert metrics.score("BIOSSES", [0, 1, 2, 4], [0.0, 1.0, 2.0, 3.0]) == pytest.approx(100 * 6.5 / math.sqrt(43.75))
    assert metrics.score("BIOSSES", [2.0, 2.0, 2.0], [0.0, 1.0, 2.0]) == 0.0  # constant: undefined -> 0
    with pytest.raises(DataError, match="NaN"):
        metrics.score("BIOSSES", [1.0, float("nan")], [0.0, 1.0])
    with pytest.raises(DataError, match="numbers"):
        metrics.score("BIOSSES", ["high", "low"], [0.0, 1.0])


def test_hoc_micro_f1_over_abstract_label_pairs():
    refs = [[H[0], H[1]], [], [H[2]]]
    preds = [[H[0]], [H[3]], [H[2]]]
    # pairs: TP = 2 (H0 in abstract 0, H2 in 2); predicted 3; gold 3 -> P = R = F = 2/3.
    # The label-less abstract counts only through its false positive.
    assert metrics.score("HoC", preds, refs) == pytest.approx(100 * 2 / 3)
    assert metrics.score("HoC", [[H[0]], [], [H[2]]], refs) == pytest.approx(100 * 2 * 2 / (2 + 3))
    assert metrics.score("HoC", [[], []], [[], []]) == 0.0
    with pytest.raises(DataError, match="lists of hallmark names"):
        metrics.score("HoC", [H[0]], [[H[0]]])
    with pytest.raises(DataError, match="unknown label"):
        metrics.score("HoC", [["cancer"]], [[H[0]]])


def test_qa_accuracy():
    assert metrics.score("PubMedQA", ["yes", "no", "maybe", "yes"], ["yes", "no", "no", "no"]) == pytest.approx(50.0)
    assert metrics.score("BioASQ", ["yes", "yes", "no"], ["yes", "no", "no"]) == pytest.approx(100 * 2 / 3)


@pytest.mark.parametrize("task, preds, refs", [
    ("NCBI-disease", [["O"]], [["O"], ["B"]]),
    ("EBM-PICO", [["O"]] * 3, [["O"]] * 2),
    ("ChemProt", ["false"], ["false", "CPR:3"]),
    ("BIOSSES", [1.0, 2.0, 3.0], [1.0, 2.0]),
    ("HoC", [[]], [[], []]),
    ("PubMedQA", ["yes", "no"], ["yes"]),
])
def test_predictions_and_references_of_different_length(task, preds, refs):
    with pytest.raises(DataError, match=r"predictions for \d+ references"):
        metrics.score(task, preds, refs)


def test_tag_sequence_of_wrong_length():
    with pytest.raises(DataError, match="example 1 has 1 predicted tags for 2 tokens"):
        metrics.score("JNLPBA", [["O"], ["O"]], [["O"], ["B", "I"]])


def test_unknown_labels_are_refused_not_silently_counted():
    with pytest.raises(DataError, match=r"unknown label\(s\) in predictions: \['CPR:7'\]"):
        metrics.score("ChemProt", ["CPR:7"], ["false"])
    with pytest.raises(DataError, match="unknown label"):
        metrics.score("GAD", [1, 0], ["1", "0"])  # GAD labels are the strings "0"/"1"
    with pytest.raises(DataError, match="unknown label"):
        metrics.score("NCBI-disease", [["B-Disease"]], [["B"]])
    with pytest.raises(UnknownNameError):
        metrics.score("ChemProtein", ["false"], ["false"])
    with pytest.raises(DataError, match="empty"):
        metrics.score("GAD", [], [])


def test_gold_scores_100_on_every_dev_split():
    for name in tasks.names():
        split = "dev"
        ref = tasks.load(name, splits=[split])[split][tasks.get(name).target]
        assert metrics.score(name, ref, ref) == pytest.approx(100.0), name


# --- BLURB score ------------------------------------------------------------------------------

def test_blurb_score_of_pubmedbert_is_81_16():
    assert round(metrics.blurb_score(PUBMEDBERT), 2) == 81.16
    details = metrics.blurb_score_details(PUBMEDBERT)
    assert details.type_means["ner"] == pytest.approx((93.33 + 85.62 + 87.82 + 84.52 + 79.10) / 5)
    assert details.type_means["relation"] == pytest.approx((77.24 + 82.36 + 83.96) / 3)
    assert details.complete and details.missing_tasks == ()
    # the plain mean over 13 tasks is NOT the BLURB score
    assert round(sum(PUBMEDBERT.values()) / 13, 2) != 81.16


def test_blurb_score_accepts_folder_aliases():
    aliased = {("BC5CDR-chem" if k == "BC5-chem" else k): v for k, v in PUBMEDBERT.items()}
    assert metrics.blurb_score(aliased) == pytest.approx(metrics.blurb_score(PUBMEDBERT))
    with pytest.raises(DataError, match="given twice"):
        metrics.blurb_score({**PUBMEDBERT, "BC5CDR-chem": 90.0})


def test_blurb_score_with_missing_tasks():
    part = {k: v for k, v in PUBMEDBERT.items() if k not in ("EBM-PICO", "BIOSSES", "GAD")}
    with pytest.raises(DataError, match="missing tasks: EBM-PICO, GAD, BIOSSES.*partial=True"):
        metrics.blurb_score(part)
    with pytest.warns(UserWarning, match="4 of 6 task types; missing tasks: EBM-PICO, GAD, BIOSSES"):
        value = metrics.blurb_score(part, partial=True)
    ner = (93.33 + 85.62 + 87.82 + 84.52 + 79.10) / 5
    assert value == pytest.approx((ner + (77.24 + 82.36) / 2 + 82.32 + (55.84 + 87.56) / 2) / 4)
    details = metrics.blurb_score_details(part)
    assert details.missing_types == ("pico", "similarity")
    with pytest.raises(DataError, match="no task scores"):
        metrics.blurb_score({}, partial=True)


def test_blurb_score_refuses_nan():
    with pytest.raises(DataError, match="HoC score is nan"):
        metrics.blurb_score({**PUBMEDBERT, "HoC": float("nan")})


# --- trivial baseline ---------------------------------------------------------------------------

def test_trivial_scores_by_hand():
    assert metrics.trivial_score("NCBI-disease", [["B", "I", "O"], ["O"]]) == 0.0
    assert metrics.trivial_score("EBM-PICO", [["I-PAR", "O"]]) == 0.0
    assert metrics.trivial_score("BIOSSES", [0.0, 2.0, 4.0]) == 0.0
    # the best constant on the split itself, whichever label it is
    assert metrics.trivial_score("BioASQ", ["yes", "no", "no"]) == pytest.approx(200 / 3)
    assert metrics.trivial_prediction("BioASQ", ["yes", "no", "no"]) == ["no", "no", "no"]
    # ChemProt scores the positive classes only: "CPR:3" everywhere finds the one CPR:3 (P 1/3, R 1)
    assert metrics.trivial_score("ChemProt", ["false", "false", "CPR:3"]) == pytest.approx(100 * 2 * (1 / 3) / (1 + 1 / 3))
    # HoC: predicting the one hallmark of the first abstract everywhere: TP 1, FP 1, FN 0
    assert metrics.trivial_score("HoC", [[H[0]], []]) == pytest.approx(100 * 2 / 3)
    # HoC: with a hallmark in 1 of 4 abstracts, predicting nothing (F1 0) loses to predicting it
    assert metrics.trivial_prediction("HoC", [[H[1]], [], [], []]) == [[H[1]]] * 4


def test_gad_best_constant_is_always_one():
    # F1 of the positive class: "0" everywhere scores 0, "1" everywhere F1 = 2P/(P+1)
    assert metrics.trivial_prediction("GAD", ["0", "0", "1"]) == ["1", "1", "1"]
    assert metrics.trivial_score("GAD", ["0", "0", "1"]) == pytest.approx(100 * 2 * (1 / 3) / (1 + 1 / 3))


def test_trivial_scores_on_real_test_sets():
    gad = tasks.load("GAD")
    # "1" everywhere: P = 281/534, R = 1
    assert metrics.trivial_score("GAD", gad["test"]["label"]) == pytest.approx(100 * 2 * 281 / (534 + 281))
    qa = tasks.load("PubMedQA")
    assert metrics.trivial_score("PubMedQA", qa["test"]["label"]) == pytest.approx(55.2)
    ddi = tasks.load("DDI", splits=["test"])["test"]["label"]
    # DDI: the best single positive class everywhere beats "no interaction" (F1 0), but barely
    assert 0.0 < metrics.trivial_score("DDI", ddi) < 15.0
