"""Sweeps beyond one machine: each pending run is one Ray task; the driver keeps the store.

Ray schedules the tasks over whatever cluster it is given (a local instance by default, or
`address=` a running cluster). A worker trains with `train.run` and returns the record; only
the driver writes the results store, so workers need no shared filesystem and a run id means
the same run whichever backend trained it (resuming works across backends).

Workers read BLURB from `BLURB_DATA_DIR` on their own node (the driver's path is passed to
them): the data is small and static, so copying it once per node beats shipping it with
every task. A worker that dies (node lost, OOM, kill -9) has its run retried `MAX_RETRIES`
times; a run that raises is a bug, not bad luck, so it is reported with its config and
traceback, the rest of the grid goes on, and the call raises at the end naming every failure.

The driver trusts no worker: a returned record is stored only when it is the record of the run
submitted (its id and the content id of its config are that run's), else it is a failure. A
local instance is started with its token owner-only (`ray_auth.protect_token`) and advertises
only the loopback address (Ray 2.60 still binds its gRPC ports on every interface; the token
guards them: docs/cluster.md, Security and sharing).
"""
from __future__ import annotations

import logging
import os
import socket
import sys
import warnings
from dataclasses import dataclass
from urllib.parse import urlparse

from tqdm.auto import tqdm

from ..core import paths
from ..core.errors import BlurbError, ConfigError
from ..encoders import models
from ..training.train import RunConfig, run
from . import ray_auth, results

MAX_RETRIES = 3  # attempts after a worker death; enough for a lost node, bounded for a run that always OOMs
SMALL_GPU_MODEL = 12 * 768  # layers x hidden of BERT-base: encoders below it share a GPU
CONNECT_TIMEOUT_S = 5.0
LOOPBACK = "127.0.0.1"  # the address a local instance advertises: no other machine is sent to it
RAY_VERSION = "2.60.0"  # as pinned in requirements.lock
# Settings a worker needs to find the same data, models and offline mode as the driver.
PASSED_ENV = ("BLURB_MODELS_DIR", "BLURB_CORPORA_DIR", "BLURB_CACHE_DIR", "BLURB_OUTPUTS_DIR", "HF_HUB_OFFLINE",
              "TRANSFORMERS_OFFLINE", "HF_HOME", "HF_HUB_CACHE", "HF_ENDPOINT", "TOKENIZERS_PARALLELISM")


def train_on_ray(store: results.ResultsStore, todo: list[RunConfig], device: str, progress: bool,
                 score_test: bool, address: str | None = None) -> list[RunConfig]:
    """Train `todo` as Ray tasks, storing each record as it arrives; return the runs another
    process holds (the caller waits for those). Raises once every task has ended if any failed."""
    ray = _import_ray()
    started = connect(ray, address)
    try:
        return _train_all(ray, store, todo, device, progress, score_test)
    finally:
        if started:  # a cluster or an instance the caller started is theirs to keep
            ray.shutdown()


def resources(config: RunConfig, device: str) -> dict:
    """What one run asks Ray for: one core on a CPU. On a GPU, a quarter of one for encoders
    smaller than BERT-base (MiniLM leaves most of a GPU idle, so four share one) and a whole
    one otherwise (a base or large encoder at the paper's lengths keeps a GPU busy alone)."""
    if not device.startswith("cuda"):
        return {"num_cpus": 1}
    spec = models.get(config.model)
    return {"num_cpus": 1, "num_gpus": 0.25 if spec.layers * spec.hidden < SMALL_GPU_MODEL else 1}


def worker_env() -> dict[str, str]:
    """The driver's data and model locations for every worker, resolved, so a worker reads the
    same paths (which must exist on its node) rather than its own defaults."""
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    env["BLURB_DATA_DIR"] = str(paths.data_dir().resolve())
    env["BLURB_SHARED_DIR"] = str(paths.SHARED.resolve())
    return env


