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
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import secrets
import socket
import tempfile
import warnings
from pathlib import Path

import pandas as pd

from .config import backfill
from .errors import DataError, StoreWarning


class ResultsStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise DataError(f"results store {self.root} is a file, not a folder; pass a folder (--out DIR, results_dir=)")
        self.runs = self.root / "runs"
        self.locks = self.root / "locks"
        self.quarantine = self.root / "quarantine"

    def path(self, run_id: str) -> Path:
        return self.runs / f"{run_id}.json"

    def has(self, run_id: str) -> bool:
        """A readable record exists (an unreadable one is quarantined and does not count)."""
        return self.get(run_id) is not None

    def get(self, run_id: str) -> dict | None:
        return self._read(self.path(run_id))

    def write(self, record: dict) -> Path:
        self.runs.mkdir(parents=True, exist_ok=True)
        target = self.path(record["run_id"])
        fd, tmp = tempfile.mkstemp(dir=self.runs, prefix=f".tmp-{record['run_id']}-", suffix=".part")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(record, handle, indent=1, sort_keys=True, default=float)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def records(self) -> list[dict]:
        """Every readable record; unreadable ones are quarantined, leftover temporaries ignored."""
        if not self.runs.is_dir():
            return []
        paths = sorted(p for p in self.runs.glob("*.json") if not p.name.startswith("."))
        return [r for r in map(self._read, paths) if r is not None]

    def claim(self, run_id: str) -> "Claim | None":
        """Take the right to train `run_id`, or None while a live process holds it.

        The lock of a dead process (its pid gone from this host) is reclaimed. Use the claim
        as a context manager: it is released when the block ends, record written or not.
        """
        self.locks.mkdir(parents=True, exist_ok=True)
        lock = self.locks / f"{run_id}.lock"
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
        """Who holds the claim on `run_id` (pid, host), or None."""
        return read_lock(self.locks / f"{run_id}.lock")

    @contextlib.contextmanager
    def _guard(self):
        """One claimer at a time per store: check-then-create of a lock must not interleave.

        `flock` is released by the kernel when its holder dies, so the guard itself never goes stale.
        """
        with open(self.locks / ".guard", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _drop_temporaries(self, run_id: str) -> None:
        """Half-written files of `run_id` left by a killed writer; only the claim holder writes it."""
        for tmp in self.runs.glob(f".tmp-{run_id}-*"):
            tmp.unlink(missing_ok=True)

    def _read(self, path: Path) -> dict | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # absent, or quarantined by another process just now
            return None
        try:
            record = json.loads(data.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            self._quarantine(path, f"not valid JSON ({err})")
            return None
        if not (isinstance(record, dict) and "run_id" in record and isinstance(record.get("config"), dict)):
            self._quarantine(path, "not a run record (no run_id or config)")
            return None
        return record

    def _quarantine(self, path: Path, reason: str) -> None:
        """Move an unreadable record aside (kept for inspection) so its run is redone."""
        self.quarantine.mkdir(parents=True, exist_ok=True)
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.quarantine / f"{path.name}.{stamp}"
        try:
            os.replace(path, target)
        except FileNotFoundError:  # another process moved it first
            return
        warnings.warn(f"corrupt run record {path}: {reason}; moved to {target}. Its run counts as not done "
                      f"and the next sweep redoes it", StoreWarning, stacklevel=3)


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
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
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


def read_lock(path: Path) -> dict | None:
    """The holder a lock file names; None when there is no lock or it is unreadable.

    Lock contents are written under the store's guard, so an unreadable lock is one whose
    writer died between creating and filling it: stale.
    """
    try:
        holder = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
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
