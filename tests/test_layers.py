"""The layers of docs/architecture.md: the core runs without Airflow.

A subprocess refuses every ``airflow`` import, then imports the core and runs a whole bulk check through it
(the emulator over real HTTP, the results table and the usage ledger in SQLite): what a user of the core alone,
or a contributor reading it, relies on."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CORE_RUN = textwrap.dedent('''
    import importlib.abc, json, sqlite3, sys

    class NoAirflow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "airflow" or name.startswith("airflow."):
                raise ImportError(f"the core imported {name}")
            return None

    sys.meta_path.insert(0, NoAirflow())

    from contextlib import ExitStack

    from airflow_provider_greenapi.client import GreenApiClient
    from airflow_provider_greenapi.emulator import EmulatedInstance, GreenApiEmulator
    from airflow_provider_greenapi.numbers import PhoneNumberNormalizer
    from airflow_provider_greenapi.pipeline import CheckOptions
    from airflow_provider_greenapi.pipeline.wiring import wire_run
    from airflow_provider_greenapi.settings import ClientSettings
    from airflow_provider_greenapi.warehouse import Dialect

    class SqliteFile:  # a database of the core's own (pipeline.wiring.RunDatabase): no Airflow connection
        conn_id, dialect = "local", Dialect.SQLITE

        def __init__(self, path):
            self.path = path

        def connect(self):
            return sqlite3.connect(self.path)

        def connect_from_threads(self):
            return sqlite3.connect(self.path, check_same_thread=False)

    with ExitStack() as stack:
        emulator = stack.enter_context(
            GreenApiEmulator([EmulatedInstance("1101000001", "token-of-the-core-test", plan="business")]))
        run = wire_run(stack, SqliteFile(sys.argv[1]), instance_id="1101000001", monthly_quota=100,
                       make_client=lambda ledger: GreenApiClient(
                           emulator.base_url, "1101000001", "token-of-the-core-test",
                           ClientSettings(requests_per_second=10), ledger=ledger),
                       normalizer=PhoneNumberNormalizer(), options=CheckOptions(state_poll_interval=0.2))
        summary = run.run([("+7 900 123-45-67", "a"), ("79001234568", "b"), ("79001234567", "c"), ("junk", "d")])
        store = run.store
        used = store.connection.execute("SELECT calls FROM greenapi_usage").fetchone()[0]
        print(json.dumps({**summary.to_dict(), "ledger_calls": used,
                          "airflow_loaded": any(m.split(".")[0] == "airflow" for m in sys.modules)}))
''')


def test_the_core_runs_a_bulk_check_without_airflow(tmp_path):
    result = subprocess.run([sys.executable, "-c", CORE_RUN, str(tmp_path / "warehouse.db")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["airflow_loaded"] is False
    assert (summary["inputs"], summary["duplicates"], summary["invalid"]) == (4, 1, 1)
    assert summary["exists"] + summary["not_exists"] == 2
    assert summary["quota_spent"] == summary["ledger_calls"] == 2  # the client's count is the ledger's
    assert summary["monthly_used"] == 2 and summary["monthly_left"] == 98


# The layers of docs/architecture.md, by module; each imports (at module level) only from its own layer and those
# below it. Lazy imports inside a function are how a lower layer reaches Airflow where it must (a connection id
# resolved to its hook: warehouse/connections.py, lineage.py); the subprocess test above shows the run needs none.
PACKAGE = "airflow_provider_greenapi"
LAYERS = {
    1: ("_version", "client", "errors", "models", "rate_limit", "redaction", "settings", "in_flight", "numbers",
        "quota_plan", "results", "sharding", "sources", "emulator", "provider_info"),
    2: ("warehouse",),
    3: ("pipeline",),
    4: ("_compat", "hooks", "operators", "sensors", "triggers", "plugins", "cli", "usage_report", "__init__"),
}


def _layer(module: str) -> int:
    top = module.split(".")[0]
    found = [layer for layer, names in LAYERS.items() if top in names]
    assert len(found) == 1, f"{module} is in no layer of LAYERS (or in two): add it where docs/architecture.md says"
    return found[0]


def _module_level_imports(path: Path) -> set[str]:
    """The package's modules that ``path`` imports at module level (not inside a function)."""
    import ast

    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith(PACKAGE))
    return {name.removeprefix(PACKAGE).lstrip(".") or "__init__" for name in names}


def test_each_layer_imports_only_from_itself_and_the_layers_below():
    wrong = []
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        module = ".".join(path.relative_to(ROOT / PACKAGE).with_suffix("").parts)
        for imported in _module_level_imports(path):
            if _layer(imported) > _layer(module):
                wrong.append(f"{module} (layer {_layer(module)}) imports {imported} (layer {_layer(imported)})")
    assert wrong == []
