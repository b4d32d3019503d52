import subprocess
import sys

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
