"""Training precision: fp32, or bf16 autocast where the hardware computes bf16 natively.

Weights and optimizer state stay fp32 (autocast only lowers the matmuls), so bf16 changes
the arithmetic of each step, not what is learned; CPUs with `avx512_bf16` or AMX and
recent GPUs run those matmuls ~1.7x faster. On a CPU without native bf16 the same autocast
is emulated and slower than fp32, so `auto` picks fp32 there.
"""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

from .errors import ConfigError

PRECISIONS = ("fp32", "bf16")
_NATIVE_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """True when /proc/cpuinfo lists a bf16 matmul instruction set (Linux; elsewhere False)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in _NATIVE_CPU_FLAGS)


def resolve(precision: str, device: str = "cpu") -> str:
    """`auto` -> `bf16` where `device` computes it natively, else `fp32`; other values pass through."""
    if precision == "auto":
        if device.startswith("cuda"):
            return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)} or auto")
    return precision


def autocast(device: str, precision: str):
    """The autocast context of a run's precision (a no-op context for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16)
