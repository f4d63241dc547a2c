"""The README's "Quick start in your own Airflow", walked as a new user would: its own shell blocks and DAG,
run as written in a throwaway AIRFLOW_HOME through Airflow's real CLI (a migrated metadata database,
connections stored there by ``airflow connections add``), against the emulator in place of GREEN-API.

Only the GREEN-API host and token are swapped for the emulator's; every other command runs verbatim, so a step
the README leaves out (the warehouse connection, the contacts table, unpausing) or gets wrong fails here."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.airflow_cli import AIRFLOW, migrate
from tests.conftest import TOKEN

README = Path(__file__).resolve().parent.parent / "README.md"
GREENAPI_HOST_IN_README = "https://7103.api.greenapi.com"


def quick_start_blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced block of the Quick start section, in order."""
    text = README.read_text()
    section = text[text.index("## Quick start in your own Airflow"):]
    section = section[:section.index("\n## ", 3)]
    return re.findall(r"```(\w*)\n(.*?)```", section, flags=re.S)


def block(language: str, containing: str) -> str:
    found = [code for lang, code in quick_start_blocks() if lang == language and containing in code]
    assert found, f"the README's Quick start has no {language} block with {containing!r}"
    return found[0]


def run_shell(script: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"README step failed:\n{script}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="the README's SQLite step uses the sqlite3 command")
def test_the_readme_quick_start_runs_as_written(tmp_path, emulator):
    home = tmp_path / "airflow"
    (home / "dags").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "GREENAPI_API_TOKEN": TOKEN,
                "PATH": f"{Path(AIRFLOW).parent}{os.pathsep}{env.get('PATH', '')}"})
    migrate(env)

    greenapi = block("bash", "airflow connections add greenapi_default")
    assert GREENAPI_HOST_IN_README in greenapi
    tested = run_shell(greenapi.replace(GREENAPI_HOST_IN_README, emulator.base_url), env, tmp_path)
    assert "Connection success" in tested
    run_shell(block("bash", "CREATE TABLE contacts"), env, tmp_path)
    (home / "dags" / "whatsapp_check_contacts.py").write_text(block("python", '"whatsapp_check_contacts"'))
    run_shell(block("bash", "airflow dags test whatsapp_check_contacts"), env, tmp_path)

    with sqlite3.connect(tmp_path / "warehouse.db") as warehouse:
        joined = warehouse.execute(block("sql", "LEFT JOIN whatsapp_checks")).fetchall()
    statuses = sorted(status for _, _, status, _, _ in joined)
    assert len(joined) == 4 and statuses.count("invalid") == 1 and None not in statuses
    assert len(emulator.journal("1101000001", "checkWhatsapp")) == 3  # each valid number, once

    unpaused = run_shell(block("bash", "airflow dags unpause whatsapp_check_contacts"), env, tmp_path)
    assert "whatsapp_check_contacts" in unpaused
    with sqlite3.connect(home / "airflow.db") as metadata:
        (paused,) = metadata.execute("SELECT is_paused FROM dag WHERE dag_id = 'whatsapp_check_contacts'").fetchone()
    assert not paused

    usage = re.search(r"`(airflow greenapi usage [^`]+)`", README.read_text())
    assert usage is not None
    report = run_shell(usage.group(1), env, tmp_path)
    assert "Instance 1101000001" in report and "checkWhatsapp calls of quota 30000" in report
    assert TOKEN not in report
