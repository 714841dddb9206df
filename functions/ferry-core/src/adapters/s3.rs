//! The work store over S3: the stack's bucket, in the function's own Region.

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

use super::sdk::aws_error;
use crate::ports::{AwsError, AwsResult, WorkStore};

pub struct S3Adapter {
    client: Client,
}

impl S3Adapter {
    /// Path-style addressing when an endpoint is configured (the local AWS answers on one host).
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        let config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build();
        S3Adapter {
            client: Client::from_conf(config),
        }
    }

    pub fn from_client(client: Client) -> Self {
        S3Adapter { client }
    }
}

#[async_trait]
impl WorkStore for S3Adapter {
    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> AwsResult<()> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(aws_error)?;
        Ok(())
    }

    async fn get(&self, bucket: &str, key: &str) -> AwsResult<Option<Vec<u8>>> {
        let object = match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => object,
            Err(error) if error.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Ok(None)
            }
            Err(error) => return Err(aws_error(error)),
        };
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| AwsError::Transport(e.to_string()))?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }

    async fn list(&self, bucket: &str, prefix: &str) -> AwsResult<Vec<String>> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut keys = vec![];
        while let Some(page) = pages.next().await {
            let page = page.map_err(aws_error)?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
    use aws_sdk_s3::types::error::NoSuchKey;
    use aws_smithy_mocks::{mock, mock_client};

    #[tokio::test]
    async fn a_missing_object_is_none_and_a_present_one_is_its_bytes() {
        let missing = mock!(Client::get_object)
            .match_requests(|req| req.key() == Some("runs/a/absent.json"))
            .then_error(|| GetObjectError::NoSuchKey(NoSuchKey::builder().build()));
        let present = mock!(Client::get_object)
            .match_requests(|req| {
                req.bucket() == Some("work") && req.key() == Some("runs/a/plan.json")
            })
            .then_output(|| {
                GetObjectOutput::builder()
                    .body(ByteStream::from_static(b"{\"ok\":true}"))
                    .build()
            });
        let store = S3Adapter::from_client(mock_client!(aws_sdk_s3, [&missing, &present]));
        assert_eq!(store.get("work", "runs/a/absent.json").await.unwrap(), None);
        assert_eq!(
            store
                .get("work", "runs/a/plan.json")
                .await
                .unwrap()
                .as_deref(),
            Some(&b"{\"ok\":true}"[..])
        );
    }
}
