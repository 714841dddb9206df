//! Adapters: each port implemented over its `aws-sdk-*` client.

pub mod ec2;
pub mod events;
pub mod kms;
pub mod sdk;

pub use ec2::Ec2Adapter;
pub use events::EventBridgeAdapter;
pub use kms::KmsAdapter;
pub use sdk::{aws_error, load_sdk_config, Regional, SdkSettings};
