"""blurblib.bench: the measuring code behind `blurb bench` and notebook 06 (real MiniLM, tiny sizes)."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from blurblib import bench, encoding, models, tasks, train
from blurblib.bench import seeds, speed, verdicts
from blurblib.bench.__main__ import main as bench_main
from blurblib.errors import ConfigError, UnknownNameError


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


def test_padded_tokens_per_example_counts_batch_maxima():
    from datasets import Dataset

    assert speed._padded_tokens_per_example(Dataset.from_dict({"length": [7] * 10}), 4, seed=1) == pytest.approx(7.0)
    lengths = [10] * 50 + [30] * 50
    value = speed._padded_tokens_per_example(Dataset.from_dict({"length": lengths}), 4, seed=1)
    # Between no padding at all (the mean) and padding every batch to 30; grouping keeps it near the mean.
    assert np.mean(lengths) <= value < 30
    assert value < np.mean(lengths) + 2


def _fake_throughput(ratio_by_task, reps=3, base=10.0, tuned=None):
    """Rows as `bench.throughput` returns them; `tuned` (per task, blurblib / tuned Trainer) adds arm (b)."""
    rows = []
    for task, ratio in ratio_by_task.items():
        for rep in range(reps):
            jitter = 1 + 0.01 * rep
            arms = [("baseline", base, 128.0), ("blurblib", base * ratio * jitter, 40.0)]
            if tuned is not None:
                arms.insert(1, ("tuned_trainer", base * ratio * jitter / tuned[task], 40.0))
            for arm, ex_s, tokens in arms:
                rows.append(dict(task=task, rep=rep, arm=arm, train_examples_per_s=ex_s, eval_examples_per_s=2 * ex_s,
                                 train_tokens_per_example=tokens))
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
    assert ner["baseline"] == 512 and ner["tuned_trainer"] == ner["blurblib"] < 512
    summary = bench.throughput_summary(df).set_index("task")
    for col in ("train_ratio_median", "eval_ratio_median", "train_ratio_tuned_median", "eval_ratio_tuned_median",
                "train_ratio_tuned_min", "train_ratio_tuned_max"):
        assert (summary[col] > 0).all(), col
    assert list(summary.index) == ["BIOSSES", "NCBI-disease", "geometric mean"]


def test_throughput_default_tasks_and_arms():
    assert bench.THROUGHPUT_TASKS == ("BIOSSES", "GAD", "NCBI-disease", "ChemProt", "HoC")
    with pytest.raises(ConfigError, match="unknown throughput arm"):
        bench.throughput(("GAD",), arms=("baseline", "nope"), log=None)


def _fake_memory(peaks_by_k, blocks=12, reps=5):
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
    assert deep["verdict"] == "holds" and deep["n"] == 5
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
    claim = verdicts._score_budget_claim(runs)[0]
    assert claim.n == 5 and claim.estimate == pytest.approx(0.1)
    assert claim.verdict in ("holds", "inconclusive")  # a +0.1 margin over 5 seeds, drops up to 0.5


def test_training_flops_of_bert_base():
    net, _ = models.load("bert-base-shape", "GAD")
    dense = 12 * (4 * 768 * 768 + 2 * 768 * 3072) + 768 * 768 + 768 * 2
    assert bench.training_flops_per_step(net, 2, 16) == pytest.approx(6 * dense * 32 + 12 * 12 * 16 * 16 * 768 * 2)


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
