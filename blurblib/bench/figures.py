"""The benchmark figures (seaborn): throughput, memory beside score cost, seeds in parallel."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis.efficiency_findings import (
    ARM_NAMES,
    CURVE_ARMS,
    SLIMFIT_SCORE_BUDGET,
    THROUGHPUT_GOAL,
    THROUGHPUT_TUNED_GOAL,
    memory_model_for,
    throughput_ratios,
    with_arm,
)
from .memory import memory_summary
from .slimfit_compare import ARMS, slimfit_memory_summary

# What a figure may be at notebook width without shrinking (JupyterLab with its file browser
# open draws about 10 inches at matplotlib's 100 dpi); text below 9 pt stops being readable.
NOTEBOOK_WIDTH_IN = 10.0
SMALLEST_FONT = 9
ARM_LABELS = {"baseline": "(a) HF-example baseline", "tuned_trainer": "(b) tuned Trainer", "blurblib": "(c) blurblib"}


def throughput_figure(df: pd.DataFrame):
    """Examples/s per arm (left) and blurblib's speed-up over each Trainer arm per repetition
    (right, log scale: the speed-ups span 1x to 30x, and the 1x and 2x goals must stay readable);
    both panels in the order the tasks ran, the legends below the data."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    order = list(dict.fromkeys(df["task"]))
    ratios = throughput_ratios(df)
    labels = {"train_ratio": "vs (a) HF-example baseline", "train_ratio_tuned": "vs (b) tuned Trainer"}
    long = ratios.melt(id_vars=["task", "rep"], value_vars=[c for c in labels if c in ratios.columns],
                       var_name="against", value_name="speed-up")
    long["against"] = long["against"].map(labels)
    arms = df.assign(arm=df["arm"].map(ARM_LABELS).fillna(df["arm"]))
    fig, axes = plt.subplots(1, 2, figsize=(NOTEBOOK_WIDTH_IN, 4.4))
    sns.barplot(data=arms, x="task", y="train_examples_per_s", hue="arm", order=order, estimator="median",
                errorbar=("pi", 100), ax=axes[0])
    axes[0].set_ylabel("training examples / s")
    axes[0].set_title("throughput (median of reps, min-max)", fontsize=10)
    np.random.seed(0)  # seaborn jitters with numpy's global generator: a re-run draws the same figure
    sns.stripplot(data=long, x="task", y="speed-up", hue="against", order=order, dodge=len(labels) > 1, size=6,
                  ax=axes[1])
    _log_ratio_axis(axes[1], long["speed-up"], goals=(THROUGHPUT_TUNED_GOAL, THROUGHPUT_GOAL))
    axes[1].axhline(THROUGHPUT_GOAL, color="grey", ls="--", label=f"goal vs (a): {THROUGHPUT_GOAL:g}x")
    axes[1].axhline(THROUGHPUT_TUNED_GOAL, color="black", lw=0.8, label=f"goal vs (b): {THROUGHPUT_TUNED_GOAL:g}x")
    axes[1].set_ylabel("blurblib / Trainer arm (log)")
    axes[1].set_title("training speed-up per repetition", fontsize=10)
    for ax in axes:
        ax.set_xlabel("")
        plt.setp(ax.get_xticklabels(), rotation=25, ha="right", rotation_mode="anchor")
    _legends_below(fig, [(axes[0], axes[:1], 2), (axes[1], axes[1:], 2)])
    return fig


# The columns notebook 06's text discusses, under short two-level headers; the CSV keeps all.
THROUGHPUT_VIEW = {
    ("train examples/s", "(a) baseline"): "baseline_train_ex_s",
    ("train examples/s", "(b) tuned"): "tuned_trainer_train_ex_s",
    ("train examples/s", "(c) blurblib"): "blurblib_train_ex_s",
    ("speed-up c/a", "train"): "train_ratio_median",
    ("speed-up c/a", "eval"): "eval_ratio_median",
    ("speed-up c/b", "train"): "train_ratio_tuned_median",
    ("speed-up c/b", "eval"): "eval_ratio_tuned_median",
    ("tokens / example", "(a)"): "baseline_tokens_per_ex",
    ("tokens / example", "(b)"): "tuned_trainer_tokens_per_ex",
    ("tokens / example", "(c)"): "blurblib_tokens_per_ex",
}


def throughput_view(summary: pd.DataFrame) -> pd.DataFrame:
    """`throughput_summary` as a reader needs it: the arms' medians, the speed-ups and the tokens
    each arm computes per example, one row per task (and the geometric mean), as text with the
    same decimals down a column and blanks for what a row does not have. The full table (min/max,
    precision, FLOP/s) is the saved CSV."""
    shown = {header: column for header, column in THROUGHPUT_VIEW.items() if column in summary}
    view = summary.set_index("task")[list(shown.values())]
    view.columns = pd.MultiIndex.from_tuples(shown)
    view.index.name = None
    for header in view.columns:
        digits = 0 if header[0] == "tokens / example" else 2
        view[header] = view[header].map(lambda v: "" if pd.isna(v) else f"{v:.{digits}f}")
    return view


