//! ferry's rules as pure functions: no I/O, each unit-tested.

pub mod key;
pub mod lineage;
pub mod polling;
pub mod request;
pub mod status;
pub mod verify;
