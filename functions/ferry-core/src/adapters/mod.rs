//! Adapters: each port implemented over its `aws-sdk-*` client.

pub mod associated_keys;
pub mod ec2;
pub mod events;
pub mod instances;
pub mod kms;
pub mod launch_templates;
pub mod s3;
pub mod sdk;
pub mod ssm;

pub use ec2::Ec2Adapter;
pub use events::EventBridgeAdapter;
pub use kms::KmsAdapter;
pub use s3::S3Adapter;
pub use sdk::{aws_error, load_sdk_config, Regional};
pub use ssm::SsmAdapter;
