"""The paper profile's rehearsal (`blurblib.workbook.rehearsal`): the paper grids on this CPU, tiny, every hub
model replaced by its random-weight twin. The unit tests check that a rehearsal changes only sizes,
seeds, the device and the stores; `test_the_rehearsal_runs_every_notebook_of_the_paper_profile`
runs it end to end through `blurb reproduce --rehearse`'s own function, so a model, head or
technique combination of the paper profile that does not work fails the suite (minutes, the
twins installed once into outputs/cache/hf-twins)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from blurblib import cli
from blurblib.core import paths, precision
from blurblib.core.errors import ConfigError
from blurblib.data import tasks
from blurblib.encoders import models, packs
from blurblib.runs import calibration
from blurblib.workbook import grids, profiles, rehearsal, reproduce

pytestmark = pytest.mark.xdist_group("rehearsal")

NOTEBOOKS = profiles.notebooks()
# what a rehearsal may change in a run: its sizes, its seed, and the precision `auto` resolves to on its device
SIZES = set(rehearsal.RUN_SIZES) | {"seed", "precision"}


def _shape(config) -> tuple:
    """A run config without its sizes and seed: what decides which code runs."""
    return tuple(sorted((k, v) for k, v in dataclasses.asdict(config).items() if k not in SIZES))


def _both(notebook):
    return profiles.get(notebook, "paper"), profiles.get(notebook, "paper", rehearse=True)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_a_rehearsal_changes_only_sizes_seeds_the_device_and_the_stores(notebook):
    paper, rehearsed = _both(notebook)
    assert rehearsed.name == "paper-rehearsal" and rehearsed.rehearsal and not paper.rehearsal
    assert rehearsed.models == paper.models and rehearsed.techniques == paper.techniques
    assert rehearsed.seeds == paper.seeds[:rehearsal.NOTEBOOK_SEEDS.get(notebook, 2)] and rehearsed.device == "cpu"
    assert set(rehearsed.tasks) <= set(paper.tasks)
    for field in dataclasses.fields(paper.settings) if paper.settings else ():  # knobs, arms, heads, measure: all kept
        if field.name not in rehearsal.SETTINGS_SIZES and field.name not in ("knob_seeds", "knob_models"):
            assert getattr(rehearsed.settings, field.name) == getattr(paper.settings, field.name), field.name
    # every rehearsed run is a paper run with smaller sizes and one of its seeds
    paper_grid, rehearsal_grid = grids.for_notebook(paper), grids.for_notebook(rehearsed)
    assert {_shape(c) for c in rehearsal_grid.runs()} <= {_shape(c) for c in paper_grid.runs()}
    for c in rehearsal_grid.runs():
        assert (c.train_limit, c.eval_limit, c.max_length, c.epochs, c.batch_size) == (4, 4, 16, 1, 4)
        assert c.lr == profiles.task_settings("paper", c.task)["lr"] and c.seed in {p.seed for p in paper_grid.runs()}
        assert c.precision == precision.resolve("auto", "cpu")  # the paper's `auto`, on the rehearsal's CPU
    assert {_shape(c) for c in rehearsal_grid.calibration} <= {_shape(c) for c in paper_grid.calibration}
    # the stores are the rehearsal's own: a twin's run carries the real run's id
    out = rehearsal.output_dir()
    for where in (rehearsed.results_dir, rehearsed.calibration_dir(), rehearsed.figure_dir(), rehearsed.table_dir()):
        assert Path(where).is_relative_to(out), where
    assert not Path(paper.results_dir).is_relative_to(out) and paper.results_dir != rehearsed.results_dir


def test_across_notebooks_the_rehearsal_covers_every_model_head_technique_knob_and_task():
    paper_runs, rehearsal_runs, loaded = set(), set(), set()
    for notebook in NOTEBOOKS:
        paper, rehearsed = _both(notebook)
        paper_runs |= {c for c in grids.for_notebook(paper).runs() + grids.for_notebook(paper).calibration}
        rehearsal_runs |= {c for c in grids.for_notebook(rehearsed).runs() + grids.for_notebook(rehearsed).calibration}
        loaded |= set(rehearsed.models)
    trainable = {c.task for c in paper_runs if "train" in tasks.present_splits(c.task)}
    knobs = ("freeze_layers", "reinit_layers", "llrd_decay", "mixout", "lpft_epochs", "slimfit_rate", "slimfit_quant_bits")
    for field in ("model", "head", "technique", *knobs):
        assert {getattr(c, field) for c in rehearsal_runs} == {getattr(c, field) for c in paper_runs
                                                             if c.task in trainable}, field
    assert {(c.model, c.head) for c in rehearsal_runs} >= {("pubmedbert-base", h) for h in ("cls", "token", "mean", "biencoder")}
    assert {c.task for c in rehearsal_runs} == trainable == set(tasks.names()) - {"EBM-PICO"}
    assert set(profiles.get("00_blurb_tour", "paper", rehearse=True).tasks) == set(tasks.names())  # the tour: all 13
    assert reproduce.untrainable_tasks("paper", NOTEBOOKS) == {"EBM-PICO": ["02", "03"]}
    assert {m for m in loaded if models.MODELS[m].source == "hub"} == set(rehearsal.hub_models(
        [profiles.get(n, "paper", rehearse=True) for n in NOTEBOOKS]))


def test_a_change_to_the_paper_profile_is_rehearsed_with_no_edit(monkeypatch):
    paper = dict(profiles._NOTEBOOKS["04_low_resource_reinit"]["paper"])
    monkeypatch.setitem(profiles._NOTEBOOKS["04_low_resource_reinit"], "paper",
                        {**paper, "models": ("pubmedbert-base", "bert-large"), "settings": profiles.ReinitSettings(reinit=(0, 5))})
    monkeypatch.setitem(profiles.TASK_SETTINGS["paper"], "BIOSSES", {"epochs": 30, "batch_size": 16, "lr": 7e-6})
    rehearsed = profiles.get("04_low_resource_reinit", "paper", rehearse=True)
    assert rehearsed.models == ("pubmedbert-base", "bert-large") and rehearsed.settings.reinit == (0, 5)
    runs = grids.for_notebook(rehearsed).runs()
    assert {(c.model, c.reinit_layers, c.lr, c.epochs) for c in runs} == {
        (m, n, 7e-6, 1) for m in ("pubmedbert-base", "bert-large") for n in (0, 5)}
    assert rehearsal.hub_models([rehearsed]) == ["bert-large", "pubmedbert-base"]


def test_the_rehearsal_sizes_never_grow_and_the_benchmarks_and_calibration_shrink():
    P = profiles.get("06_efficiency", "paper", rehearse=True)
    from blurblib import bench

    assert bench.memory_settings(P) == {"model_names": ("bert-base-shape",), "seq_len": 16, "batch_size": 2, "steps": 1,
                                        "reps": 1, "fractions": (0.0, 0.5), "device": "cpu"}
    assert bench.seed_settings(P)["ks"] == (4,) and bench.seed_settings(P)["n_examples"] == 4
    assert bench.slimfit_memory_settings(P)["model_names"] == ("bert-base-shape",)
    assert bench.slimfit_sweep(P).seeds == (1,)
    assert (P.settings.reps, P.settings.bench_examples, P.settings.measure) == (1, 4, True)
    one = profiles.get("01_pretraining_sensitivity", "paper", rehearse=True).settings
    assert one.pretrain_tokens == 0 and one.arms == () and one.vocab_sample == 20  # 0 stays 0: nothing to pretrain
    for task, c in grids.calibration_candidates("paper-rehearsal").items():
        assert (c.train_limit, c.eval_limit, c.max_length, c.epochs, c.batch_size) == (4, 4, 16, 1, 4)
        assert c.lrs == calibration.GRID[task].lrs[:1]
    assert profiles.task_settings("paper-rehearsal", "BIOSSES")["lr"] == profiles.task_settings("paper", "BIOSSES")["lr"]


def test_only_the_paper_profile_has_a_rehearsal():
    with pytest.raises(ConfigError, match="has no rehearsal; --rehearse rehearses paper"):
        profiles.get("03_stabilization", "default", rehearse=True)
    assert cli.main(["reproduce", "--profile", "smoke", "--rehearse"]) == 2


def _fake_twin(hf_home: Path, hub_id: str) -> None:
    """What `packs.cached_twin` looks for, without writing 440 MB of weights."""
    repo = packs.hub_repo_dir(hub_id, hf_home / "hub")
    (repo / "snapshots" / ("f" * 40)).mkdir(parents=True)
    (repo / "snapshots" / ("f" * 40) / packs.TWIN_MARKER).write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("f" * 40)


def test_a_twin_never_trains_into_another_profiles_store_and_a_rehearsal_trains_only_twins(tmp_path, monkeypatch):
    _fake_twin(tmp_path, models.get("pubmedbert-base").hub_id)
    paper, rehearsed = _both("05_blurb_score")
    configs = grids.for_notebook(paper).runs()[:1]
    with packs.using_hf_home(tmp_path, offline=True):
        with pytest.raises(ConfigError, match="holds a shape-true twin .* real model's run ids"):
            paper.run_sweep(configs)
        rehearsal.check_weights(["pubmedbert-base", "minilm-l6"], rehearsing=True)  # a twin, offline: fine
        with pytest.raises(ConfigError, match="bert-base .* is not a twin"):
            rehearsed.run_sweep(grids.for_notebook(profiles.get("01_pretraining_sensitivity", "paper", rehearse=True)).runs())
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    with packs.using_hf_home(tmp_path, offline=False):
        with pytest.raises(ConfigError, match="HF_HUB_OFFLINE is not set"):
            rehearsal.check_weights(["pubmedbert-base"], rehearsing=True)
    assert not Path(paper.results_dir, "runs").exists() or not any(Path(paper.results_dir, "runs").iterdir())


def _digests(*folders: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for f in folders for p in sorted(f.glob("*.ipynb"))}


@pytest.mark.rehearsal  # minutes: `make rehearse` runs it (CI after `make test`); `make test` leaves it out
def test_the_rehearsal_runs_every_notebook_of_the_paper_profile(tmp_path, monkeypatch):
    """Every notebook on the paper grids (thinned as blurblib.workbook.rehearsal says), end to end, as
    `blurb reproduce --profile paper --rehearse` runs it; a failing cell fails here, naming the
    notebook and the cell. The notebooks a reader meets are never written."""
    monkeypatch.setenv("BLURB_OUTPUTS_DIR", str(tmp_path))  # the stores, tables, figures, executed notebooks
    monkeypatch.setenv("BLURB_WORKERS", str(os.cpu_count() or 1))  # worker processes, as the CLI runs it
    readers = _digests(reproduce.NOTEBOOK_DIR, paths.REPO_ROOT / "outputs" / "notebooks")
    report = reproduce.run("paper", rehearse=True)
    assert report == tmp_path / "rehearsal" / "REPORT.md"
    text = report.read_text()
    assert text.startswith("# REHEARSAL, not a reproduction: random-weight twins, every number below is meaningless")
    assert "* profile: `paper-rehearsal`" in text and "EBM-PICO has no train split" in text
    assert _digests(reproduce.NOTEBOOK_DIR, paths.REPO_ROOT / "outputs" / "notebooks") == readers
    executed = sorted(p.name for p in (tmp_path / "rehearsal" / "notebooks").glob("*.ipynb"))
    assert executed == sorted(p.name for p in reproduce.notebook_paths())
    for name in executed:
        meta = json.loads((tmp_path / "rehearsal" / "notebooks" / name).read_text())["metadata"]
        assert meta["papermill"]["parameters"] == {"REHEARSE": True}
        assert meta["blurblib"] == {"profile": "paper-rehearsal"}  # not the saved default run's tag it was copied from
    # what was trained: twins of every model of the paper grids, only into the rehearsal's store
    store = tmp_path / "rehearsal" / "results" / "runs"
    records = pd.DataFrame([json.loads(p.read_text()) for p in store.glob("*.json")])
    configs = pd.DataFrame(list(records["config"]))
    wanted = set()
    for notebook in NOTEBOOKS:
        wanted |= {c.run_id for c in grids.for_notebook(profiles.get(notebook, "paper", rehearse=True)).runs()}
    assert set(records["run_id"]) == wanted  # every run of every rehearsed grid, and nothing else
    assert not records["model_pretrained"].any() and (records["device"] == "cpu").all()
    assert set(configs["model"]) == {m for n in NOTEBOOKS for m in profiles.get(n, "paper").models
                                     if models.MODELS[m].source == "hub"}
    assert set(configs["task"]) == set(tasks.names()) - {"EBM-PICO"}
    assert not (tmp_path / "results-paper").exists() and not (tmp_path / "results").exists()
    tables = tmp_path / "rehearsal" / "tables"
    for notebook in NOTEBOOKS[1:]:
        assert (tables / f"{notebook}_claims.csv").is_file(), notebook
    claims = pd.read_csv(tables / "02_size_vs_instability_claims.csv")
    assert {(r.small, r.large) for r in claims.itertuples()} == {("pubmedbert-base", "pubmedbert-large"),
                                                                 ("pubmedelectra-base", "pubmedelectra-large")}
