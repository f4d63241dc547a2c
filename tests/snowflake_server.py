"""fakesnow's Snowflake emulator (``fakesnow[server]``, Snowflake's HTTP API over DuckDB) served over TLS on a
free loopback port, so that the stock SnowflakeHook reaches it: the hook always speaks HTTPS and takes host and
port from the connection's extra.

    reason = why_unavailable()             # None, or why the tests must skip
    with FakesnowServer() as server:       # uvicorn in a subprocess, a throw-away certificate for 127.0.0.1
        server.environ()                   # {"REQUESTS_CA_BUNDLE": ...}: set it where the hook runs
        server.airflow_conn("MY_DB")       # AIRFLOW_CONN_* value (JSON, conn_type snowflake)
        server.new_database()              # a fresh database name (created by the first login into it)

One in-memory DuckDB holds every database while the server runs, shared by all sessions (a database is
created by the first login that names it); nothing survives the server.

Beware: SQL that fakesnow cannot handle comes back as HTTP 500, and the Snowflake connector retries it for
over ten minutes instead of raising. Guard tests with a timeout (pytest-timeout, or ``run_with_timeout``).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.airflow_cli import free_port

T = TypeVar("T")
ACCOUNT = "fakesnow"
WAREHOUSE = "GREENAPI_WH"


def why_unavailable() -> str | None:
    """None when fakesnow's server and the Snowflake provider are installed, else why the tests must skip."""
    import importlib.util

    for module, package in [("fakesnow.server", "fakesnow[server]"), ("uvicorn", "fakesnow[server]"),
                            ("airflow.providers.snowflake", "apache-airflow-providers-snowflake")]:
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            return f"{package} is not installed: run scripts/install-engine-test-deps.sh (or pip install '.[dev]')"
    return None


def write_self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A throw-away key and self-signed certificate for 127.0.0.1 and localhost: (certificate, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "greenapi-tests fakesnow 127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "fakesnow.crt", folder / "fakesnow.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def system_ca_bundle() -> Path:
    """The CA bundle the process trusts today: ``$REQUESTS_CA_BUNDLE``, ``$SSL_CERT_FILE``, else certifi's."""
    for variable in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(variable)
        if value and os.path.isfile(value):
            return Path(value)
    import certifi

    return Path(certifi.where())


class FakesnowServer:
    """``uvicorn fakesnow.server:app`` over TLS in a subprocess; stopped (and its files deleted) on close."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="greenapi-fakesnow-"))
        self.log = self.dir / "server.log"
        self.certificate, self._key = write_self_signed_certificate(self.dir)
        # The connector trusts REQUESTS_CA_BUNDLE: every CA the process trusted before, plus this certificate.
        self.ca_bundle = self.dir / "ca-bundle.pem"
        self.ca_bundle.write_bytes(system_ca_bundle().read_bytes().rstrip(b"\n") + b"\n"
                                   + self.certificate.read_bytes())
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> FakesnowServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def start(self, timeout: float = 60) -> FakesnowServer:
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "fakesnow.server:app", "--host", self.host,
                 "--port", str(self.port), "--ssl-keyfile", str(self._key), "--ssl-certfile", str(self.certificate),
                 "--log-level", "warning", "--no-access-log"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.dir, start_new_session=True,
            )
        self._wait_until_answering(timeout)
        return self

    def _wait_until_answering(self, timeout: float) -> None:
        """Wait for a TLS answer that verifies against ``ca_bundle`` (any HTTP status: the server is up)."""
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"fakesnow exited with {self.process.returncode}:\n{self._log_tail()}")
            request = urllib.request.Request(f"{self.url}/session", method="POST", data=b"")
            try:
                with urllib.request.urlopen(request, timeout=5, context=context):
                    return
            except urllib.error.HTTPError:
                return  # 401 without a session token: it answers, over TLS we trust
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"fakesnow did not answer on {self.url} within {timeout:.0f} s:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(no log)"

    def environ(self) -> dict[str, str]:
        """What the process running the SnowflakeHook needs in its environment to trust the server."""
        return {"REQUESTS_CA_BUNDLE": str(self.ca_bundle)}

    def connection_extra(self, database: str, schema: str = "PUBLIC") -> dict[str, Any]:
        return {
            "account": ACCOUNT, "host": self.host, "port": self.port, "database": database, "schema": schema,
            "warehouse": WAREHOUSE, "insecure_mode": True,  # no OCSP checks (they would go to the internet)
            "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
        }

    def airflow_conn(self, database: str, schema: str = "PUBLIC") -> str:
        """An ``AIRFLOW_CONN_*`` value for the stock SnowflakeHook (login and password: any)."""
        return json.dumps({"conn_type": "snowflake", "login": "greenapi", "password": "fakesnow-any",
                           "schema": schema, "extra": self.connection_extra(database, schema)})

    @staticmethod
    def new_database() -> str:
        """A fresh database name; fakesnow creates it at the first login that names it."""
        return f"T_{uuid.uuid4().hex[:12].upper()}"

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def run_with_timeout(call: Callable[[], T], timeout: float = 60, what: str = "the statement") -> T:
    """``call()``, or AssertionError after ``timeout`` s: fakesnow answers SQL it cannot run with HTTP 500, and
    the connector retries that for over ten minutes. A stuck call is left in a daemon thread, which does not
    hold up the interpreter's exit."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:
            outcome["error"] = error

    worker = threading.Thread(target=target, name="fakesnow-guard", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise AssertionError(f"{what} got no answer from fakesnow within {timeout:.0f} s: fakesnow answers SQL "
                             "it cannot run with HTTP 500 and the connector retries (see the server's log)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
