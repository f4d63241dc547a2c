"""Which numbers have WhatsApp: the deterministic rule, overrides, the US/Canada quirk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_greenapi.emulator import EmulatedInstance, EmulatorConfig, GreenApiEmulator, NumbersRule
from airflow_provider_greenapi.emulator.numbers_rule import fake_lid, normalise_number
from tests.emulator.support import ID, TOKEN, Api

# Pinned answers of the default rule: SHA-256 makes them the same on every machine and Python version.
PINNED = {"441234567890": True, "12125550123": True, "79001234567": False, "5511912345678": False}


def test_the_default_rule_gives_pinned_answers() -> None:
    rule = NumbersRule()
    assert {number: rule.has_whatsapp(number) for number in PINNED} == PINNED


def test_the_default_rule_is_the_same_in_a_fresh_interpreter() -> None:
    script = (
        "from airflow_provider_greenapi.emulator import NumbersRule;"
        f"print([NumbersRule().has_whatsapp(n) for n in {list(PINNED)!r}])"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    fresh = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
    assert fresh.stdout.strip() == str(list(PINNED.values()))


def test_about_70_percent_of_numbers_exist() -> None:
    rule = NumbersRule()
    share = sum(rule.has_whatsapp(str(79_000_000_000 + i)) for i in range(5000)) / 5000
    assert 0.67 < share < 0.73


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_the_share_is_configurable(share: float) -> None:
    rule = NumbersRule(exists_share=share)
    assert {rule.has_whatsapp(str(79_000_000_000 + i)) for i in range(100)} == {bool(share)}


def test_the_http_answers_follow_the_rule(api: Api) -> None:
    for number, exists in PINNED.items():
        assert api.check({"phoneNumber": int(number)}).json()["existsWhatsapp"] is exists


def test_explicit_lists_override_the_rule() -> None:
    rule = NumbersRule(exists=["+7 900 123-45-67"], not_exists=["441234567890@c.us"])
    with GreenApiEmulator([EmulatedInstance(ID, TOKEN)], numbers=rule) as emulator:
        api = Api(emulator)
        assert api.check({"phoneNumber": 79001234567}).json()["existsWhatsapp"] is True
        assert api.check({"chatId": "441234567890@c.us"}).json() == {"existsWhatsapp": False}


def test_a_number_cannot_be_on_both_lists() -> None:
    with pytest.raises(ValueError, match="both"):
        NumbersRule(exists=["79001234567"], not_exists=["79001234567"])


def test_overrides_from_a_file(tmp_path: Path) -> None:
    file = tmp_path / "numbers.csv"
    file.write_text("# answers for the demo\n79001234567\n441234567890,false\n12125550123 , no  # comment\n\n")
    rule = NumbersRule().with_file(file)
    assert rule.has_whatsapp("79001234567") is True
    assert rule.has_whatsapp("441234567890") is False
    assert rule.has_whatsapp("12125550123") is False


def test_a_bad_line_in_the_file_is_reported(tmp_path: Path) -> None:
    file = tmp_path / "numbers.csv"
    file.write_text("79001234567,maybe\n")
    with pytest.raises(ValueError, match=r"numbers\.csv:1"):
        NumbersRule().with_file(file)


def test_the_config_file_reads_numbers_and_a_relative_file(tmp_path: Path) -> None:
    (tmp_path / "extra.txt").write_text("5511912345678\n")
    (tmp_path / "emulator.json").write_text(
        '{"numbers": {"exists": ["79001234567"], "not_exists": [441234567890], "file": "extra.txt"}}'
    )
    rule = EmulatorConfig.from_file(tmp_path / "emulator.json").numbers
    assert rule.has_whatsapp("79001234567") and rule.has_whatsapp("5511912345678")
    assert not rule.has_whatsapp("441234567890")


def test_us_extra_zeros_quirk_is_opt_in() -> None:
    number = "100212345678"  # "1" + extra zero + 10 digits; the hash rule alone says False
    assert NumbersRule().has_whatsapp(number) is False
    quirky = NumbersRule(us_extra_zeros=True)
    assert quirky.has_whatsapp(number) is True
    assert quirky.has_whatsapp("1002123456789") is True
    assert quirky.has_whatsapp("10021234567") is NumbersRule().has_whatsapp("10021234567")  # 11 digits: no quirk
    with GreenApiEmulator([EmulatedInstance(ID, TOKEN)], numbers=quirky) as emulator:
        answer = Api(emulator).check({"phoneNumber": int(number)}).json()
    assert answer == {"existsWhatsapp": True, "chatId": "862352507226985@lid"}


def test_fake_lids_are_deterministic_15_digit_ids() -> None:
    lid = fake_lid("79001234567")
    assert lid == fake_lid("79001234567") != fake_lid("79001234568")
    assert lid.endswith("@lid") and len(lid) == 19 and lid[:15].isdigit()


@pytest.mark.parametrize(
    ("raw", "digits"),
    [("+7 (900) 123-45-67", "79001234567"), (79001234567, "79001234567"), ("79001234567@c.us", "79001234567"),
     ("123456789012345@lid", "123456789012345@lid")],
)  # fmt: skip
def test_normalise_number(raw: object, digits: str) -> None:
    assert normalise_number(raw) == digits
