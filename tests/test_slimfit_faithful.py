"""SlimFit as its authors built it: tensor-level units (biases always train), the official scoring
rule, each activation-compression switch's error bound (on the stored tensor and on the gradient
passed through), and the per-step memory accounting against a hand-computed case."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from tiny import adamw, random_batch, tiny_bert
from torch import nn

from blurblib.core.errors import ConfigError
from blurblib.training import slimfit, techniques
from blurblib.training.train import RunConfig, run


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def _tiny(layers=2, hidden=32, attention="sdpa", seed=0):
    return tiny_bert(layers, hidden, vocab=200, positions=64, attention=attention, seed=seed)


def _batch(n=4, length=16, seed=0):
    return random_batch(n, length, vocab=200, seed=seed)


_adamw = adamw


FAITHFUL = dict(slimfit_rate=0.9, slimfit_unit="tensor", slimfit_gelu_bits=4, slimfit_attention_bits=8,
                slimfit_ffn_bits=8, slimfit_ln_keep=0.1, warmup_ratio=0.0)


# --- tensor-level units ---------------------------------------------------------------------------

def test_tensor_units_are_weight_matrices_and_layernorm_weights_never_biases():
    model = _tiny()
    names = [u.name for u in slimfit.schedulable_units(model, "tensor")]
    expected = [n for n, p in model.named_parameters() if p.dim() > 1 or "LayerNorm.weight" in n]  # the official rule
    assert names == expected and len(names) == 4 + 2 * 8 + 2  # embeddings (3 + LN), 8 a block, pooler, classifier
    assert "classifier.weight" in names and "bert.pooler.dense.weight" in names
    assert not any(n.endswith("bias") for n in names)
    with pytest.raises(ConfigError, match="slimfit_unit='layer' is unknown"):
        slimfit.schedulable_units(model, "layer")


def test_at_a_step_frozen_tensors_get_no_gradient_and_every_bias_gets_one():
    model = _tiny()
    sf = slimfit.SlimFit(model, _adamw(model), rate=0.9, unit="tensor", seed=0)
    units = sf.scheduler.units
    assert (sf.scheduler.n_frozen, sf.scheduler.trainable_per_step) == (int(0.9 * 22), 22 - int(0.9 * 22))
    with sf.step():
        loss = model(**_batch()).loss
    loss.backward()
    frozen = {u.name for u, f in zip(units, sf.scheduler.frozen) if f}
    trained = {u.name for u, f in zip(units, sf.scheduler.frozen) if not f}
    for name, p in model.named_parameters():
        if name in frozen:
            assert p.grad is None, name
        elif name in trained or name.endswith("bias"):
            assert p.grad is not None, name  # every bias, LayerNorm biases included, trains at every step
    assert len(trained) == 3
    summary = sf.close()
    assert summary["slimfit_units"] == 22 and summary["memory_steps"] == 1
    assert all(p.requires_grad for p in model.parameters())


def test_tensor_units_score_the_raw_relative_change_as_the_official_loop():
    """No learning-rate correction (the block variant's), and a step at lr 0 measures nothing."""
    model = _tiny(layers=1)
    units = slimfit.schedulable_units(model, "tensor")
    scheduler = slimfit.InterLayerScheduler(units, rate=0.5, seed=0, per_lr=False)
    scheduler.choose()
    trained = [i for i, f in enumerate(scheduler.frozen) if not f]
    for lr_factor in (0.5, 0.0):
        scheduler.snapshot()
        with torch.no_grad():
            for i in trained:
                units[i].params[0].mul_(1.01)
        scheduler.measure(lr_factor)
        assert [scheduler.scores[i] for i in trained] == pytest.approx([0.01] * len(trained), rel=1e-4)
    assert all(math.isinf(s) for i, s in enumerate(scheduler.scores) if i not in trained)


def test_tensor_runs_are_a_late_knob_that_renames_no_stored_run():
    base = RunConfig(task="GAD", slimfit_rate=0.9)
    assert dataclasses.replace(base, slimfit_unit="block").run_id == base.run_id  # the default: stored runs' behaviour
    faithful = RunConfig(task="GAD", **FAITHFUL)
    assert faithful.technique == "slimfit0.9-tensor-gelu4-att8-ffn8-ln0.1" and faithful.run_id != base.run_id
    assert techniques.family(faithful) == "slimfit"
    faithful.validate()
    bad = {
        "slimfit_unit='tensor' belong to SlimFit, but slimfit_rate=0": dict(slimfit_unit="tensor"),
        "slimfit_gelu_bits=4 belong to SlimFit": dict(slimfit_gelu_bits=4),
        "never freezes a whole block": dict(slimfit_rate=0.9, slimfit_unit="tensor", slimfit_quant_bits=8),
        "store the same tensors twice": dict(slimfit_rate=0.9, slimfit_quant_bits=8, slimfit_ln_keep=0.1),
        r"invalid slimfit_unit='layer' \(accepted: tensor or block\)": dict(slimfit_rate=0.9, slimfit_unit="layer"),
        "invalid slimfit_attention_bits=4": dict(slimfit_rate=0.9, slimfit_attention_bits=4),
        "invalid slimfit_ln_keep=1.5": dict(slimfit_rate=0.9, slimfit_ln_keep=1.5),
    }
    for message, fields in bad.items():
        with pytest.raises(ConfigError, match=message):
            RunConfig(task="GAD", **fields).validate()


# --- the compression switches: stored error and gradient error -----------------------------------

@pytest.mark.parametrize("bits, frac, signed", [(4, 1, True), (8, 4, True), (8, 8, False), (8, 7, False)])
def test_fixed_point_reconstructs_within_half_a_step_and_clips_outside_its_range(bits, frac, signed):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, 5, generator=g) * 3 + (0 if signed else 3)  # an odd count: 4-bit packing pads
    packed = slimfit.fixed_point(x, bits, frac, signed)
    back = packed.dequantize()
    lo, hi = slimfit.fixed_range(bits, frac, signed)
    assert back.shape == x.shape and back.dtype == x.dtype
    assert bool(((back - x.clamp(lo, hi)).abs() <= 2 ** -(frac + 1) + 1e-7).all())
    assert packed.nbytes == (math.ceil(x.numel() / 2) if bits == 4 else x.numel())
    assert bool(((x < lo) | (x > hi)).any())  # the case includes clipped values


