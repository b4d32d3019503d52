"""SlimFit's score across freezing rates, against static freezing of as many layers.

The main comparison (`slimfit_compare`) runs SlimFit at its paper's rate, 0.9: on a 6-block model
one layer trains per step. Where it loses to static freezing, the question is whether the
schedule or the rate is to blame. This is the curve that answers it: at each rate of
`SLIMFIT_RATES`, SlimFit and the static depth that freezes as many layers
(`matched_freeze_layers`), on the same tasks and seeds, standard at frozen fraction 0.

`schedule_table` shows how the schedule spread a run's steps over its layers (from each
record's `slimfit_frozen_share`): static freezing gives its top block every step, SlimFit shares
the same number of layer-steps among all of them.
"""
from __future__ import annotations

import pandas as pd

from ..errors import ConfigError
from .settings import SLIMFIT_RATE, SLIMFIT_RATES, SLIMFIT_SCORE_BUDGET, SLIMFIT_SEEDS, for_profile
from .slimfit_compare import arm_knobs, arm_of, frozen_per_step, scheduled_units

CURVE_ARMS = ("standard", "static", "slimfit")


def slimfit_rate_sweep(profile, rates=None, seeds=None):
    """SlimFit and its matched static depth at each curve rate other than `SLIMFIT_RATE` (whose
    runs, with standard's, are the main comparison's), on the profile's tasks, first model and
    SlimFit seeds."""
    model = profile.models[0]
    asked = tuple(rates or for_profile(SLIMFIT_RATES, profile, sized=tuple))  # a rehearsal: every rate, tiny
    others = tuple(r for r in asked if r != SLIMFIT_RATE)
    if not others:
        raise ConfigError(f"the SlimFit rate curve needs a rate other than {SLIMFIT_RATE:g} (the main comparison's); "
                          f"got {asked!r}")
    knobs = [arm_knobs(model, rate, int8=False) for rate in others]
    techniques = tuple(k for arms in knobs for k in (arms["static"], arms["slimfit"]))
    return profile.sweep(models=[model], techniques=techniques,
                         seeds=tuple(seeds or for_profile(SLIMFIT_SEEDS, profile)))


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


def rate_figure(curve: pd.DataFrame):
    """Per task, mean test score (seed sd as error bars) against the frozen fraction per step:
    static freezing and SlimFit from standard's point at 0; the band is SlimFit's score budget."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from .verdicts import ARM_NAMES

    tasks = sorted(curve["task"].unique())
    palette = dict(zip(CURVE_ARMS, sns.color_palette(n_colors=len(CURVE_ARMS))))
    fig, axes = plt.subplots(1, len(tasks), figsize=(max(10.0, 3.3 * len(tasks)), 3.9), squeeze=False)  # notebook width
    for ax, task in zip(axes[0], tasks):
        own = curve[curve["task"] == task]
        start = own[own["arm"] == "standard"]
        for arm in ("static", "slimfit"):
            line = pd.concat([start, own[own["arm"] == arm]]).sort_values("frozen_fraction")
            ax.errorbar(line["frozen_fraction"], line["mean_score"], yerr=line["sd"].fillna(0), marker="o", ms=5,
                        capsize=3, color=palette[arm], label=ARM_NAMES[arm])
        ax.scatter(start["frozen_fraction"], start["mean_score"], color=palette["standard"], s=60, zorder=3,
                   label=ARM_NAMES["standard"])
        if len(start):
            top = float(start["mean_score"].iloc[0])
            ax.axhspan(top - SLIMFIT_SCORE_BUDGET, top, color="grey", alpha=0.15, lw=0)
        rates = own[own["arm"] == "slimfit"].set_index("frozen_fraction")["knob"]
        ticks = sorted(set(own["frozen_fraction"]))
        ax.set_xticks(ticks, [f"{t:.2f}" + (f"\n{rates[t]}" if t in rates.index else "") for t in ticks], fontsize=9)
        ax.tick_params(axis="y", labelsize=9)
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("layers frozen per step", fontsize=10)
        ax.set_ylabel("test score", fontsize=10)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False, fontsize=9)
    fig.suptitle(f"grey band: within {SLIMFIT_SCORE_BUDGET:g} points of standard (SlimFit's budget); "
                 "under each fraction, SlimFit's rate", fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 1), w_pad=1.5)
    return fig


def schedule_claims(runs: pd.DataFrame) -> pd.DataFrame:
    """Claim rows: SlimFit's schedule scores higher than static freezing of as many layers, per task
    and over all tasks, paired over (frozen fraction, seed) across the curve's rates, with the
    workbook's verdict rule. A rate alone has too few seeds to decide; the rates together can."""
    from .. import stats
    from .verdicts import _change_claim

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
