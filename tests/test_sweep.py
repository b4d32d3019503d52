import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest

from blurblib.core.errors import ConfigError, StoreWarning, UnknownNameError
from blurblib.runs import results, sweep
from blurblib.runs.sweep import SweepSpec
from blurblib.training.train import RunConfig
from blurblib.workbook import profiles


def test_parse_seeds():
    assert sweep.parse_seeds("1-5") == [1, 2, 3, 4, 5]
    assert sweep.parse_seeds("1,3,7") == [1, 3, 7]
    assert sweep.parse_seeds("2-3,9") == [2, 3, 9]
    assert sweep.parse_seeds([4, 5]) == [4, 5]
    with pytest.raises(ConfigError, match="1-5"):
        sweep.parse_seeds("one-five")


def test_expand_is_the_full_grid_in_stable_order():
    spec = SweepSpec.from_dict({
        "tasks": ["BIOSSES", "gad"], "models": "minilm-l6",
        "techniques": ["standard", "reinit", {"llrd_decay": 0.8, "freeze_layers": 2}],
        "seeds": "1-3", "hyperparameters": {"lr": [1e-5, 5e-5], "epochs": 2},
        "per_task": {"BIOSSES": {"batch_size": 8}},
    })
    configs = sweep.expand(spec)
    assert len(configs) == 2 * 3 * 2 * 3
    assert len({c.run_id for c in configs}) == len(configs)
    assert [c.seed for c in configs[:3]] == [1, 2, 3]
    assert {c.task for c in configs} == {"BIOSSES", "GAD"}
    assert {c.technique for c in configs} == {"standard", "reinit1", "freeze2+llrd0.8"}
    assert all(c.batch_size == (8 if c.task == "BIOSSES" else 16) for c in configs)
    assert all(c.epochs == 2 for c in configs)


def test_spec_errors_name_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="unknown sweep keys"):
        SweepSpec.from_dict({"tasks": ["BIOSSES"], "seed": 3})
    with pytest.raises(ConfigError, match="unknown technique knobs"):
        SweepSpec.from_dict({"tasks": ["BIOSSES"], "techniques": [{"freeze": 2}]})
    with pytest.raises(UnknownNameError, match="known techniques"):
        SweepSpec.from_dict({"tasks": ["BIOSSES"], "techniques": ["dropout"]})
    with pytest.raises(ConfigError, match="RunConfig fields"):
        sweep.expand(SweepSpec.from_dict({"tasks": ["BIOSSES"], "hyperparameters": {"learning_rate": 1e-5}}))
    with pytest.raises(ConfigError, match="not found"):
        SweepSpec.from_yaml(tmp_path / "missing.yaml")


def test_example_spec_and_plan(tmp_path):
    configs = sweep.expand(SweepSpec.from_yaml(Path(__file__).parent.parent / "examples" / "stabilization.yaml"))
    assert len(configs) == 2 * 5 * 2 * 5
    cpu, gpu = sweep.plan(configs, "cpu"), sweep.plan(configs, "cuda")
    assert cpu.n_runs == 100 and cpu.n_done == 0
    assert cpu.estimated_hours > gpu.estimated_hours > 0
    # BIOSSES (64 pairs x 10 epochs) costs less than GAD (500 sentences x 3 epochs)
    by_task = cpu.by_task.set_index("task")["hours"]
    assert by_task["BIOSSES"] < by_task["GAD"]
    assert "100 runs (0 already done)" in sweep.format_plan(cpu)


def test_profiles_are_data_with_overrides():
    p = profiles.get("03_stabilization", "default")
    assert p.results_dir.endswith("outputs/results")
    assert profiles.get("03_stabilization", "smoke").results_dir.endswith("outputs/smoke/results")
    assert profiles.get("03_stabilization", "smoke", seeds=[7]).seeds == (7,)
    spec = p.sweep(tasks=["BIOSSES"])
    assert spec.per_task["BIOSSES"] == profiles.task_settings("default", "BIOSSES")
    with pytest.raises(UnknownNameError, match="smoke, default, full, paper"):
        profiles.get("03_stabilization", "huge")
    for notebook in profiles.notebooks():
        for name in profiles.PROFILES:
            prof = profiles.get(notebook, name)
            sweep.expand(prof.sweep())  # every profile expands to valid configs


