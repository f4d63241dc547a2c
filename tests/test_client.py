"""The GREEN-API client over real HTTP (a scripted local server): retries, pacing, typing, no token leaks."""

from __future__ import annotations

import logging
import time

import pytest

from airflow_provider_greenapi import errors as e
from airflow_provider_greenapi.client import ClientSettings, GreenApiClient, validate_api_url
from airflow_provider_greenapi.models import InstanceState, WhatsappCheck
from airflow_provider_greenapi.rate_limit import RateLimiter
from tests.scripted_server import ScriptedServer

TOKEN = "s3cr3t-token-d41d8cd98f00b204"


@pytest.fixture
def server():
    with ScriptedServer() as scripted:
        yield scripted


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(server, sleeps):
    settings = ClientSettings(timeout=2, requests_per_second=10, max_retries=3, retry_backoff=0.01)
    with GreenApiClient(server.url, "1101000001", TOKEN, settings, sleep=sleeps.append) as api:
        yield api


def test_check_whatsapp_sends_the_digits_as_chat_id_and_reads_the_lid(server, client):
    server.script((200, '{"existsWhatsapp": true, "chatId": "123@lid", "fromCache": false}'))
    answer = client.check_whatsapp("79001234567")
    assert (answer.phone_number, answer.exists, answer.chat_id, answer.lid) == ("79001234567", True, "123@lid",
                                                                               "123@lid")
    method, path, body = server.requests[0]
    assert (method, path) == ("POST", f"/waInstance1101000001/checkWhatsapp/{TOKEN}")
    assert body == {"chatId": "79001234567"}


def test_a_c_us_chat_id_is_no_lid():
    assert WhatsappCheck("79001234567", True, "79001234567@c.us").lid is None


def test_the_older_body_is_a_setting(server):
    server.script((200, '{"existsWhatsapp": false}'))
    settings = ClientSettings(check_whatsapp_body="phoneNumber")
    with GreenApiClient(server.url, "1101000001", TOKEN, settings) as api:
        assert api.check_whatsapp("79001234567").exists is False
    assert server.requests[0][2] == {"phoneNumber": 79001234567}


def test_a_host_refusing_chat_id_is_asked_again_with_phone_number_then_only_so(server, client, caplog):
    refusal = (400, '{"code": 400, "description": "Validation failed. Details: \'chatId\' is not allowed"}')
    server.script(refusal, (200, '{"existsWhatsapp": true}'), (200, '{"existsWhatsapp": false}'))
    with caplog.at_level(logging.WARNING, logger="airflow_provider_greenapi.client"):
        first = client.check_whatsapp("79001234567")
        second = client.check_whatsapp("79001234568")
    assert (first.exists, second.exists) == (True, False)  # the refusal is no "invalid number"
    assert [r[2] for r in server.requests] == [{"chatId": "79001234567"}, {"phoneNumber": 79001234567},
                                               {"phoneNumber": 79001234568}]
    assert client.check_whatsapp_body == "phoneNumber"
    assert len([r for r in caplog.records if "older contract" in r.getMessage()]) == 1


def test_a_number_refused_in_both_bodies_is_invalid_and_chat_id_stays(server, client):
    refusal = (400, '{"code": 400, "description": "Validation failed. Details: something"}')
    server.script(refusal, refusal)
    with pytest.raises(e.GreenApiInvalidNumberError):
        client.check_whatsapp("79001234567")
    assert client.check_whatsapp_body == "chatId"


def test_a_bad_phone_number_is_not_asked_again(server, client):
    server.script((400, '{"code": 400, "description": "bad phone number, valid from 11 to 16 digits"}'))
    with pytest.raises(e.GreenApiInvalidNumberError):
        client.check_whatsapp("79001234567")
    assert len(server.requests) == 1


def test_an_unknown_body_setting_is_refused():
    with pytest.raises(ValueError, match="check_whatsapp_body"):
        ClientSettings(check_whatsapp_body="chat_id")


def test_answer_times_are_counted_for_the_window(server, client):
    server.script((200, '{"existsWhatsapp": true}'), (429, ""), (200, '{"existsWhatsapp": true}'))
    client.check_whatsapp("79001234567")
    client.check_whatsapp("79001234568")
    assert client.stats.answered["checkWhatsapp"] == 2 and client.stats.retries == 1
    assert client.stats.answer_seconds["checkWhatsapp"] > 0


def test_an_answer_without_a_boolean_is_an_error_not_a_no(server, client):
    server.script((200, '{"existsWhatsapp": "maybe"}'))
    with pytest.raises(e.GreenApiResponseError):
        client.check_whatsapp("79001234567")


@pytest.mark.parametrize("status", [429, 499, 500, 502, 503, 504])
def test_transient_statuses_are_retried(server, client, sleeps, status):
    server.script((status, ""), (status, ""), (200, '{"existsWhatsapp": false}'))
    assert client.check_whatsapp("79001234567").exists is False
    assert len(server.requests) == 3
    assert client.stats.retries == 2 and len(sleeps) == 2
    assert client.stats.requests["checkWhatsapp"] == 3


