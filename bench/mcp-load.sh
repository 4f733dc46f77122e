#!/usr/bin/env bash
# What Portcullis adds to an MCP tool call: the calendar example's list_events through its MCP
# server, fetching the calendar token from Portcullis on every call, against the same call with
# a static token. Needs wrk (apt-get install wrk).
# Usage: bench/mcp-load.sh [--seconds N]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -p portcullis-cli -p portcullis-bench-runtime --bin portcullis --bin mcp-load
PORTCULLIS_BIN=target/release/portcullis target/release/mcp-load "$@"
