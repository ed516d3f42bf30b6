#!/usr/bin/env bash
# bench/run_tls.sh — runs bench_tls (sli server vs openssl s_server vs bare BoringSSL, same client)
# with a fresh ECDSA P-256 certificate. Usage: bench/run_tls.sh [RUNS] [HANDSHAKES] [BULK_MIB]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/key.pem" \
  -out "$tmp/cert.pem" -subj /CN=localhost -addext subjectAltName=DNS:localhost -days 2 2>/dev/null
"$top/build/bench/bench_tls" "$tmp/cert.pem" "$tmp/key.pem" "${1:-5}" "${2:-300}" "${3:-256}"
