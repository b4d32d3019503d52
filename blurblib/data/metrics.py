"""BLURB's official scores on the 0-100 scale, and the BLURB score (mean of task-type means).

Definitions, as in Gu et al. 2021 (BLURB) and the reference implementation of LinkBERT
(michiyasunaga/LinkBERT, `src/tokcls/run_ner.py`, `src/seqcls/run_seqcls.py`,
`src/seqcls/utils_hoc.py`), computed with seqeval / scikit-learn / scipy:

* NER (5 sets): entity-level F1, seqeval default (conlleval) mode on the B/I/O tags.
* EBM-PICO: macro average over PAR/INT/OUT of the word-level F1. LinkBERT runs seqeval with
  `--return_macro_metrics` on tags rewritten I-x -> B-x, so every word is its own entity and
  the per-type entity F1 is the per-type word F1; `O` is not a class. Here:
  `f1_score(labels=["I-PAR","I-INT","I-OUT"], average="macro")` over all words.
* ChemProt, DDI, GAD: micro-F1 over the positive classes only (LinkBERT's `PRF1`: a true
  positive is a correct non-negative prediction); the negative class (`false`, `DDI-false`,
  `"0"`) is excluded: `f1_score(labels=positives, average="micro")`.
* BIOSSES: Pearson correlation (0 when either side is constant, as LinkBERT does).
* HoC: micro-F1 over (abstract, hallmark) pairs (`utils_hoc.eval_hoc`); abstracts with no
  label count only through false positives.
* PubMedQA, BioASQ: accuracy.
"""
from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import pearsonr
from seqeval.metrics import f1_score as seqeval_f1
from sklearn.metrics import accuracy_score, f1_score
from sklearn.preprocessing import MultiLabelBinarizer

from ..core.errors import DataError
from . import tasks
from .tasks import TASK_TYPES, TaskSpec

PICO_CLASSES = ("I-PAR", "I-INT", "I-OUT")


def score(task: str | TaskSpec, predictions: Sequence, references: Sequence) -> float:
    """BLURB's official score of `predictions` against `references`, 0-100.

    Both have the form of the task's target column: tag lists per sentence (NER, PICO),
    label strings (RE, QA), floats (BIOSSES), hallmark-name lists per abstract (HoC).
    """
    spec = tasks.get(task)
    predictions, references = list(predictions), list(references)
    if len(predictions) != len(references):
        raise DataError(f"{spec.name}: {len(predictions)} predictions for {len(references)} references; "
                        "predict every example of the split, in order")
    if not references:
        raise DataError(f"{spec.name}: no references to score; the split is empty")
    scorer = _SCORERS[spec.metric]
    return float(scorer(spec, predictions, references))


def _check_labels(spec: TaskSpec, values, what: str) -> None:
    unknown = set(values) - set(spec.labels)
    if unknown:
        raise DataError(f"{spec.name}: unknown label(s) in {what}: {sorted(map(str, unknown))[:5]}; "
                        f"expected one of {', '.join(spec.labels)}")


def _check_sequences(spec: TaskSpec, predictions, references) -> None:
    for i, (pred, ref) in enumerate(zip(predictions, references)):
        if len(pred) != len(ref):
            raise DataError(f"{spec.name}: example {i} has {len(pred)} predicted tags for {len(ref)} "
                            "tokens; predict one tag per word (label the first sub-word only)")
    _check_labels(spec, (t for seq in predictions for t in seq), "predictions")
    _check_labels(spec, (t for seq in references for t in seq), "references")


def _entity_f1(spec, predictions, references) -> float:
    _check_sequences(spec, predictions, references)
    return 100.0 * seqeval_f1([list(r) for r in references], [list(p) for p in predictions])


def _macro_token_f1(spec, predictions, references) -> float:
    _check_sequences(spec, predictions, references)
    y_true = [t for seq in references for t in seq]
    y_pred = [t for seq in predictions for t in seq]
    return 100.0 * f1_score(y_true, y_pred, labels=list(PICO_CLASSES), average="macro", zero_division=0)


def _micro_f1_positive(spec, predictions, references) -> float:
    _check_labels(spec, predictions, "predictions")
    _check_labels(spec, references, "references")
    return 100.0 * f1_score(references, predictions, labels=list(spec.positive_labels),
                            average="micro", zero_division=0)


def _pearson(spec, predictions, references) -> float:
    try:
        pred = np.asarray(predictions, dtype=float).reshape(-1)
        ref = np.asarray(references, dtype=float).reshape(-1)
    except (TypeError, ValueError) as err:
        raise DataError(f"{spec.name}: scores must be numbers ({err})") from None
    if len(pred) != len(ref):
        raise DataError(f"{spec.name}: give one number per pair ({len(pred)} vs {len(ref)})")
    if not (np.isfinite(pred).all() and np.isfinite(ref).all()):
        raise DataError(f"{spec.name}: scores contain NaN or inf; check the model's outputs")
    if len(ref) < 2 or np.ptp(pred) == 0 or np.ptp(ref) == 0:
        return 0.0  # Pearson is undefined for a constant; LinkBERT reports 0
    return 100.0 * float(pearsonr(ref, pred).statistic)


