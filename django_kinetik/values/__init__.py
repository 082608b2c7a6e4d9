"""The values kinetik reads from users, parsed and checked in one place.

Durations, priorities, task options and their cascade, retry back-off, unique
and limit keys, concurrency and rate limits, schedules, and the JSON checks on
job data. Pure values: nothing here touches the database, Redis or a worker,
so every layer above may use them.
"""