@pytest.mark.parametrize("body", ["check phone number timeout limit exceeded",
                                  "instance in starting process try later"])
def test_transient_400s_are_retried(server, client, body):
    server.script((400, body), (200, '{"existsWhatsapp": true}'))
    assert client.check_whatsapp("79001234567").exists is True
    assert len(server.requests) == 2


@pytest.mark.parametrize(("status", "body", "error_class"), [
    (400, "bad phone number, valid from 11 to 16 digits", e.GreenApiInvalidNumberError),
    (401, "", e.GreenApiCredentialsError),
    (403, "", e.GreenApiInstanceNotFoundError),
    (404, "", e.GreenApiMethodError),
    (466, '{"invokeStatus": {"used": 100, "total": 100}}', e.GreenApiQuotaExceededError),
])
def test_final_errors_are_never_retried(server, client, status, body, error_class):
    server.script((status, body))
    with pytest.raises(error_class):
        client.check_whatsapp("79001234567")
    assert len(server.requests) == 1


def test_retry_after_is_honoured_and_pauses_the_pacer(server, client, sleeps):
    server.script((429, "", {"Retry-After": "2"}), (200, '{"existsWhatsapp": true}'))
    started = time.monotonic()
    client.check_whatsapp("79001234567")
    assert sleeps[0] == 2.0
    assert client.stats.rate_limited == 1
    # The client's own sleep is a stand-in, so the retry waited in the shared pacer, paused for 2 s: a lower
    # bound that holds on any machine (a slower one only waits longer).
    assert time.monotonic() - started >= 2.0 - 1e-3


def test_retries_give_up_with_a_transient_error(server, client):
    server.script(*[(502, "")] * 4)
    with pytest.raises(e.GreenApiTransientError) as raised:
        client.check_whatsapp("79001234567")
    assert raised.value.status_code == 502
    assert len(server.requests) == 4  # one try and max_retries=3 retries


def test_dropped_connection_and_timeout_are_transient_and_token_free(server, sleeps):
    settings = ClientSettings(timeout=0.3, max_retries=1, retry_backoff=0)
    with GreenApiClient(server.url, "1101000001", TOKEN, settings, sleep=sleeps.append) as api:
        server.script((0, ""), (-1, "1.0"))
        with pytest.raises(e.GreenApiTransientError) as raised:
            api.check_whatsapp("79001234567")
    assert "timeout" in str(raised.value)
    assert TOKEN not in str(raised.value) and TOKEN not in repr(raised.value)
    assert (raised.value.__cause__ is None and raised.value.__context__ is None) or TOKEN not in str(
        raised.value.__context__)


def test_unreachable_host_message_is_token_free():
    settings = ClientSettings(timeout=0.5, max_retries=0)
    with GreenApiClient("http://127.0.0.1:9", "1101000001", TOKEN, settings) as api, \
            pytest.raises(e.GreenApiTransientError) as raised:
        api.get_state_instance()
    assert "could not reach http://127.0.0.1:9 (Connection refused)" in str(raised.value)
    assert TOKEN not in str(raised.value)


@pytest.mark.parametrize("fault", ["self-signed certificate", "plain HTTP addressed as https"])
def test_a_tls_failure_fails_at_once_and_says_what_to_do(fault, sleeps, monkeypatch):
    """Not a passing fault: the same certificate or the same plain-HTTP port answers every try alike."""
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(variable, raising=False)
    settings = ClientSettings(timeout=5, max_retries=5, retry_backoff=0.01)
    with ScriptedServer(tls=fault.startswith("self")) as server:
        url = server.url.replace("http://", "https://")
        server.script((200, '{"stateInstance": "authorized"}'))
        with GreenApiClient(url, "1101000001", TOKEN, settings, sleep=sleeps.append) as api, \
                pytest.raises(e.GreenApiTlsError) as raised:
            api.get_state_instance()
        assert server.connections == 1 and sleeps == [] and api.stats.retries == 0  # one try, no retry
        assert not server.requests  # no request got through
    message = str(raised.value)
    assert message.startswith(f"getStateInstance: {url}: ")
    assert ("its TLS certificate is not trusted here (self-signed certificate)" in message
            if fault.startswith("self") else "no TLS session could be set up (WRONG_VERSION_NUMBER" in message)
    assert "Check the API URL" in message and "REQUESTS_CA_BUNDLE" in message
    assert e.retry_can_fix(raised.value) is False and TOKEN not in message


def test_the_ca_bundle_the_tls_error_names_is_the_cure(monkeypatch):
    """The advice works: the same self-signed server answers once REQUESTS_CA_BUNDLE holds its certificate."""
    with ScriptedServer(tls=True) as server:
        server.script((200, '{"stateInstance": "authorized"}'))
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.certificate))
        with GreenApiClient(server.url, "1101000001", TOKEN, ClientSettings(max_retries=0)) as api:
            assert api.get_state_instance() is InstanceState.AUTHORIZED


