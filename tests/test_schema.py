"""One schema for a run: the CLI, the profiles and the technique registry all speak `RunConfig`."""
from __future__ import annotations

import dataclasses

import pytest

from blurblib import cli
from blurblib.analysis import findings
from blurblib.runs import sweep
from blurblib.training import techniques
from blurblib.training.config import RunConfig
from blurblib.workbook import profiles


def test_every_run_config_field_is_a_finetune_flag():
    parser = cli.build_parser()
    finetune = parser._subparsers._group_actions[0].choices["finetune"]
    flags = {a.dest for a in finetune._actions}
    assert {f.name for f in dataclasses.fields(RunConfig)} - {"seed"} <= flags
    typed = {a.dest: a.type for a in finetune._actions}
    assert typed["lr"] is float and typed["eval_limit"] is int and typed["head"] is str


def test_finetune_with_a_profile_reuses_the_notebook_run(tmp_path, capsys):
    """`blurb finetune --profile smoke` is the very run notebook 05 trains under `smoke`."""
    notebook = profiles.get("05_blurb_score", "smoke", tasks=["BIOSSES"], seeds=[1], results_dir=str(tmp_path))
    configs = sweep.expand(notebook.sweep())
    notebook.run_sweep(configs, progress=False)
    record = tmp_path / "runs" / f"{configs[0].run_id}.json"
    written = record.stat().st_mtime_ns

    argv = ["finetune", "--task", "BIOSSES", "--profile", "smoke", "--seeds", "1", "--out", str(tmp_path)]
    assert [c.run_id for c in cli.finetune_configs(cli.build_parser().parse_args(argv))] == [configs[0].run_id]
    assert cli.main(argv) == 0
    assert "1 runs (1 already done)" in capsys.readouterr().out
    assert record.stat().st_mtime_ns == written  # reused, not retrained


def test_finetune_flags_override_the_profile():
    args = cli.build_parser().parse_args(["finetune", "--task", "GAD", "--profile", "default", "--lr", "2e-5",
                                          "--technique", "llrd", "--llrd-decay", "0.7", "--seeds", "1-2"])
    a, b = cli.finetune_configs(args)
    recipe = profiles.task_settings("default", "GAD")
    assert (a.lr, a.llrd_decay, a.train_limit, a.epochs) == (2e-5, 0.7, recipe["train_limit"], recipe["epochs"])
    assert (a.seed, b.seed) == (1, 2) and a.technique == "llrd0.7"


def test_a_technique_added_to_the_registry_alone_runs_end_to_end(monkeypatch, tmp_path):
    """A toy technique whose knob is an existing RunConfig field (no weight decay): one registry
    entry, and the sweep spec, the run label, the CLI and the claims table all know it."""
    toy = techniques.Technique("nodecay", "AdamW without weight decay", "weight_decay", 0.01, 0.0, (0.0,))
    monkeypatch.setitem(techniques.TECHNIQUES, "nodecay", toy)

    spec = sweep.SweepSpec.from_dict({"tasks": ["BIOSSES"], "techniques": ["standard", "nodecay"], "seeds": [1, 2],
                                      "per_task": {"BIOSSES": profiles.task_settings("smoke", "BIOSSES")}})
    configs = sweep.expand(spec)
    assert sorted({c.technique for c in configs}) == ["nodecay0", "standard"]
    assert {techniques.family(c) for c in configs} == {"nodecay", "standard"}
    runs = sweep.run_sweep(configs, tmp_path, progress=False, workers=1)
    assert len(runs) == 4 and runs["status"].eq("ok").all()
    assert set(runs.loc[runs["technique"] == "nodecay0", "weight_decay"]) == {0.0}

    claims = findings.technique_claims(runs)
    assert set(claims["technique"]) == {"nodecay0"} and list(claims["n"]) == [2, 2, 2]  # helps, failure rate, seed sd
    args = cli.build_parser().parse_args(["finetune", "--task", "BIOSSES", "--technique", "nodecay", "--seeds", "1"])
    assert cli.finetune_configs(args)[0].weight_decay == 0.0


def test_profile_settings_are_typed():
    p = profiles.get("03_stabilization", "default")
    assert isinstance(p.settings, profiles.StabilizationSettings) and p.settings.knob_task in p.tasks
    assert isinstance(profiles.get("06_efficiency", "smoke").settings, profiles.EfficiencySettings)
    assert profiles.get("02_size_vs_instability", "default").settings is None


def test_a_profile_names_its_backend():
    p = profiles.get("05_blurb_score", "smoke", backend="ray", ray_address="ray://head:10001")
    assert (p.backend, p.ray_address) == ("ray", "ray://head:10001")
    with pytest.raises(Exception, match="unknown backend 'spark'"):
        profiles.get("05_blurb_score", "smoke", backend="spark")
    with pytest.raises(Exception, match="add backend 'ray'"):
        profiles.get("05_blurb_score", "smoke", ray_address="ray://head:10001")


def test_a_profile_sends_its_sweeps_to_its_backend(monkeypatch):
    """What a notebook's BACKEND / RAY_ADDRESS parameters reach: every sweep of the notebook."""
    seen = {}
    monkeypatch.setattr(profiles, "run_sweep", lambda configs, out_dir, **kw: seen.update(out_dir=out_dir, **kw))
    p = profiles.get("03_stabilization", "smoke", backend="ray", ray_address="ray://head:10001", results_dir="/tmp/x")
    p.run_sweep([], progress=False)
    assert seen == {"out_dir": "/tmp/x", "device": "cpu", "backend": "ray", "address": "ray://head:10001", "progress": False,
                    "any_precision": True}  # profiles ask for precision auto
