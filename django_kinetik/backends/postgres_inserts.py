"""Creating jobs on PostgreSQL: one prepared ``INSERT ... SELECT FROM unnest`` per batch.

``create()`` and ``create_many()`` use it on PostgreSQL (other databases go
through Django's ``save``/``bulk_create``). Rows come back as Job objects built
from what was inserted, without a read and without ``Model.__init__``.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from django.db import transaction

from ..models import Job
from . import sql
from .database import execute_prepared


def insert_jobs(
    using: str,
    fields: dict[str, Any],
    payloads: list[dict[str, Any]],
    batch_size: int,
    limit_keys: list[str] | None = None,
) -> list[Job]:
    """``create_many`` on PostgreSQL: one ``INSERT ... SELECT FROM unnest`` per batch.

    The data travels as one binary array of JSON texts (and the limit keys as
    another, for a task with limits); the shared fields as single values.
    Django's ``bulk_create`` spends its time building a model and a parameter
    per column per job, and binding them as SQL text.
    """
    shared = [json.dumps(fields[name]) if name == "options" else fields[name] for name in sql.INSERT_SHARED_COLUMNS]
    jobs: list[Job] = []
    # All or nothing across batches; one statement is atomic by itself.
    atomic = transaction.atomic(using=using) if len(payloads) > batch_size else contextlib.nullcontext()
    with atomic:
        for start in range(0, len(payloads), batch_size):
            batch = payloads[start : start + batch_size]
            texts = [_ENCODE(payload) for payload in batch]
            if limit_keys is None:
                ids = _insert(using, sql.INSERT_JOBS, [*shared, texts])
                keys: list[str | None] = [None] * len(batch)
            else:
                keys = list(limit_keys[start : start + batch_size])
                ids = _insert(using, sql.INSERT_KEYED_JOBS, [*shared, texts, keys])
            jobs += [
                _inserted_job(using, job_id, payload, key, fields)
                for job_id, payload, key in zip(ids, batch, keys, strict=True)
            ]
    return jobs


def _insert(using: str, statement: str, params: list[Any]) -> list[int]:
    # The sequence hands out ids in insertion order, which follows the array.
    return sorted(row[0] for row in execute_prepared(using, statement, params))


def _inserted_job(using: str, job_id: int, data: dict[str, Any], limit_key: str | None, fields: dict[str, Any]) -> Job:
    return Job.loaded(
        using,
        {
            **_NEW_JOB,
            "id": job_id,
            "data": data,
            "limit_key": limit_key,
            "task": fields["task"],
            "task_backend": fields["task_backend"],
            "tag": fields["tag"],
            "priority": fields["priority"],
            "status": fields["status"],
            "options": fields["options"],
            "run_at": fields["run_at"],
            "created_at": fields["created_at"],
        },
    )


#: what a just-inserted job holds besides what create_many gives it
_NEW_JOB: dict[str, Any] = {
    "result": None,
    "error": "",
    "error_code": "",
    "attempts": 0,
    "ghosts": 0,
    "unique_key": None,
    "started_at": None,
    "finished_at": None,
    "progress_current": None,
    "progress_total": None,
    "progress_data": None,
    "worker_id": None,
    "lease_expires_at": None,
}
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
