"""Configuration objects: instance specs, validation, strict JSON."""

from __future__ import annotations

import pytest

from airflow_provider_greenapi.emulator import (
    EmulatedInstance,
    EmulatorConfig,
    GreenApiEmulator,
    InstanceState,
    Plan,
    RateLimits,
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("1101000001:tok", ("1101000001", "tok", Plan.DEVELOPER, InstanceState.AUTHORIZED, 100)),
        ("1101000001:tok:business", ("1101000001", "tok", Plan.BUSINESS, InstanceState.AUTHORIZED, 30_000)),
        ("1101000001:tok:250", ("1101000001", "tok", Plan.DEVELOPER, InstanceState.AUTHORIZED, 250)),
        ("1101000001:tok::yellowCard", ("1101000001", "tok", Plan.DEVELOPER, InstanceState.YELLOW_CARD, 100)),
    ],
)
def test_instance_specs(spec: str, expected: tuple[object, ...]) -> None:
    instance = EmulatedInstance.from_spec(spec)
    got = (instance.id_instance, instance.api_token, instance.plan, instance.state, instance.total_quota)
    assert got == expected


@pytest.mark.parametrize("spec", ["1101000001", ":tok", "1101000001:", "a:b:c:d:e", "x1:tok", "1:tok:gold"])
def test_bad_instance_specs(spec: str) -> None:
    with pytest.raises(ValueError):
        EmulatedInstance.from_spec(spec)


@pytest.mark.parametrize("token", ["", "a/b", "a?b", "a#b", "a b", "a\nb"])
def test_a_token_must_fit_in_a_url_path(token: str) -> None:
    with pytest.raises(ValueError, match="api_token"):
        EmulatedInstance("1101000001", token)


def test_the_token_stays_out_of_reprs() -> None:
    assert "s3cret" not in repr(EmulatedInstance("1101000001", "s3cret"))


def test_a_negative_quota_is_refused() -> None:
    with pytest.raises(ValueError, match="monthly_quota"):
        EmulatedInstance("1101000001", "tok", monthly_quota=-1)


def test_an_instance_id_is_served_once() -> None:
    with pytest.raises(ValueError, match="twice"):
        EmulatorConfig(instances=[EmulatedInstance("1", "a"), EmulatedInstance("1", "b")])
    emulator = GreenApiEmulator([EmulatedInstance("1", "a")])
    with pytest.raises(ValueError, match="already exists"):
        emulator.add_instance(EmulatedInstance("1", "b"))


def test_unknown_keys_are_errors_not_no_ops() -> None:
    with pytest.raises(ValueError, match="unknown emulator config field"):
        EmulatorConfig.from_dict({"instancez": []})
    with pytest.raises(ValueError, match="unknown instance field"):
        EmulatorConfig.from_dict({"instances": [{"id_instance": "1", "api_token": "t", "quota": 5}]})


def test_rate_limits_per_method() -> None:
    limits = RateLimits()
    assert [limits.per_second(m) for m in ("checkWhatsapp", "getStateInstance", "getSettings", "other")] == [
        10,
        1,
        1,
        0,
    ]


def test_unknown_instance_raises_a_clear_key_error() -> None:
    with pytest.raises(KeyError, match="no instance 42"):
        GreenApiEmulator().instance(42)
