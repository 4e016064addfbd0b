//! cpu-anomaly: learns what normal CPU usage looks like and flags, in real
//! time, when a machine stops behaving normally.
//!
//! Data path: [`dataset`] (source) → [`forecast`] (band) → [`detect`]
//! (score, flag, severity) → sinks; [`evaluate`] measures the whole path.

pub mod accuracy;
pub mod api;
pub mod cli;
pub mod config;
pub mod dataset;
pub mod detect;
pub mod eda;
pub mod errors;
pub mod evaluate;
pub mod forecast;
#[doc(hidden)]
pub mod fuzz;
pub mod logfile;
pub mod monitor;
pub mod notify;
pub mod plots;
pub mod score;
pub mod secret;
pub mod shard;
pub mod simulate;
pub mod sink;
pub mod source;
pub mod status;
pub mod train;
