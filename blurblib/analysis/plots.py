"""Seaborn figures and tables that notebooks show and `outputs/` keeps.

Each helper returns the figure so a notebook displays it; `save_figure`/`save_table` put it
under the profile's output folder, which `reproduce` collects into REPORT.md.
"""
from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..runs.calibration import choose

sns.set_theme(style="whitegrid", context="notebook")
pd.set_option("display.max_colwidth", None)  # claims are the paper's sentences: a table shows them whole


def save_figure(fig, profile, name: str):
    """Save as `<figures>/<name>.png` (profile.figure_dir()) and return the path."""
    folder = profile.figure_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def save_table(df: pd.DataFrame, profile, name: str):
    folder = profile.table_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    df.to_csv(path, index=False, float_format="%.4g")
    return path


def seed_distributions(df: pd.DataFrame, x: str, hue: str | None = None, col: str = "task",
                       score: str = "test_score", title: str | None = None, reference: dict | None = None):
    """One panel per task: a box per group and a dot per seed, so spread is visible at a glance.
    `reference` ({task: score}) draws the frozen-encoder reference as a dashed line: a box
    below it is a model that fine-tuning made worse than no fine-tuning."""
    data = df.dropna(subset=[score])
    n_cols = max(data[col].nunique(), 1)
    width = max(4.2, 0.62 * data[x].nunique())  # ten arms need room for ten labels
    fig, axes = plt.subplots(1, n_cols, figsize=(width * n_cols, 3.8), squeeze=False)
    reference_line = None
    for ax, (name, group) in zip(axes[0], data.groupby(col, sort=True)):
        sns.boxplot(data=group, x=x, y=score, hue=hue, ax=ax, fliersize=0, boxprops={"alpha": 0.35})
        np.random.seed(0)  # seaborn jitters with numpy's global generator: a re-run draws the same figure
        sns.stripplot(data=group, x=x, y=score, hue=hue, ax=ax, dodge=hue is not None, size=5, legend=False)
        if reference and name in reference and np.isfinite(reference[name]):
            reference_line = ax.axhline(reference[name], color="grey", linestyle="--", linewidth=1.2)
        ax.set_title(name)
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=30)
        plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
    if title:
        fig.suptitle(title)
    # one legend for all panels, below them: a legend inside a panel covers seeds
    fig.tight_layout(rect=(0, 0.07, 1, 1) if reference_line is not None else None)
    if reference_line is not None:
        fig.legend([reference_line], ["frozen-encoder reference (dashed)"], loc="lower center", frameon=False, fontsize=8)
    return fig


def knob_curve(df: pd.DataFrame, knob: str, score: str = "test_score", hue: str = "task", title: str | None = None):
    """Score against a technique's knob (k frozen blocks, decay, n re-initialised), mean ± sd."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    data = df.dropna(subset=[score])
    dodge = 0.2 if data[hue].nunique() > 1 else False  # seaborn divides by (levels - 1)
    sns.pointplot(data=data, x=knob, y=score, hue=hue, errorbar="sd", dodge=dodge, ax=ax)
    ax.set_title(title or knob)
    fig.tight_layout()
    return fig


def rounded(df: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """`df.round(digits)` for display, except float columns whose values are all below 10**-digits
    in size (learning rates): those are shown in scientific notation instead of as 0.0."""
    out = df.round(digits)
    for column in df.select_dtypes("float").columns:
        values = df[column].dropna().abs()
        if len(values) and (values > 0).all() and (values < 10 ** -digits).all():
            out[column] = df[column].map(lambda v: f"{v:.0e}" if v == v else v)
    return out


# What a claims table shows in a notebook (the CSV keeps every column): who, what, how big, how sure.
CLAIM_COLUMNS = ["setting", "task", "model", "small", "large", "technique", "reinit_layers", "arm", "against", "kind", "claim", "estimate",
                 "ci_low", "ci_high", "n", "dropped", "test", "p_value", "p_holm", "verdict", "power", "observed"]


def claims_view(claims: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """A claims table as a reader needs it: the columns the text discusses, effects rounded,
    p-values with significant digits (2.4e-04, never 0.0)."""
    shown = claims[[c for c in CLAIM_COLUMNS if c in claims]].copy()
    for column in ("estimate", "ci_low", "ci_high"):
        if column in shown:
            shown[column] = shown[column].astype(float).round(digits)
    for column in ("p_value", "p_holm"):
        if column in shown:
            shown[column] = shown[column].map(p_text)
    return shown


def p_text(p) -> str:
    """A p-value in two significant digits: 0.031, 0.00024 as 2.4e-04, 1 as 1; NaN as a dash."""
    if p is None or not np.isfinite(p):
        return "–"
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def to_markdown(df: pd.DataFrame, floatfmt: str = ".2f") -> str:
    """A GitHub markdown table without the optional `tabulate` dependency."""
    def cell(v):
        if isinstance(v, float):
            return format(v, floatfmt) if v == v else "–"
        return str(v)

    header = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def label_shares(labels: pd.DataFrame):
    """One small bar chart per task: the share of each label (skew sets the trivial baseline)."""
    grid = sns.catplot(data=labels, x="share", y="label", col="task", col_wrap=4, kind="bar",
                       sharey=False, sharex=True, height=2.2, aspect=1.5, color="steelblue")
    grid.set_titles("{col_name}")
    grid.set_axis_labels("share", "")
    return grid


def length_distributions(lengths: pd.DataFrame):
    """Sub-word lengths per task, log scale, with each task's BLURB max length dashed."""
    order = sorted(lengths["task"].unique())
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(order) + 1.2))
    sns.boxplot(data=lengths, y="task", x="length", order=order, hue="type", dodge=False, fliersize=1.5, ax=ax, log_scale=True)
    limits = lengths.groupby("task")["max_length"].first()
    for i, task in enumerate(order):
        ax.vlines(limits[task], i - 0.4, i + 0.4, colors="black", linestyles="dashed", linewidth=1)
    ax.set_xlabel("sub-words per input (dashed: BLURB max length)")
    ax.set_ylabel("")
    fig.tight_layout()
    return fig


