"""URL shapes, the order of the 403/401/404 checks, keep-alive."""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess

import pytest

from airflow_provider_greenapi.emulator import GreenApiEmulator
from tests.emulator.support import ID, TOKEN, Api


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_curl_example_of_the_docs_works_unchanged(api: Api) -> None:
    done = subprocess.run(
        [
            "curl", "--silent", "--location", api.url("checkWhatsapp"),
            "--header", "Content-Type: application/json",
            "--data-raw", '{"phoneNumber": 441234567890}',
            "--write-out", "\n%{http_code}",
        ],
        capture_output=True, text=True, timeout=10, check=True,
    )  # fmt: skip
    body, status = done.stdout.rsplit("\n", 1)
    assert status == "200"
    assert body == '{"existsWhatsapp": true, "chatId": "128635900014549@lid"}'


def test_check_whatsapp_answers_the_documented_request(api: Api) -> None:
    response = api.session.post(
        api.url("checkWhatsapp"), json={"phoneNumber": 441234567890}, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"existsWhatsapp": True, "chatId": "128635900014549@lid"}  # the LID, by default


def test_both_spellings_of_the_method_are_served(api: Api) -> None:
    for method in ("checkWhatsapp", "CheckWhatsapp"):
        response = api.session.post(api.url(method), json={"phoneNumber": 79001234567})
        assert response.status_code == 200, method
    assert api.emulator.counters(ID).count("checkWhatsapp", 200) == 2


def test_unknown_instance_is_403_with_a_short_json_body(api: Api) -> None:
    response = api.session.post(api.url("checkWhatsapp", id_instance="1101999999"), json={"phoneNumber": 1})
    assert response.status_code == 403
    assert response.json() == {"code": 403, "description": "Forbidden"}


def test_unknown_instance_wins_over_a_wrong_token(api: Api) -> None:
    response = api.session.get(api.url("getStateInstance", id_instance="1101999999", token="wrong"))
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("verb", "method", "body"),
    [
        ("POST", "checkWhatsapp", {"phoneNumber": 79001234567}),
        ("POST", "checkWhatsapp", {}),  # auth comes before validation
        ("GET", "getStateInstance", None),
        ("GET", "getSettings", None),
        ("GET", "noSuchMethod", None),  # auth comes before routing
    ],
)
def test_wrong_token_is_401_with_an_empty_body(api: Api, verb: str, method: str, body: object) -> None:
    response = api.session.request(verb, api.url(method, token="wrong-token"), json=body)
    assert response.status_code == 401
    assert response.content == b""
    assert api.emulator.counters(ID).count(method, 401) == 1


def test_missing_token_is_401(api: Api) -> None:
    response = api.session.get(f"{api.emulator.base_url}/waInstance{ID}/getStateInstance")
    assert response.status_code == 401
    assert response.content == b""


@pytest.mark.parametrize(
    ("verb", "method"),
    [
        ("GET", "checkWhatsapp"),
        ("PUT", "checkWhatsapp"),
        ("POST", "getStateInstance"),
        ("POST", "getSettings"),
        ("GET", "noSuchMethod"),
        ("POST", "sendMessage"),
    ],
)
def test_wrong_http_verb_or_unknown_method_is_404(api: Api, verb: str, method: str) -> None:
    response = api.session.request(verb, api.url(method), json={"phoneNumber": 79001234567})
    assert response.status_code == 404
    assert response.json() == {"code": 404, "description": "Not Found"}
    assert api.emulator.counters(ID).count(method, 404) == 1
    assert api.emulator.instance(ID).quota_used == 0


@pytest.mark.parametrize("path", ["/", "/favicon.ico", f"/waInstance{ID}", "/api/checkWhatsapp", "/a/b/c/d/e"])
def test_paths_outside_the_api_are_404(api: Api, path: str) -> None:
    assert api.session.get(api.emulator.base_url + path).status_code == 404


def test_options_is_204_as_documented(api: Api) -> None:
    response = api.session.options(api.url("getStateInstance"))
    assert response.status_code == 204
    assert response.content == b""


def test_query_string_and_trailing_slash_are_ignored(api: Api) -> None:
    assert api.session.get(api.url("getStateInstance") + "/").status_code == 200
    assert api.session.get(api.url("getStateInstance") + "?x=1").status_code == 200


def test_connections_are_kept_alive(emu: GreenApiEmulator) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    sockets = set()
    for number in range(79001234560, 79001234565):
        connection.request(
            "POST",
            f"/waInstance{ID}/checkWhatsapp/{TOKEN}",
            body=f'{{"phoneNumber": {number}}}',
            headers={"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        assert response.status == 200
        response.read()
        sockets.add(id(connection.sock))
    connection.close()
    assert len(sockets) == 1


def test_requests_session_reuses_its_connection(api: Api) -> None:
    for _ in range(5):
        assert api.check({"phoneNumber": 79001234567}).status_code == 200
    pools = api.session.get_adapter(api.url("checkWhatsapp")).poolmanager.pools  # type: ignore[attr-defined]
    (key,) = pools.keys()
    assert pools[key].num_connections == 1


def test_connection_close_is_honoured(emu: GreenApiEmulator) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    connection.request("GET", f"/waInstance{ID}/getStateInstance/{TOKEN}", headers={"Connection": "close"})
    response = connection.getresponse()
    assert response.getheader("Connection") == "close"
    assert response.read() == b'{"stateInstance": "authorized"}'
    connection.close()


def test_chunked_request_bodies_are_read(emu: GreenApiEmulator) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    connection.request(
        "POST",
        f"/waInstance{ID}/checkWhatsapp/{TOKEN}",
        body=iter([b'{"phoneNumber": ', b"79001234567}"]),
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        encode_chunked=True,
    )
    response = connection.getresponse()
    assert response.status == 200
    connection.close()


def test_a_malformed_request_line_is_400_and_closed(emu: GreenApiEmulator) -> None:
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as raw:
        raw.sendall(b"NONSENSE\r\n\r\n")
        answer = raw.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"Connection: close" in answer


def test_stop_is_idempotent_and_closes_idle_connections() -> None:
    emulator = GreenApiEmulator().start()
    connection = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=5)
    connection.request("GET", "/__emulator__/health")
    assert connection.getresponse().read() == b'{"status": "ok"}'
    emulator.stop()
    emulator.stop()
    with pytest.raises(RuntimeError):
        _ = emulator.base_url