def _grads(fn, *inputs):
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*inputs)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    out.backward(g)
    return out, g, [t.grad for t in inputs]


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_at_4_bits_bounds_the_gradient_passed_through(approximate):
    x = torch.randn(6, 40, generator=torch.Generator().manual_seed(0)) * 2
    out, g, (exact,) = _grads(lambda t: nn.functional.gelu(t, approximate=approximate), x)
    q_out, _, (approx,) = _grads(lambda t: slimfit.GeluQ4.apply(t, approximate), x)
    assert torch.equal(out, q_out)  # the forward is exact; only what backward reads is 4-bit
    error = (slimfit.fixed_point(x, 4, 1).dequantize() - x).abs()
    lipschitz = 2 / math.sqrt(2 * math.pi)  # max |GELU''| (at 0)
    assert bool(((approx - exact).abs() <= g.abs() * lipschitz * error + 1e-6).all())
    assert not torch.equal(approx, exact)


def test_attention_matmul_at_8_bits_bounds_both_operand_gradients():
    g0 = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 4, 8, 16, generator=g0) * 2, torch.randn(2, 4, 16, 8, generator=g0) * 2
    out, g, (ga, gb) = _grads(torch.matmul, a, b)
    q_out, _, (qa, qb) = _grads(slimfit.MatmulQ8.apply, a, b)
    assert torch.equal(out, q_out)
    err_a = (slimfit.fixed_point(a, 8, 4).dequantize() - a).abs()
    err_b = (slimfit.fixed_point(b, 8, 4).dequantize() - b).abs()
    assert bool(((qa - ga).abs() <= g.abs() @ err_b.transpose(-1, -2) + 1e-5).all())
    assert bool(((qb - gb).abs() <= err_a.transpose(-1, -2) @ g.abs() + 1e-5).all())


def test_softmax_keeps_its_probabilities_at_8_bits_within_the_bound():
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    out, g, (exact,) = _grads(lambda t: torch.softmax(t, -1), x)
    _, _, (approx,) = _grads(lambda t: slimfit.SoftmaxQ8.apply(t, -1), x)
    p = out.detach()
    e = (slimfit.fixed_point(p, 8, 8, signed=False).dequantize() - p).abs()
    assert float(e.max()) <= 2**-9 + 1e-7
    # grad = p (g - <g, p>): a change e in p changes it by at most e |g - <g,p>| + (p + e) <|g|, e>
    bound = e * (g - (g * p).sum(-1, keepdim=True)).abs() + (p + e) * (g.abs() * e).sum(-1, keepdim=True)
    assert bool(((approx - exact).abs() <= bound + 1e-6).all())