def gain_vs_variance(table: pd.DataFrame):
    """Per task: the larger model's mean score gain (x) against its seed-variance ratio (y, log);
    with several (small, large) pairs (`findings.size_table_by_pair`), one marker per pair."""
    fig, ax = plt.subplots(figsize=(5, 3.8))
    pairs = table[["small", "large"]].drop_duplicates() if {"small", "large"} <= set(table.columns) else []
    if len(pairs) > 1:
        table = table.assign(pair=table["small"] + " -> " + table["large"])
    sns.scatterplot(data=table, x="score gain", y="variance ratio", hue="task", style="pair" if len(pairs) > 1 else None,
                    s=80, ax=ax)
    ax.set_yscale("log")
    ax.axhline(1, color="grey", linewidth=1, linestyle="dashed")
    ax.axvline(0, color="grey", linewidth=1, linestyle="dashed")
    ax.set_xlabel("mean score gain of the larger model (points)")
    ax.set_ylabel("seed variance ratio (large / small)")
    fig.tight_layout()
    return fig


def blurb_bars(table: pd.DataFrame, model: str):
    """Per task: our mean ± sd over seeds beside PubMedBERT's published score."""
    ours = table.assign(source=f"{model} (ours, mean ± sd)", score=table["mean"])
    ref = table.assign(source="PubMedBERT (Gu et al. 2021)", score=table["PubMedBERT (Gu et al.)"], std=0.0)
    parts = [ours, ref]
    if "frozen reference" in table:
        parts.insert(1, table.assign(source=f"{model}, frozen (probe / zero-shot)", score=table["frozen reference"], std=0.0))
    data = pd.concat(parts)
    fig, ax = plt.subplots(figsize=(9, 3.8))
    sns.barplot(data=data, x="task", y="score", hue="source", ax=ax)
    centers = [bar.get_x() + bar.get_width() / 2 for bar in ax.patches[: len(table)]]
    ax.errorbar(centers, table["mean"], yerr=table["std"].fillna(0), fmt="none", ecolor="black", capsize=3)
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right", rotation_mode="anchor")
    ax.set_xlabel("")
    ax.set_ylabel("test score (BLURB metric)")
    # above the bars, not on them: every corner of the axes holds some task's bar
    sns.move_legend(ax, "lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(parts), frameon=False, fontsize=9, title=None)
    fig.tight_layout()
    return fig


def vocabulary_bars(table: pd.DataFrame, metrics: dict[str, str], title: str | None = None):
    """One panel per metric of `vocab.vocabulary_table` (column -> axis label): a bar per task and
    vocabulary, so a domain vocabulary's shorter cuts show task by task. Rows with no value (no
    entity mentions outside NER) are left out of that panel."""
    fig, axes = plt.subplots(len(metrics), 1, figsize=(11, 3.2 * len(metrics)), squeeze=False)
    for ax, (column, label) in zip(axes[:, 0], metrics.items()):
        data = table.dropna(subset=[column])
        sns.barplot(data=data, x="task", y=column, hue="vocabulary", ax=ax)
        ax.set_ylabel(label)
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=30)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="vocabulary", title_fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def mlm_loss_curves(curves: pd.DataFrame, window: int = 5):
    """Training MLM loss against tokens seen, one line per pretraining arm (raw, faint) with a
    centred rolling mean over `window` steps on top."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    if len(curves):
        smooth = curves.assign(loss=curves.groupby("arm", observed=True)["loss"].transform(
            lambda s: s.rolling(window, min_periods=1, center=True).mean()))
        sns.lineplot(data=curves, x="tokens", y="loss", hue="arm", alpha=0.25, legend=False, ax=ax)
        sns.lineplot(data=smooth, x="tokens", y="loss", hue="arm", ax=ax)
    ax.set_xlabel("sub-word tokens seen")
    ax.set_ylabel("MLM loss (masked tokens)")
    ax.set_title("continued MLM pretraining")
    fig.tight_layout()
    return fig


def lr_label(lr: float) -> str:
    """A learning rate as a reader writes it: 2e-5, 1e-4, 3e-4."""
    mantissa, exponent = f"{lr:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def lr_palette(lrs) -> dict[float, tuple]:
    """One clearly different colour per learning rate, from a qualitative palette: a sequential
    one draws 2e-5, 3e-5 and 5e-5 as three shades of one colour. The rates tried most often (one
    entry of `lrs` per task that tried it) get the palette's first, most distinct colours."""
    counts = pd.Series([float(lr) for lr in lrs]).value_counts()
    by_use = sorted(counts.index, key=lambda lr: (-counts[lr], lr))
    colours = dict(zip(by_use, itertools.cycle(_DISTINCT)))
    return {lr: colours[lr] for lr in sorted(colours)}


