import os
import time

import django_kinetik as kinetik


@kinetik.task("bench.noop", tag="bench")
def noop(job):
    return None


@kinetik.task("bench.mixed", tag="bench", timeout="200ms")
def mixed(job):
    """For the soak: mostly quick, some raise, some hang past their timeout."""
    kind = job.data.get("kind")
    if kind == "raise":
        raise RuntimeError("failing on purpose")
    if kind == "hang":
        time.sleep(0.5)
    return None


# bench/flow.py: tasks with limits (in their own tags, as the README suggests).
# Only registered when asked for, so the other benchmarks' workers do not carry them.
if os.environ.get("KINETIK_BENCH_LIMITED"):

    @kinetik.task("bench.per_customer", tag="limited", concurrency=4, limit_by="customer_id")
    def per_customer(job):
        return None

    @kinetik.task("bench.eight_at_once", tag="limited", concurrency=8)
    def eight_at_once(job):
        time.sleep(0.005)

    @kinetik.task("bench.paced", tag="paced", rate_limit="500/s")
    def paced(job):
        return None
