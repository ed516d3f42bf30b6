#!/usr/bin/env bash
# bench/run_blobs.sh — issue 3's two blob benchmarks in one run: sealed blobs of 64 B, 4 KiB and
# 1 MiB against bare BoringSSL AES-256-GCM (build/bench/bench_seal), then age-format encryption and
# decryption of 1 GiB against the `age` tool (bench/bench_age.py). Usage: bench/run_blobs.sh [RUNS]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
echo "## sealed blobs vs bare AES-256-GCM"
"$top/build/bench/bench_seal" "${1:-5}"
echo
echo "## age format, 1 GiB, vs the age tool"
/usr/bin/python3 "$top/bench/bench_age.py" "${1:-5}"
