"""Notebook 06's claims: the speed and memory goals, and SlimFit's (2.2x average memory cut, up to
3.1x, at <= 0.4 points), each turned into a `stats.Comparison` with the workbook's verdict rule;
the score cost of each freezing depth; SlimFit against static freezing of as many layers, per task
and across freezing rates; how SlimFit's schedule spread the steps over the layers."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..encoders import models
from ..training.slimfit_arms import SLIMFIT_RATE, arm_of, frozen_per_step, scheduled_units
from . import stats

# The goals the measurements are judged against.
SLIMFIT_MEMORY_CUT = 2.2  # SlimFit (Ardakani et al. 2023): average cut, up to 3.1x ...


SLIMFIT_SCORE_BUDGET = 0.4  # ... at <= 0.4 points of accuracy


SLIMFIT_MEMORY_CUT_MAX = 3.1  # ... "up to 3.1x" at the same budget


THROUGHPUT_GOAL = 2.0  # blurblib vs (a) the HF example-script baseline


THROUGHPUT_TUNED_GOAL = 1.0  # blurblib vs (b) the Trainer with its own best options: at least as fast


MEMORY_GOAL = 1.5


BASELINE, TUNED, BLURBLIB = "baseline", "tuned_trainer", "blurblib"  # arms (a), (b), (c)


# Ratio columns: blurblib (c) over each Trainer arm. `train_ratio` / `eval_ratio` keep their
# original meaning, c/a; the `_tuned` ones are c/b.
RATIOS = {"": BASELINE, "_tuned": TUNED}


def throughput_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """blurblib / each Trainer arm, examples/s per (task, rep): each triple ran back to back.

    Columns `train_ratio`, `eval_ratio` (c/a) and `train_ratio_tuned`, `eval_ratio_tuned` (c/b);
    a ratio whose arm was not measured is left out."""
    wide = df.pivot_table(index=["task", "rep"], columns="arm", values=["train_examples_per_s", "eval_examples_per_s"])
    out = pd.DataFrame(index=wide.index)
    present = set(df["arm"])
    for suffix, arm in RATIOS.items():
        if arm in present and BLURBLIB in present:
            for what in ("train", "eval"):
                col = f"{what}_examples_per_s"
                out[f"{what}_ratio{suffix}"] = wide[(col, BLURBLIB)] / wide[(col, arm)]
    return out.reset_index()


def memory_model_for(runs_model: str, memory: pd.DataFrame) -> str | None:
    """The measured model whose memory stands for a run's model: itself, its `-shape` twin, or one
    with as many blocks (a hub model's memory is its architecture's)."""
    measured = list(dict.fromkeys(memory["model"]))
    for name in (runs_model, f"{runs_model}-shape"):
        if name in measured:
            return name
    blocks = models.get(runs_model).layers if runs_model in models.MODELS else None
    return next((name for name in measured if name in models.MODELS and models.get(name).layers == blocks), None)


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


def _ratio_claim(claim: str, ratios, target: float, what: str) -> tuple[stats.Comparison, str]:
    """Claim "ratio >= target": effect log(ratio) - log(target) per pair (positive = claim right)."""
    ratios = np.asarray([r for r in ratios if r is not None and np.isfinite(r) and r > 0], dtype=float)
    diff = np.log(ratios) - np.log(target)
    comparison = stats.compare(diff, claim, f"log({what}) - log({target:g})")
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
    comparison = stats.compare(diff, claim, effect)
    if not diff:
        return comparison, "not measured"
    change = np.asarray(diff) - SLIMFIT_SCORE_BUDGET
    observed = f"{change.mean():+.2f} points (min {change.min():+.2f}, max {change.max():+.2f}; n={len(change)})"
    return comparison, observed


ARM_NAMES = {"standard": "standard", "static": "static freezing", "slimfit": "SlimFit",
             "slimfit-int8": "SlimFit + int8 store"}


def with_arm(runs: pd.DataFrame) -> pd.DataFrame:
    """A copy of `runs` with each run's arm (`arm_of`) and its test score as a number."""
    return runs.assign(arm=[arm_of(row) for _, row in runs.iterrows()],
                       score=pd.to_numeric(runs["test_score"], errors="coerce"))


