//! ferry's core: the replication document, the rules, the named errors, one port per AWS
//! capability with its SDK adapter, and the five handlers the Lambdas wire up.

pub mod adapters;
pub mod audit;
pub mod config;
pub mod deps;
pub mod document;
pub mod error;
#[cfg(feature = "fakes")]
pub mod fakes;
pub mod flow;
pub mod handlers;
pub mod plan;
pub mod policy;
pub mod ports;
pub mod rules;
pub mod telemetry;

pub use config::Config;
pub use deps::Deps;
pub use document::Replication;
pub use error::FerryError;
pub use telemetry::init as init_tracing;
