"""Backport of apache/airflow#73298, loaded only into the browser test's throwaway ``airflow api-server``.

The conftest copies this file as ``sitecustomize.py`` into a temporary folder at the head of the api-server's
PYTHONPATH; it is never imported by the test process itself.

Why: in Airflow 3.3.1 and 3.3.2 the UI's Test button posts ``port: Number(connection.port)``, which is ``0``
for a connection without a port, and ``POST /api/v2/connections/test`` then compares 0 with the stored NULL,
decides "different destination" and answers 400 "The host or port to test differs from the stored
connection". A GREEN-API connection never has a port (the form hides it), so on those versions the Test
button always shows "Bad Request" before the hook is even called. Airflow fixed it upstream by treating
port 0 like a blank port; this module does the same, and does nothing where the installed Airflow already
does.
"""

from __future__ import annotations

import sys

MARKER = "greenapi-browser-test: Test-button port fix"

try:
    from airflow.api_fastapi.core_api.routes.public import connections as _routes

    _original_same_endpoint = _routes._same_endpoint

    if _original_same_endpoint(0, None):
        print(f"{MARKER}: not needed", file=sys.stderr, flush=True)
    else:

        def _same_endpoint(requested: object, stored: object) -> bool:
            return _original_same_endpoint(None if requested == 0 else requested,
                                           None if stored == 0 else stored)

        _routes._same_endpoint = _same_endpoint
        print(f"{MARKER}: applied", file=sys.stderr, flush=True)
except Exception as error:  # never stop the api-server from starting
    print(f"{MARKER}: could not be applied ({error!r})", file=sys.stderr, flush=True)
