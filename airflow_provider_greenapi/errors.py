"""The provider's exceptions: one hierarchy whose branches say whose problem each one is.

::

    GreenApiProviderError                   the base of the provider's own exception classes
    ├── GreenApiError                       GREEN-API's answer, or its silence (a status, a body, a timeout)
    │   └── GreenApiCredentialsError, ...   one class per kind of answer (error_from_response, below), and
    │                                       GreenApiTlsError (no TLS session with the host: never retried)
    ├── ConfigurationError (a ValueError)   the user's configuration: a connection or argument that cannot work
    │   └── GreenApiConnectionError         the GREEN-API Airflow connection
    ├── RunStopped                          the provider's own stops: it decided to stop, and says why
    │   ├── BulkCheckStopped                a bulk check ended early; carries the run's summary
    │   ├── QuotaBudgetExhausted            the run's own budget: the usage ledger's monthly cap is reached
    │   ├── OtherRunStillSending            another run kept the instance past this run's wait_for_other_runs
    │   └── InstanceStateError              the sensor's instance is in a fail state, or cannot be watched
    ├── WarehouseBusyError (a RuntimeError) the warehouse stayed taken by another writer (a DuckDB file)
    └── WarehouseTimeoutError (a RuntimeError) a warehouse statement ran past the operator's statement_timeout

So ``except GreenApiError`` catches only what GREEN-API said (a spent run budget is not among it),
``except ConfigurationError`` what the user must fix in a connection or argument, ``except RunStopped`` the
stops the provider chose, and ``except GreenApiProviderError`` all of them. Beside these the provider
raises Python's ``ValueError`` / ``TypeError`` for a bad argument (as any Python code does), and the
warehouse drivers' errors pass through as they are.

GREEN-API errors carry the API method and HTTP status, never the request URL (the token is part of the
URL path). ``retryable`` says whether the client's retry policy may send the request again at once;
``stops_run`` says whether a bulk check must stop spending quota because no further number can be answered.
Every class here has ``retry_can_fix``: whether running the task again (Airflow's ``retries``) may succeed,
or whether a person must act first. :func:`retry_can_fix` answers that last question for any exception,
ours or not.

This module is part of the Airflow-free core and imports nothing of Airflow. Airflow decides not to retry a
task only when the exception raised *is* an ``AirflowFailException``, so the Airflow adapters turn what a
retry cannot fix into one at their boundary: the operator wraps it (``raise AirflowFailException(...) from
error``), because its errors come from the core (the checker, the client); the sensor raises
``GreenApiInstanceStateError``, a thin subclass of both :class:`InstanceStateError` and
``AirflowFailException`` (sensors/instance_state.py), because the sensor itself decides to fail and users
catch that class and read its ``state``: one exception is both what Airflow needs and what users rely on,
where a wrapper would hide the class and ``state`` behind ``__cause__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_greenapi.results import RunSummary


class GreenApiProviderError(Exception):
    """Base class of the provider's own exceptions. ``retry_can_fix`` says whether running the task again
    may succeed; each branch below sets it."""

    retry_can_fix: bool = True  # not known to be lasting, as retry_can_fix() judges any exception


def _describe(method: str, status_code: int | None, detail: str, hint: str) -> str:
    """``method: HTTP status detail. hint``: how GREEN-API errors (and the ledger's refusal) read."""
    where = f"{method}: " if method else ""
    status = f"HTTP {status_code} " if status_code is not None else ""
    sentence = detail if detail.endswith((".", "!", "?")) else f"{detail}."
    return f"{where}{status}{sentence}" + (f" {hint}" if hint else "")


class GreenApiError(GreenApiProviderError):
    """GREEN-API's answer (or no answer): a GREEN-API call failed. The message never contains the API token."""

    retryable: bool = False
    stops_run: bool = True
    retry_can_fix: bool = False  # wrong credentials, a spent quota, an unusable instance: a person must act
    hint: str = ""

    def __init__(self, message: str, *, method: str = "", status_code: int | None = None) -> None:
        self.method = method
        self.status_code = status_code
        self.detail = message
        super().__init__(message)

    def __str__(self) -> str:
        return _describe(self.method, self.status_code, self.detail, self.hint)


class GreenApiCredentialsError(GreenApiError):
    """401: the apiTokenInstance does not belong to this instance."""

    hint = "Check the API token (apiTokenInstance) in the Airflow connection; copy it again from the GREEN-API console."


class GreenApiInstanceNotFoundError(GreenApiError):
    """403: unknown idInstance, or the apiUrl host does not serve this instance."""

    hint = (
        "Check the instance ID (idInstance) and the API URL of the Airflow connection: use the apiUrl shown "
        "for this instance in the GREEN-API console."
    )


class GreenApiMethodError(GreenApiError):
    """404: the API does not know this method or HTTP verb (a bug in the caller)."""

    hint = "This is a bug in the provider or a wrong API URL path; please report it."


class GreenApiInstanceNotAuthorizedError(GreenApiError):
    """400 ``instance is starting or not authorized``: the instance cannot answer (also sent when blocked)."""

    hint = (
        "Open the GREEN-API console and check the instance: scan the QR code if it is not authorized, "
        "wait if it is starting."
    )


class GreenApiAccountExpiredError(GreenApiError):
    """400 ``Instance account is expired`` / ``Instance is deleted``: the plan ended or the instance is gone."""

    hint = "Renew the plan or create a new instance in the GREEN-API console, then update the connection."


class GreenApiQuotaExceededError(GreenApiError):
    """466: the monthly quota of this method is used up; ``used`` and ``total`` as the API reported them."""

    hint = (
        "Checks resume when the quota resets on the 1st of next month, or after upgrading the plan "
        "(Business: 30 000 checks a month)."
    )

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        status_code: int | None = 466,
        used: int | None = None,
        total: int | None = None,
    ) -> None:
        self.used = used
        self.total = total
        super().__init__(message, method=method, status_code=status_code)


