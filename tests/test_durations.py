from datetime import UTC, datetime, timedelta

import pytest

from django_kinetik.values.durations import parse_duration, run_at_for


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("10ms", 0.01),
        ("30s", 30),
        ("45m", 2700),
        ("2h", 7200),
        ("6d", 518400),
        ("1h30m", 5400),
        (" 2 h ", 7200),
        ("1.5s", 1.5),
        (1500, 1.5),
        (0, 0),
        ("250", 0.25),
        (timedelta(minutes=2), 120),
    ],
)
def test_durations_people_write_are_understood(value, seconds):
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["-5s", -1, "-10", timedelta(seconds=-1)])
def test_negative_durations_are_refused(value):
    with pytest.raises(ValueError, match="cannot be negative"):
        parse_duration(value, what="delay")


@pytest.mark.parametrize("value", ["soon", "10 parsecs", "", "5x", "s"])
def test_unreadable_durations_say_which_forms_work(value):
    with pytest.raises(ValueError, match='"30s"'):
        parse_duration(value)


@pytest.mark.parametrize("value", [True, None, [1], object()])
def test_wrong_types_are_a_type_error(value):
    with pytest.raises(TypeError):
        parse_duration(value)


def test_a_datetime_delay_runs_at_that_time_and_a_past_one_now():
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    later = now + timedelta(hours=1)
    assert run_at_for(later, now) == later
    assert run_at_for(now - timedelta(days=1), now) == now
    assert run_at_for("30s", now) == now + timedelta(seconds=30)
    assert run_at_for(None, now) == now
