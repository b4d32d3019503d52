"""SlimFit: the inter-layer scheduler's rule, frozen layers, the memory it saves, the 8-bit store,
a real run on MiniLM, and the run ids of stored runs (which a new knob must not change)."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from tiny import adamw, random_batch, tiny_bert

from blurblib.core.errors import ConfigError
from blurblib.runs import results
from blurblib.training import config as run_config
from blurblib.training import slimfit, techniques
from blurblib.training.train import RunConfig, run

RUNS = Path(__file__).resolve().parents[1] / "outputs" / "results" / "runs"


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def _tiny(layers=4, hidden=64, seed=0):
    return tiny_bert(layers, hidden, seed=seed)


def _batch(n=8, length=64, seed=0):
    return random_batch(n, length, seed=seed)


_adamw = adamw


def _force(sf: slimfit.SlimFit, frozen: set[str]) -> None:
    """Scores that make ILS freeze exactly `frozen` at the next step (the lowest score freezes)."""
    sf.scheduler.scores = [0.0 if u.name in frozen else 1.0 for u in sf.scheduler.units]


# --- the score and the schedule -------------------------------------------------------------

def test_relative_change_is_the_mean_change_over_the_weight():
    before = torch.tensor([[1.0, -2.0], [4.0, 0.0]])
    after = torch.tensor([[1.1, -2.0], [3.0, 5.0]])
    # |0.1|/1, 0/2, |1|/4; the entry that was 0 has no relative change and is left out
    assert slimfit.relative_change(before, after) == pytest.approx((0.1 + 0 + 0.25) / 3)


def test_scored_weights_are_matrices_and_layernorm_weights():
    block = _tiny().bert.encoder.layer[0]
    names = {n for n, p in block.named_parameters() if any(p is q for q in slimfit.scored_parameters(block))}
    assert names == {"attention.self.query.weight", "attention.self.key.weight", "attention.self.value.weight",
                     "attention.output.dense.weight", "attention.output.LayerNorm.weight",
                     "intermediate.dense.weight", "output.dense.weight", "output.LayerNorm.weight"}


class Grow(torch.optim.Optimizer):
    """A stand-in optimizer with a known answer: each weight that got a gradient grows by its unit's rate."""

    def __init__(self, params, growth: dict[int, float]):
        super().__init__(params, {"lr": 1.0})
        self.growth = growth

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.mul_(1.0 + self.growth[id(p)])


def test_ils_freezes_the_layers_that_change_least():
    """Five units growing by known relative amounts: after one visit each, ILS freezes the two slowest."""
    model = _tiny()
    growth = {"embeddings": 0.05, "block_0": 0.01, "block_1": 0.04, "block_2": 0.02, "block_3": 0.03}
    units = slimfit.schedulable_units(model)
    assert [u.name for u in units] == list(growth)
    per_param = {id(p): growth[u.name] for u in units for p in u.params}
    head = [p for p in model.parameters() if id(p) not in per_param]
    per_param.update({id(p): 0.0 for p in head})
    optimizer = Grow(model.parameters(), per_param)
    sf = slimfit.SlimFit(model, optimizer, rate=0.4, seed=3)
    assert (sf.scheduler.n_frozen, sf.scheduler.trainable_per_step) == (2, 3)

    visited, frozen_sets = set(), []
    for step in range(6):
        with sf.step():
            loss = model(**_batch(n=4, length=16)).loss
        frozen_sets.append({u.name for u, f in zip(units, sf.scheduler.frozen) if f})
        visited |= {u.name for u, f in zip(units, sf.scheduler.frozen) if not f}
        loss.backward()
        optimizer.step()  # its hooks score the units that trained
        optimizer.zero_grad(set_to_none=True)
        if step == 1:
            assert visited == set(growth)  # the first two steps visit every unit (scores start at "inf")
    assert all(s == {"block_0", "block_2"} for s in frozen_sets[2:])
    assert sf.scheduler.scores == pytest.approx([growth[u.name] for u in units], rel=1e-5)
    assert all(p.requires_grad for p in head)  # the head always trains
    summary = sf.close()
    assert summary["slimfit_mean_frozen"] == pytest.approx(0.4)
    assert summary["slimfit_frozen_share"]["block_0"] == summary["slimfit_frozen_share"]["block_2"] >= 4 / 6
    assert all(p.requires_grad for p in model.parameters())  # close() hands back a plain model


