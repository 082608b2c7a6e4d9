"""Checks that job data, results and log data are plain JSON.

Job data is stored in a JSON column and read back by a worker that may run
different code on another host, so only JSON types are accepted: no pickle, no
silent ``str()`` of unknown objects. The error names the offending path
(``data['user']['joined']``) so the caller can fix it at once.
"""

from __future__ import annotations

import math
from typing import Any

_SCALARS = (str, int, bool, type(None))


def ensure_json_object(value: Any, *, what: str = "data") -> dict[str, Any]:
    """Return ``value`` as a JSON object (``None`` is ``{}``), or raise.

    A ``TypeError`` names a value of the wrong type; a ``ValueError`` names a
    value JSON cannot hold (NaN, infinity).
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(
            f"job {what} must be a JSON object (a dict), not {type(value).__name__}; "
            f"wrap it, for example {{'value': ...}}"
        )
    return ensure_json(value, what=what)


def ensure_json(value: Any, *, what: str = "value") -> Any:
    """Return a copy of ``value`` with tuples as lists, or raise naming the bad path."""
    return _copy(value, what)


def _copy(value: Any, path: str) -> Any:
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path} is {value!r}, which JSON cannot represent")
        return value
    if isinstance(value, dict):
        copied = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{path} has a key {key!r} of type {type(key).__name__}; JSON object keys must be strings"
                )
            copied[key] = _copy(item, f"{path}[{key!r}]")
        return copied
    if isinstance(value, (list, tuple)):
        return [_copy(item, f"{path}[{index}]") for index, item in enumerate(value)]
    kind = f"{type(value).__module__}.{type(value).__qualname__}".removeprefix("builtins.")
    hint = " (for example with .isoformat())" if hasattr(value, "isoformat") else ""
    raise TypeError(
        f"{path} is a {kind}, which is not JSON-serialisable; convert it to a string, number, list or dict first{hint}"
    )
