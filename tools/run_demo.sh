#!/usr/bin/env bash
# Set up the machine (idempotent; see tools/setup.sh) and run the main demo: a ResNet teacher
# distilled into a small student on real Fashion-MNIST (KD, DIST, DiffKD), with a results table
# and a plot of validation accuracy. Extra arguments go to tools/demo.py (see --help).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MMDIFFKD_VENV:-$ROOT/.venv}
bash "$ROOT/tools/setup.sh"
cd "$ROOT"
exec "$VENV/bin/python" tools/demo.py "$@"
