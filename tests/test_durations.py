from datetime import UTC, datetime, timedelta

import pytest

import django_kinetik as kinetik
from django_kinetik.values.durations import BareNumberWarning, parse_duration, run_at_for


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
        ("2500", 2.5),
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


# -- one rule: in Python a bare number is milliseconds, and one under a second gets a warning --------


@pytest.mark.parametrize("value", [5, 60, 999, "5", 0.5])
def test_a_bare_number_under_a_second_warns_that_it_is_milliseconds(value):
    with pytest.warns(BareNumberWarning, match=r"timeout=.* milliseconds.*Write timeout='.*s' if you meant seconds"):
        assert parse_duration(value, what="timeout") == pytest.approx(float(value) / 1000)


@pytest.mark.parametrize("value", [0, 1000, 30_000, "5ms", "5s", timedelta(seconds=5)])
def test_a_number_with_its_unit_or_of_a_second_or_more_does_not_warn(value, recwarn):
    parse_duration(value, what="timeout")
    assert not [w for w in recwarn if issubclass(w.category, BareNumberWarning)]


def test_the_warning_points_at_the_callers_line():
    with pytest.warns(BareNumberWarning) as caught:
        kinetik.task("test.bare_timeout", timeout=5)(lambda job: None)
    kinetik.registry.unregister("test.bare_timeout")
    assert caught[0].filename == __file__


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: kinetik.create("test.echo", delay=60), "delay"),
        (lambda: kinetik.create("test.echo", timeout=5), "timeout"),
        (lambda: kinetik.create("test.echo", retry_delay=30), "retry_delay"),
        (lambda: kinetik.create("test.echo").wait(timeout=5), "timeout"),
        (lambda: kinetik.Snooze(10), "Snooze delay"),
    ],
    ids=["create-delay", "create-timeout", "create-retry-delay", "wait-timeout", "snooze"],
)
def test_every_python_duration_follows_the_rule(call, name):
    with pytest.warns(BareNumberWarning, match=f"{name}="):
        try:
            call()
        except kinetik.WaitTimeout:
            pass


@pytest.mark.django_db
def test_wait_poll_is_milliseconds_without_a_warning(recwarn):
    job = kinetik.create("test.echo")
    with pytest.raises(kinetik.WaitTimeout):
        job.wait(timeout="30ms", poll=5)
    assert not [w for w in recwarn if issubclass(w.category, BareNumberWarning)]


def test_settings_follow_the_rule(settings):
    from django_kinetik.conf import read_settings

    with pytest.warns(BareNumberWarning, match='KINETIK\\["INTERVAL"\\]=60 is 60 milliseconds'):
        parsed, _ = read_settings({"LEASE": 60_000, "INTERVAL": 60})
    assert parsed.lease == 60
