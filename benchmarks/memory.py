"""Peak training memory against the number of frozen lower blocks (k = 0, L/4, L/2, 3L/4),
one fresh process per measurement, for minilm-l6 (pretrained) and the shape-true BERT-base
(random init, pretrained=False: memory does not depend on the weights' values). Also the
activation bytes autograd keeps, per block, which shows that frozen blocks keep none.
Writes memory.{json,csv,png} to outputs/benchmarks/."""
from __future__ import annotations

import _common


def main(argv=None) -> int:
    p = _common.parser(__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["minilm-l6", "bert-base-shape"])
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=1, help="full-size optimizer steps after the state-creating small one")
    p.add_argument("--reps", type=int, default=2)
    args = p.parse_args(argv)
    import pandas as pd
    from blurblib import bench

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
    _common.report(bench.save_benchmark("memory", {"memory": df, "summary": summary}, bench.memory_figure(df),
                                        meta, _common.out_dir(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
