"""Demo tasks, discovered automatically because this app is installed."""

import time

import django_kinetik as kinetik


@kinetik.task("demo.greet", tag="messaging", desc="Say hello to someone")
def greet(job):
    return {"greeting": f"Hello, {job.data['name']}!"}


@kinetik.task("demo.flaky", tag="messaging", retries=2, desc="Fails on its first attempt")
def flaky(job):
    if job.attempt == 1:
        raise ConnectionError("the mail server hung up (this attempt fails on purpose)")
    return {"sent_on_attempt": job.attempt}


def build_report(job):
    rows = job.data.get("rows", 5)
    job.log("building report", {"rows": rows})
    for row in range(1, rows + 1):
        time.sleep(0.2)
        job.progress(row, rows)
    job.log("report ready")
    return {"rows": rows}


# Kinetik's chainable form defines a task the same way.
report = (
    kinetik.define("demo.report")
    .tag("reports")
    .desc("Logs, reports progress, takes a second")
    .timeout("1m")
    .action(build_report)
)


@kinetik.task(
    "demo.sync",
    tag="messaging",
    concurrency=1,
    limit_by="account",
    rate_limit="4/s",
    desc="One sync per account at a time, at most four starts a second",
)
def sync_account(job):
    time.sleep(0.1)
    return {"account": job.data["account"]}


@kinetik.task("demo.summary", tag="reports", desc="Runs after the report and sums up its parents' results")
def summary(job):
    return {"parents": [parent.result for parent in job.parents]}
