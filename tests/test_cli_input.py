"""Bad input to every management command: a one-line CommandError (exit status 1 from a shell), nothing written.

The catalogue runs through ``call_command`` (the way code and tests call
commands), where NUL and lone surrogates can be given; a few of its entries
run again as real processes, where text arrives as bytes.
"""

import io
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from django_kinetik.models import Job, JobLog, JobRun, Worker
from tests.conftest import ROOT, worker_env
from tests.factories import FinishedJobFactory, JobFactory, JobLogFactory, JobRunFactory

DEEP = "[" * 10_000 + "]" * 10_000
HUGE = "99999999999999999999"  # past a 64-bit key on every database
LONG = "k" * 10_000
NUL = "a\x00b"
BYTES = "a\udcffb"  # what the byte 0xff in argv becomes on POSIX


def _id(*argv):
    shown = " ".join(text if len(text) <= 24 else f"{text[:12]}...({len(text)})" for text in map(str, argv))
    return ascii(shown)[1:-1]


def case(command, *argv, match, stdin=None):
    return pytest.param(command, list(argv), match, stdin, id=_id(command.removeprefix("kinetik_"), *argv))


def echo(*argv, match, stdin=None):
    """kinetik_create for the suite's test task."""
    return case("kinetik_create", "test.echo", *argv, match=match, stdin=stdin)


def worker(*argv, match):
    """kinetik_worker in burst mode: were it to start, it would stop by itself."""
    return case("kinetik_worker", "--burst", *argv, match=match)


def selection(command):
    """The filters kinetik_cancel and kinetik_retry share (_selection.py)."""
    return [
        case(command, HUGE, match="argument ID: must be at most 9,223,372,036,854,775,807"),
        case(command, "0", match="argument ID: must be at least 1"),
        case(command, "-5", match="argument ID: must be at least 1"),
        case(command, "abc", match="argument ID: 'abc' is not a job id"),
        case(command, "1" * 5000, match="is not a job id"),
        case(command, "--task", NUL, match="argument --task: 'a\\x00b' contains a NUL"),
        case(command, "--tag", NUL, match="argument --tag: 'a\\x00b' contains a NUL"),
        case(command, "--tag", BYTES, match="argument --tag: 'a\\udcffb' is not UTF-8"),
        case(command, "--tag", "\ud800", match="contains a lone surrogate"),
        case(command, "--status", "unknown", match="argument --status: invalid choice"),
        case(command, "--older-than", "99999999d", match="--older-than: duration '99999999d' is longer"),
        case(command, "--older-than", "1e308", match="--older-than: '1e308' seconds is longer"),
        case(command, "--older-than", "-5", match="--older-than: '-5' is not a duration"),
        case(command, "--older-than=-5s", match="--older-than: duration cannot be negative"),
        case(command, "--older-than", "nan", match="--older-than: 'nan' is not a duration"),
        case(command, "--older-than", "soon", match="--older-than: duration 'soon' is not"),
        case(command, "--tag", "mail", "--batch-size", "0", match="--batch-size: must be at least 1"),
        case(command, "--tag", "mail", "--batch-size", HUGE, match="--batch-size: must be at most 10,000"),
        case(command, "--tag", "mail", "--batch-size", "x", match="--batch-size: 'x' is not"),
        case(command, "1", "--tag", "mail", match="ids or filters, not both"),
    ]


