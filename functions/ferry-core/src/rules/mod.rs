//! ferry's rules as pure functions: no I/O, each unit-tested.

pub mod boot_check;
pub mod fsr;
pub mod key;
pub mod lineage;
pub mod plan;
pub mod polling;
pub mod request;
pub mod retention;
pub mod retry_budget;
pub mod status;
pub mod summary;
pub mod time_based;
pub mod verify;
pub mod wiring;
