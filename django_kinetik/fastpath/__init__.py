"""The Redis fast path: job ids in Redis, the jobs themselves in the database.

With ``KINETIK["REDIS"]`` set, a created job's id is pushed to a sorted set
per tag once its transaction commits; workers pop ids in tag order (one
BZPOPMIN over several keys is Kinetik's "first tag with work") and confirm
the claim in the database, which stays the record. Redis down, flushed or
restarted loses nothing: workers claim from the database as before, and a
reconciler pushes queued jobs back. See ``docs/redis.md``.

``connection`` holds the client and key names; ``queue`` pushes, pops and
reconciles; the Lua scripts live in ``scripts/``.
"""
