"""The paper's claims as functions of a runs table: each returns a claims table for a notebook.

Every row is a `stats.Comparison` (effect, 95% CI, p-value, computed verdict), so the closing
"claim vs observed" cell of a notebook is one call, and REPORT.md shows the same table.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..core.errors import ConfigError
from ..data import metrics, tasks
from ..runs.reference import ReferenceConfig
from ..training import techniques
from ..training.config import control_label
from ..training.train import load_splits
from . import power, stats

# Tinn et al. (2023), quoted where the notebooks test them.
CLAIMS = {
    "size_score": "Larger models (BERT-large, ELECTRA-large) obtain higher scores than base models.",
    "size_stability": "Larger models are less stable: their results vary more across random seeds.",
    "freeze": "Freezing lower layers is helpful for standard BERT-BASE models.",
    "llrd": "Layerwise decay is more effective for BERT-LARGE and ELECTRA models.",
    "reinit": "For low-resource text similarity tasks such as BIOSSES, reinitializing the top layer is the optimal strategy.",
}


def technique_claims(df: pd.DataFrame, baseline: str = "standard") -> pd.DataFrame:
    """Each technique against standard fine-tuning, per task and model, over the same seeds:
    whether it *helps* (mean score) and whether it *stabilises* (failure rate at the end of
    training, seed sd), each in the task's own metric; Holm-adjusted over the table. A technique
    that trains extra epochs (LP-FT) is also tested against its compute-matched control where
    the table has it (`standard +3 epochs`, `grids.with_controls`): beating standard alone
    could be just more training.

    The claim attached to a technique is the paper's (which was about BERT-base, -large and
    ELECTRA); the `model` column says on which model this data tests it.
    """
    rows = []
    for (task, model), group in df.groupby(["task", "model"], sort=True):
        present = set(group["technique"])
        for technique in sorted(present - {baseline}):
            run = group[group["technique"] == technique].iloc[0]
            family = techniques.family(run)
            control = control_label(run) if family != "standard" else None
            for against in (baseline, *([control] if control in present else [])):
                claim = CLAIMS.get(family, f"{technique} beats {baseline}") if against == baseline else \
                    f"{technique} beats {against}: more than the extra training"
                rows += [{"task": task, "model": model, "technique": technique, "against": against, **row}
                         for row in arm_claims(group, "technique", technique, against, claim)]
    return finish_claims(rows)


def arm_claims(df: pd.DataFrame, column: str, arm, baseline, claim: str, on=("task", "model", "seed"),
               names: tuple[str, str] | None = None) -> list[dict]:
    """Three rows for "`arm` beats `baseline`" over the same seeds: *helps* (mean paired
    difference, Wilcoxon), *stabilises: failure rate* (end of training, exact McNemar) and
    *stabilises: seed sd* (Brown-Forsythe). Only fair pairs (same precision and kind of
    machine) enter any of them. `names`: how the claims name the two arms (default: their values)."""
    a_name, b_name = names or (arm, baseline)
    pairs = fair_pairs(df, column, arm, baseline, on)
    dropped = pairs.attrs["dropped"]
    helps = stats.paired(df, column, arm, baseline, claim=claim, on=on)
    helps = _with_test_sampling(helps, df, column, arm, baseline, on)
    failure = stats.failure_rate_change(pairs["failed_b"], pairs["failed_a"], claim=f"{a_name} fails less often than {b_name}",
                                        effect=f"failure rate {b_name} - {a_name} (share of seeds, end of training)")
    spread = stats.spread_ratio(pairs["score_a"], pairs["score_b"], claim=f"{a_name} varies less across seeds than {b_name}",
                                effect=f"log(sd {b_name} / sd {a_name})")
    return [{"kind": "helps (mean)", **helps.as_dict()},
            {"kind": "stabilises (failure rate)", **dataclasses.replace(failure, dropped=dropped).as_dict()},
            {"kind": "stabilises (seed sd)", **dataclasses.replace(spread, dropped=dropped).as_dict()}]


def fair_pairs(df: pd.DataFrame, column: str, a, b, on=("task", "model", "seed"), score: str = "test_score") -> pd.DataFrame:
    """The runs of arms `a` and `b` matched on `on`, keeping only pairs trained at the same
    precision on the same kind of machine: columns score_a/score_b (best dev checkpoint) and
    failed_a/failed_b (judged at the end of training); `attrs["dropped"]` counts the unfair pairs."""
    data = df.assign(_failed=stats.failed(df), _score=pd.to_numeric(df[score], errors="coerce"))
    both, dropped = stats.match_fair(data, column, a, b, on, ["_score", "_failed"])
    out = both.rename(columns={"_score_a": "score_a", "_score_b": "score_b", "_failed_a": "failed_a",
                               "_failed_b": "failed_b"})[["score_a", "score_b", "failed_a", "failed_b"]]
    out.attrs["dropped"] = dropped
    return out


def _with_test_sampling(c: stats.Comparison, df: pd.DataFrame, column: str, arm, baseline, on) -> stats.Comparison:
    """On a small test set (BIOSSES: 20 pairs) the CI of a paired difference must include the
    sampling of the test examples, not only of the seeds: where the runs kept their test
    predictions, the CI is the two-level bootstrap's (`stats.two_level_bootstrap_ci`)."""
    if c.n < 2 or "test_predictions" not in df or df["task"].nunique() != 1:
        return c
    pairs = pd.merge(df[df[column] == arm].set_index(list(on))["test_predictions"],
                     df[df[column] == baseline].set_index(list(on))["test_predictions"],
                     left_index=True, right_index=True, suffixes=("_a", "_b")).dropna()
    if len(pairs) < 2 or not all(isinstance(p, list) for p in pairs.to_numpy().ravel()):
        return c
    task = df["task"].iloc[0]
    limit = df["eval_limit"].iloc[0] if "eval_limit" in df else None
    labels = _test_labels(task, None if pd.isna(limit) else int(limit))
    runs = {"a": list(pairs["test_predictions_a"]), "b": list(pairs["test_predictions_b"])}
    if any(len(p) != len(labels) for arm_runs in runs.values() for p in arm_runs):
        return c

    def score_on(run: int, side: str, examples) -> float:
        return metrics.score(task, [runs[side][run][i] for i in examples], [labels[i] for i in examples])

    low, high = stats.two_level_bootstrap_ci(np.zeros(len(pairs)), np.zeros(len(pairs)), score_on=score_on,
                                             n_examples=len(labels), n_boot=1000)
    return stats.decided(c.claim, c.effect, c.estimate, low, high, c.p_value, c.p_opposite, c.n,
                         test=f"{c.test}; CI over seeds and test examples", dropped=c.dropped)


