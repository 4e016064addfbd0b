//! The integration tests, one test binary (`autotests = false` in
//! Cargo.toml): one link of the whole dependency tree instead of one per file,
//! and one test runner, so the tests that mostly wait on servers they start
//! run side by side. Each file is a module: `cargo test --release --test
//! integration monitor::` runs `tests/monitor.rs`.

mod common;

mod alert_overrides;
mod api;
mod capacity;
mod dashboard;
mod decision;
mod evaluate;
mod fleet;
mod fuzz_regressions;
mod grafana_queries;
mod influx_sink;
mod kubernetes;
mod monitor;
mod notify;
mod prophet_model;
mod prophet_optimizer;
mod score;
mod shard;
mod stack;
mod train_cli;
