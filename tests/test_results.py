import json

import pytest

from blurblib import results
from blurblib.errors import DataError


def _record(run_id, score):
    return {"run_id": run_id, "status": "ok", "test_score": score, "config": {"task": "BIOSSES", "seed": 1}}


def test_write_is_atomic_and_load_flattens_config(tmp_path):
    store = results.ResultsStore(tmp_path)
    store.write(_record("a", 1.5))
    store.write(_record("b", 2.5))
    assert store.has("a") and not store.has("c")
    assert not list((tmp_path / "runs").glob(".tmp-*"))
    df = results.load(tmp_path)
    assert sorted(df["run_id"]) == ["a", "b"]
    assert set(df["task"]) == {"BIOSSES"} and df["test_score"].sum() == pytest.approx(4.0)


def test_overwrite_replaces_whole_record(tmp_path):
    store = results.ResultsStore(tmp_path)
    store.write(_record("a", 1.0))
    store.write(_record("a", 9.0))
    assert json.loads(store.path("a").read_text())["test_score"] == 9.0


def test_corrupt_record_names_file_and_fix(tmp_path):
    store = results.ResultsStore(tmp_path)
    store.runs.mkdir(parents=True)
    store.path("bad").write_text("{not json")
    with pytest.raises(DataError, match=r"bad\.json.*delete the file"):
        results.load(tmp_path)


def test_empty_store_is_an_empty_frame(tmp_path):
    assert results.load(tmp_path / "nothing").empty