def _log_ratio_axis(ax, ratios: pd.Series, goals) -> None:
    """A log axis for ratios, ticked in plain numbers (1x, 2x, 5x...), reaching past every
    ratio and every goal line."""
    import matplotlib.ticker as ticker

    values = pd.concat([ratios.dropna(), pd.Series(goals, dtype=float)])
    ax.set_yscale("log")
    ax.set_ylim(values.min() / 1.35, values.max() * 1.35)
    ax.yaxis.set_major_locator(ticker.FixedLocator([t for t in (0.5, 1, 2, 5, 10, 20, 50, 100)]))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def _legends_below(fig, legends) -> None:
    """Each legend under the panels it serves, outside the data: inside, a legend covers bars or
    points. `legends`: (axes whose handles it shows, axes it sits under, columns)."""
    for source, _, _ in legends:
        if source.get_legend() is not None:
            source.get_legend().remove()
    fig.tight_layout(rect=(0, 0.15, 1, 1), w_pad=2.0)
    renderer = fig.canvas.get_renderer()
    below = min(ax.get_tightbbox(renderer).y0 for ax in fig.axes) / fig.bbox.height  # under the tick labels
    for source, under, ncol in legends:
        handles, labels = source.get_legend_handles_labels()
        if handles:
            left, right = under[0].get_position().x0, under[-1].get_position().x1
            fig.legend(handles, labels, loc="upper center", bbox_to_anchor=((left + right) / 2, below - 0.01),
                       ncol=ncol, frameon=False, fontsize=SMALLEST_FONT, handletextpad=0.4, columnspacing=1.2)


