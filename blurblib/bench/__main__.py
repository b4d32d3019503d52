"""`python -m blurblib.bench memory-probe SPEC`: one memory measurement in a fresh process.

`memory.measure_memory` starts this (`slimfit_compare.measure_slimfit_memory`: `slimfit-probe`),
so that the peak RSS it reads is the probe's alone.
"""
from __future__ import annotations

import argparse
import json
import sys

from ..core.errors import ConfigError
from .memory import memory_probe
from .slimfit_compare import slimfit_probe


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m blurblib.bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    probe = sub.add_parser("memory-probe", help="one memory measurement in this process; prints one JSON line")
    probe.add_argument("spec", help='JSON: {"model", "freeze_layers", "seq_len", "batch_size", "steps", "device"}')
    slim = sub.add_parser("slimfit-probe", help="one arm of the SlimFit memory comparison; prints one JSON line")
    slim.add_argument("spec", help='JSON: {"model", "knobs", "seq_len", "batch_size", "steps", "device"}')
    args = parser.parse_args(argv)
    try:
        spec = json.loads(args.spec)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{args.command} needs a JSON object, got {args.spec!r}: {err}") from None
    probe, allowed = {
        "memory-probe": (memory_probe, {"model", "freeze_layers", "seq_len", "batch_size", "steps", "device", "seed"}),
        "slimfit-probe": (slimfit_probe, {"model", "knobs", "seq_len", "batch_size", "steps", "device", "seed"}),
    }[args.command]
    if not isinstance(spec, dict) or set(spec) - allowed:
        raise ConfigError(f"{args.command} spec {args.spec!r}: use a JSON object with keys from {sorted(allowed)}")
    print(json.dumps(probe(**spec)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
