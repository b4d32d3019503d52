"""Saving measurements (JSON + CSV + PNG under `outputs/benchmarks/`) and SUMMARY.md from them."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from ..analysis.plots import to_markdown
from ..core import paths
from .host import machine


def benchmarks_dir(quick: bool = False) -> Path:
    """`outputs/benchmarks/` (committed from a real run); `--quick` sanity runs go to
    `outputs/smoke/benchmarks/`, which git ignores and `make test` wipes."""
    return paths.outputs_dir() / ("smoke/benchmarks" if quick else "benchmarks")


def save_benchmark(name: str, tables: dict[str, pd.DataFrame], figure=None, meta: dict | None = None,
                   out_dir: Path | None = None) -> list[Path]:
    """`<name>.json` (machine, settings and every table's rows), one CSV per table, `<name>.png`."""
    out_dir = Path(out_dir) if out_dir is not None else benchmarks_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    payload = {"benchmark": name, "machine": machine(), "settings": meta or {},
               "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "tables": {key: json.loads(df.to_json(orient="records")) for key, df in tables.items()}}
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1) + "\n")
    written.append(path)
    for key, df in tables.items():
        path = out_dir / (f"{name}.csv" if key == name else f"{name}_{key}.csv")
        df.drop(columns=[c for c in df.columns if df[c].map(lambda v: isinstance(v, (list, dict))).any()]).to_csv(
            path, index=False, float_format="%.4g")
        written.append(path)
    if figure is not None:
        path = out_dir / f"{name}.png"
        figure.savefig(path, dpi=110, bbox_inches="tight")
        written.append(path)
    return written


def _range(median: float, lo: float, hi: float, fmt: str = ".2f", unit: str = "") -> str:
    return f"{median:{fmt}}{unit} ({lo:{fmt}}–{hi:{fmt}})"


def _number(value: float) -> str:
    return f"{value:.1f}" if value == value else "–"


def _csv_sections(out_dir: Path) -> list[str]:
    """Runs per hour by worker layout, and bf16 against fp32 on the same runs (CSV benchmarks)."""

    lines = []
    workers = out_dir / "workers.csv"
    if workers.is_file():
        w = pd.read_csv(workers)
        table = w.groupby("arm", sort=False)["runs_per_hour"].agg(["median", "min", "max"]).reset_index()
        table["runs per hour"] = [_range(a, b, c, ".1f") for a, b, c in zip(table["median"], table["min"], table["max"])]
        lines += ["", "## Runs per hour of a real grid on every core (`blurb bench workers`)", "",
                  to_markdown(table[["arm", "runs per hour"]])]
    precision = out_dir / "precision.csv"
    if precision.is_file():
        lines += ["", "## bf16 autocast against fp32: same configs and seeds (`blurb bench precision`)", "",
                  to_markdown(pd.read_csv(precision), floatfmt=".3g")]
    return lines


ARM_LABELS = {"baseline": "(a) HF-example", "tuned_trainer": "(b) best-configured Trainer", "blurblib": "(c) blurblib"}


def _work_section(s: pd.DataFrame, st: dict) -> list[str]:
    """Padding share and MFU per task and arm, with the formula behind them (throughput files saved
    before these columns existed have none: no section)."""

    arms = [arm for arm in ARM_LABELS if f"{arm}_mfu" in s]
    if not arms:
        return []
    rows = []
    for _, r in s[s["task"] != "geometric mean"].iterrows():
        for arm in arms:
            rows.append({"task": r["task"], "arm": ARM_LABELS[arm], "precision": r.get(f"{arm}_precision", ""),
                         "real / computed tokens": f"{r[f'{arm}_real_tokens']:.0f} / {r[f'{arm}_computed_tokens']:.0f}",
                         "padding share": f"{r[f'{arm}_padding_share']:.0%}",
                         "real-token GFLOP/s": _range(r[f"{arm}_gflop_s"], r[f"{arm}_gflop_s_min"], r[f"{arm}_gflop_s_max"],
                                                      ".1f"),
                         "MFU": _range(100 * r[f"{arm}_mfu"], 100 * r[f"{arm}_mfu_min"], 100 * r[f"{arm}_mfu_max"],
                                       ".1f", "%")})
    peaks = st.get("matmul_peak_flop_s") or {}
    measured = ", ".join(f"{p} {v / 1e9:.1f} GFLOP/s" for p, v in peaks.items())
    return ["", "### Padding and model FLOPs utilisation (MFU)", "",
            "MFU is the rate of *model* FLOPs, those of the real (non-padding) tokens, over the peak FLOP/s of the "
            "arm's precision. Training FLOPs of a pass over sequences of real lengths T: 6·N_tok·ΣT + 6·N_seq·n + "
            "12·L·H·ΣT², where N_tok counts the weights of the Linear layers every token goes through (the L encoder "
            "blocks, a token head) and N_seq those applied once per sequence (pooler and sequence head); 6 = 2 FLOPs per "
            "multiply-add × 3 (forward, backward to the activations, backward to the weights), and 12·L·H·T² is "
            "attention's QKᵀ and AV (2·2·T²·H FLOPs forward per block, ×3 to train). Embeddings, biases, norms and the "
            "optimizer step are left out. "
            "Real and computed tokens are counted from the attention masks of the batches each arm trained on; "
            "padding share = 1 − real / computed. The peak is measured, not a data-sheet figure: "
            f"{st.get('matmul_peak', 'a large matmul timed per precision')}" + (f" ({measured})" if measured else "")
            + ". Padding is computed but not counted, so max-length padding shows as a low MFU.", "",
            to_markdown(pd.DataFrame(rows))]


