"""The HTTP side of the emulator: a keep-alive threading server and :class:`GreenApiEmulator`.

Each response goes out in a single write with ``TCP_NODELAY``; nothing on the request path does a DNS
look-up; request log lines show the path with the token replaced by ``***``.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import re
import selectors
import socket
import socketserver
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
from airflow_provider_greenapi.emulator.control import CONTROL_PREFIX, ControlApi
from airflow_provider_greenapi.emulator.faults import FaultPlan
from airflow_provider_greenapi.emulator.greenapi import Action, GreenApiService, Reply, error_body
from airflow_provider_greenapi.emulator.instances import NO_RESPONSE, Counters, LiveInstance
from airflow_provider_greenapi.emulator.journal import JournalEntry
from airflow_provider_greenapi.emulator.numbers_rule import NumbersRule

log = logging.getLogger("airflow_provider_greenapi.emulator")

MAX_BODY_BYTES = 1 << 20
_MAX_LINE = 65536
_MAX_HEADERS = 100
IDLE_TIMEOUT_S = 120.0
_REASONS = {status.value: status.phrase for status in HTTPStatus} | {
    0: "No Response",
    466: "Quota Exceeded",
    499: "Client Closed Request",
}
_TOKEN_IN_PATH = re.compile(r"(/waInstance[^/\s]*/[^/\s?#]*/)[^/\s?#\"]+")
DEFAULT_RATE_LIMITS = RateLimits()


def redact_path(text: str) -> str:
    """``text`` with the token of every GREEN-API path in it replaced by ``***``."""
    return _TOKEN_IN_PATH.sub(r"\1***", text)


class _HttpDate:
    """The ``Date`` header, formatted once a second instead of once a request."""

    second = -1
    value = ""

    @classmethod
    def now(cls) -> str:
        second = int(time.time())
        if second != cls.second:
            cls.value, cls.second = email.utils.formatdate(second, usegmt=True), second
        return cls.value


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "greenapi-emulator"
    sys_version = ""
    timeout = IDLE_TIMEOUT_S  # an idle keep-alive connection is closed after this long
    server: _EmulatorHttpServer
    request_headers: dict[str, str]

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.connection_closed(self.connection)

    def handle_one_request(self) -> None:
        """Read and answer one request.

        A lean stand-in for http.server's own, whose header parsing (through the email package) costs more
        than the whole answer. Header names are lower-cased into :attr:`request_headers`.
        """
        self.command = ""
        try:
            line = self.rfile.readline(_MAX_LINE + 1)
        except TimeoutError:  # idle keep-alive connection
            self.close_connection = True
            return
        if not line:
            self.close_connection = True
            return
        arrived = time.monotonic()
        self.raw_requestline = line
        self.requestline = line.decode("latin-1").rstrip("\r\n")
        if len(line) > _MAX_LINE:
            return self._reject(414, "URI Too Long")
        words = self.requestline.split()
        if len(words) != 3 or not words[2].startswith("HTTP/1."):
            return self._reject(400, "Bad Request")
        self.command, self.path, self.request_version = words
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADERS):
            raw = self.rfile.readline(_MAX_LINE + 1)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, colon, value = raw.decode("latin-1").partition(":")
            if not colon or len(raw) > _MAX_LINE:
                return self._reject(400, "Bad Request")
            headers[name.strip().lower()] = value.strip()
        else:
            return self._reject(431, "Request Header Fields Too Large")
        self.request_headers = headers
        connection = headers.get("connection", "").lower()
        if self.request_version == "HTTP/1.0":
            self.close_connection = "keep-alive" not in connection
        else:
            self.close_connection = "close" in connection
        if headers.get("expect", "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self._serve(arrived)

    def _reject(self, status: int, message: str) -> None:
        self.close_connection = True
        self._send(Reply(status, error_body(status, message)))
        log.debug("rejected a malformed request: %s", redact_path(self.requestline)[:200])

    def _serve(self, arrived: float) -> None:
        started = time.perf_counter()
        body = self._read_body()
        if body is None:
            return
        server = self.server
        if self.path.startswith(CONTROL_PREFIX):
            self._deliver(server.control.handle(self.command, self.path, body), started)
            return
        content_type = self.request_headers.get("content-type", "")
        addressee = server.service.addressee(self.path)
        if addressee is None:
            self._deliver(server.service.handle(self.command, self.path, content_type, body), started)
            return
        instance, method = addressee
        journal = instance.journal
        journal.request_started(method)
        recorded = False

        def record(status: int) -> None:
            # Recorded just before the client can see the outcome, so a test reading the journal once
            # its request returned always finds the entry.
            nonlocal recorded
            if not recorded:
                recorded = True
                journal.request_finished(method, body, status, arrived, time.monotonic())

        try:
            self._deliver(server.service.handle(self.command, self.path, content_type, body), started, record)
        finally:
            record(NO_RESPONSE)

    def _deliver(self, reply: Reply, started: float, record: Callable[[int], None] | None = None) -> None:
        """Send (or drop, or hang up on) ``reply``; ``record`` gets the status answered (0: none) just before
        the client can see it."""
        server = self.server
        record = record or (lambda status: None)
        if reply.delay_s > 0 and server.stop_event.wait(reply.delay_s):
            record(NO_RESPONSE)
            self._close_without_answer()
        elif reply.action is Action.RESPOND:
            record(reply.status)
            self._send(reply)
        else:
            if reply.action is Action.HANG:
                server.stop_event.wait(reply.hang_s)
            record(NO_RESPONSE)
            self._close_without_answer()
        self._log_request(reply, started)

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering a request whose body cannot be read."""
        if "chunked" in self.request_headers.get("transfer-encoding", "").lower():
            return self._read_chunked_body()
        declared = self.request_headers.get("content-length")
        if not declared:
            return b""
        try:
            length = int(declared)
            if length < 0:
                raise ValueError(declared)
        except ValueError:
            self.close_connection = True
            self._send(Reply(400, error_body(400, "invalid Content-Length")))
            return None
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(Reply(413, error_body(413, "Payload Too Large")))
            return None
        return self.rfile.read(length)

    def _read_chunked_body(self) -> bytes | None:
        chunks: list[bytes] = []
        size_total = 0
        while True:
            try:
                size = int(self.rfile.readline(1024).split(b";", 1)[0].strip(), 16)
                if size < 0:
                    raise ValueError(size)
            except ValueError:
                self.close_connection = True
                self._send(Reply(400, error_body(400, "invalid chunked body")))
                return None
            size_total += size
            if size_total > MAX_BODY_BYTES:
                self.close_connection = True
                self._send(Reply(413, error_body(413, "Payload Too Large")))
                return None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _send(self, reply: Reply) -> None:
        status = reply.status
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
            "Server: greenapi-emulator",
            f"Date: {_HttpDate.now()}",
        ]
        if reply.content_type:
            lines.append(f"Content-Type: {reply.content_type}; charset=utf-8")
        lines.append(f"Content-Length: {len(reply.body)}")
        lines.extend(f"{name}: {value}" for name, value in reply.headers)
        if self.close_connection:
            lines.append("Connection: close")
        elif self.request_version == "HTTP/1.0":
            lines.append("Connection: keep-alive")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head if self.command == "HEAD" else head + reply.body)

    def _close_without_answer(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _log_request(self, reply: Reply, started: float) -> None:
        level = logging.INFO if self.server.log_requests else logging.DEBUG
        if log.isEnabledFor(level):
            outcome = {Action.DROP: "dropped", Action.HANG: "hung up"}.get(reply.action, str(reply.status))
            elapsed_ms = (time.perf_counter() - started) * 1000
            log.log(level, "%s %s -> %s (%.1f ms)", self.command, redact_path(self.path), outcome, elapsed_ms)

    def log_message(self, format: str, *args: Any) -> None:
        """http.server's own messages (malformed requests, timeouts), token masked."""
        log.debug("%s: %s", self.client_address[0], redact_path(format % args))


class _EmulatorHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], service: GreenApiService, log_requests: bool) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.service = service
        self.control = ControlApi(service)
        self.log_requests = log_requests
        self.stop_event = threading.Event()
        self._connections: dict[socket.socket, threading.Thread] = {}  # open connection -> its handler
        self._connections_lock = threading.Lock()
        self._wake_reader, self._wake_writer = socket.socketpair()
        super().__init__(address, _RequestHandler)

    def serve_until_stopped(self) -> None:
        """Accept connections until :meth:`stop_serving`, which wakes this loop at once (no polling)."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self.stop_event.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self.socket and not self.stop_event.is_set():
                        self.handle_request()  # accepts the waiting connection

    def stop_serving(self) -> None:
        """End the accept loop and wake every delayed or hung answer."""
        self.stop_event.set()
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")

    def server_close(self) -> None:
        super().server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (socket.getfqdn), a DNS look-up we do not need.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def connection_opened(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections[connection] = threading.current_thread()

    def connection_closed(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.pop(connection, None)

    def close_open_connections(self, timeout: float = 2.0) -> None:
        """Close every connection and let its handler finish the answer (and log line) under way."""
        with self._connections_lock:
            open_connections = list(self._connections.items())
        for connection, _ in open_connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for _, handler in open_connections:
            if handler is not threading.current_thread():
                handler.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address[0], exc_info=True)


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
        self._server: _EmulatorHttpServer | None = None
        self._thread: threading.Thread | None = None

    # --- life cycle ----------------------------------------------------------------------------------------

    def start(self) -> GreenApiEmulator:
        """Bind and serve in a daemon thread; connections are accepted when this returns."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        server = _EmulatorHttpServer((self.config.host, self.config.port), self.service, self.config.log_requests)
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
    def running(self) -> bool:
        return self._server is not None

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
