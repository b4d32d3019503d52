"""The Ray backend on a real local Ray instance: same records as the local backend, worker
deaths retried, resumable across backends, failing runs reported while the rest finish; and on
a real two-node cluster started with `ray start` (marked `ray_cluster`): the documented recipe,
token authentication included, and a node lost mid-sweep."""
import contextlib
import dataclasses
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml

from blurblib import cli
from blurblib.core.errors import BlurbError, ConfigError
from blurblib.encoders import packs
from blurblib.runs import ray_auth, ray_backend, results, sweep
from blurblib.training.train import RunConfig

# One pytest-xdist worker runs every Ray test: two Ray instances at once would share ~/.ray and the cores.
pytestmark = pytest.mark.xdist_group("ray")

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


class _FakeRay:
    """Just enough of `ray` for the driver's side: `get` hands back what a worker returned."""

    class exceptions:
        RayError = RuntimeError
        AuthenticationError = PermissionError

    def __init__(self, returned=None):
        self.returned, self.inits = returned, []

    def get(self, ref):
        return self.returned

    def is_initialized(self):
        return False

    def init(self, **kwargs):
        self.inits.append(kwargs)


@pytest.mark.parametrize("forge", ["other_run", "edited_config", "path_id"])
def test_a_forged_worker_record_is_refused_and_nothing_is_stored(tmp_path, forge):
    asked, other = GRID[0], GRID[1]
    record = {"run_id": asked.run_id, "config": dataclasses.asdict(asked), "status": "ok", "test_score": 99.0}
    if forge == "other_run":  # a worker on other code answers with another run
        record = {**record, "run_id": other.run_id, "config": dataclasses.asdict(other)}
    elif forge == "edited_config":  # the submitted id over another config
        record["config"] = {**record["config"], "task": "ChemProt"}
    else:
        record["run_id"] = "../../elsewhere"
    store = results.ResultsStore(tmp_path)
    failure = ray_backend._collect(_FakeRay(record), store, "ref", asked)
    assert failure is not None and "not this run's, so it was not stored" in failure.reason()
    assert asked.run_id in str(failure.error) and "same blurblib on every node" in str(failure.error)
    assert store.records() == [] and not (tmp_path.parent / "elsewhere.json").exists()
    honest = {"run_id": asked.run_id, "config": dataclasses.asdict(asked), "status": "ok"}
    assert ray_backend._collect(_FakeRay(honest), store, "ref", asked) is None and store.has(asked.run_id)


def _no_token_settings(monkeypatch, home):
    for name in (ray_auth.TOKEN_ENV, ray_auth.TOKEN_PATH_ENV, ray_auth.MODE_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))


def _mode(path) -> int:
    return os.stat(path).st_mode & 0o777


def test_the_token_blurblib_starts_ray_with_is_owner_only(monkeypatch, tmp_path):
    _no_token_settings(monkeypatch, tmp_path)
    fake = _FakeRay()
    seen = []
    fake.init = lambda **kw: seen.append((kw, _mode(tmp_path / ".ray" / "auth_token"), _mode(tmp_path / ".ray")))
    assert ray_backend.connect(fake, None) is True
    [(kwargs, file_mode, folder_mode)] = seen
    assert (file_mode, folder_mode) == (0o600, 0o700)  # in place before Ray starts
    assert kwargs["_node_ip_address"] == "127.0.0.1" and kwargs["include_dashboard"] is False
    assert len((tmp_path / ".ray" / "auth_token").read_text()) == 64


def test_a_token_left_readable_is_tightened_and_a_joining_driver_makes_none(monkeypatch, tmp_path):
    _no_token_settings(monkeypatch, tmp_path)
    assert ray_auth.protect_token(create=False) is None and not (tmp_path / ".ray").exists()
    (tmp_path / ".ray").mkdir(mode=0o755)
    token = tmp_path / ".ray" / "auth_token"
    token.write_text("t")
    token.chmod(0o644)  # as Ray 2.60 leaves it
    assert ray_auth.protect_token(create=False) == token
    assert (_mode(token), _mode(tmp_path / ".ray"), token.read_text()) == (0o600, 0o700, "t")
    named = tmp_path / "elsewhere" / "token"
    named.parent.mkdir(mode=0o755)
    named.write_text("t")
    named.chmod(0o640)
    monkeypatch.setenv(ray_auth.TOKEN_PATH_ENV, str(named))
    assert ray_auth.protect_token() == named and _mode(named) == 0o600
    assert _mode(named.parent) == 0o755  # a folder the user named is theirs


