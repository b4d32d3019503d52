"""K seeds of one small config trained together in one process (torch.func.stack_module_state
+ functional_call + vmap) against K sequential runs: per-seed losses and weights must agree
within float tolerance (dropout off in both arms), and the speed-up is reported for K = 4, 8.
Writes seeds_parallel.{json,csv,png} to outputs/benchmarks/."""
from __future__ import annotations

import _common


def main(argv=None) -> int:
    p = _common.parser(__doc__.split("\n")[0])
    p.add_argument("--k", nargs="+", type=int, default=[4, 8])
    p.add_argument("--task", default="GAD")
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--examples", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--reps", type=int, default=2)
    args = p.parse_args(argv)
    import pandas as pd
    from blurblib import bench

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
    _common.report(bench.save_benchmark("seeds_parallel", {"seeds_parallel": df, "summary": summary},
                                        bench.seeds_figure(df), meta, _common.out_dir(args)))
    return 0 if summary["same_results"].all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