def test_ffn_output_linear_keeps_its_input_at_8_bits_and_only_the_weight_gradient_feels_it():
    g0 = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(3, 5, 32, generator=g0).abs() * 2, torch.randn(8, 32, generator=g0), torch.randn(8, generator=g0)
    out, g, (gx, gw, gb) = _grads(nn.functional.linear, x, w, b)
    _, _, (qx, qw, qb) = _grads(slimfit.LinearInputQ8.apply, x, w, b)
    err = (slimfit.fixed_point(x, 8, 4).dequantize() - x).abs()
    assert torch.allclose(qx, gx, atol=1e-5) and torch.allclose(qb, gb, atol=1e-5)
    flat_g, flat_e = g.reshape(-1, 8).abs(), err.reshape(-1, 32)
    assert bool(((qw - gw).abs() <= flat_g.T @ flat_e + 1e-4).all()) and not torch.allclose(qw, gw)


def test_frozen_layernorm_keeping_its_top_share_bounds_the_input_gradient():
    g0 = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(4, 6, 32, generator=g0), torch.rand(32, generator=g0) + 0.5, torch.randn(32, generator=g0)
    frozen_w = w.clone()  # a frozen LayerNorm: its weight gets no gradient, its bias does

    def native(t, bias):
        return nn.functional.layer_norm(t, (32,), frozen_w, bias, 1e-12)

    out, g, (gx, gb) = _grads(native, x, b)
    full_out, _, (fx, fb) = _grads(lambda t, bias: slimfit.PrunedLayerNorm.apply(t, (32,), frozen_w, bias, 1e-12, 1.0), x, b)
    assert torch.allclose(full_out, out) and torch.allclose(fx, gx, atol=1e-5) and torch.allclose(fb, gb)
    _, _, (px, pb) = _grads(lambda t, bias: slimfit.PrunedLayerNorm.apply(t, (32,), frozen_w, bias, 1e-12, 0.1), x, b)
    assert torch.allclose(pb, gb)
    # y = normalised input; pruning zeroes all but the top 10% of |y| (e: the dropped values)
    std = (x.var(-1, unbiased=False, keepdim=True) + 1e-12).sqrt()
    y = (x - x.mean(-1, keepdim=True)) / std
    kept = torch.zeros(y.numel(), dtype=torch.bool)
    kept[y.abs().flatten().topk(int(y.numel() * 0.1)).indices] = True
    e = torch.where(kept.reshape(y.shape), 0.0, y.abs())
    dx = g * frozen_w
    m = (dx * y).mean(-1, keepdim=True).abs()
    bound = (e * m + (y.abs() - e) * (dx.abs() * e).mean(-1, keepdim=True)) / std
    assert bool(((px - gx).abs() <= bound + 1e-5).all()) and not torch.allclose(px, gx)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_compression_on_a_model_keeps_less_and_the_gradients_close(attention):
    """All four switches on a tiny BERT (both attention paths): what autograd keeps shrinks and the
    trained weights' gradients stay close to the uncompressed ones (same schedule, same dropout)."""
    kept, grads = {}, {}
    for name, comp in (("off", slimfit.Compression()), ("on", slimfit.Compression.official())):
        model = _tiny(attention=attention)
        sf = slimfit.SlimFit(model, _adamw(model), rate=0.5, unit="tensor", compression=comp, seed=0)
        torch.manual_seed(1)
        with sf.step():
            loss = model(**_batch()).loss
        loss.backward()  # outside the step, as in train.run
        kept[name] = sf.saved.bytes
        grads[name] = torch.cat([p.grad.flatten() for n, p in model.named_parameters()
                                 if p.grad is not None and not n.endswith("key.bias")])  # ~0: softmax ignores shifts
        sf.close()
    cosine = nn.functional.cosine_similarity(grads["off"], grads["on"], dim=0)
    assert kept["on"] < 0.6 * kept["off"] and cosine > 0.9


def test_each_switch_alone_routes_its_op():
    model = _tiny()
    for field, value in (("gelu_bits", 4), ("attention_bits", 8), ("ffn_bits", 8), ("ln_keep", 0.1)):
        comp = slimfit.Compression(**{field: value})
        kept = []
        for on in (comp, slimfit.Compression()):
            sf = slimfit.SlimFit(model, _adamw(model), rate=0.5, unit="tensor", compression=on, seed=0)
            # the FFN output weights train (an 8-bit input is kept only for a trained weight), LayerNorms freeze
            sf.scheduler.scores = [1.0 if ".output.dense." in u.name and "attention" not in u.name
                                   else 0.0 if "LayerNorm" in u.name else 0.5 for u in sf.scheduler.units]
            with sf.step():
                loss = model(**_batch()).loss
            loss.backward()
            model.zero_grad(set_to_none=True)
            kept.append(sf.saved.bytes)
            sf.close()
        assert 0 < kept[0] < kept[1], field


