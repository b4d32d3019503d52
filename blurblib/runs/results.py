"""The results store: one JSON file per finished run, written atomically, safe to share.

    DIR/runs/<run_id>.json        one finished run (temporary `.tmp-*` files never count)
    DIR/locks/<run_id>.lock       a run being trained now: pid and host of the process doing it
    DIR/quarantine/<file>.<time>  unreadable records moved aside (a truncated copy, a full disk)

A record lands via a temporary file and `os.replace` (atomic on POSIX), so killing a sweep
at any moment loses no finished run and leaves no half-written record. A process claims a run
(an `O_EXCL` lock file) before training it, so two sweeps on one store (two notebooks, or a
notebook and the CLI) never train the same run twice; the lock of a process that died is
reclaimed. An unreadable record is quarantined with a warning and its run counts as not done,
so the next sweep redoes it instead of stopping.

A record is trusted only when it is tied to its run: its `run_id` is its file name and the
content id of its own config (`record_problem`). Anything else is refused on write and moved
aside on read, so a record can never count for another run. Run ids must match `RUN_ID` before
they become paths, so no id reaches outside the store. Files are created with the umask's
mode (a store shared by a group stays readable to the group), and a store this user may not
write is still readable: what it would repair is left in place, with a warning.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import errno
import fcntl
import json
import os
import re
import secrets
import socket
import tempfile
import warnings
from pathlib import Path

import pandas as pd

from ..core.errors import ConfigError, DataError, StoreWarning
from ..training import record as record_shape
from ..training.config import RunConfig, backfill

# What a run id may hold: the characters content_id produces, never a path separator, no leading
# dot (hidden files, `..`), short enough that `.tmp-<id>-XXXXXXXX.part` fits a file name.
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}")


def check_run_id(run_id) -> str:
    """`run_id` unchanged when it is safe as a file name; else the error naming it and the fix."""
    if isinstance(run_id, str) and RUN_ID.fullmatch(run_id):
        return run_id
    raise ConfigError(f"run id {run_id!r} cannot name a file in a results store: run ids hold letters, digits and "
                      "'._+-' only, start with a letter or digit and have at most 200 characters. It comes from the "
                      "config's task and model names: use a task of blurblib.data.tasks (e.g. task='BIOSSES') and check the "
                      "config with RunConfig.validate()")


def run_config_id(fields: dict) -> str:
    """The run id a stored fine-tuning config hashes to (late fields it predates at their default)."""
    return RunConfig(**backfill(fields)).run_id


_RUN_FIELDS = {f.name for f in dataclasses.fields(RunConfig)}


def record_problem(record, name: str | None = None, config_id=run_config_id, shape=record_shape.check) -> str | None:
    """Why `record` cannot be trusted as the record of run `name` (its file name), or None.

    A record is one run's only when its `run_id` is its file name and the content id of its own
    config (`config_id`: a fine-tuning run's by default; a store of other records, such as the
    frozen-encoder references, passes its own): a record that says otherwise (copied under
    another name, edited by hand, returned by a worker on other code) must not count as that run done.
    """
    if not (isinstance(record, dict) and "run_id" in record and isinstance(record.get("config"), dict)):
        return "not a run record (no run_id or config)"
    run_id = record["run_id"]
    if not (isinstance(run_id, str) and RUN_ID.fullmatch(run_id)):
        return f"its run_id {run_id!r} is not a valid run id"
    if name is not None and run_id != name:
        return f"it names the run {run_id} but its file is named for the run {name}"
    try:
        own = config_id(record["config"])
    except (TypeError, ValueError, AttributeError) as err:  # fields of the wrong kind (a number as the model)
        return f"its config does not describe a run ({err})"
    if own != run_id:
        return f"it names the run {run_id} but its config is the run {own}"
    return shape(record) if shape is not None else None


def unknown_fields(record: dict, known=_RUN_FIELDS) -> list[str]:
    """Config fields this version does not have (RunConfig's by default): a record written by newer code."""
    fields = record.get("config") if isinstance(record, dict) else None
    if not isinstance(fields, dict):
        return []
    return sorted(set(fields) - set(known))


class ResultsStore:
    """One JSON record per finished run under `root/runs`. `config_id` and `known_fields` say
    what a record's config is (a `RunConfig` by default; the references' store passes the
    frozen-encoder reference's), so the store checks each record against its own config."""

    def __init__(self, root: str | os.PathLike, config_id=run_config_id, known_fields=_RUN_FIELDS,
                 shape=record_shape.check):
        self.config_id, self.known_fields, self.shape = config_id, frozenset(known_fields), shape
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise DataError(f"results store {self.root} is a file, not a folder; pass a folder (--out DIR, results_dir=)")
        self.runs = self.root / "runs"
        self.locks = self.root / "locks"
        self.quarantine = self.root / "quarantine"

    def path(self, run_id: str) -> Path:
        """The record's file; the id is checked first, so no id names a file outside `runs/`."""
        return self.runs / f"{check_run_id(run_id)}.json"

    def lock_path(self, run_id: str) -> Path:
        return self.locks / f"{check_run_id(run_id)}.lock"

    def has(self, run_id: str) -> bool:
        """A readable record exists (an unreadable one is quarantined and does not count)."""
        return self.get(run_id) is not None

    def get(self, run_id: str) -> dict | None:
        return self._read(self.path(run_id))

    def write(self, record: dict) -> Path:
        """Store `record` atomically; refused unless it is tied to its run (`record_problem`)."""
        run_id = record.get("run_id") if isinstance(record, dict) else None
        problem = record_problem(record, config_id=self.config_id, shape=self.shape)
        if problem:
            raise DataError(f"refused to store a record in {self.runs}: {problem}. A record is stored only as "
                            "train.run returned it for its config; rerun that config instead of editing the record")
        with self._writable("store a record"):
            self.runs.mkdir(parents=True, exist_ok=True)
            return write_json(self.path(run_id), record, prefix=f".tmp-{run_id}-")

    def records(self) -> list[dict]:
        """Every readable record; unreadable ones are quarantined, leftover temporaries ignored."""
        if not self.runs.is_dir():
            return []
        paths = sorted(p for p in self.runs.glob("*.json") if not p.name.startswith(".") and p.is_file())
        return [r for r in map(self._read, paths) if r is not None]

    def claim(self, run_id: str) -> "Claim | None":
        """Take the right to train `run_id`, or None while a live process holds it.

        The lock of a dead process (its pid gone from this host) is reclaimed. Use the claim
        as a context manager: it is released when the block ends, record written or not.
        """
        lock = self.lock_path(run_id)
        with self._writable("claim a run"):
            self.locks.mkdir(parents=True, exist_ok=True)
            with self._guard():
                holder = read_lock(lock)
                if lock.exists() and holder is not None and _alive(holder):
                    return None
                if lock.exists():
                    _warn_reclaimed(lock, holder)
                    lock.unlink(missing_ok=True)
                claim = Claim.create(lock)
            self._drop_temporaries(run_id)
        return claim

    def holder(self, run_id: str) -> dict | None:
        """Who holds the claim on `run_id` (pid, host, claimed_at), or None."""
        return read_lock(self.lock_path(run_id))

    def drop_dead_claim(self, run_id: str) -> dict | None:
        """Remove the lock of `run_id` when its holder no longer runs on this host (a worker
        killed while training it); return that holder, or None when there was nothing to drop."""
        lock = self.lock_path(run_id)
        if not lock.exists():  # a worker that died before claiming anything
            return None
        with self._guard():
            holder = read_lock(lock)
            if holder is None or _alive(holder):
                return None
            lock.unlink(missing_ok=True)
        return holder

    @contextlib.contextmanager
    def _guard(self):
        """One claimer at a time per store: check-then-create of a lock must not interleave.

        `flock` is released by the kernel when its holder dies, so the guard itself never goes stale.
        It needs only a read descriptor, so a guard file another user created serves everyone.
        """
        fd = os.open(self.locks / ".guard", os.O_RDONLY | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _writable(self, what: str):
        """A store this user may not write: one clear error naming the file and the fix."""
        try:
            yield
        except PermissionError as err:
            raise DataError(f"cannot {what} in the results store {self.root}: permission denied on "
                            f"{err.filename or self.root}. {SHARING_FIX}") from None
        except OSError as err:
            if err.errno != errno.EROFS:
                raise
            raise DataError(f"cannot {what} in the results store {self.root}: it is on a read-only file system; "
                            "read it as it is (plans, tables and reports need no writes) or train into a "
                            "writable copy (--out DIR)") from None

    def _drop_temporaries(self, run_id: str) -> None:
        """Half-written files of `run_id` left by a killed writer; only the claim holder writes it."""
        for tmp in self.runs.glob(f".tmp-{run_id}-*"):
            tmp.unlink(missing_ok=True)

    def _read(self, path: Path) -> dict | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # absent, or quarantined by another process just now
            return None
        except PermissionError:
            raise DataError(f"cannot read the run record {path}: permission denied. {SHARING_FIX}") from None
        try:
            record = json.loads(data.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            self._quarantine(path, f"not valid JSON ({err})")
            return None
        if unknown_fields(record, self.known_fields):
            warnings.warn(f"run record {path} has config fields this blurblib does not know "
                          f"({', '.join(unknown_fields(record, self.known_fields))}): it was written by a newer version and is skipped "
                          "(left in place); update this clone (git pull) to read it", StoreWarning, stacklevel=3)
            return None
        problem = record_problem(record, path.name[:-len(".json")], self.config_id, self.shape)
        if problem:
            self._quarantine(path, problem)
            return None
        return record

    def _quarantine(self, path: Path, reason: str) -> None:
        """Move an untrusted record aside (kept for inspection) so its run is redone; in a store this
        user may not write, leave it and skip it."""
        quarantine_file(path, self.quarantine, f"run record {path}: {reason}",
                        "Its run counts as not done and the next sweep redoes it")


class Claim:
    """An `O_EXCL` lock file holding this process's pid, host and start time."""

    def __init__(self, path: Path, token: str):
        self.path = path
        self.token = token

    @classmethod
    def create(cls, path: Path) -> "Claim | None":
        token = secrets.token_hex(8)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "start": _start_time(os.getpid()),
                  "token": token, "claimed_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)  # the umask decides who reads it
        except FileExistsError:
            return None
        with os.fdopen(fd, "w") as handle:
            json.dump(holder, handle)
        return cls(path, token)

    def release(self) -> None:
        """Remove the lock if it is still ours (someone may have deleted it by hand and re-claimed)."""
        holder = read_lock(self.path)
        if holder is not None and holder.get("token") == self.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


SHARING_FIX = ("To share a store between users, give it to one group and let the group write it: "
               "`chgrp -R GROUP DIR && chmod -R g+rwX DIR && find DIR -type d -exec chmod g+s {} +`, and have every "
               "user run with `umask 002` (see docs/cluster.md, Security and sharing); or use a store of your own (--out)")


def write_json(path: Path, data, prefix: str | None = None) -> Path:
    """Write `data` to `path` atomically: a temporary file in the same folder (mode from the umask,
    as `open` would create it), fsynced, then `os.replace`. A reader sees the old file or the new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix or f".tmp-{path.name}-", suffix=".part")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp's 0600 would hide the file from the store's group
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True, default=float)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def current_umask() -> int:
    """This process's umask, read without changing it (Linux's /proc); else the set-and-restore dance."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def quarantine_file(path: Path, folder: Path, problem: str, consequence: str) -> Path | None:
    """Move `path` into `folder` (inside the same store) with a time stamp, warning with `problem`
    and `consequence`; where the store cannot be written, leave the file and say so instead."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = folder / f"{path.name}.{stamp}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    except FileNotFoundError:  # another process moved it first
        return None
    except OSError as err:  # a read-only store (permissions or file system): read it as it is
        warnings.warn(f"untrusted {problem}; skipped, and left in place because the store cannot be written here "
                      f"({err.strerror}). {consequence} by someone who may write the store", StoreWarning, stacklevel=4)
        return None
    warnings.warn(f"untrusted {problem}; moved to {target}. {consequence}", StoreWarning, stacklevel=4)
    return target


def read_lock(path: Path) -> dict | None:
    """The holder a lock file names; None when there is no lock or it is unreadable.

    Lock contents are written under the store's guard, so an unreadable lock is one whose
    writer died between creating and filling it: stale.
    """
    try:
        holder = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None  # a lock another user may not read raises: it is not stale, the store is not shared right
    return holder if isinstance(holder, dict) and isinstance(holder.get("pid"), int) else None


def _alive(holder: dict) -> bool:
    """Whether the process that wrote a lock still runs; a lock from another host counts as alive."""
    if holder.get("host") != socket.gethostname():
        return True
    pid = holder["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    stat = _proc_stat(pid)
    if stat is None:
        return True
    state, start = stat
    return state != "Z" and (holder.get("start") is None or holder["start"] == start)  # a zombie or a reused pid is dead


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) from /proc; None where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[19])


def _start_time(pid: int) -> int | None:
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def describe_holder(holder: dict | None, lock: Path) -> str:
    """`pid 123 on host-a since 2025-01-01T10:00:00+00:00`: who to ask, or what to kill, about a claim."""
    if holder is None:
        return "nobody (the claim was just released)"
    since = holder.get("claimed_at")
    if not since:  # a lock written before claims carried their time: its file's time
        try:
            since = _dt.datetime.fromtimestamp(lock.stat().st_mtime, _dt.timezone.utc).isoformat(timespec="seconds")
        except OSError:
            since = "an unknown time"
    return f"pid {holder['pid']} on {holder.get('host')} since {since}"


def _warn_reclaimed(lock: Path, holder: dict | None) -> None:
    who = f"pid {holder['pid']} on {holder.get('host')}" if holder else "a process that died while claiming"
    warnings.warn(f"reclaimed the stale lock {lock} of {who}, which no longer runs; its run is trained again",
                  StoreWarning, stacklevel=4)


def load(root: str | os.PathLike) -> pd.DataFrame:
    """All records of a store as a DataFrame, one row per run, config fields as columns (a record
    older than a late RunConfig field reads it at its default, `config.backfill`)."""
    rows = []
    for record in ResultsStore(root).records():
        row = {k: v for k, v in record.items() if k != "config"}
        row.update(backfill(record["config"]))
        rows.append(row)
    return pd.DataFrame(rows)
