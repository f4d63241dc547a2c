"""The control API under /__emulator__/: inspection without tokens, and every mutation."""

from __future__ import annotations

from airflow_provider_greenapi.emulator import GreenApiEmulator
from tests.emulator.support import ID, TOKEN, Api


def test_health(api: Api) -> None:
    assert api.control("GET", "health").json() == {"status": "ok"}


def test_instances_are_listed_without_tokens(api: Api) -> None:
    response = api.control("GET", "instances")
    assert response.status_code == 200
    (instance,) = response.json()
    assert instance["id_instance"] == ID
    assert instance["plan"] == "business"
    assert instance["state"] == "authorized"
    assert instance["monthly_quota"] == 30_000
    assert TOKEN not in response.text
    assert "api_token" not in instance
    assert TOKEN not in api.control("GET", f"instances/{ID}").text
    assert TOKEN not in repr(api.emulator.instance(ID))


def test_add_an_instance_and_use_it(api: Api) -> None:
    created = api.control(
        "POST", "instances", {"id_instance": "7103000009", "api_token": "new-token", "monthly_quota": 1}
    )
    assert created.status_code == 201
    assert created.json()["monthly_quota"] == 1
    assert "new-token" not in created.text
    other = Api(api.emulator, "7103000009", "new-token")
    assert other.check({"phoneNumber": 79001234567}).status_code == 200
    assert other.check({"phoneNumber": 79001234567}).status_code == 466
    assert api.control("POST", "instances", {"id_instance": "7103000009", "api_token": "x"}).status_code == 400


def test_set_state_round_trip(api: Api) -> None:
    response = api.control("POST", f"instances/{ID}/state", {"state": "blocked"})
    assert response.json()["state"] == "blocked"
    assert api.state().json() == {"stateInstance": "blocked"}
    assert api.control("POST", f"instances/{ID}/state", {"state": "nope"}).status_code == 400


def test_scheduled_state_change(api: Api) -> None:
    response = api.control("POST", f"instances/{ID}/state-changes", {"after_check_calls": 1, "state": "yellowCard"})
    assert response.json()["pending_state_changes"] == [{"after_check_calls": 1, "state": "yellowCard"}]
    api.check({"phoneNumber": 79001234567})
    assert api.control("GET", f"instances/{ID}").json()["state"] == "yellowCard"


def test_quota_set_and_reset(api: Api) -> None:
    assert api.control("POST", f"instances/{ID}/quota", {"used": 30_000}).json()["quota_used"] == 30_000
    assert api.check({"phoneNumber": 79001234567}).status_code == 466
    assert api.control("POST", f"instances/{ID}/quota/reset").json()["quota_used"] == 0
    assert api.check({"phoneNumber": 79001234567}).status_code == 200
    assert api.control("POST", f"instances/{ID}/quota", {"used": "many"}).status_code == 400


def test_inject_and_clear_faults(api: Api) -> None:
    response = api.control("POST", f"instances/{ID}/faults", {"script": ["500", "drop"], "seed": 1})
    assert response.json()["faults"]["script"] == ["500", "drop"]
    assert api.check({"phoneNumber": 79001234567}).status_code == 500
    assert api.control("POST", f"instances/{ID}/faults/clear").json()["faults"] is None
    assert api.check({"phoneNumber": 79001234567}).status_code == 200
    bad = api.control("POST", f"instances/{ID}/faults", {"script": ["explode"]})
    assert bad.status_code == 400
    assert "unknown fault" in bad.json()["error"]
    assert api.control("POST", f"instances/{ID}/faults", {"eror_rate": 1}).status_code == 400  # typo refused


def test_counters_and_their_reset(api: Api) -> None:
    api.check({"phoneNumber": 79001234567})
    api.check({"phoneNumber": 1})
    counters = api.control("GET", f"instances/{ID}/counters").json()
    assert counters["calls"] == {"checkWhatsapp": {"200": 1, "400": 1}}
    assert counters["checked_numbers"] == {"79001234567": 1}
    assert api.control("GET", "counters").json() == {ID: counters}
    api.control("POST", f"instances/{ID}/counters/reset")
    assert api.control("GET", f"instances/{ID}/counters").json()["calls"] == {}
    api.check({"phoneNumber": 79001234567})
    assert api.control("POST", "counters/reset").json() == {"status": "ok"}
    assert api.emulator.counters(ID).calls == {}


def test_errors_of_the_control_api(api: Api) -> None:
    assert api.control("GET", "instances/999").status_code == 404
    assert api.control("POST", "instances/999/state", {"state": "blocked"}).status_code == 404
    assert api.control("GET", "nowhere").status_code == 404
    assert api.control("DELETE", "instances").status_code == 405
    not_json = api.session.post(f"{api.emulator.base_url}/__emulator__/instances/{ID}/state", data=b"{oops")
    assert not_json.status_code == 400
    assert api.control("POST", f"instances/{ID}/state", ["blocked"]).status_code == 400


def test_control_calls_are_not_counted_as_api_calls(emu: GreenApiEmulator) -> None:
    Api(emu).control("GET", "instances")
    assert emu.counters(ID).calls == {}
