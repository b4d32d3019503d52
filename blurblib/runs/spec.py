"""A grid as data: `SweepSpec` (tasks x models x techniques x hyperparameters x seeds, from Python or
a YAML file), checked field by field against `RunConfig`, and expanded into RunConfigs."""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..core.errors import BlurbError, ConfigError
from ..data import tasks
from ..training.config import RunConfig, technique_knobs
from ..training.techniques import neutral_knobs

_CONFIG_FIELDS = {f.name for f in dataclasses.fields(RunConfig)}


@dataclass(frozen=True)
class SweepSpec:
    """A grid: tasks x models x techniques x hyperparameters x seeds.

    `techniques` holds knob settings (dicts such as `{"reinit_layers": 1}`; `{}` is standard
    fine-tuning). `hyperparameters` maps RunConfig fields to a value or a list of values (a
    grid axis). `per_task` overrides fields for one task (e.g. a smaller train_limit for NER).
    """

    tasks: tuple[str, ...]
    models: tuple[str, ...] = ("minilm-l6",)
    techniques: tuple[dict, ...] = ({},)
    seeds: tuple[int, ...] = (1, 2, 3)
    hyperparameters: dict = field(default_factory=dict)
    per_task: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> "SweepSpec":
        """Check every key and value here, so a bad spec fails before planning, with the fix."""
        if not isinstance(data, dict):
            raise ConfigError(f"a sweep spec is a mapping with keys {', '.join(_SPEC_KEYS)}, not a {type(data).__name__}")
        unknown = set(data) - set(_SPEC_KEYS)
        if unknown:
            raise ConfigError(f"unknown sweep keys {sorted(unknown)}; allowed: {', '.join(_SPEC_KEYS)}")
        if not data.get("tasks"):
            raise ConfigError("the sweep spec names no tasks; add e.g. `tasks: [BIOSSES]`")
        data = dict(data)
        data["tasks"] = tuple(tasks.get(t).name for t in _names(data["tasks"], "tasks"))
        if "models" in data:
            data["models"] = _names(data["models"], "models")
        data["techniques"] = _techniques(data.get("techniques"))
        data["seeds"] = tuple(parse_seeds(data.get("seeds", "1-3")))
        data["hyperparameters"] = {k: _axis(k, v) for k, v in _mapping(data.get("hyperparameters"), "hyperparameters").items()}
        _check_fields(data["hyperparameters"], "hyperparameters", axes=True)
        data["per_task"] = _per_task(data.get("per_task"))
        return cls(**data)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "SweepSpec":
        """A spec file; every error names the file (and the line and column of a YAML syntax error)."""
        path = Path(path)
        if not path.exists() or path.is_dir():  # not is_file(): `blurb sweep <(...)` reads a pipe
            what = "is a folder" if path.is_dir() else "not found"
            raise ConfigError(f"sweep spec {path} {what}; write a YAML file with keys tasks, models, techniques, seeds")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.MarkedYAMLError as err:
            raise ConfigError(_yaml_message(path, err)) from None
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: not a readable YAML file ({err})".replace("\n", " ")) from None
        try:
            return cls.from_dict(data or {})
        except BlurbError as err:
            raise type(err)(f"{path}: {err}") from None


_SPEC_KEYS = ("tasks", "models", "techniques", "seeds", "hyperparameters", "per_task")
_RESERVED = {"task": "tasks", "model": "models", "seed": "seeds"}


def _yaml_message(path: Path, err: yaml.MarkedYAMLError) -> str:
    """`file:line:col: problem`, the form editors jump to."""
    mark, start = err.problem_mark or err.context_mark, err.context_mark
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
    context = err.context or ""
    if context and start and start is not mark:
        context += f" (opened at line {start.line + 1}, column {start.column + 1})"
    problem = ": ".join(str(part) for part in (context, err.problem) if part)
    return f"{where}: YAML syntax error: {problem}; fix the spec there (see examples/stabilization.yaml)"


def _names(value, key: str) -> tuple[str, ...]:
    """A name or a list of names."""
    names = (value,) if isinstance(value, str) else _listed(value, key)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise ConfigError(f"sweep key {key!r}: {bad} are not names; write e.g. `{key}: [name1, name2]`")
    return names


def _listed(value, key: str) -> tuple:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"sweep key {key!r} must be a list, got {value!r}")
    if not value:
        raise ConfigError(f"sweep key {key!r} is an empty list: the grid would have no runs; name at least one")
    return tuple(value)


def _techniques(entries) -> tuple[dict, ...]:
    """A list of technique names or knob mappings; one entry alone needs no list."""
    if entries is None:
        return ({},)
    entries = [entries] if isinstance(entries, (str, dict)) else _listed(entries, "techniques")
    return tuple(technique_setting(t) for t in entries)


def _mapping(value, key: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"sweep key {key!r} must be a mapping of RunConfig fields to values, got {value!r}")
    return value


def _axis(name: str, value):
    """A value or a list of values, with YAML's `1e-5` (a string to YAML 1.1) read as a number."""
    if isinstance(value, (list, tuple)):
        return [_typed(name, v) for v in value]
    return _typed(name, value)


def _per_task(value) -> dict:
    """Per-task overrides keyed by canonical task name (so `biosses:` is not silently ignored)."""
    out = {}
    for task, fields in _mapping(value, "per_task").items():
        name = tasks.get(task).name
        fields = {k: _typed(k, v) for k, v in _mapping(fields, f"per_task.{task}").items()}
        _check_fields(fields, f"per_task.{task}")
        out[name] = fields
    return out


def _typed(name: str, value):
    """Turn numeric strings into numbers for float fields; other values pass unchanged."""
    if _FIELD_TYPES.get(name) == "float" and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


