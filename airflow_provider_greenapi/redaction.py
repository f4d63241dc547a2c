"""Keeps API tokens out of log lines and messages.

GREEN-API puts the token in the URL path, so any library that logs or raises with the URL (urllib3's
debug log, requests' connection errors) would leak it. Tokens registered here are replaced by ``***`` in
every message that passes :func:`redact`, and in every record of the HTTP libraries' loggers.
"""

from __future__ import annotations

import logging
import threading

_MASK = "***"
_secrets: set[str] = set()
_lock = threading.Lock()
_HTTP_LOGGERS = ("urllib3", "urllib3.connectionpool", "urllib3.util.retry", "requests")


def register_secret(secret: str) -> None:
    """Remember ``secret`` so that :func:`redact` and the HTTP library logs hide it."""
    if len(secret) < 4:  # masking a very short string would garble ordinary text
        return
    with _lock:
        _secrets.add(secret)
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
