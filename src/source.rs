//! Sources of CPU samples for the monitor: Prometheus (PromQL over its HTTP
//! API) and the simulation it falls back to. CSV files are read by
//! [`crate::dataset`].

pub mod prometheus;
pub mod selector;
pub mod simulation;
