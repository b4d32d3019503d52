"""`blurb bench NAME`: the benchmarks' command lines. Each function takes the parsed options,
prints its figures and writes its files; the measuring itself is in `blurblib.bench`.

    blurb bench throughput   blurblib's training loop vs the HF example-script baseline
    blurb bench memory       peak training memory vs frozen lower blocks
    blurb bench slimfit      SlimFit's memory: standard vs static freezing vs SlimFit (+ int8 store)
    blurb bench seeds        K seeds trained together (vmap) vs K sequential runs
    blurb bench precision    fp32 twins of the default profile's bf16 runs
    blurb bench workers      runs per hour: one all-core process vs one worker per core
    blurb bench gpu          bf16, SDPA and torch.compile as a fraction of the GPU's peak
    blurb bench all          each in turn, then SUMMARY.md (`make bench`)

Every one takes `--quick` (a seconds-long sanity run of the same code, written to
outputs/smoke/benchmarks/), `--device` and `--out` (default outputs/benchmarks/).

This module lives outside the `bench` package so that building the `blurb` parser stays cheap:
importing `blurblib.bench` imports torch and transformers, which only the chosen benchmark needs.
"""
from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def add_common_options(p: argparse.ArgumentParser, device: str = "cpu") -> None:
    p.add_argument("--quick", action="store_true",
                   help="seconds-long sanity run (tiny sizes; writes to outputs/smoke/benchmarks)")
    p.add_argument("--device", default=device, help=f"cpu or cuda (default {device})")
    p.add_argument("--out", type=Path, default=None, help="output folder (default outputs/benchmarks)")


def out_dir(args: argparse.Namespace) -> Path:
    from .. import bench

    return args.out if args.out is not None else bench.benchmarks_dir(args.quick)


def _report(paths) -> None:
    for path in paths:
        print(f"wrote {path}")


def _offline() -> None:
    """Offline by default, like `make`: the benchmarks never need the hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# ----------------------------------------------------------------------------- throughput


def _throughput_options(p: argparse.ArgumentParser) -> None:
    add_common_options(p)
    p.add_argument("--tasks", nargs="+", default=None)
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--examples", type=int, default=64, help="training (and eval) examples per repetition")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--reps", type=int, default=3)


def throughput(args: argparse.Namespace) -> int:
    """Training throughput: blurblib's loop against the HF example-script baseline (max-length
    padding + a plain transformers.Trainer) and against the same Trainer given its best options
    here (length grouping, dynamic padding, bf16, fused AdamW), same model, tasks, batch size and machine,
    interleaved repetitions. Prints examples/s and the ratio's median/min/max per task and the
    geometric mean over tasks, then each arm's padding share, real-token training GFLOP/s and MFU
    against this machine's measured matmul peak; writes throughput.{json,csv,png} to outputs/benchmarks/."""
    import pandas as pd

    from .. import bench

    tasks = args.tasks or (["BIOSSES"] if args.quick else list(bench.THROUGHPUT_TASKS))
    examples, batch, reps = (8, 4, 1) if args.quick else (args.examples, args.batch_size, args.reps)
    print(f"throughput on {bench.machine_label()}: {args.model}, batch {batch}, {examples} examples, {reps} reps")
    df = bench.throughput(tasks, args.model, examples, batch, reps, args.device, warmup=not args.quick)
    summary = bench.throughput_summary(df)
    shown = [c for c in ("task", "baseline_train_ex_s", "tuned_trainer_train_ex_s", "blurblib_train_ex_s",
                         "train_ratio_median", "train_ratio_min", "train_ratio_max", "train_ratio_tuned_median",
                         "train_ratio_tuned_min", "train_ratio_tuned_max") if c in summary]
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.2f}".format):
        print(summary[shown].to_string(index=False))
    geo = summary.iloc[-1]
    print(f"geometric mean of the per-task median ratios: {geo['train_ratio_median']:.2f}x the HF-example baseline "
          f"(goal >= {bench.THROUGHPUT_GOAL:g}x)" + (f", {geo['train_ratio_tuned_median']:.2f}x the best-configured "
          f"Trainer (goal >= {bench.THROUGHPUT_TUNED_GOAL:g}x)" if "train_ratio_tuned_median" in summary else ""))
    peaks = {p: float(v) for p, v in df.groupby("precision", sort=False)["peak_flop_s"].first().items()}
    print("\npadding share, real-token training GFLOP/s and MFU (matmul peak: "
          + ", ".join(f"{p} {v / 1e9:.1f} GFLOP/s" for p, v in peaks.items()) + f", {df['torch_threads'].iloc[0]} threads)")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(_work_table(summary).to_string(index=False))
    meta = dict(model=args.model, tasks=tasks, examples=examples, batch_size=batch, reps=reps, device=args.device,
                baseline="padding=max_length (task max length) + transformers.Trainer defaults, fp32",
                tuned_trainer="transformers.Trainer with length-grouped batches, dynamic padding, bf16 where native, fused AdamW",
                blurblib="blurblib.training.train.run: dynamic padding, length-grouped batches, inference-mode eval",
                matmul_peak_flop_s=peaks, torch_threads=int(df["torch_threads"].iloc[0]),
                matmul_peak=f"best of {bench.flops.MATMUL_REPS} square matmuls of "
                            f"{bench.flops.MATMUL_SIZE_CUDA if args.device.startswith('cuda') else bench.flops.MATMUL_SIZE} "
                            "at the benchmark's torch threads, per precision",
                flops="6 * N_tok * real tokens + 6 * N_seq * sequences + 12 * L * H * sum(T^2) over sequences of real "
                      "length T (N_tok: Linear weights of the blocks and a token head; N_seq: pooler and sequence head)")
    _report(bench.save_benchmark("throughput", {"throughput": df, "summary": summary,
                                                "ratios": bench.throughput_ratios(df)},
                                 bench.throughput_figure(df), meta, out_dir(args)))
    return 0


