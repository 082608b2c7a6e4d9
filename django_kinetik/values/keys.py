"""Unique tasks: the ``unique=`` task option and the job key it computes.

A unique task's jobs get a ``unique_key`` built from the task name and the
job's data, so while one job with that key is queued, delayed or active,
``create()`` returns it instead of adding another (the same mechanism as
``create(unique_key=...)``, which wins when given).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from .text import KEY_LENGTH, check_key, check_text

#: ``True`` (the whole data), a tuple of data keys, or a function ``data -> str | None``
Unique = bool | tuple[str, ...] | Callable[[Mapping[str, Any]], str | None]

#: the length of ``Job.unique_key``
MAX_KEY_LENGTH = KEY_LENGTH
# A longer key keeps a readable head and ends with a hash of the whole key.
_HEAD = MAX_KEY_LENGTH - 1 - 64

_WHAT_TO_USE = (
    "use True (the whole data), a tuple of data keys such as ('customer_id',), "
    "or a function taking the data and returning a key (a string) or None"
)


def parse_unique(value: Any) -> Unique:
    """Validate a ``unique=`` option; lists of keys become tuples."""
    if isinstance(value, bool):
        return value
    return parse_key_source(value, option="unique", forms=_WHAT_TO_USE)


def parse_key_source(value: Any, *, option: str, forms: str) -> Any:
    """Where an option takes a key from: a tuple of data keys (lists become tuples) or a function.

    Shared by ``unique=`` and ``limit_by=``; ``forms`` (what to use instead) ends every error.
    """
    if isinstance(value, (tuple, list)):
        if not value:
            raise ValueError(f"{option} needs at least one data key; {forms}")
        for key in value:
            if not isinstance(key, str) or not key:
                raise TypeError(f"{option} data keys must be non-empty strings, not {key!r}; {forms}")
        return tuple(value)
    if callable(value):
        return value
    raise TypeError(f"{option} cannot be {type(value).__name__}; {forms}")


def parse_unique_key(value: Any) -> str:
    """An explicit ``create(unique_key=...)``: a storable string that fits its column (never cut)."""
    return check_key(value, what="unique_key")


def canonical_json(value: Any) -> str:
    """The same text for equal data, whatever the order of its keys."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def unique_key_for(task: str, unique: Unique, data: Mapping[str, Any]) -> str | None:
    """The ``unique_key`` of a job of ``task`` with ``data``, or None if it is not unique."""
    if unique is False:
        return None
    if unique is True:
        part = hashlib.sha256(canonical_json(data).encode()).hexdigest()
    elif isinstance(unique, tuple):
        missing = [key for key in unique if key not in data]
        if missing:
            raise ValueError(
                f"create({task!r}): the task is unique by {', '.join(unique)}, "
                f"but the data has no {', '.join(map(repr, missing))}"
            )
        part = canonical_json({key: data[key] for key in unique})
    else:
        result = unique(data)
        if result is None:
            return None
        if not isinstance(result, str):
            raise TypeError(
                f"create({task!r}): the task's unique function must return a string or None, "
                f"not {type(result).__name__}"
            )
        part = check_text(result, what=f"create({task!r}): the key the task's unique function returned")
    return fit(f"{task}:{part}")


def fit(key: str) -> str:
    """``key`` itself if it fits the column, else its head and a hash of all of it."""
    if len(key) <= MAX_KEY_LENGTH:
        return key
    return f"{key[:_HEAD]}#{hashlib.sha256(key.encode()).hexdigest()}"