# seaborn's colour-blind palette with its vermillion last: beside its orange, the two read alike
_DISTINCT = [sns.color_palette("colorblind")[i] for i in (0, 1, 2, 4, 5, 9, 8, 6, 7, 3)]


def calibration_curves(table: pd.DataFrame, chosen: pd.DataFrame | None = None, col_wrap: int = 4):
    """Dev score per epoch for each candidate learning rate, one panel per task, with the frozen
    reference dashed: the evidence behind each task's recipe. The recipe `calibration.choose`
    picked (`chosen`, by task) is ringed, and epochs whose dev predictions collapsed to one
    answer are crossed: the choice passes over them, which is why a ringed point can sit below
    a crossed one."""
    if chosen is None:

        chosen = choose(table)
    tasks = list(dict.fromkeys(table["task"]))
    palette = lr_palette(table.drop_duplicates(["task", "lr"])["lr"])
    n_rows = -(-len(tasks) // col_wrap)
    fig, axes = plt.subplots(n_rows, col_wrap, figsize=(2.45 * col_wrap, 2.2 * n_rows + 0.9), squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        _calibration_panel(ax, table[table["task"] == task], palette, chosen.loc[task] if task in chosen.index else None)
        ax.set_title(task, fontsize=10)
    for ax in axes.flat[len(tasks):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("dev score")
    fig.tight_layout(rect=(0, 0.05, 1, 1), h_pad=0.6, w_pad=0.4)
    fig.legend(*_calibration_legend(palette), loc="lower center", ncol=len(palette) + 3, frameon=False, fontsize=9,
               columnspacing=1.0, handletextpad=0.3)
    return fig


def _calibration_panel(ax, rows: pd.DataFrame, palette: dict, pick) -> None:
    """One task: a line per learning rate, collapsed epochs crossed, the chosen recipe ringed."""
    for lr, line in rows.groupby("lr", sort=True):
        line = line.sort_values("epoch")
        ax.plot(line["epoch"], line["dev_score"], color=palette[float(lr)], marker="o", markersize=4, linewidth=1.5)
        collapsed = line[line["collapsed"].astype(bool)]
        ax.scatter(collapsed["epoch"], collapsed["dev_score"], marker="x", s=40, color="black", linewidths=1.2, zorder=3)
    reference_dev = rows["reference_dev"].dropna()
    if len(reference_dev):
        ax.axhline(float(reference_dev.iloc[0]), color="grey", linestyle="--", linewidth=1.1)
    if pick is not None:
        ax.scatter([pick["epoch"]], [pick["dev_score"]], s=170, facecolors="none", edgecolors="black", linewidths=1.6,
                   zorder=4)
    ax.xaxis.set_major_locator(plt.matplotlib.ticker.MaxNLocator(integer=True, nbins=5, min_n_ticks=2))
    ax.set_xlim(0.5, rows["epoch"].max() + 0.5)
    ax.margins(y=0.12)
    ax.tick_params(labelsize=9)
    ax.set_xlabel("epoch", fontsize=9)


def _calibration_legend(palette: dict):
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, marker="o", markersize=4, linewidth=1.5) for c in palette.values()]
    labels = [f"lr {lr_label(lr)}" for lr in palette]
    handles += [Line2D([], [], color="grey", linestyle="--", linewidth=1.1),
                Line2D([], [], marker="o", markersize=11, markerfacecolor="none", markeredgecolor="black", linestyle=""),
                Line2D([], [], marker="x", markersize=6, color="black", linestyle="")]
    labels += ["frozen reference", "chosen recipe", "collapsed to one answer"]
    return handles, labels


def instability_scan(table: pd.DataFrame):
    """The scan at a glance, one panel per task: failure rate at the end of training (top) and
    seed sd of the final dev score (bottom) against optimisation steps, a line per head and
    optimiser recipe at the base learning rate (thick, with squares: the larger encoder),
    triangles for the other learning rates. Unstable-but-learnable cells (some seeds fail, some beat the frozen
    reference) are ringed: there a remedy has something to remove."""
    task_order = list(dict.fromkeys(table["task"]))
    fig, axes = plt.subplots(2, len(task_order), figsize=(3.1 * len(task_order), 6.6), squeeze=False, sharey="row")
    styles = {"stabilised": "-", "bert-original": "--"}
    order = ["cls", "mean", "biencoder", "token"]  # fixed, so a head keeps its colour in every figure
    heads = sorted(table["head"].unique(), key=lambda h: order.index(h) if h in order else len(order))
    palette = sns.color_palette("colorblind")
    colours = dict(zip(order, (palette[0], palette[2], palette[4], palette[3])))  # blue, green, purple, red
    colours.update({h: "grey" for h in heads if h not in colours})
    base_lr = table["lr"].mode().iloc[0] if "lr" in table else None
    scan_model = table["model"].mode().iloc[0]  # the others (the larger encoder) drawn with squares, named
    for column, task in enumerate(task_order):
        group = table[table["task"] == task]
        for (model, head, recipe), cells in group.groupby(["model", "head", "recipe"], sort=True):
            cells = cells.sort_values("steps")
            line = cells if base_lr is None else cells[cells["lr"] == base_lr]
            other_model = model != scan_model
            style = dict(color=colours[head], linestyle=styles.get(recipe, ":"), marker="s" if other_model else "o",
                         markersize=5 if other_model else 4, linewidth=2.5 if other_model else 1.5)
            label = f"{head} head, {recipe}" + (f", {model}" if other_model else "")
            axes[0, column].plot(line["steps"], line["failed"], label=label, **style)
            axes[1, column].plot(line["steps"], line["final_dev_sd"], **style)
            # the scan's other learning rates: a triangle pointing up (larger) or down, hollow for bert-original
            for lr, point in ([] if base_lr is None else cells[cells["lr"] != base_lr].groupby("lr")):
                mark = dict(marker="^" if lr > base_lr else "v", s=40, edgecolors=colours[head],
                            facecolors=colours[head] if recipe == "stabilised" else "none")
                axes[0, column].scatter(point["steps"], point["failed"], label=f"{head} head, {recipe}, lr {lr:g}", **mark)
                axes[1, column].scatter(point["steps"], point["final_dev_sd"], **mark)
            ringed = cells[cells["unstable_but_learnable"]]
            axes[0, column].scatter(ringed["steps"], ringed["failed"], s=110, facecolors="none", edgecolors="black")
        axes[0, column].set_title(task)
        axes[1, column].set_xlabel("optimisation steps")
        for ax in axes[:, column]:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(plt.matplotlib.ticker.ScalarFormatter())
            ax.xaxis.set_minor_formatter(plt.matplotlib.ticker.NullFormatter())
            ax.set_xticks(sorted(table["steps"].unique()))
    axes[0, 0].set_ylabel("failed (end of training)")
    axes[1, 0].set_ylabel("seed sd (final dev)")
    axes[0, 0].set_ylim(-0.05, 1.05)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    for ax in axes[0, 1:]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.tight_layout(rect=(0, 0.2, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=4, frameon=False, fontsize=9,
               title="ringed: unstable but learnable (some seeds fail, some beat the frozen probe)", title_fontsize=9)
    return fig
