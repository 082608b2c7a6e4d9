import pytest
from django.core.management import call_command
from django.test import override_settings

import django_kinetik as kinetik
from django_kinetik.registry import registry


def action(job):
    return "done"


def test_decorator_and_chainable_form_build_the_same_definition(temp_task):
    decorated = temp_task(
        "mail.decorated",
        action,
        tag="mail",
        timeout="30s",
        retries=3,
        retry_delay="1m",
        backoff="exponential",
        priority="high",
    )
    chained = (
        kinetik.define("mail.chained")
        .tag("mail")
        .timeout("30s")
        .retry(3, delay="1m", backoff="exponential")
        .priority("high")
        .action(action)
    )
    try:
        assert chained.options == decorated.options
        assert chained.options.tag == "mail"
        assert chained.options.timeout == 30
        assert chained.options.retry_delay == 60
        assert chained.options.priority == 10
        assert chained.options.max_attempts == 4
        assert registry.get("mail.chained") is chained
    finally:
        registry.unregister("mail.chained")


def test_the_name_defaults_to_module_and_function(temp_task):
    def compute_totals(job):
        return None

    task = kinetik.task(tag="alpha")(compute_totals)
    try:
        assert task.name == f"{__name__}.test_the_name_defaults_to_module_and_function.<locals>.compute_totals"
    finally:
        registry.unregister(task.name)


def test_a_bare_decorator_works():
    def tidy(job):
        """Tidy things up."""

    task = kinetik.task(tidy)
    try:
        assert task.tag == "default"
        assert task.name.endswith(".tidy")
    finally:
        registry.unregister(task.name)


def test_a_name_with_a_colon_is_refused_with_the_reason():
    with pytest.raises(kinetik.TaskDefinitionError, match="contains ':'"):
        kinetik.task("mail:send")(action)
    with pytest.raises(kinetik.TaskDefinitionError, match="contains ':'"):
        kinetik.define("mail:send")
    assert "mail:send" not in registry


def test_a_duplicate_name_from_other_code_is_refused(temp_task):
    temp_task("reports.build", action)

    def other(job):
        return None

    with pytest.raises(kinetik.TaskDefinitionError, match="already defined by"):
        kinetik.task("reports.build")(other)
    assert registry.get("reports.build").action is action


def test_bad_options_are_refused_when_the_task_is_defined():
    with pytest.raises(kinetik.TaskDefinitionError, match="timeout"):
        kinetik.task("bad.timeout", timeout="forever")(action)
    with pytest.raises(kinetik.TaskDefinitionError, match="backoff"):
        kinetik.define("bad.backoff").retry(2, backoff="sideways")
    with pytest.raises(kinetik.TaskDefinitionError, match="unknown option 'retires'"):
        kinetik.task("bad.typo", retires=3)(action)
    with pytest.raises(kinetik.TaskDefinitionError, match="tag"):
        kinetik.task("bad.tag", tag="two words")(action)
    assert not any(name.startswith("bad.") for name in registry.names())


def test_tasks_modules_of_installed_apps_are_discovered():
    assert "test.echo" in registry
    assert registry.get("test.echo").tag == "alpha"


def test_settings_override_the_decorator_defaults(temp_task):
    task = temp_task("cascade.task", action, tag="alpha", retries=1, timeout="10s")
    with override_settings(KINETIK={"TASKS": {"cascade.task": {"retries": 5, "tag": "beta"}}}):
        options = task.effective_options()
        assert (options.retries, options.tag, options.timeout) == (5, "beta", 10)
    assert task.effective_options().retries == 1


@pytest.mark.django_db  # the holds in force are read too
def test_kinetik_tasks_lists_name_tag_description_and_options(capsys):
    call_command("kinetik_tasks")
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("test.flaky"))
    assert "alpha" in line and "3 (fixed 0ms)" in line
    assert "Records each execution" in next(row for row in out.splitlines() if row.startswith("test.count"))
