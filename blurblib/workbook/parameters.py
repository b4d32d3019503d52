"""Notebook parameters as a user types them: `papermill ... -p TASKS GAD -p SEEDS 1-3`.

papermill's `-p` passes strings and numbers only (lists need `-y`), so a list parameter given
as `GAD`, `"GAD,ChemProt"`, `3` or `1-5` means what the user means; anything else fails here,
in the parameters' own check, naming the parameter, the value, what is accepted and the `-y`
form, instead of failing later on a string iterated letter by letter.
"""
from __future__ import annotations

from ..core.errors import ConfigError
from ..runs.sweep import parse_seeds

NAME_LISTS = ("models", "tasks")
SEED_LISTS = ("seeds",)


def names(value, parameter: str) -> tuple[str, ...] | None:
    """`"GAD"` or `"GAD, ChemProt"` or `["GAD"]` -> ("GAD", ...); None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = tuple(p.strip() for p in value.split(",") if p.strip())
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        parts = tuple(value)
    else:
        parts = ()
    if not parts:
        raise ConfigError(_message(parameter, value, "names: GAD, or GAD,ChemProt", '["GAD", "ChemProt"]'))
    return parts


def seeds(value, parameter: str = "SEEDS") -> tuple[int, ...] | None:
    """`3`, `"3"`, `"1-5"`, `"1,3,7"` or `[1, 2]` -> a tuple of seeds; None stays None."""

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str, list, tuple)):
        raise ConfigError(_message(parameter, value, "seeds: 3, 1-5 or 1,3,7", "[1, 2, 3]"))
    try:
        return tuple(parse_seeds(value if not isinstance(value, int) else [value]))
    except (ConfigError, ValueError, TypeError) as err:
        raise ConfigError(_message(parameter, value, "seeds: 3, 1-5 or 1,3,7", "[1, 2, 3]") + f" ({err})") from None


def _message(parameter: str, value, accepted: str, yaml_list: str) -> str:
    name = parameter.upper()
    return (f"notebook parameter {name}={value!r} is not valid: give {accepted} (papermill -p {name} ...), "
            f"or a list with -y: papermill ... -y '{name}: {yaml_list}'")


def coerce(overrides: dict) -> dict:
    """The list parameters of `profiles.get` as tuples, whatever form the user typed."""
    out = dict(overrides)
    for key in NAME_LISTS:
        if key in out:
            out[key] = names(out[key], key)
    for key in SEED_LISTS:
        if key in out:
            out[key] = seeds(out[key], key)
    return out