def _work_table(summary):
    """Per task, each arm's padding share, real-token GFLOP/s and MFU, as printed strings."""
    import pandas as pd

    from .speed import ARMS

    rows = summary[summary["task"] != "geometric mean"]
    table = pd.DataFrame({"task": rows["task"]})
    for arm in (a for a in ARMS if f"{a}_mfu" in rows):
        table[f"{arm} padding"] = rows[f"{arm}_padding_share"].map("{:.0%}".format)
        table[f"{arm} GFLOP/s"] = rows[f"{arm}_gflop_s"].map("{:.1f}".format)
        table[f"{arm} MFU"] = rows[f"{arm}_mfu"].map("{:.1%}".format)
    return table


# ----------------------------------------------------------------------------- memory


def _memory_options(p: argparse.ArgumentParser) -> None:
    add_common_options(p)
    p.add_argument("--models", nargs="+", default=["minilm-l6", "bert-base-shape"])
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=1, help="full-size optimizer steps after the state-creating small one")
    p.add_argument("--reps", type=int, default=2)


def memory(args: argparse.Namespace) -> int:
    """Peak training memory against the number of frozen lower blocks (k = 0, L/4, L/2, 3L/4),
    one fresh process per measurement, for minilm-l6 (pretrained) and the shape-true BERT-base
    (random init, pretrained=False: memory does not depend on the weights' values). Also the
    activation bytes autograd keeps, per block, which shows that frozen blocks keep none.
    Writes memory.{json,csv,png} to outputs/benchmarks/."""
    import pandas as pd

    from .. import bench

    if args.quick:
        settings = dict(model_names=("minilm-l6",), seq_len=32, batch_size=2, steps=1, reps=1, fractions=(0.0, 0.5))
    else:
        settings = dict(model_names=tuple(args.models), seq_len=args.seq_len, batch_size=args.batch_size,
                        steps=args.steps, reps=args.reps)
    print(f"memory on {bench.machine_label()}: {settings}")
    df = bench.memory_vs_freezing(**settings, device=args.device)
    summary = bench.memory_summary(df)
    with pd.option_context("display.width", 220, "display.max_columns", 30, "display.float_format", "{:.2f}".format):
        print(summary.to_string(index=False))
    for name, rows in summary.groupby("model", sort=False):
        half = rows[rows["freeze_layers"] == rows["num_blocks"].iloc[0] // 2]
        if len(half):
            h = half.iloc[0]
            print(f"{name}: k=0 / k={int(h['freeze_layers'])} peak = {h['cut_vs_k0_median']:.2f}x "
                  f"(min {h['cut_vs_k0_min']:.2f}, max {h['cut_vs_k0_max']:.2f}); activations kept by the frozen "
                  f"blocks: {h['frozen_blocks_saved_mb']:.1f} MB")
    meta = {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()}
    meta.update(device=args.device, peak="CPU: peak RSS (VmHWM) of the training phase in a fresh process; "
                                         "CUDA: torch.cuda.max_memory_allocated")
    _report(bench.save_benchmark("memory", {"memory": df, "summary": summary}, bench.memory_figure(df),
                                 meta, out_dir(args)))
    return 0


# ----------------------------------------------------------------------------- SlimFit's memory


def _slimfit_options(p: argparse.ArgumentParser) -> None:
    add_common_options(p)
    p.add_argument("--models", nargs="+", default=["minilm-l6", "bert-base-shape"])
    p.add_argument("--arms", nargs="+", default=None, help="a subset of standard, static, slimfit, slimfit-int8 "
                   "(default: all four; standard is what the others are compared with)")
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=2, help="full-size steps on SlimFit's schedule (then one in which "
                   "its lowest layer trains)")
    p.add_argument("--reps", type=int, default=3, help="repetitions; SlimFit's memory claims need 5 or more ratios "
                   "(models x repetitions) to be decided")


