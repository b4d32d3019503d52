"""The Ray backend on a real local Ray instance: same records as the local backend, worker
deaths retried, resumable across backends, failing runs reported while the rest finish."""
import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time

import psutil
import pytest

from blurblib import cli, packs, ray_backend, results, sweep
from blurblib.errors import BlurbError, ConfigError
from blurblib.train import RunConfig

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install ray (pinned in requirements.lock)")

TINY = dict(task="BIOSSES", epochs=1, train_limit=8, eval_limit=8, max_length=32, batch_size=4)
GRID = [RunConfig(seed=s, **TINY) for s in (1, 2, 3, 4)]
WORKER_TITLE = "ray::train_one_run"  # Ray names a busy worker process after its task


@pytest.fixture(scope="module")
def local_ray():
    """One local instance for the module: starting Ray costs seconds, each test reuses its workers."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def local_store(tmp_path_factory, one_torch_thread):
    """GRID trained by the local backend in this process, on one thread like each Ray task."""
    out = tmp_path_factory.mktemp("local")
    sweep.run_sweep(GRID, out, progress=False, workers=1)
    return out


def _scores(out) -> dict:
    return {r["run_id"]: (r["dev_score"], r["test_score"]) for r in results.ResultsStore(out).records()}


def _count_submissions(monkeypatch) -> list:
    submitted = []
    submit = ray_backend._submit

    def counting(ray_module, config, *args):
        submitted.append(config.run_id)
        return submit(ray_module, config, *args)

    monkeypatch.setattr(ray_backend, "_submit", counting)
    return submitted


def test_ray_stores_the_records_the_local_backend_writes(tmp_path, local_ray, local_store):
    table = sweep.run_sweep(GRID, tmp_path, progress=False, backend="ray")
    expected, got = _scores(local_store), _scores(tmp_path)
    assert set(got) == set(expected) == {c.run_id for c in GRID} and len(table) == 4
    for run_id, (dev, test) in expected.items():
        assert got[run_id][0] == pytest.approx(dev, abs=1e-6) and got[run_id][1] == pytest.approx(test, abs=1e-6)
    assert not list(results.ResultsStore(tmp_path).locks.glob("*.lock"))
    assert ray.is_initialized()  # the caller's instance is left running


def test_resumes_across_backends_and_a_second_run_trains_nothing(tmp_path, local_ray, local_store, monkeypatch):
    (tmp_path / "runs").mkdir()
    for config in GRID[:2]:  # trained by the local backend
        shutil.copy(results.ResultsStore(local_store).path(config.run_id), tmp_path / "runs")
    submitted = _count_submissions(monkeypatch)
    sweep.run_sweep(GRID, tmp_path, progress=False, backend="ray")
    assert sorted(submitted) == sorted(c.run_id for c in GRID[2:])
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.json")}
    table = sweep.run_sweep(GRID, tmp_path, progress=False, backend="ray")
    assert len(submitted) == 2 and len(table) == 4
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.json")} == before


def _kill_first_worker(killed: list, stop: threading.Event) -> None:
    """SIGKILL the first of this test's Ray workers seen training a run, half a second into it."""
    while not stop.is_set():
        for proc in psutil.Process().children(recursive=True):  # only the Ray this process started
            if _training(proc):
                time.sleep(0.5)
                if _training(proc):
                    os.kill(proc.pid, signal.SIGKILL)
                    killed.append(proc.pid)
                    return
        time.sleep(0.1)


def _training(proc: psutil.Process) -> bool:
    try:
        return " ".join(proc.cmdline()).startswith(WORKER_TITLE)
    except psutil.Error:  # gone, or a zombie
        return False