def _score_changes(runs: pd.DataFrame, arm: str, against: str = "standard") -> pd.Series:
    """Test score of `arm` minus `against`, paired over (task, model, seed); failed runs keep their
    score (`stats.paired`'s rule), runs without one drop their pair."""
    on = ["task", "model", "seed"]
    a = runs[runs["arm"] == arm].set_index(on)["score"]
    b = runs[runs["arm"] == against].set_index(on)["score"]
    return (a - b).dropna()


def _peak_ratios(memory: pd.DataFrame, arm: str, against: str = "standard") -> pd.Series:
    """peak(against) / peak(arm) per (model, rep)."""
    peaks = memory.set_index(["model", "rep", "arm"])["peak_mb"].unstack("arm")
    if arm not in peaks or against not in peaks:
        return pd.Series(dtype=float)
    return (peaks[against] / peaks[arm]).dropna()


def _cut_claim(claim: str, ratios: pd.Series, target: float, what: str) -> tuple[stats.Comparison, str]:
    """`_ratio_claim`, its observed ratio preceded by each model's where several were measured."""
    comparison, observed = _ratio_claim(claim, list(ratios), target, what)
    per_model = ratios.groupby(level="model", sort=False).median() if len(ratios) else pd.Series(dtype=float)
    if len(per_model) > 1:
        observed = ", ".join(f"{name} {cut:.2f}x" for name, cut in per_model.items()) + f"; overall {observed}"
    return comparison, observed


def _change_claim(claim: str, effect: str, change: pd.Series, budget: float) -> tuple[stats.Comparison, str]:
    """Claim "change + budget > 0" per pair (budget 0: the arm scores higher)."""
    comparison = stats.compare(list(change + budget), claim, effect)
    if not len(change):
        return comparison, "not measured"
    return comparison, (f"{change.mean():+.2f} points (min {change.min():+.2f}, max {change.max():+.2f}; "
                        f"n={len(change)} (task, seed) pairs)")


def slimfit_claims(memory: pd.DataFrame | None, runs: pd.DataFrame | None) -> pd.DataFrame:
    """SlimFit's claims, for SlimFit (with and without its int8 store) and for static freezing of as
    many layers, so the table shows what the schedule adds: per arm, peak memory >= 2.2x and >= 3.1x
    lower than standard (per model and repetition of `slimfit_memory`) and <= 0.4 points lost
    (test score against standard, paired over (task, seed)); `verdict_at_budget` is a memory row's
    verdict together with its arm's score row, SlimFit's claim as made ("2.2x at <= 0.4 points").
    Two rows compare SlimFit with static freezing directly, at the same frozen fraction."""
    memory = memory if memory is not None else pd.DataFrame(columns=["model", "rep", "arm", "peak_mb"])
    runs = with_arm(runs) if runs is not None and len(runs) else pd.DataFrame(
        columns=["task", "model", "seed", "arm", "score"])
    rows = []
    for arm in ("slimfit", "slimfit-int8", "static"):
        name = ARM_NAMES[arm]
        techs = memory[memory["arm"] == arm].groupby("model", sort=False)["technique"].first() \
            if "technique" in memory else pd.Series(dtype=str)
        techs = techs.iloc[0] if techs.nunique() == 1 else ", ".join(f"{t} on {m}" for m, t in techs.items())
        ratios = _peak_ratios(memory, arm)
        what = f"peak(standard)/peak({arm})"
        for target, kind in ((SLIMFIT_MEMORY_CUT, "on average"), (SLIMFIT_MEMORY_CUT_MAX, "at best")):
            rows.append((arm, "memory", *_cut_claim(
                f"{name}: peak training memory >= {target:g}x lower than standard (SlimFit's cut {kind})"
                + (f" [{techs}]" if techs else ""), ratios, target, what)))
        rows.append((arm, "score", *_change_claim(
            f"{name}: costs <= {SLIMFIT_SCORE_BUDGET:g} points of test score against standard",
            f"score({arm}) - score(standard) + {SLIMFIT_SCORE_BUDGET:g} (points)",
            _score_changes(runs, arm), SLIMFIT_SCORE_BUDGET)))
    rows.append(("slimfit vs static", "memory", *_cut_claim(
        "SlimFit's schedule keeps less memory than static freezing of as many layers",
        _peak_ratios(memory, "slimfit", against="static"), 1.0, "peak(static)/peak(slimfit)")))
    rows.append(("slimfit vs static", "score", *_change_claim(
        f"SlimFit's schedule scores higher than static freezing of as many layers (all tasks; rate {SLIMFIT_RATE:g})",
        "score(slimfit) - score(static) (points)", _score_changes(runs, "slimfit", against="static"), 0.0)))
    table = stats.claims_table([c for _, _, c, _ in rows])
    table.insert(0, "arm", [arm for arm, _, _, _ in rows])
    table["observed"] = [o for _, _, _, o in rows]
    score_verdict = {arm: c.verdict for arm, kind, c, _ in rows if kind == "score"}
    table["verdict_at_budget"] = [stats.all_of(c.verdict, score_verdict[arm]) if kind == "memory" and arm in ARM_NAMES
                                  else c.verdict for arm, kind, c, _ in rows]
    return table


