"""The distributions users install: `make dist` builds the wheel and the sdist and `twine check`s them; the
wheel holds the package, its emulator, its type marker and license, declares what a plain install needs,
and holds no tests."""

from __future__ import annotations

import email
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not shutil.which("make"):
        pytest.skip("packaging test needs `make` (it runs `make dist`)")
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(["make", "-s", "dist", f"DIST={out}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("PASSED") == 2, done.stdout  # twine check --strict, wheel and sdist
    return out


@pytest.mark.slow
def test_the_wheel_holds_the_package_and_the_emulator_and_no_tests(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    zipped = zipfile.ZipFile(wheel)
    names = zipped.namelist()
    for expected in ("airflow_provider_greenapi/__init__.py", "airflow_provider_greenapi/py.typed",
                     "airflow_provider_greenapi/hooks/greenapi.py", "airflow_provider_greenapi/_compat.py",
                     "airflow_provider_greenapi/emulator/server.py", "airflow_provider_greenapi/emulator/__main__.py"):
        assert expected in names
    assert not [n for n in names if n.startswith(("tests/", "dags/", "bench/", "scripts/"))]
    info = next(n.rsplit("/", 1)[0] for n in names if n.endswith(".dist-info/METADATA"))
    assert f"{info}/licenses/LICENSE" in names
    assert "apache_airflow_provider" in zipped.read(f"{info}/entry_points.txt").decode()
    metadata = email.message_from_bytes(zipped.read(f"{info}/METADATA"))
    requires = metadata.get_all("Requires-Dist") or []
    plain = [r for r in requires if "extra ==" not in r]
    assert any(r.startswith("apache-airflow>=2.11") for r in plain), plain
    assert any(r.startswith("apache-airflow-providers-common-compat") for r in plain), plain  # _compat.py's map
    assert "greenapi = airflow_provider_greenapi.cli:main" in zipped.read(f"{info}/entry_points.txt").decode()
    assert any(r.startswith("apache-airflow-providers-sqlite") for r in plain), plain  # the embedded default
    assert not any("psycopg2" in r for r in requires if 'extra == "postgres"' in r), requires


@pytest.mark.slow
def test_the_sdist_carries_the_license_and_the_changelog(dist: Path) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "airflow_provider_greenapi/py.typed"} <= names


def test_the_version_is_written_once():
    """pyproject.toml's version is what the package, Airflow's provider info and the changelog's newest release
    say (the release workflow refuses a tag that differs)."""
    import re

    from airflow_provider_greenapi import __version__, get_provider_info

    declared = re.findall(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.M)[0]
    assert __version__ == declared and get_provider_info()["versions"] == [declared]
    releases = re.findall(r"^## \[(\d[^\]]*)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert releases and releases[0] == declared, releases
    assert not re.findall(r"__version__ = \"\d+\.|\"versions\": \[\"", "".join(
        p.read_text() for p in (ROOT / "airflow_provider_greenapi").rglob("*.py")))