_FIELD_TYPES = {f.name: str(f.type) for f in dataclasses.fields(RunConfig)}
_PYTHON_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "None": (type(None),)}


def _check_fields(fields: dict, where: str, axes: bool = False) -> None:
    """RunConfig fields with values of the right type (a list is a grid axis when `axes`)."""
    bad = set(fields) - _CONFIG_FIELDS
    if bad:
        raise ConfigError(f"unknown hyperparameters {sorted(bad)} in {where}; RunConfig fields are {sorted(_CONFIG_FIELDS)}")
    reserved = sorted(set(fields) & set(_RESERVED))
    if reserved:
        raise ConfigError(f"{where} sets {reserved}; set them with the top-level keys {[_RESERVED[k] for k in reserved]}")
    for name, value in fields.items():
        for v in (value if axes and isinstance(value, list) else [value]):
            _check_type(name, v, where)


def _check_type(name: str, value, where: str) -> None:
    kind = _FIELD_TYPES[name]
    allowed = tuple(t for part in kind.split("|") for t in _PYTHON_TYPES.get(part.strip(), (object,)))
    if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):  # True is an int to Python
        raise ConfigError(f"{where}: {name}={value!r} must be of type {kind}; e.g. {name}: {_EXAMPLES.get(kind, '...')}")


_EXAMPLES = {"int": "3", "float": "1.0e-4", "str": "name", "int | None": "128 (or null for none)"}


MAX_SEEDS = 1000  # seeds in one grid: far above any study's, far below a range that exhausts memory
MAX_SEED = 2**32 - 1  # the largest seed numpy accepts (torch and random take it too)


def parse_seeds(seeds) -> list[int]:
    """`"1-5"` -> [1..5], `"1,3,7"` -> [1, 3, 7]; lists pass through. Each seed lies in
    0..MAX_SEED and a grid holds at most MAX_SEEDS, checked before a range is expanded."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        return _checked_seeds([seeds], str(seeds))
    if isinstance(seeds, (list, tuple)) and seeds and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        return _checked_seeds(list(seeds), str(list(seeds)))
    if not isinstance(seeds, str):
        raise ConfigError(f"cannot read seeds {seeds!r}; use a range like 1-5, a list like 1,3,7 or a list of integers")
    out: list[int] = []
    for part in seeds.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            lo, hi = int(lo), int(hi or lo)
        except ValueError:
            raise ConfigError(f"cannot read seeds {seeds!r}; use a range like 1-5 or a list like 1,3,7") from None
        if hi < lo:
            raise ConfigError(f"seed range {part.strip()!r} is empty; write it low-high, like {hi}-{lo}")
        _checked_seeds([lo, hi], seeds, count=len(out) + hi - lo + 1)
        out.extend(range(lo, hi + 1))
    return out


def _checked_seeds(seeds: list[int], asked: str, count: int | None = None) -> list[int]:
    """The seeds unchanged, or the error naming what was asked and what is accepted."""
    count = len(seeds) if count is None else count
    if count > MAX_SEEDS:
        raise ConfigError(f"seeds {asked} make {count} seeds; a grid takes at most {MAX_SEEDS} "
                          "(e.g. 1-5 for the paper's five): ask for fewer")
    bad = [s for s in seeds if not 0 <= s <= MAX_SEED]
    if bad:
        raise ConfigError(f"seeds {asked}: {bad[0]} is not a seed; seeds are integers from 0 to {MAX_SEED}")
    return seeds


def technique_setting(entry) -> dict:
    """A technique name (its default knob) or a dict of knobs -> a dict of RunConfig knobs."""
    if isinstance(entry, str):
        return technique_knobs(entry)
    if entry is not None and not isinstance(entry, dict):
        raise ConfigError(f"technique {entry!r} is neither a name nor a mapping of knobs; "
                          "write e.g. `reinit` or `{reinit_layers: 1}`")
    entry = dict(entry or {})
    name = entry.pop("technique", None)
    setting = technique_knobs(name) if name else {}
    knobs = neutral_knobs()  # every technique's knob, from the registry: a new technique needs no edit here
    bad = set(entry) - set(knobs)
    if bad:
        raise ConfigError(f"unknown technique knobs {sorted(bad)}; use {list(knobs)}")
    entry = {k: _typed(k, v) for k, v in entry.items()}
    for knob, value in entry.items():
        _check_type(knob, value, "techniques")
    setting.update(entry)
    return setting


def expand(spec: SweepSpec) -> list[RunConfig]:
    """Every RunConfig of the grid, in a stable order (seed innermost)."""
    axes = {k: v if isinstance(v, list) else [v] for k, v in spec.hyperparameters.items()}
    _check_fields(axes, "hyperparameters", axes=True)
    configs = []
    for task, model, knobs in itertools.product(spec.tasks, spec.models, spec.techniques):
        task = tasks.get(task).name
        for values in itertools.product(*axes.values()):
            fields = {**dict(zip(axes, values)), **knobs, **spec.per_task.get(task, {})}
            for seed in spec.seeds:
                configs.append(RunConfig(task=task, model=model, seed=seed, **fields))
    return configs


def applicable(configs: list[RunConfig]) -> tuple[list[RunConfig], list[str]]:
    """Split a grid into the runs whose technique fits their head and the reasons the others
    do not (LP-FT on a bi-encoder, which has no head to probe), so a notebook can say what it
    leaves out instead of failing or dropping it silently."""
    kept, left_out = [], []
    for config in configs:
        try:
            config.validate()
            kept.append(config)
        except ConfigError as err:
            left_out.append(f"{config.task} {config.technique} ({config.head} head): {err}")
    return kept, sorted(set(left_out))