def test_a_killed_worker_has_its_run_retried_and_stored_once(tmp_path, local_ray):
    grid = [RunConfig(seed=s, **{**TINY, "train_limit": 32, "epochs": 2}) for s in (1, 2, 3, 4)]  # long enough to hit
    killed, stop = [], threading.Event()
    killer = threading.Thread(target=_kill_first_worker, args=(killed, stop), daemon=True)
    killer.start()
    try:
        table = sweep.run_sweep(grid, tmp_path, progress=False, backend="ray")  # raises if a run was lost
    finally:
        stop.set()
        killer.join()
    assert killed and not psutil.pid_exists(killed[0])
    files = sorted(p.stem for p in (tmp_path / "runs").glob("*.json"))
    assert files == sorted(c.run_id for c in grid) and set(table["status"]) == {"ok"}


def test_a_failing_run_is_reported_and_the_others_finish(tmp_path, local_ray, capsys):
    broken = tmp_path / "broken-minilm"
    shutil.copytree(packs.minilm_dir(), broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    bad = RunConfig(model=str(broken), seed=1, **TINY)
    bad.validate()  # the failure is found only by training
    store = tmp_path / "store"
    with pytest.raises(BlurbError, match=rf"1 of 3 runs failed on Ray(.|\n)*{bad.run_id}: SafetensorError"):
        sweep.run_sweep([bad, *GRID[:2]], store, progress=False, backend="ray")
    stored = sorted(p.stem for p in (store / "runs").glob("*.json"))
    assert stored == sorted(c.run_id for c in GRID[:2])
    err = capsys.readouterr().err
    assert f"run {bad.run_id} failed on Ray" in err and repr(bad) in err
    assert "in train_one_run" in err and "SafetensorError" in err  # the worker's traceback
    assert not list(results.ResultsStore(store).locks.glob("*.lock"))  # the next sweep retries it


def test_resources_share_a_gpu_only_between_small_encoders():
    assert ray_backend.resources(GRID[0], "cpu") == {"num_cpus": 1}
    assert ray_backend.resources(GRID[0], "cuda:0") == {"num_cpus": 1, "num_gpus": 0.25}
    assert ray_backend.resources(RunConfig(task="BIOSSES", model="bert-base"), "cuda") == {"num_cpus": 1, "num_gpus": 1}


def test_a_gpu_run_on_a_cluster_without_gpus_is_named():
    class CpuCluster:
        @staticmethod
        def cluster_resources():
            return {"CPU": 8.0, "memory": 1e10}

    with pytest.warns(RuntimeWarning, match="ask Ray for GPU that no node of the cluster has now"):
        ray_backend._warn_if_unschedulable(CpuCluster, [ray_backend.resources(GRID[0], "cuda")])


def test_workers_get_the_drivers_data_path(monkeypatch, tmp_path):
    monkeypatch.setenv("BLURB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    env = ray_backend.worker_env()
    assert env["BLURB_DATA_DIR"] == str(tmp_path.resolve()) and env["HF_HUB_OFFLINE"] == "1"


def test_an_unreachable_address_fails_fast_with_the_fix():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(ConfigError, match="no Ray cluster answers.*ray start --head"):
        ray_backend._check_reachable(f"127.0.0.1:{port}")
    assert time.monotonic() - started < ray_backend.CONNECT_TIMEOUT_S + 1
    with pytest.raises(ConfigError, match="not host:port"):
        ray_backend._check_reachable("nonsense")


def test_missing_ray_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match="pip install ray=="):
        ray_backend._import_ray()


def test_backend_arguments_are_checked_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError, match="unknown backend 'dask'"):
        sweep.run_sweep(GRID, tmp_path, backend="dask")
    with pytest.raises(ConfigError, match="add backend 'ray'"):
        sweep.run_sweep(GRID, tmp_path, address="10.0.0.5:6379")
    assert not (tmp_path / "runs").exists()


def test_cli_takes_the_backend_and_refuses_an_address_without_ray(tmp_path, capsys):
    args = cli.build_parser().parse_args(["sweep", "spec.yaml", "--backend", "ray", "--address", "10.0.0.5:6379"])
    assert (args.backend, args.address) == ("ray", "10.0.0.5:6379")
    assert cli.main(["finetune", "--task", "BIOSSES", "--seeds", "1", "--out", str(tmp_path), "--address", "h:1"]) == 2
    assert "add backend 'ray' (--backend ray)" in capsys.readouterr().err
