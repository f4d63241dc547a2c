"""The command line: greenapi-emulator / python -m airflow_provider_greenapi.emulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from airflow_provider_greenapi.emulator.__main__ import build_parser, config_from_args, is_loopback

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TOKEN = "emulator-token-0001"


@dataclass
class Running:
    process: subprocess.Popen[str]
    base_url: str
    ready_file: Path

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
        self.process.send_signal(sig)
        stdout, stderr = self.process.communicate(timeout=5)
        return self.process.returncode, stdout, stderr


def start(tmp_path: Path, *args: str) -> Running:
    ready_file = tmp_path / "emulator.url"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_greenapi.emulator", "--port", "0", "--ready-file", str(ready_file),
         *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    deadline = time.monotonic() + 15
    while not ready_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the emulator did not start: {process.communicate()}")
        time.sleep(0.02)
    return Running(process, ready_file.read_text().strip(), ready_file)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    emulator = start(tmp_path)
    yield emulator
    if emulator.process.poll() is None:
        emulator.process.kill()
        emulator.process.communicate()


def test_cli_serves_prints_the_connection_and_stops_on_sigterm(running: Running) -> None:
    url = f"{running.base_url}/waInstance1101000001/checkWhatsapp/{DEFAULT_TOKEN}"
    response = requests.post(url, json={"phoneNumber": 441234567890}, timeout=5)
    assert response.status_code == 200
    started = time.monotonic()
    returncode, stdout, stderr = running.stop()
    assert returncode == 0
    assert time.monotonic() - started < 3
    assert f"listening on {running.base_url}" in stdout
    (export,) = [line for line in stdout.splitlines() if "AIRFLOW_CONN_GREENAPI_DEFAULT=" in line]
    connection = json.loads(export.split("=", 1)[1].strip().strip("'"))
    assert connection == {
        "conn_type": "greenapi", "host": running.base_url, "login": "1101000001", "password": DEFAULT_TOKEN
    }  # fmt: skip
    assert "stopped" in stdout
    request_lines = [line for line in stderr.splitlines() if "/waInstance" in line]
    assert request_lines and all("/checkWhatsapp/*** -> 200" in line for line in request_lines)
    assert DEFAULT_TOKEN not in stderr
    assert not running.ready_file.exists()


def test_ctrl_c_stops_cleanly(running: Running) -> None:
    returncode, stdout, _ = running.stop(signal.SIGINT)
    assert returncode == 0
    assert "stopped" in stdout


def test_instances_flags_and_quiet(tmp_path: Path) -> None:
    running = start(tmp_path, "--instance", "7103000001:tok-a:5", "--instance", "7103000002:tok-b:business:blocked",
                    "--legacy-digits", "--quiet")  # fmt: skip
    try:
        base = running.base_url
        a = requests.post(f"{base}/waInstance7103000001/checkWhatsapp/tok-a", json={"phoneNumber": 7900123456789})
        assert a.json() == {"code": 400, "description": "bad phone number, valid 11 or 12 digits"}
        b = requests.post(f"{base}/waInstance7103000002/checkWhatsapp/tok-b", json={"phoneNumber": 79001234567})
        assert b.json() == {"code": 400, "description": "instance is starting or not authorized"}
        listed = requests.get(f"{base}/__emulator__/instances", timeout=5).json()
        assert [(i["id_instance"], i["monthly_quota"], i["state"]) for i in listed] == [
            ("7103000001", 5, "authorized"), ("7103000002", 30_000, "blocked")
        ]  # fmt: skip
        assert requests.get(f"{base}/waInstance1101000001/getStateInstance/x", timeout=5).status_code == 403
    finally:
        returncode, _, stderr = running.stop()
    assert returncode == 0
    assert "/waInstance" not in stderr  # --quiet: no request log
    assert "tok-a" not in stderr and "tok-b" not in stderr


def test_a_non_loopback_host_is_warned_about(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "airflow_provider_greenapi.emulator", "--host", "192.0.2.1", "--port", "0"],
        capture_output=True, text=True, timeout=15, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert "WARNING: binding to 192.0.2.1" in done.stderr
    assert done.returncode == 1  # 192.0.2.1 (TEST-NET-1) is not an address of this machine
    assert "cannot listen on 192.0.2.1" in done.stderr


def test_a_bad_configuration_exits_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "airflow_provider_greenapi.emulator", "--instance", "abc"],
        capture_output=True, text=True, timeout=15, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 2
    assert "ID:TOKEN" in done.stderr


@pytest.mark.parametrize(
    ("host", "loopback"), [("127.0.0.1", True), ("localhost", True), ("::1", True), ("0.0.0.0", False),
                           ("10.1.2.3", False), ("example.org", False)]
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_flags_build_the_config() -> None:
    args = build_parser().parse_args(
        ["--instance", "1101000009:t:business", "--no-rate-limit", "--latency", "200", "--jitter", "50",
         "--error-rate", "0.1", "--errors", "500,502", "--fault-script", "timeout_limit,ok", "--seed", "9",
         "--chat-id", "c.us", "--us-extra-zeros", "--exists-share", "0.5", "--legacy-digits",
         "--contract", "legacy"]
    )  # fmt: skip
    config = config_from_args(args)
    (instance,) = config.instances
    assert (instance.id_instance, instance.api_token, instance.plan) == ("1101000009", "t", "business")
    assert config.rate_limits is None
    assert config.legacy_digits is True
    assert config.chat_id_style == "c.us" and config.contract == "legacy"
    assert config.numbers.us_extra_zeros is True and config.numbers.exists_share == 0.5
    assert instance.faults is not None
    assert instance.faults.to_dict() | {} == {
        "methods": ["checkWhatsapp"], "error_rate": 0.1, "errors": ["500", "502"],
        "script": ["timeout_limit", "ok"], "loop_script": False, "latency_ms": 200.0, "jitter_ms": 50.0,
        "hang_s": 5.0, "retry_after_s": 1, "seed": 9,
    }  # fmt: skip


def test_the_config_file_of_the_docs_loads(tmp_path: Path) -> None:
    doc = (REPO / "docs" / "emulator.md").read_text()
    example = doc.split("<!-- config-example -->", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    (tmp_path / "numbers.csv").write_text("79001234567,true\n")
    (tmp_path / "emulator.json").write_text(example)
    config = config_from_args(build_parser().parse_args(["--config", str(tmp_path / "emulator.json")]))
    assert [i.id_instance for i in config.instances] == ["1101000001", "1101000002"]
    assert config.instances[1].faults is not None
    assert config.rate_limits is not None and config.rate_limits.retry_after_s == 1
    assert config.numbers.has_whatsapp("79001234567")


def test_flags_override_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "emulator.json").write_text('{"port": 9999, "host": "127.0.0.1", "legacy_digits": false}')
    args = build_parser().parse_args(["--config", str(tmp_path / "emulator.json"), "--port", "0"])
    config = config_from_args(args)
    assert config.port == 0
    assert [i.id_instance for i in config.instances] == ["1101000001"]


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("greenapi-emulator")
    if not script.exists():
        pytest.skip("the package is not installed in this environment")
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=15)
    assert done.returncode == 0
    assert "--ready-file" in done.stdout
