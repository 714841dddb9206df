use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_kms::config::Region;
use aws_sdk_kms::Client;

use super::sdk::{aws_error, Regional};
use crate::ports::{AwsResult, KeyInfo, Keys};

pub struct KmsAdapter {
    clients: Regional<Client>,
}

impl KmsAdapter {
    pub fn new(config: &SdkConfig) -> Self {
        let config = config.clone();
        Self::with_clients(move |region| {
            Client::from_conf(
                aws_sdk_kms::config::Builder::from(&config)
                    .region(Region::new(region.to_string()))
                    .build(),
            )
        })
    }

    /// Builds the adapter over any client factory (a mocked client in adapter tests).
    pub fn with_clients(make: impl Fn(&str) -> Client + Send + Sync + 'static) -> Self {
        KmsAdapter {
            clients: Regional::new(make),
        }
    }
}

#[async_trait]
impl Keys for KmsAdapter {
    async fn describe_key(&self, region: &str, key_id: &str) -> AwsResult<KeyInfo> {
        let output = self
            .clients
            .get(region)
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(aws_error)?;
        let metadata = output.key_metadata();
        Ok(KeyInfo {
            arn: metadata
                .and_then(|m| m.arn())
                .unwrap_or_default()
                .to_string(),
            key_id: metadata.map(|m| m.key_id()).unwrap_or_default().to_string(),
            state: metadata
                .and_then(|m| m.key_state())
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            spec: metadata
                .and_then(|m| m.key_spec())
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            usage: metadata
                .and_then(|m| m.key_usage())
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            multi_region: metadata.and_then(|m| m.multi_region()).unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kms::operation::describe_key::{DescribeKeyError, DescribeKeyOutput};
    use aws_sdk_kms::types::{KeyMetadata, KeySpec, KeyState, KeyUsageType};
    use aws_smithy_mocks::{mock, mock_client};

    #[tokio::test]
    async fn describe_key_asks_for_the_reference_and_reads_the_metadata() {
        let rule = mock!(Client::describe_key)
            .match_requests(|req| req.key_id() == Some("alias/prod"))
            .then_output(|| {
                DescribeKeyOutput::builder()
                    .key_metadata(
                        KeyMetadata::builder()
                            .key_id("k1")
                            .arn("arn:aws:kms:us-west-2:111122223333:key/k1")
                            .key_state(KeyState::PendingDeletion)
                            .key_spec(KeySpec::SymmetricDefault)
                            .key_usage(KeyUsageType::EncryptDecrypt)
                            .multi_region(true)
                            .build()
                            .unwrap(),
                    )
                    .build()
            });
        let client = mock_client!(aws_sdk_kms, [&rule]);
        let adapter = KmsAdapter::with_clients(move |_| client.clone());
        let key = adapter
            .describe_key("us-west-2", "alias/prod")
            .await
            .unwrap();
        assert_eq!(key.arn, "arn:aws:kms:us-west-2:111122223333:key/k1");
        assert_eq!(
            (key.state.as_str(), key.spec.as_str(), key.usage.as_str()),
            ("PendingDeletion", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
        );
        assert!(key.multi_region);
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_missing_key_is_a_not_found_service_error() {
        let rule = mock!(Client::describe_key).then_error(|| {
            DescribeKeyError::NotFoundException(
                aws_sdk_kms::types::error::NotFoundException::builder()
                    .message("Invalid keyId")
                    .meta(
                        aws_smithy_types::error::ErrorMetadata::builder()
                            .code("NotFoundException")
                            .message("Invalid keyId")
                            .build(),
                    )
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_kms, [&rule]);
        let adapter = KmsAdapter::with_clients(move |_| client.clone());
        let error = adapter
            .describe_key("us-west-2", "alias/none")
            .await
            .unwrap_err();
        assert!(error.is_not_found(), "{error:?}");
    }
}