# --- memory per step ----------------------------------------------------------------------------

def test_step_memory_matches_a_hand_computed_case():
    """Linear(4, 3) -> tanh -> Linear(3, 2), batch 5, fp32, AdamW, loss = sum of the outputs.

    Step 1, all trains: autograd keeps the input x (5x4) for W1's gradient and tanh's output (5x3,
    read by tanh's backward and by W2's gradient: one storage) = 80 + 60 = 140 bytes; weights
    23 x 4 = 92; gradients 92; Adam's two moments 184: 508. Step 2, the first Linear frozen: only
    tanh's output (60) is kept (nothing below needs a gradient), gradients 8 x 4 = 32, the state
    from step 1 stays (184): 60 + 92 + 32 + 184 = 368."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    meter = slimfit.Metered(model, optimizer)
    for frozen in (False, True):
        for p in model[0].parameters():
            p.requires_grad_(not frozen)
        with meter.step():
            loss = model(torch.randn(5, 4)).sum()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    rows = meter.memory.rows
    assert [(r["saved"], r["weights"], r["grads"], r["state"]) for r in rows] == [(140, 92, 92, 184), (60, 92, 32, 184)]
    summary = meter.close()
    assert summary["memory_peak_mb"] * 2**20 == pytest.approx(508)
    assert summary["memory_mean_mb"] * 2**20 == pytest.approx((508 + 368) / 2)
    assert summary["memory_saved_peak_mb"] * 2**20 == pytest.approx(140) and summary["memory_steps"] == 2


def test_every_run_is_metered_and_a_faithful_run_records_its_schedule():
    small = dict(epochs=1, train_limit=16, eval_limit=16, max_length=32, batch_size=8, lr=1e-4)
    standard = run(RunConfig(task="BIOSSES", **small, warmup_ratio=0.0), progress=False)
    faithful = run(RunConfig(task="BIOSSES", **small, **FAITHFUL), progress=False)
    for record in (standard, faithful):
        assert record["status"] == "ok" and record["memory_steps"] == 2
        assert 0 < record["memory_saved_mean_mb"] <= record["memory_saved_peak_mb"] < record["memory_peak_mb"]
    assert faithful["technique"] == "slimfit0.9-tensor-gelu4-att8-ffn8-ln0.1"
    # MiniLM's biencoder head on BIOSSES has no weights: 4 embedding units and 8 in each of its 6 blocks
    assert faithful["slimfit_units"] == 4 + 6 * 8
    assert any(name.endswith("embeddings.word_embeddings.weight") for name in faithful["slimfit_frozen_share"])
    assert faithful["memory_saved_peak_mb"] < standard["memory_saved_peak_mb"]
    assert faithful["memory_grads_peak_mb"] < standard["memory_grads_peak_mb"]


# --- the grid that decides the claims (data: trained by another session) -------------------------

def test_the_long_faithful_grid_has_every_arm_over_five_seeds_and_a_thousand_steps():
    from blurblib import bench
    from blurblib.runs import sweep
    from blurblib.training import slimfit_arms
    from blurblib.workbook import efficiency, profiles

    P = profiles.get("06_efficiency", "default")
    configs = sweep.expand(efficiency.faithful_sweep(P))
    arms = {slimfit_arms.arm_of(c) for c in configs}
    assert arms == {"standard", "static", "slimfit", "slimfit-faithful"}
    assert {c.seed for c in configs} == {1, 2, 3, 4, 5} and {c.warmup_ratio for c in configs} == {0.0}
    n_train = {"GAD": 4261, "ChemProt": 4000, "NCBI-disease": 5400}  # whole sets where train_limit is None
    for c in configs:
        assert math.ceil((c.train_limit or n_train[c.task]) / c.batch_size) * c.epochs >= 1000, c.run_id
    faithful = [c for c in configs if slimfit_arms.arm_of(c) == "slimfit-faithful"]
    assert {c.technique for c in faithful} == {"slimfit0.9-tensor-gelu4-att8-ffn8-ln0.1"}
    for c in faithful:
        c.validate()
    assert "slimfit-faithful" in bench.arm_knobs("minilm-l6", faithful=True)


def test_blurb_faithful_plans_the_long_grid_and_names_its_tasks(capsys):
    from blurblib import cli

    assert cli.main(["faithful", "--task", "GAD", "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert plan.startswith("20 runs") and "GAD" in plan and "ChemProt" not in plan  # 4 arms x 5 seeds
    assert cli.main(["faithful", "--task", "HoC", "--dry-run"]) != 0
    assert "GAD, ChemProt, NCBI-disease" in capsys.readouterr().err
