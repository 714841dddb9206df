//! The local AWS that `ferry demo` and the tests run on: moto's server plus ferry's patch layer
//! (the Python package in `local/emulator`) on a free loopback port ([`LocalAws`]), and a
//! [`Seeder`] that fills it through the real SDK clients.

pub mod local_aws;
pub mod seed;

pub use local_aws::LocalAws;
pub use seed::{tag_value, Key, Seeder};
