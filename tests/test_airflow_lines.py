"""What differs between the Airflow lines where no other test module looks: the quota plugin as every Airflow
process loads it (docs/airflow-versions.md). `make test-matrix` runs it on each line, `make test` on 3.3."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from airflow_provider_greenapi._compat import AIRFLOW_LINE, QUOTA_VIEW
from tests.airflow_cli import AIRFLOW

pytestmark = pytest.mark.matrix


def test_the_plugin_registers_no_view_before_3_1(tmp_path):
    """``airflow plugins`` lists the provider's plugin on every line, with no import error; the quota view's
    FastAPI app is there from 3.1 (external views) and absent on 2.11 (no FastAPI at all) and 3.0."""
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    done = subprocess.run([AIRFLOW, "plugins", "-o", "json"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Failed to import plugin" not in done.stdout + done.stderr, (done.stdout + done.stderr)[-3000:]
    plugins = json.loads(done.stdout.strip().splitlines()[-1])
    (plugin,) = [p for p in plugins if p["name"] == "greenapi_quota"]
    assert bool(plugin.get("fastapi_apps")) is QUOTA_VIEW is (AIRFLOW_LINE >= (3, 1)), plugin
