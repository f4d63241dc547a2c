"""Keeps API tokens out of log lines and messages.

GREEN-API puts the token in the URL path, so any library that logs or raises with the URL (urllib3's
debug log, requests' connection errors) would leak it. Tokens registered here are replaced by ``***`` in
every message that passes :func:`redact`, and in every record of the HTTP libraries' loggers.

A secret is masked in every form the provider may send or show it (:func:`secret_forms`): as stored (with
the whitespace a pasted token may carry), stripped (what the client puts in the URL) and percent-encoded
(what an HTTP library puts on the wire and in its log line when the token has characters a URL path
cannot carry as they are). The hook registers the same forms with Airflow's secrets masker.
"""

from __future__ import annotations

import logging
import threading
from contextlib import suppress
from urllib.parse import quote

import requests

_MASK = "***"
_secrets: tuple[str, ...] = ()  # longest first, so that a form containing another is masked whole
_lock = threading.Lock()
_HTTP_LOGGERS = ("urllib3", "urllib3.connectionpool", "urllib3.util.retry", "requests")
_MIN_LENGTH = 4  # masking a very short string would garble ordinary text
_PROBE = "http://127.0.0.1/"


def secret_forms(secret: str) -> tuple[str, ...]:
    """Every form of ``secret`` that may reach a message: as given, stripped, as requests sends it at the end
    of a URL (and urllib3 logs it) and fully percent-encoded; each once, longest first."""
    stripped = secret.strip()
    forms = {secret, stripped, quote(stripped, safe="")}
    with suppress(requests.RequestException, ValueError):  # a URL requests cannot send is not sent
        forms.add(str(requests.Request("GET", _PROBE + stripped).prepare().url)[len(_PROBE):])
    return tuple(sorted((f for f in forms if len(f) >= _MIN_LENGTH), key=lambda f: (-len(f), f)))


def register_secret(secret: str) -> None:
    """Remember ``secret`` in every form (:func:`secret_forms`) so that :func:`redact` and the HTTP library
    logs hide it."""
    forms = secret_forms(secret)
    if not forms:
        return
    global _secrets
    with _lock:
        _secrets = tuple(sorted(set(_secrets).union(forms), key=len, reverse=True))
    _install_log_filter()


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, _MASK)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message with secrets masked (the record is kept, never dropped)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            message = record.getMessage()
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, ()
        return True


_filter = RedactingFilter()


def _install_log_filter() -> None:
    # A logger's filters only see records logged on that very logger, so each HTTP logger gets it.
    for name in _HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)