def test_spec_values_are_checked_with_the_fix(tmp_path):
    base = {"tasks": ["BIOSSES"]}
    cases = [
        (["BIOSSES"], ConfigError, "mapping with keys"),
        ({}, ConfigError, "names no tasks"),
        ({**base, "seeds": "5-1"}, ConfigError, "write it low-high, like 1-5"),
        ({**base, "seeds": ["a"]}, ConfigError, "cannot read seeds"),
        ({**base, "seeds": 1.5}, ConfigError, "cannot read seeds"),
        ({**base, "models": []}, ConfigError, "empty list"),
        ({**base, "models": [3]}, ConfigError, "not names"),
        ({**base, "techniques": [3]}, ConfigError, "neither a name nor a mapping"),
        ({**base, "techniques": [{"freeze_layers": "two"}]}, ConfigError, "freeze_layers='two' must be of type int"),
        ({**base, "hyperparameters": {"lr": "fast"}}, ConfigError, "lr='fast' must be of type float"),
        ({**base, "hyperparameters": {"epochs": [1, "x"]}}, ConfigError, "epochs='x'"),
        ({**base, "hyperparameters": {"seed": 3}}, ConfigError, "top-level keys"),
        ({**base, "hyperparameters": [1]}, ConfigError, "mapping of RunConfig fields"),
        ({**base, "per_task": {"BIOSSES": {"epoch": 3}}}, ConfigError, r"unknown hyperparameters \['epoch'\] in per_task"),
        ({**base, "per_task": {"BIOSSESS": {"epochs": 3}}}, UnknownNameError, "BIOSSESS"),
    ]
    for data, error, message in cases:
        with pytest.raises(error, match=message):
            SweepSpec.from_dict(data)


def test_spec_reads_what_users_write():
    spec = SweepSpec.from_dict({"tasks": "biosses", "techniques": "reinit", "seeds": 4,
                                "hyperparameters": {"lr": "1e-5"}, "per_task": {"biosses": {"epochs": 2, "freeze_layers": 1}}})
    [config] = sweep.expand(spec)
    assert (config.task, config.reinit_layers, config.seed, config.lr, config.epochs) == ("BIOSSES", 1, 4, 1e-5, 2)
    assert config.freeze_layers == 1  # a per-task knob composes with the technique's


def test_yaml_errors_name_file_line_and_column(tmp_path):
    spec = tmp_path / "grid.yaml"
    spec.write_text("tasks: [BIOSSES\nseeds: 1-3\n")
    with pytest.raises(ConfigError, match=r"grid\.yaml:\d+:\d+: YAML syntax error"):
        SweepSpec.from_yaml(spec)
    spec.write_text("tasks: [BIOSSES]\nseed: 3\n")
    with pytest.raises(ConfigError, match=r"grid\.yaml: unknown sweep keys \['seed'\]"):
        SweepSpec.from_yaml(spec)
    with pytest.raises(ConfigError, match="is a folder"):
        SweepSpec.from_yaml(tmp_path)


# ---- the store shared by processes: claims, waiting, corrupt records -----------------------------

TINY = dict(epochs=1, train_limit=8, eval_limit=8, max_length=32, batch_size=4)


def _configs(n=4):
    return [RunConfig(task="GAD", seed=s, **TINY) for s in range(1, n + 1)]


def _fake_record(config):
    return {"run_id": config.run_id, "config": dataclasses.asdict(config), "status": "ok", "test_score": 50.0,
            "trivial_test_score": 0.0, "finished_at": "now"}


