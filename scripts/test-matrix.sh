#!/usr/bin/env bash
# The core tests (pytest marker `matrix`) on every other supported Airflow line, each in its own virtualenv
# under .venv-matrix/<version>/. `make test` runs the whole suite on the newest stable line (.venv).
#
#   scripts/test-matrix.sh                     # every version in MATRIX_AIRFLOW (the Makefile sets it)
#   scripts/test-matrix.sh 3.1.8               # one version
#   MATRIX_BROWSER="2.11.2 3.4.0b2" scripts/test-matrix.sh   # also the browser tests on those versions
#
# A virtualenv is reinstalled only when pyproject.toml (or the line's scripts/matrix-constraints-<version>.txt,
# applied with -c) changed since it was built. Each step's time is printed
# (and appended to .venv-matrix/timings.log) so that CI's budget can be checked.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
MATRIX_DIR="${MATRIX_DIR:-.venv-matrix}"
MATRIX_BROWSER="${MATRIX_BROWSER:-}"
# Lines that also get the openlineage extra (tests/test_lineage.py): those whose OpenLineage provider path
# differs most from `make test`'s 3.3 (Airflow 2's listener and 3.0's).
MATRIX_OPENLINEAGE="${MATRIX_OPENLINEAGE:-}"
read -r -a VERSIONS <<< "${*:-${MATRIX_AIRFLOW:?set MATRIX_AIRFLOW or name the Airflow versions}}"
mkdir -p "$MATRIX_DIR"
TIMINGS="$MATRIX_DIR/timings.log"
failed=()

elapsed() { echo $(( $(date +%s) - $1 )); }

for version in "${VERSIONS[@]}"; do
    venv="$MATRIX_DIR/$version"
    # A line whose release no longer works with today's dependencies gets its pins from this file.
    constraints="scripts/matrix-constraints-$version.txt"
    pins=()
    extras=test
    if [[ " $MATRIX_OPENLINEAGE " == *" $version "* ]]; then extras=test,openlineage; fi
    stamped=(pyproject.toml)
    if [[ -f "$constraints" ]]; then pins=(-c "$constraints"); stamped+=("$constraints"); fi
    stamp="$venv/.installed-$( (cat "${stamped[@]}"; echo "$extras") | sha256sum | cut -c1-16)"
    start=$(date +%s)
    if [[ ! -e "$stamp" ]]; then
        echo "test-matrix: installing Airflow $version into $venv"
        rm -rf "$venv"
        "$PYTHON" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --upgrade pip > "$venv/install.log" 2>&1
        if ! "$venv/bin/python" -m pip install --quiet "${pins[@]}" -e ".[$extras]" "apache-airflow==$version" \
                >> "$venv/install.log" 2>&1; then
            cat "$venv/install.log"
            echo "test-matrix: Airflow $version: install FAILED" >&2
            failed+=("$version (install)")
            continue
        fi
        touch "$stamp"
    fi
    installed=$(elapsed "$start")
    markers="matrix and not postgres"
    if [[ " $MATRIX_BROWSER " == *" $version "* ]]; then
        if PYTHON="$venv/bin/python" scripts/install-browser-test-deps.sh; then
            markers="(matrix and not postgres) or browser"
        else
            echo "test-matrix: WARNING: browser test dependencies missing; browser test skipped on $version" >&2
        fi
    fi
    start=$(date +%s)
    echo "test-matrix: Airflow $version: pytest -m '$markers'"
    status=0
    "$venv/bin/python" -m pytest -q -rs -p no:cacheprovider -m "$markers" || status=$?
    tested=$(elapsed "$start")
    echo "$(date -u +%FT%TZ) airflow=$version install=${installed}s tests=${tested}s exit=$status" | tee -a "$TIMINGS"
    if [[ $status -ne 0 ]]; then failed+=("$version (tests)"); fi
done

if (( ${#failed[@]} )); then
    echo "test-matrix: FAILED on: ${failed[*]}" >&2
    exit 1
fi
echo "test-matrix: passed on Airflow ${VERSIONS[*]}"
