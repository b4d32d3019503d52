import json

from blurblib.workbook import reproduce


def _executed(folder, stem, seconds, start):
    notebook = {"cells": [], "metadata": {"papermill": {"duration": seconds, "start_time": start}},
                "nbformat": 4, "nbformat_minor": 5}
    (folder / f"{stem}.ipynb").write_text(json.dumps(notebook))


def test_timings_come_from_the_executed_notebooks_and_name_a_lone_rerun(tmp_path):
    _executed(tmp_path, "00_tour", 18.0, "2026-11-22T06:23:09+00:00")
    _executed(tmp_path, "01_pretraining", 90.0, "2026-11-22T07:40:00+00:00")  # re-executed after 02
    _executed(tmp_path, "02_size", 696.0, "2026-11-22T06:33:03+00:00")
    (tmp_path / "03_not_run.ipynb").write_text(json.dumps({"cells": [], "metadata": {}}))
    timings = reproduce.notebook_timings(tmp_path)
    assert list(timings) == ["00_tour", "01_pretraining", "02_size"]
    line = reproduce.timing_line(timings)
    assert line == ("* notebook times, not from one run: 13.4 min (00: 0.3, 01: 1.5, re-executed alone at 2026-11-22 07:40 UTC, "
                    "02: 11.6)")
    del timings["01_pretraining"]
    assert reproduce.timing_line(timings) == "* wall time: 11.9 min (00: 0.3, 02: 11.6)"


def test_an_orphan_figure_is_left_out_of_the_report(tmp_path):
    import os
    import time

    figures = tmp_path / "figures"
    figures.mkdir()
    start = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(start))
    fresh, orphan = figures / "03_stabilization_seeds.png", figures / "03_stabilization_knob_freeze_layers.png"
    fresh.write_bytes(b"png")
    orphan.write_bytes(b"png")
    os.utime(orphan, (start - 86400, start - 86400))  # written by an execution a day earlier
    kept = reproduce.this_runs_figures(figures, "03_stabilization", {"seconds": 1.0, "start": stamp})
    assert kept == [fresh]
    assert reproduce.this_runs_figures(figures, "03_stabilization", None) == [orphan, fresh]  # no timing: all


def test_executing_a_notebook_clears_its_earlier_outputs(tmp_path):
    for folder, name in (("figures", "03_stabilization_old.png"), ("tables", "03_stabilization_old.csv"),
                         ("figures", "04_low_resource_reinit_curve.png")):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / name).write_text("x")
    reproduce._clear_outputs(tmp_path, "03_stabilization")
    assert not (tmp_path / "figures" / "03_stabilization_old.png").exists()
    assert not (tmp_path / "tables" / "03_stabilization_old.csv").exists()
    assert (tmp_path / "figures" / "04_low_resource_reinit_curve.png").exists()  # another notebook's


def test_report_summary_and_p_values_in_significant_digits(tmp_path):
    import pandas as pd

    from blurblib.analysis import findings, plots

    tables = tmp_path / "tables"
    tables.mkdir()
    pd.DataFrame([{"task": "BIOSSES", "kind": "helps (mean)", "claim": findings.CLAIMS["reinit"], "estimate": 2.5,
                   "ci_low": 1.0, "ci_high": 4.0, "n": 12, "p_value": 0.000244, "p_holm": 0.000488,
                   "verdict": "holds"}]).to_csv(tables / "04_low_resource_reinit_claims.csv", index=False)
    summary = "\n".join(reproduce.summary_section(tables))
    assert "2.50 [1.00, 4.00]" in summary and "4.9e-04" in summary and "holds" in summary
    assert plots.p_text(0.000244) == "2.4e-04" and plots.p_text(0.031) == "0.031" and plots.p_text(float("nan")) == "–"
    assert plots.claims_view(pd.read_csv(tables / "04_low_resource_reinit_claims.csv"))["p_value"].iloc[0] == "2.4e-04"


def test_report_summary_shows_the_p_a_verdict_rests_on_and_each_claim_once(tmp_path):
    import pandas as pd

    from blurblib.analysis import findings

    tables = tmp_path / "tables"
    tables.mkdir()
    row = {"setting": "NCBI-disease token head", "arm": "reinit1", "kind": "helps (mean)", "claim": findings.CLAIMS["reinit"],
           "estimate": -3.0, "ci_low": -5.0, "ci_high": -1.0, "n": 20, "p_value": 0.9999, "p_holm": 1.0,
           "p_opposite_holm": 0.0021, "verdict": "does not hold"}
    pd.DataFrame([row]).to_csv(tables / "03_stabilization_remedies_claims.csv", index=False)
    pd.DataFrame([row]).to_csv(tables / "04_low_resource_reinit_unstable_claims.csv", index=False)  # 04 reads 03's runs
    summary = "\n".join(reproduce.summary_section(tables))
    assert "0.0021" in summary and "| 1 |" not in summary  # the opposite direction decided it
    assert summary.count("| does not hold |") == 1 and "NCBI-disease token head / reinit1" in summary


def test_report_says_where_the_scan_found_no_unstable_setting_and_why(tmp_path):
    import pandas as pd

    from blurblib.workbook import instability

    tables = tmp_path / "tables"
    tables.mkdir()
    assert reproduce.scan_section(tables) == []  # a profile without a scan
    cells = pd.DataFrame([dict(task="BIOSSES", seeds=10, failed=0.3, beat_reference=0.0, unstable_but_learnable=False),
                          dict(task="BIOSSES", seeds=10, failed=0.0, beat_reference=1.0, unstable_but_learnable=False)])
    instability.per_task(cells).to_csv(tables / reproduce.SCAN_TASKS, index=False)
    section = "\n".join(reproduce.scan_section(tables))
    assert "| BIOSSES | 2 | 20 | 0 |" in section and "where seeds fail (1 cell) at most 0 beat the bar" in section
