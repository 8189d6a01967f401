#!/usr/bin/env bash
# The test command: builds gmailscript, runs the Rust tests, then the
# fidelity tests that drive the simulator with Google's own Python client.
# Works on a fresh machine: it makes its own virtualenv in .venv.
set -euo pipefail
cd "$(dirname "$0")"

echo "== Rust tests"
cargo test

echo "== Python fidelity tests (google-api-python-client against the simulator)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
cargo build --quiet
GMAILSCRIPT_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/gmailscript" .venv/bin/python -m pytest -q tests/python
