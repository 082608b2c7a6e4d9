"""One event in a job's life, and how events travel.

In memory, between the hooks and the publisher, an event is a *record*: a
list ``[kind, job_id, task, tag, status, at, attempt, extra]`` (``at`` in
Unix milliseconds, ``extra`` a dict of the kind's own fields, or None).

On the wire a message is a JSON array of runs: consecutive events sharing
kind, task, tag and status are sent once as ``[kind, task, tag, status,
[[job_id, at, attempt, extra], ...]]``. A busy worker publishes tens of
thousands of events a second, mostly long runs of "started" and "completed"
of one task: this halves the bytes and the encoding time of one array per
event, and keeps the events' order. Messages stay under the transport's size
limit (PostgreSQL's NOTIFY takes under 8000 bytes): a batch is split, and an
event too big on its own loses its ``data`` and has long text cut
(``truncated`` says so; the job's row and log keep everything).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger("django_kinetik.feed")

#: every kind of event, in the order they happen in a job's life
KINDS = (
    "created",
    "started",
    "progress",
    "log",
    "retrying",
    "completed",
    "failed",
    "timeout",
    "cancelled",
)
#: kinds that end a job (until someone retries it by hand)
FINAL_KINDS = frozenset({"completed", "failed", "timeout", "cancelled"})

#: longest log message or error an event carries (the row has all of it)
TEXT_LIMIT = 2000

#: what a publisher hands on: the wire array, built on the hot path with no encoding
Record = list[Any]

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Something that happened to a job.

    Every event has ``kind`` (one of :data:`KINDS`), ``job_id``, ``task``,
    ``tag``, ``status`` (the job's status after the event), ``at`` (when, UTC)
    and ``attempt``. The rest belong to some kinds: ``current`` and ``total``
    (progress), ``message`` and ``log_id`` (log), ``data`` (the JSON given to
    ``job.log`` or ``job.progress``), ``error`` and ``error_code`` (failed,
    timeout, retrying) and ``run_at`` (retrying: when it runs again).
    """

    kind: str
    job_id: int
    task: str
    tag: str
    status: str
    at: datetime
    attempt: int = 0
    current: float | None = None
    total: float | None = None
    message: str | None = None
    log_id: int | None = None
    data: Any = None
    error: str | None = None
    error_code: str | None = None
    run_at: datetime | None = None
    #: the transport's size limit cut ``data`` or long text from this event
    truncated: bool = False

    @property
    def finished(self) -> bool:
        """Whether this event ends the job (completed, failed, timed out or cancelled)."""
        return self.kind in FINAL_KINDS

    @classmethod
    def from_record(cls, record: Record) -> Event:
        kind, job_id, task, tag, status, at, attempt, extra = record
        fields: dict[str, Any] = dict(extra) if extra else {}
        if fields.get("run_at") is not None:
            fields["run_at"] = datetime.fromtimestamp(fields["run_at"] / 1000, UTC)
        return cls(
            kind=kind,
            job_id=job_id,
            task=task,
            tag=tag,
            status=status,
            at=datetime.fromtimestamp(at / 1000, UTC),
            attempt=attempt,
            **fields,
        )

    def as_json(self) -> dict[str, Any]:
        """A JSON object with the fields this event has (what the SSE endpoint sends)."""
        values: dict[str, Any] = {
            "kind": self.kind,
            "job_id": self.job_id,
            "task": self.task,
            "tag": self.tag,
            "status": self.status,
            "at": self.at.isoformat(),
            "attempt": self.attempt,
        }
        for name in ("current", "total", "message", "log_id", "data", "error", "error_code"):
            value = getattr(self, name)
            if value is not None:
                values[name] = value
        if self.run_at is not None:
            values["run_at"] = self.run_at.isoformat()
        if self.truncated:
            values["truncated"] = True
        return values


def cut(text: str) -> str:
    """Long text shortened for an event."""
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"


def encode(records: list[Record], limit: int) -> Iterator[str]:
    """Messages of at most ``limit`` bytes holding ``records``, in order.

    Each message is encoded in one call (far cheaper than one per event),
    sized from what the first few events weigh; a message that still comes
    out too big is split in two and tried again.
    """
    if not records:
        return
    sample = records[:32]
    per_record = len(_encode(_runs(sample))) / len(sample)
    size = max(1, int(limit * 0.9 / per_record))
    for start in range(0, len(records), size):
        yield from _fitted(records[start : start + size], limit)


def _fitted(records: list[Record], limit: int) -> Iterator[str]:
    text = _encode(_runs(records))  # ASCII only (ensure_ascii), so characters are bytes
    if len(text) <= limit:
        yield text
    elif len(records) > 1:
        half = len(records) // 2
        yield from _fitted(records[:half], limit)
        yield from _fitted(records[half:], limit)
    else:
        text = _encode(_runs([_shrunk(records[0], limit)]))
        if len(text) <= limit:
            yield text
        else:
            logger.warning("A %s event of job %s is too big to publish even shortened; dropped.", *records[0][:2])


def _runs(records: list[Record]) -> list[list[Any]]:
    runs: list[list[Any]] = []
    key = None
    items: list[list[Any]] = []
    for kind, job_id, task, tag, status, at, attempt, extra in records:
        if key != (kind, task, tag, status):
            key = (kind, task, tag, status)
            items = []
            runs.append([kind, task, tag, status, items])
        items.append([job_id, at, attempt, extra])
    return runs


def _shrunk(record: Record, limit: int) -> Record:
    """An event that is too big on its own, without its data and with its text cut short."""
    extra = dict(record[7] or {})
    extra.pop("data", None)
    for name in ("message", "error"):
        if isinstance(extra.get(name), str):
            # Non-ASCII characters take up to 6 bytes each once escaped.
            extra[name] = extra[name][: limit // 16]
    extra["truncated"] = True
    return [*record[:7], extra]


def decode(payload: str) -> list[Record]:
    """The records of one message; a message that is not kinetik's raises ``ValueError``."""
    try:
        return [
            [kind, job_id, task, tag, status, at, attempt, extra]
            for kind, task, tag, status, items in json.loads(payload)
            for job_id, at, attempt, extra in items
        ]
    except (TypeError, ValueError) as error:
        raise ValueError(f"not a kinetik event message: {error}") from None


def encode_ids(ids: list[int], limit: int) -> Iterator[str]:
    """Comma-separated job ids in messages of at most ``limit`` bytes (the "finished" channel)."""
    text = ",".join(map(str, ids))
    start = 0
    while len(text) - start > limit:
        # Cut at the last comma that fits: string methods, no loop per id.
        end = text.rindex(",", start, start + limit + 1)
        yield text[start:end]
        start = end + 1
    if text:
        yield text[start:]
