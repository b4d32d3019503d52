"""Training precision: fp32 or bf16 autocast, `auto` by what the hardware computes natively."""
import os
import subprocess
import sys

import pytest
import torch

from blurblib.core import precision
from blurblib.core.errors import ConfigError
from blurblib.training.train import RunConfig, run


def test_auto_follows_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.resolve("auto") == "bf16"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.resolve("auto") == "fp32"
    assert precision.resolve("bf16") == "bf16" and precision.resolve("fp32") == "fp32"
    with pytest.raises(ConfigError, match="unknown precision 'fp16'"):
        precision.resolve("fp16")
    with pytest.raises(ConfigError, match="precision='fp16'"):
        RunConfig(task="GAD", precision="fp16").validate()


def test_kernels_forced_below_avx512_make_bf16_not_native():
    """ATEN_CPU_CAPABILITY=avx2 emulates bf16 whatever the CPU has, so auto resolves to fp32 there."""
    code = "from blurblib import precision; print(precision.resolve('auto'), precision._kernels_use_avx512())"
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2"}
    env.pop(precision.NATIVE_BF16_ENV, None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.split() == ["fp32", "False"], done.stderr


def test_bf16_autocast_lowers_the_matmuls_and_keeps_fp32_weights():
    layer = torch.nn.Linear(8, 4)
    with precision.autocast("cpu", "bf16"):
        out = layer(torch.randn(2, 8))
    assert out.dtype == torch.bfloat16 and layer.weight.dtype == torch.float32
    with precision.autocast("cpu", "fp32"):
        assert layer(torch.randn(2, 8)).dtype == torch.float32


def test_a_bf16_run_learns_like_an_fp32_run(one_torch_thread):
    """Same config and seed in both precisions: both finite, close on a tiny real slice."""
    if not precision.cpu_has_native_bf16():
        pytest.skip("bf16 is emulated on this CPU or kernel path (ATEN_CPU_CAPABILITY below AVX-512, or "
                    "BLURB_NATIVE_BF16=0), where auto never picks it")
    tiny = dict(task="BIOSSES", epochs=2, train_limit=32, eval_limit=None, max_length=64, batch_size=8, lr=5e-5)
    fp32 = run(RunConfig(precision="fp32", **tiny), progress=False)
    bf16 = run(RunConfig(precision="bf16", **tiny), progress=False)
    assert bf16["config"]["precision"] == "bf16" and bf16["run_id"] != fp32["run_id"]
    assert bf16["status"] == fp32["status"] == "ok"
    assert bf16["test_score"] == pytest.approx(fp32["test_score"], abs=3.0)  # Pearson x100; bf16 rounds each matmul


def test_precision_table_pairs_seeds_and_compares_with_seed_noise():
    import pandas as pd

    from blurblib.bench.precision import precision_table, twins

    scores = {"BIOSSES": [(50, 51), (60, 59.5), (55, 55.2)], "GAD": [(70, 80), (71, 81), (72, 82)]}
    runs = pd.DataFrame([dict(task=t, seed=s, precision=p, test_score=v) for t, pairs in scores.items()
                         for s, (fp32, bf16) in enumerate(pairs, 1) for p, v in (("fp32", fp32), ("bf16", bf16))])
    table = precision_table(runs).set_index("task")
    assert table.loc["BIOSSES", "bf16 - fp32"] == pytest.approx(0.7 / 3) and table.loc["BIOSSES", "within seed noise"]
    assert table.loc["GAD", "bf16 - fp32"] == pytest.approx(10.0) and not table.loc["GAD", "within seed noise"]
    pair = twins([RunConfig(task="GAD", seed=3)])
    assert [c.precision for c in pair] == ["fp32", "bf16"] and len({c.seed for c in pair}) == 1
