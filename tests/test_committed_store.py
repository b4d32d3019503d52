"""The committed results store serves every default notebook on any CPU: nothing to train.

A reader's `make reproduce` re-reads the committed runs instead of retraining them for hours.
The store was filled on a CPU with native bf16; `BLURB_NATIVE_BF16=0` makes this machine act as
one without (where `auto` resolves to fp32), the case a laptop or most cloud CPUs are.
"""
import pytest

from blurblib.core import precision
from blurblib.workbook import grids, profiles


@pytest.fixture(params=["as this CPU is", "without native bf16"])
def cpu(request, monkeypatch):
    if request.param == "without native bf16":
        monkeypatch.setenv(precision.NATIVE_BF16_ENV, "0")
    else:
        monkeypatch.delenv(precision.NATIVE_BF16_ENV, raising=False)
    return request.param


@pytest.mark.parametrize("notebook", profiles.notebooks())
def test_every_default_notebook_plans_nothing_to_train(notebook, cpu):
    p = grids.plan(profiles.get(notebook, "default"))
    assert p.runs.n_to_train == 0, f"{notebook} ({cpu}): {p.runs.n_to_train} of {p.runs.n_runs} runs to train"
    assert p.calibration.n_to_train == 0, f"{notebook} ({cpu}): calibration runs to train"
    assert p.references_missing == 0, f"{notebook} ({cpu}): {p.references_missing} references to compute"
    if cpu == "without native bf16" and p.runs.n_runs:
        assert p.runs.n_other_precision > 0  # served by the committed bf16 runs, not by fp32 runs of its own


def test_the_grids_are_the_notebooks_runs():
    """The grids have the size the notebooks' own checks count (a grid that lost a part would pass above)."""
    counts = {nb: len(grids.for_notebook(profiles.get(nb, "default")).runs()) for nb in profiles.notebooks()}
    assert counts["00_blurb_tour"] == 0
    seeds_02 = len(profiles.get("02_size_vs_instability", "default").seeds)  # the power function's
    assert counts["02_size_vs_instability"] == 2 * seeds_02  # minilm-l6 and mpnet-base, BIOSSES
    assert counts["05_blurb_score"] == 12 * 2  # the 12 trainable tasks, 2 seeds
    assert min(counts[nb] for nb in profiles.notebooks() if nb != "00_blurb_tour") >= 3


def test_an_arm_whose_checkpoint_is_absent_keeps_its_run_ids():
    """A clean clone has no arm checkpoints (weights are never committed): an arm's runs must still
    carry the ids the committed store holds, so its head comes from the model it was derived from."""
    from blurblib.encoders import models
    from blurblib.training.train import RunConfig

    gone = "outputs/cache/pretrained/minilm-l6-pubmed-0tok-s0-notbuilt"
    assert models.derived_from(gone) == "minilm-l6" and models.native_head(gone, "BIOSSES") == "biencoder"
    assert RunConfig(task="BIOSSES", model=gone).head == "biencoder"
    assert models.derived_from("not-a-model") is None