def connect(ray, address: str | None) -> bool:
    """Join `address` (or `RAY_ADDRESS`), else start a local instance on every core; True when
    this call started Ray, so only that is shut down. An unreachable address fails in seconds,
    not after Ray's endless reconnecting; a cluster that wants a token gets this machine's
    (`ray_auth`), and one that refuses it is named as the cause."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    quiet = {"logging_level": logging.ERROR}
    ray_auth.protect_token(create=not address)  # before Ray writes one readable by every user
    if not address:
        # Ray's memory monitor would retry a run it kills for memory forever; bound it like any death
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, _system_config={"task_oom_retries": MAX_RETRIES},
                 _node_ip_address=LOOPBACK, **quiet)
        return True
    _check_reachable(address)
    ray_auth.use_token_if_present()  # Ray itself authenticates only for `auto`
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, ray.exceptions.AuthenticationError) as err:
        if ray_auth.refused(err):
            raise ray_auth.refusal(address) from None
        raise ConfigError(f"cannot join the Ray cluster at {address!r} ({err}); start it (`ray start --head` on "
                          "the head node) or fix --address, or use --backend local") from None
    return True


def _check_reachable(address: str) -> None:
    """A TCP connect to host:port first: `ray.init` retries an unreachable address forever."""
    if address in ("auto", "local"):
        return
    parsed = urlparse(address if "://" in address else f"gcs://{address}")
    try:
        port = parsed.port
    except ValueError:
        port = None
    if not parsed.hostname or port is None:
        raise ConfigError(f"Ray address {address!r} is not host:port; use e.g. --address 10.0.0.5:6379, "
                          "ray://10.0.0.5:10001 or auto")
    try:
        socket.create_connection((parsed.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        raise ConfigError(f"no Ray cluster answers at {address!r} ({err}); start one with `ray start --head` "
                          "on the head node and pass its address, or use --backend local") from None


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--backend ray needs Ray, which is not installed here: pip install ray=={RAY_VERSION} "
                          "(pinned in requirements.lock), or use --backend local") from None
    return ray


def _train_all(ray, store: results.ResultsStore, todo: list[RunConfig], device: str, progress: bool,
               score_test: bool) -> list[RunConfig]:
    """Claim each run (so a local sweep on the same store leaves it alone), submit it, and
    store records as they arrive; claims are released as each run ends, stored or not."""
    claims, busy = _claim(store, todo)
    refs, pending, failures = {}, [], []
    try:
        refs = {_submit(ray, config, device, score_test): config for config in todo if config.run_id in claims}
        _warn_if_unschedulable(ray, [resources(c, device) for c in refs.values()])
        pending = list(refs)
        with tqdm(total=len(refs), desc="runs (ray)", disable=not progress) as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                config = refs[done[0]]
                failure = _collect(ray, store, done[0], config)
                if failure:
                    failures.append(failure)
                    tqdm.write(failure.report(), file=sys.stderr)
                claims.pop(config.run_id).release()
                bar.update()
    finally:
        for ref in pending:  # interrupted: stop the runs nobody will store
            ray.cancel(ref, force=True)
        for claim in claims.values():
            claim.release()
    if failures:
        raise BlurbError(_summary(failures, len(refs), store))
    return busy


def _warn_if_unschedulable(ray, needs: list[dict]) -> None:
    """Ray waits silently for resources no node has (a GPU run on a CPU cluster); say so. Only a
    warning: an autoscaling cluster may still add such a node."""
    total = ray.cluster_resources()
    missing = sorted({name for need in needs for name, amount in need.items()
                      if total.get(_RAY_RESOURCE[name], 0) < amount})
    if missing:
        have = ", ".join(f"{k}={v:g}" for k, v in sorted(total.items()) if k in _RAY_RESOURCE.values())
        warnings.warn(f"the runs ask Ray for {', '.join(_RAY_RESOURCE[m] for m in missing)} that no node of the "
                      f"cluster has now ({have}); they wait until such a node joins. Use --device cpu, or add "
                      "GPU nodes to the cluster", RuntimeWarning, stacklevel=2)


_RAY_RESOURCE = {"num_cpus": "CPU", "num_gpus": "GPU"}


def _claim(store: results.ResultsStore, todo: list[RunConfig]) -> tuple[dict, list[RunConfig]]:
    """The store's claims on the runs to submit, and the runs another process is training now."""
    claims, busy = {}, []
    for config in todo:
        claim = store.claim(config.run_id)
        if claim is None:
            busy.append(config)
        elif store.has(config.run_id):  # finished by another process since the plan
            claim.release()
        else:
            claims[config.run_id] = claim
    return claims, busy


def _submit(ray, config: RunConfig, device: str, score_test: bool):
    """One Ray task: retried after a worker death, never after an exception (rerunning a bug
    gives the same error)."""
    need = resources(config, device)
    task = ray.remote(train_one_run).options(**need, max_retries=MAX_RETRIES, retry_exceptions=False,
                                      runtime_env={"env_vars": worker_env()})
    return task.remote(config, _worker_device(device), score_test, need["num_cpus"])


def _worker_device(device: str) -> str:
    """Ray gives a GPU task its own CUDA_VISIBLE_DEVICES, so `cuda:N` means nothing there."""
    return "cuda" if device.startswith("cuda") else device


def train_one_run(config: RunConfig, device: str, score_test: bool, threads: int) -> dict:
    """Runs on a Ray worker: one thread per requested core, as the local workers do, so a
    run's numbers do not depend on the backend."""
    import torch

    torch.set_num_threads(threads)
    return run(config, device=device, progress=False, score_test=score_test)


@dataclass(frozen=True)
class RunFailure:
    """A run that raised, or whose worker died more than `MAX_RETRIES` times."""

    config: RunConfig
    error: BaseException

    def reason(self) -> str:
        """One line: the run's own exception where Ray kept it, else Ray's account of the death."""
        cause = getattr(self.error, "cause", None) or self.error
        first = next((line for line in str(cause).splitlines() if line.strip()), "")
        return f"{type(cause).__name__}: {first.strip()}"

    def report(self) -> str:
        return f"run {self.config.run_id} failed on Ray\n  config: {self.config}\n  traceback (on the worker):\n{self.error}"


def _collect(ray, store: results.ResultsStore, ref, config: RunConfig) -> RunFailure | None:
    """Store the record a task returned, or the failure it ended with (a record that is not the
    submitted run's is one: a worker on other code, or a peer, must not write another run)."""
    try:
        record = ray.get(ref)
    except ray.exceptions.RayError as err:
        return RunFailure(config, err)
    problem = foreign(record, config)
    if problem:
        return RunFailure(config, BlurbError(problem))
    store.write(record)
    return None


def foreign(record, config: RunConfig) -> str | None:
    """Why a worker's `record` is not the record of the submitted `config`, or None."""
    problem = results.record_problem(record, config.run_id)
    if problem is None:
        return None
    return (f"the worker returned a record that is not this run's, so it was not stored: {problem}. Submitted: "
            f"{config.run_id}. Run the same blurblib on every node (pip install -e . from the same commit) and "
            "only your own nodes in the cluster (docs/cluster.md, Security and sharing)")


def _summary(failures: list[RunFailure], submitted: int, store: results.ResultsStore) -> str:
    lines = "\n".join(f"  {f.config.run_id}: {f.reason()}" for f in failures)
    return (f"{len(failures)} of {submitted} runs failed on Ray (their configs and tracebacks are printed above; "
            f"every run that finished is stored in {store.runs}):\n{lines}\n"
            "Fix the cause and run the same sweep again: finished runs are kept and only these are retried")
