//! Benchmarks of the running system; see `benches/` and `load.sh`.
