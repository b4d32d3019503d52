"""A sweep's runs per hour: one process with every core's thread vs one single-thread worker per
core, on a real grid (the default profile's BIOSSES and NCBI-disease recipes, 4 seeds each).
Writes workers.csv to outputs/benchmarks/."""
from __future__ import annotations

import _common


def main(argv=None) -> int:
    p = _common.parser(__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--seeds", type=int, default=4)
    args = p.parse_args(argv)
    from blurblib import profiles, sweep
    from blurblib.bench.workers import workers_comparison

    profile = profiles.get("03_stabilization", "default")
    configs = sweep.expand(profile.sweep(techniques=[{}], seeds=range(1, (2 if args.quick else args.seeds) + 1),
                                         tasks=["BIOSSES"] if args.quick else None))
    table = workers_comparison(configs, reps=1 if args.quick else args.reps)
    out = _common.out_dir(args)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "workers.csv", index=False, float_format="%.4g")
    print(table.groupby("arm")["runs_per_hour"].agg(["median", "min", "max"]).round(1).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