def memory_figure(memory: pd.DataFrame, cost: pd.DataFrame | None = None):
    """Peak memory against k (left), with the saved activations; the score cost beside it (right).
    Sized to the notebook's width, so its text is read at the size it was drawn."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    summary = memory_summary(memory)
    n = 2 if cost is not None and len(cost) else 1
    fig, axes = plt.subplots(1, n + 1, figsize=(NOTEBOOK_WIDTH_IN * (n + 1) / 3, 4.0), squeeze=False)
    axes = axes[0]
    sns.lineplot(data=summary, x="freeze_layers", y="peak_mb", hue="model", marker="o", ax=axes[0])
    axes[0].set_title("peak training memory", fontsize=10)
    axes[0].set_ylabel("MB (CPU: peak RSS; GPU: max allocated)", fontsize=10)
    sns.lineplot(data=summary, x="freeze_layers", y="saved_activation_mb", hue="model", marker="o", legend=False,
                 ax=axes[1])
    axes[1].set_title("activations kept for backward", fontsize=10)
    axes[1].set_ylabel("MB", fontsize=10)
    if n == 2:
        sns.pointplot(data=cost, x="freeze_layers", y="change_vs_k0", hue="task",
                      dodge=0.2 if cost["task"].nunique() > 1 else False, markersize=6, ax=axes[2])
        axes[2].axhline(-SLIMFIT_SCORE_BUDGET, color="grey", ls="--", label=f"-{SLIMFIT_SCORE_BUDGET:g} (SlimFit)")
        axes[2].axhline(0.0, color="black", lw=0.8)
        axes[2].set_title("score cost", fontsize=10)
        axes[2].set_ylabel("test score vs k=0 (points)", fontsize=10)
    for ax in axes:
        ax.set_xlabel("frozen lower blocks k", fontsize=10)
        ax.tick_params(labelsize=SMALLEST_FONT)
    for ax in axes[:2]:  # the score panel's x is categorical already
        ax.xaxis.set_major_locator(plt.matplotlib.ticker.MaxNLocator(integer=True))
    _legends_below(fig, [(axes[0], axes[:2], 2)] + ([(axes[2], axes[2:], 1)] if n == 2 else []))
    return fig


def seeds_figure(df: pd.DataFrame):
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    sns.pointplot(data=df, x="k", y="speedup", estimator="median", errorbar=("pi", 100), ax=ax)
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xlabel("seeds trained together (K)")
    ax.set_ylabel("sequential time / parallel time")
    ax.set_title(f"seeds in parallel ({df['device'].iloc[0]}): median, min-max")
    fig.tight_layout()
    return fig


def slimfit_figure(memory: pd.DataFrame, runs: pd.DataFrame):
    """Per task, test score (y) against the arm's peak training memory (x) on the runs' model: one
    small dot per seed, a large one for the mean with its seed sd; the band below standard's mean
    is SlimFit's 0.4-point budget. Left of standard and inside the band is what SlimFit claims."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    runs = with_arm(runs)
    model = memory_model_for(runs["model"].iloc[0], memory)
    peaks = memory[memory["model"] == model].groupby("arm")["peak_mb"].median()
    runs = runs.assign(peak_mb=runs["arm"].map(peaks), arm_name=runs["arm"].map(ARM_NAMES)).dropna(subset=["peak_mb"])
    order = [ARM_NAMES[a] for a in ARMS if a in set(runs["arm"])]
    palette = dict(zip(order, sns.color_palette(n_colors=len(order))))
    tasks = sorted(runs["task"].unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(max(NOTEBOOK_WIDTH_IN, 3.3 * len(tasks)), 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        own = runs[runs["task"] == task]
        means = own.groupby("arm_name", as_index=False).agg(peak_mb=("peak_mb", "first"), score=("score", "mean"),
                                                           sd=("score", "std"))
        sns.scatterplot(data=own, x="peak_mb", y="score", hue="arm_name", hue_order=order, palette=palette, alpha=0.45,
                        s=25, legend=False, ax=ax)
        sns.scatterplot(data=means, x="peak_mb", y="score", hue="arm_name", hue_order=order, palette=palette, s=110,
                        marker="D", legend=ax is axes[0][0], ax=ax)
        ax.errorbar(means["peak_mb"], means["score"], yerr=means["sd"].fillna(0), fmt="none", ecolor="grey", lw=1)
        standard = means.loc[means["arm_name"] == ARM_NAMES["standard"], "score"]
        if len(standard):
            top = float(standard.iloc[0])
            ax.axhspan(top - SLIMFIT_SCORE_BUDGET, top, color="grey", alpha=0.15, lw=0)
            ax.axhline(top, color="black", lw=0.8)
        ax.margins(x=0.15, y=0.08)  # the widest markers (diamonds) sit at the ends of the range: none is cut
        ax.xaxis.set_major_locator(plt.matplotlib.ticker.MaxNLocator(nbins=4))
        ax.tick_params(labelsize=SMALLEST_FONT)
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("peak training memory, MB", fontsize=10)
        ax.set_ylabel("test score", fontsize=10)
    fig.suptitle(f"{model}; grey band: within {SLIMFIT_SCORE_BUDGET:g} points of standard (SlimFit's budget)", fontsize=10)
    _legends_below(fig, [(axes[0][0], list(axes[0]), len(order))])
    return fig


def slimfit_memory_figure(memory: pd.DataFrame):
    """Per model, each arm's peak training memory (median over repetitions): the full bar is the
    arm's peak, its worst step; the darker part of a SlimFit bar is its schedule's own peak, without
    the step in which the lowest layer trains. The cut against standard is written on each bar."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    summary = slimfit_memory_summary(memory)
    names = list(dict.fromkeys(summary["model"]))
    palette = dict(zip(ARMS, sns.color_palette(n_colors=len(ARMS))))
    fig, axes = plt.subplots(1, len(names), figsize=(4.4 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        rows = summary[summary["model"] == name].set_index("arm").reindex([a for a in ARMS if a in set(summary["arm"])])
        x = range(len(rows))
        ax.bar(x, rows["peak_mb"], color=[palette[a] for a in rows.index], alpha=0.45)
        schedule = rows["peak_schedule_mb"].where(rows.index.str.startswith("slimfit"), rows["peak_mb"])
        ax.bar(x, schedule, color=[palette[a] for a in rows.index])
        for i, (arm, row) in enumerate(rows.iterrows()):
            ax.text(i, row["peak_mb"], f"{row['cut_vs_standard']:.2f}x", ha="center", va="bottom", fontsize=SMALLEST_FONT)
        ax.set_xticks(list(x), [ARM_NAMES[a].replace(" + ", "\n+ ").replace("static ", "static\n") for a in rows.index],
                      fontsize=SMALLEST_FONT)
        ax.set_title(name)
        ax.set_ylabel("peak training memory, MB")
    fig.suptitle("SlimFit bars: dark = its schedule's peak, light = its worst step (the lowest layer trains);\n"
                 "label: cut vs standard at the worst step", fontsize=SMALLEST_FONT + 1)
    fig.tight_layout()
    return fig


def rate_figure(curve: pd.DataFrame):
    """Per task, mean test score (seed sd as error bars) against the frozen fraction per step:
    static freezing and SlimFit from standard's point at 0; the band is SlimFit's score budget."""
    import matplotlib.pyplot as plt
    import seaborn as sns

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