@pytest.mark.parametrize(("body", "state"), [
    ('{"stateInstance": "authorized"}', InstanceState.AUTHORIZED),
    ('{"stateInstance": "yellowCard"}', InstanceState.YELLOW_CARD),
    ("null", InstanceState.CREATING),
    ('{"stateInstance": "somethingNew"}', InstanceState.UNKNOWN),
])
def test_get_state_instance(server, client, body, state):
    server.script((200, body))
    assert client.get_state_instance() is state
    assert server.requests[0][:2] == ("GET", f"/waInstance1101000001/getStateInstance/{TOKEN}")


def test_get_settings(server, client):
    server.script((200, '{"wid": "11001234567@c.us", "countryInstance": "ru"}'))
    assert client.get_settings()["wid"] == "11001234567@c.us"


def test_token_never_reaches_logs_even_at_debug(server, client, caplog):
    caplog.set_level(logging.DEBUG)
    server.script((500, ""), (401, ""))
    with pytest.raises(e.GreenApiCredentialsError) as raised:
        client.check_whatsapp("79001234567")
    assert any("urllib3" in r.name for r in caplog.records), "urllib3 debug lines should be captured"
    assert TOKEN not in caplog.text
    assert TOKEN not in str(raised.value)
    assert TOKEN not in repr(client)


@pytest.mark.parametrize(("stored", "sent"), [
    ("\t s3cr3t-padded-token-6512bd43d9caa6e0 \n", "s3cr3t-padded-token-6512bd43d9caa6e0"),
    ("s3cr3t token-with-a-space-c20ad4d76fe9", "s3cr3t%20token-with-a-space-c20ad4d76fe9"),
])
def test_a_token_is_masked_in_every_form_it_is_sent(server, caplog, stored, sent):
    """A token pasted with whitespace is sent stripped, one with a space inside percent-encoded: urllib3's
    DEBUG line carries the path as sent, so that form (not only the stored one) must be masked."""
    caplog.set_level(logging.DEBUG)
    server.script((200, '{"stateInstance": "authorized"}'), (401, ""))
    settings = ClientSettings(max_retries=0)
    with GreenApiClient(server.url, "1101000001", stored, settings) as api:
        api.get_state_instance()
        with pytest.raises(e.GreenApiCredentialsError) as raised:
            api.check_whatsapp("79001234567")
    assert server.requests[0][1] == f"/waInstance1101000001/getStateInstance/{sent}"  # the form on the wire
    assert any("urllib3" in r.name and "getStateInstance/***" in r.getMessage() for r in caplog.records)
    for text in (caplog.text, str(raised.value), repr(api)):
        for form in {stored, stored.strip(), sent}:
            assert form not in text


def test_settings_are_validated_with_clear_messages():
    with pytest.raises(ValueError, match="at most 10"):
        ClientSettings(requests_per_second=50)
    with pytest.raises(ValueError, match="timeout must be"):
        ClientSettings(timeout=0)


@pytest.mark.parametrize("url", ["ftp://example.com", "https://", "https://host/waInstance1/x/y", "http://h?x=1"])
def test_bad_api_urls_are_refused(url):
    with pytest.raises(ValueError, match="API URL"):
        validate_api_url(url)


def test_api_url_defaults_and_trailing_slash():
    assert validate_api_url(None) == "https://api.green-api.com"
    assert validate_api_url("7103.api.greenapi.com/") == "https://7103.api.greenapi.com"


def test_id_instance_and_token_are_required():
    with pytest.raises(ValueError, match="digits only"):
        GreenApiClient("http://127.0.0.1:1", "abc", TOKEN)
    with pytest.raises(ValueError, match="token"):
        GreenApiClient("http://127.0.0.1:1", "1101", " ")


def test_rate_limiter_spaces_calls_evenly():
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(4, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        limiter.acquire()
    assert waits == pytest.approx([0.25, 0.25, 0.25, 0.25])
    limiter.pause(2.0)
    limiter.acquire()
    assert waits[-1] == pytest.approx(2.0)


def test_proxies_from_the_environment_are_honoured_with_no_proxy(server, monkeypatch):
    server.script((200, '{"existsWhatsapp": false}'))
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # the discard port: nothing listens
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    settings = ClientSettings(timeout=2, max_retries=0)
    with GreenApiClient(server.url, "1101000001", TOKEN, settings) as api:
        assert api.check_whatsapp("79001234567").exists is False  # NO_PROXY: straight to the server
    monkeypatch.delenv("NO_PROXY")
    monkeypatch.delenv("no_proxy", raising=False)
    server.script((200, '{"existsWhatsapp": true}'))
    with GreenApiClient(server.url, "1101000001", TOKEN, settings) as api, pytest.raises(e.GreenApiTransientError):
        api.check_whatsapp("79001234567")  # through the (dead) proxy, as requests itself would go
    assert len(server.requests) == 1  # the second call never reached the server
