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
        import time

        time.sleep(0.5)
    return None
