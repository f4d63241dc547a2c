"""GreenApiEmulator: a local GREEN-API server on a background thread, with controls for tests.

It serves :class:`~airflow_provider_greenapi.emulator.greenapi.GreenApiService` through
:class:`~airflow_provider_greenapi.emulator.http_server.EmulatorHttpServer` and lets a test change an
instance's state, quota, faults and counters, and read its journal.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from airflow_provider_greenapi.emulator.config import (
    DEFAULT_HOST,
    ChatIdStyle,
    Contract,
    EmulatedInstance,
    EmulatorConfig,
    InstanceState,
    RateLimits,
    default_instance,
)
from airflow_provider_greenapi.emulator.faults import FaultPlan
from airflow_provider_greenapi.emulator.greenapi import GreenApiService
from airflow_provider_greenapi.emulator.http_server import EmulatorHttpServer, redact_path
from airflow_provider_greenapi.emulator.instances import Counters, LiveInstance
from airflow_provider_greenapi.emulator.journal import JournalEntry
from airflow_provider_greenapi.emulator.numbers_rule import NumbersRule

__all__ = ["DEFAULT_RATE_LIMITS", "GreenApiEmulator", "airflow_connection", "redact_path"]

DEFAULT_RATE_LIMITS = RateLimits()


def airflow_connection(base_url: str, id_instance: str, api_token: str, **extra: Any) -> str:
    """The JSON value of an ``AIRFLOW_CONN_*`` environment variable for a GREEN-API instance at ``base_url``
    (an emulator started elsewhere, say), with ``extra`` as the connection's extra fields."""
    connection: dict[str, Any] = {"conn_type": "greenapi", "host": base_url, "login": id_instance,
                                  "password": api_token}
    if extra:
        connection["extra"] = extra
    return json.dumps(connection)


class GreenApiEmulator:
    """A local GREEN-API server on a background thread, for tests, demos and benchmarks.

    ``with GreenApiEmulator() as emu: requests.post(f"{emu.base_url}/waInstance.../checkWhatsapp/...")``.
    ``instances=None`` serves the default instance ``1101000001`` / ``emulator-token-0001``;
    ``rate_limits=None`` turns the rate limits off (benchmarks); ``port=0`` picks a free port.
    """

    def __init__(
        self,
        instances: Iterable[EmulatedInstance] | None = None,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        rate_limits: RateLimits | None = DEFAULT_RATE_LIMITS,
        legacy_digits: bool = False,
        numbers: NumbersRule | None = None,
        chat_id_style: ChatIdStyle | str = ChatIdStyle.LID,
        contract: Contract | str = Contract.CURRENT,
        log_requests: bool = False,
    ) -> None:
        config = EmulatorConfig(
            instances=list(instances) if instances is not None else [default_instance()],
            host=host,
            port=port,
            rate_limits=rate_limits,
            legacy_digits=legacy_digits,
            numbers=numbers or NumbersRule(),
            chat_id_style=chat_id_style,
            contract=contract,
            log_requests=log_requests,
        )
        self._setup(config)

    @classmethod
    def from_config(cls, config: EmulatorConfig) -> GreenApiEmulator:
        emulator = cls.__new__(cls)
        emulator._setup(config)
        return emulator

    def _setup(self, config: EmulatorConfig) -> None:
        self.config = config
        self.service = GreenApiService(config)
        self._server: EmulatorHttpServer | None = None
        self._thread: threading.Thread | None = None

    # --- life cycle ----------------------------------------------------------------------------------------

    def start(self) -> GreenApiEmulator:
        """Bind and serve in a daemon thread; connections are accepted when this returns."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        server = EmulatorHttpServer((self.config.host, self.config.port), self.service, self.config.log_requests)
        self._server = server
        self._thread = threading.Thread(target=server.serve_until_stopped, name="greenapi-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake hung and delayed answers, close keep-alive connections. Idempotent."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.stop_serving()
        if thread is not None:
            thread.join(timeout=5)
        server.close_open_connections()
        server.server_close()

    def __enter__(self) -> GreenApiEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running: call start() or use it in a with block")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT``, the apiUrl to give a client (a wildcard bind is reached via loopback)."""
        host = self.config.host
        if host in ("", "0.0.0.0"):  # noqa: S104  (reading the bind address, not binding)
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def airflow_connection(self, id_instance: str | None = None, **extra: Any) -> str:
        """The JSON value of ``AIRFLOW_CONN_GREENAPI_DEFAULT`` for an instance (the first one by default),
        with ``extra`` as the connection's extra fields."""
        instance = self.instance(id_instance) if id_instance is not None else self.service.instances()[0]
        return airflow_connection(self.base_url, instance.id_instance, instance.api_token, **extra)

    # --- instances -----------------------------------------------------------------------------------------

    @property
    def instances(self) -> list[LiveInstance]:
        return self.service.instances()

    def add_instance(self, instance: EmulatedInstance) -> LiveInstance:
        return self.service.add_instance(instance)

    def instance(self, id_instance: str | int) -> LiveInstance:
        """The live instance (state, quota, counters, faults); KeyError when unknown."""
        return self.service.instance(id_instance)

    def set_contract(self, contract: Contract | str) -> None:
        """Serve the ``current`` or the ``legacy`` checkWhatsapp contract (see :class:`Contract`)."""
        self.service.set_contract(contract)

    def set_state(self, id_instance: str | int, state: InstanceState | str) -> None:
        self.instance(id_instance).set_state(state)

    def state_changes_after(self, id_instance: str | int, n_check_calls: int, new_state: InstanceState | str) -> None:
        """Make the instance become ``new_state`` once ``n_check_calls`` more checkWhatsapp calls arrived."""
        self.instance(id_instance).schedule_state_change(n_check_calls, new_state)

    def reset_quota(self, id_instance: str | int) -> None:
        self.instance(id_instance).reset_quota()

    def set_quota_used(self, id_instance: str | int, used: int) -> None:
        self.instance(id_instance).set_quota_used(used)

    def inject_faults(self, id_instance: str | int, plan: FaultPlan) -> None:
        self.instance(id_instance).inject_faults(plan)

    def clear_faults(self, id_instance: str | int) -> None:
        self.instance(id_instance).clear_faults()

    def counters(self, id_instance: str | int) -> Counters:
        return self.instance(id_instance).counters()

    def reset_counters(self, id_instance: str | int | None = None) -> None:
        """Forget the calls, checked numbers and journal of one instance, or of all."""
        for instance in self._targets(id_instance):
            instance.reset_counters()

    def journal(self, id_instance: str | int, method: str | None = None) -> list[JournalEntry]:
        """The requests the instance received (of ``method`` only, if given), in order of arrival."""
        return self.instance(id_instance).journal.entries(method)

    def requested_numbers(self, id_instance: str | int) -> Counter[str]:
        """checkWhatsapp requests the instance received per number, whatever the answer."""
        return self.instance(id_instance).journal.requested_numbers()

    def max_in_flight(self, id_instance: str | int) -> int:
        """The most checkWhatsapp requests in flight at once at the instance since the last reset."""
        return self.instance(id_instance).journal.max_in_flight

    def reset_journal(self, id_instance: str | int | None = None) -> None:
        """Forget the journal and in-flight high-water mark of one instance, or of all (counters stay)."""
        for instance in self._targets(id_instance):
            instance.journal.reset()

    def _targets(self, id_instance: str | int | None) -> list[LiveInstance]:
        return [self.instance(id_instance)] if id_instance is not None else self.service.instances()