CATALOGUE = [
    # kinetik_create: what the shell gives, then what create() refuses
    echo(DEEP, match="JSON_DATA is nested too deeply"),
    echo('{"a": ' + DEEP + "}", match="JSON_DATA is nested too deeply"),
    echo('{"a":' * 31 + "1" + "}" * 31, match="nested more than 30 levels"),
    echo('{"a": "\\u0000"}', match="data['a'] contains a NUL"),
    echo('{"a": "\\ud800"}', match="data['a'] contains a lone surrogate"),
    echo('{"a\\u0000": 1}', match="has a key that contains a NUL"),
    echo('{"a": "\x00"}', match="JSON_DATA contains a NUL"),
    echo('{"a": "' + BYTES + '"}', match="JSON_DATA is not UTF-8 text (byte 0xff at position 8)"),
    echo('{"a": "\ud800"}', match="JSON_DATA contains a lone surrogate"),
    echo('{"a": NaN}', match="data['a'] is nan"),
    echo('{"a": 1e400}', match="data['a'] is inf"),
    echo('{"a": ' + "1" * 5000 + "}", match="JSON_DATA: Exceeds the limit"),
    echo('{"a": "' + "x" * (1024 * 1024) + '"}', match="MAX_DATA_BYTES"),
    echo("{to: ada}", match="JSON_DATA is not valid JSON"),
    echo("[1]", match="must be a JSON object"),
    echo("-", stdin=b'{"a": "\xff"}', match="JSON_DATA from stdin is not UTF-8 text (byte 0xff at position 7)"),
    echo("-", stdin=DEEP.encode(), match="JSON_DATA from stdin is nested too deeply"),
    echo("-", stdin=b'{"a": "\\u0000"}', match="data['a'] contains a NUL"),
    echo("-", stdin=b"", match="JSON_DATA from stdin is not valid JSON"),
    echo("--delay", "99999999d", match="argument --delay: duration '99999999d' is longer than 3650 days"),
    echo("--delay", "1e20", match="argument --delay: '1e20' seconds is longer"),
    echo("--delay", "-5", match="argument --delay: '-5' is not a duration"),
    echo("--delay", "inf", match="argument --delay: 'inf' is not a duration"),
    echo("--unique-key", LONG, match="unique_key is 10000 characters long; the most is 200"),
    echo("--unique-key", NUL, match="argument --unique-key: 'a\\x00b' contains a NUL"),
    echo("--limit-key", LONG, match="limit_key is 10000 characters long"),
    echo("--limit-key", BYTES, match="argument --limit-key: 'a\\udcffb' is not UTF-8"),
    echo("--tag", LONG, match="is not valid; use 1 to 100 characters"),
    echo("--tag", NUL, match="argument --tag: 'a\\x00b' contains a NUL"),
    case("kinetik_create", NUL, match="argument TASK: 'a\\x00b' contains a NUL"),
    case("kinetik_create", BYTES, match="argument TASK: 'a\\udcffb' is not UTF-8"),
    case("kinetik_create", "x" * 10_000, match="task is 10000 characters long"),
    case("kinetik_create", "a:b", "--tag", "gpu", match="contains ':', which is reserved"),
    case("kinetik_create", "no.such.task", match="No task named 'no.such.task'"),
    echo("--after", HUGE, match="argument --after: must be at most"),
    echo("--after", "0", match="argument --after: must be at least 1"),
    echo("--after", "first", match="argument --after: 'first' is not a job id"),
    echo("--after", "9223372036854775807", match="after: there is no job with id 9223372036854775807"),
    echo("--priority", HUGE, match="out of range"),
    echo("--priority", NUL, match="argument --priority: 'a\\x00b' contains a NUL"),
    echo("--option", "retries=" + DEEP, match="--option retries is nested too deeply"),
    echo("--option", "retries=" + "9" * 5000, match="retries"),
    echo("--option", "timeout=99999999d", match="longer than 3650 days"),
    echo("--option", "retry_delay=99999999d", match="longer than 3650 days"),
    echo("--option", "retries=-1", match="retries cannot be negative"),
    echo("--option", "a\x00=1", match="--option 'a\\x00=1' contains a NUL"),
    echo("--option", "task_backend=x", match="'task_backend' is not an option of the job"),
    echo("--option", "delay=5", match="give it as --delay"),
    echo("--option", "colour=red", match="unknown option 'colour'"),
    echo("--option", "=1", match="must be NAME=VALUE"),
    echo("--format", "xml", match="argument --format: invalid choice"),
    *selection("kinetik_cancel"),
    *selection("kinetik_retry"),
    case("kinetik_retry", "--status", "queued", match="invalid choice: 'queued'"),
    case("kinetik_clean", "--status", "queued", match="argument --status: invalid choice"),
    case("kinetik_clean", "--tag", NUL, match="argument --tag: 'a\\x00b' contains a NUL"),
    case("kinetik_clean", "--older-than", "99999999d", match="argument --older-than: duration"),
    case("kinetik_clean", "--older-than", "-5", match="argument --older-than: '-5' is not a duration"),
    case("kinetik_clean", "--batch-size", HUGE, match="argument --batch-size: must be at most"),
    case("kinetik_clean", "--batch-size", "-1", match="argument --batch-size: must be at least 1"),
    case("kinetik_jobs", "--watch", "1e308", match="argument --watch: '1e308' seconds is longer"),
    case("kinetik_jobs", "--watch", "99999999d", match="argument --watch: duration '99999999d' is longer"),
    case("kinetik_jobs", "--watch", "-1", match="argument --watch: '-1' is not a duration"),
    case("kinetik_jobs", "--watch", "often", match="argument --watch: duration 'often' is not"),
    case("kinetik_jobs", "--watch", "0", match="argument --watch: '0' would redraw without a pause"),
    case("kinetik_jobs", "--by", "worker", match="argument --by: invalid choice"),
    case("kinetik_jobs", "--iterations", "0", match="argument --iterations: must be at least 1"),
    case("kinetik_workers", "--tag", NUL, match="argument --tag: 'a\\x00b' contains a NUL"),
    case("kinetik_workers", "--tag", BYTES, match="argument --tag: 'a\\udcffb' is not UTF-8"),
    case("kinetik_workers", "--format", "yaml", match="argument --format: invalid choice"),
    case("kinetik_tasks", "--format", "yaml", match="argument --format: invalid choice"),
    case("kinetik_tasks", "extra", match="unrecognized arguments: extra"),
    case("kinetik_health", "--max-age", "1e308", match="argument --max-age: '1e308' seconds is longer"),
    case("kinetik_health", "--max-age", "-5", match="argument --max-age: '-5' is not a duration"),
    case("kinetik_health", "--timeout", "99999999d", match="argument --timeout: duration '99999999d' is longer"),
    case("kinetik_health", "--timeout", "1e308", match="argument --timeout: '1e308' seconds is longer"),
    case("kinetik_health", "--min-workers", "-1", match="argument --min-workers: must be at least 0"),
    case("kinetik_health", "--min-workers", "two", match="argument --min-workers: 'two' is not"),
    case("kinetik_health", "--tag", NUL, match="argument --tag: 'a\\x00b' contains a NUL"),
    # kinetik_worker: refused before anything starts (no Worker row)
    worker("--concurrency", "0", match="--concurrency: must be at least 1, not 0"),
    worker("--concurrency", "-1", match="--concurrency: must be at least 1, not -1"),
    worker("--concurrency", "abc", match="--concurrency: 'abc' is not"),
    worker("--concurrency", "999999", match="--concurrency: must be at most 1,000"),
    worker("--processes", "-1", match="--processes: must be at least 0"),
    worker("--processes", HUGE, match="--processes: must be at most 1,000"),
    worker("--processes", "2", "--concurrency", "0", match="--concurrency: must be at least 1"),
    worker("--processes", "2", "--", "-x", match="tag that begins with '-'"),
    worker("--interval", "garbage", match="--interval: duration 'garbage' is not"),
    worker("--interval=-5s", match="--interval: duration cannot be negative"),
    worker("--interval", "99999999d", match="--interval: duration '99999999d' is longer"),
    worker("--shutdown-timeout", "later", match="--shutdown-timeout: duration 'later' is not"),
    worker("--shutdown-timeout", "99999999d", match="--shutdown-timeout: duration '99999999d'"),
    worker("--max-jobs", "0", match="--max-jobs: must be at least 1"),
    worker("--max-jobs", "many", match="--max-jobs: 'many' is not"),
    worker("--max-memory", "nan", match="--max-memory: memory size 'nan' is not understood"),
    worker("--max-memory", "1e400MB", match="--max-memory: memory size '1e400MB' is too large"),
    worker("--max-memory", "0", match="--max-memory: memory size must be positive"),
    worker("--max-memory", "0.0001K", match="--max-memory: memory size '0.0001K' is less than 1K"),
    worker("--max-memory", "512B", match="--max-memory: memory size '512B' is less than 1K"),
    worker(NUL, match="argument TAG: 'a\\x00b' contains a NUL"),
    worker(BYTES, match="argument TAG: 'a\\udcffb' is not UTF-8"),
    worker("two words", match="argument TAG: tag 'two words' is not valid"),
    worker("t" * 101, match="is not valid; use 1 to 100 characters"),
]


