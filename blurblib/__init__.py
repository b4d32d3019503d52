"""blurblib: reproduce, explore and teach Tinn et al. (2023) on the BLURB benchmark.

The package is layered; each layer imports only the ones above it in this list:

    core      errors, paths, machine, precision
    data      tasks, metrics, encoding, corpora, datacheck
    encoders  models, packs, twins, heads, vocab
    training  config (RunConfig), record, techniques, optim, train, slimfit, slimfit_arms, mlm
    runs      results, spec, sweep, cost, ray_backend, ray_auth, calibration, reference, arms
    analysis  stats, power, findings, efficiency_findings, plots, tour, pretraining
    workbook  profiles, grids, efficiency, instability, remedies, parameters, rehearsal, reproduce, dryrun
    bench     speed and memory benchmarks (`blurb bench`)
    cli       the `blurb` console script

Notebooks read every module by its short name (`from blurblib import findings, plots, sweep`):
the names below resolve on first use, so `import blurblib` stays free of torch.
"""
import importlib

__version__ = "0.1.0"

LAYERS = {
    "core": ("errors", "paths", "machine", "precision"),
    "data": ("tasks", "metrics", "encoding", "corpora", "datacheck"),
    "encoders": ("models", "packs", "twins", "heads", "vocab"),
    "training": ("config", "record", "techniques", "optim", "train", "slimfit", "slimfit_arms", "mlm"),
    "runs": ("results", "spec", "sweep", "cost", "ray_backend", "ray_auth", "calibration", "reference", "arms"),
    "analysis": ("stats", "power", "findings", "efficiency_findings", "plots", "tour", "pretraining"),
    "workbook": ("profiles", "grids", "efficiency", "instability", "remedies", "parameters", "rehearsal",
                 "reproduce", "dryrun"),
}
_HOME = {module: layer for layer, modules in LAYERS.items() for module in modules}


def __getattr__(name: str):
    if name in _HOME:
        module = importlib.import_module(f"{__name__}.{_HOME[name]}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_HOME])
