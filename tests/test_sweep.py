import pytest

from blurblib import profiles, sweep
from blurblib.errors import ConfigError, UnknownNameError
from blurblib.sweep import SweepSpec


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
    configs = sweep.expand(SweepSpec.from_yaml(sweep.Path(__file__).parent.parent / "examples" / "stabilization.yaml"))
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
