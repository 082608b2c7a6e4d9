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
    """``"512MB"``, ``"1.5GiB"``, ``"800M"``, ``"4096B"`` (bytes) or a number of megabytes, as bytes."""
    text = value.strip().upper()
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    # A bare number is megabytes; a bare B is bytes ("512B" is not 512 MB).
    unit = 2**20
    if text.endswith("B"):
        text, unit = text[:-1], 1
    text = text.removesuffix("I")  # KiB, MiB, GiB
    try:
        if text and text[-1] in units:
            text, unit = text[:-1], units[text[-1]]
        amount = float(text) * unit
    except ValueError:
        raise ValueError(f"memory size {value!r} is not understood; use for example 512MB or 2GB") from None
    if amount <= 0:
        raise ValueError(f"memory size must be positive: {value!r}")
    return int(amount)