def write_summary(out_dir: Path | None = None) -> Path:
    """SUMMARY.md from the saved JSON files: every figure as median (min–max), with its machine."""

    out_dir = Path(out_dir) if out_dir is not None else benchmarks_dir()
    loaded = {}
    for name in ("throughput", "memory", "slimfit_memory", "seeds_parallel", "gpu"):
        path = out_dir / f"{name}.json"
        if path.is_file():
            loaded[name] = json.loads(path.read_text())
    lines = ["# Benchmarks", "", "Figures are median (min–max) over repetitions. Regenerate with `make bench`.", ""]
    machines = {json.dumps({k: v for k, v in d["machine"].items() if k != "load_average_1min"}, sort_keys=True)
                for d in loaded.values()}
    for m in sorted(machines):
        m = json.loads(m)
        lines.append(f"Machine: {m.get('cpu_count')}-core CPU ({m.get('cpu')}), torch {m.get('torch')} with "
                     f"{m.get('torch_threads')} threads" + (f", GPU {m['gpu']}" if m.get("gpu") else "") + ".")
    if "throughput" in loaded:
        d = loaded["throughput"]
        st = d["settings"]
        s = pd.DataFrame(d["tables"]["summary"])
        tuned = "tuned_trainer_train_ex_s" in s
        table = pd.DataFrame({
            "task": s["task"],
            "(a) HF-example train ex/s": s["baseline_train_ex_s"].map(_number),
            **({"(b) best-configured Trainer ex/s": s["tuned_trainer_train_ex_s"].map(_number)} if tuned else {}),
            "(c) blurblib train ex/s": s["blurblib_train_ex_s"].map(_number),
            "c / a train": [_range(a, b, c, unit="x") for a, b, c in
                            zip(s["train_ratio_median"], s["train_ratio_min"], s["train_ratio_max"])],
            **({"c / b train": [_range(a, b, c, unit="x") for a, b, c in
                                zip(s["train_ratio_tuned_median"], s["train_ratio_tuned_min"], s["train_ratio_tuned_max"])]}
               if tuned else {}),
            "c / a eval": [_range(a, b, c, unit="x") for a, b, c in
                           zip(s["eval_ratio_median"], s["eval_ratio_min"], s["eval_ratio_max"])],
            "tokens/example (a → c)": [f"{a:.0f} → {b:.0f}" if b == b else "" for a, b in
                                       zip(s["baseline_tokens_per_ex"], s["blurblib_tokens_per_ex"])],
        })
        lines += ["", "## Training throughput: blurblib vs the HF example-script baseline and the best-configured Trainer", "",
                  f"{st['model']}, batch {st['batch_size']}, {st['examples']} training examples per run, "
                  f"{st['reps']} interleaved repetitions, {st['device']}. (a): {st['baseline']}. "
                  + (f"(b): {st['tuned_trainer']}. " if st.get("tuned_trainer") else "")
                  + f"(c) blurblib: {st['blurblib']}. The geometric-mean row is over the per-task values.", "",
                  to_markdown(table)]
        lines += _work_section(s, st)
    if "memory" in loaded:
        d = loaded["memory"]
        st = d["settings"]
        s = pd.DataFrame(d["tables"]["summary"])
        table = pd.DataFrame({
            "model": s["model"] + s["pretrained"].map(lambda p: "" if p else " (random init)"),
            "frozen blocks": s["freeze_layers"].astype(int).astype(str) + "/" + s["num_blocks"].astype(int).astype(str),
            "trainable M": s["trainable_M"].map(lambda v: f"{v:.1f}"),
            "peak MB": [_range(a, b, c, ".0f") for a, b, c in zip(s["peak_mb"], s["peak_mb_min"], s["peak_mb_max"])],
            "k=0 / k": [_range(a, b, c, unit="x") for a, b, c in
                        zip(s["cut_vs_k0_median"], s["cut_vs_k0_min"], s["cut_vs_k0_max"])],
            "saved activations MB": s["saved_activation_mb"].map(lambda v: f"{v:.0f}"),
            "kept by frozen blocks MB": s["frozen_blocks_saved_mb"].map(lambda v: f"{v:.1f}"),
        })
        lines += ["", "## Peak training memory vs frozen lower blocks", "",
                  f"seq {st['seq_len']}, batch {st['batch_size']}, AdamW, {st['reps']} repetition(s), one fresh "
                  f"process per measurement; {st['peak']}. Saved activations: bytes autograd keeps for backward "
                  "(saved-tensor hooks, parameters excluded).", "", to_markdown(table)]
    if "slimfit_memory" in loaded:
        d = loaded["slimfit_memory"]
        st = d["settings"]
        s = pd.DataFrame(d["tables"]["summary"])
        table = pd.DataFrame({
            "model": s["model"], "arm": s["arm"], "technique": s["technique"], "layers frozen per step": s["frozen_per_step"],
            "peak MB": [_range(a, b, c, ".0f") for a, b, c in zip(s["peak_mb"], s["peak_mb_min"], s["peak_mb_max"])],
            "standard / arm": [_range(a, b, c, unit="x") for a, b, c in zip(s["cut_vs_standard"], s["cut_min"], s["cut_max"])],
            "schedule's peak MB": s["peak_schedule_mb"].map(lambda v: f"{v:.0f}"),
            "saved for backward MB": s["saved_activation_mb"].map(lambda v: f"{v:.0f}"),
        })
        lines += ["", "## SlimFit's memory: standard vs static freezing vs SlimFit (+ int8 store)", "",
                  f"seq {st['seq_len']}, batch {st['batch_size']}, AdamW, {st['reps']} repetition(s), one fresh process "
                  f"per arm; {st['peak']}. {st.get('steps_note', '')}. The schedule's peak leaves out the step in "
                  "which SlimFit's lowest layer trains.", "", to_markdown(table)]
    if "seeds_parallel" in loaded:
        d = loaded["seeds_parallel"]
        st = d["settings"]
        s = pd.DataFrame(d["tables"]["summary"])
        table = pd.DataFrame({
            "K": s["k"].astype(int), "sequential s": s["sequential_s"].map(lambda v: f"{v:.2f}"),
            "parallel s": s["parallel_s"].map(lambda v: f"{v:.2f}"),
            "speed-up": [_range(a, b, c, unit="x") for a, b, c in zip(s["speedup_median"], s["speedup_min"], s["speedup_max"])],
            "tokens, parallel / sequential": s["token_overhead"].map(lambda v: f"{v:.2f}") if "token_overhead" in s else "",
            "max abs. loss diff": s["max_loss_diff"].map(lambda v: f"{v:.1e}"),
            "max abs. weight diff": s["max_param_diff"].map(lambda v: f"{v:.1e}"),
            "same per-seed results": s["same_results"].map({True: "yes", False: "NO"}),
        })
        lines += ["", "## Seeds in parallel (vmap over stacked parameters) vs sequential", "",
                  f"{st['model']} on {st['task']}, {st['n_examples']} examples, batch {st['batch_size']}, max length "
                  f"{st['max_length']}, {st['device']}; {st['note']}.", "", to_markdown(table)]
    lines += _csv_sections(out_dir)
    loads = {name: d["machine"].get("load_average_1min") for name, d in loaded.items()}
    if any(v is not None for v in loads.values()):
        lines += ["", "1-minute load average when each benchmark finished: " +
                  ", ".join(f"{k} {v}" for k, v in loads.items() if v is not None) +
                  f" (the benchmark's own {machine().get('torch_threads', 2)} threads account for about that many; "
                  "more means other work shared the CPU, which slows both arms of a comparison alike only "
                  "on average)."]
    lines += ["", "## GPU: bf16, SDPA, torch.compile", ""]
    if "gpu" in loaded:
        g = pd.DataFrame(loaded["gpu"]["tables"]["gpu"])
        table = g[["model", "mode", "examples_per_s", "step_s_median", "step_s_min", "step_s_max", "tflops",
                   "fraction_of_peak"]]
        lines.append(to_markdown(table, floatfmt=".3g"))
    else:
        lines.append("skipped: no CUDA device on the machine that ran `make bench`.")
    path = out_dir / "SUMMARY.md"
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
