"""Measurements into claims: one `stats.Comparison` per goal, with the project's verdict rule,
and the score cost of each freezing depth from the sweeps."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import models, stats
from .memory import freeze_depths
from .settings import (FREEZE_FRACTIONS, MEMORY_GOAL, MEMORY_SETTINGS, SLIMFIT_MEMORY_CUT, SLIMFIT_SCORE_BUDGET,
                       THROUGHPUT_GOAL, THROUGHPUT_TUNED_GOAL)
from .speed import throughput_ratios


def freeze_sweep(profile, n_tasks: int = 2):
    """The score cost of each freezing depth: the profile's model on its first two tasks, at
    the depths its memory benchmark measures, with the profile's per-task run settings."""
    fractions = MEMORY_SETTINGS[profile.name].get("fractions", FREEZE_FRACTIONS)
    depths = freeze_depths(models.get(profile.models[0]).layers, fractions)
    return profile.sweep(tasks=profile.tasks[:n_tasks], models=profile.models[:1],
                         techniques=tuple({"freeze_layers": k} for k in depths))


def score_cost(runs: pd.DataFrame, score: str = "test_score") -> pd.DataFrame:
    """Per task and depth: mean score and its change from k=0 over the same seeds (points)."""
    rows = []
    for (task, k), group in runs.groupby(["task", "freeze_layers"], sort=True):
        base = runs[(runs["task"] == task) & (runs["freeze_layers"] == 0)].set_index("seed")[score]
        diff = (group.set_index("seed")[score] - base).dropna()
        rows.append({"task": task, "freeze_layers": int(k), "seeds": len(group), "mean_score": float(group[score].mean()),
                     "change_vs_k0": float(diff.mean()) if len(diff) else float("nan"),
                     "change_min": float(diff.min()) if len(diff) else float("nan"),
                     "change_max": float(diff.max()) if len(diff) else float("nan")})
    return pd.DataFrame(rows)


def _comparison(claim: str, effect: str, diff) -> stats.Comparison:
    """The project's rule on a signed effect (positive = the claim is right): mean, bootstrap CI,
    one-sided Wilcoxon p each way, `stats.verdict`."""
    diff = np.asarray(diff, dtype=float)
    if len(diff) == 0:
        return stats.Comparison(claim, effect, float("nan"), float("nan"), float("nan"), float("nan"), 0, "inconclusive")
    lo, hi = stats.bootstrap_ci(diff)
    p = stats.wilcoxon_greater(diff)
    return stats.Comparison(claim, effect, float(diff.mean()), lo, hi, p, len(diff),
                            stats.verdict(lo, hi, p, stats.wilcoxon_greater(-diff), len(diff)))


def _ratio_claim(claim: str, ratios, target: float, what: str) -> tuple[stats.Comparison, str]:
    """Claim "ratio >= target": effect log(ratio) - log(target) per pair (positive = claim right)."""
    ratios = np.asarray([r for r in ratios if r is not None and np.isfinite(r) and r > 0], dtype=float)
    diff = np.log(ratios) - np.log(target)
    comparison = _comparison(claim, f"log({what}) - log({target:g})", diff)
    if len(diff) == 0:
        return comparison, "not measured"
    observed = (f"{np.exp(diff.mean()) * target:.2f}x (min {ratios.min():.2f}, median {np.median(ratios):.2f}, "
                f"max {ratios.max():.2f}; n={len(ratios)})")
    return comparison, observed


def _memory_cuts(memory: pd.DataFrame, fraction: float) -> tuple[str | None, list[float]]:
    """Peak(k=0) / peak(k=fraction x L) per rep, for the largest model measured."""
    if memory is None or not len(memory):
        return None, []
    name = memory.sort_values("n_params")["model"].iloc[-1]
    rows = memory[memory["model"] == name]
    k = int(rows["num_blocks"].iloc[0] * fraction)
    base = rows[rows["freeze_layers"] == 0].set_index("rep")["peak_mb"]
    frozen = rows[rows["freeze_layers"] == k].set_index("rep")["peak_mb"]
    return f"{name} k={k}", list((base / frozen).dropna())


def claims(throughput_df: pd.DataFrame | None = None, memory: pd.DataFrame | None = None,
           runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Claim vs observed, one `stats.Comparison` per row plus a readable `observed` column."""
    rows = []
    if throughput_df is not None and len(throughput_df):
        ratios = throughput_ratios(throughput_df)
        rows.append(_ratio_claim(f"blurblib trains >= {THROUGHPUT_GOAL:g}x the examples/s of the HF example-script "
                                 "baseline (max-length padding, Trainer defaults, fp32; geometric mean over tasks)",
                                 ratios.get("train_ratio", []), THROUGHPUT_GOAL, "blurblib/baseline train examples/s"))
        rows.append(_ratio_claim(f"blurblib trains >= {THROUGHPUT_TUNED_GOAL:g}x the examples/s of transformers.Trainer "
                                 "with its own best options (length-grouped dynamic padding, bf16 where native, "
                                 "fused AdamW; geometric mean over tasks)",
                                 ratios.get("train_ratio_tuned", []), THROUGHPUT_TUNED_GOAL,
                                 "blurblib/tuned-Trainer train examples/s"))
    which, cuts = _memory_cuts(memory, 0.5)
    rows.append(_ratio_claim(f"freezing half the blocks cuts peak training memory >= {MEMORY_GOAL:g}x ({which or 'BERT-base shape'})",
                             cuts, MEMORY_GOAL, "peak(k=0)/peak(k=L/2)"))
    which, cuts = _memory_cuts(memory, 0.75)
    rows.append(_ratio_claim(f"SlimFit: {SLIMFIT_MEMORY_CUT:g}x average memory cut, here with static freezing of the "
                             f"lower 3/4 of the blocks ({which or 'BERT-base shape'})", cuts, SLIMFIT_MEMORY_CUT,
                             "peak(k=0)/peak(k=3L/4)"))
    rows.append(_score_budget_claim(runs))
    table = stats.claims_table([c for c, _ in rows])
    table["observed"] = [o for _, o in rows]
    return table


def _score_budget_claim(runs: pd.DataFrame | None, fraction: float = 0.5) -> tuple[stats.Comparison, str]:
    """SlimFit's accuracy budget for half the blocks frozen: (score_k - score_0) + 0.4 > 0 per (task, seed)."""
    claim = f"SlimFit: freezing costs <= {SLIMFIT_SCORE_BUDGET:g} points (here: half the blocks frozen, static)"
    effect = f"test score(k=L/2) - score(k=0) + {SLIMFIT_SCORE_BUDGET:g} (points)"
    diff = []
    if runs is not None and len(runs):
        k = int(models.get(runs["model"].iloc[0]).layers * fraction)
        score = pd.to_numeric(runs["test_score"], errors="coerce")
        frame = runs.assign(score=score)
        base = frame[frame["freeze_layers"] == 0].set_index(["task", "seed"])["score"]
        frozen = frame[frame["freeze_layers"] == k].set_index(["task", "seed"])["score"]
        diff = list((frozen - base).dropna() + SLIMFIT_SCORE_BUDGET)
    comparison = _comparison(claim, effect, diff)
    if not diff:
        return comparison, "not measured"
    change = np.asarray(diff) - SLIMFIT_SCORE_BUDGET
    observed = f"{change.mean():+.2f} points (min {change.min():+.2f}, max {change.max():+.2f}; n={len(change)})"
    return comparison, observed
