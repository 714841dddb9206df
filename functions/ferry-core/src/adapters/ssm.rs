//! The `Parameters` port over the SSM client.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_ssm::config::Region;
use aws_sdk_ssm::types::ParameterType;
use aws_sdk_ssm::Client;

use super::sdk::{aws_error, Regional};
use crate::ports::{AwsResult, ParameterInfo, Parameters};

/// SSM's data type for a parameter that holds an AMI id.
pub const IMAGE_DATA_TYPE: &str = "aws:ec2:image";

pub struct SsmAdapter {
    clients: Regional<Client>,
}

impl SsmAdapter {
    pub fn new(config: &SdkConfig) -> Self {
        let config = config.clone();
        Self::with_clients(move |region| {
            Client::from_conf(
                aws_sdk_ssm::config::Builder::from(&config)
                    .region(Region::new(region.to_string()))
                    .build(),
            )
        })
    }

    /// Builds the adapter over any client factory (a mocked client in adapter tests).
    pub fn with_clients(make: impl Fn(&str) -> Client + Send + Sync + 'static) -> Self {
        SsmAdapter {
            clients: Regional::new(make),
        }
    }
}

#[async_trait]
impl Parameters for SsmAdapter {
    async fn get(&self, region: &str, name: &str) -> AwsResult<Option<ParameterInfo>> {
        let answer = self
            .clients
            .get(region)
            .get_parameter()
            .name(name)
            .send()
            .await
            .map_err(aws_error);
        let output = match answer {
            Ok(output) => output,
            Err(error) if error.code() == "ParameterNotFound" => return Ok(None),
            Err(error) => return Err(error),
        };
        Ok(output.parameter().map(|p| ParameterInfo {
            value: p.value().unwrap_or_default().to_string(),
            version: p.version(),
            data_type: p.data_type().map(str::to_string),
        }))
    }

    async fn put_image_id(&self, region: &str, name: &str, image_id: &str) -> AwsResult<i64> {
        let output = self
            .clients
            .get(region)
            .put_parameter()
            .name(name)
            .value(image_id)
            .r#type(ParameterType::String)
            .data_type(IMAGE_DATA_TYPE)
            .overwrite(true)
            .send()
            .await
            .map_err(aws_error)?;
        Ok(output.version())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ssm::operation::get_parameter::{GetParameterError, GetParameterOutput};
    use aws_sdk_ssm::operation::put_parameter::PutParameterOutput;
    use aws_sdk_ssm::types::Parameter;
    use aws_smithy_mocks::{mock, mock_client};

    #[tokio::test]
    async fn put_image_id_asks_for_an_image_parameter_overwritten() {
        let rule = mock!(Client::put_parameter)
            .match_requests(|req| {
                req.name() == Some("/golden/web/ami")
                    && req.value() == Some("ami-0fedcba9876543210")
                    && req.data_type() == Some(IMAGE_DATA_TYPE)
                    && req.r#type() == Some(&ParameterType::String)
                    && req.overwrite() == Some(true)
            })
            .then_output(|| PutParameterOutput::builder().version(3).build());
        let client = mock_client!(aws_sdk_ssm, [&rule]);
        let adapter = SsmAdapter::with_clients(move |_| client.clone());
        let version = adapter
            .put_image_id("us-west-2", "/golden/web/ami", "ami-0fedcba9876543210")
            .await
            .unwrap();
        assert_eq!((version, rule.num_calls()), (3, 1));
    }

    #[tokio::test]
    async fn get_reads_value_version_and_data_type_and_a_missing_parameter_is_none() {
        let found = mock!(Client::get_parameter)
            .match_requests(|req| req.name() == Some("/golden/web/ami"))
            .then_output(|| {
                GetParameterOutput::builder()
                    .parameter(
                        Parameter::builder()
                            .value("ami-0fedcba9876543210")
                            .version(2)
                            .data_type(IMAGE_DATA_TYPE)
                            .build(),
                    )
                    .build()
            });
        let missing = mock!(Client::get_parameter).then_error(|| {
            GetParameterError::ParameterNotFound(
                aws_sdk_ssm::types::error::ParameterNotFound::builder()
                    .meta(
                        aws_smithy_types::error::ErrorMetadata::builder()
                            .code("ParameterNotFound")
                            .build(),
                    )
                    .build(),
            )
        });
        let client = mock_client!(
            aws_sdk_ssm,
            aws_smithy_mocks::RuleMode::Sequential,
            [&found, &missing]
        );
        let adapter = SsmAdapter::with_clients(move |_| client.clone());
        let parameter = adapter.get("us-west-2", "/golden/web/ami").await.unwrap();
        assert_eq!(
            parameter,
            Some(ParameterInfo {
                value: "ami-0fedcba9876543210".into(),
                version: 2,
                data_type: Some(IMAGE_DATA_TYPE.into()),
            })
        );
        assert_eq!(adapter.get("us-west-2", "/other").await.unwrap(), None);
    }
}
