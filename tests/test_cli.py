import re
import subprocess
import sys
from pathlib import Path

import pytest

from blurblib import cli


def test_data_check_prints_the_table(capsys):
    assert cli.main(["data", "check"]) == 0
    out = capsys.readouterr().out
    assert "12 of 13 datasets complete; missing: EBM-PICO train" in out
    assert "BC5-disease" in out and "4246" in out


def test_finetune_dry_run_prints_the_plan(capsys):
    assert cli.main(["finetune", "--task", "BIOSSES", "--technique", "reinit", "--seeds", "1-5", "--dry-run"]) == 0
    assert "5 runs" in capsys.readouterr().out


def test_bad_input_exits_2_with_the_fix():
    proc = subprocess.run([sys.executable, "-m", "blurblib.cli", "finetune", "--task", "BIOSSESS", "--dry-run"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown task 'BIOSSESS'" in proc.stderr and "BIOSSES" in proc.stderr


# Every bad input reachable from the console script: (argv, spec file text or None, what the error must say).
# "{spec}" is a YAML file holding the text; "{tmp}" a scratch folder.
BAD_INPUTS = [
    (["sweep", "{spec}"], "tasks: [BIOSSES\nseeds: 1-3\n", r"spec\.yaml:2:6: YAML syntax error.*opened at line 1"),
    (["sweep", "{spec}"], "tasks: [GAD]\n  seeds: 1\n", r"spec\.yaml:2:3: YAML syntax error"),
    (["sweep", "{spec}"], "tasks: [GAD]\n\tseeds: 1\n", r"spec\.yaml:2:1: YAML syntax error"),
    (["sweep", "{tmp}/missing.yaml"], None, "missing.yaml not found; write a YAML file"),
    (["sweep", "{tmp}"], None, "is a folder"),
    (["sweep", "{spec}"], "- BIOSSES\n- GAD\n", "a sweep spec is a mapping with keys tasks, models"),
    (["sweep", "{spec}"], "just text\n", "a sweep spec is a mapping"),
    (["sweep", "{spec}"], "tasks: [GAD]\nseed: 3\n", r"unknown sweep keys \['seed'\]; allowed: tasks"),
    (["sweep", "{spec}"], "models: [minilm-l6]\n", "names no tasks; add e.g."),
    (["sweep", "{spec}"], "tasks: [GADD]\n", "unknown task 'GADD'"),
    (["sweep", "{spec}"], "tasks: [GAD]\nmodels: [bert-tiny]\n", "unknown model 'bert-tiny'; known models"),
    (["sweep", "{spec}"], "tasks: [GAD]\ntechniques: [dropout]\n", "unknown technique 'dropout'; known techniques"),
    (["sweep", "{spec}"], "tasks: [GAD]\ntechniques: [{freeze: 2}]\n", r"unknown technique knobs \['freeze'\]; use"),
    (["sweep", "{spec}"], "tasks: [GAD]\ntechniques: [{freeze_layers: two}]\n", "freeze_layers='two' must be of type int"),
    (["sweep", "{spec}"], "tasks: [GAD]\nseeds: one-three\n", "cannot read seeds 'one-three'; use a range like 1-5"),
    (["sweep", "{spec}"], "tasks: [GAD]\nseeds: [a, b]\n", "cannot read seeds"),
    (["sweep", "{spec}"], "tasks: [GAD]\nhyperparameters: {learning_rate: 1.0e-5}\n", r"unknown hyperparameters \['learning_rate'\]"),
    (["sweep", "{spec}"], "tasks: [GAD]\nhyperparameters: {lr: fast}\n", "lr='fast' must be of type float; e.g. lr: 1.0e-4"),
    (["sweep", "{spec}"], "tasks: [GAD]\nhyperparameters: {epochs: 0}\n", "invalid epochs=0"),
    (["sweep", "{spec}"], "tasks: [GAD]\nper_task: {GAD: {seed: 2}}\n", "set them with the top-level keys"),
    (["sweep", "{spec}"], "tasks: [GAD]\nper_task: {GADD: {epochs: 2}}\n", "unknown task 'GADD'"),
    (["finetune", "--task", "BIOSSESS", "--dry-run"], None, "unknown task 'BIOSSESS'"),
    (["finetune", "--task", "GAD", "--model", "bert-tiny", "--dry-run"], None, "unknown model 'bert-tiny'"),
    (["finetune", "--task", "GAD", "--technique", "dropout", "--dry-run"], None, "unknown technique 'dropout'"),
    (["finetune", "--task", "GAD", "--seeds", "one-five", "--dry-run"], None, "use a range like 1-5"),
    (["finetune", "--task", "GAD", "--seeds", "5-1", "--dry-run"], None, "write it low-high, like 1-5"),
    (["finetune", "--task", "GAD", "--epochs", "0", "--dry-run"], None, "invalid epochs=0"),
    (["finetune", "--task", "GAD", "--llrd-decay", "1.5", "--dry-run"], None, r"invalid llrd_decay=1\.5"),
    (["finetune", "--task", "GAD", "--mixout", "1", "--dry-run"], None, "invalid mixout=1"),
    (["finetune", "--task", "GAD", "--max-length", "4", "--dry-run"], None, "invalid max_length=4"),
    (["finetune", "--task", "GAD", "--train-limit", "0", "--dry-run"], None, "invalid train_limit=0"),
    (["finetune", "--task", "GAD", "--device", "gpu", "--dry-run"], None, "unknown device 'gpu'; use --device cpu"),
    (["finetune", "--task", "GAD", "--out", "{spec}", "--dry-run"], "", "is a file, not a folder"),
    (["finetune", "--task", "GAD", "--out", "{spec}/sub", "--dry-run"], "", "Not a directory.*check the path"),
    (["finetune", "--task", "GAD", "--lr", "fast"], None, "argument --lr: invalid float value: 'fast'"),
    (["finetune", "--task", "GAD", "--head", "biencoder", "--dry-run"], None, "head 'biencoder' does not fit GAD"),
    (["finetune", "--task", "GAD", "--precision", "fp16", "--dry-run"], None, "unknown precision 'fp16'; use one of fp32, bf16"),
    (["finetune", "--task", "BIOSSES", "--lpft-epochs", "2", "--dry-run"], None, "the biencoder head has none"),
    (["calibrate", "--tasks", "GADD"], None, "unknown task 'GADD'"),
    (["finetune", "--model", "minilm-l6"], None, "the following arguments are required: --task"),
    (["models", "install", "bert-tiny"], None, "unknown model 'bert-tiny'"),
    (["data", "check", "--data-dir", "{tmp}/nowhere"], None, "nowhere not found: run `make data`"),
    (["train"], None, "invalid choice: 'train'"),
    (["bench", "speed"], None, r"invalid choice: 'speed' \(choose from 'throughput', 'memory', 'slimfit', 'seeds'"),
    (["bench", "throughput", "--device", "gpu", "--quick"], None, "unknown device 'gpu'; use --device cpu"),
    (["bench", "all", "--only", "seeds_parallel"], None, "argument --only: invalid choice: 'seeds_parallel'"),
    (["bench", "memory", "--reps", "two"], None, "argument --reps: invalid int value: 'two'"),
    (["reproduce", "--profile", "fast"], None, "unknown profile 'fast'; choose one of smoke, default"),
    (["reproduce", "--only", "07"], None, "--only 07: no such notebook; use stems or numbers: 00_"),
    (["reproduce", "--backend", "spark"], None, "unknown backend 'spark'; use 'local'"),
    (["reproduce", "--address", "10.0.0.5:6379"], None, "names a Ray cluster; add backend 'ray'"),
    (["finetune", "--task", "GAD", "--profile", "fast", "--dry-run"], None, "unknown profile 'fast'; choose one of smoke"),
]


def test_the_bad_input_list_covers_the_cli():
    assert len(BAD_INPUTS) >= 30
    assert {argv[0] for argv, _, _ in BAD_INPUTS} == {"sweep", "finetune", "calibrate", "models", "data", "train",
                                                      "bench", "reproduce"}


@pytest.mark.parametrize("argv, spec, message", BAD_INPUTS, ids=[m[:40] for _, _, m in BAD_INPUTS])
def test_bad_input_gives_one_error_line_with_the_fix(tmp_path, capsys, argv, spec, message):
    spec_path = tmp_path / "spec.yaml"
    if spec is not None:
        spec_path.write_text(spec)
    argv = [a.format(spec=spec_path, tmp=tmp_path) for a in argv]
    try:
        code = cli.main(argv)
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert re.match(r"blurb( \w+)*: error: ", last), err  # argparse prints its usage above this line
    assert re.search(message, last), last


def test_the_console_script_reports_a_yaml_syntax_error_without_traceback(tmp_path):
    spec = tmp_path / "grid.yaml"
    spec.write_text("tasks: [BIOSSES]\ntechniques:\n  - standard\n  - {reinit_layers: 1\nseeds: 1-3\n")
    blurb = Path(sys.executable).with_name("blurb")
    proc = subprocess.run([str(blurb), "sweep", str(spec), "--dry-run"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert re.match(rf"blurb: error: {re.escape(str(spec))}:5:\d+: YAML syntax error: .*line 4", proc.stderr), proc.stderr
    assert proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


def _help(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit:
        cli.main([*argv, "--help"])
    assert exit.value.code == 0
    return capsys.readouterr().out


def test_bench_help_lists_every_benchmark(capsys):
    from blurblib.bench import commands as bench_commands

    out = _help(["bench"], capsys)
    names = ["throughput", "memory", "slimfit", "seeds", "precision", "workers", "gpu", "all"]
    assert list(bench_commands.BENCHMARKS) == names
    for name in names:
        assert re.search(rf"^\s+{name}\s+\S", out, re.M), out  # listed, with its one-line help
    assert "--quick" in _help(["bench", "throughput"], capsys)
    gpu = _help(["bench", "gpu"], capsys)
    assert "(default cuda)" in gpu and "--modes" in gpu


def test_building_the_parser_imports_no_measuring_code():
    """`blurb --help` and every error message stay fast: torch is imported only when a command runs."""
    code = "import sys; from blurblib import cli; cli.build_parser(); print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "False", proc.stderr


def test_reproduce_help_and_its_python_m_form(capsys):
    out = _help(["reproduce"], capsys)
    assert "--profile" in out and "--fresh" in out and "--only" in out and "REPORT.md" in out
    proc = subprocess.run([sys.executable, "-m", "blurblib.cli", "reproduce", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "usage: blurb reproduce" in proc.stdout, proc.stderr


def test_bench_throughput_quick_runs_end_to_end(tmp_path, capsys):
    assert cli.main(["bench", "throughput", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "geometric mean of the per-task median ratios" in out and "BIOSSES" in out
    for name in ("throughput.json", "throughput.csv", "throughput_summary.csv", "throughput_ratios.csv",
                 "throughput.png"):
        assert (tmp_path / name).is_file() and f"wrote {tmp_path / name}" in out


def test_bench_slimfit_quick_measures_each_arm_and_prints_the_claims(tmp_path, capsys):
    """Two arms in fresh processes (seconds each); the claim rows are printed, the files written."""
    assert cli.main(["bench", "slimfit", "--quick", "--arms", "standard", "slimfit", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "SlimFit: peak training memory >= 2.2x lower than standard" in out and "minilm-l6" in out
    for name in ("slimfit_memory.json", "slimfit_memory.csv", "slimfit_memory_summary.csv", "slimfit_memory.png"):
        assert (tmp_path / name).is_file()
    from blurblib import bench

    memory = bench.stored("slimfit_memory", out_dir=tmp_path)
    assert list(memory["arm"]) == ["standard", "slimfit"] and (memory["peak_mb"] > memory["runtime_mb"]).all()
    assert "## SlimFit's memory" in bench.write_summary(tmp_path).read_text()


def test_bench_all_runs_the_chosen_steps_then_writes_the_summary(tmp_path, capsys):
    """`--only gpu` on a CPU: the GPU step says it skipped, and SUMMARY.md is written all the same."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("with a GPU this would run the GPU benchmark; the point here is the orchestration")
    assert cli.main(["bench", "all", "--quick", "--only", "gpu", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "=== gpu ===" in out and "skipped: no CUDA device" in out and "=== throughput ===" not in out
    assert "skipped: no CUDA device" in (tmp_path / "SUMMARY.md").read_text()
