#!/usr/bin/env bash
# What-if replay at scale: fills a SQLite database with recorded decisions of one app (each with
# the inputs the token path records), then times re-deciding all of them with a narrowing draft
# (Core::replay_policies, as POST .../policies/replay runs it). Target: 1,000,000 in under 5 s.
# Usage: bench/replay.sh [decisions (default 1000000)] [runs (default 3)]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p portcullis-bench-runtime --bin replay
target/release/replay "$@"