def slimfit(args: argparse.Namespace) -> int:
    """SlimFit's memory claims: peak training memory of standard fine-tuning, static freezing of as
    many layers, SlimFit (rate 0.9) and SlimFit with its int8 store, one fresh process per (rep,
    model, arm), for minilm-l6 and the shape-true BERT-base. Prints each arm's peak and its cut
    against standard (the worst step, and the schedule's own peak without the step in which the
    lowest layer trains), then SlimFit's memory claims (>= 2.2x, >= 3.1x) with the workbook's
    verdict rule. Writes slimfit_memory.{json,csv,png} to outputs/benchmarks/ (notebook 06 shows it)."""
    import pandas as pd

    from .. import bench

    if args.quick:
        settings = dict(model_names=("minilm-l6",), seq_len=32, batch_size=2, steps=1, reps=1)
    else:
        settings = dict(model_names=tuple(args.models), seq_len=args.seq_len, batch_size=args.batch_size,
                        steps=args.steps, reps=args.reps)
    arms = tuple(args.arms or bench.ARMS)
    print(f"SlimFit memory on {bench.machine_label()}: {settings}, arms {', '.join(arms)}", flush=True)
    started = time.perf_counter()
    memory = bench.slimfit_memory(**settings, arms=arms, device=args.device)
    summary = bench.slimfit_memory_summary(memory)
    shown = ["model", "arm", "technique", "frozen_per_step", "reps", "peak_mb", "cut_vs_standard", "cut_min", "cut_max",
             "peak_schedule_mb", "saved_activation_mb", "trainable_M"]
    with pd.option_context("display.width", 220, "display.max_columns", 30, "display.float_format", "{:.2f}".format):
        print(summary[shown].to_string(index=False))
    claims = bench.slimfit_claims(memory, None)
    claims = claims[claims["effect"].str.startswith("log(")]
    for _, row in claims.iterrows():
        print(f"{row['verdict']:>13s}  {row['claim']}: {row['observed']}")
    meta = {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()}
    meta.update(device=args.device, rate=bench.SLIMFIT_RATE, arms={name: bench.arm_knobs(name) for name in settings["model_names"]},
                peak="CPU: peak RSS (VmHWM) per full-size step in a fresh process per arm, the arm's peak the highest; "
                     "CUDA: torch.cuda.max_memory_allocated",
                steps_note="warm-up (static: one 8-token step; SlimFit: its first cycle on 8-token batches), then "
                           "`steps` full-size steps (SlimFit: on its schedule, then one in which its lowest layer trains)",
                wall_s=round(time.perf_counter() - started))
    _report(bench.save_benchmark("slimfit_memory", {"slimfit_memory": memory, "summary": summary},
                                 bench.slimfit_memory_figure(memory), meta, out_dir(args)))
    return 0


# ----------------------------------------------------------------------------- seeds in parallel


def _seeds_options(p: argparse.ArgumentParser) -> None:
    add_common_options(p)
    p.add_argument("--k", nargs="+", type=int, default=[4, 8])
    p.add_argument("--task", default="GAD")
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--examples", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--reps", type=int, default=2)


