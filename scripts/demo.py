"""`make demo`: the example pipeline end to end on embedded defaults, offline.

Starts the local GREEN-API emulator, prepares a throwaway Airflow home, seeds a SQLite warehouse with a few
hundred messy contacts (once: later runs reuse it, which shows freshness at work), runs the example DAG
with `airflow dags test`, prints what landed in the warehouse, and stops the emulator.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from airflow_provider_greenapi.emulator import airflow_connection
from airflow_provider_greenapi.numbers import mask_phone_number

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
WAREHOUSE = DEMO / "warehouse.db"
AIRFLOW_HOME = DEMO / "airflow"
DAG_ID = "example_greenapi_check_whatsapp"
ID_INSTANCE = "1101000001"
TOKEN = "demo-emulator-token-4b227777d4dd1fc61c6f884f48641d02"
BIN = Path(sys.executable).parent


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip(" ,;") + "…"


def say(text: str = "") -> None:
    print(text, flush=True)


# --- contacts --------------------------------------------------------------------------------------------

def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _formats(rng: random.Random) -> list[str]:
    """One contact's number, written as people write them in several countries."""
    ru = "9" + _digits(rng, 9)
    kz = "70" + rng.choice("01578") + _digits(rng, 7)
    us = rng.choice(["212", "415", "646", "312", "617"]) + rng.choice("23456789") + _digits(rng, 6)
    uk = "7" + rng.choice("4579") + _digits(rng, 8)
    de = "15" + rng.choice("127") + _digits(rng, 8)
    br = rng.choice(["11", "21", "31", "41"]) + "9" + rng.choice("6789") + _digits(rng, 7)
    india = rng.choice("6789") + _digits(rng, 9)
    mx = rng.choice(["55", "33", "81"]) + _digits(rng, 8)
    return [
        f"+7 {ru[:3]} {ru[3:6]}-{ru[6:8]}-{ru[8:]}",
        f"+7 ({ru[:3]}) {ru[3:6]}-{ru[6:8]}-{ru[8:]}",
        f"7{kz}",
        f"+7 {kz[:3]} {kz[3:6]} {kz[6:8]} {kz[8:]}",
        f"({us[:3]}) {us[3:6]}-{us[6:]}",
        f"+1 {us[:3]}-{us[3:6]}-{us[6:]}",
        f"+44 {uk[:4]} {uk[4:]}",
        f"0044 {uk}",
        f"+49 {de[:3]} {de[3:7]} {de[7:]}",
        f"+55 {br[:2]} {br[2:7]}-{br[7:]}",
        f"+91 {india[:5]} {india[5:]}",
        f"+52 {mx[:2]} {mx[2:6]} {mx[6:]}",
    ]


INVALID_ENTRIES = ["", "   ", "n/a", "call me", "12345", "+1 212 555", "7.9001234567e10", "+7 912 345-67-89 ext. 12",
                   "john@example.com", "+999 1234 5678", "0", "☎️ 555-1234"]


def contacts(count: int = 320) -> Iterator[tuple[int, str, str | None]]:
    """Deterministic, messy contacts: several countries and formats, duplicates, blanks and junk."""
    rng = random.Random(20261128)
    seen: list[str] = []
    for contact_id in range(1, count + 1):
        roll = rng.random()
        if roll < 0.10 and seen:
            phone: str | None = rng.choice(seen)  # the same person entered twice
        elif roll < 0.16:
            phone = rng.choice(INVALID_ENTRIES)
        elif roll < 0.18:
            phone = None
        else:
            phone = rng.choice(_formats(rng))
            seen.append(phone)
        yield contact_id, f"Contact {contact_id}", phone


def seed_warehouse() -> bool:
    """Create the demo warehouse once; True when it was created now."""
    if WAREHOUSE.exists():
        return False
    with sqlite3.connect(WAREHOUSE) as db:
        db.execute("CREATE TABLE contacts (contact_id INTEGER PRIMARY KEY, full_name TEXT, phone TEXT)")
        db.executemany("INSERT INTO contacts VALUES (?, ?, ?)", contacts())
    return True


# --- services --------------------------------------------------------------------------------------------

@contextmanager
def emulator() -> Iterator[str]:
    ready = DEMO / "emulator.url"
    ready.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_greenapi.emulator", "--port", "0", "--ready-file", str(ready),
         "--instance", f"{ID_INSTANCE}:{TOKEN}:business", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=open(DEMO / "emulator.log", "w"),  # noqa: SIM115
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"The emulator did not start; see {DEMO / 'emulator.log'}")
            time.sleep(0.1)
        yield ready.read_text().strip()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