@pytest.fixture
def counted(monkeypatch):
    """Every config `sweep.run` trains, in order; `counted.real` trains for real, else a fake record."""
    trained = _Trained()
    real_run = sweep.run

    def fake(config, **kw):
        trained.append(config.run_id)
        return real_run(config, **kw) if trained.real else _fake_record(config)

    monkeypatch.setattr(sweep, "run", fake)
    monkeypatch.setattr(sweep, "POLL_S", 0.05)
    return trained


class _Trained(list):
    real = False


def _sleeper():
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_corrupt_record_is_quarantined_and_redone(tmp_path, counted, one_torch_thread):
    counted.real = True
    [config] = _configs(1)
    store = results.ResultsStore(tmp_path)
    store.runs.mkdir(parents=True)
    store.path(config.run_id).write_text('{"run_id": "' + config.run_id + '", "dev_sc')  # a truncated copy
    with pytest.warns(StoreWarning, match=rf"{config.run_id}\.json.*quarantine"):
        assert sweep.plan([config], out_dir=tmp_path).n_done == 0
    df = sweep.run_sweep([config], tmp_path, progress=False)
    assert counted == [config.run_id] and list(df["run_id"]) == [config.run_id]
    assert df["status"].iloc[0] in ("ok", "failed") and store.get(config.run_id)["config"]["seed"] == 1
    assert len(list(store.quarantine.iterdir())) == 1 and not list(store.locks.glob("*.lock"))


def test_sweep_waits_for_a_run_another_process_is_training(tmp_path, counted, capsys):
    configs = _configs(3)
    store = results.ResultsStore(tmp_path)
    other = _sleeper()  # stands for the other notebook
    lock = store.locks / f"{configs[1].run_id}.lock"
    store.locks.mkdir(parents=True)
    lock.write_text(json.dumps({"pid": other.pid, "host": socket.gethostname()}))

    def finish_it():  # the other process writes its record, then releases its claim
        time.sleep(0.5)
        store.write(_fake_record(configs[1]) | {"test_score": 77.0})
        lock.unlink()

    writer = threading.Thread(target=finish_it)
    writer.start()
    try:
        df = sweep.run_sweep(configs, tmp_path, progress=False)
    finally:
        writer.join(10)
        other.kill()
        other.wait()
    assert counted == [configs[0].run_id, configs[2].run_id]  # the claimed run was left to its owner
    assert sorted(df["seed"]) == [1, 2, 3] and df.set_index("seed").loc[2, "test_score"] == 77.0
    assert f"pid {other.pid}" in capsys.readouterr().out


def test_a_run_whose_owner_dies_is_trained_by_the_waiting_sweep(tmp_path, counted):
    [config] = _configs(1)
    store = results.ResultsStore(tmp_path)
    other = _sleeper()
    store.locks.mkdir(parents=True)
    (store.locks / f"{config.run_id}.lock").write_text(json.dumps({"pid": other.pid, "host": socket.gethostname()}))
    killer = threading.Timer(0.5, other.kill)
    killer.start()
    try:
        with pytest.warns(StoreWarning, match=f"stale lock.*pid {other.pid}"):
            df = sweep.run_sweep([config], tmp_path, progress=False)
    finally:
        killer.join(10)
        other.kill()
        other.wait()
    assert counted == [config.run_id] and len(df) == 1


def test_a_run_that_raises_releases_its_claim(tmp_path, monkeypatch):
    [config] = _configs(1)

    def crash(config, **kw):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(sweep, "run", crash)
    with pytest.raises(RuntimeError):
        sweep.run_sweep([config], tmp_path, progress=False)
    store = results.ResultsStore(tmp_path)
    assert store.holder(config.run_id) is None and not store.has(config.run_id)


_CHILD = """
import sys, time
from pathlib import Path
from blurblib import sweep
from blurblib.training.train import RunConfig
work, me, other = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
configs = [RunConfig(task="GAD", seed=s, epochs=1, train_limit=8, eval_limit=8, max_length=32, batch_size=4) for s in range(1, 5)]
real_run = sweep.run
def counted(config, **kw):  # log every training this process starts
    with open(work / f"trained-{me}.txt", "a") as log:
        log.write(config.run_id + "\\n")
    return real_run(config, **kw)
sweep.run = counted
sweep.POLL_S = 0.2
(work / f"ready-{me}").touch()
deadline = time.time() + 60
while other and not (work / f"ready-{other}").exists() and time.time() < deadline:
    time.sleep(0.02)  # start both sweeps at the same moment
df = sweep.run_sweep(configs, work / "store", progress=False)
print("ROWS", len(df), flush=True)
"""


