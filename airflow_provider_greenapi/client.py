"""The GREEN-API client: one instance's HTTP calls, paced, retried and typed. Free of Airflow.

The token is part of every URL path, so URLs are built in one place (:meth:`GreenApiClient._url`) and
never leave this module: exceptions and log lines name the method and the status, not the URL.
"""

from __future__ import annotations

import email.utils
import itertools
import logging
import random
import re
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from airflow_provider_greenapi.errors import (
    GreenApiError,
    GreenApiInvalidNumberError,
    GreenApiQuotaExceededError,
    GreenApiRateLimitedError,
    GreenApiResponseError,
    GreenApiTlsError,
    GreenApiTransientError,
    error_from_response,
)
from airflow_provider_greenapi.models import InstanceState, WhatsappCheck
from airflow_provider_greenapi.rate_limit import RateLimiter, shared_limiter
from airflow_provider_greenapi.redaction import redact, register_secret
from airflow_provider_greenapi.settings import CHAT_ID, PHONE_NUMBER, ClientSettings, value_shape

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.green-api.com"
CHECK_WHATSAPP = "checkWhatsapp"
GET_STATE_INSTANCE = "getStateInstance"
GET_SETTINGS = "getSettings"
# The pace kept for the 1/s methods (GREEN-API's limit for getStateInstance and getSettings): their limit allows
# no burst, so a request that arrives a little early (network jitter) would be refused at exactly 1/s.
_STATE_METHODS_PACE = 0.8


class QuotaLedger(Protocol):
    """What counts the month's quota (warehouse/ledger.py's UsageLedger): the client reserves every checkWhatsapp
    call in it before sending it (it raises QuotaBudgetExhausted when none is left), and tells it the counts a
    466 answer reports. ``pace`` is the client's checkWhatsapp pace, which tells the ledger whether counting
    each call on its own would hold the pace back."""

    def reserve_call(self, method: str, pace: float | None = None) -> None: ...

    def record_reported(self, used: int | None, total: int | None) -> None: ...


@dataclass
class ClientStats:
    """What the client did, for the run summary and the in-flight window. Updated under the client's lock.

    ``answered`` counts the 200 answers per method and ``answer_seconds`` the time they took on the wire
    (from sending to the answer, without the wait for the pacer)."""

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    retries: int = 0
    rate_limited: int = 0
    answered: Counter[str] = field(default_factory=Counter)
    answer_seconds: dict[str, float] = field(default_factory=dict)


