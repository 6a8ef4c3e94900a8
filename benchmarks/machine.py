"""The machine a benchmark ran on, read from the machine itself, for the results files:
"2-core Intel(R) Xeon(R) Processor (x86_64), 23 GiB, no GPU"."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The processor's name as the kernel gives it, else what Python knows of it."""
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown processor"


def memory_gib() -> int | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    except (ValueError, OSError, AttributeError):
        return None


def gpu_name() -> str | None:
    """The first CUDA GPU's name, where torch is already imported and sees one."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return str(torch.cuda.get_device_name(0))
    return None


def describe() -> str:
    parts = [f"{os.cpu_count() or 1}-core {cpu_model()} ({platform.machine()})"]
    memory = memory_gib()
    if memory is not None:
        parts.append(f"{memory} GiB")
    parts.append(gpu_name() or "no GPU")
    return ", ".join(parts)


if __name__ == "__main__":
    print(describe())
