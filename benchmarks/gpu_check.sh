#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): one table with the device name, in at most 8 minutes.
#   bash benchmarks/gpu_check.sh            # on one GPU: 7B-shaped random pair in bf16
#   bash benchmarks/gpu_check.sh --quick    # a tiny setting on CPU (run by the test suite)
# Any other flag goes to gpu_check.py (see --help). The hard stop is 8 minutes; sections that
# would start after --budget-s (default 450 s) are reported as skipped instead.
set -euo pipefail
cd "$(dirname "$0")/.."
export TOKENIZERS_PARALLELISM=false
exec timeout --signal=INT 480 "${PYTHON:-python3}" benchmarks/gpu_check.py "$@"
