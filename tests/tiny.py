"""A tiny random BERT classifier, a random batch for it and its AdamW: what the SlimFit tests train."""
import torch
from transformers import AutoModelForSequenceClassification, BertConfig

from blurblib.training import optim, techniques


def tiny_bert(layers=4, hidden=64, vocab=300, positions=128, attention=None, seed=0):
    torch.manual_seed(seed)
    config = BertConfig(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=4, intermediate_size=4 * hidden,
                        vocab_size=vocab, max_position_embeddings=positions, num_labels=2)
    if attention:
        config._attn_implementation = attention
    return AutoModelForSequenceClassification.from_config(config).train()


def random_batch(n=8, length=64, vocab=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(5, vocab, (n, length), generator=g), "labels": torch.randint(0, 2, (n,), generator=g)}


def adamw(model, lr=1e-3):
    return optim.optimizer(techniques.standard_param_groups(model, lr, 0.01), lr)
