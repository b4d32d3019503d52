"""Does bf16 change the science? The same configs and seeds trained in fp32 and in bf16.

bf16 autocast rounds every matmul, so two runs that differ only in precision diverge a little,
as two CPUs' kernels do. What matters is whether that difference is small against the spread
over seeds, which is what the notebooks compare techniques and models by.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..analysis import stats
from ..training.train import RunConfig


def twins(configs: list[RunConfig]) -> list[RunConfig]:
    """Each config in fp32 and in bf16 (everything else, the seed included, unchanged)."""
    return [dataclasses.replace(c, precision=p) for c in configs for p in ("fp32", "bf16")]


def precision_table(runs: pd.DataFrame, score: str = "test_score") -> pd.DataFrame:
    """Per task: fp32 and bf16 means over the same seeds, the paired difference (bf16 - fp32)
    with its 95% bootstrap CI and two-sided Wilcoxon p, the fp32 seed sd, and whether the
    difference is within seed noise (|mean difference| below the seed sd)."""
    rows = []
    for task, group in runs.groupby("task", sort=True):
        wide = group.pivot_table(index="seed", columns="precision", values=score, aggfunc="mean").dropna()
        diff = (wide["bf16"] - wide["fp32"]).to_numpy()
        lo, hi = stats.bootstrap_ci(diff)
        both = stats.wilcoxon_greater(diff), stats.wilcoxon_greater(-diff)
        p = min(1.0, 2 * min(both)) if len(diff) else float("nan")
        sd = float(wide["fp32"].std(ddof=1)) if len(wide) > 1 else float("nan")
        rows.append({"task": task, "seeds": len(wide), "fp32 mean": float(wide["fp32"].mean()),
                     "bf16 mean": float(wide["bf16"].mean()), "bf16 - fp32": float(np.mean(diff)) if len(diff) else np.nan,
                     "ci_low": lo, "ci_high": hi, "p_two_sided": p, "fp32 seed sd": sd,
                     "within seed noise": bool(abs(np.mean(diff)) < sd) if len(diff) and np.isfinite(sd) else False})
    return pd.DataFrame(rows)