def _micro_f1_pairs(spec, predictions, references) -> float:
    for what, rows in (("predictions", predictions), ("references", references)):
        if any(isinstance(row, str) for row in rows):
            raise DataError(f"{spec.name}: {what} must be lists of hallmark names per abstract, not strings")
        _check_labels(spec, (label for row in rows for label in row), what)
    binarizer = MultiLabelBinarizer(classes=list(spec.labels))
    y_true = binarizer.fit_transform(references)
    y_pred = binarizer.transform(predictions)
    return 100.0 * f1_score(y_true, y_pred, average="micro", zero_division=0)


def _accuracy(spec, predictions, references) -> float:
    _check_labels(spec, predictions, "predictions")
    _check_labels(spec, references, "references")
    return 100.0 * accuracy_score(references, predictions)


_SCORERS = {
    "entity_f1": _entity_f1,
    "macro_token_f1": _macro_token_f1,
    "micro_f1_positive": _micro_f1_positive,
    "pearson": _pearson,
    "micro_f1_pairs": _micro_f1_pairs,
    "accuracy": _accuracy,
}


# --- the trivial baseline: what a run that learned nothing scores -----------------------

def trivial_prediction(task: str | TaskSpec, references: Sequence):
    """The best constant prediction on `references`, in the target's form: what a model that
    learned nothing about its input can score at most, and so the bar of a failed run.

    All-O tags for NER/PICO (the paper's convention; tagging every token as an entity is not a
    model that learned nothing), any constant for BIOSSES (Pearson is 0 for all), the label
    that scores best for relation and QA tasks (GAD: "1" everywhere, F1 about 69.5 on test,
    while the majority of a split can be "0" with F1 0), and for HoC the set of the k most
    frequent hallmarks with the best micro F1 (often none).
    """
    spec = tasks.get(task)
    references = list(references)
    if spec.task_type in ("ner", "pico"):
        return [["O"] * len(ref) for ref in references]
    if spec.task_type == "similarity":
        return [float(np.mean(references))] * len(references) if references else []
    if spec.task_type == "doc_classification":
        counts = Counter(label for labels in references for label in labels)
        ranked = sorted(spec.labels, key=lambda label: -counts[label])
        candidates = [[list(ranked[:k])] * len(references) for k in range(len(ranked) + 1)]
    else:
        candidates = [[label] * len(references) for label in spec.labels]
    return max(candidates, key=lambda constant: score(spec, constant, references))


def trivial_score(task: str | TaskSpec, references: Sequence) -> float:
    """Score of the best constant prediction on `references`; a run at or below it has failed."""
    return score(task, trivial_prediction(task, references), references)


# --- the BLURB score ---------------------------------------------------------------------

@dataclass(frozen=True)
class BlurbScore:
    """The BLURB score with its parts: the mean of each task type, and what was missing."""

    score: float
    type_means: dict[str, float]
    missing_tasks: tuple[str, ...]
    missing_types: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.missing_tasks


def blurb_score_details(per_task: Mapping[str, float]) -> BlurbScore:
    """Mean over task types of the mean within each type, over the tasks given."""
    by_type: dict[str, list[float]] = {t: [] for t in TASK_TYPES}
    seen = set()
    for name, value in per_task.items():
        spec = tasks.get(name)
        if spec.name in seen:
            raise DataError(f"BLURB score: task {spec.name} given twice (as {name!r})")
        seen.add(spec.name)
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise DataError(f"BLURB score: {spec.name} score {value!r} is not a number") from None
        if not math.isfinite(value):
            raise DataError(f"BLURB score: {spec.name} score is {value}; drop failed runs first")
        by_type[spec.task_type].append(value)
    type_means = {t: float(np.mean(v)) for t, v in by_type.items() if v}
    missing_tasks = tuple(n for n in tasks.names() if n not in seen)
    missing_types = tuple(t for t in TASK_TYPES if t not in type_means)
    overall = float(np.mean(list(type_means.values()))) if type_means else float("nan")
    return BlurbScore(overall, type_means, missing_tasks, missing_types)


def blurb_score(per_task: Mapping[str, float], partial: bool = False) -> float:
    """The BLURB score of `{task name: score}`; all 13 tasks unless `partial=True`.

    With `partial=True` the types present are averaged and a warning names what is missing.
    """
    details = blurb_score_details(per_task)
    if details.missing_tasks:
        message = (f"BLURB score over {len(details.type_means)} of {len(TASK_TYPES)} task types; "
                   f"missing tasks: {', '.join(details.missing_tasks)}")
        if not partial:
            raise DataError(f"{message}. Score every task, or pass partial=True for a partial score")
        if not details.type_means:
            raise DataError("BLURB score: no task scores given")
        warnings.warn(message, stacklevel=2)
    return details.score