@pytest.fixture
def jobs_of_every_kind():
    """Jobs a command would change if it ran: queued, failed, long finished, with runs and logs."""
    JobFactory.create_batch(2, tag="mail")
    JobFactory(failed=True, tag="mail")
    old = FinishedJobFactory(tag="mail")
    JobRunFactory(job=old)
    JobLogFactory(job=old)


def snapshot():
    """What a refused command must leave as it was."""
    return (
        sorted(Job.objects.values_list("pk", "status", "run_at")),
        JobRun.objects.count(),
        JobLog.objects.count(),
        Worker.objects.count(),
    )


@pytest.mark.django_db
@pytest.mark.parametrize(("command", "argv", "match", "stdin"), CATALOGUE)
def test_bad_input_is_refused_in_one_line_and_writes_nothing(
    command, argv, match, stdin, jobs_of_every_kind, monkeypatch
):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    before = snapshot()
    out = StringIO()
    with pytest.raises(CommandError) as refused:
        call_command(command, *argv, stdout=out, stderr=StringIO())
    message = str(refused.value)
    assert match in message
    assert "\n" not in message and len(message) < 1000
    assert out.getvalue() == ""
    assert snapshot() == before


def test_the_catalogue_covers_every_command():
    covered = {param.values[0] for param in CATALOGUE}
    assert covered == {
        "kinetik_create",
        "kinetik_cancel",
        "kinetik_retry",
        "kinetik_clean",
        "kinetik_jobs",
        "kinetik_workers",
        "kinetik_tasks",
        "kinetik_health",
        "kinetik_worker",
    }