def slimfit_task_table(memory: pd.DataFrame | None, runs: pd.DataFrame) -> pd.DataFrame:
    """Per task and arm: test score mean and sd over seeds, the change against standard over the
    same seeds, and the arm's peak memory and cut on the runs' model (`slimfit_memory`'s setting,
    the same for every task)."""
    runs = with_arm(runs)
    cut, peak = {}, {}
    if memory is not None and len(memory):
        name = memory_model_for(runs["model"].iloc[0], memory)
        on_model = memory[memory["model"] == name]
        peak = on_model.groupby("arm")["peak_mb"].median().to_dict()
        cut = {arm: float(_peak_ratios(on_model, arm).median()) for arm in peak}
    rows = []
    for (task, arm), group in runs.groupby(["task", "arm"], sort=True):
        change = _score_changes(runs[runs["task"] == task], arm)
        rows.append({"task": task, "arm": arm, "technique": group["technique"].iloc[0], "seeds": int(group["score"].notna().sum()),
                     "mean_score": float(group["score"].mean()), "sd": float(group["score"].std(ddof=1)),
                     "change_vs_standard": float(change.mean()) if len(change) else float("nan"),
                     "change_min": float(change.min()) if len(change) else float("nan"),
                     "change_max": float(change.max()) if len(change) else float("nan"),
                     "peak_mb": peak.get(arm, float("nan")), "memory_cut": cut.get(arm, float("nan"))})
    order = {arm: i for i, arm in enumerate(ARM_NAMES)}
    table = pd.DataFrame(rows)
    return table.sort_values(["task", "arm"], key=lambda c: c.map(order) if c.name == "arm" else c,
                             ignore_index=True) if len(table) else table


CURVE_ARMS = ("standard", "static", "slimfit")


def _knobs(row) -> dict:
    """A run's freezing knobs, 0 where its record has none (a record older than the knob)."""
    def value(name):
        return 0 if pd.isna(row.get(name)) else row.get(name)

    return {"slimfit_rate": value("slimfit_rate"), "freeze_layers": value("freeze_layers")}


def _curve_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run of the curve's arms, with its frozen fraction per step."""
    rows = []
    for _, row in runs.iterrows():
        arm = arm_of(row)
        if arm not in CURVE_ARMS:
            continue
        knobs = _knobs(row)
        rows.append({"task": row["task"], "model": row["model"], "seed": row["seed"], "arm": arm,
                     "frozen_fraction": frozen_per_step(row["model"], knobs) / scheduled_units(row["model"]),
                     "rate": knobs["slimfit_rate"] or None, "freeze_layers": knobs["freeze_layers"] or None,
                     "score": pd.to_numeric(row["test_score"], errors="coerce")})
    return pd.DataFrame(rows)


