//! What went wrong while loading configuration.

use std::path::PathBuf;

/// What went wrong while loading configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("{path}: cannot read config: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file is not valid YAML.
    #[error("{path}: invalid YAML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Parser message, with line and column.
        message: String,
    },
    /// A key is unknown or has the wrong type.
    #[error("{origin}: key `{key}`: {message}")]
    Key {
        /// Where the value came from (file, env var or flag).
        origin: String,
        /// Dotted key path.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A value is outside its allowed range.
    #[error("{origin}: key `{key}` = {value}: must be {expected}")]
    OutOfRange {
        /// Where the value came from (file, env var or flag).
        origin: String,
        /// Dotted key path.
        key: String,
        /// The offending value as text (never a secret).
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
}
