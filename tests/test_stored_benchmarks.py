"""Notebook 06 shows the committed `make bench` measurements unless asked to measure: they must
read back into the frames its tables, figures and claims are made from."""
import pandas as pd
import pytest

from blurblib import bench
from blurblib.analysis import plots
from blurblib.core.errors import DataError
from blurblib.runs import sweep
from blurblib.workbook import profiles


def test_the_committed_measurements_feed_notebook_06(capsys):
    tp = bench.stored("throughput")
    assert {"arm", "task", "rep", "train_examples_per_s"} <= set(tp.columns) and set(tp["arm"]) >= {"baseline", "blurblib"}
    assert "the committed measurement of" in capsys.readouterr().out and tp.attrs["machine"]["cpu"]
    memory = bench.stored("memory")
    par = bench.stored("seeds_parallel")
    assert len(bench.throughput_summary(tp)) and len(bench.memory_summary(memory)) and "speedup" in par
    P = profiles.get("06_efficiency", "default")
    freeze_runs = P.records_for(sweep.expand(bench.freeze_sweep(P)))
    claims = bench.claims(tp, memory, freeze_runs)
    assert len(claims) >= 3 and set(claims["verdict"]) <= {"holds", "does not hold", "inconclusive"}


def test_a_missing_measurement_names_the_command(tmp_path):
    with pytest.raises(DataError, match="blurb bench memory"):
        bench.stored("memory", out_dir=tmp_path)


def test_rounded_keeps_learning_rates_readable():
    df = pd.DataFrame({"lr": [3e-4, 5e-5], "dev_score": [61.234, 54.5]})
    out = plots.rounded(df)
    assert list(out["lr"]) == ["3e-04", "5e-05"] and list(out["dev_score"]) == [61.23, 54.5]
