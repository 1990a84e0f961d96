#!/usr/bin/env bash
# Set up (idempotently) and run the default test suite; extra arguments go to pytest
# (e.g. `bash scripts/test.sh --runslow` adds the long learning runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${PYTHON:-python3}" -m pytest -q "$@"
