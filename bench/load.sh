#!/usr/bin/env bash
# HTTP load: the token endpoint next to a bare endpoint of the same server, in the same run.
# Needs wrk (apt-get install wrk). Usage: bench/load.sh [--seconds N]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -p portcullis-cli -p portcullis-bench-runtime --bin portcullis --bin http-load
PORTCULLIS_BIN=target/release/portcullis target/release/http-load "$@"
