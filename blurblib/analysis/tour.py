"""Numbers for the BLURB tour (notebook 00): what each dataset holds and how long its texts are."""
from __future__ import annotations

from collections import Counter

import pandas as pd

from ..data import metrics, tasks
from .findings import PUBMEDBERT


def overview() -> pd.DataFrame:
    """One row per dataset: type, metric, label count, and the splits present here."""
    rows = []
    for spec in tasks.TASKS.values():
        rows.append({"task": spec.name, "type": spec.task_type, "metric": spec.metric,
                     "labels": len(spec.labels) or "score 0-4", "max_length": spec.max_length,
                     "low_resource": spec.low_resource, "splits here": ", ".join(tasks.present_splits(spec.name))})
    return pd.DataFrame(rows)


def _targets(spec, split) -> list[str]:
    """What a label distribution counts: tags of tokens, labels of examples, hallmarks of abstracts."""
    values = split[spec.target]
    if spec.task_type in ("ner", "pico"):
        return [tag for tags in values for tag in tags]
    if spec.task_type == "doc_classification":
        return [label for labels in values for label in labels] + ["(none)"] * sum(1 for v in values if not v)
    if spec.task_type == "similarity":
        return [f"{int(v)}-{int(v) + 1}" if v < 4 else "3-4" for v in values]
    return list(values)


def label_distribution(names=None) -> pd.DataFrame:
    """Share of each label per task and split (tokens for NER/PICO, abstracts' hallmarks for HoC)."""
    rows = []
    for name in names or tasks.names():
        spec = tasks.get(name)
        data = tasks.load(name, splits=tasks.present_splits(name))
        for split_name, split in data.items():
            counts = Counter(_targets(spec, split))
            total = sum(counts.values())
            rows += [{"task": name, "split": split_name, "label": label, "count": n, "share": n / total}
                     for label, n in sorted(counts.items())]
    return pd.DataFrame(rows)


def text_lengths(tokenizer, names=None, sample: int = 2000) -> pd.DataFrame:
    """Sub-word length of the first `sample` training (or dev) inputs of each task, as the
    model sees them (pairs joined), against the task's BLURB max length."""
    rows = []
    for name in names or tasks.names():
        spec = tasks.get(name)
        split_name = "train" if "train" in tasks.present_splits(name) else "dev"
        split = tasks.load(name, splits=[split_name])[split_name]
        split = split.select(range(min(sample, len(split))))
        columns = [list(split[f]) for f in spec.text_fields]
        if spec.text_fields == ("tokens",):
            encoded = tokenizer(columns[0], is_split_into_words=True)
        else:
            encoded = tokenizer(*columns)
        for ids in encoded["input_ids"]:
            rows.append({"task": name, "type": spec.task_type, "length": len(ids), "max_length": spec.max_length})
    frame = pd.DataFrame(rows)
    frame["truncated"] = frame["length"] > frame["max_length"]
    return frame


def macro_vs_micro() -> pd.DataFrame:
    """Why BLURB averages over task types: PubMedBERT's row averaged both ways."""
    details = metrics.blurb_score_details(PUBMEDBERT)
    flat = sum(PUBMEDBERT.values()) / len(PUBMEDBERT)
    rows = [{"average": f"mean of {t} ({len(tasks.by_type(t))} tasks)", "score": m} for t, m in details.type_means.items()]
    rows += [{"average": "BLURB score: mean over the 6 task types", "score": details.score},
             {"average": "plain mean over the 13 tasks (NER would weigh 5/13)", "score": flat}]
    return pd.DataFrame(rows)
