"""Task heads on top of an encoder: how a pretrained encoder is turned into a task model.

How a model was pretrained decides which fine-tuning formulation works:

* `cls`       - the paper's head: the [CLS] state (through BERT's pooler) -> linear; a sentence
                pair is one cross-encoded input. Right for MLM-pretrained BERTs (PubMedBERT...).
* `mean`      - mean-pooled token states -> linear; pairs cross-encoded. The pooling that
                sentence encoders (all-MiniLM-L6-v2, all-mpnet-base-v2) were trained with.
* `biencoder` - similarity only: each sentence encoded alone, mean-pooled, scored by the cosine
                of the two vectors (scaled to the label range), trained with MSE: how sentence
                encoders are fine-tuned for STS, and at step 0 exactly their zero-shot cosine.
* `token`     - NER/PICO: a linear layer on every token state (the only head for token tasks).

`cls` and `token` are the stock `transformers` classes; `mean` and `biencoder` are the two small
modules below. All of them expose `base_model` (the encoder) and return `.loss` / `.logits`,
so training, evaluation and every stabilisation technique treat them alike.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from transformers.modeling_outputs import SequenceClassifierOutput

from ..core.errors import ConfigError

HEADS = ("cls", "mean", "biencoder", "token")


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token states that are not padding: how sentence encoders such as
    all-MiniLM-L6-v2 were trained to represent a text (their model cards say so)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def check(head: str, head_kind: str, task: str) -> None:
    """Refuse a head that does not fit the task, naming the heads that do."""
    allowed = {"token_classification": ("token",), "regression": ("cls", "mean", "biencoder")}.get(head_kind, ("cls", "mean"))
    if head not in allowed:
        raise ConfigError(f"head {head!r} does not fit {task} ({head_kind}); use one of {', '.join(allowed)}")


class _EncoderHead(nn.Module):
    """An encoder under the name `encoder`, shown to techniques as `base_model` like an HF model."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder_model = encoder
        self.config = encoder.config

    @property
    def base_model(self) -> nn.Module:
        return self.encoder_model

    def _pooled(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        kwargs = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.encoder_model(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        return mean_pool(hidden, attention_mask)


class MeanPoolClassifier(_EncoderHead):
    """Mean-pooled token states -> dropout -> linear, with the loss of the task's problem type
    (cross-entropy, BCE for multi-label, MSE for regression), as HF's sequence heads do."""

    def __init__(self, encoder: nn.Module, num_labels: int, problem_type: str):
        super().__init__(encoder)
        self.problem_type = problem_type
        self.dropout = nn.Dropout(getattr(encoder.config, "hidden_dropout_prob", 0.1))
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)
        std = getattr(encoder.config, "initializer_range", 0.02)
        nn.init.normal_(self.classifier.weight, std=std)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, input_ids, attention_mask, token_type_ids=None, labels=None) -> SequenceClassifierOutput:
        logits = self.classifier(self.dropout(self._pooled(input_ids, attention_mask, token_type_ids)))
        loss = None if labels is None else _loss(self.problem_type, logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


class BiEncoderSimilarity(_EncoderHead):
    """cos(mean-pool(a), mean-pool(b)) mapped onto the label range [low, high]; MSE on that
    scale normalised to [0, 1] (sentence-transformers' CosineSimilarityLoss). No new weights:
    before any training its predictions are the encoder's zero-shot cosine."""

    def __init__(self, encoder: nn.Module, label_range: tuple[float, float]):
        super().__init__(encoder)
        self.low, self.high = map(float, label_range)

    def forward(self, input_ids_a, attention_mask_a, input_ids_b, attention_mask_b, labels=None) -> SequenceClassifierOutput:
        cosine = F.cosine_similarity(self._pooled(input_ids_a, attention_mask_a),
                                     self._pooled(input_ids_b, attention_mask_b), dim=-1).float()
        loss = None
        if labels is not None:
            loss = F.mse_loss(cosine, (labels.float() - self.low) / (self.high - self.low))
        return SequenceClassifierOutput(loss=loss, logits=(self.low + (self.high - self.low) * cosine).unsqueeze(-1))


def _loss(problem_type: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if problem_type == "regression":
        return F.mse_loss(logits.squeeze(-1).float(), labels.float())
    if problem_type == "multi_label_classification":
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
    return F.cross_entropy(logits.float(), labels)


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters outside the encoder (what a linear probe trains)."""
    encoder = {id(p) for p in model.base_model.parameters()}
    return [p for p in model.parameters() if id(p) not in encoder]
