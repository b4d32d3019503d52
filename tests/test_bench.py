"""blurblib.bench: the measuring code behind `blurb bench` and notebook 06 (real MiniLM, tiny sizes)."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from blurblib import bench
from blurblib.analysis import efficiency_findings as efficiency
from blurblib.bench import seeds, speed
from blurblib.bench.__main__ import main as bench_main
from blurblib.core import precision
from blurblib.core.errors import ConfigError, UnknownNameError
from blurblib.data import encoding, tasks
from blurblib.encoders import models
from blurblib.training import train


@pytest.mark.parametrize("blocks, expected", [(6, [0, 1, 3, 4]), (12, [0, 3, 6, 9]), (24, [0, 6, 12, 18]), (2, [0, 1])])
def test_freeze_depths_are_quarters(blocks, expected):
    assert bench.freeze_depths(blocks) == expected


def test_frozen_blocks_keep_no_activations():
    """With embeddings and the bottom k blocks frozen, autograd records nothing below block k."""
    full = bench.memory_probe("minilm-l6", freeze_layers=0, seq_len=16, batch_size=2, steps=1)
    half = bench.memory_probe("minilm-l6", freeze_layers=3, seq_len=16, batch_size=2, steps=1)
    regions = ["embeddings", "block_0", "block_1", "block_2"]
    assert all(full["saved_mb_by_region"][r] > 0 for r in regions)
    assert all(half["saved_mb_by_region"][r] == 0 for r in regions)
    # The unfrozen top keeps exactly what it kept before: freezing below does not change it.
    for r in ("block_3", "block_4", "block_5"):
        assert half["saved_mb_by_region"][r] == pytest.approx(full["saved_mb_by_region"][r])
    assert half["saved_tensors"] < full["saved_tensors"]
    assert half["saved_activation_mb"] < 0.6 * full["saved_activation_mb"]
    assert half["n_trainable"] < full["n_trainable"] == full["n_params"]
    assert full["peak_mb"] > 0 and full["peak_is_training_only"]


def test_measure_memory_runs_in_a_fresh_process():
    row = bench.measure_memory("minilm-l6", freeze_layers=6, seq_len=16, batch_size=2, steps=1)
    assert row["freeze_layers"] == 6 and row["num_blocks"] == 6
    assert sum(row["saved_mb_by_region"][f"block_{i}"] for i in range(6)) == 0
    # Only the classifier head trains: 384 x 2 + 2 weights, plus the pooler (384 x 384 + 384).
    assert row["n_trainable"] == 384 * 2 + 2 + 384 * 384 + 384
    assert 100 < row["peak_mb"] < 4000


def test_bad_memory_requests_fail_before_a_process_starts():
    with pytest.raises(ConfigError, match="from 0 to 6"):
        bench.measure_memory("minilm-l6", freeze_layers=7)
    with pytest.raises(UnknownNameError, match="unknown model"):
        bench.measure_memory("no-such-model", freeze_layers=0)
    with pytest.raises(ConfigError, match="JSON object"):
        bench_main(["memory-probe", "{not json"])
    with pytest.raises(ConfigError, match="keys from"):
        bench_main(["memory-probe", '{"model": "minilm-l6", "layers": 3}'])


def test_parallel_seeds_match_sequential_runs():
    out = bench.seeds_parallel(2, task="GAD", n_examples=4, batch_size=2, max_length=24, warmup=False)
    seq, par = np.array(out["sequential_losses"]), np.array(out["parallel_losses"])
    assert seq.shape == par.shape == (2, 2)
    assert out["same_results"] and out["max_loss_diff"] < 1e-4 and out["max_param_diff"] < 1e-3
    assert not np.allclose(seq[0], seq[1])  # the seeds really differ (head init, data order)


def test_parallel_seeds_pad_token_tasks_to_a_common_length():
    """NER: each seed's batch has its own length; padding them together must not change a loss.
    Eager attention here (an additive float mask), SDPA in the test above (a boolean mask)."""
    out = bench.seeds_parallel(2, task="NCBI-disease", n_examples=4, batch_size=2, max_length=32, attention="eager",
                               warmup=False, parallel_first=False)
    assert out["same_results"], (out["max_loss_diff"], out["max_param_diff"])


def test_stack_step_pads_tokens_but_not_multi_hot_labels():
    a = {"input_ids": torch.tensor([[101, 5, 102]]), "attention_mask": torch.ones(1, 3, dtype=torch.long),
         "labels": torch.tensor([[0.0, 1.0, 0.0, 0.0]])}
    b = {"input_ids": torch.tensor([[101, 5, 6, 7, 102]]), "attention_mask": torch.ones(1, 5, dtype=torch.long),
         "labels": torch.tensor([[1.0, 0.0, 0.0, 1.0]])}
    out = seeds._stack_step([a, b], pad_id=0, token_labels=False, device="cpu")
    assert out["input_ids"].tolist() == [[[101, 5, 102, 0, 0]], [[101, 5, 6, 7, 102]]]
    assert out["attention_mask"].shape == (2, 1, 1, 1, 5)
    assert out["attention_mask"][0, 0, 0, 0].tolist() == [True, True, True, False, False]
    assert out["labels"].shape == (2, 1, 4)
    tok = seeds._stack_step([{**a, "labels": torch.tensor([[-100, 1, -100]])}, {**b, "labels": torch.tensor([[-100, 0, 1, 1, -100]])}],
                            pad_id=0, token_labels=True, device="cpu")
    assert tok["labels"][0, 0].tolist() == [-100, 1, -100, -100, -100]


@pytest.mark.parametrize("task", ["GAD", "NCBI-disease", "BIOSSES"])
def test_baseline_and_ours_see_the_same_examples(task):
    """The two arms differ only in padding: same rows, same token ids and labels once unpadded."""
    _, tokenizer = models.load("minilm-l6", task)
    config = speed._bench_config(task, "minilm-l6", 12, 4, seed=1)
    config.validate()  # the stock head of the task (token for NER), as the baseline's
    _, encoded = train.prepare_data(config, tokenizer)
    max_length = bench.baseline_max_length(task, tokenizer)
    assert max_length == min(tasks.get(task).max_length, 512)
    padded = bench.pad_to_max_length(encoded["train"], task, tokenizer, max_length)
    assert len(padded) == len(encoded["train"]) == 12
    padded = padded[:]  # all rows as tensors
    assert padded["input_ids"].shape == (12, max_length)
    for i in range(12):
        n = encoded["train"][i]["length"]
        assert padded["input_ids"][i, :n].tolist() == encoded["train"][i]["input_ids"]
        assert padded["attention_mask"][i].sum().item() == n
        assert (padded["input_ids"][i, n:] == tokenizer.pad_token_id).all()
    if tasks.get(task).head_kind == "token_classification":
        n = encoded["train"][0]["length"]
        assert padded["labels"][0, :n].tolist() == encoded["train"][0]["labels"]
        assert (padded["labels"][0, n:] == encoding.IGNORE_INDEX).all()
    else:
        assert padded["labels"].tolist() == pytest.approx(list(encoded["train"]["labels"]))


def test_token_count_and_padding_share_of_constructed_batches():
    count = bench.count_batches([{"attention_mask": torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])},
                                 {"attention_mask": torch.tensor([[1, 1, 1]])}])
    assert (count.sequences, count.real_tokens, count.computed_tokens) == (3, 4 + 2 + 3, 5 + 5 + 3)
    assert (count.real_squared, count.computed_squared) == (16 + 4 + 9, 25 + 25 + 9)
    assert count.padding_share == pytest.approx(1 - 9 / 13)
    assert bench.count_batches([{"attention_mask": torch.ones(2, 7)}]).padding_share == 0
    assert math.isnan(bench.TokenCount().padding_share)  # nothing computed: no share to speak of


def _tiny_bert(cls, seed=0):
    from transformers import BertConfig

    config = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16,
                        max_position_embeddings=32, num_labels=3, attn_implementation="eager")
    torch.manual_seed(seed)
    return cls(config)


def test_flop_formula_on_a_tiny_bert():
    """N and the formula written out for L=2, H=8, FFN 16, 3 labels, and checked against torch's own
    FLOP counter on a real forward + backward (padding included: the padded shapes are computed)."""
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import BertForSequenceClassification, BertForTokenClassification

    per_block = 4 * 8 * 8 + 2 * 8 * 16  # Q, K, V, attention output; the two feed-forward matrices
    seq = bench.flop_model(_tiny_bert(BertForSequenceClassification), per_token_head=False)
    assert seq == bench.FlopModel(per_token_params=2 * per_block, per_sequence_params=8 * 8 + 8 * 3, num_layers=2,
                                  hidden=8)
    tok = bench.flop_model(_tiny_bert(BertForTokenClassification), per_token_head=True)
    assert (tok.per_token_params, tok.per_sequence_params) == (2 * per_block + 8 * 3, 0)  # no pooler, head per token
    # Two sequences of real lengths 5 and 3: 6 N_tok (5 + 3) + 6 N_seq 2 + 12 L H (5^2 + 3^2).
    assert seq.training_flops(8, 2, 34) == 6 * 1024 * 8 + 6 * 88 * 2 + 12 * 2 * 8 * 34 == 56736
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    count = bench.count_batches([{"attention_mask": mask}])
    assert count.real_flops(seq) == 56736
    for cls, model, labels in ((BertForSequenceClassification, seq, torch.tensor([0, 2])),
                               (BertForTokenClassification, tok, torch.tensor([[0, 1, 2, 1, 0], [2, 1, 0, -100, -100]]))):
        net = _tiny_bert(cls)
        with FlopCounterMode(display=False) as counter:
            net(input_ids=torch.randint(5, 50, (2, 5)), attention_mask=mask, labels=labels).loss.backward()
        assert counter.get_total_flops() == count.computed_flops(model)
        assert count.real_flops(model) < count.computed_flops(model)


def test_matmul_peak_is_positive_finite_and_measured_once():
    before = torch.get_num_threads()
    peak = bench.matmul_peak_flops("fp32", size=64, reps=2, threads=1)
    assert math.isfinite(peak) and peak > 1e6
    assert torch.get_num_threads() == before  # the benchmark's thread count is left as it was
    assert bench.matmul_peak_flops("fp32", size=64, reps=2, threads=1) == peak  # cached per process
    peaks = bench.matmul_peaks(size=64)
    assert set(peaks) == ({"fp32", "bf16"} if precision.cpu_has_native_bf16() else {"fp32"})
    assert all(math.isfinite(v) and v > 0 for v in peaks.values())
    with pytest.raises(ConfigError, match="unknown precision"):
        bench.matmul_peak_flops("fp8", size=64)


def _fake_throughput(ratio_by_task, reps=3, base=10.0, tuned=None, work=False):
    """Rows as `bench.throughput` returns them; `tuned` (per task, blurblib / tuned Trainer) adds arm (b);
    `work` the token and MFU columns (10 examples of 40 real tokens each, a baseline padded to 128)."""
    rows = []
    for task, ratio in ratio_by_task.items():
        for rep in range(reps):
            jitter = 1 + 0.01 * rep
            arms = [("baseline", base, 128.0), ("blurblib", base * ratio * jitter, 40.0)]
            if tuned is not None:
                arms.insert(1, ("tuned_trainer", base * ratio * jitter / tuned[task], 40.0))
            for arm, ex_s, tokens in arms:
                row = dict(task=task, rep=rep, arm=arm, train_examples_per_s=ex_s, eval_examples_per_s=2 * ex_s,
                           train_tokens_per_example=tokens)
                if work:
                    flop_s = 1e9 * ex_s  # 1 GFLOP of real-token work per example
                    row.update(real_tokens=400, computed_tokens=10 * tokens, padding_share=1 - 40 / tokens,
                               train_flop_s=flop_s, peak_flop_s=100e9, mfu=flop_s / 100e9,
                               precision="fp32" if arm == "baseline" else "bf16")
                rows.append(row)
    return pd.DataFrame(rows)


def test_throughput_summary_ratios_and_geometric_mean():
    df = _fake_throughput({"A": 2.0, "B": 8.0})
    summary = bench.throughput_summary(df).set_index("task")
    assert summary.loc["A", "train_ratio_median"] == pytest.approx(2.0 * 1.01)
    assert summary.loc["A", "train_ratio_min"] == pytest.approx(2.0)
    assert summary.loc["B", "train_ratio_max"] == pytest.approx(8.0 * 1.02)
    assert summary.loc["geometric mean", "train_ratio_median"] == pytest.approx(math.sqrt(2.02 * 8.08))
    assert "train_ratio_tuned_median" not in summary  # arm (b) not measured: no c/b columns


def test_throughput_summary_with_the_tuned_trainer_arm():
    df = _fake_throughput({"B": 8.0, "A": 2.0}, tuned={"B": 1.25, "A": 0.8})
    summary = bench.throughput_summary(df)
    assert list(summary["task"]) == ["B", "A", "geometric mean"]  # the order the tasks ran in
    summary = summary.set_index("task")
    assert summary.loc["A", "train_ratio_median"] == pytest.approx(2.0 * 1.01)  # c/a as before
    assert summary.loc["A", "train_ratio_tuned_median"] == pytest.approx(0.8)  # c/b
    assert summary.loc["B", "eval_ratio_tuned_max"] == pytest.approx(1.25)
    assert summary.loc["geometric mean", "train_ratio_tuned_median"] == pytest.approx(1.0)
    for arm in ("baseline", "tuned_trainer", "blurblib"):
        for what in ("train", "eval"):
            assert {f"{arm}_{what}_ex_s", f"{arm}_{what}_ex_s_min", f"{arm}_{what}_ex_s_max"} <= set(summary.columns)
        assert f"{arm}_tokens_per_ex" in summary
    assert summary.loc["A", "blurblib_train_ex_s_min"] == pytest.approx(20.0)
    assert summary.loc["A", "blurblib_train_ex_s_max"] == pytest.approx(20.4)
    assert summary.loc["A", "tuned_trainer_train_ex_s"] == pytest.approx(20.2 / 0.8)


def test_throughput_claims_against_both_trainer_arms():
    fast = bench.claims(_fake_throughput({"A": 3.0, "B": 4.0, "C": 2.5}, tuned={"A": 1.3, "B": 1.2, "C": 1.25}))
    assert fast.loc[0, "verdict"] == "holds" and fast.loc[0, "n"] == 9
    assert fast.loc[0, "estimate"] == pytest.approx(np.mean(np.log(bench.throughput_ratios(
        _fake_throughput({"A": 3.0, "B": 4.0, "C": 2.5}))["train_ratio"])) - np.log(2))
    assert "best options" in fast.loc[1, "claim"] and fast.loc[1, "verdict"] == "holds" and fast.loc[1, "n"] == 9
    slow = bench.claims(_fake_throughput({"A": 1.1, "B": 1.2, "C": 1.3}, tuned={"A": 0.8, "B": 0.9, "C": 0.85}))
    assert slow.loc[0, "verdict"] == "does not hold" and slow.loc[1, "verdict"] == "does not hold"
    # Without arm (b), its row says so; memory and score rows exist even when nothing was measured.
    old = bench.claims(_fake_throughput({"A": 3.0, "B": 4.0, "C": 2.5}))
    assert old.loc[0, "verdict"] == "holds" and old.loc[1, "observed"] == "not measured"
    assert (fast.loc[2:, "verdict"] == "inconclusive").all()
    assert (fast.loc[2:, "observed"] == "not measured").all()


def test_tiny_throughput_runs_all_three_arms():
    """Real MiniLM, 4 examples, 1 repetition, a sentence task and a NER task: every arm trains and
    predicts, with the same threads; (b) and (c) in the auto precision, (a) in fp32."""
    df = bench.throughput(("BIOSSES", "NCBI-disease"), "minilm-l6", n_examples=4, batch_size=2, reps=1,
                          warmup=False, log=None)
    assert list(df["arm"]) == ["baseline", "tuned_trainer", "blurblib"] * 2  # interleaved a, b, c
    assert (df["train_examples_per_s"] > 0).all() and (df["eval_examples_per_s"] > 0).all()
    assert (df["n_train"] == 4).all() and (df["n_eval"] == 4).all()
    assert df["torch_threads"].nunique() == 1
    auto = bench.best_precision("cpu")
    assert list(df.set_index("arm").loc["baseline", "precision"]) == ["fp32", "fp32"]
    assert set(df[df["arm"] != "baseline"]["precision"]) == {auto}
    assert set(df[df["arm"] == "tuned_trainer"]["optim"]) == {bench.trainer_optim("cpu")[0]}
    ner = df[df["task"] == "NCBI-disease"].set_index("arm")["train_tokens_per_example"]
    assert ner["baseline"] == 512 and max(ner["tuned_trainer"], ner["blurblib"]) < 512
    # The work columns, counted from the batches each arm trained on: all arms trained the same real
    # tokens (so the same model FLOPs); the baseline computed the task's max length per example.
    for task, rows in df.groupby("task"):
        rows = rows.set_index("arm")
        assert (rows["real_tokens"] == round(4 * rows["mean_length"].iloc[0])).all(), task
        assert rows["train_flops"].nunique() == 1 and (rows["train_flops"] > 0).all()
        assert rows.loc["baseline", "computed_tokens"] == 4 * min(tasks.get(task).max_length, 512)
        assert (rows["computed_tokens"] == rows["train_tokens_per_example"] * 4).all()
        assert rows.loc["baseline", "padding_share"] > max(rows.loc["tuned_trainer", "padding_share"],
                                                           rows.loc["blurblib", "padding_share"])
        assert (rows["padding_share"] == 1 - rows["real_tokens"] / rows["computed_tokens"]).all()
        assert (rows["computed_flops"] >= rows["train_flops"]).all()
    assert np.allclose(df["train_flop_s"], df["train_flops"] / df["train_seconds"])
    assert np.allclose(df["mfu"], df["train_flop_s"] / df["peak_flop_s"])
    assert ((df["mfu"] > 0) & (df["mfu"] < 1)).all()
    peaks = bench.matmul_peaks("cpu", int(df["torch_threads"].iloc[0]))  # cached: the values the rows used
    assert (df["peak_flop_s"] == df["precision"].map(peaks)).all()
    summary = bench.throughput_summary(df).set_index("task")
    for col in ("train_ratio_median", "eval_ratio_median", "train_ratio_tuned_median", "eval_ratio_tuned_median",
                "train_ratio_tuned_min", "train_ratio_tuned_max"):
        assert (summary[col] > 0).all(), col
    assert list(summary.index) == ["BIOSSES", "NCBI-disease", "geometric mean"]
    for arm in ("baseline", "tuned_trainer", "blurblib"):
        for col in ("padding_share", "real_tokens", "computed_tokens", "gflop_s", "gflop_s_min", "gflop_s_max",
                    "peak_gflop_s", "mfu", "mfu_min", "mfu_max"):
            assert summary.loc[["BIOSSES", "NCBI-disease"], f"{arm}_{col}"].notna().all(), (arm, col)
    assert summary.loc["NCBI-disease", "baseline_mfu"] == pytest.approx(df.set_index(["task", "arm"]).loc[
        ("NCBI-disease", "baseline"), "mfu"])


def test_throughput_default_tasks_and_arms():
    assert bench.THROUGHPUT_TASKS == ("BIOSSES", "GAD", "NCBI-disease", "ChemProt", "HoC")
    with pytest.raises(ConfigError, match="unknown throughput arm"):
        bench.throughput(("GAD",), arms=("baseline", "nope"), log=None)


def _fake_memory(peaks_by_k, blocks=12, reps=10):
    rows = []
    for rep in range(reps):
        for k, peak in peaks_by_k.items():
            rows.append(dict(model="bert-base-shape", n_params=110e6, num_blocks=blocks, freeze_layers=k, rep=rep,
                             peak_mb=peak * (1 + 0.001 * rep * (k == 0))))
    return pd.DataFrame(rows)


def test_memory_claims_compare_k0_with_half_and_three_quarters():
    table = bench.claims(memory=_fake_memory({0: 4000.0, 3: 3500.0, 6: 2000.0, 9: 1900.0}))
    half, slimfit = table.iloc[0], table.iloc[1]
    assert "k=6" in half["claim"] and half["verdict"] == "holds"  # 2.0x >= 1.5x
    assert "k=9" in slimfit["claim"] and slimfit["verdict"] == "does not hold"  # 2.1x < SlimFit's 2.2x
    assert slimfit["observed"].startswith("2.11x")
    deep = bench.claims(memory=_fake_memory({0: 4000.0, 6: 2000.0, 9: 1500.0})).iloc[1]
    assert deep["verdict"] == "holds" and deep["n"] == 10
    low = bench.claims(memory=_fake_memory({0: 4000.0, 6: 3600.0, 9: 3500.0}))
    assert low.iloc[0]["verdict"] == "does not hold" and low.iloc[1]["verdict"] == "does not hold"


def test_score_cost_and_slimfit_budget():
    rows = []
    for seed in range(1, 6):
        for k, drop in ((0, 0.0), (3, 0.1 * seed)):
            rows.append(dict(task="BIOSSES", model="minilm-l6", seed=seed, freeze_layers=k, test_score=80.0 - drop))
    runs = pd.DataFrame(rows)
    cost = bench.score_cost(runs).set_index("freeze_layers")
    assert cost.loc[3, "change_vs_k0"] == pytest.approx(-0.3)
    assert cost.loc[3, "change_min"] == pytest.approx(-0.5)
    claim = efficiency._score_budget_claim(runs)[0]
    assert claim.n == 5 and claim.estimate == pytest.approx(0.1)
    assert claim.verdict in ("holds", "inconclusive")  # a +0.1 margin over 5 seeds, drops up to 0.5


def test_training_flops_of_bert_base():
    """Blocks per token; the pooler and the classifier read one [CLS] state per sequence."""
    net, _ = models.load("bert-base-shape", "GAD")
    blocks, head = 12 * (4 * 768 * 768 + 2 * 768 * 3072), 768 * 768 + 768 * 2
    assert bench.training_flops_per_step(net, 2, 16) == pytest.approx(
        6 * blocks * 32 + 6 * head * 2 + 12 * 12 * 16 * 16 * 768 * 2)


def test_peak_flops_table():
    assert bench.peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert bench.peak_flops("NVIDIA H100 PCIe") == 756e12
    assert bench.peak_flops("NVIDIA H200") == 989e12
    assert bench.peak_flops("some other card") is None


def test_gpu_step_runs_on_cpu_too():
    """The GPU benchmark's step (bf16 autocast, attention switch) on a CPU, so its code is exercised here."""
    row = bench.gpu_step_time("minilm-l6", "bf16-eager", seq_len=16, batch_size=2, steps=1, device="cpu", warmup=0)
    assert row["examples_per_s"] > 0 and row["tflops"] > 0 and math.isnan(row["fraction_of_peak"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path")
def test_gpu_efficiency_skips_without_cuda(capsys):
    assert bench.gpu_efficiency() is None
    assert "skipped: no CUDA device" in capsys.readouterr().out


def test_summary_markdown_from_saved_results(tmp_path):
    df = _fake_throughput({"GAD": 3.0})
    bench.save_benchmark("throughput", {"throughput": df, "summary": bench.throughput_summary(df)}, None,
                         dict(model="m", examples=8, batch_size=4, reps=3, device="cpu", baseline="b", blurblib="o"),
                         tmp_path)
    text = bench.write_summary(tmp_path).read_text()
    assert "| GAD |" in text and "3.03x (3.00–3.06)" in text
    assert "skipped: no CUDA device" in text
    assert (tmp_path / "throughput_summary.csv").is_file()
    assert "MFU" not in text  # saved before the work columns existed: no such section


def test_summary_markdown_shows_padding_and_mfu(tmp_path):
    df = _fake_throughput({"GAD": 3.0}, tuned={"GAD": 1.5}, work=True)
    summary = bench.throughput_summary(df)
    bench.save_benchmark("throughput", {"throughput": df, "summary": summary}, None,
                         dict(model="m", examples=8, batch_size=4, reps=3, device="cpu", baseline="b", blurblib="o",
                              tuned_trainer="t", matmul_peak_flop_s={"fp32": 100e9, "bf16": 100e9},
                              matmul_peak="best of 5 square matmuls of 2048"), tmp_path)
    assert {"baseline_mfu", "blurblib_padding_share", "tuned_trainer_gflop_s"} <= set(
        pd.read_csv(tmp_path / "throughput_summary.csv").columns)
    text = bench.write_summary(tmp_path).read_text()
    assert "Padding and model FLOPs utilisation (MFU)" in text and "12·L·H·ΣT²" in text
    assert "best of 5 square matmuls of 2048 (fp32 100.0 GFLOP/s, bf16 100.0 GFLOP/s)" in text
    # (a): 10 GFLOP/s of 100, padded 1280 tokens for 400 real; (c): 30.3 (30.0-30.6) GFLOP/s, 40 per example.
    assert "| GAD | (a) HF-example | fp32 | 400 / 1280 | 69% | 10.0 (10.0–10.0) | 10.0% (10.0–10.0) |" in text
    assert "| GAD | (c) blurblib | bf16 | 400 / 400 | 0% | 30.3 (30.0–30.6) | 30.3% (30.0–30.6) |" in text
