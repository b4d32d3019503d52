"""Notebook parameters as a user types them with papermill's -p (strings and numbers only)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from blurblib.core.errors import ConfigError
from blurblib.workbook import parameters, profiles

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.parametrize("typed, meant", [("GAD", ("GAD",)), ("GAD,ChemProt", ("GAD", "ChemProt")),
                                          (" GAD , ChemProt ", ("GAD", "ChemProt")), (["GAD"], ("GAD",))])
def test_task_lists_as_typed(typed, meant):
    assert parameters.names(typed, "tasks") == meant


@pytest.mark.parametrize("typed, meant", [("1-5", (1, 2, 3, 4, 5)), ("3", (3,)), (3, (3,)), ("1,3,7", (1, 3, 7)),
                                          ([1, 2], (1, 2))])
def test_seed_lists_as_typed(typed, meant):
    assert parameters.seeds(typed, "seeds") == meant


@pytest.mark.parametrize("bad", ["", "one-two", "5-1", 2.5, True, {"a": 1}])
def test_bad_seeds_name_the_parameter_and_the_yaml_form(bad):
    with pytest.raises(ConfigError, match=r"SEEDS=.*seeds: 3, 1-5 or 1,3,7.*-y 'SEEDS: \[1, 2, 3\]'"):
        parameters.seeds(bad, "seeds")


def test_bad_names_name_the_parameter():
    with pytest.raises(ConfigError, match=r"TASKS=.*-y 'TASKS: \[\"GAD\", \"ChemProt\"\]'"):
        parameters.names(" , ", "tasks")


def test_profiles_take_the_typed_forms():
    P = profiles.get("04_low_resource_reinit", "smoke", tasks="BIOSSES", seeds="1-3")
    assert P.tasks == ("BIOSSES",) and P.seeds == (1, 2, 3)
    assert profiles.get("04_low_resource_reinit", "smoke", seeds=3).seeds == (3,)



def test_papermill_as_a_user_types_it(tmp_path):
    """`papermill 04_low_resource_reinit.ipynb out.ipynb -p TASKS BIOSSES -p SEEDS 1-2` on the smoke profile."""
    env = {**os.environ, "BLURB_PROFILE": "smoke", "BLURB_OUTPUTS_DIR": str(tmp_path / "outputs")}
    out = tmp_path / "out.ipynb"
    done = subprocess.run([sys.executable, "-m", "papermill", "04_low_resource_reinit.ipynb", str(out), "-k", "python3",
                           "-p", "TASKS", "BIOSSES", "-p", "SEEDS", "1-2"], cwd=NOTEBOOKS, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    bad = subprocess.run([sys.executable, "-m", "papermill", "04_low_resource_reinit.ipynb", str(tmp_path / "bad.ipynb"),
                          "-k", "python3", "-p", "SEEDS", "one"], cwd=NOTEBOOKS, env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "SEEDS='one' is not valid" in bad.stdout + bad.stderr
