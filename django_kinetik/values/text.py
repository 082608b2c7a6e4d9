"""Text every supported database stores unchanged, and the names and keys jobs carry.

PostgreSQL refuses NUL (``"\\x00"``) in text and JSON; a lone surrogate
(``"\\ud800"``, half of a UTF-16 pair) cannot be encoded as UTF-8, which every
driver sends. SQLite and MariaDB would store either, so the same job would be
accepted on one database and break another. Both are refused where a caller
gives them (job input), and escaped where the text only reports something
(an exception's message, a log line), so a failure is never lost to the
characters of its own message.

Names and keys are refused when longer than their column, never cut: a
truncated key would silently merge two keys that differ after the cut.
"""

from __future__ import annotations

from typing import Any

NUL = "\x00"

#: column lengths (``models/jobs.py``)
TASK_NAME_LENGTH = 200
TAG_LENGTH = 100
KEY_LENGTH = 200


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored on every database, or None if it can."""
    if NUL in text:
        return f"contains a NUL character (\\x00) at position {text.index(NUL)}"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"contains a lone surrogate ({text[error.start]!r}) at position {error.start}, which is not valid text"
    return None


def check_text(
    value: Any, *, what: str, max_length: int | None = None, reserved: str = "", longer: str = "use a shorter one"
) -> str:
    """``value`` if it is a storable string of at most ``max_length`` characters; ``TypeError``/``ValueError`` if not.

    ``reserved`` characters are refused too (task names may not hold ``:``);
    ``longer`` says what to do instead of a value that is too long.
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, not {type(value).__name__}")
    problem = unstorable(value)
    if problem is not None:
        raise ValueError(f"{what} {problem}; remove it")
    if max_length is not None and len(value) > max_length:
        raise ValueError(
            f"{what} is {len(value)} characters long; the most is {max_length} (it is never cut short): {longer}"
        )
    for char in reserved:
        if char in value:
            raise ValueError(f"{what} {_head(value)} contains {char!r}, which is reserved; use another separator")
    return value


def check_task_name(value: Any, *, what: str = "task") -> str:
    """A task name as a job stores it: non-empty, storable, at most 200 characters, no ``:``."""
    name = check_text(value, what=what, max_length=TASK_NAME_LENGTH, reserved=":")
    if not name.strip():
        raise ValueError(f"{what} must be a task's name, not an empty string")
    return name


def check_key(value: Any, *, what: str) -> str:
    """An explicit ``unique_key`` or ``limit_key``: storable, and no longer than its column."""
    return check_text(value, what=what, max_length=KEY_LENGTH, longer="use a shorter key, or a hash of it")


def storable(text: str) -> str:
    """``text`` with NUL and lone surrogates written as escapes, for messages that only report something."""
    if unstorable(text) is None:
        return text
    return text.replace(NUL, "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _head(value: str) -> str:
    return repr(value) if len(value) <= 60 else f"{value[:60]!r}..."
