#!/usr/bin/env bash
# Benchmarks against google-api-python-client: builds a release binary,
# sets up the same virtualenv as the tests, runs bench/compare.py.
# BENCH_MESSAGES (default 2000) sets the mailbox size of the comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
GMAILSCRIPT_BIN="$PWD/target/release/gmailscript" .venv/bin/python bench/compare.py