# -- values that are legal get an ordinary answer ----------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("argv", "output"),
    [
        (["kinetik_cancel", "--task", "no.such.task"], "Cancelled 0 job(s).\n"),
        (["kinetik_cancel", "--task", LONG], "Cancelled 0 job(s).\n"),
        (["kinetik_retry", "--tag", "no-such-tag", "--older-than", "3650d"], "Retried 0 job(s).\n"),
        (["kinetik_clean", "--tag", "mail", "--older-than", "3650d", "--batch-size", "10000"], "Deleted 0 job(s).\n"),
        (["kinetik_clean", "--tag", LONG, "--status", "all"], "Deleted 0 job(s).\n"),
        (["kinetik_workers", "--tag", "no-such-tag", "--format", "json"], "[]\n"),
        (["kinetik_health", "--min-workers", "0", "--max-age", "3650d", "--timeout", "3650d"], "ok: "),
    ],
)
def test_legal_values_that_match_nothing_change_nothing(argv, output, jobs_of_every_kind):
    before = snapshot()
    out = StringIO()
    call_command(*argv, stdout=out, stderr=StringIO())
    assert out.getvalue().startswith(output)
    assert snapshot() == before


@pytest.mark.django_db
def test_the_largest_job_id_is_no_such_job():
    out = StringIO()
    with pytest.raises(CommandError, match=r"1 of 1 job\(s\) could not be retried"):
        call_command("kinetik_retry", "9223372036854775807", stdout=out, stderr=StringIO())
    assert "9223372036854775807  no such job" in out.getvalue()


@pytest.mark.django_db
def test_json_data_from_stdin_may_start_with_a_byte_order_mark(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'\xef\xbb\xbf{"from": "notepad"}')))
    call_command("kinetik_create", "test.echo", "-", stdout=StringIO())
    assert Job.objects.get().data == {"from": "notepad"}


# -- the same from a shell: one line on stderr, exit status 1 --------------------------


def shell(*argv, stdin=b""):
    """Run ``python -m django <argv>`` on the test database; argv items may be bytes (not UTF-8)."""
    return subprocess.run(
        [sys.executable, "-m", "django", *argv],
        cwd=ROOT,
        env=worker_env(),
        input=stdin,
        capture_output=True,
        timeout=60,
    )


def shell_case(*argv, stdin=b"", line):
    return pytest.param(list(argv), stdin, line, id=_id(*argv, stdin.decode("ascii", "replace")))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("argv", "stdin", "line"),
    [
        shell_case("kinetik_create", "test.echo", DEEP, line="JSON_DATA is nested too deeply"),
        shell_case("kinetik_create", "test.echo", b'{"a": "\xff"}', line="JSON_DATA is not UTF-8 text"),
        shell_case("kinetik_create", b"task\xff", line="argument TASK: 'task\\udcff' is not UTF-8"),
        shell_case(
            "kinetik_create", "test.echo", "-", stdin=b'{"a": "\xff"}', line="JSON_DATA from stdin is not UTF-8"
        ),
        shell_case("kinetik_create", "test.echo", "-", stdin=b'{"a": "\\u0000"}', line="data['a'] contains a NUL"),
        shell_case("kinetik_create", "test.echo", "--delay", "99999999d", line="argument --delay: duration"),
        shell_case("kinetik_create", "test.echo", "--unique-key", LONG, line="unique_key is 10000 characters"),
        shell_case("kinetik_cancel", HUGE, line="argument ID: must be at most"),
        shell_case("kinetik_clean", "--older-than", "99999999d", line="argument --older-than: duration"),
        shell_case("kinetik_retry", "--tag", b"\xff", line="argument --tag: '\\udcff' is not UTF-8"),
        shell_case("kinetik_health", "--timeout", "1e308", line="argument --timeout: '1e308' seconds"),
        shell_case("kinetik_jobs", "--watch", "-1", line="argument --watch: '-1' is not a duration"),
        shell_case("kinetik_worker", "--burst", "--concurrency", "0", line="argument -c/--concurrency: must be"),
        shell_case("kinetik_worker", "--processes", "2", "--concurrency", "abc", line="argument -c/--concurrency"),
    ],
)
def test_from_a_shell_bad_input_is_one_line_on_stderr_and_exit_status_1(argv, stdin, line):
    done = shell(*argv, stdin=stdin)
    stderr = done.stderr.decode("utf-8", "backslashreplace")
    assert done.returncode == 1, stderr
    assert stderr.startswith(f"CommandError: {line}"), stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert done.stdout == b""
    assert snapshot() == ([], 0, 0, 0)


@pytest.mark.django_db(transaction=True)
def test_from_a_shell_traceback_still_shows_the_traceback():
    done = shell("kinetik_clean", "--older-than", "99999999d", "--traceback")
    assert done.returncode == 1
    assert b"Traceback" in done.stderr and b"argument --older-than" in done.stderr
