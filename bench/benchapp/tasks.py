import django_kinetik as kinetik


@kinetik.task("bench.noop", tag="bench")
def noop(job):
    return None
