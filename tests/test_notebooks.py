"""What a reader meets: notebooks that open on the default profile and its real outputs, while
`make test` runs them on smoke; saved progress bars that show how they ended."""
import json
import subprocess

import pytest

from blurblib.workbook import reproduce

NOTEBOOKS = sorted((reproduce.NOTEBOOK_DIR).glob("[0-9][0-9]_*.ipynb"))


def _parameters(path) -> str:
    [cell] = [c for c in json.loads(path.read_text())["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    return "".join(cell["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_opens_on_the_default_profile_and_the_suite_can_pick_smoke(path, monkeypatch):
    source = _parameters(path)
    assert '"smoke"' not in source.split("PROFILE", 1)[1].splitlines()[0]  # no literal smoke default
    monkeypatch.delenv(reproduce.PROFILE_ENV, raising=False)
    values = {}
    exec(source, values)
    assert values["PROFILE"] == "default"
    monkeypatch.setenv(reproduce.PROFILE_ENV, "smoke")
    exec(source, values)
    assert values["PROFILE"] == "smoke"


def test_make_test_runs_the_notebooks_on_smoke():
    dry = subprocess.run(["make", "-n", "test-notebooks"], cwd=reproduce.paths.REPO_ROOT, capture_output=True, text=True,
                         timeout=60)
    [line] = [line for line in dry.stdout.splitlines() if "--nbval" in line]
    assert f"{reproduce.PROFILE_ENV}=smoke" in line.split()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_saved_notebooks_hold_the_default_runs_outputs(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"].get("blurblib", {}).get("profile") == "default", \
        f"{path.name} was not saved by `make reproduce` (default profile); run it to refresh the outputs"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c.get("outputs") is not None for c in code) and sum(bool(c["outputs"]) for c in code) >= len(code) // 2
    widgets = [o for c in code for o in c["outputs"] if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert not widgets and "widgets" not in nb["metadata"]  # progress bars saved as their final text


def _widget_notebook():
    state = {
        "box": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_l", "IPY_MODEL_b", "IPY_MODEL_r"]}},
        "l": {"model_name": "HTMLModel", "state": {"value": "runs:\u2007100%"}},
        "b": {"model_name": "FloatProgressModel", "state": {"value": 18.0, "max": 18.0}},
        "r": {"model_name": "HTMLModel", "state": {"value": "\u200718/18\u2007[03:07&lt;00:00,\u200710.4s/it]"}},
    }
    stale = {"output_type": "display_data", "metadata": {},
             "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "box"}, "text/plain": ["runs:   0%| 0/18"]}}
    other = {"output_type": "stream", "name": "stdout", "text": ["hello\n"]}
    return {"cells": [{"cell_type": "code", "source": [], "metadata": {}, "outputs": [stale, other]}],
            "metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": state}}}}


def test_saved_progress_bars_show_how_they_ended():
    nb = reproduce.settle_progress_bars(_widget_notebook())
    [bar, other] = nb["cells"][0]["outputs"]
    assert bar["data"] == {"text/plain": ["runs: 100%|██████████| 18/18 [03:07<00:00, 10.4s/it]"]}
    assert other == {"output_type": "stream", "name": "stdout", "text": ["hello\n"]} and "widgets" not in nb["metadata"]


def test_a_default_run_injects_no_parameters(tmp_path, monkeypatch):
    """The profile goes by environment, so the executed cells are exactly the notebook's own."""
    seen = {}

    def fake_execute(source, target, parameters, **kw):
        seen.update(parameters=parameters, profile=reproduce.os.environ.get(reproduce.PROFILE_ENV))
        (tmp_path / "00_x.ipynb").write_text(json.dumps(_widget_notebook()))

    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    monkeypatch.delenv(reproduce.PROFILE_ENV, raising=False)
    reproduce.execute(tmp_path / "00_x.ipynb", "default", tmp_path)
    assert seen == {"parameters": {}, "profile": "default"} and reproduce.PROFILE_ENV not in reproduce.os.environ
    reproduce.execute(tmp_path / "00_x.ipynb", "full", tmp_path, backend="ray", address="auto")
    assert seen == {"parameters": {"BACKEND": "ray", "RAY_ADDRESS": "auto"}, "profile": "full"}
    assert "widget-view" not in (tmp_path / "00_x.ipynb").read_text()
    # the executed notebook names the profile it ran, not the tag its source carried
    assert json.loads((tmp_path / "00_x.ipynb").read_text())["metadata"]["blurblib"] == {"profile": "full"}
    reproduce.execute(tmp_path / "00_x.ipynb", "paper", tmp_path, rehearse=True)
    assert json.loads((tmp_path / "00_x.ipynb").read_text())["metadata"]["blurblib"] == {"profile": "paper-rehearsal"}
