#!/usr/bin/env bash
# Installs what tests/browser needs: Debian's Chromium (apt) and Python Playwright (pip, into the project's
# virtualenv). Idempotent, quiet, and fast (no network) when both are already there.
#
# Playwright only drives the system browser (executable_path=/usr/bin/chromium): `playwright install`, which
# downloads a browser build of its own, is never run.
#
#   scripts/install-browser-test-deps.sh            # uses .venv/bin/python when present, else python3
#   PYTHON=/path/to/python scripts/install-browser-test-deps.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PLAYWRIGHT_REQ="${PLAYWRIGHT_REQ:-playwright>=1.65,<2}"
CHROMIUM="${GREENAPI_CHROMIUM:-/usr/bin/chromium}"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

if [[ ! -x "$CHROMIUM" ]]; then
    SUDO=""
    if [[ "$(id -u)" -ne 0 ]]; then
        command -v sudo >/dev/null || { echo "install-browser-test-deps: need root (or sudo) for apt-get" >&2; exit 1; }
        SUDO="sudo"
    fi
    echo "install-browser-test-deps: installing chromium (apt)"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq >/dev/null
    # fonts-liberation: chromium only recommends it, and without it pages render in a fallback font.
    $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
fi

if ! "$PYTHON" -c 'import playwright.sync_api' >/dev/null 2>&1; then
    echo "install-browser-test-deps: installing $PLAYWRIGHT_REQ (pip)"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check "$PLAYWRIGHT_REQ"
fi
