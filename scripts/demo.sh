#!/usr/bin/env bash
# The README's first command: install into .venv and audit the shipped demo
# capture (exit code 1: the demo has violations). Works with Debian's own
# python3, which refuses `pip install` outside a virtual environment (PEP 668);
# Debian's venv module is the python3-venv package, installed here when
# missing and we are root, else named.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ]; then
  if [ ! -x .venv/bin/python ]; then
    if ! python3 -m venv .venv 2>/dev/null; then
      rm -rf .venv
      if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
        python3 -m venv .venv
      else
        echo "error: python3 cannot make a virtual environment; on Debian: sudo apt-get install python3-venv" >&2
        exit 2
      fi
    fi
  fi
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi
python -m pip install -q --disable-pip-version-check .
exec verifier audit --demo --html demo-report.html "$@"
