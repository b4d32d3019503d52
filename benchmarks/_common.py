"""Shared command-line plumbing of the benchmark scripts (the measuring lives in blurblib.bench)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Offline by default, like `make`: the benchmarks never need the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without `pip install -e`


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="seconds-long sanity run (tiny sizes; writes to outputs/smoke/benchmarks)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--out", type=Path, default=None, help="output folder (default outputs/benchmarks)")
    return p


def out_dir(args) -> Path:
    from blurblib import bench

    return args.out if args.out is not None else bench.benchmarks_dir(args.quick)


def report(paths) -> None:
    for path in paths:
        print(f"wrote {path}")
