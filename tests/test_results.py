import dataclasses
import json
import os
import socket
import subprocess
import sys

import pytest

from blurblib.core.errors import DataError, StoreWarning
from blurblib.runs import results
from blurblib.training.config import RunConfig

_SEEDS = {"a": 1, "b": 2, "good": 3, "ghost": 4}  # short names in tests, real runs in the store


def _config(name) -> RunConfig:
    return RunConfig(task="BIOSSES", seed=_SEEDS[name])


def _id(name) -> str:
    return _config(name).run_id


def _record(name, score):
    """A record tied to its run, as train.run returns it: its id is its config's content id."""
    config = _config(name)
    return {"run_id": config.run_id, "status": "ok", "test_score": score, "config": dataclasses.asdict(config)}


def _dead_pid() -> int:
    """The pid of a real process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _lock(store, run_id, **holder):
    store.locks.mkdir(parents=True, exist_ok=True)
    path = store.locks / f"{run_id}.lock"
    path.write_text(json.dumps(holder))
    return path


def test_write_is_atomic_and_load_flattens_config(tmp_path):
    store = results.ResultsStore(tmp_path)
    store.write(_record("a", 1.5))
    store.write(_record("b", 2.5))
    assert store.has(_id("a")) and not store.has("c")
    assert not list((tmp_path / "runs").glob(".tmp-*"))
    df = results.load(tmp_path)
    assert sorted(df["run_id"]) == sorted([_id("a"), _id("b")])
    assert set(df["task"]) == {"BIOSSES"} and df["test_score"].sum() == pytest.approx(4.0)


def test_overwrite_replaces_whole_record(tmp_path):
    store = results.ResultsStore(tmp_path)
    store.write(_record("a", 1.0))
    store.write(_record("a", 9.0))
    assert json.loads(store.path(_id("a")).read_text())["test_score"] == 9.0


def test_corrupt_record_is_quarantined_with_a_warning_and_counts_as_not_done(tmp_path):
    store = results.ResultsStore(tmp_path)
    store.write(_record("good", 1.0))
    truncated = store.path(_id("good")).read_text()[:40]  # what a full disk or a killed copy leaves
    store.path("bad").write_text(truncated)
    with pytest.warns(StoreWarning, match=r"bad\.json.*moved to .*quarantine.*bad\.json\.\d+") as caught:
        df = results.load(tmp_path)
    assert list(df["run_id"]) == [_id("good")] and len(caught) == 1
    assert not store.path("bad").exists() and not store.has("bad")
    [aside] = store.quarantine.iterdir()
    assert aside.read_text() == truncated  # kept for inspection, byte for byte


def test_has_and_get_quarantine_a_corrupt_record(tmp_path):
    store = results.ResultsStore(tmp_path)
    store.runs.mkdir(parents=True)
    store.path("x").write_text("{not json")
    with pytest.warns(StoreWarning, match="x.json"):
        assert not store.has("x")
    assert store.get("x") is None and len(list(store.quarantine.iterdir())) == 1


@pytest.mark.parametrize("content", [b"[]", b"null", b'{"run_id": "y"}', b"\0" * 64, b"\xff\xfe"])
def test_anything_but_a_record_is_quarantined(tmp_path, content):
    store = results.ResultsStore(tmp_path)
    store.runs.mkdir(parents=True)
    store.path("y").write_bytes(content)  # valid JSON but no record, NULs after a crash, not UTF-8
    with pytest.warns(StoreWarning, match="y.json"):
        assert store.records() == []


def test_leftover_temporaries_are_never_records(tmp_path):
    store = results.ResultsStore(tmp_path)
    store.write(_record("a", 1.0))
    (store.runs / f".tmp-{_id('a')}-x1y2.part").write_text('{"run_id": "a", "conf')  # killed mid-write
    (store.runs / ".tmp-old.json").write_text(json.dumps(_record("ghost", 3.0)))  # an older writer's name
    assert [r["run_id"] for r in store.records()] == [_id("a")]
    assert list(results.load(tmp_path)["run_id"]) == [_id("a")]


def test_empty_store_is_an_empty_frame(tmp_path):
    assert results.load(tmp_path / "nothing").empty


def test_a_file_as_store_names_the_fix(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(DataError, match="is a file, not a folder"):
        results.ResultsStore(tmp_path / "f")


def test_claim_is_exclusive_and_released_even_when_the_run_raises(tmp_path):
    store = results.ResultsStore(tmp_path)
    claim = store.claim("r")
    holder = store.holder("r")
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    assert store.claim("r") is None  # held by a live process (this one)
    with pytest.raises(RuntimeError), claim:
        raise RuntimeError("training crashed")
    assert store.holder("r") is None and not list(store.locks.glob("*.lock"))
    with store.claim("r") as again:
        assert again is not None


def test_stale_lock_of_a_dead_process_is_reclaimed(tmp_path):
    store = results.ResultsStore(tmp_path)
    pid = _dead_pid()
    _lock(store, "r", pid=pid, host=socket.gethostname())
    store.runs.mkdir(parents=True)
    (store.runs / ".tmp-r-abc.part").write_text("{half")  # what the dead writer left
    with pytest.warns(StoreWarning, match=rf"stale lock .*r\.lock of pid {pid}"):
        claim = store.claim("r")
    assert claim is not None and store.holder("r")["pid"] == os.getpid()
    assert not list(store.runs.glob(".tmp-*"))
    claim.release()


def test_unreadable_lock_and_reused_pid_are_stale(tmp_path):
    store = results.ResultsStore(tmp_path)
    _lock(store, "empty").write_text("")  # died between creating and filling it
    _lock(store, "reused", pid=os.getpid(), host=socket.gethostname(), start=-1)  # our pid, not our start time
    with pytest.warns(StoreWarning):
        assert store.claim("empty") is not None
    with pytest.warns(StoreWarning, match="reused.lock"):
        assert store.claim("reused") is not None


def test_locks_of_live_processes_and_other_hosts_are_respected(tmp_path):
    store = results.ResultsStore(tmp_path)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock(store, "live", pid=sleeper.pid, host=socket.gethostname())
        _lock(store, "remote", pid=_dead_pid(), host="some-other-machine")
        assert store.claim("live") is None and store.claim("remote") is None
        sleeper.kill()
        sleeper.wait()
        with pytest.warns(StoreWarning, match="live.lock"):
            assert store.claim("live") is not None  # its holder is gone now
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_record_of_the_wrong_shape_is_refused():
    from blurblib.training import record

    good = {"run_id": "x", "config": {}, "status": "ok", "test_score": 61.5, "dev_score": None}
    assert record.check(good) is None
    assert "status" in record.check({**good, "status": "done"})
    assert "test_score" in record.check({**good, "test_score": "61.5"})
    assert "dev_score" in record.check({**good, "dev_score": float("nan")})
    assert "config" in record.check({**good, "config": None})