def _child(work, me, other=""):
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(work), me, other], stdout=subprocess.PIPE, text=True)


def _trained(work, me) -> list[str]:
    log = work / f"trained-{me}.txt"
    return log.read_text().split() if log.exists() else []


def test_killed_sweep_resumes_without_losing_or_redoing_a_run(tmp_path, counted, one_torch_thread):
    store = results.ResultsStore(tmp_path / "store")
    child = _child(tmp_path, "a")
    deadline = time.time() + 120
    while not (store.runs.is_dir() and list(store.runs.glob("*.json"))):
        assert time.time() < deadline and child.poll() is None, "the sweep wrote no record"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    before = {p.stem: p.read_bytes() for p in store.runs.glob("*.json")}
    started = _trained(tmp_path, "a")
    assert 1 <= len(before) < 4 and set(before) <= set(started)

    stale = list(store.locks.glob("*.lock"))  # the run it was killed in, unless killed between two runs

    counted.real = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StoreWarning)
        df = sweep.run_sweep(_configs(), tmp_path / "store", progress=False)
    assert len([w for w in caught if "stale lock" in str(w.message)]) == len(stale) <= 1
    assert sorted(df["seed"]) == [1, 2, 3, 4]
    assert {p.stem: p.read_bytes() for p in store.runs.glob("*.json") if p.stem in before} == before  # none lost or redone
    assert sorted(counted) == sorted(set(c.run_id for c in _configs()) - set(before))  # each missing run once
    assert not list(store.locks.glob("*.lock")) and not list(store.runs.glob(".tmp-*"))


def test_two_sweeps_on_one_store_train_every_run_exactly_once(tmp_path):
    a, b = _child(tmp_path, "a", "b"), _child(tmp_path, "b", "a")
    outs = [p.communicate(timeout=240)[0] for p in (a, b)]
    assert a.returncode == b.returncode == 0
    assert all("ROWS 4" in out for out in outs)  # both tables complete
    by_a, by_b = _trained(tmp_path, "a"), _trained(tmp_path, "b")
    assert sorted(by_a + by_b) == sorted(c.run_id for c in _configs())  # all four, none twice
    assert by_a and by_b  # both really worked at once
    store = results.ResultsStore(tmp_path / "store")
    assert len(store.records()) == 4 and not list(store.locks.glob("*.lock"))


def test_workers_train_each_run_once_with_the_same_numbers(tmp_path, monkeypatch, one_torch_thread):
    """Two worker processes (one thread each) against the same grid trained in-process on one
    thread: every run trained once, and the numbers do not depend on who trained it."""
    tiny = dict(task="BIOSSES", epochs=1, train_limit=8, eval_limit=8, max_length=32, batch_size=4)
    configs = [RunConfig(seed=s, **tiny) for s in (1, 2, 3)]
    pooled = sweep.run_sweep(configs, tmp_path / "pool", progress=False, workers=2)
    inline = sweep.run_sweep(configs, tmp_path / "inline", progress=False, workers=1)
    assert len(pooled) == len(inline) == 3 and len(list((tmp_path / "pool" / "runs").glob("*.json"))) == 3
    by_seed = lambda df: df.sort_values("seed")[["run_id", "dev_score", "test_score"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(by_seed(pooled), by_seed(inline))


def test_default_workers_follow_the_cores_and_the_environment(monkeypatch):
    monkeypatch.setenv("BLURB_WORKERS", "3")
    assert sweep.default_workers() == 3
    monkeypatch.delenv("BLURB_WORKERS")
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert sweep.default_workers("cpu") == 4 and sweep.default_workers("cuda") == 1