def test_a_refusal_names_where_the_drivers_token_came_from(monkeypatch, tmp_path):
    for name in (ray_auth.TOKEN_ENV, ray_auth.TOKEN_PATH_ENV, ray_auth.MODE_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ray_auth.token_source() is None
    assert "this driver has no token" in str(ray_auth.refusal("h:6379"))
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("t")
    assert ray_auth.token_source() == str(tmp_path / ".ray" / "auth_token")
    monkeypatch.setenv(ray_auth.TOKEN_PATH_ENV, "/etc/ray-token")
    assert ray_auth.token_source() == "/etc/ray-token (named by RAY_AUTH_TOKEN_PATH)"
    monkeypatch.setenv(ray_auth.TOKEN_ENV, "t")  # Ray's first choice
    message = str(ray_auth.refusal("h:6379"))
    assert "refused the token this driver sent, from the environment variable RAY_AUTH_TOKEN" in message
    assert "`ray get-auth-token`" in message and "RAY_AUTH_TOKEN=<token>" in message
    monkeypatch.setenv(ray_auth.MODE_ENV, "disabled")
    assert "RAY_AUTH_MODE=disabled, so it sent no token; unset RAY_AUTH_MODE" in str(ray_auth.refusal("h:6379"))


# A real cluster on this machine: `ray start --head` and a second node by `ray start --address`,
# both with token authentication, and drivers run as `blurb sweep` in processes of their own
# (a driver in this process would find the module's local instance, and Ray keeps its
# authentication settings per process).
RAY_CLI = Path(sys.executable).with_name("ray")
BLURB_CLI = Path(sys.executable).with_name("blurb")
START_TIMEOUT_S = 120
SWEEP_TIMEOUT_S = 300
# Settings a driver or node must not inherit from this process: a local `ray.init()` sets
# RAY_AUTH_MODE=token for the rest of the process, and RAY_ADDRESS would pick the cluster.
RAY_SETTINGS = ("RAY_ADDRESS", ray_auth.MODE_ENV, ray_auth.TOKEN_ENV, ray_auth.TOKEN_PATH_ENV)


@dataclass(frozen=True)
class RayNode:
    """The processes of one `ray start`, found by the session it was started in: every process
    of the node (GCS, raylet, agents, and task workers, which change only their process group)
    keeps it. So a node is killed, or cleaned up, without touching another engineer's Ray
    (`ray stop --force` would stop every Ray on the machine)."""

    session: int

    def processes(self) -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter():
            with contextlib.suppress(OSError):  # gone meanwhile
                if os.getsid(proc.pid) == self.session:
                    found.append(proc)
        return found

    def training(self) -> bool:
        return any(_training(proc) for proc in self.processes())

    def kill(self) -> None:
        """SIGKILL every process of the node at once, as when the machine is lost."""
        procs = self.processes()
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(procs, timeout=10)


@dataclass(frozen=True)
class Cluster:
    """What a test needs of the running cluster: the head's address and token, and both nodes."""

    address: str
    token: str
    head: RayNode
    worker: RayNode


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in RAY_SETTINGS}
    return {**env, **extra}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ray_start(args: list[str], env: dict, log: Path, attempts: int = 3) -> RayNode:
    """`ray start ARGS` in a new session; the node once it has joined the cluster (`ray start`
    waits for that). A node that did not start is killed and started once more: Ray gives a
    raylet a fixed 30 s to register, which a machine shared with other jobs can miss."""
    for _ in range(attempts):
        with open(log, "w") as out:
            proc = subprocess.Popen([str(RAY_CLI), "start", *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        node = RayNode(proc.pid)
        try:
            code = proc.wait(timeout=START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            code = "a timeout"
        if code == 0:
            return node
        node.kill()
    pytest.fail(f"`ray start {' '.join(args)}` failed {attempts} times ({code}):\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def two_node_cluster():
    """A head and a second node, as on two machines: 1 CPU each, token authentication on (the
    token passed as RAY_AUTH_TOKEN), ports and temp dirs of their own, so other Ray instances on
    this machine are neither joined nor stopped. Costs about 25 s to start on 2 idle cores. Every
    process of both nodes is killed at the end, whatever happened."""
    root = Path(tempfile.mkdtemp(prefix="blurb-ray-"))  # short: Ray's socket paths must fit in 107 characters
    token = secrets.token_hex(32)
    env = _clean_env(**{ray_auth.MODE_ENV: "token", ray_auth.TOKEN_ENV: token})
    node_args = ["--num-cpus", "1", "--object-store-memory", str(100 * 2**20), "--disable-usage-stats"]
    address = f"127.0.0.1:{_free_port()}"
    nodes = []
    try:
        nodes.append(_ray_start(["--head", "--port", address.rsplit(":", 1)[1], "--include-dashboard", "false",
                                 "--temp-dir", str(root / "head"), *node_args], env, root / "head.log"))
        nodes.append(_ray_start(["--address", address, "--temp-dir", str(root / "worker"), *node_args], env,
                                root / "worker.log"))
        yield Cluster(address, token, *nodes)
    finally:
        for node in nodes:
            node.kill()
        left = [proc for node in nodes for proc in node.processes()]
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"Ray processes still running after the cluster was stopped: {left}"


def _tiny_spec(path: Path) -> Path:
    """GRID as a sweep spec: the same run ids, so the local backend's records are the reference."""
    hyper = {k: v for k, v in TINY.items() if k != "task"}
    path.write_text(yaml.safe_dump({"tasks": [TINY["task"]], "models": ["minilm-l6"], "seeds": [c.seed for c in GRID],
                                    "hyperparameters": hyper}))
    assert [c.run_id for c in sweep.expand(sweep.SweepSpec.from_yaml(path))] == [c.run_id for c in GRID]
    return path


def _blurb_sweep(spec: Path, out: Path, address: str, env: dict, log: Path) -> subprocess.Popen:
    with open(log, "w") as sink:
        return subprocess.Popen([str(BLURB_CLI), "sweep", str(spec), "--out", str(out), "--backend", "ray",
                                 "--address", address], env=env, stdout=sink, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


def _kill_when_training(node: RayNode, driver: subprocess.Popen, timeout_s: float) -> bool:
    """Kill `node` once it has been training a run for half a second; False if it never did."""
    deadline = time.monotonic() + timeout_s
    while driver.poll() is None and time.monotonic() < deadline:
        if node.training():
            time.sleep(0.5)
            if node.training():
                node.kill()
                return True
        time.sleep(0.2)
    return False


@pytest.mark.ray_cluster
@pytest.mark.parametrize("token, cause", [
    (None, "this driver has no token"),
    ("not-the-clusters-token", "it refused the token this driver sent, from the environment variable RAY_AUTH_TOKEN"),
])
def test_a_driver_without_the_clusters_token_is_told_so(two_node_cluster, tmp_path, token, cause):
    """About 15 s each (a `blurb sweep` process); the cluster is shared with the next test."""
    env = _clean_env(HOME=str(tmp_path),  # no ~/.ray/auth_token
                     RAY_gcs_server_port_wait_time_s="1")  # Ray's 20 connect attempts would only repeat the refusal
    if token:
        env[ray_auth.TOKEN_ENV] = token
    store, log = tmp_path / "store", tmp_path / "driver.log"
    driver = _blurb_sweep(_tiny_spec(tmp_path / "spec.yaml"), store, two_node_cluster.address, env, log)
    assert driver.wait(timeout=SWEEP_TIMEOUT_S) == 2
    out = log.read_text()
    error = next(line for line in out.splitlines() if line.startswith("blurb: error:"))
    assert f"the Ray cluster at '{two_node_cluster.address}' requires token authentication and {cause}" in error
    assert "`ray get-auth-token`" in error and "RAY_AUTH_TOKEN=<token>" in error and "~/.ray/auth_token" in error
    assert "start it" not in error  # not the message for a cluster that is not there
    assert "InvalidAuthToken" in out  # what Ray itself printed: the cluster did refuse it
    assert not (store / "runs").exists()


@pytest.mark.ray_cluster
def test_a_sweep_on_a_cluster_loses_no_run_when_a_node_dies(two_node_cluster, local_store, tmp_path):
    """The documented recipe end to end: a driver on "another machine" that has the head's token
    in ~/.ray/auth_token (nothing else set) runs `blurb sweep --backend ray --address`; the second
    node is killed (all its processes, SIGKILL) while it trains a run. Ray retries that run on the
    head, and the store gets each run exactly once, with the numbers the local backend computes.
    About 60-90 s on 2 cores: Ray starts a fresh worker process per node (importing torch) before
    the four tiny runs."""
    cluster = two_node_cluster
    assert cluster.worker.processes(), "the second node is not running"
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(cluster.token)  # the head's token, copied to the driver's machine
    store, log = tmp_path / "store", tmp_path / "driver.log"
    driver = _blurb_sweep(_tiny_spec(tmp_path / "spec.yaml"), store, cluster.address, _clean_env(HOME=str(home)), log)
    try:
        killed = _kill_when_training(cluster.worker, driver, SWEEP_TIMEOUT_S)
        code = driver.wait(timeout=SWEEP_TIMEOUT_S)
    finally:
        if driver.poll() is None:
            driver.kill()
    out = log.read_text()
    assert killed, f"the second node never trained a run:\n{out[-3000:]}"
    assert code == 0, out[-3000:]
    assert not cluster.worker.processes()
    retried = re.findall(r"Task train_one_run failed\. There are \d+ retries remaining, so the task will be retried\. "
                         r"Error: Task failed because the node it was running on is dead", out)
    assert retried, out[-3000:]  # Ray's account of the run the node was training (1 CPU: one run)
    records = results.ResultsStore(store).records()
    assert sorted(r["run_id"] for r in records) == sorted(c.run_id for c in GRID)  # none lost, none twice
    assert sorted(p.name for p in (store / "runs").iterdir()) == sorted(f"{c.run_id}.json" for c in GRID)
    expected, got = _scores(local_store), _scores(store)
    for run_id, (dev, test) in expected.items():
        assert got[run_id][0] == pytest.approx(dev, abs=1e-6) and got[run_id][1] == pytest.approx(test, abs=1e-6)
    assert not list(results.ResultsStore(store).locks.glob("*.lock"))
