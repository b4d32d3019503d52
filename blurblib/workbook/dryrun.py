"""What a reproduction costs before it runs: every notebook's plan in runs and GPU-hours.

    blurb reproduce --profile paper --dry-run

Each run's time comes from `runs.cost`'s model: its training and evaluation FLOPs (6 x encoder
weights x tokens, 2 x for evaluation passes) at an effective FLOP rate, plus a fixed cost per
optimizer step (kernel launches, the Python loop) and per run (loading the model, tokenising).
With no GPU measurement committed, the rate is a stated assumption; `blurb bench gpu` on a GPU
writes outputs/benchmarks/gpu.json, whose best measured MFU per model size then replaces it.

K-seed packing (`blurblib.bench.seeds`: K seeds of one config trained as one vmapped model)
computes the same FLOPs but pays the per-step and per-run costs once for K seeds; the last
column is the time left if every group of seeds were packed K at a time.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd

from ..core import paths
from ..encoders import models
from ..runs import results, sweep
from ..runs.cost import EFFECTIVE_FLOPS, RUN_OVERHEAD_S, STEP_OVERHEAD_S, model_shape, run_flops, train_steps
from . import grids, profiles

PACK_K = 8  # seeds per packed model: what `blurb bench seeds` measures (K = 4, 8)


@dataclasses.dataclass(frozen=True)
class CostModel:
    """The assumptions behind every number of a dry run, printed with it."""

    device: str
    flops_per_s: float
    step_overhead_s: float
    run_overhead_s: float
    source: str

    def lines(self) -> list[str]:
        return [f"assumptions ({self.device}): {self.flops_per_s:.2g} FLOP/s of useful training work ({self.source}); "
                f"{self.step_overhead_s * 1e3:g} ms per optimizer step and {self.run_overhead_s:g} s per run of fixed cost; "
                f"K-seed packing with K = {PACK_K} pays the fixed costs once per K seeds, same FLOPs"]


def cost_model(device: str = "cuda") -> CostModel:
    """The sweep planner's rates, or the committed GPU measurement's best MFU where there is one."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    measured = _measured_gpu_rate() if kind == "cuda" else None
    if measured:
        rate, source = measured
    else:
        rate = EFFECTIVE_FLOPS[kind]
        source = ("assumed: about 20% of an H100's 989 TFLOP/s dense bf16 peak, typical of BERT fine-tuning; no GPU "
                  "measurement is committed (outputs/benchmarks/gpu.json)") if kind == "cuda" else \
            "measured blurblib training on this project's 2-core CPU (outputs/benchmarks/)"
    return CostModel(kind, rate, STEP_OVERHEAD_S[kind], RUN_OVERHEAD_S[kind], source)


def _measured_gpu_rate() -> tuple[float, str] | None:
    path = paths.outputs_dir() / "benchmarks" / "gpu.json"
    if not path.is_file():
        return None
    payload = json.loads(path.read_text())
    rows = pd.DataFrame(payload.get("tables", {}).get("gpu", []))
    if not len(rows) or "achieved_flops" not in rows:
        return None
    best = float(rows["achieved_flops"].max())
    return best, f"measured: best mode of `blurb bench gpu` on {payload.get('machine', {}).get('gpu', 'a GPU')}"


def notebook_costs(profile: str, device: str | None = None, cost: CostModel | None = None) -> pd.DataFrame:
    """One row per (notebook, model): runs, runs still to train, hours, and hours with K-seed packing."""
    rows = []
    for notebook in profiles.notebooks():
        P = profiles.get(notebook, profile, device=device)
        model = cost or cost_model(P.device)
        grid = grids.for_notebook(P)
        todo = _not_stored(P, grid)
        for name, configs in _by_model(grid.runs() + grid.calibration).items():
            pending = [c for c in configs if c.run_id in todo]
            seconds = sum(_seconds(c, model) for c in pending)
            rows.append({"notebook": notebook, "model": Path(name).name, "size": _size(name), "runs": len(configs),
                         "to train": len(pending), "hours": seconds / 3600,
                         "hours packed": _packed_seconds(pending, model) / 3600})
        if not grid.runs() and not grid.calibration:
            rows.append({"notebook": notebook, "model": "-", "size": "-", "runs": 0, "to train": 0, "hours": 0.0,
                         "hours packed": 0.0})
    return pd.DataFrame(rows)


def _not_stored(P, grid) -> set[str]:
    """Ids of the grid's runs (and calibration runs) that neither store serves."""
    return _missing(P.results_dir, grid.runs(), P.any_precision) | _missing(P.calibration_dir(), grid.calibration,
                                                                            P.any_precision)


def _missing(store_dir, configs, any_precision: bool) -> set[str]:

    store = results.ResultsStore(store_dir)
    return {c.run_id for c in configs if sweep.stored(store, c, any_precision) is None}


def _by_model(configs) -> dict[str, list]:
    out: dict[str, list] = {}
    for config in configs:
        out.setdefault(config.model, []).append(config)
    return out


def _size(model: str) -> str:
    try:
        spec = models.get(model)
    except Exception:  # an arm not built yet: the registry model its name starts with
        spec = model_shape(model)
    return "large" if spec.layers >= 24 else "base" if spec.layers >= 12 else "small"


def _seconds(config, cost: CostModel) -> float:
    flops, steps = run_flops(config), train_steps(config)
    return flops / cost.flops_per_s + steps * cost.step_overhead_s + cost.run_overhead_s


def _packed_seconds(configs, cost: CostModel) -> float:
    """Seeds of one config packed K at a time: FLOPs unchanged, fixed costs once per pack."""
    groups: dict[tuple, list] = {}
    for config in configs:
        groups.setdefault(dataclasses.astuple(dataclasses.replace(config, seed=0)), []).append(config)
    total = 0.0
    for members in groups.values():
        packs = -(-len(members) // PACK_K)
        flops = sum(run_flops(c) for c in members)
        steps = train_steps(members[0])
        total += flops / cost.flops_per_s + packs * (steps * cost.step_overhead_s + cost.run_overhead_s)
    return total


def format_costs(table: pd.DataFrame, cost: CostModel, profile: str) -> str:
    """The dry run's printout: per notebook and model, totals per model size, the assumptions."""
    lines = [f"dry run of profile {profile!r}: nothing is trained", *cost.lines(), ""]
    shown = table.assign(hours=table["hours"].round(2), **{"hours packed": table["hours packed"].round(2)})
    lines.append(shown.to_string(index=False))
    sizes = table.groupby("size", sort=False)[["runs", "to train", "hours", "hours packed"]].sum()
    lines += ["", "by model size:", sizes.round(2).to_string()]
    total, packed = table["hours"].sum(), table["hours packed"].sum()
    unit = "GPU-hours" if cost.device == "cuda" else "CPU-hours"
    lines += ["", f"total: {int(table['to train'].sum())} runs to train, {total:.1f} {unit}; "
                  f"with {PACK_K}-seed packing {packed:.1f} {unit} ({total - packed:.1f} saved)"]
    return "\n".join(lines)
