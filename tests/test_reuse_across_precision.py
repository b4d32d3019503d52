"""A store committed on a CPU with native bf16 serves one without: runs asked for at precision
`auto` reuse their twin at the other precision, records keep their own id and precision."""
import dataclasses

import pytest

from blurblib.core import precision
from blurblib.core.errors import ConfigError
from blurblib.runs import results, sweep
from blurblib.training.train import RunConfig
from blurblib.workbook import profiles


def _record(config, score=61.0):
    return {"run_id": config.run_id, "config": dataclasses.asdict(config), "status": "ok", "test_score": score,
            "trivial_test_score": 0.0, "finished_at": "now"}


@pytest.fixture
def trained(monkeypatch):
    """Run ids `sweep.run` trains (a fake record each: the test is about which runs are trained)."""
    ids = []

    def fake(config, **kw):
        ids.append(config.run_id)
        return _record(config, 70.0)

    monkeypatch.setattr(sweep, "run", fake)
    return ids


def _bf16_store(tmp_path):
    asked = RunConfig(task="BIOSSES", train_limit=8, eval_limit=8, max_length=32, epochs=1, precision="fp32")
    committed = dataclasses.replace(asked, precision="bf16")
    results.ResultsStore(tmp_path).write(_record(committed))
    return asked, committed


def test_a_run_asked_for_at_auto_is_served_by_its_twin_at_the_other_precision(tmp_path, trained):
    asked, committed = _bf16_store(tmp_path)
    assert asked.run_id != committed.run_id  # the precision is part of the id: nothing is relabelled
    p = sweep.plan([asked], out_dir=tmp_path, any_precision=True)
    assert (p.n_done, p.n_to_train, p.n_other_precision) == (1, 0, 1)
    assert "1 of them stored at another precision" in sweep.format_plan(p)
    runs = sweep.run_sweep([asked], tmp_path, progress=False, any_precision=True)
    assert trained == []
    assert list(runs["run_id"]) == [committed.run_id] and list(runs["precision"]) == ["bf16"]


def test_an_exact_precision_is_never_served_by_a_twin(tmp_path, trained):
    asked, committed = _bf16_store(tmp_path)
    assert sweep.plan([asked], out_dir=tmp_path).n_to_train == 1
    runs = sweep.run_sweep([asked], tmp_path, progress=False)
    assert trained == [asked.run_id] and list(runs["precision"]) == ["fp32"]


def test_the_run_at_this_machines_own_precision_comes_first(tmp_path, trained):
    asked, committed = _bf16_store(tmp_path)
    results.ResultsStore(tmp_path).write(_record(asked, 55.0))
    runs = sweep.records_for([asked], tmp_path, any_precision=True)
    assert list(runs["run_id"]) == [asked.run_id] and list(runs["test_score"]) == [55.0]


def test_a_profile_asks_for_auto_so_its_sweeps_reuse_twins(tmp_path, trained, monkeypatch):
    monkeypatch.setenv(precision.NATIVE_BF16_ENV, "0")
    P = profiles.get("04_low_resource_reinit", "smoke", results_dir=str(tmp_path), seeds=[1])
    [config] = sweep.expand(P.sweep(techniques=[{}]))
    assert config.precision == "fp32" and P.any_precision
    results.ResultsStore(tmp_path).write(_record(dataclasses.replace(config, precision="bf16")))
    assert P.plan([config]).n_to_train == 0
    assert list(P.run_sweep([config], progress=False)["precision"]) == ["bf16"] and trained == []


def test_the_switch_makes_auto_act_as_a_cpu_without_native_bf16(monkeypatch):
    monkeypatch.setenv(precision.NATIVE_BF16_ENV, "0")
    assert not precision.cpu_has_native_bf16() and precision.resolve("auto") == "fp32"
    assert profiles.task_settings("default", "GAD")["precision"] == "fp32"
    monkeypatch.setenv(precision.NATIVE_BF16_ENV, "yes")
    with pytest.raises(ConfigError, match="BLURB_NATIVE_BF16='yes'.*use 0"):
        precision.resolve("auto")
    monkeypatch.delenv(precision.NATIVE_BF16_ENV)
    assert precision.resolve("auto") in precision.PRECISIONS  # as this CPU says
    assert precision.alternatives("fp32") == ("fp32", "bf16") and precision.alternatives("bf16") == ("bf16", "fp32")