class GreenApiClient:
    """One GREEN-API instance. Thread-safe: share one client across the threads of a bulk check.

    ``ledger``, when given, counts every checkWhatsapp call before it is sent (see :class:`QuotaLedger`):
    the client is the one place that spends quota, so it is the one place that counts it."""

    def __init__(
        self,
        api_url: str,
        id_instance: str,
        api_token: str,
        settings: ClientSettings | None = None,
        *,
        ledger: QuotaLedger | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_url = validate_api_url(api_url)
        self.id_instance = validate_id_instance(id_instance)
        if not api_token or not api_token.strip():
            raise ValueError("The API token (apiTokenInstance) is empty: copy it from the GREEN-API console.")
        register_secret(api_token)
        self._token = api_token.strip()
        self.settings = settings or ClientSettings()
        self.ledger = ledger
        self._sleep = sleep
        self.stats = ClientStats()
        self._stats_lock = threading.Lock()
        self._check_body = self.settings.check_whatsapp_body  # becomes phoneNumber on a host without chatId
        self._sent_at: dict[int, float] = {}  # checkWhatsapp requests on the wire: token -> time.monotonic()
        self._tokens = itertools.count()
        self._session = requests.Session()
        # one connection per request in flight, and one for the run's state watch
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self.settings.max_in_flight + 1, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update({"Content-Type": "application/json", "Accept": "application/json"})
        # Proxies (with NO_PROXY) and the CA bundle come from the environment as requests reads them, but
        # once: with trust_env on, requests re-reads the whole environment on every request.
        environment = self._session.merge_environment_settings(self.api_url, {}, None, None, None)
        self._session.trust_env = False
        self._session.proxies.update(environment["proxies"])
        self._session.verify = environment["verify"]
        paces = {CHECK_WHATSAPP: self.settings.requests_per_second,
                 GET_STATE_INSTANCE: _STATE_METHODS_PACE, GET_SETTINGS: _STATE_METHODS_PACE}
        self._limiters: dict[str, RateLimiter] = {
            method: shared_limiter(self.api_url, self.id_instance, method, pace) for method, pace in paces.items()
        }

    @property
    def calls_spent(self) -> int:
        """checkWhatsapp requests this client sent, retries included: each one call of the month's quota. The
        run's one count of calls spent (the summary and the usage history read it here)."""
        return self.stats.requests[CHECK_WHATSAPP]

    @property
    def check_pace(self) -> float:
        """The checkWhatsapp pace in force for this instance in this process (requests a second)."""
        return self._limiters[CHECK_WHATSAPP].requests_per_second

    def oldest_check_age(self) -> float:
        """Seconds the oldest checkWhatsapp request still on the wire has waited for its answer (0: none)."""
        with self._stats_lock:
            oldest = min(self._sent_at.values(), default=None)
        return 0.0 if oldest is None else max(0.0, time.monotonic() - oldest)

    @property
    def check_whatsapp_body(self) -> str:
        """The field checkWhatsapp requests carry the number in: ``chatId``, or ``phoneNumber`` (see
        :meth:`check_whatsapp`)."""
        return self._check_body

    def __repr__(self) -> str:
        return f"GreenApiClient(api_url={self.api_url!r}, id_instance={self.id_instance!r}, api_token='***')"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> GreenApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- API methods -------------------------------------------------------------------------------------

    def check_whatsapp(self, phone_number: str) -> WhatsappCheck:
        """Whether ``phone_number`` (international digits) has WhatsApp. Spends one check of the quota.

        Sends ``{"chatId": "<digits>"}`` (GREEN-API's current contract) unless the settings say
        ``phoneNumber``. A host that refuses ``chatId`` with a validation error follows the older contract:
        the number is asked again as ``{"phoneNumber": <digits>}`` and, once that is answered, every later
        check of this client sends ``phoneNumber`` (said once in the log).
        """
        if not phone_number.isdigit():
            raise ValueError("check_whatsapp takes a normalised number of digits only")
        body_field = self._check_body
        try:
            try:
                body = self._call("POST", CHECK_WHATSAPP, _check_payload(body_field, phone_number))
            except GreenApiInvalidNumberError as error:
                if body_field != CHAT_ID or not _is_validation_failure(error):
                    raise
                body = self._call("POST", CHECK_WHATSAPP, _check_payload(PHONE_NUMBER, phone_number))
                self._use_phone_number(error)
        except GreenApiQuotaExceededError as error:
            self._record_reported(error)
            raise
        exists = body.get("existsWhatsapp") if isinstance(body, dict) else None
        if not isinstance(exists, bool):
            raise GreenApiResponseError(
                "the answer has no boolean existsWhatsapp", method=CHECK_WHATSAPP, status_code=200
            )
        chat_id = body.get("chatId")
        return WhatsappCheck(phone_number, exists, chat_id if isinstance(chat_id, str) and chat_id else None)

    def _record_reported(self, error: GreenApiQuotaExceededError) -> None:
        """GREEN-API's own count of the month (a 466 answer) into the ledger, best effort: the 466 is what
        matters to the run, and it is raised whatever happens here."""
        if self.ledger is None:
            return
        try:
            self.ledger.record_reported(error.used, error.total)
        except Exception as db_error:
            log.warning("Could not record the 466 answer in the usage ledger: %s", db_error)

    def _use_phone_number(self, refusal: GreenApiError) -> None:
        with self._stats_lock:
            if self._check_body == PHONE_NUMBER:
                return
            self._check_body = PHONE_NUMBER
        log.warning(
            "GREEN-API at %s refused checkWhatsapp's chatId body (%s) and answered the same number sent as "
            "phoneNumber: this host follows the older contract, so the rest of this run sends phoneNumber. "
            "To skip this probe, set the connection extra check_whatsapp_body to phoneNumber.",
            self.api_url, refusal.detail,
        )

    def get_state_instance(self, *, max_retries: int | None = None) -> InstanceState:
        """The instance's state (free of quota, 1 request/s). ``max_retries`` overrides the settings' for
        callers that poll anyway."""
        body = self._call("GET", GET_STATE_INSTANCE, max_retries=max_retries)
        if body is not None and not isinstance(body, dict):
            raise GreenApiResponseError("unreadable state answer", method=GET_STATE_INSTANCE, status_code=200)
        return InstanceState.from_api(None if body is None else body.get("stateInstance"))

    def get_settings(self) -> dict[str, Any]:
        """The instance's settings (free of quota, 1 request/s)."""
        body = self._call("GET", GET_SETTINGS)
        if not isinstance(body, dict):
            raise GreenApiResponseError("unreadable settings answer", method=GET_SETTINGS, status_code=200)
        return body

    # --- transport ---------------------------------------------------------------------------------------

    def _url(self, method: str) -> str:
        return f"{self.api_url}/waInstance{self.id_instance}/{method}/{self._token}"

    def _count(self, *, method: str | None = None, status: int | None = None, retry: bool = False) -> None:
        with self._stats_lock:
            if method is not None:
                self.stats.requests[method] += 1
            if status is not None:
                self.stats.statuses[status] += 1
                self.stats.rate_limited += status == 429
            self.stats.retries += retry

    def _count_answer(self, method: str, seconds: float) -> None:
        with self._stats_lock:
            self.stats.answered[method] += 1
            self.stats.answer_seconds[method] = self.stats.answer_seconds.get(method, 0.0) + seconds

    def _call(
        self, http_method: str, method: str, payload: dict[str, Any] | None = None, max_retries: int | None = None
    ) -> Any:
        retries = self.settings.max_retries if max_retries is None else max_retries
        attempt = 0
        while True:
            try:
                return self._attempt(http_method, method, payload)
            except GreenApiError as error:
                if not error.retryable or attempt >= retries:
                    raise
                delay = self._backoff(attempt, error)
                attempt += 1
                self._count(retry=True)
                log.warning(
                    "GREEN-API %s failed (%s); retry %d of %d in %.1f s.",
                    method, error, attempt, retries, delay,
                )
                self._sleep(delay)

    def _backoff(self, attempt: int, error: GreenApiError) -> float:
        if isinstance(error, GreenApiRateLimitedError) and error.retry_after is not None:
            delay = min(error.retry_after, self.settings.retry_backoff_max)
            self._limiters[error.method].pause(delay)
            return delay
        ceiling = min(self.settings.retry_backoff * 2**attempt, self.settings.retry_backoff_max)
        return ceiling * random.uniform(0.5, 1.0)

    def _attempt(self, http_method: str, method: str, payload: dict[str, Any] | None) -> Any:
        self._limiters[method].acquire()
        if method == CHECK_WHATSAPP and self.ledger is not None:
            self.ledger.reserve_call(method, pace=self.check_pace)  # counted before it is sent
        self._count(method=method)
        sent, token = time.monotonic(), next(self._tokens)
        if method == CHECK_WHATSAPP:
            with self._stats_lock:
                self._sent_at[token] = sent
        try:
            response = self._session.request(
                http_method, self._url(method), json=payload, timeout=self.settings.timeout
            )
        except requests.Timeout:
            raise GreenApiTransientError(
                f"no answer within the {self.settings.timeout:g} s timeout", method=method
            ) from None
        except requests.exceptions.SSLError as exc:
            lasting = _lasting_tls_failure(exc)
            raise (GreenApiTransientError(f"could not reach {self.api_url} (SSLError)", method=method)
                   if lasting is None else GreenApiTlsError(f"{self.api_url}: {lasting}", method=method)) from None
        except requests.RequestException as exc:
            # requests' messages contain the URL, hence the token: say what failed in a few words instead.
            raise GreenApiTransientError(
                f"could not reach {self.api_url} ({_describe(exc)})", method=method
            ) from None
        finally:
            with self._stats_lock:
                self._sent_at.pop(token, None)
        self._count(status=response.status_code)
        text = response.text
        parsed: Any = None
        if text.strip():
            try:
                parsed = response.json()
            except ValueError:
                parsed = None
        if response.status_code == 200:
            if parsed is None and text.strip() not in ("", "null"):
                raise GreenApiResponseError("the answer is not JSON", method=method, status_code=200)
            self._count_answer(method, time.monotonic() - sent)
            return parsed
        raise error_from_response(
            method, response.status_code, redact(text), parsed, _retry_after(response.headers.get("Retry-After"))
        )


def _check_payload(body_field: str, phone_number: str) -> dict[str, Any]:
    return {CHAT_ID: phone_number} if body_field == CHAT_ID else {PHONE_NUMBER: int(phone_number)}


def _is_validation_failure(error: GreenApiError) -> bool:
    """A 400 ``Validation failed…``: the request's shape was refused (an older host knows no chatId), not
    the number (that is ``bad phone number…``)."""
    return error.status_code == 400 and "validation failed" in error.detail.lower()


_ERRNO_REASON = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def _describe(exc: BaseException) -> str:
    """The root reason of a network error in a few words ("Connection refused"), never the URL."""
    text = redact(str(exc))
    found = _ERRNO_REASON.search(text)
    if found:
        return found.group(1).strip()
    for marker in ("RemoteDisconnected", "Connection aborted", "Connection reset", "IncompleteRead",
                   "BadStatusLine", "SSLError", "ProxyError"):
        if marker.lower() in text.lower():
            return marker
    return type(exc).__name__


# OpenSSL's reasons for a handshake that fails the same way every time: the peer speaks no TLS (an https://
# URL to a plain-HTTP port), or no protocol version or cipher both sides accept. A dropped connection or an
# unexpected EOF mid-handshake may pass, and stays transient.
_LASTING_TLS_REASONS = frozenset({
    "WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG",
    "UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE", "TLSV1_ALERT_PROTOCOL_VERSION", "VERSION_TOO_LOW",
    "SSLV3_ALERT_HANDSHAKE_FAILURE", "NO_SHARED_CIPHER", "TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE",
})


def _lasting_tls_failure(exc: BaseException) -> str | None:
    """What is wrong with the TLS of a failed request, in a few words, if a retry cannot change it: a
    certificate that does not verify, or a handshake that cannot succeed; None when it may pass."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:  # requests > urllib3 > ssl
        seen.append(current)
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"its TLS certificate is not trusted here ({redact(str(current.verify_message))})"
        if isinstance(current, ssl.SSLError) and current.reason in _LASTING_TLS_REASONS:
            return f"no TLS session could be set up ({current.reason}: is it a TLS port, is https:// right?)"
        nested = next((a for a in current.args if isinstance(a, BaseException)), None)
        reason = getattr(current, "reason", None)  # urllib3's MaxRetryError keeps its cause there
        current = nested or (reason if isinstance(reason, BaseException) else None) or current.__cause__ \
            or current.__context__
    return None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def validate_api_url(api_url: str | None) -> str:
    """The API URL without a trailing slash; a clear ValueError when it is not an http(s) URL."""
    url = (api_url or "").strip() or DEFAULT_API_URL
    if "://" not in url:
        url = "https://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        # Named by its scheme and host only: a full method URL pasted here ends with the token.
        shown = f"{parts.scheme}://{parts.hostname}" if parts.hostname else value_shape(api_url)
        raise ValueError(
            f"The API URL ({shown}) is not valid: use the apiUrl of the instance from the GREEN-API console, "
            "e.g. https://7103.api.greenapi.com"
        )
    if "/waInstance" in parts.path:
        raise ValueError(
            "The API URL must be the host only (e.g. https://7103.api.greenapi.com), not a full method URL."
        )
    return url.rstrip("/")


def validate_id_instance(id_instance: object) -> str:
    text = str(id_instance if id_instance is not None else "").strip()
    if not text:
        raise ValueError("The instance ID (idInstance) is empty: copy it from the GREEN-API console.")
    if not text.isascii() or not text.isdigit():
        raise ValueError(
            f"The instance ID (idInstance) must be digits only, e.g. 1101000001 (got {value_shape(text)}: the API "
            "token belongs in the password field)."
        )
    return text
