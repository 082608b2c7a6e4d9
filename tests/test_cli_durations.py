"""One rule on the command line: a bare number is seconds, for every option that takes a duration.

Each option is parsed by the command's own parser, so a new duration option
that reads a bare number any other way fails here; and ``--option`` durations
of ``kinetik_create`` are stored as seconds too.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command, load_command_class

import django_kinetik as kinetik
from django_kinetik.models import Job

#: (command, option, destination, arguments the command needs besides)
DURATION_OPTIONS = [
    ("kinetik_worker", "--interval", "interval", []),
    ("kinetik_worker", "--shutdown-timeout", "shutdown_timeout", []),
    ("kinetik_create", "--delay", "delay", ["test.echo"]),
    ("kinetik_clean", "--older-than", "older_than", []),
    ("kinetik_retry", "--older-than", "older_than", []),
    ("kinetik_cancel", "--older-than", "older_than", []),
    ("kinetik_health", "--max-age", "max_age", []),
    ("kinetik_health", "--timeout", "timeout", []),
    ("kinetik_jobs", "--watch", "watch", []),
]


def parsed(command: str, *arguments: str):
    parser = load_command_class("django_kinetik", command).create_parser("manage.py", command)
    return vars(parser.parse_args(list(arguments)))


@pytest.mark.parametrize(
    ("command", "option", "dest", "besides"), DURATION_OPTIONS, ids=[f"{c} {o}" for c, o, _, _ in DURATION_OPTIONS]
)
@pytest.mark.parametrize(("text", "seconds"), [("3", 3.0), ("2.5", 2.5), ("3s", 3.0), ("500ms", 0.5), ("2m", 120.0)])
def test_a_bare_number_is_seconds_for_every_duration_option(command, option, dest, besides, text, seconds):
    assert parsed(command, *besides, option, text)[dest] == pytest.approx(seconds)


def test_every_duration_option_is_in_this_list():
    """A command's option whose help speaks of a duration must be walked above."""
    listed = {(command, option) for command, option, _, _ in DURATION_OPTIONS}
    for command in {command for command, *_ in DURATION_OPTIONS}:
        parser = load_command_class("django_kinetik", command).create_parser("manage.py", command)
        for action in parser._actions:
            if getattr(action.type, "__name__", "") == "duration_argument":
                assert (command, action.option_strings[-1]) in listed, (command, action.option_strings)


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["timeout", "retry_delay", "retry_max_delay"])
def test_a_bare_number_in_a_duration_option_of_kinetik_create_is_seconds(name):
    call_command("kinetik_create", "test.echo", "--option", f"{name}=3")
    job = Job.objects.get()
    assert job.options[name] == 3000  # stored as milliseconds, the Python API's unit
    resolved = kinetik.registry.get("test.echo").effective_options().merged(job.options, where="job")
    assert getattr(resolved, name) == 3.0


@pytest.mark.django_db
def test_no_timeout_is_still_null():
    call_command("kinetik_create", "test.echo", "--option", "timeout=null")
    assert Job.objects.get().options["timeout"] is None