class GreenApiInvalidNumberError(GreenApiError):
    """400 bad phone number or ``Validation failed``: this number cannot be checked; never retried."""

    stops_run = False


class GreenApiTransientError(GreenApiError):
    """A failure that may pass: 499/5xx, timeouts, dropped connections, the transient 400s."""

    retryable = True
    stops_run = False
    retry_can_fix = True


class GreenApiRateLimitedError(GreenApiTransientError):
    """429: over the per-instance rate limit. ``retry_after`` in seconds when the API sent the header."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        status_code: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, method=method, status_code=status_code)


class GreenApiTlsError(GreenApiError):
    """No TLS session with the API URL's host: its certificate is not trusted (self-signed, a private CA, a
    proxy's, another host's name), or it does not speak TLS (an ``https://`` URL to a plain-HTTP port). The
    same on every try, so never retried; a person must fix the URL or the trusted CAs."""

    hint = (
        "Check the API URL of the Airflow connection (the instance's apiUrl from the GREEN-API console, "
        "https:// to GREEN-API's own hosts). If a proxy or a private CA signs the certificate, put that CA in "
        "the bundle this Airflow trusts (REQUESTS_CA_BUNDLE, or the system's CA certificates) and restart it."
    )


class GreenApiResponseError(GreenApiError):
    """An answer the contract does not describe (unknown status or unreadable body)."""

    stops_run = False
    retry_can_fix = True  # not understood, so not known to be lasting: Airflow's retries apply


class ConfigurationError(GreenApiProviderError, ValueError):
    """The user's configuration: a connection, a setting or an argument that cannot work. A person must fix
    it, so a retry cannot (and, as a ``ValueError``, ``except ValueError`` still catches it)."""

    retry_can_fix = False


class GreenApiConnectionError(ConfigurationError):
    """The Airflow Connection does not describe a usable GREEN-API instance."""


class RunStopped(GreenApiProviderError):
    """The provider's own stop: it chose to stop (a run, a wait) and says why. Not GREEN-API's answer, though
    one may be the reason (``__cause__`` or the message)."""

    retry_can_fix = False


class BulkCheckStopped(RunStopped):
    """The run stopped before its end for a reason a person must act on (quota, instance, outage).
    Everything checked until then is stored; ``summary`` says how many numbers are done and left;
    ``retry_can_fix`` whether running the task again may succeed (see :func:`retry_can_fix`)."""

    def __init__(self, message: str, summary: RunSummary, *, retry_can_fix: bool) -> None:
        super().__init__(message)
        self.summary = summary
        self.retry_can_fix = retry_can_fix


class QuotaBudgetExhausted(RunStopped):
    """The run's own budget (the monthly quota on the connection, counted by the usage ledger) allows no more
    checks. Raised before the call is sent: GREEN-API was not asked. A bulk check stops quietly on it (the
    task succeeds, the rest pending); it reads like a GREEN-API error (``checkWhatsapp: ...``)."""

    stops_run = True

    def __init__(self, message: str, *, method: str = "") -> None:
        self.method = method
        self.detail = message
        super().__init__(message)

    def __str__(self) -> str:
        return _describe(self.method, None, self.detail, "")


class OtherRunStillSending(RunStopped):
    """Another run on the same GREEN-API instance was still sending when this run's ``wait_for_other_runs`` ran
    out, so this run sent nothing (two runs at once would check numbers twice and together exceed the
    instance's pace). A retry may find the instance free: ``retry_can_fix``. A bulk check stops on it with a
    :class:`BulkCheckStopped` that says so."""

    retry_can_fix = True


class InstanceStateError(RunStopped):
    """The instance a sensor waits on reached a fail state (``blocked`` by default), or an error that waiting
    cannot cure (wrong token, unknown instance, unusable connection). ``state``: the fail state, else None.
    The sensor raises it as ``GreenApiInstanceStateError``, which is also an ``AirflowFailException``."""

    def __init__(self, message: str, state: str | None = None) -> None:
        super().__init__(message)
        self.state = state


class WarehouseBusyError(GreenApiProviderError, RuntimeError):
    """The warehouse stayed taken by another writer for longer than the wait allowed (a DuckDB file, which
    one process may open at a time). It passes once the other writer is done, so a retry may fix it."""

    retry_can_fix = True


class WarehouseTimeoutError(GreenApiProviderError, RuntimeError):
    """A statement of the results warehouse ran longer than the operator's ``statement_timeout`` and the server
    cancelled it (a frozen or overloaded server, a lock held by another session). It may pass: a retry may fix it."""

    retry_can_fix = True


# DB-API (PEP 249) error classes, by name: every driver (sqlite3, psycopg, DuckDB, MySQL) names them so.
# Bad SQL, a missing or incompatible table, a missing privilege or bad data stay so on a rerun; a server that is
# down, a lost connection, a lock or a serialization conflict may pass.
_DBAPI_LASTING = frozenset({"ProgrammingError", "DataError", "IntegrityError", "NotSupportedError"})
_DBAPI_PASSING = frozenset({"OperationalError", "InterfaceError", "InternalError"})
# OperationalError also covers what a retry cannot fix: sqlite3 reports bad SQL so, and PostgreSQL or MySQL a
# wrong password, database or user of the connection. These messages say so.
_OPERATIONAL_LASTING_MESSAGES = (
    "no such table", "no such column", "has no column named", "syntax error", "readonly database",  # sqlite3
    "password authentication failed", "no pg_hba.conf entry", "does not exist",  # PostgreSQL: role, database
    "access denied for user", "unknown database", "unknown column",  # MySQL / MariaDB
)


def retry_can_fix(error: BaseException) -> bool:
    """Whether running the task again may succeed where ``error`` stopped it.

    False (fail at once, without Airflow's ``retries``) for what only a person can fix: a missing or wrong
    connection or argument (``ValueError``, ``TypeError``), a wrong token, an unknown or unusable instance, the
    month's quota spent (each GREEN-API error's ``retry_can_fix``), bad SQL or an incompatible table (DB-API
    ``ProgrammingError`` and kin), a wrong warehouse password or database. True for the rest: outages, 5xx
    after the client's retries, a warehouse that is down or locked, and anything not known to be lasting. A
    wrapper is judged by its cause.
    """
    own = getattr(error, "retry_can_fix", None)
    if isinstance(own, bool):
        return own
    names = {kind.__name__ for kind in type(error).__mro__}
    if names & _DBAPI_LASTING:
        return False
    if names & _DBAPI_PASSING:
        lowered = str(error).lower()
        return not any(m in lowered for m in _OPERATIONAL_LASTING_MESSAGES)
    if isinstance(error, (ValueError, TypeError)):
        return False
    if error.__cause__ is not None:
        return retry_can_fix(error.__cause__)
    return True


# 400 messages, matched case-insensitively anywhere in the body (JSON or text), first match wins.
_BAD_REQUEST_MESSAGES: tuple[tuple[str, type[GreenApiError]], ...] = (
    ("check phone number timeout limit exceeded", GreenApiTransientError),
    ("instance in starting process", GreenApiTransientError),
    ("instance is starting or not authorized", GreenApiInstanceNotAuthorizedError),
    ("account is expired", GreenApiAccountExpiredError),
    ("instance is deleted", GreenApiAccountExpiredError),
    ("bad phone number", GreenApiInvalidNumberError),
    ("validation failed", GreenApiInvalidNumberError),
)

_STATUS_ERRORS: dict[int, tuple[type[GreenApiError], str]] = {
    401: (GreenApiCredentialsError, "the API token was rejected"),
    403: (GreenApiInstanceNotFoundError, "the instance is unknown to this API URL"),
    404: (GreenApiMethodError, "the API does not know this method or HTTP verb"),
    499: (GreenApiTransientError, "the server was too slow and the request was closed"),
    500: (GreenApiTransientError, "server error"),
    502: (GreenApiTransientError, "bad gateway"),
    503: (GreenApiTransientError, "service unavailable"),
    504: (GreenApiTransientError, "gateway timeout"),
}


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _as_int(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def error_from_response(
    method: str, status_code: int, body: str, parsed: object, retry_after: float | None
) -> GreenApiError:
    """Map a non-200 answer to the matching exception. ``parsed`` is the JSON body, or None."""
    if status_code == 429:
        return GreenApiRateLimitedError(
            "rate limit exceeded", method=method, status_code=429, retry_after=retry_after
        )
    if status_code == 466:
        status = parsed.get("invokeStatus", {}) if isinstance(parsed, dict) else {}
        status = status if isinstance(status, dict) else {}
        used, total = _as_int(status.get("used")), _as_int(status.get("total"))
        counts = f" ({used} of {total} used)" if used is not None and total is not None else ""
        return GreenApiQuotaExceededError(
            f"monthly quota exceeded{counts}", method=method, used=used, total=total
        )
    if status_code == 400:
        lowered = body.lower()
        for needle, error_class in _BAD_REQUEST_MESSAGES:
            if needle in lowered:
                return error_class(_short(body), method=method, status_code=400)
        return GreenApiResponseError(f"unexpected bad request: {_short(body)}", method=method, status_code=400)
    if status_code in _STATUS_ERRORS:
        error_class, meaning = _STATUS_ERRORS[status_code]
        return error_class(meaning, method=method, status_code=status_code)
    if 500 <= status_code < 600:
        return GreenApiTransientError("server error", method=method, status_code=status_code)
    return GreenApiResponseError(
        f"unexpected answer: {_short(body) or 'empty body'}", method=method, status_code=status_code
    )
