"""Task heads on top of an encoder: the paper's [CLS] head, mean pooling, and a bi-encoder.

(Work in progress: `mean_pool` is the shared pooling rule.)
"""
from __future__ import annotations

import torch


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token states that are not padding: how sentence encoders such as
    all-MiniLM-L6-v2 were trained to represent a text (their model cards say so)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
