"""Checks that job data, results and log data are JSON every supported database stores unchanged.

Job data is stored in a JSON column and read back by a worker that may run
different code on another host, so only JSON types are accepted: no pickle, no
silent ``str()`` of unknown objects. The same limits hold on every database,
so data accepted on SQLite in development is accepted on PostgreSQL or
MariaDB in production:

- no NUL and no lone surrogate in any string or key (PostgreSQL refuses both;
  see :mod:`.text`);
- at most :data:`MAX_DEPTH` levels of nesting (MariaDB's JSON columns refuse
  32; deeper data is almost always a bug, such as an object that holds itself);
- at most ``max_bytes`` of UTF-8 JSON (``KINETIK["MAX_DATA_BYTES"]``, 1 MiB by
  default), checked by the callers that know the setting.

The error names the offending path (``data['user']['joined']``) so the
caller can fix it at once; every error is a ``TypeError`` or ``ValueError``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .text import unstorable

_SCALARS = (int, bool, type(None))
#: how deeply data may nest; the data object itself is level 1
MAX_DEPTH = 30
#: the default of ``KINETIK["MAX_DATA_BYTES"]``
DEFAULT_MAX_BYTES = 1024 * 1024
#: what the walk counts for a number, true, false or null (a float's repr is at most 24 characters)
_NUMBER = 24
_BIG = 10**20
_MOST_BYTES_PER_CHARACTER = 6


def ensure_json_object(value: Any, *, what: str = "data", max_bytes: int | None = None) -> dict[str, Any]:
    """Return ``value`` as a JSON object (``None`` is ``{}``), or raise.

    A ``TypeError`` names a value of the wrong type; a ``ValueError`` names a
    value no database stores unchanged (NaN, infinity, NUL, a lone surrogate),
    nesting past :data:`MAX_DEPTH`, or data larger than ``max_bytes``.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(
            f"job {what} must be a JSON object (a dict), not {type(value).__name__}; "
            f"wrap it, for example {{'value': ...}}"
        )
    return ensure_json(value, what=what, max_bytes=max_bytes)


def ensure_json(value: Any, *, what: str = "value", max_bytes: int | None = None) -> Any:
    """Return a copy of ``value`` with tuples as lists, or raise naming the bad path."""
    tally = [0]
    copied = _copy(value, what, 1, tally)
    # The walk counts characters; as JSON a character takes at most 6 bytes
    # ("\u001f"), so only data that might be over the limit is serialised to
    # be measured exactly (creating a job stays cheap).
    if max_bytes is not None and tally[0] * _MOST_BYTES_PER_CHARACTER > max_bytes:
        size = json_size(copied)
        if size > max_bytes:
            raise ValueError(
                f"{what} is {size:,} bytes as JSON; the most is {max_bytes:,} (KINETIK['MAX_DATA_BYTES']): "
                f"store large content elsewhere (a file, a row of your own) and pass its id"
            )
    return copied


def json_size(value: Any) -> int:
    """The size in bytes of ``value`` as compact UTF-8 JSON (about what the database stores)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # Most data is ASCII, where characters are bytes; encode only when it is not.
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _copy(value: Any, path: str, depth: int, tally: list[int]) -> Any:
    if isinstance(value, str):
        tally[0] += len(value) + 2
        if value.isascii() and "\x00" not in value:
            return value
        return _text(value, path)
    if isinstance(value, _SCALARS):
        # A number's digits (an int past 64 bits is rare enough to be counted exactly).
        tally[0] += _NUMBER if value is None or -_BIG < value < _BIG else len(str(value))
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path} is {value!r}, which JSON cannot represent")
        tally[0] += _NUMBER
        return value
    if isinstance(value, (dict, list, tuple)) and depth > MAX_DEPTH:
        raise ValueError(
            f"{path} is nested more than {MAX_DEPTH} levels deep, the most every database stores; "
            f"flatten the data (or check it does not contain itself)"
        )
    tally[0] += 2
    if isinstance(value, dict):
        copied = {}
        for key, item in value.items():
            tally[0] += len(key) + 4 if isinstance(key, str) else 0
            if not isinstance(key, str):
                raise TypeError(
                    f"{path} has a key {key!r} of type {type(key).__name__}; JSON object keys must be strings"
                )
            if not key.isascii() or "\x00" in key:
                _text(key, f"{path} has a key that")
            copied[key] = _copy(item, f"{path}[{key!r}]", depth + 1, tally)
        return copied
    if isinstance(value, (list, tuple)):
        return [_copy(item, f"{path}[{index}]", depth + 1, tally) for index, item in enumerate(value)]
    kind = f"{type(value).__module__}.{type(value).__qualname__}".removeprefix("builtins.")
    hint = " (for example with .isoformat())" if hasattr(value, "isoformat") else ""
    raise TypeError(
        f"{path} is a {kind}, which is not JSON-serialisable; convert it to a string, number, list or dict first{hint}"
    )


def _text(value: str, path: str) -> str:
    problem = unstorable(value)
    if problem is not None:
        raise ValueError(f"{path} {problem}; no database stores it unchanged, so remove or encode it")
    return value