def airflow_env(api_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_GREENAPI_DEFAULT": airflow_connection(
            api_url, ID_INSTANCE, TOKEN, requests_per_second=10, max_in_flight=4, monthly_quota=30000),
        "AIRFLOW_CONN_WAREHOUSE_DEFAULT": json.dumps({"conn_type": "sqlite", "host": str(WAREHOUSE)}),
    }


def run_airflow(env: dict[str, str], *args: str, log_name: str) -> None:
    log_path = DEMO / log_name
    with open(log_path, "w") as log:
        result = subprocess.run([str(BIN / "airflow"), *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                cwd=DEMO)
    if result.returncode != 0:
        tail = log_path.read_text().splitlines()[-40:]
        say("\n".join(tail))
        raise SystemExit(f"`airflow {' '.join(args)}` failed; the whole log is in {log_path}")


def emulator_calls(api_url: str) -> int:
    with urllib.request.urlopen(f"{api_url}/__emulator__/instances/{ID_INSTANCE}/counters", timeout=5) as reply:
        counters = json.load(reply)
    return sum(int(n) for n in counters["calls"].get("checkWhatsapp", {}).values())


# --- the report ------------------------------------------------------------------------------------------

def report(calls_this_run: int, first_run: bool) -> None:
    with sqlite3.connect(WAREHOUSE) as db:
        inputs = db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0]
        by_status = db.execute(
            "SELECT status, COUNT(*) FROM whatsapp_checks GROUP BY status ORDER BY COUNT(*) DESC").fetchall()
        sample = db.execute(
            "SELECT c.contact_id, c.phone, w.status, w.exists_whatsapp, w.detail FROM contacts c "
            "JOIN whatsapp_checks w ON w.source_key = CAST(c.contact_id AS TEXT) "
            "WHERE w.status IN ('exists', 'not_exists', 'invalid') ORDER BY c.contact_id LIMIT 8").fetchall()
        month_calls = db.execute("SELECT COALESCE(SUM(calls), 0) FROM greenapi_usage").fetchone()[0]
    say()
    say(f"Results in {WAREHOUSE.relative_to(ROOT)} (table whatsapp_checks, one row per contact):")
    say(f"  {'status':<12} {'rows':>5}")
    for status, count in by_status:
        say(f"  {status:<12} {count:>5}")
    say(f"  {'(contacts)':<12} {inputs:>5}")
    say()
    say("A few rows (numbers shortened, as in every log of this provider):")
    say(f"  {'contact':>7}  {'phone as entered':<28} {'status':<11} detail")
    for contact_id, phone, status, _exists, detail in sample:
        shown = mask_phone_number(phone or "")
        say(f"  {contact_id:>7}  {shown:<28} {status:<11} {_shorten(detail or '', 60)}")
    say()
    say(f"Quota spent by this run: {calls_this_run} checkWhatsapp calls "
        f"({month_calls} this month in the usage ledger, of a 30000 Business plan).")
    if not first_run and calls_this_run == 0:
        say("Nothing was re-checked or rewritten: every contact is stored as it is, with an answer still fresh "
            "(max_age), so this run spent no quota.")
    elif first_run:
        say("Run `make demo` again: stored answers are fresh, so the second run spends no quota.")


def main() -> None:
    DEMO.mkdir(exist_ok=True)
    first_run = seed_warehouse()
    say(f"Warehouse: {'seeded' if first_run else 'reusing'} {WAREHOUSE.relative_to(ROOT)} "
        "(contacts from several countries, duplicates, blanks, junk).")
    with emulator() as api_url:
        say(f"GREEN-API emulator: {api_url} (instance {ID_INSTANCE}, Business plan).")
        env = airflow_env(api_url)
        if not (AIRFLOW_HOME / "airflow.db").exists():
            say("Preparing a throwaway Airflow home and metadata database (once)...")
            AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
            run_airflow(env, "db", "migrate", log_name="airflow-db-migrate.log")
        say(f"Running the DAG {DAG_ID} with `airflow dags test` (log: .demo/dags-test.log)...")
        started = time.monotonic()
        run_airflow(env, "dags", "test", DAG_ID, log_name="dags-test.log")
        say(f"The DAG run succeeded in {time.monotonic() - started:.0f} s.")
        report(emulator_calls(api_url), first_run)


if __name__ == "__main__":
    main()
