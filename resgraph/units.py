"""Human-readable numbers, shared by the summary table, the pictures and training logs."""

from __future__ import annotations


def si(value: float, spec: str = ".2f") -> str:
    """1234567 -> '1.23M' (decimal prefixes: parameter and operation counts)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:{spec}}{unit}"
    return f"{value:.0f}"


def binary_bytes(value: float, spec: str = ".2f") -> str:
    """3 * 2**30 -> '3.00 GiB' (binary prefixes: memory)."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{value / scale:{spec}} {unit}"
    return f"{value:.0f} B"
