#!/usr/bin/env bash
# HTTP load on the authorization server: client credentials, refresh with rotation, introspection.
# Needs wrk (apt-get install wrk). Usage: bench/oauth-load.sh [--seconds N] [--database-url URL]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -p portcullis-cli -p portcullis-bench-runtime --bin portcullis --bin oauth-load
PORTCULLIS_BIN=target/release/portcullis target/release/oauth-load "$@"
