#!/usr/bin/env bash
# Installs what the warehouse-engine tests need beside `make install`:
#   - Debian's mariadb-server (the tests start a private server from its binaries, tests/mariadb_server.py),
#     and libmariadb-dev, pkg-config and gcc, to build mysqlclient, the driver of the MySQL provider;
#   - into the project's virtualenv: the DuckDB, MySQL and Snowflake providers and fakesnow[server]
#     (a Snowflake emulator over DuckDB, tests/snowflake_server.py).
# Idempotent, quiet, and fast (no network) when everything is already there. Whatever cannot be installed is
# reported as a WARNING and the script still exits 0: the tests of that engine then skip and say why.
#
#   scripts/install-engine-test-deps.sh            # uses .venv/bin/python when present, else python3
#   PYTHON=/path/to/python scripts/install-engine-test-deps.sh
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
warn() { echo "WARNING: install-engine-test-deps: $*" >&2; }

# --- Debian packages ------------------------------------------------------------------------------------------
missing=()
if ! { command -v mariadbd || [[ -x /usr/sbin/mariadbd ]]; } >/dev/null || ! command -v mariadb-install-db >/dev/null
then
    missing+=(mariadb-server)
fi
dpkg -s libmariadb-dev >/dev/null 2>&1 || missing+=(libmariadb-dev)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v gcc >/dev/null || missing+=(gcc)
if ((${#missing[@]})); then
    SUDO=""
    if [[ "$(id -u)" -ne 0 ]]; then
        if command -v sudo >/dev/null; then SUDO="sudo"; fi
    fi
    if [[ "$(id -u)" -ne 0 && -z "$SUDO" ]]; then
        warn "need root (or sudo) to apt-get install ${missing[*]}; MariaDB tests will skip"
    elif ! command -v apt-get >/dev/null; then
        warn "no apt-get here to install ${missing[*]}; MariaDB tests will skip"
    else
        echo "install-engine-test-deps: installing ${missing[*]} (apt)"
        export DEBIAN_FRONTEND=noninteractive
        # The server's package would start a system service: policy-rc.d 101 keeps it from starting (the tests
        # start their own server on a free port; a service of the machine may already hold 3306).
        if [[ ! -e /usr/sbin/policy-rc.d ]]; then
            printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
            $SUDO chmod +x /usr/sbin/policy-rc.d
            trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
        fi
        if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
            $SUDO apt-get update -qq >/dev/null 2>&1
            $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
                || warn "apt-get install ${missing[*]} failed; MariaDB tests (or the mysql extra) will skip"
        fi
    fi
fi

# --- Python packages into the virtualenv ----------------------------------------------------------------------
# One interpreter start finds what is missing, from the installed distributions' metadata (importing the
# providers would import Airflow, which takes seconds). mysqlclient is compiled against libmariadb-dev: the
# Debian step above must have run first.
"$PYTHON" - <<'PY' | sort -u | while read -r requirement; do
from importlib.metadata import PackageNotFoundError, version

for distribution, requirement in [
    ("apache-airflow-providers-duckdb", "apache-airflow-providers-duckdb>=0.2"),
    ("apache-airflow-providers-snowflake", "apache-airflow-providers-snowflake>=6.0"),
    ("fakesnow", "fakesnow[server]>=0.12"),
    ("uvicorn", "fakesnow[server]>=0.12"),
    ("starlette", "fakesnow[server]>=0.12"),
    ("apache-airflow-providers-mysql", "apache-airflow-providers-mysql>=6.0"),
    ("mysqlclient", "apache-airflow-providers-mysql>=6.0"),
]:
    try:
        version(distribution)
    except PackageNotFoundError:
        print(requirement)
PY
    echo "install-engine-test-deps: installing $requirement (pip)"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check "$requirement" >/dev/null 2>&1 \
        || warn "pip install $requirement failed; the tests of that engine will skip"
done
exit 0
