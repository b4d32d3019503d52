"""fp32 against bf16 autocast on the default profile's own runs: BIOSSES and NCBI-disease
(notebook 03's standard runs, 5 seeds) and GAD (notebook 05's, 2 seeds). The bf16 runs are
reused from the results store; their fp32 twins are trained into it. Writes precision.csv."""
from __future__ import annotations

import _common


def main(argv=None) -> int:
    p = _common.parser(__doc__.split("\n")[0])
    p.add_argument("--store", default="outputs/results", help="results store holding the default profile's runs")
    args = p.parse_args(argv)
    from blurblib import profiles, sweep
    from blurblib.bench.precision import precision_table, twins
    from blurblib.train import RunConfig

    if args.quick:
        tiny = dict(epochs=1, train_limit=8, eval_limit=8, max_length=32, batch_size=4)
        configs = [RunConfig(task="BIOSSES", seed=s, **tiny) for s in (1, 2)]
    else:
        p03, p05 = profiles.get("03_stabilization", "default"), profiles.get("05_blurb_score", "default")
        configs = sweep.expand(p03.sweep(techniques=[{}])) + sweep.expand(p05.sweep(tasks=["GAD"]))
    runs = sweep.run_sweep(twins(configs), args.store, device=args.device)
    table = precision_table(runs)
    out = _common.out_dir(args)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "precision.csv", index=False, float_format="%.4g")
    print(table.round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