def rate_curve(runs: pd.DataFrame) -> pd.DataFrame:
    """Per task, arm and frozen fraction: the test score's mean and sd over seeds and its change
    against standard over the same seeds. `runs` are the main comparison's and the curve's
    together (the int8 arm is left out: the curve is about the schedule)."""
    one = _curve_rows(runs)
    standard = one[one["arm"] == "standard"].set_index(["task", "model", "seed"])["score"]
    rows = []
    for (task, arm, fraction), group in one.groupby(["task", "arm", "frozen_fraction"], sort=True):
        change = (group.set_index(["task", "model", "seed"])["score"] - standard).dropna()
        knob = "" if arm == "standard" else (f"rate {group['rate'].iloc[0]:g}" if arm == "slimfit"
                                             else f"freeze_layers {int(group['freeze_layers'].iloc[0])}")
        rows.append({"task": task, "arm": arm, "frozen_fraction": round(float(fraction), 3), "knob": knob,
                     "seeds": int(group["score"].notna().sum()), "mean_score": float(group["score"].mean()),
                     "sd": float(group["score"].std(ddof=1)) if len(group) > 1 else float("nan"),
                     "change_vs_standard": float(change.mean()) if len(change) else float("nan")})
    table = pd.DataFrame(rows)
    if not len(table):
        return table
    order = {arm: i for i, arm in enumerate(CURVE_ARMS)}
    return table.sort_values(["task", "frozen_fraction", "arm"], key=lambda c: c.map(order) if c.name == "arm" else c,
                             ignore_index=True)


def schedule_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per task and SlimFit rate (seeds averaged): the optimizer steps of the run and, per layer,
    how many of them it trained (steps x (1 - its frozen share))."""
    rows = []
    for _, row in runs.iterrows():
        share = row.get("slimfit_frozen_share")
        if arm_of(row) != "slimfit" or not isinstance(share, dict):
            continue
        steps = int(row["slimfit_steps"])
        rows.append({"task": row["task"], "rate": row["slimfit_rate"], "steps": steps,
                     **{layer: steps * (1 - frozen) for layer, frozen in share.items()}})
    if not rows:
        return pd.DataFrame(columns=["task", "rate", "steps"])
    table = pd.DataFrame(rows)
    layers = [c for c in table.columns if c not in ("task", "rate", "steps")]
    layers.sort(key=lambda name: (name != "embeddings", int(name.split("_")[-1]) if name.startswith("block_") else 0))
    return table.groupby(["task", "rate"], as_index=False)[["steps", *layers]].mean()


def schedule_claims(runs: pd.DataFrame) -> pd.DataFrame:
    """Claim rows: SlimFit's schedule scores higher than static freezing of as many layers, per task
    and over all tasks, paired over (frozen fraction, seed) across the curve's rates, with the
    workbook's verdict rule. A rate alone has too few seeds to decide; the rates together can."""
    one = _curve_rows(runs)
    one = one[one["arm"] != "standard"]
    on = ["task", "model", "seed", "frozen_fraction"]
    change = (one[one["arm"] == "slimfit"].set_index(on)["score"] - one[one["arm"] == "static"].set_index(on)["score"]).dropna()
    fractions = ", ".join(f"{f:.2f}" for f in sorted(set(change.index.get_level_values("frozen_fraction"))))
    groups = [(task, change.xs(task, level="task")) for task in sorted(set(change.index.get_level_values("task")))]
    rows, observed = [], []
    for task, diff in [*groups, ("all tasks", change)]:
        comparison, seen = _change_claim(
            f"SlimFit's schedule scores higher than static freezing of as many layers ({task}; frozen fractions "
            f"{fractions})", "score(slimfit) - score(static) (points)", diff, 0.0)
        rows.append(comparison)
        observed.append(seen.replace("(task, seed) pairs", "(rate, seed) pairs" if task != "all tasks"
                                     else "(task, rate, seed) pairs"))
    table = stats.claims_table(rows)
    table.insert(0, "arm", "slimfit vs static")
    table["observed"] = observed
    return table
