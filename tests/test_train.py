"""The fine-tuning engine on tiny real slices with the real pretrained MiniLM."""
import dataclasses
import json
import subprocess
import sys
import time

import pytest
import torch

from blurblib.core.errors import ConfigError, UnknownNameError
from blurblib.encoders import models
from blurblib.runs import results, sweep
from blurblib.training.train import RunConfig, _is_constant, run

TINY = dict(epochs=1, train_limit=16, eval_limit=16, max_length=32, batch_size=8)


@pytest.fixture(scope="module")
def biosses_run():
    return run(RunConfig(task="BIOSSES", lr=1e-4, **TINY), progress=False)


def test_run_record_has_the_contract_fields(biosses_run):
    r = biosses_run
    assert r["status"] == "ok" and r["failure_reason"] is None
    assert r["n_train"] == 16 and r["best_epoch"] == 1 and len(r["dev_curve"]) == 1
    assert r["dev_score"] == r["dev_curve"][r["best_epoch"] - 1] == max(r["dev_curve"]) and r["trivial_test_score"] == 0.0
    assert r["test_score"] != r["dev_score"]  # scored on the test split, not dev again
    assert r["n_trainable_params"] == r["n_params"] > 20_000_000
    assert r["train_examples_per_s"] > 0 and r["peak_memory_mb"] > 0 and r["model_pretrained"] is True
    assert r["config"]["task"] == "BIOSSES" and r["technique"] == "standard"


def test_same_config_and_seed_gives_identical_metrics(biosses_run):
    again = run(RunConfig(task="BIOSSES", lr=1e-4, **TINY), progress=False)
    assert again["test_score"] == biosses_run["test_score"]
    assert again["dev_curve"] == biosses_run["dev_curve"]
    other_seed = run(RunConfig(task="BIOSSES", lr=1e-4, seed=2, **TINY), progress=False)
    assert other_seed["test_score"] != biosses_run["test_score"]


def test_freezing_changes_trainable_count_and_label():
    r = run(RunConfig(task="BIOSSES", freeze_layers=6, head="cls", **TINY), progress=False)
    assert r["technique"] == "freeze6"
    # embeddings and all 6 blocks frozen: only the pooler and the [CLS] regression head train
    assert r["n_trainable_params"] == 384 * 384 + 384 + 384 + 1


def _patch_forward(monkeypatch, poison):
    """Make models.load return a model whose outputs pass through `poison`."""
    real_load = models.load

    def load(name, task, num_labels=None, head=None):
        model, tokenizer = real_load(name, task, num_labels, head=head)
        forward = model.forward

        def poisoned(**batch):
            return poison(forward(**batch))

        model.forward = poisoned
        return model, tokenizer

    monkeypatch.setattr(models, "load", load)


def test_constant_predictions_mark_the_run_failed(monkeypatch):
    def constant(out):
        out.logits = out.logits * 0 + torch.tensor([2.0, -1.0])  # always the first class
        return out

    _patch_forward(monkeypatch, constant)
    r = run(RunConfig(task="GAD", **TINY), progress=False)
    assert r["status"] == "failed" and "same prediction" in r["failure_reason"]
    # always "0" finds no positive (F1 0); the bar is the best constant, "1" everywhere
    assert r["test_score"] == 0.0 < r["trivial_test_score"]
    assert r["final_test_score"] == 0.0 and r["final_test_degenerate"] is True


@pytest.mark.parametrize("predictions, token_level, constant", [
    ([0.5, 0.5, 0.5], False, True), ([0.5, 0.7], False, False), (["1", "1"], False, True), (["1", "0"], False, False),
    ([["O", "O"], ["O"]], True, True), ([["O", "B"], ["O"]], True, False), ([["B"], ["B", "B"]], True, True),
    ([[], []], False, True), ([["Hallmark"], []], False, False),
])
def test_is_constant(predictions, token_level, constant):
    assert _is_constant(predictions, token_level) is constant


def test_nan_loss_marks_the_run_failed(monkeypatch):
    def nan_loss(out):
        out.loss = out.loss * float("nan")
        return out

    _patch_forward(monkeypatch, nan_loss)
    r = run(RunConfig(task="BIOSSES", **TINY), progress=False)
    assert r["status"] == "failed" and r["failure_reason"].startswith("non-finite loss")


def test_bad_configs_fail_before_training():
    with pytest.raises(UnknownNameError, match="unknown model 'no-such-model'"):
        RunConfig(task="BIOSSES", model="no-such-model").validate()
    with pytest.raises(UnknownNameError, match="BC5-chem"):
        RunConfig(task="BIOSSESS").validate()
    with pytest.raises(ConfigError, match=r"llrd_decay=1\.5"):
        RunConfig(task="BIOSSES", llrd_decay=1.5).validate()


def test_run_id_depends_on_every_field():
    base = RunConfig(task="BIOSSES")
    ids = {dataclasses.replace(base, **{f.name: v}).run_id for f, v in
           zip(dataclasses.fields(RunConfig)[1:], ["bert-base-shape", 1, 1, 0.9, 0.1, 1e-3, 8, 5, 7, 64, 10, 10, 0.0, 0.2, 0.5])}
    assert len(ids) == 15 and base.run_id not in ids
    assert base.run_id.startswith("BIOSSES__minilm-l6__standard__s1__")


_SWEEP_SCRIPT = """
import sys
from blurblib import sweep
from blurblib.training.train import RunConfig
configs = [RunConfig(task="BIOSSES", seed=s, epochs=1, train_limit=16, eval_limit=16, max_length=32, batch_size=8) for s in (1, 2, 3, 4)]
sweep.run_sweep(configs, sys.argv[1], progress=False)
"""


def test_killed_sweep_keeps_finished_runs_and_resumes(tmp_path, monkeypatch):
    store = results.ResultsStore(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", _SWEEP_SCRIPT, str(tmp_path)])
    deadline = time.time() + 240
    while not list(store.runs.glob("*.json")) if store.runs.exists() else True:
        assert time.time() < deadline and proc.poll() is None, "sweep produced no record"
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    finished = {p.stem for p in store.runs.glob("*.json")}
    assert 1 <= len(finished) < 4
    for p in store.runs.glob("*.json"):
        json.loads(p.read_text())  # every record is whole
    # a write cut by the kill leaves a temporary that is never read as a record
    assert {r["run_id"] for r in store.records()} == finished and not list(store.runs.glob(".tmp-*.json"))

    trained = []
    real_run = sweep.run
    monkeypatch.setattr(sweep, "run", lambda c, **kw: trained.append(c.seed) or real_run(c, **kw))
    configs = [RunConfig(task="BIOSSES", seed=s, **TINY) for s in (1, 2, 3, 4)]
    df = sweep.run_sweep(configs, tmp_path, progress=False)
    assert len(trained) == 4 - len(finished)
    assert sorted(df["seed"]) == [1, 2, 3, 4]
    assert sweep.run_sweep(configs, tmp_path, progress=False).shape[0] == 4 and len(trained) == 4 - len(finished)


def test_a_record_keeps_the_end_of_training_its_machine_and_small_test_predictions():
    r = run(RunConfig(task="BIOSSES", **{**TINY, "epochs": 2}), progress=False)
    assert r["final_dev_score"] == r["dev_curve"][-1]
    if r["best_epoch"] == 2:
        assert r["final_test_score"] == r["test_score"]
    assert isinstance(r["final_test_degenerate"], bool)
    assert r["machine"]["kind"] and r["machine"]["cpu"] in r["machine"]["kind"]
    assert len(r["test_predictions"]) == 16 and all(isinstance(p, float) for p in r["test_predictions"])
