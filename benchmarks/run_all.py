"""`make bench`: every benchmark in turn, then outputs/benchmarks/SUMMARY.md with each figure's
median/min/max and the machine. `--quick` is a seconds-long sanity run of the same code."""
from __future__ import annotations

import time

import _common
import gpu
import memory
import precision
import seeds_parallel
import throughput
import workers

STEPS = {"throughput": throughput, "memory": memory, "seeds_parallel": seeds_parallel, "precision": precision, "workers": workers, "gpu": gpu}


def main(argv=None) -> int:
    p = _common.parser(__doc__.split("\n")[0])
    p.add_argument("--only", nargs="+", choices=list(STEPS), default=None)
    args = p.parse_args(argv)
    common = (["--quick"] if args.quick else []) + (["--out", str(args.out)] if args.out else [])
    failures = []
    for name, module in STEPS.items():
        if args.only and name not in args.only:
            continue
        # The GPU benchmark always looks for CUDA (and says it skipped); the others run where asked.
        device = [] if name == "gpu" and not args.device.startswith("cuda") else ["--device", args.device]
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        code = module.main(common + device)
        print(f"=== {name}: {time.perf_counter() - start:.0f} s, exit {code}", flush=True)
        if code:
            failures.append(name)
    from blurblib import bench

    path = bench.write_summary(_common.out_dir(args))
    print(f"\nwrote {path}\n")
    print(path.read_text())
    if failures:
        print(f"FAILED: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
