"""Seaborn figures and tables that notebooks show and `outputs/` keeps.

Each helper returns the figure so a notebook displays it; `save_figure`/`save_table` put it
under the profile's output folder, which `reproduce` collects into REPORT.md.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

sns.set_theme(style="whitegrid", context="notebook")


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
                       score: str = "test_score", title: str | None = None):
    """One panel per task: a box per group and a dot per seed, so spread is visible at a glance."""
    data = df.dropna(subset=[score])
    n_cols = max(data[col].nunique(), 1)
    fig, axes = plt.subplots(1, n_cols, figsize=(4.2 * n_cols, 3.8), squeeze=False)
    for ax, (name, group) in zip(axes[0], data.groupby(col, sort=True)):
        sns.boxplot(data=group, x=x, y=score, hue=hue, ax=ax, fliersize=0, boxprops={"alpha": 0.35})
        sns.stripplot(data=group, x=x, y=score, hue=hue, ax=ax, dodge=hue is not None, size=5, legend=False)
        ax.set_title(name)
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=20)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def knob_curve(df: pd.DataFrame, knob: str, score: str = "test_score", hue: str = "task", title: str | None = None):
    """Score against a technique's knob (k frozen blocks, decay, n re-initialised), mean ± sd."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    sns.pointplot(data=df.dropna(subset=[score]), x=knob, y=score, hue=hue, errorbar="sd", dodge=0.2, ax=ax)
    ax.set_title(title or knob)
    fig.tight_layout()
    return fig


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
