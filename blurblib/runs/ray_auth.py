"""Ray's token authentication for a driver that joins a cluster by its address.

The pinned Ray (2.60) starts a cluster with token authentication whenever the machine holds a
token: `ray.init()` writes one to ~/.ray/auth_token, and `ray start --head` turns
authentication on when that file exists (or RAY_AUTH_MODE=token). But a driver given an
explicit address (`ray.init(address="host:port")` or RAY_ADDRESS) never turns it on itself,
even with the right token at hand; only `address="auto"` does. Such a driver connects without a
token, the cluster refuses it ("Authentication token is missing or incorrect", printed by Ray),
and after 20 s of retries `ray.init` raises a bare "Failed to connect". So a blurblib driver
authenticates whenever it has a token, as Ray does for `auto`, and a refusal is reported as
what it is, with where the right token comes from.

The token lets whoever reads it run code as its owner on every node of the cluster. Ray writes
it with the default mode (0644 in a 0755 ~/.ray: readable by every user of a shared login node),
so blurblib creates it itself, owner-only, before Ray would (`protect_token`).
"""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from ..core.errors import ConfigError

MODE_ENV = "RAY_AUTH_MODE"  # "token" or "disabled"; unset: Ray's default for the situation
TOKEN_ENV = "RAY_AUTH_TOKEN"  # the token itself; Ray's first choice
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"  # a file holding it; Ray's second choice
DEFAULT_TOKEN_FILE = "~/.ray/auth_token"  # Ray's last choice, where `ray get-auth-token --generate` writes


def use_token_if_present() -> None:
    """Send this machine's token, if it has one (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or
    ~/.ray/auth_token), to the cluster: Ray's own step for `address="auto"`, which also keeps an
    explicit RAY_AUTH_MODE. A cluster without authentication accepts such a driver all the same."""
    from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available

    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def protect_token(create: bool = True) -> Path | None:
    """Make this user's token file owner-only (0600; its folder 0700 when it is Ray's ~/.ray),
    with `create` making Ray's default one first where a local `ray.init()` would (no token
    given, authentication not disabled), so no other user of this machine ever reads it. A
    driver joining a cluster passes create=False: a token of its own would only be refused.
    Returns the file, or None when there is none or the token comes from the environment."""
    if os.environ.get(TOKEN_ENV) or os.environ.get(MODE_ENV, "").lower() == "disabled":
        return None
    named = os.environ.get(TOKEN_PATH_ENV)
    if named:
        path = Path(named).expanduser()
        if path.is_file():
            _owner_only(path, 0o600)
        return path if path.is_file() else None
    path = Path(DEFAULT_TOKEN_FILE).expanduser()
    if not (create or path.is_file()):
        return None
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _owner_only(path.parent, 0o700)
    if not path.exists():
        _create_token(path)
    _owner_only(path, 0o600)
    return path


def _create_token(path: Path) -> None:
    """A new token, as Ray's `ray get-auth-token --generate` makes it, in a file born 0600."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:  # another driver made it just now
        return
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))


def _owner_only(path: Path, mode: int) -> None:
    """Tighten `path` to `mode` when it is wider and ours (another user's file is theirs to fix)."""
    info = path.stat()
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & ~mode:
        path.chmod(mode)


def refused(err: BaseException) -> bool:
    """Whether `ray.init` failed on authentication. With token mode on and no token, Ray raises
    AuthenticationError; a token the cluster rejects survives only as text in the cause of
    the ConnectionError (Ray formats the last attempt's traceback into the message)."""
    from ray.exceptions import AuthenticationError

    seen = err
    while seen is not None:
        if isinstance(seen, AuthenticationError) or "AuthenticationError" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def refusal(address: str) -> ConfigError:
    """The error for a cluster that refused this driver: why, and how to give it the token."""
    source = token_source()
    if os.environ.get(MODE_ENV, "").lower() == "disabled":
        why = f"this driver has {MODE_ENV}=disabled, so it sent no token; unset {MODE_ENV} and"
    elif source is None:
        why = "this driver has no token;"
    else:
        why = (f"it refused the token this driver sent, from {source} (not the cluster's: a local `ray.init()` "
               f"writes a token of its own to {DEFAULT_TOKEN_FILE});")
    return ConfigError(
        f"the Ray cluster at {address!r} requires token authentication and {why} print the cluster's token "
        f"on its head node with `ray get-auth-token` and give it to this driver as the environment variable "
        f"{TOKEN_ENV}=<token>, or in the file {DEFAULT_TOKEN_FILE} (or a file named by {TOKEN_PATH_ENV}), then rerun")


def token_source() -> str | None:
    """Where Ray takes this process's token from, in Ray's order of precedence; None if nowhere."""
    if os.environ.get(TOKEN_ENV):
        return f"the environment variable {TOKEN_ENV}"
    if os.environ.get(TOKEN_PATH_ENV):
        return f"{os.environ[TOKEN_PATH_ENV]} (named by {TOKEN_PATH_ENV})"
    default = Path(DEFAULT_TOKEN_FILE).expanduser()
    return str(default) if default.is_file() else None
