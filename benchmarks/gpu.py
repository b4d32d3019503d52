"""GPU efficiency: bf16 autocast, SDPA attention and torch.compile on the shape-true BERT-base
and BERT-large (random init), examples/s and the fraction of the GPU's dense bf16 peak FLOP/s.
Prints "skipped: no CUDA device" where there is none. Writes gpu.{json,csv,png}."""
from __future__ import annotations

import _common


def main(argv=None) -> int:
    p = _common.parser(__doc__.split("\n")[0])
    p.set_defaults(device="cuda")
    p.add_argument("--models", nargs="+", default=["bert-base-shape", "bert-large-shape"])
    p.add_argument("--modes", nargs="+", default=None)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args(argv)
    import pandas as pd
    from blurblib import bench

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
    _common.report(bench.save_benchmark("gpu", {"gpu": df}, fig, meta, _common.out_dir(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
