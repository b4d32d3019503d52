"""Stabilisation techniques on the real pretrained MiniLM and on tiny BERT/ELECTRA/MPNet/RoBERTa."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    BertConfig,
    ElectraConfig,
    GPT2Config,
    MPNetConfig,
    RobertaConfig,
)

from blurblib.core.errors import ConfigError, UnknownNameError
from blurblib.encoders import models
from blurblib.training import techniques


@dataclass(frozen=True)
class Knobs:
    freeze_layers: int = 0
    reinit_layers: int = 0
    llrd_decay: float = 1.0
    mixout: float = 0.0
    lpft_epochs: int = 0


@pytest.fixture
def minilm():
    torch.manual_seed(0)
    model, _ = models.load("minilm-l6", "BIOSSES")
    return model


def _snapshot(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


TINY = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64, vocab_size=120,
            max_position_embeddings=64)
FAMILIES = {
    "BERT": lambda: BertConfig(**TINY),
    "ELECTRA": lambda: ElectraConfig(embedding_size=16, **TINY),  # exercises embeddings_project
    "MPNet": lambda: MPNetConfig(**TINY),  # exercises the shared relative_attention_bias
    "RoBERTa": lambda: RobertaConfig(**TINY),
}


def _tiny(family, head=AutoModelForSequenceClassification):
    torch.manual_seed(0)
    config = FAMILIES[family]()
    config.num_labels = 3
    return head.from_config(config)


# --- encoder_parts ------------------------------------------------------------------------

def test_encoder_parts_of_minilm(minilm):
    parts = techniques.encoder_parts(minilm)
    assert parts.num_blocks == 6 and parts.blocks[0] is minilm.bert.encoder.layer[0]
    assert parts.embeddings is minilm.bert.embeddings and parts.pooler is minilm.bert.pooler
    assert minilm.classifier in parts.head and parts.shared == ()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("head", [AutoModelForSequenceClassification, AutoModelForTokenClassification])
def test_encoder_parts_cover_every_parameter_once(family, head):
    model = _tiny(family, head)
    parts = techniques.encoder_parts(model)
    assert parts.num_blocks == 2
    owners = [parts.embeddings, *parts.shared, *parts.blocks, *parts.head] + ([parts.pooler] if parts.pooler else [])
    ids = [id(p) for m in owners for p in m.parameters()]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    shared_types = sorted(type(m).__name__ for m in parts.shared)
    assert shared_types == {"BERT": [], "ELECTRA": ["Linear"], "MPNet": ["Embedding"], "RoBERTa": []}[family]


def test_an_unsupported_architecture_is_named():
    model = AutoModelForSequenceClassification.from_config(GPT2Config(n_layer=2, n_embd=32, n_head=2, pad_token_id=0))
    for call in (lambda: techniques.encoder_parts(model), lambda: techniques.freeze_lower(model, 1),
                 lambda: techniques.reinit_top(model, 1), lambda: techniques.llrd_param_groups(model, 1e-3, 0.9, 0.0),
                 lambda: techniques.apply_mixout(model, 0.1), lambda: techniques.prepare(model, Knobs(reinit_layers=1))):
        with pytest.raises(ConfigError, match=r"GPT2ForSequenceClassification \(model_type 'gpt2'\).*'standard'"):
            call()
    assert techniques.prepare(model, Knobs()) == {"reinit_params": 0, "mixout_layers": 0, "frozen_params": 0}
    groups = techniques.param_groups(model, Knobs(), 1e-3, 0.01)  # plain fine-tuning works on anything
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


# --- freeze_lower ---------------------------------------------------------------------------

def test_freeze_lower_freezes_exactly_embeddings_and_bottom_blocks(minilm):
    frozen = techniques.freeze_lower(minilm, 2)
    expected = {n for n, _ in minilm.named_parameters()
                if n.startswith(("bert.embeddings.", "bert.encoder.layer.0.", "bert.encoder.layer.1."))}
    assert set(frozen) == expected and len(expected) == 5 + 2 * 16
    assert {n for n, p in minilm.named_parameters() if not p.requires_grad} == expected


def test_freeze_lower_can_leave_the_embeddings_trainable(minilm):
    frozen = techniques.freeze_lower(minilm, 6, embeddings=False)
    assert len(frozen) == 6 * 16 and minilm.bert.embeddings.word_embeddings.weight.requires_grad
    assert minilm.bert.pooler.dense.weight.requires_grad and minilm.classifier.weight.requires_grad


@pytest.mark.parametrize("k", [-1, 7, 1.5])
def test_freeze_lower_rejects_impossible_counts(minilm, k):
    with pytest.raises(ConfigError, match="from 0 to 6"):
        techniques.freeze_lower(minilm, k)


def test_frozen_parameters_get_no_gradient(minilm):
    techniques.freeze_lower(minilm, 3)
    out = minilm(input_ids=torch.tensor([[101, 7570, 102]]), labels=torch.tensor([0.5]))
    out.loss.backward()
    assert minilm.bert.encoder.layer[2].output.dense.weight.grad is None
    assert minilm.bert.encoder.layer[3].output.dense.weight.grad.abs().sum() > 0


# --- reinit_top -----------------------------------------------------------------------------

def test_reinit_top_redraws_top_blocks_and_pooler_only(minilm):
    before = _snapshot(minilm)
    changed_names = techniques.reinit_top(minilm, 2, generator=7)
    top = ("bert.encoder.layer.4.", "bert.encoder.layer.5.", "bert.pooler.")
    assert set(changed_names) == {n for n in before if n.startswith(top)}
    for name, param in minilm.named_parameters():
        if name.startswith(top) and name.endswith("bias"):
            assert not param.any(), name
        elif name.startswith(top) and "LayerNorm" in name:
            assert torch.equal(param, torch.ones_like(param)) and not torch.equal(param, before[name]), name
        elif name.startswith(top):
            assert not torch.equal(param, before[name]), f"{name} was not re-drawn"
        else:
            assert torch.equal(param, before[name]), f"{name} changed"  # bit-identical
    assert before["bert.encoder.layer.5.attention.self.query.bias"].any()  # the pretrained bias was not 0
    block = minilm.bert.encoder.layer[5]
    assert torch.equal(block.output.LayerNorm.weight, torch.ones(384))
    assert torch.equal(block.output.LayerNorm.bias, torch.zeros(384))
    assert torch.equal(block.attention.self.query.bias, torch.zeros(384))
    std = block.intermediate.dense.weight.std().item()
    assert abs(std - minilm.config.initializer_range) < 0.001  # N(0, 0.02), 590k draws
    assert abs(block.intermediate.dense.weight.mean().item()) < 0.001


def test_reinit_top_is_reproducible_from_a_seed_and_keeps_the_pooler_when_asked():
    draws = []
    for seed in (3, 3, 4):
        torch.manual_seed(0)
        model, _ = models.load("minilm-l6", "GAD")
        pooler_before = model.bert.pooler.dense.weight.clone()
        techniques.reinit_top(model, 1, pooler=False, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(model.bert.pooler.dense.weight, pooler_before)
        draws.append(model.bert.encoder.layer[5].attention.output.dense.weight.clone())
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])


def test_reinit_zero_layers_with_pooler_only_touches_the_pooler(minilm):
    assert {n.split(".")[1] for n in techniques.reinit_top(minilm, 0, generator=1)} == {"pooler"}


# --- LLRD -----------------------------------------------------------------------------------

def test_llrd_learning_rates_are_exact_per_layer(minilm):
    lr, decay = 1e-3, 0.5
    groups = techniques.llrd_param_groups(minilm, lr, decay, weight_decay=0.01)
    lr_of = {n: g["lr"] for g in groups for n in g["param_names"]}
    assert set(lr_of) == {n for n, _ in minilm.named_parameters()}  # everyone, exactly once
    assert sum(len(g["params"]) for g in groups) == len(lr_of)
    assert lr_of["bert.embeddings.word_embeddings.weight"] == lr * 0.5 ** 7
    for i in range(6):
        assert lr_of[f"bert.encoder.layer.{i}.attention.self.query.weight"] == lr * 0.5 ** (6 - i)
    assert lr_of["bert.encoder.layer.5.output.dense.weight"] == 5e-4
    assert lr_of["bert.pooler.dense.weight"] == lr_of["classifier.weight"] == lr
    assert [g["name"] for g in groups][:3] == ["embeddings/decay", "embeddings/no_decay", "block_0/decay"]


def test_llrd_no_weight_decay_on_biases_and_layernorm(minilm):
    groups = techniques.llrd_param_groups(minilm, 1e-3, 0.9, weight_decay=0.01)
    wd_of = {n: g["weight_decay"] for g in groups for n in g["param_names"]}
    for name, wd in wd_of.items():
        no_decay = name.endswith(".bias") or "LayerNorm" in name
        assert wd == (0.0 if no_decay else 0.01), name
    assert wd_of["bert.embeddings.LayerNorm.weight"] == 0.0 and wd_of["classifier.weight"] == 0.01


def test_llrd_skips_frozen_parameters_and_drives_adamw(minilm):
    techniques.freeze_lower(minilm, 2)
    groups = techniques.llrd_param_groups(minilm, 2e-5, 0.9, 0.01)
    names = [n for g in groups for n in g["param_names"]]
    assert not any(n.startswith(("bert.embeddings", "bert.encoder.layer.0.", "bert.encoder.layer.1.")) for n in names)
    assert groups[0]["name"] == "block_2/decay" and groups[0]["lr"] == pytest.approx(2e-5 * 0.9 ** 4)
    optimizer = torch.optim.AdamW(groups, lr=2e-5)
    minilm(input_ids=torch.tensor([[101, 7570, 102]]), labels=torch.tensor([0.5])).loss.backward()
    optimizer.step()


@pytest.mark.parametrize("decay", [0.0, 1.2])
def test_llrd_rejects_a_decay_outside_0_1(minilm, decay):
    with pytest.raises(ConfigError, match=r"llrd_decay must be in \(0, 1\]"):
        techniques.llrd_param_groups(minilm, 1e-3, decay, 0.0)


# --- mixout ---------------------------------------------------------------------------------

def test_mixout_p0_is_an_exact_identity(minilm):
    ids = torch.tensor([[101, 7570, 2003, 1037, 3231, 102]])
    minilm.train()
    torch.manual_seed(1)
    before = minilm(input_ids=ids).logits
    state_keys = set(minilm.state_dict())
    assert techniques.apply_mixout(minilm, 0.0) == 6 * 6  # q, k, v, attn-out, ffn-in, ffn-out per block
    torch.manual_seed(1)
    assert torch.equal(minilm(input_ids=ids).logits, before)
    assert set(minilm.state_dict()) == state_keys  # checkpoints stay loadable without mixout


def test_mixout_mixes_toward_the_target_and_keeps_the_expectation():
    torch.manual_seed(0)
    linear = torch.nn.Linear(4, 3)
    mix = techniques.MixLinear.from_linear(linear, p=0.5)
    assert mix.weight is linear.weight  # same Parameter: optimizer and freezing carry over
    with torch.no_grad():
        linear.weight.add_(1.0)  # training has moved W away from the target
    eye = torch.eye(4)
    draws = torch.stack([mix(eye) - mix.bias for _ in range(4000)])  # rows = mixed weight columns
    w, t = linear.weight.detach().T, mix.target.T
    assert torch.allclose(draws.mean(0), w, atol=0.05)  # E[mixed] = W
    # each entry is either (W - p*T)/(1-p) (kept) or T (mixed in): exactly two values
    kept, mixed_in = (w - 0.5 * t) / 0.5, t
    assert torch.all(torch.isclose(draws, kept) | torch.isclose(draws, mixed_in))
    mix.eval()
    assert torch.equal(mix(eye), linear(eye))


def test_mixout_rejects_p_of_one(minilm):
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        techniques.apply_mixout(minilm, 1.0)


# --- all four families --------------------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
def test_every_technique_works_on_each_family(family):
    model = _tiny(family)
    before = _snapshot(model)
    parts = techniques.encoder_parts(model)
    block0 = {n for n, p in model.named_parameters() if any(p is q for q in parts.blocks[0].parameters())}
    block1 = {n for n, p in model.named_parameters() if any(p is q for q in parts.blocks[1].parameters())}

    changed = set(techniques.reinit_top(model, 1, generator=0))
    assert block1 <= changed and not changed & block0
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters() if n in block0)

    frozen = set(techniques.freeze_lower(model, 1))
    assert block0 <= frozen and not frozen & block1
    shared = {n for n, p in model.named_parameters() for m in parts.shared if any(p is q for q in m.parameters())}
    assert shared <= frozen  # ELECTRA's projection, MPNet's position bias: frozen with the embeddings

    assert techniques.apply_mixout(model, 0.2) == {"BERT": 12, "ELECTRA": 12, "MPNet": 12, "RoBERTa": 12}[family]
    groups = techniques.llrd_param_groups(model, 1e-3, 0.5, 0.01)
    lrs = {g["name"].split("/")[0]: g["lr"] for g in groups}
    assert lrs == {"block_1": 5e-4, "head": 1e-3}  # embeddings and block 0 frozen
    model.train()
    out = model(input_ids=torch.randint(5, 120, (2, 7)), labels=torch.tensor([0, 2]))
    out.loss.backward()
    assert all(p.grad is not None for g in groups for p in g["params"])


# --- the registry and the run-config entry points -------------------------------------------

def test_registry_entries_and_knobs():
    assert techniques.names() == ["standard", "freeze", "llrd", "reinit", "mixout", "lpft", "slimfit"]
    for t in techniques.TECHNIQUES.values():
        if t.knob is None:
            assert t.name == "standard"
            continue
        assert t.knob in techniques.neutral_knobs() and t.default in t.sweep and t.default != t.neutral
        assert t.description and t.reference
    with pytest.raises(UnknownNameError, match="known techniques: standard, freeze"):
        techniques.get("dropout")


def test_the_compute_matched_control_gives_standard_the_extra_epochs():
    from blurblib.training.config import RunConfig, compute_matched_control, control_label

    lpft = RunConfig(task="NCBI-disease", epochs=4, lpft_epochs=3, train_limit=300, seed=7)
    control = compute_matched_control(lpft)
    assert control.technique == "standard" and control.epochs == 7 and control.lpft_epochs == 0
    assert (control.train_limit, control.seed, control.lr) == (300, 7, lpft.lr)  # the same run otherwise
    assert control_label(lpft) == "standard +3 epochs"
    with_freeze = RunConfig(task="NCBI-disease", lpft_epochs=2, freeze_layers=3)
    assert compute_matched_control(with_freeze).technique == "freeze3" and control_label(with_freeze) == "freeze3 +2 epochs"
    assert compute_matched_control(RunConfig(task="GAD", reinit_layers=1)) is None  # adds no epochs, needs no control
    assert control_label(control) is None


def test_prepare_composes_reinit_mixout_and_freeze(minilm):
    before = _snapshot(minilm)
    done = techniques.prepare(minilm, Knobs(freeze_layers=2, reinit_layers=1, mixout=0.1), generator=5)
    assert done == {"reinit_params": 16 + 2, "mixout_layers": 36, "frozen_params": 5 + 32}
    assert not torch.equal(minilm.bert.encoder.layer[5].output.dense.weight,
                           before["bert.encoder.layer.5.output.dense.weight"])
    assert isinstance(minilm.bert.encoder.layer[5].output.dense, techniques.MixLinear)
    # mixout targets are the weights training starts from, re-drawn ones included
    assert torch.equal(minilm.bert.encoder.layer[5].output.dense.target,
                       minilm.bert.encoder.layer[5].output.dense.weight)
    assert not minilm.bert.encoder.layer[1].output.dense.weight.requires_grad


def test_prepare_refuses_frozen_blocks_that_were_reinitialised(minilm):
    with pytest.raises(ConfigError, match="freeze_layers=4 and reinit_layers=3 overlap"):
        techniques.prepare(minilm, Knobs(freeze_layers=4, reinit_layers=3))


def test_prepare_needs_the_technique_fields():
    @dataclass
    class Partial:
        freeze_layers: int = 0

    with pytest.raises(ConfigError, match="reinit_layers"):
        techniques.prepare(torch.nn.Linear(2, 2), Partial())


def test_param_groups_pick_llrd_only_when_decay_is_below_one(minilm):
    standard = techniques.param_groups(minilm, Knobs(), 3e-5, 0.01)
    assert [g["name"] for g in standard] == ["all/decay", "all/no_decay"]
    assert {g["lr"] for g in standard} == {3e-5}
    assert sum(len(g["params"]) for g in standard) == len(list(minilm.parameters()))
    llrd = techniques.param_groups(minilm, Knobs(llrd_decay=0.9), 3e-5, 0.01)
    assert len({g["lr"] for g in llrd}) == 8  # embeddings, 6 blocks, head
