"""Plain-text tables for the management commands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns; numbers right-aligned."""
    cells = [[str(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=False)]

    def line(values: Sequence[str], raw: Sequence[Any] | None = None) -> str:
        parts = []
        for index, (value, width) in enumerate(zip(values, widths, strict=False)):
            numeric = raw is not None and isinstance(raw[index], (int, float))
            parts.append(value.rjust(width) if numeric else value.ljust(width))
        return "  ".join(parts).rstrip()

    output = [line(headers), line(["-" * width for width in widths])]
    output += [line(cell_row, raw_row) for cell_row, raw_row in zip(cells, rows, strict=True)]
    return "\n".join(output)
