//! Criterion micro-benchmarks of the xtcp core over the in-memory link (see `benches/`).