def seeds(args: argparse.Namespace) -> int:
    """K seeds of one small config trained together in one process (torch.func.stack_module_state
    + functional_call + vmap) against K sequential runs: per-seed losses and weights must agree
    within float tolerance (dropout off in both arms), and the speed-up is reported for K = 4, 8.
    Writes seeds_parallel.{json,csv,png} to outputs/benchmarks/; exit 1 when the arms disagree."""
    import pandas as pd

    from .. import bench

    ks, kwargs = ([2], dict(n_examples=8, batch_size=4, max_length=32)) if args.quick else \
        (args.k, dict(n_examples=args.examples, batch_size=args.batch_size, max_length=args.max_length))
    kwargs.update(task=args.task, model=args.model, device=args.device)
    print(f"seeds in parallel on {bench.machine_label()}: K={ks}, {kwargs}")
    df = bench.seeds_parallel_runs(ks, reps=1 if args.quick else args.reps, **kwargs)
    summary = df.groupby("k").agg(reps=("speedup", "size"), speedup_median=("speedup", "median"),
                                  speedup_min=("speedup", "min"), speedup_max=("speedup", "max"),
                                  sequential_s=("sequential_s", "median"), parallel_s=("parallel_s", "median"),
                                  token_overhead=("token_overhead", "median"), max_loss_diff=("max_loss_diff", "max"),
                                  max_param_diff=("max_param_diff", "max"),
                                  same_results=("same_results", "all")).reset_index()
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(summary.to_string(index=False))
    if not summary["same_results"].all():
        print("WARNING: parallel and sequential results differ beyond float tolerance")
    meta = dict(ks=list(ks), reps=1 if args.quick else args.reps, **kwargs,
                note="dropout off in both arms (models in eval mode while training); model building outside timers")
    _report(bench.save_benchmark("seeds_parallel", {"seeds_parallel": df, "summary": summary},
                                 bench.seeds_figure(df), meta, out_dir(args)))
    return 0 if summary["same_results"].all() else 1


# ----------------------------------------------------------------------------- precision


def _precision_options(p: argparse.ArgumentParser) -> None:
    add_common_options(p)
    p.add_argument("--store", default=None, help="results store holding the default profile's runs "
                   "(default outputs/results; with --quick a store under the smoke outputs)")


def precision(args: argparse.Namespace) -> int:
    """fp32 against bf16 autocast on the default profile's own runs: BIOSSES and NCBI-disease
    (notebook 03's standard runs, 5 seeds) and GAD (notebook 05's, 2 seeds). The bf16 runs are
    reused from the results store; their fp32 twins are trained into it. Writes precision.csv."""
    from ..runs import sweep
    from ..training.train import RunConfig
    from ..workbook import profiles
    from .precision import precision_table, twins

    p03, p05 = profiles.get("03_stabilization", "default"), profiles.get("05_blurb_score", "default")
    if args.quick:
        tiny = dict(epochs=1, train_limit=8, eval_limit=8, max_length=32, batch_size=4)
        configs = [RunConfig(task="BIOSSES", seed=s, **tiny) for s in (1, 2)]
    else:
        configs = sweep.expand(p03.sweep(techniques=[{}])) + sweep.expand(p05.sweep(tasks=["GAD"]))
    out = out_dir(args)
    store = args.store or (out / "results" if args.quick else p05.results_dir)  # a sanity run never touches the real store
    runs = sweep.run_sweep(twins(configs), store, device=args.device)
    table = precision_table(runs)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "precision.csv", index=False, float_format="%.4g")
    print(table.round(3).to_string(index=False))
    return 0


# ----------------------------------------------------------------------------- workers


def _workers_options(p: argparse.ArgumentParser) -> None:
    add_common_options(p)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--no-ray", action="store_true", help="leave out the arm that runs the grid on a local Ray instance")


def workers(args: argparse.Namespace) -> int:
    """A sweep's runs per hour on a real grid (the default profile's BIOSSES and NCBI-disease recipes,
    4 seeds each): before (fp32, one process with every core's thread) and after (bf16 where native;
    one process, or one single-thread worker per core), and the same grid as tasks on a local Ray
    instance. Writes workers.csv to outputs/benchmarks/."""
    from ..runs import sweep
    from ..workbook import profiles
    from .workers import workers_comparison

    profile = profiles.get("03_stabilization", "default")
    configs = sweep.expand(profile.sweep(techniques=[{}], seeds=range(1, (2 if args.quick else args.seeds) + 1),
                                         tasks=["BIOSSES"] if args.quick else None))
    table = workers_comparison(configs, reps=1 if args.quick else args.reps, ray=not args.no_ray)
    out = out_dir(args)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "workers.csv", index=False, float_format="%.4g")
    print(table.groupby("arm")["runs_per_hour"].agg(["median", "min", "max"]).round(1).to_string())
    return 0


# ----------------------------------------------------------------------------- GPU


def _gpu_options(p: argparse.ArgumentParser) -> None:
    add_common_options(p, device="cuda")
    p.add_argument("--models", nargs="+", default=["bert-base-shape", "bert-large-shape"])
    p.add_argument("--modes", nargs="+", default=None)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)


