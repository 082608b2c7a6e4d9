"""How much memory this process uses, for ``--max-memory``."""

from __future__ import annotations

import os
import resource
import sys


def resident_memory() -> int:
    """Resident set size in bytes (current on Linux; the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def parse_memory(value: str) -> int:
    """``"512MB"``, ``"1.5GB"``, ``"800M"`` or a number of megabytes, as bytes."""
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    try:
        if text and text[-1] in units:
            amount = float(text[:-1]) * units[text[-1]]
        else:
            amount = float(text) * 2**20
    except ValueError:
        raise ValueError(f"memory size {value!r} is not understood; use for example 512MB or 2GB") from None
    if amount <= 0:
        raise ValueError(f"memory size must be positive: {value!r}")
    return int(amount)
