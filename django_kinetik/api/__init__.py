"""The JSON API and Prometheus metrics, mounted by ``django_kinetik.urls``.

Plain Django views, one concept per module: :mod:`.endpoint` (methods, auth,
JSON errors), :mod:`.auth` (bearer tokens and staff sessions), :mod:`.body`
(reading request bodies), :mod:`.enqueue` (job requests to ``create``),
:mod:`.pagination` (keyset pages), :mod:`.serialize` (rows to JSON),
:mod:`.views`, :mod:`.openapi` (the API's description) and :mod:`.metrics`.
"""
