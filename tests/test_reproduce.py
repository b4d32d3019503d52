import json

from blurblib import reproduce


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
