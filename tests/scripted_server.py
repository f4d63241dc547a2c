"""A tiny real HTTP server answering a script of (status, body, headers), for client tests."""

from __future__ import annotations

import json
import ssl
import tempfile
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class _CountingServer(ThreadingHTTPServer):
    """Counts the connections it accepts, those whose TLS handshake fails included."""

    daemon_threads = True
    connections = 0

    def get_request(self) -> Any:
        self.connections += 1
        return super().get_request()


class ScriptedServer:
    """Answers each request with the next scripted reply (the last one repeats); records the requests.

    ``tls=True`` serves HTTPS with a throw-away self-signed certificate (``certificate``), which no client
    trusts unless told to; ``connections`` counts the connections accepted (a failed handshake too)."""

    def __init__(self, tls: bool = False) -> None:
        self.replies: deque[tuple[int, str, dict[str, str]]] = deque()
        self.requests: list[tuple[str, str, Any]] = []
        self.default: tuple[int, str, dict[str, str]] = (200, '{"existsWhatsapp": true}', {})
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                server.requests.append((self.command, self.path, json.loads(raw) if raw else None))
                status, body, headers = server.replies.popleft() if server.replies else server.default
                if status == -1:  # hang for `body` seconds, then drop the connection
                    time.sleep(float(body))
                    status = 0
                if status == 0:  # drop the connection without an answer
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _reply

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = _CountingServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.certificate: Path | None = None
        if tls:
            from tests.snowflake_server import write_self_signed_certificate

            self.certificate, key = write_self_signed_certificate(Path(tempfile.mkdtemp(prefix="greenapi-tls-")))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.certificate, key)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
            self.url = self.url.replace("http://", "https://")
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def connections(self) -> int:
        return self._httpd.connections

    def script(self, *replies: tuple[int, str] | tuple[int, str, dict[str, str]]) -> None:
        for reply in replies:
            status, body, *rest = reply
            self.replies.append((status, body, rest[0] if rest else {}))

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
