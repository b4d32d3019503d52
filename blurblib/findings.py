"""The paper's claims as functions of a runs table: each returns a claims table for a notebook.

Every row is a `stats.Comparison` (effect, 95% CI, p-value, computed verdict), so the closing
"claim vs observed" cell of a notebook is one call, and REPORT.md shows the same table.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import metrics, stats, tasks

# Tinn et al. (2023), quoted where the notebooks test them.
CLAIMS = {
    "size_score": "Larger models (BERT-large, ELECTRA-large) obtain higher scores than base models.",
    "size_stability": "Larger models are less stable: their results vary more across random seeds.",
    "freeze": "Freezing lower layers is helpful for standard BERT-BASE models.",
    "llrd": "Layerwise decay is more effective for BERT-LARGE and ELECTRA models.",
    "reinit": "For low-resource text similarity tasks such as BIOSSES, reinitializing the top layer is the optimal strategy.",
}


def technique_claims(df: pd.DataFrame, baseline: str = "standard") -> pd.DataFrame:
    """Each technique against standard fine-tuning over the same (task, seed), per model.

    The claim attached to a technique is the paper's (which was about BERT-base, -large and
    ELECTRA); the `model` column says on which model this data tests it.
    """
    rows = []
    for model, group in df.groupby("model", sort=True):
        for technique in sorted(set(group["technique"]) - {baseline}):
            family = technique.rstrip("0123456789.").split("+")[0]
            claim = CLAIMS.get(family, f"{technique} beats {baseline}")
            c = stats.paired(group, "technique", technique, baseline, claim=claim)
            rows.append({"model": model, "technique": technique, **c.as_dict()})
    return pd.DataFrame(rows)


def size_claims(df: pd.DataFrame, small: str, large: str) -> pd.DataFrame:
    """Score gain of the larger model (paired over task and seed) and its seed spread per task."""
    rows = [{"task": "all", **stats.paired(df, "model", large, small, claim=CLAIMS["size_score"], on=("task", "seed")).as_dict()}]
    for task, group in df.groupby("task", sort=True):
        a = group.loc[group["model"] == small, "test_score"]
        b = group.loc[group["model"] == large, "test_score"]
        c = stats.spread_ratio(a, b, claim=CLAIMS["size_stability"], effect=f"log(sd {large} / sd {small})")
        rows.append({"task": task, **c.as_dict()})
    return pd.DataFrame(rows)


def size_table(df: pd.DataFrame, small: str, large: str) -> pd.DataFrame:
    """Per task: mean and sd of each model, the score gain and the variance gain of scaling up."""
    summary = stats.summarize(df, by=["task", "model"])
    wide = summary.pivot(index="task", columns="model", values=["mean", "std", "failed_rate"])
    out = pd.DataFrame({
        f"mean {small}": wide["mean"][small], f"mean {large}": wide["mean"][large],
        f"sd {small}": wide["std"][small], f"sd {large}": wide["std"][large],
        f"failed {small}": wide["failed_rate"][small], f"failed {large}": wide["failed_rate"][large],
    })
    out["score gain"] = out[f"mean {large}"] - out[f"mean {small}"]
    out["variance ratio"] = (out[f"sd {large}"] / out[f"sd {small}"]) ** 2
    return out.reset_index()


def reinit_claims(df: pd.DataFrame) -> pd.DataFrame:
    """Per task and model: each n > 0 re-initialised blocks against n = 0, paired over seeds."""
    rows = []
    for (task, model), group in df.groupby(["task", "model"], sort=True):
        for n in sorted(set(group["reinit_layers"]) - {0}):
            claim = CLAIMS["reinit"] if task == "BIOSSES" else f"re-initialising the top {n} block(s) helps {task}"
            c = stats.paired(group, "reinit_layers", n, 0, claim=claim, on=("task", "model", "seed"))
            rows.append({"task": task, "model": model, "reinit_layers": n, **c.as_dict()})
    return pd.DataFrame(rows)


# Gu et al. (2021), Table 6: PubMedBERT (abstracts, uncased) on BLURB.
PUBMEDBERT = {
    "BC5-chem": 93.33, "BC5-disease": 85.62, "NCBI-disease": 87.82, "BC2GM": 84.52, "JNLPBA": 79.10,
    "EBM-PICO": 73.38, "ChemProt": 77.24, "DDI": 82.36, "GAD": 83.96, "BIOSSES": 92.30, "HoC": 82.32,
    "PubMedQA": 55.84, "BioASQ": 87.56,
}


def blurb_table(df: pd.DataFrame) -> tuple[pd.DataFrame, metrics.BlurbScore]:
    """Per task: mean ± sd over seeds beside PubMedBERT's published score, and the BLURB score
    over the task types present (with the missing ones named)."""
    summary = stats.summarize(df, by=["task"])
    summary["type"] = [tasks.get(t).task_type for t in summary["task"]]
    summary["PubMedBERT (Gu et al.)"] = [PUBMEDBERT[t] for t in summary["task"]]
    summary["gap"] = summary["PubMedBERT (Gu et al.)"] - summary["mean"]
    order = {name: i for i, name in enumerate(tasks.names())}
    summary = summary.sort_values("task", key=lambda s: s.map(order)).reset_index(drop=True)
    details = metrics.blurb_score_details(dict(zip(summary["task"], summary["mean"])))
    return summary[["task", "type", "n", "mean", "std", "min", "max", "failed_rate", "PubMedBERT (Gu et al.)", "gap"]], details


def domain_gap_claim(summary: pd.DataFrame, model: str) -> pd.DataFrame:
    """Does PubMedBERT beat this (general-domain, small, CPU-budget) model task by task?"""
    gaps = summary["gap"].to_numpy(dtype=float)
    lo, hi = stats.bootstrap_ci(gaps)
    p = stats.wilcoxon_greater(gaps)
    c = stats.Comparison(
        claim=f"PubMedBERT (domain-specific pretraining, Gu et al.) outperforms {model} on BLURB tasks.",
        effect="PubMedBERT - ours per task (points)", estimate=float(np.mean(gaps)),
        ci_low=lo, ci_high=hi, p_value=p, n=len(gaps),
        verdict=stats.verdict(lo, hi, p, stats.wilcoxon_greater(-gaps), len(gaps)))
    return stats.claims_table([c])


def knob_slice(df: pd.DataFrame, knob: str) -> pd.DataFrame:
    """Runs in which only `knob` departs from plain fine-tuning (its neutral value included),
    for a score-against-knob curve."""
    from .techniques import NEUTRAL

    others = [k for k in NEUTRAL if k != knob]
    keep = np.logical_and.reduce([df[k] == NEUTRAL[k] for k in others])
    return df[keep].sort_values(knob)


def winners(summary: pd.DataFrame, by: tuple[str, ...] = ("task", "model")) -> pd.DataFrame:
    """Which technique has the best mean score per task and model, and by how much over standard."""
    rows = []
    for key, group in summary.groupby(list(by), sort=True):
        best = group.loc[group["mean"].idxmax()]
        standard = group.loc[group["technique"] == "standard", "mean"]
        rows.append({**dict(zip(by, key)), "best technique": best["technique"], "best mean": best["mean"],
                     "standard mean": float(standard.iloc[0]) if len(standard) else float("nan"),
                     "lowest sd": group.loc[group["std"].idxmin(), "technique"] if group["std"].notna().any() else None})
    out = pd.DataFrame(rows)
    out["gain over standard"] = out["best mean"] - out["standard mean"]
    return out
