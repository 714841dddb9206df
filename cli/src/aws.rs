//! Reaching AWS: the SDK configuration from the flags, the `AWS_*` variables and the profile (as
//! the AWS CLI resolves them), checked before any command acts: a Region, credentials, and an
//! answer from AWS. Each failure is one line and exit 4, never an SDK dump.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use ferry_core::adapters::sdk::{error_chain, with_settings};
use ferry_core::Config;

use crate::report;

/// As the AWS CLI: flags win over `AWS_*` variables, which win over the profile.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct AwsArgs {
    /// Region for ferry's own calls (evidence events, Step Functions); default: the profile's,
    /// else the source Region. Copies act in the Regions they name.
    #[arg(long, global = true, env = "AWS_REGION", value_parser = report::region)]
    pub region: Option<String>,
    /// Send every AWS call to this endpoint (a local AWS, a VPC endpoint).
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Named profile from ~/.aws/config and ~/.aws/credentials.
    #[arg(long, global = true, env = "AWS_PROFILE")]
    pub profile: Option<String>,
}

/// Why AWS cannot be used; each is exit 4.
#[derive(Debug)]
pub enum Unusable {
    NoRegion,
    NoCredentials(String),
    CredentialsRejected { code: String, message: String },
    Unreachable(String),
}

impl Unusable {
    pub fn name(&self) -> &'static str {
        match self {
            Unusable::NoRegion => "NoRegion",
            Unusable::NoCredentials(_) => "NoCredentials",
            Unusable::CredentialsRejected { .. } => "CredentialsRejected",
            Unusable::Unreachable(_) => "Unreachable",
        }
    }

    fn message(&self) -> String {
        match self {
            Unusable::NoRegion => "no AWS Region is configured".into(),
            Unusable::NoCredentials(why) => format!(
                "no AWS credentials found ({})",
                why.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Unusable::CredentialsRejected { code, message } => {
                format!("AWS refused the credentials: {code}: {message}")
            }
            Unusable::Unreachable(why) => format!("AWS could not be reached: {why}"),
        }
    }

    fn hint(&self) -> &'static str {
        match self {
            Unusable::NoRegion => "pass --region, set AWS_REGION, or set region in your profile",
            Unusable::NoCredentials(_) => "set AWS_PROFILE (or --profile), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; run `aws sso login` if your profile uses SSO",
            Unusable::CredentialsRejected { .. } => "the credentials are wrong or expired: refresh them (e.g. `aws sso login`) or pick another --profile",
            Unusable::Unreachable(_) => "check --endpoint-url / AWS_ENDPOINT_URL, the network and any proxy; -v shows each attempt",
        }
    }

    pub fn report(&self) -> std::process::ExitCode {
        report::failure(
            self.name(),
            &self.message(),
            self.hint(),
            report::UNREACHABLE,
        )
    }
}

impl AwsArgs {
    /// The SDK configuration, with ferry's retries and timeouts (as the Lambdas,
    /// rules::retry_budget); `fallback_region` is used when nothing else names one.
    pub async fn sdk_config(&self, config: &Config, fallback_region: Option<&str>) -> SdkConfig {
        let mut loader =
            with_settings(aws_config::defaults(BehaviorVersion::latest()), &config.sdk);
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &self.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile);
        }
        let sdk = loader.load().await;
        match (sdk.region(), fallback_region) {
            (None, Some(region)) => sdk
                .into_builder()
                .region(Region::new(region.to_string()))
                .build(),
            _ => sdk,
        }
    }

    /// [`Self::sdk_config`], checked before anything acts: a Region, credentials, and one
    /// answer from AWS (STS GetCallerIdentity, which needs no IAM permission), tried once.
    pub async fn connect(
        &self,
        config: &Config,
        fallback_region: Option<&str>,
    ) -> Result<SdkConfig, Unusable> {
        let sdk = self.sdk_config(config, fallback_region).await;
        if sdk.region().is_none() {
            return Err(Unusable::NoRegion);
        }
        let Some(credentials) = sdk.credentials_provider() else {
            return Err(Unusable::NoCredentials("no credentials provider".into()));
        };
        if let Err(error) = credentials.provide_credentials().await {
            return Err(Unusable::NoCredentials(error_chain(&error)));
        }
        let probe = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&sdk)
                .retry_config(RetryConfig::disabled())
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(5))
                        .operation_timeout(Duration::from_secs(10))
                        .build(),
                )
                .build(),
        );
        match probe.get_caller_identity().send().await {
            Ok(identity) => {
                tracing::info!(
                    account = identity.account().unwrap_or_default(),
                    arn = identity.arn().unwrap_or_default(),
                    "connected"
                );
                Ok(sdk)
            }
            Err(error) => match error.as_service_error() {
                Some(service) => Err(Unusable::CredentialsRejected {
                    code: service.code().unwrap_or("Unknown").into(),
                    message: service.message().unwrap_or("no message").into(),
                }),
                None => Err(Unusable::Unreachable(error_chain(&error))),
            },
        }
    }
}
