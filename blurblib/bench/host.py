"""Where a figure was measured: a speed or memory number means little without its machine."""
from __future__ import annotations

import contextlib
import os
import platform

import torch


def machine() -> dict:
    """CPU model and cores, torch threads and version, the GPU if any, and the load average."""
    info = {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version()}
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    with contextlib.suppress(OSError, AttributeError):
        info["load_average_1min"] = round(os.getloadavg()[0], 2)  # other work on a shared machine
    return info


def machine_label() -> str:
    m = machine()
    gpu = f", GPU {m['gpu']}" if "gpu" in m else ""
    return f"{m['cpu_count']}-core CPU ({m['cpu']}), torch {m['torch']} with {m['torch_threads']} threads{gpu}"


def sync(device: str) -> None:
    """Wait for queued GPU work, so a timer around it measures the work, not its launch."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
