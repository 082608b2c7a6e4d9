"""The README's quick start, followed to the letter on a fresh ``django-admin startproject``.

The code blocks marked ``<!-- quickstart:NAME -->`` in README.md are read
from the README itself, so the test runs what a newcomer copies: settings,
migrate, a task, the worker, a job from the command line, the job in the
admin. Then the defaults table and the install line are held against the code.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
import tomllib

import pytest

from django_kinetik.conf import KinetikSettings
from django_kinetik.values.jsondata import DEFAULT_MAX_BYTES
from django_kinetik.values.options import TaskOptions
from django_kinetik.worker.loop import DEFAULT_CONCURRENCY
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def block(name: str) -> str:
    """The code block after ``<!-- quickstart:name -->``."""
    match = re.search(rf"<!-- quickstart:{name} -->\n```\w*\n(.*?)```", README, re.S)
    assert match, f"README has no quickstart:{name} block"
    return match.group(1)


MANAGE = [sys.executable, "manage.py"]


def command(name: str) -> list[str]:
    """A ``python manage.py ...`` block as arguments for this interpreter."""
    words = shlex.split(block(name).split("#")[0])
    assert words[:2] == ["python", "manage.py"], words
    return [*MANAGE, *words[2:]]


@pytest.fixture
def project(tmp_path):
    """A project as ``django-admin startproject`` makes it, with the app the README's task lives in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "KINETIK_"))}
    env["PYTHONPATH"] = str(tmp_path)

    def run(*arguments, **options):
        return subprocess.run(arguments, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, **options)

    assert run(sys.executable, "-m", "django", "startproject", "mysite", ".").returncode == 0
    assert run(sys.executable, "manage.py", "startapp", "myapp").returncode == 0
    return tmp_path, run, env


def test_the_quick_start_runs_a_job_that_shows_in_the_admin(project):
    directory, run, env = project
    settings = directory / "mysite" / "settings.py"
    # The settings block says: add "django_kinetik" to INSTALLED_APPS (the app holds the task).
    assert re.search(r'INSTALLED_APPS = \[\.\.\., "django_kinetik"\]', block("settings"))
    settings.write_text(settings.read_text() + '\nINSTALLED_APPS += ["django_kinetik", "myapp"]\n')
    task = block("task")
    assert task.startswith("# myapp/tasks.py\n")
    (directory / "myapp" / "tasks.py").write_text(task)

    migrated = run(*command("migrate"))
    assert migrated.returncode == 0, migrated.stderr
    worker = subprocess.Popen(
        command("worker"), cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        created = run(*command("create"))
        assert created.returncode == 0, created.stderr
        job_id = int(created.stdout.strip())
        status = ""
        deadline = time.monotonic() + 60
        while status != "completed" and time.monotonic() < deadline:
            time.sleep(0.2)
            status = last_line(run(*MANAGE, "shell", "-c", read_status(job_id)).stdout)
        assert status == "completed", worker_output(worker)
    finally:
        worker.terminate()
        output = worker.communicate(timeout=30)[0]
    assert worker.returncode == 0, output  # stops cleanly on SIGTERM
    admin = run(*MANAGE, "shell", "-c", admin_page(job_id))
    assert last_line(admin.stdout) == "ok", admin.stdout + admin.stderr


def last_line(output: str) -> str:
    # Django 5.2's shell may first say how many objects it imported.
    return output.strip().rsplit("\n", 1)[-1]


def read_status(job_id: int) -> str:
    return f"from django_kinetik.models import Job; print(Job.objects.get(pk={job_id}).status)"


def admin_page(job_id: int) -> str:
    # What the README says the admin shows: the job on the list, its log line and result on its page.
    return f"""
from django.contrib.auth.models import User
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
User.objects.create_superuser("admin", "admin@example.com", "pw")
client = Client()
client.force_login(User.objects.get())
listing = client.get("/admin/django_kinetik/job/").content.decode()
page = client.get("/admin/django_kinetik/job/{job_id}/change/").content.decode()
dashboard = client.get("/admin/django_kinetik/job/dashboard/")
assert "send email" in listing, listing[:500]
assert "sending" in page and "ada@example.com" in page and "sent_to" in page, page[:500]
assert dashboard.status_code == 200
print("ok")
"""


def worker_output(worker: subprocess.Popen) -> str:
    worker.terminate()
    return worker.communicate(timeout=30)[0]


def defaults_table() -> dict[str, str]:
    section = README[README.index("**Defaults**") :]
    table = section[section.index("\n|") + 1 : section.index("\n\n", section.index("\n|"))]
    cells = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in table.splitlines()[2:]]
    return {row[0]: row[1] for row in cells}


def test_the_defaults_table_says_what_the_code_does():
    table = defaults_table()
    task, settings = TaskOptions(), KinetikSettings()
    assert task.retries == 0 and table["attempts"].startswith("1 ")
    assert task.retry_delay == 10 and task.backoff == "fixed" and table["wait before a retry"].startswith("10s")
    assert task.retry_max_delay == 3600 and "(1h)" in README[README.index("| wait before a retry") :].split("\n")[0]
    assert task.timeout is None and table["time limit of a run"] == "none"
    assert (task.tag, task.priority) == ("default", 0) and table["tag, priority"] == '`"default"`, 0'
    assert table["job threads per worker process"] == str(DEFAULT_CONCURRENCY)
    assert settings.lease == 60 and table["a dead worker's jobs come back after"] == "60s"
    assert settings.interval == 1 and table["an idle worker looks for work every"].startswith("1s")
    assert settings.shutdown_timeout == 30 and table["a stopping worker lets jobs finish for"] == "30s"
    assert settings.purge_after == 86400 and table["completed jobs are deleted after"] == "1 day"
    assert settings.purge_failed_after is None and table["failed, timed-out, cancelled jobs"] == "kept"
    assert settings.max_data_bytes == DEFAULT_MAX_BYTES == 2**20 and table["largest job data"] == "1 MiB of JSON"


def test_the_install_lines_name_extras_and_a_version_the_package_has():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    quick_start = README[README.index("### Quick start") : README.index("**Settings, then migrate.**")]
    for extra in re.findall(r"`\[(\w+)\]`", quick_start):
        assert extra in project["optional-dependencies"], extra
    assert f"django_kinetik-{project['version']}-py3-none-any.whl" in quick_start
    assert "not published on PyPI" in quick_start


def test_the_readme_task_takes_the_job_and_returns_json():
    namespace: dict = {}
    exec(compile(block("task"), "README quickstart:task", "exec"), namespace)  # the README's own code
    from django_kinetik.registry import registry

    try:
        assert registry.get("send email").tag == "notifications"
    finally:
        registry.unregister("send email")
