"""The kind of machine a run trained on: what decides whether two runs may be paired.

The same config and seed trained in bf16 and in fp32, or on CPUs whose kernels round
differently, differ by as much as two seeds do (NCBI-disease: sd 2.0 points across precisions
against 1.1 across seeds). A paired comparison therefore pairs only runs of the same kind of
machine and precision; a run record names its machine (`describe`) so that can be checked.
"""
from __future__ import annotations

import contextlib
import functools
import platform
from pathlib import Path

from . import precision

UNRECORDED = "unrecorded"


@functools.lru_cache(maxsize=None)
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe(device: str = "cpu") -> dict:
    """CPU model, torch's kernel path, whether bf16 is native, the GPU if the run used one, and
    `kind`: the string two runs must share to be paired."""
    import torch

    info = {"cpu": cpu_model(), "kernels": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": precision.cpu_has_native_bf16()}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    info["kind"] = kind(info)
    return info


def kind(info: dict | None) -> str:
    """`AMD EPYC | AVX512 | bf16 native`, or the GPU's name: what must match for a fair pair."""
    if not info:
        return UNRECORDED
    if info.get("gpu"):
        return str(info["gpu"])
    bf16 = "bf16 native" if info.get("native_bf16") else "bf16 emulated"
    return f"{info.get('cpu', '?')} | {info.get('kernels', '?')} | {bf16}"
