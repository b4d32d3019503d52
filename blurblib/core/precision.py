"""Training precision: fp32, or bf16 autocast where the hardware computes bf16 natively.

Weights and optimizer state stay fp32 (autocast only lowers the matmuls), so bf16 changes
the arithmetic of each step, not what is learned; CPUs with `avx512_bf16` or AMX and
recent GPUs run those matmuls ~1.7x faster. On a CPU without native bf16 the same autocast
is emulated and slower than fp32, so `auto` picks fp32 there.

A run asked for at `auto` is the same experiment at either precision (bf16 and fp32 agree
within seed noise: outputs/benchmarks/precision.csv), so a results store filled on a machine
with native bf16 serves one without it: `alternatives` lists what may stand in. Setting
`BLURB_NATIVE_BF16=0` makes `auto` behave as on a CPU without native bf16, whatever this one has.
"""
from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path

import torch

from .errors import ConfigError

PRECISIONS = ("fp32", "bf16")
_NATIVE_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
NATIVE_BF16_ENV = "BLURB_NATIVE_BF16"


def cpu_has_native_bf16() -> bool:
    """True when /proc/cpuinfo lists a bf16 matmul instruction set (Linux; elsewhere False) and
    torch's CPU kernels may use it, unless `BLURB_NATIVE_BF16=0` says to act as a CPU without one.

    `ATEN_CPU_CAPABILITY=avx2` (or `default`) restricts the kernels to a level below AVX-512, so
    bf16 is emulated there whatever the CPU has (and this torch's bf16 attention kernel fails under
    it on an AMX CPU: "pack_vnni2 is only supported when avx512 is supported")."""
    switch = os.environ.get(NATIVE_BF16_ENV, "").strip()
    if switch not in ("", "0", "1"):
        raise ConfigError(f"{NATIVE_BF16_ENV}={switch!r}: use 0 (act as a CPU without native bf16) or leave it unset")
    return switch != "0" and _cpuinfo_lists_bf16() and _kernels_use_avx512()


def _kernels_use_avx512() -> bool:
    """Whether torch dispatches its CPU kernels at AVX-512 (ATEN_CPU_CAPABILITY can lower it)."""
    return torch.backends.cpu.get_cpu_capability().upper().startswith("AVX512")


@functools.lru_cache(maxsize=None)
def _cpuinfo_lists_bf16() -> bool:
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


def alternatives(precision: str) -> tuple[str, ...]:
    """The precisions whose stored run may serve a run at `precision` resolved from `auto`:
    itself first, then the others."""
    return (precision, *(p for p in PRECISIONS if p != precision))


def autocast(device: str, precision: str):
    """The autocast context of a run's precision (a no-op context for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16)