def test_scores_are_per_unit_of_learning_rate_and_frozen_units_keep_theirs():
    model = _tiny(layers=2)
    scheduler = slimfit.InterLayerScheduler(slimfit.schedulable_units(model), rate=0.5, seed=0)
    scheduler.choose()
    trained = [i for i, f in enumerate(scheduler.frozen) if not f]
    for lr_factor, expected in ((0.5, 0.02), (0.0, 0.02)):  # lr 0 (warm-up start) measures nothing
        scheduler.snapshot()
        with torch.no_grad():
            for i in trained:
                for p in scheduler.units[i].scored:
                    p.mul_(1.01)
        scheduler.measure(lr_factor)
        assert [scheduler.scores[i] for i in trained] == pytest.approx([expected] * len(trained), rel=1e-4)
    assert all(math.isinf(s) for i, s in enumerate(scheduler.scores) if i not in trained)


def test_frozen_layers_get_no_gradient_and_do_not_move():
    model = _tiny()
    optimizer = _adamw(model)
    sf = slimfit.SlimFit(model, optimizer, rate=0.6, seed=0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with sf.step():
        loss = model(**_batch()).loss
    frozen = {u.name for u, f in zip(sf.scheduler.units, sf.scheduler.frozen) if f}
    assert len(frozen) == 3
    loss.backward()
    unit_of = {id(p): u.name for u in sf.scheduler.units for p in u.params}
    for name, p in model.named_parameters():
        assert (p.grad is None) == (unit_of.get(id(p)) in frozen), name
    optimizer.step()
    for name, p in model.named_parameters():
        moved = not torch.equal(p, before[name])
        assert moved == (unit_of.get(id(p)) not in frozen), name  # the head (classifier, pooler) moved too
    sf.close()


def test_slimfit_composes_with_static_freezing_and_never_schedules_those_blocks():
    model = _tiny()
    techniques.prepare(model, RunConfig(task="GAD", freeze_layers=2, slimfit_rate=0.5))
    sf = slimfit.SlimFit(model, _adamw(model), rate=0.5, seed=0)
    assert [u.name for u in sf.scheduler.units] == ["block_2", "block_3"]
    with sf.step():
        model(**_batch(n=2, length=8)).loss.backward()
    assert not any(p.requires_grad for m in (model.bert.embeddings, *model.bert.encoder.layer[:2]) for p in m.parameters())
    assert sum(sf.scheduler.frozen) == 1
    sf.close()
    assert not any(p.requires_grad for p in model.bert.encoder.layer[0].parameters())  # static freezing stays


def test_config_knobs_ids_labels_and_nonsense_combinations():
    base = RunConfig(task="GAD")
    on = dataclasses.replace(base, slimfit_rate=0.9)
    assert on.technique == "slimfit0.9" and techniques.family(on) == "slimfit"
    assert dataclasses.replace(on, slimfit_quant_bits=8).technique == "slimfit0.9-int8"
    assert len({base.run_id, on.run_id, dataclasses.replace(on, slimfit_quant_bits=8).run_id}) == 3
    assert dataclasses.replace(base, slimfit_rate=0).run_id == base.run_id
    assert run_config.technique_knobs("slimfit") == {"slimfit_rate": 0.9}
    on.validate()
    RunConfig(task="GAD", freeze_layers=3, slimfit_rate=0.5, llrd_decay=0.9, lpft_epochs=1).validate()
    bad = {
        "slimfit_quant_bits=8 stores .* slimfit_rate=0 freezes none": dict(slimfit_quant_bits=8),
        r"invalid slimfit_rate=1\.0": dict(slimfit_rate=1.0),
        "invalid slimfit_quant_bits=4": dict(slimfit_rate=0.5, slimfit_quant_bits=4),
        r"freezes int\(0.1 x 7\) = 0 .* at least 0.143": dict(slimfit_rate=0.1),
        "freeze_layers=5 leaves slimfit 1": dict(slimfit_rate=0.5, freeze_layers=5),
    }
    for message, fields in bad.items():
        with pytest.raises(ConfigError, match=message):
            RunConfig(task="GAD", **fields).validate()


# --- memory -----------------------------------------------------------------------------------

def _saved_bytes(model, sf=None, frozen=None):
    if sf is None:
        with slimfit.SavedActivations(model) as saved:
            loss = model(**_batch()).loss
        loss.backward()
        return saved.bytes
    _force(sf, frozen)
    with sf.step():
        loss = model(**_batch()).loss
    loss.backward()
    for p in model.parameters():
        p.grad = None
    return sf.saved.bytes


def test_a_slimfit_step_keeps_less_for_backward_than_a_standard_step():
    """What autograd keeps for the backward pass, in bytes (parameters excluded), on a tiny BERT.

    Top blocks training (everything below frozen): nothing is kept below them. Bottom layers
    training: the frozen blocks above keep only their static activations (no Linear inputs),
    and int8 stores those in about a quarter of the bytes."""
    model = _tiny()
    standard = _saved_bytes(model)
    top = slimfit.SlimFit(model, _adamw(model), rate=0.6, seed=0)
    top_trains = _saved_bytes(model, top, {"embeddings", "block_0", "block_1"})
    bottom_trains = _saved_bytes(model, top, {"block_1", "block_2", "block_3"})
    top.close()
    int8 = slimfit.SlimFit(model, _adamw(model), rate=0.6, bits=8, seed=0)
    bottom_trains_int8 = _saved_bytes(model, int8, {"block_1", "block_2", "block_3"})
    int8.close()
    print(f"\nsaved for backward: standard {standard / 2**20:.2f} MiB, top 2 blocks train {top_trains / 2**20:.2f}, "
          f"bottom trains {bottom_trains / 2**20:.2f}, bottom trains + int8 {bottom_trains_int8 / 2**20:.2f}")
    assert top_trains < 0.55 * standard
    assert bottom_trains < 0.9 * standard
    assert bottom_trains_int8 < 0.7 * bottom_trains
    assert _saved_bytes(model) == standard  # the hooks are gone: a plain step again


def test_int8_store_of_a_frozen_block_keeps_gradients_below_it_close():
    model = _tiny()
    grads = {}
    for bits in (0, 8):
        sf = slimfit.SlimFit(model, _adamw(model), rate=0.6, bits=bits, seed=0)
        _force(sf, {"block_1", "block_2", "block_3"})
        torch.manual_seed(1)  # the same dropout masks in both
        with sf.step():
            loss = model(**_batch()).loss
        loss.backward()
        grads[bits] = torch.cat([p.grad.flatten() for p in model.bert.encoder.layer[0].parameters()])
        assert bits == 0 or sf.saved.quantized_tensors > 0
        model.zero_grad(set_to_none=True)
        sf.close()
    cosine = torch.nn.functional.cosine_similarity(grads[0], grads[8], dim=0)
    assert cosine > 0.999 and not torch.equal(grads[0], grads[8])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_int8_rows_reconstruct_within_half_a_step(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, 40, generator=g) * torch.logspace(-3, 3, 40)  # rows of very different ranges
    x[0, 0] = 0.0  # an all-zero row
    x = x.to(dtype)
    packed = slimfit.quantize_rows(x)
    assert packed.q.dtype == torch.int8 and packed.scale.shape == (6, 5, 1)
    back = packed.dequantize()
    assert back.dtype == dtype and back.shape == x.shape
    error = (back.float() - x.float()).abs()
    bound = packed.scale / 2 + x.float().abs() * (2 ** -8 if dtype == torch.bfloat16 else 1e-6)
    assert bool((error <= bound).all()) and torch.equal(back[0, 0], torch.zeros(40, dtype=dtype))
    assert packed.nbytes < x.numel() * x.element_size() * (0.6 if dtype == torch.float32 else 0.65)
    assert slimfit.quantize_rows(torch.tensor([[0.0, -math.inf]])) is None  # no scale fits an additive mask


# --- a real run, and the ids of stored runs ------------------------------------------------------

def test_a_real_slimfit_run_on_minilm_records_how_often_each_layer_was_frozen():
    config = RunConfig(task="BIOSSES", slimfit_rate=0.9, slimfit_quant_bits=8, epochs=1, train_limit=16,
                       eval_limit=16, max_length=32, batch_size=8, lr=1e-4, warmup_ratio=0.0)
    record = run(config, progress=False)
    assert record["status"] == "ok" and record["technique"] == "slimfit0.9-int8"
    share = record["slimfit_frozen_share"]
    assert list(share) == ["embeddings"] + [f"block_{i}" for i in range(6)]
    # 2 steps, int(0.9 * 7) = 6 of 7 layers frozen in each: two different layers trained once each
    # (no warm-up: a step at lr 0 would measure nothing and its layer, still unmeasured, train again)
    assert record["slimfit_steps"] == 2 and record["slimfit_trainable_layers"] == 1
    assert sorted(share.values()) == [0.5, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert record["slimfit_mean_frozen"] == pytest.approx(6 / 7)
    assert 0 < record["slimfit_saved_activation_mb"] <= record["slimfit_peak_saved_activation_mb"]
    assert record["slimfit_mean_trainable_params"] < record["n_trainable_params"]
    assert RunConfig(**record["config"]).run_id == record["run_id"] == config.run_id


# A committed record's config and id, written before SlimFit existed (outputs/results/runs).
COMMITTED = ("BC2GM__minilm-l6__standard__s1__cb318e4d8e",
             {"batch_size": 16, "epochs": 4, "eval_limit": 250, "freeze_layers": 0, "head": "token",
              "llrd_decay": 1.0, "lpft_epochs": 0, "lr": 0.0003, "max_grad_norm": 1.0, "max_length": 128,
              "mixout": 0.0, "model": "minilm-l6", "precision": "bf16", "reinit_layers": 0, "seed": 1,
              "task": "BC2GM", "train_limit": 300, "warmup_ratio": 0.1, "weight_decay": 0.01})


def test_stored_run_ids_are_unchanged_by_the_new_knobs():
    run_id, fields = COMMITTED
    assert RunConfig(**fields).run_id == run_id
    assert RunConfig(**fields, slimfit_rate=0.0, slimfit_quant_bits=0).run_id == run_id
    stored = [json.loads(p.read_text()) for p in sorted(RUNS.glob("*.json"))]
    assert len(stored) >= 100
    assert [RunConfig(**r["config"]).run_id for r in stored] == [r["run_id"] for r in stored]


def test_records_that_predate_the_knob_read_as_slimfit_off(tmp_path):
    store = results.ResultsStore(tmp_path)
    run_id, fields = COMMITTED
    store.write({"run_id": run_id, "config": fields, "technique": "standard", "status": "ok"})
    new = RunConfig(task="GAD", slimfit_rate=0.5)
    store.write({"run_id": new.run_id, "config": dataclasses.asdict(new), "technique": new.technique, "status": "ok"})
    table = results.load(tmp_path).set_index("run_id")
    assert table.loc[run_id, "slimfit_rate"] == 0.0 and table.loc[new.run_id, "slimfit_rate"] == 0.5
    assert run_config.backfill(fields)["slimfit_quant_bits"] == 0
    row = pd.Series(fields)  # a table row of an old record, as other tables hold them
    assert techniques.family(row) == "standard" and techniques.is_standard(row)
    assert techniques.family(pd.Series({**fields, "slimfit_rate": float("nan")})) == "standard"