def _test_labels(task: str, eval_limit: int | None) -> list:

    return list(load_splits(task, 1, eval_limit)["test"][tasks.get(task).target])


def finish_claims(rows: list[dict]) -> pd.DataFrame:
    """A notebook's claims table: Holm over its rows, and beside each the power note of its
    kind of test for its n at Holm's first-step level."""
    table = stats.with_holm(pd.DataFrame(rows))
    if table.empty:
        return table
    m = int(table["p_value"].notna().sum())
    kinds = {"helps": "paired", "stabilises (failure rate)": "failure", "stabilises (seed sd)": "spread",
             "seed sd": "spread", "paired": "paired"}
    table["power"] = [power.note(next((v for k, v in kinds.items() if str(kind).startswith(k)), "paired"), int(n), m)
                      for kind, n in zip(table.get("kind", ["paired"] * len(table)), table["n"])]
    return table


def size_claims(df: pd.DataFrame, small: str, large: str, references: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per task, over the same seeds: does the larger model score higher (raw gap, and with
    `references` its gain over its own frozen encoder against the smaller's: a larger encoder
    that starts higher has not thereby fine-tuned better), and is it less stable (seed sd,
    failure rate at the end of training)? Holm-adjusted over the table."""
    rows = []
    for task, group in df.groupby("task", sort=True):
        pairs = fair_pairs(group, "model", large, small, on=("task", "seed"))
        dropped = pairs.attrs["dropped"]
        gap = stats.paired(group, "model", large, small, claim=CLAIMS["size_score"], on=("task", "seed"))
        rows.append({"task": task, "kind": "helps (mean)", **_with_test_sampling(gap, group, "model", large, small,
                                                                                  ("task", "seed")).as_dict()})
        if references is not None:
            ref = with_reference(group, references).groupby("model")["reference"].first()
            if {small, large} <= set(ref.index) and ref.notna().all():
                shift = float(ref[large] - ref[small])
                diff = (pairs["score_a"] - pairs["score_b"] - shift).dropna().to_numpy()
                c = stats.compare(diff, "The larger model gains more over its own frozen encoder than the smaller does.",
                                   f"(mean {large} - its reference) - ({small} - its reference), points", dropped)
                rows.append({"task": task, "kind": "helps (gain over own reference)", **c.as_dict()})
        spread = stats.spread_ratio(pairs["score_b"], pairs["score_a"], claim=CLAIMS["size_stability"],
                                    effect=f"log(sd {large} / sd {small})")
        rows.append({"task": task, "kind": "seed sd", **dataclasses.replace(spread, dropped=dropped).as_dict()})
        failure = stats.failure_rate_change(pairs["failed_a"], pairs["failed_b"],
                                            claim=f"{large} fails more often than {small} (less stable)",
                                            effect=f"failure rate {large} - {small} (share of seeds, end of training)")
        rows.append({"task": task, "kind": "stabilises (failure rate)", **dataclasses.replace(failure, dropped=dropped).as_dict()})
    return finish_claims(rows)


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


def size_pairs(model_names) -> list[tuple[str, str]]:
    """The (smaller, larger) pairs a profile compares: its models two by two, in order (offline:
    minilm-l6 -> mpnet-base; paper: PubMedBERT base -> large, then PubMedELECTRA base -> large)."""
    model_names = list(model_names)
    if len(model_names) < 2 or len(model_names) % 2:
        raise ConfigError(f"a size comparison takes models two by two, (smaller, larger) per family; got "
                          f"{model_names}: list them as small1, large1, small2, large2, ...")
    return list(zip(model_names[::2], model_names[1::2]))


def size_table_by_pair(df: pd.DataFrame, pairs) -> pd.DataFrame:
    """`size_table` for each (small, large) pair, one row per pair and task: the pair's models in
    columns `small` and `large`, their statistics as `mean small`, `sd large`, ... so that pairs of
    different families share one table."""
    frames = []
    for small, large in pairs:
        table = size_table(df, small, large)
        names = {f"{stat} {model}": f"{stat} {role}" for stat in ("mean", "sd", "failed")
                 for model, role in ((small, "small"), (large, "large"))}
        frames.append(table.rename(columns=names).assign(small=small, large=large))
    out = pd.concat(frames, ignore_index=True)
    return out[["task", "small", "large", *[c for c in out.columns if c not in ("task", "small", "large")]]]


def size_claims_by_pair(df: pd.DataFrame, pairs, references: pd.DataFrame | None = None) -> pd.DataFrame:
    """`size_claims` for each (small, large) pair, the pair named in columns `small` and `large`;
    Holm over all of them (the notebook's claims)."""
    frames = [size_claims(df, small, large, references).assign(small=small, large=large) for small, large in pairs]
    out = pd.concat(frames, ignore_index=True).drop(columns=["p_holm", "p_opposite_holm", "power"])
    out = finish_claims(out.to_dict("records"))
    return out[["small", "large", *[c for c in out.columns if c not in ("small", "large")]]]


def reinit_claims(df: pd.DataFrame) -> pd.DataFrame:
    """Per task and model: each n > 0 re-initialised blocks against n = 0 over the same seeds,
    helps (mean) and stabilises (failure rate, seed sd); Holm over the table."""
    rows = []
    df = knob_slice(df, "reinit_layers")  # other techniques also have reinit_layers == 0
    for (task, model), group in df.groupby(["task", "model"], sort=True):
        for n in sorted(set(group["reinit_layers"]) - {0}):
            claim = CLAIMS["reinit"] if task == "BIOSSES" else f"re-initialising the top {n} block(s) helps {task}"
            rows += [{"task": task, "model": model, "reinit_layers": n, **row}
                     for row in arm_claims(group, "reinit_layers", n, 0, claim, names=(f"reinit{n}", "standard"))]
    return finish_claims(rows)


# Gu et al. (2021), Table 6: PubMedBERT (abstracts, uncased) on BLURB. GAD is the paper's 82.34 (the
# BLURB leaderboard's row has 83.96, and with it the BLURB score 81.16 quoted elsewhere); averaged the
# BLURB way these per-task values give 81.07 over all six task types (`pubmedbert_score`).
PUBMEDBERT = {
    "BC5-chem": 93.33, "BC5-disease": 85.62, "NCBI-disease": 87.82, "BC2GM": 84.52, "JNLPBA": 79.10,
    "EBM-PICO": 73.38, "ChemProt": 77.24, "DDI": 82.36, "GAD": 82.34, "BIOSSES": 92.30, "HoC": 82.32,
    "PubMedQA": 55.84, "BioASQ": 87.56,
}


def pubmedbert_score(task_types=None) -> float:
    """PubMedBERT's published per-task scores averaged the BLURB way over `task_types` (all six
    when None): a partial BLURB score is compared like for like, over the types it covers."""
    wanted = set(task_types) if task_types is not None else set(metrics.TASK_TYPES)
    scores = {t: v for t, v in PUBMEDBERT.items() if tasks.get(t).task_type in wanted}
    return metrics.blurb_score_details(scores).score


def with_reference(runs: pd.DataFrame, references: pd.DataFrame) -> pd.DataFrame:
    """`runs` with a `reference` column: the test score of the frozen-encoder reference that saw
    the same model, train subsample, evaluation sets and length (`reference.ReferenceConfig.for_run`)."""

    by_id = dict(zip(references["run_id"], references["test_score"]))
    ids = [ReferenceConfig(task=r.task, model=r.model, train_limit=_none(r.train_limit), eval_limit=_none(r.eval_limit),
                           max_length=_none(r.max_length)).run_id for r in runs.itertuples()]
    return runs.assign(reference=[by_id.get(i, np.nan) for i in ids])


def _none(value):
    """A config field read back from a DataFrame: NaN was None, floats that were ints are ints."""
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else int(value)


def learned(runs: pd.DataFrame, references: pd.DataFrame, by=("task", "model", "technique")) -> pd.DataFrame:
    """Did fine-tuning learn? Per group: mean ± sd of the test score over seeds, the frozen
    reference, the trivial score (the majority answer), the margin over the higher of the two,
    and `learned` (mean above both). A probe can fall below the majority answer (PubMedQA), and
    a collapsed model then "beats" it: the bar is whichever is higher. A row that says False
    tests nothing about stability: fix the recipe before reading its seeds."""
    runs = with_reference(runs, references)
    summary = stats.summarize(runs, by=list(by))
    bars = runs.groupby(list(by), sort=True).agg(reference=("reference", "first"), trivial=("trivial_test_score", "mean"))
    out = summary.merge(bars.reset_index(), on=list(by))
    out["margin"] = out["mean"] - out[["reference", "trivial"]].max(axis=1)
    out["learned"] = out["margin"] > 0
    shown = [*by, "n", "mean", "std", "failed_rate", "reference", "trivial", "margin", "learned", "precision"]
    return out[[c for c in shown if c in out]]


def blurb_table(df: pd.DataFrame, references: pd.DataFrame | None = None) -> tuple[pd.DataFrame, metrics.BlurbScore]:
    """Per task: mean ± sd over seeds beside PubMedBERT's published score, and the BLURB score
    over the task types present (with the missing ones named). With `references`, also the
    frozen-encoder reference of each task and whether the fine-tuned mean beats it."""
    summary = stats.summarize(df, by=["task"])
    summary["type"] = [tasks.get(t).task_type for t in summary["task"]]
    summary["PubMedBERT (Gu et al.)"] = [PUBMEDBERT[t] for t in summary["task"]]
    summary["gap"] = summary["PubMedBERT (Gu et al.)"] - summary["mean"]
    order = {name: i for i, name in enumerate(tasks.names())}
    summary = summary.sort_values("task", key=lambda s: s.map(order)).reset_index(drop=True)
    scored = summary.dropna(subset=["mean"])  # a task whose every run lost its loss to NaN has no score
    details = metrics.blurb_score_details(dict(zip(scored["task"], scored["mean"])))
    columns = ["task", "type", "n", "mean", "std", "min", "max", "failed_rate", "PubMedBERT (Gu et al.)", "gap"]
    if references is not None:
        ref = with_reference(df, references).groupby("task")["reference"].first()
        trivial = df.groupby("task")["trivial_test_score"].mean()
        summary["frozen reference"] = summary["task"].map(ref)
        summary["beats reference"] = summary["mean"] > np.fmax(summary["frozen reference"], summary["task"].map(trivial))
        columns += ["frozen reference", "beats reference"]
    return summary[[*columns, *(["precision"] if "precision" in summary else [])]], details


def domain_gap_claim(summary: pd.DataFrame, model: str) -> pd.DataFrame:
    """Does PubMedBERT beat this (general-domain, small, CPU-budget) model task by task?"""
    gaps = summary["gap"].dropna().to_numpy(dtype=float)  # a task without any score has no gap
    lo, hi = stats.bootstrap_ci(gaps)
    claim = f"PubMedBERT (domain-specific pretraining, Gu et al.) outperforms {model} on BLURB tasks."
    effect = "PubMedBERT - ours per task (points)"
    if len(gaps) == 0:
        return stats.claims_table([stats.undecided(claim, effect)])
    c = stats.decided(claim, effect, float(np.mean(gaps)), lo, hi, stats.wilcoxon_greater(gaps),
                      stats.wilcoxon_greater(-gaps), len(gaps))
    return stats.claims_table([c])


def knob_slice(df: pd.DataFrame, knob: str) -> pd.DataFrame:
    """Runs in which only `knob` departs from plain fine-tuning (its neutral value included),
    for a score-against-knob curve."""
    neutral = techniques.neutral_knobs()
    others = [k for k in neutral if k != knob]
    keep = np.logical_and.reduce([df[k] == neutral[k] for k in others])
    return df[keep].sort_values(knob)


def winners(summary: pd.DataFrame, by: tuple[str, ...] = ("task", "model")) -> pd.DataFrame:
    """Which technique has the best mean score per task and model, and by how much over standard."""
    rows = []
    for key, group in summary.groupby(list(by), sort=True):
        if group["mean"].isna().all():  # no run of this task and model produced a score
            rows.append({**dict(zip(by, key)), "best technique": None, "best mean": np.nan,
                         "standard mean": np.nan, "lowest sd": None})
            continue
        best = group.loc[group["mean"].idxmax()]
        standard = group.loc[group["technique"] == "standard", "mean"]
        rows.append({**dict(zip(by, key)), "best technique": best["technique"], "best mean": best["mean"],
                     "standard mean": float(standard.iloc[0]) if len(standard) else float("nan"),
                     "lowest sd": group.loc[group["std"].idxmin(), "technique"] if group["std"].notna().any() else None})
    out = pd.DataFrame(rows)
    out["gain over standard"] = out["best mean"] - out["standard mean"]
    return out


# ----------------------------------------------------------------------------- pretraining settings

# Tinn et al. (arXiv:2112.07869): "We show that fine-tuning performance may be sensitive to pretraining
# settings, especially in low-resource domains. [...] Overall, domain-specific vocabulary and
# pretraining facilitate more robust models for fine-tuning."
PRETRAINING_CLAIMS = {
    "domain_score": "Domain-specific pretraining gives better fine-tuned models than general-domain pretraining.",
    "low_resource_spread": "Fine-tuning performance is sensitive to pretraining settings, especially in low-resource domains.",
    "domain_stability": "Domain-specific pretraining facilitates more robust (less seed-dependent) fine-tuning.",
}


def label_arms(runs: pd.DataFrame, arm_models: dict[str, str], column: str = "arm") -> pd.DataFrame:
    """A copy of `runs` with a `column` naming each run's pretraining arm.

    Run records name the model they fine-tuned: a registry name or, for a pretrained arm, the
    checkpoint folder's path; `arm_models` maps arm -> that model string (what `build_arm` returned).
    """
    arm_of = {str(model): arm for arm, model in arm_models.items()}
    unknown = sorted(set(runs["model"].astype(str)) - set(arm_of))
    if unknown:
        raise ConfigError(f"runs of models {unknown} belong to no arm; arm_models maps {sorted(arm_of.values())} to "
                          f"{sorted(arm_of)}: select the runs of these arms only (sweep.records_for(configs, ...))")
    out = runs.copy()
    out[column] = pd.Categorical(out["model"].astype(str).map(arm_of), categories=list(arm_models), ordered=True)
    return out


def _seed_matrix(group: pd.DataFrame, arm_column: str, score: str) -> pd.DataFrame:
    """seeds x arms score matrix of one task, keeping only seeds every arm has a score for."""
    wide = group.pivot_table(index="seed", columns=arm_column, values=score, aggfunc="mean", observed=True)
    return wide.apply(pd.to_numeric, errors="coerce").dropna()


def _low_resource_flags(task_names, low_resource) -> dict[str, bool]:
    if low_resource is None:
        return {t: tasks.get(t).low_resource for t in task_names}
    low = {tasks.get(t).name for t in low_resource}
    return {t: t in low for t in task_names}


def arm_spread(runs: pd.DataFrame, arm_column: str = "arm", low_resource=None, score: str = "test_score") -> pd.DataFrame:
    """Per task: each arm's mean score over seeds, the spread between arms (best mean - worst mean),
    which arm is best and worst, and the pooled seed sd within arms (the noise a spread must beat).

    Only seeds every arm finished are used, so all arms are compared on the same seeds.
    `low_resource` (task names) defaults to `TaskSpec.low_resource`.
    """
    rows = []
    flags = _low_resource_flags(sorted(runs["task"].unique()), low_resource)
    for task, group in runs.groupby("task", sort=True):
        wide = _seed_matrix(group, arm_column, score)
        if wide.empty or wide.shape[1] < 2:
            continue
        means = wide.mean()
        pooled_sd = float(np.sqrt(wide.var(ddof=1).mean())) if len(wide) > 1 else float("nan")
        rows.append({"task": task, "low_resource": flags[task], "seeds": len(wide),
                     **{f"mean {arm}": float(m) for arm, m in means.items()},
                     "spread": float(means.max() - means.min()), "best arm": str(means.idxmax()),
                     "worst arm": str(means.idxmin()), "pooled seed sd": pooled_sd})
    return pd.DataFrame(rows)


def spread_gap(runs: pd.DataFrame, arm_column: str = "arm", low_resource=None, score: str = "test_score",
               claim: str = PRETRAINING_CLAIMS["low_resource_spread"], seed: int = 0) -> stats.Comparison:
    """Is the spread between arms larger on low-resource tasks than on high-resource ones?

    Effect: mean spread (best arm mean - worst arm mean, in score points) over the low-resource
    tasks minus the same over the high-resource tasks. The CI is a percentile bootstrap that
    resamples seeds within each task (the same resampled seeds for every arm, keeping the pairing);
    the one-sided p-value is the bootstrap share of effects at or below 0, (1 + k) / (1 + B).
    Caveats the notebook states: the tasks' metrics differ, and seed noise alone inflates the
    spread of a noisy task, so the effect is only meaningful beside the pooled seed sd.
    """
    effect = "mean spread of arm means, low-resource - high-resource tasks (points)"
    flags = _low_resource_flags(sorted(runs["task"].unique()), low_resource)
    # A task on which every run collapsed (all-O NER, say) has a spread of 0 because nothing was
    # learned, not because pretraining did not matter: it cannot take part in the comparison.
    learned = runs.assign(failed=stats.failed(runs)).groupby("task")["failed"].agg(lambda f: not f.all())
    collapsed = sorted(learned.index[~learned])
    if collapsed:
        effect += f"; left out, every run collapsed: {', '.join(collapsed)}"
    runs = runs[runs["task"].isin(learned.index[learned])]
    matrices = {t: _seed_matrix(g, arm_column, score).to_numpy() for t, g in runs.groupby("task", sort=True)}
    matrices = {t: m for t, m in matrices.items() if m.shape[0] >= 1 and m.shape[1] >= 2}
    low = [t for t in matrices if flags[t]]
    high = [t for t in matrices if not flags[t]]
    n = min((matrices[t].shape[0] for t in matrices), default=0)
    if not low or not high:
        missing = "low-resource" if not low else "high-resource"
        return stats.undecided(claim, f"{effect}; needs at least one {missing} task", n)

    def spreads(matrix: np.ndarray) -> float:
        means = matrix.mean(axis=0)
        return float(means.max() - means.min())

    estimate = float(np.mean([spreads(matrices[t]) for t in low]) - np.mean([spreads(matrices[t]) for t in high]))
    rng = np.random.default_rng(seed)
    boot = np.zeros(stats.N_BOOT)
    for group, sign in ((low, 1.0), (high, -1.0)):
        for t in group:
            m = matrices[t]
            idx = rng.integers(0, m.shape[0], size=(stats.N_BOOT, m.shape[0]))
            means = m[idx].mean(axis=1)  # (B, arms)
            boot += sign * np.ptp(means, axis=1) / len(group)
    lo, hi = (float(x) for x in np.percentile(boot, [2.5, 97.5]))
    p = float((1 + np.sum(boot <= 0)) / (1 + len(boot)))
    p_opposite = float((1 + np.sum(boot >= 0)) / (1 + len(boot)))
    return stats.decided(claim, effect, estimate, lo, hi, p, p_opposite, n,
                         test="bootstrap over seeds within tasks, one-sided", p_floor=1 / (1 + len(boot)))


def pretraining_claims(runs: pd.DataFrame, arm_column: str = "arm", domain: str = "domain", general: str = "general",
                       low_resource=None, score: str = "test_score") -> pd.DataFrame:
    """The claims of notebook 01 on a runs table labelled by arm (`label_arms`):

    * `helps (domain vs general)` - per task, the domain arm's mean paired gain over the general arm;
    * `spread low vs high` - `spread_gap`: is the spread between all arms larger on low-resource tasks;
    * `seed sd, per task` - `stats.spread_ratio`: log(sd general / sd domain), > 0 when domain
      pretraining lowers the seed variance.

    In the offline profiles `domain`/`general` are the MiniLM arms continued on PubMed and on Brown
    text (same budget); in the `paper` profile they are hub models (PubMedBERT vs BERT-base).
    """
    missing = sorted({domain, general} - set(runs[arm_column].astype(str)))
    if missing:
        raise ConfigError(f"pretraining_claims: no runs of {missing} in column {arm_column!r} (it holds "
                          f"{sorted(set(runs[arm_column].astype(str)))}); pass domain=/general= names that are there")
    data = runs.assign(**{arm_column: runs[arm_column].astype(str)})
    rows = []
    for task, group in data.groupby("task", sort=True):
        c = stats.paired(group, arm_column, domain, general, claim=PRETRAINING_CLAIMS["domain_score"],
                         on=("task", "seed"), score=score)
        rows.append({"kind": "helps (domain vs general)", "task": task, **c.as_dict()})
    c = spread_gap(data, arm_column, low_resource, score)
    rows.append({"kind": "spread low vs high (across tasks, by design)", "task": "all", **c.as_dict()})
    pair = data[data[arm_column].isin([domain, general])]
    for task, group in pair.groupby("task", sort=True):
        wide = _seed_matrix(group, arm_column, score)
        a = wide[domain] if domain in wide else []
        b = wide[general] if general in wide else []
        c = stats.spread_ratio(a, b, claim=PRETRAINING_CLAIMS["domain_stability"],
                               effect=f"log(sd {general} / sd {domain})")
        rows.append({"kind": "seed sd", "task": task, **c.as_dict()})
    return finish_claims(rows)
