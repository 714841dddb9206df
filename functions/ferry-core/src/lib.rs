//! ferry's core: the replication document, the rules, the named errors, one port per AWS
//! capability with its SDK adapter, and the five handlers the Lambdas wire up.

pub mod adapters;
pub mod config;
pub mod deps;
pub mod document;
pub mod error;
pub mod handlers;
pub mod policy;
pub mod ports;
pub mod rules;

pub use config::Config;
pub use deps::Deps;
pub use document::Replication;
pub use error::FerryError;

/// Logs as JSON under Lambda's `AWS_LAMBDA_LOG_FORMAT=JSON`, levels from `AWS_LAMBDA_LOG_LEVEL`/`RUST_LOG`.
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
}
