"""Training throughput: blurblib's loop against the HF example-script baseline (max-length
padding + a plain transformers.Trainer), same model, tasks, batch size and machine,
interleaved repetitions. Prints examples/s and the ratio's median/min/max per task and the
geometric mean over tasks; writes throughput.{json,csv,png} to outputs/benchmarks/."""
from __future__ import annotations

import _common


def main(argv=None) -> int:
    p = _common.parser(__doc__.split("\n")[0])
    p.add_argument("--tasks", nargs="+", default=None)
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--examples", type=int, default=64, help="training (and eval) examples per repetition")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args(argv)
    import pandas as pd
    from blurblib import bench

    tasks = args.tasks or (["BIOSSES"] if args.quick else list(bench.THROUGHPUT_TASKS))
    examples, batch, reps = (8, 4, 1) if args.quick else (args.examples, args.batch_size, args.reps)
    print(f"throughput on {bench.machine_label()}: {args.model}, batch {batch}, {examples} examples, {reps} reps")
    df = bench.throughput(tasks, args.model, examples, batch, reps, args.device, warmup=not args.quick)
    summary = bench.throughput_summary(df)
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.2f}".format):
        print(summary.to_string(index=False))
    geo = summary.iloc[-1]
    print(f"geometric mean of the per-task median ratios: {geo['train_ratio_median']:.2f}x train, "
          f"{geo['eval_ratio_median']:.2f}x eval (goal >= {bench.THROUGHPUT_GOAL:g}x train)")
    meta = dict(model=args.model, tasks=tasks, examples=examples, batch_size=batch, reps=reps, device=args.device,
                baseline="padding=max_length (task max length) + transformers.Trainer defaults",
                blurblib="blurblib.train.run: dynamic padding, length-grouped batches, inference-mode eval")
    _common.report(bench.save_benchmark("throughput", {"throughput": df, "summary": summary,
                                                        "ratios": bench.throughput_ratios(df)},
                                        bench.throughput_figure(df), meta, _common.out_dir(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
