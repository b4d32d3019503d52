"""Where things live: data, the shared folder beside the checkout, outputs and caches.

Every location can be overridden by an environment variable so a notebook, a test and
`make reproduce` all agree without passing paths around.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # blurblib/core/paths.py -> the checkout
SHARED = Path(os.environ.get("BLURB_SHARED_DIR", REPO_ROOT.parent / "shared"))


def data_dir() -> Path:
    """BLURB data root: `$BLURB_DATA_DIR`, default `data/blurb` (linked by `make data`)."""
    return Path(os.environ.get("BLURB_DATA_DIR", REPO_ROOT / "data" / "blurb"))


def outputs_dir() -> Path:
    return Path(os.environ.get("BLURB_OUTPUTS_DIR", REPO_ROOT / "outputs"))


def cache_dir() -> Path:
    """Model packs (mpnet-base) and pretraining checkpoints; never committed."""
    return Path(os.environ.get("BLURB_CACHE_DIR", REPO_ROOT / "outputs" / "cache"))


def shared_models_dir() -> Path:
    """Real configs and vocabularies of the paper's models (no weights)."""
    return Path(os.environ.get("BLURB_MODELS_DIR", SHARED / "models"))


def corpora_dir() -> Path:
    return Path(os.environ.get("BLURB_CORPORA_DIR", SHARED / "data" / "corpora"))


def shown(path) -> str:
    """A path as messages print it: relative to the checkout when inside it, so executed
    notebooks read the same in every clone."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(REPO_ROOT.resolve()))
    except ValueError:
        return str(path)
