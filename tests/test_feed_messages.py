"""The feed's messages: small enough for NOTIFY, in order, and nothing lost but what must be cut."""

import json
from datetime import UTC, datetime

import pytest

from django_kinetik.feed.event import Event, decode, encode, encode_ids

LIMIT = 7900  # PostgreSQL's


def record(kind, job_id, extra=None, task="mail.send", tag="mail", status="active"):
    return [kind, job_id, task, tag, status, 1_700_000_000_000 + job_id, 1, extra]


def test_a_busy_batch_is_split_into_messages_under_the_limit_that_keep_the_order():
    records = []
    for job_id in range(3000):
        records += [record("started", job_id), record("completed", job_id, status="completed")]
    records.insert(100, record("log", 49, {"message": "halfway", "log_id": 7, "data": {"rows": 3}}))
    messages = list(encode(records, LIMIT))
    assert len(messages) > 1
    assert max(len(message.encode()) for message in messages) <= LIMIT
    assert [r for message in messages for r in decode(message)] == records


def test_runs_of_one_kind_share_their_task_tag_and_status():
    (message,) = encode([record("started", 1), record("started", 2), record("completed", 1, status="completed")], LIMIT)
    assert json.loads(message) == [
        ["started", "mail.send", "mail", "active", [[1, 1_700_000_000_001, 1, None], [2, 1_700_000_000_002, 1, None]]],
        ["completed", "mail.send", "mail", "completed", [[1, 1_700_000_000_001, 1, None]]],
    ]


def test_an_event_too_big_on_its_own_loses_its_data_and_long_text():
    huge = record("log", 5, {"message": "é" * 10_000, "log_id": 9, "data": {"blob": "x" * 20_000}})
    (message,) = encode([huge], LIMIT)
    assert len(message) <= LIMIT
    event = Event.from_record(decode(message)[0])
    assert event.truncated and event.data is None and event.log_id == 9
    assert event.message == "é" * (LIMIT // 16)
    assert event.as_json()["truncated"] is True


def test_an_event_reads_back_with_its_kind_s_fields():
    run_at = 1_700_000_060_000
    extra = {"error": "card declined", "error_code": "E_CARD", "run_at": run_at}
    event = Event.from_record(record("retrying", 3, extra, status="delayed"))
    assert (event.kind, event.job_id, event.status, event.error, event.error_code) == (
        "retrying",
        3,
        "delayed",
        "card declined",
        "E_CARD",
    )
    assert event.at == datetime.fromtimestamp(1_700_000_000.003, UTC)
    assert event.run_at == datetime.fromtimestamp(1_700_000_060, UTC)
    assert not event.finished
    assert event.as_json() == {
        "kind": "retrying",
        "job_id": 3,
        "task": "mail.send",
        "tag": "mail",
        "status": "delayed",
        "at": "2023-11-14T22:13:20.003000+00:00",
        "attempt": 1,
        "error": "card declined",
        "error_code": "E_CARD",
        "run_at": "2023-11-14T22:14:20+00:00",
    }


def test_finished_ids_are_chunked_under_the_limit():
    ids = list(range(10_000_000, 10_005_000))
    chunks = list(encode_ids(ids, LIMIT))
    assert len(chunks) > 1 and max(map(len, chunks)) <= LIMIT
    assert [int(job_id) for chunk in chunks for job_id in chunk.split(",")] == ids
    assert list(encode_ids([], LIMIT)) == []
    assert list(encode_ids([1, 22, 333], 6)) == ["1,22", "333"]


@pytest.mark.parametrize("payload", ["hello", '{"kind": "started"}', "[[1, 2]]", '["abcde"]'])
def test_a_message_that_is_not_kinetik_s_is_refused(payload):
    with pytest.raises(ValueError, match="not a kinetik event message"):
        decode(payload)
