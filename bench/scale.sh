#!/usr/bin/env bash
# Scale: a data set of 100,000 users (some with roles, some in tenants), 1,000 outbound apps with
# 10 policies each, 10,000 tenants, 1,000,000 sealed connections and 10,000,000 recorded
# decisions, made through the product's own paths and timed (bench/runtime/src/bin/scale-data.rs);
# then the token endpoint under wrk on it, one warm user and users drawn Zipf-wise
# (http-load --zipf). SQLite always; PostgreSQL too with --postgres. Needs wrk; psql for
# --postgres. The full data set takes ~16 GB on SQLite, ~19 GB on PostgreSQL (mostly the audit log).
#
# Usage: bench/scale.sh [--postgres] [--database-url URL] [--dir DIR] [--seconds N] [--samples N]
#                       [--users N] [--apps N] [--tenants N] [--connections N] [--audit N]
#                       [--seed N] [--jobs N]
#   e.g. bench/scale.sh --users 1000 --connections 10000 --audit 100000   (a small check)
# Without --database-url, --postgres drops and creates the database portcullis_scale.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }

postgres=0
pg_url=""
dir=target/scale
load=()
gen=()
while [ $# -gt 0 ]; do
  case "$1" in
    --postgres) postgres=1; shift ;;
    --database-url) postgres=1; pg_url="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --seconds|--samples) load+=("$1" "$2"); shift 2 ;;
    --users|--apps|--tenants|--connections|--audit|--seed|--jobs|--audit-batch) gen+=("$1" "$2"); shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

cargo build --release -p portcullis-cli -p portcullis-bench-runtime \
  --bin portcullis --bin scale-data --bin http-load
export PORTCULLIS_BIN=target/release/portcullis

echo "== SQLite: generating"
rm -rf "$dir/sqlite"
target/release/scale-data --backend sqlite --path "$dir/sqlite" ${gen[@]+"${gen[@]}"}
db="$dir/sqlite/portcullis.db"
if command -v sqlite3 >/dev/null; then
  # Fold the write-ahead log into the file, so that its size is the database's.
  sqlite3 "$db" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
fi
echo "database file: $(du -h "$db" | cut -f1) ($db)"
echo
echo "== SQLite: load"
target/release/http-load --database "$dir/sqlite" --zipf ${load[@]+"${load[@]}"}

if [ "$postgres" = 1 ]; then
  command -v psql >/dev/null || { echo "psql is needed for --postgres" >&2; exit 1; }
  if [ -z "$pg_url" ]; then
    pg_url=postgres://postgres@127.0.0.1:5432/portcullis_scale
    psql -q postgres://postgres@127.0.0.1:5432/postgres \
      -c 'DROP DATABASE IF EXISTS portcullis_scale' -c 'CREATE DATABASE portcullis_scale'
  fi
  echo
  echo "== PostgreSQL: generating"
  rm -rf "$dir/postgres"
  target/release/scale-data --backend postgres --database-url "$pg_url" --path "$dir/postgres" \
    ${gen[@]+"${gen[@]}"}
  # Statistics for the planner, as autovacuum would gather them after such a load (it may be off).
  psql -q -c ANALYZE "$pg_url"
  echo "database size: $(psql -Atc 'SELECT pg_size_pretty(pg_database_size(current_database()))' "$pg_url")"
  echo
  echo "== PostgreSQL: load"
  target/release/http-load --database "$pg_url" --manifest "$dir/postgres/scale.json" --zipf \
    ${load[@]+"${load[@]}"}
fi
