//! Everything a handler needs, built once per cold start.

use std::sync::Arc;

use aws_config::SdkConfig;

use crate::adapters::{
    load_sdk_config, Ec2Adapter, EventBridgeAdapter, KmsAdapter, S3Adapter, SsmAdapter,
};
use crate::config::Config;
use crate::ports::{
    Clock, Events, FastRestore, Images, Instances, Keys, LaunchTemplates, Parameters, Snapshots,
    SystemClock, Tagging, WorkStore,
};

pub struct Deps {
    pub config: Config,
    pub keys: Arc<dyn Keys>,
    pub images: Arc<dyn Images>,
    pub snapshots: Arc<dyn Snapshots>,
    pub tagging: Arc<dyn Tagging>,
    pub fast_restore: Arc<dyn FastRestore>,
    pub events: Arc<dyn Events>,
    /// The boot check's instance.
    pub instances: Arc<dyn Instances>,
    /// Destination wiring: launch-template versions and SSM parameters.
    pub launch_templates: Arc<dyn LaunchTemplates>,
    pub parameters: Arc<dyn Parameters>,
    /// The stack's bucket: work lists and run manifests.
    pub work: Arc<dyn WorkStore>,
    pub clock: Arc<dyn Clock>,
}

impl Deps {
    /// Loads the SDK configuration from the environment and builds every adapter.
    pub async fn load(config: Config) -> Self {
        let sdk = load_sdk_config(&config.sdk).await;
        Self::from_sdk(&sdk, config)
    }

    /// Builds every adapter over one SDK configuration (tests point it at the local AWS).
    pub fn from_sdk(sdk: &SdkConfig, config: Config) -> Self {
        let ec2 = Arc::new(Ec2Adapter::new(sdk));
        let events = EventBridgeAdapter::new(
            aws_sdk_eventbridge::Client::new(sdk),
            config.event_bus.clone(),
        );
        Deps {
            config,
            keys: Arc::new(KmsAdapter::new(sdk)),
            images: ec2.clone(),
            snapshots: ec2.clone(),
            tagging: ec2.clone(),
            launch_templates: ec2.clone(),
            instances: ec2.clone(),
            fast_restore: ec2,
            parameters: Arc::new(SsmAdapter::new(sdk)),
            events: Arc::new(events),
            work: Arc::new(S3Adapter::new(sdk)),
            clock: Arc::new(SystemClock),
        }
    }
}
