"""How kinetik reaches a PostgreSQL jobs database: directly, or through a transaction pooler.

A pooler in transaction mode (PgBouncer's ``pool_mode = transaction``) lends
each transaction whichever server connection is free, so nothing that lives
in a *session* carries from one transaction to the next:

- a prepared statement would be run on a server connection that never
  prepared it, or, worse, on one where another client prepared a different
  statement under the same name (psycopg names them ``_pg3_0``, ``_pg3_1``...);
- ``LISTEN`` registers on a server connection the client no longer holds, so
  its notifications reach whoever holds that connection next, or nobody;
- a session advisory lock stays with the server connection, and the unlock
  goes to another one.

Django's own sign of such a pooler is ``DISABLE_SERVER_SIDE_CURSORS = True``
on the alias (its documentation asks for it with transaction pooling), and
kinetik reads the same setting. Behind one, kinetik prepares nothing, takes
its advisory locks per transaction, and opens its long-lived connections
(idle workers' wake-ups, the event feed) through ``KINETIK["LISTEN_DATABASE"]``:
a direct way to the same database, given as an alias or as connection keys.
Without that, those connections do not exist: idle workers look for work
every ``INTERVAL``, and ``job.wait()`` and the live feed re-read the database
(``manage.py check`` says so, as kinetik.W004). A session-mode pooler keeps
sessions: kinetik needs nothing there.
"""

from __future__ import annotations

from typing import Any

from django.db import connections

from ..conf import get_settings

#: OPTIONS that Django reads itself and psycopg does not take
_DJANGO_ONLY_OPTIONS = ("assume_role", "isolation_level", "pool", "server_side_binding")


def transaction_pooled(alias: str) -> bool:
    """Whether ``alias`` goes through a transaction-mode pooler (Django's sign: no server-side cursors)."""
    return bool(connections[alias].settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"))


def has_session(alias: str) -> bool:
    """Whether kinetik can hold a session on the database of ``alias`` (to LISTEN, to publish)."""
    return bool(get_settings().listen_database) or not transaction_pooled(alias)


def session_params(alias: str) -> dict[str, Any]:
    """psycopg ``connect()`` keywords for a connection of kinetik's own to the database of ``alias``.

    The jobs database's own parameters, with LISTEN_DATABASE's host, port,
    user, password and options over them; the database name is always the
    jobs database's, so under tests it follows the test database.
    """
    params = connections[alias].get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    where = get_settings().listen_database
    if where:
        overrides = connections.settings[where] if isinstance(where, str) else where
        for key, name in (("HOST", "host"), ("PORT", "port"), ("USER", "user"), ("PASSWORD", "password")):
            if key in overrides:
                params.pop(name, None)
                if overrides[key]:
                    params[name] = overrides[key]
        options = {k: v for k, v in (overrides.get("OPTIONS") or {}).items() if k not in _DJANGO_ONLY_OPTIONS}
        params.update(options)
    return params