def gpu(args: argparse.Namespace) -> int:
    """GPU efficiency: bf16 autocast, SDPA attention and torch.compile on the shape-true BERT-base
    and BERT-large (random init), examples/s and the fraction of the GPU's dense bf16 peak FLOP/s.
    Prints "skipped: no CUDA device" where there is none. Writes gpu.{json,csv,png}."""
    import pandas as pd

    from .. import bench

    modes = args.modes or list(bench.GPU_MODES)
    if args.quick:
        models, modes, seq, batch, steps = ["bert-base-shape"], [m for m in modes if "compile" not in m], 64, 8, 3
    else:
        models, seq, batch, steps = args.models, args.seq_len, args.batch_size, args.steps
    df = bench.gpu_efficiency(models, modes, seq, batch, steps, args.device)
    if df is None:
        return 0
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.3g}".format):
        print(df.to_string(index=False))
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(6, 3.6))
    sns.barplot(data=df, x="mode", y="fraction_of_peak", hue="model", ax=ax)
    ax.set_ylabel("fraction of dense bf16 peak")
    ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    meta = dict(models=models, modes=modes, seq_len=seq, batch_size=batch, steps=steps, device=args.device)
    _report(bench.save_benchmark("gpu", {"gpu": df}, fig, meta, out_dir(args)))
    return 0


# ----------------------------------------------------------------------------- all of them


def _all_options(p: argparse.ArgumentParser) -> None:
    add_common_options(p)
    names = [name for name in BENCHMARKS if name != "all"]
    p.add_argument("--only", nargs="+", choices=names, default=None, metavar="BENCHMARK",
                   help=f"run only these ({', '.join(names)}); SUMMARY.md still covers every saved one")


def run_all(args: argparse.Namespace) -> int:
    """Every benchmark in turn (`make bench`), then outputs/benchmarks/SUMMARY.md with each
    figure's median/min/max and the machine. `--quick` is a seconds-long sanity run of the same code."""
    common = (["--quick"] if args.quick else []) + (["--out", str(args.out)] if args.out else [])
    failures = []
    for name, step in BENCHMARKS.items():
        if name == "all" or (args.only and name not in args.only):
            continue
        # The GPU benchmark always looks for CUDA (and says it skipped); the others run where asked.
        device = [] if name == "gpu" and not args.device.startswith("cuda") else ["--device", args.device]
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        code = step.run(parser(name).parse_args(common + device))
        print(f"=== {name}: {time.perf_counter() - start:.0f} s, exit {code}", flush=True)
        if code:
            failures.append(name)
    from .. import bench

    path = bench.write_summary(out_dir(args))
    print(f"\nwrote {path}\n")
    print(path.read_text())
    if failures:
        print(f"FAILED: {', '.join(failures)}")
    return 1 if failures else 0


# ----------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Benchmark:
    """One `blurb bench` subcommand: a one-line help, its options and the function that runs it
    (whose docstring is the subcommand's description)."""

    help: str
    add_options: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]

    @property
    def description(self) -> str:
        return " ".join(self.run.__doc__.split())


# The order `blurb bench all` runs them in.
BENCHMARKS: dict[str, Benchmark] = {
    "throughput": Benchmark("blurblib's training loop vs the HF example-script baseline and the best-configured "
                            "Trainer, examples/s",
                            _throughput_options, throughput),
    "memory": Benchmark("peak training memory vs frozen lower blocks", _memory_options, memory),
    "slimfit": Benchmark("SlimFit's memory: standard vs static freezing vs SlimFit (and its int8 store), peak "
                         "training memory per arm", _slimfit_options, slimfit),
    "seeds": Benchmark("K seeds trained together (vmap) vs K sequential runs", _seeds_options, seeds),
    "precision": Benchmark("fp32 twins of the default profile's bf16 runs: does bf16 move the scores?",
                           _precision_options, precision),
    "workers": Benchmark("runs per hour: before (fp32, one process) vs bf16 in one all-core process, one "
                         "single-thread worker per core, and local Ray",
                         _workers_options, workers),
    "gpu": Benchmark("bf16, SDPA and torch.compile as a fraction of the GPU's peak FLOP/s", _gpu_options, gpu),
    "all": Benchmark("every benchmark in turn, then SUMMARY.md (what `make bench` runs)", _all_options, run_all),
}


def add_parsers(subparsers, **defaults) -> None:
    """One subparser per benchmark under `blurb bench`; `defaults` are set on each (the cli's handler)."""
    for name, step in BENCHMARKS.items():
        p = subparsers.add_parser(name, help=step.help, description=step.description)
        step.add_options(p)
        p.set_defaults(**defaults)


def parser(name: str) -> argparse.ArgumentParser:
    """A standalone parser for one benchmark (what `blurb bench all` feeds each step)."""
    p = argparse.ArgumentParser(prog=f"blurb bench {name}", description=BENCHMARKS[name].description)
    BENCHMARKS[name].add_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the benchmark `args.benchmark` names, offline unless the environment says otherwise."""
    _offline()
    return BENCHMARKS[args.benchmark].run(args)
