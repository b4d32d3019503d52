"""The benchmark figures (seaborn): throughput, memory beside score cost, seeds in parallel."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .memory import memory_summary
from .settings import SLIMFIT_SCORE_BUDGET, THROUGHPUT_GOAL, THROUGHPUT_TUNED_GOAL
from .speed import throughput_ratios


def throughput_figure(df: pd.DataFrame):
    """Examples/s per arm (left) and blurblib's speed-up over each Trainer arm per repetition (right)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    ratios = throughput_ratios(df)
    labels = {"train_ratio": "vs (a) HF-example baseline", "train_ratio_tuned": "vs (b) tuned Trainer"}
    long = ratios.melt(id_vars=["task", "rep"], value_vars=[c for c in labels if c in ratios.columns],
                       var_name="against", value_name="speed-up")
    long["against"] = long["against"].map(labels)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    sns.barplot(data=df, x="task", y="train_examples_per_s", hue="arm", estimator="median", errorbar=("pi", 100),
                ax=axes[0])
    axes[0].set_ylabel("training examples / s")
    axes[0].set_title("throughput (bars: median of reps; whiskers: min-max)")
    np.random.seed(0)  # seaborn jitters with numpy's global generator: a re-run draws the same figure
    sns.stripplot(data=long, x="task", y="speed-up", hue="against", dodge=len(labels) > 1, size=7, ax=axes[1])
    axes[1].axhline(THROUGHPUT_GOAL, color="grey", ls="--", label=f"goal vs (a) {THROUGHPUT_GOAL:g}x")
    axes[1].axhline(THROUGHPUT_TUNED_GOAL, color="black", lw=0.8, label=f"goal vs (b) {THROUGHPUT_TUNED_GOAL:g}x")
    axes[1].set_ylabel("blurblib / Trainer arm")
    axes[1].set_title("speed-up per repetition (train)")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    return fig


def memory_figure(memory: pd.DataFrame, cost: pd.DataFrame | None = None):
    """Peak memory against k (left), with the saved activations; the score cost beside it (right)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    summary = memory_summary(memory)
    n = 2 if cost is not None and len(cost) else 1
    fig, axes = plt.subplots(1, n + 1, figsize=(4.6 * (n + 1), 3.6), squeeze=False)
    axes = axes[0]
    sns.lineplot(data=summary, x="freeze_layers", y="peak_mb", hue="model", marker="o", ax=axes[0])
    axes[0].set_title("peak training memory")
    axes[0].set_xlabel("frozen lower blocks k")
    axes[0].set_ylabel("MB (peak RSS; CUDA: max allocated)")
    sns.lineplot(data=summary, x="freeze_layers", y="saved_activation_mb", hue="model", marker="o", ax=axes[1])
    axes[1].set_title("activations kept for backward")
    axes[1].set_xlabel("frozen lower blocks k")
    axes[1].set_ylabel("MB")
    if n == 2:
        sns.pointplot(data=cost, x="freeze_layers", y="change_vs_k0", hue="task",
                      dodge=0.2 if cost["task"].nunique() > 1 else False, ax=axes[2])
        axes[2].axhline(-SLIMFIT_SCORE_BUDGET, color="grey", ls="--", label=f"-{SLIMFIT_SCORE_BUDGET:g} (SlimFit)")
        axes[2].axhline(0.0, color="black", lw=0.8)
        axes[2].set_title("score cost")
        axes[2].set_xlabel("frozen lower blocks k")
        axes[2].set_ylabel("test score change vs k=0 (points)")
        axes[2].legend(fontsize=8)
    fig.tight_layout()
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

    from .slimfit_compare import ARMS, memory_model_for
    from .verdicts import ARM_NAMES, _with_arm

    runs = _with_arm(runs)
    model = memory_model_for(runs["model"].iloc[0], memory)
    peaks = memory[memory["model"] == model].groupby("arm")["peak_mb"].median()
    runs = runs.assign(peak_mb=runs["arm"].map(peaks), arm_name=runs["arm"].map(ARM_NAMES)).dropna(subset=["peak_mb"])
    order = [ARM_NAMES[a] for a in ARMS if a in set(runs["arm"])]
    palette = dict(zip(order, sns.color_palette(n_colors=len(order))))
    tasks = sorted(runs["task"].unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.8), squeeze=False)
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
        ax.set_title(task)
        ax.set_xlabel(f"peak training memory, MB ({model})")
        ax.set_ylabel("test score")
    if axes[0][0].get_legend() is not None:
        axes[0][0].legend(fontsize=8, title=None)
    fig.suptitle(f"grey band: within {SLIMFIT_SCORE_BUDGET:g} points of standard (SlimFit's budget)", fontsize=9)
    fig.tight_layout()
    return fig


def slimfit_memory_figure(memory: pd.DataFrame):
    """Per model, each arm's peak training memory (median over repetitions): the full bar is the
    arm's peak, its worst step; the darker part of a SlimFit bar is its schedule's own peak, without
    the step in which the lowest layer trains. The cut against standard is written on each bar."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from .slimfit_compare import ARMS, slimfit_memory_summary
    from .verdicts import ARM_NAMES

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
            ax.text(i, row["peak_mb"], f"{row['cut_vs_standard']:.2f}x", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(list(x), [ARM_NAMES[a].replace(" + ", "\n+ ") for a in rows.index], fontsize=8)
        ax.set_title(name)
        ax.set_ylabel("peak training memory, MB")
    fig.suptitle("SlimFit bars: dark = its schedule's peak, light = its worst step (the lowest layer trains); "
                 "label: cut vs standard at the worst step", fontsize=8)
    fig.tight_layout()
    return fig
