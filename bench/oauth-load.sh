#!/usr/bin/env bash
# HTTP load on the authorization server: client credentials, refresh with rotation, introspection;
# then panva's oidc-provider (bench/oidc-provider, on Node) on the same client credentials load.
# Needs wrk (apt-get install wrk); Node for the comparison, skipped without it.
# Usage: bench/oauth-load.sh [--seconds N] [--database-url URL]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
if command -v node >/dev/null && [ ! -d bench/oidc-provider/node_modules ]; then
  npm ci --prefix bench/oidc-provider --no-audit --no-fund ||
    echo "npm ci failed: the oidc-provider comparison will be skipped" >&2
fi
cargo build --release -p portcullis-cli -p portcullis-bench-runtime --bin portcullis --bin oauth-load
PORTCULLIS_BIN=target/release/portcullis target/release/oauth-load "$@"
