"""The emulator's HTTP server: a keep-alive threading server and the handler that reads and answers requests.

Each response goes out in a single write with ``TCP_NODELAY``; nothing on the request path does a DNS
look-up; request log lines show the path with the token replaced by ``***``. :class:`GreenApiEmulator`
(in ``server.py``) runs it on a background thread.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import re
import selectors
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from airflow_provider_greenapi.emulator.control import CONTROL_PREFIX, ControlApi
from airflow_provider_greenapi.emulator.greenapi import Action, GreenApiService, Reply, error_body
from airflow_provider_greenapi.emulator.instances import NO_RESPONSE

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
    server: EmulatorHttpServer
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
        """Answer ``status`` with ``message`` and close the connection: the request cannot be read on."""
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
            self._reject(400, "invalid Content-Length")
            return None
        if length > MAX_BODY_BYTES:
            self._reject(413, "Payload Too Large")
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
                self._reject(400, "invalid chunked body")
                return None
            size_total += size
            if size_total > MAX_BODY_BYTES:
                self._reject(413, "Payload Too Large")
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


class EmulatorHttpServer(ThreadingHTTPServer):
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
