use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

use super::sdk::aws_error;
use crate::ports::{AwsError, AwsResult, Events};

/// The `source` of every event ferry publishes.
pub const EVENT_SOURCE: &str = "ferry";

pub struct EventBridgeAdapter {
    client: Client,
    bus: String,
}

impl EventBridgeAdapter {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        EventBridgeAdapter {
            client,
            bus: bus.into(),
        }
    }
}

#[async_trait]
impl Events for EventBridgeAdapter {
    async fn publish(
        &self,
        detail_type: &str,
        detail: &serde_json::Value,
        resources: &[String],
    ) -> AwsResult<()> {
        let entry = PutEventsRequestEntry::builder()
            .source(EVENT_SOURCE)
            .detail_type(detail_type)
            .detail(detail.to_string())
            .event_bus_name(&self.bus)
            .set_resources(Some(resources.to_vec()))
            .build();
        let output = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(aws_error)?;
        match output.entries().iter().find(|e| e.error_code().is_some()) {
            Some(failed) if output.failed_entry_count() > 0 => Err(AwsError::Service {
                code: failed.error_code().unwrap_or("PutEventsFailed").to_string(),
                message: failed
                    .error_message()
                    .unwrap_or("entry rejected")
                    .to_string(),
            }),
            _ if output.failed_entry_count() > 0 => Err(AwsError::Service {
                code: "PutEventsFailed".into(),
                message: "entry rejected".into(),
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
    use aws_sdk_eventbridge::types::PutEventsResultEntry;
    use aws_smithy_mocks::{mock, mock_client};

    #[tokio::test]
    async fn publishes_one_ferry_entry_to_the_configured_bus() {
        let rule = mock!(Client::put_events)
            .match_requests(|req| {
                let entry = &req.entries()[0];
                entry.source() == Some("ferry")
                    && entry.detail_type() == Some("Replication Succeeded")
                    && entry.event_bus_name() == Some("ferry-bus")
                    && entry
                        .detail()
                        .is_some_and(|d| d.contains("\"replicationId\":\"fr-1\""))
            })
            .then_output(|| {
                PutEventsOutput::builder()
                    .failed_entry_count(0)
                    .entries(PutEventsResultEntry::builder().event_id("e1").build())
                    .build()
            });
        let adapter =
            EventBridgeAdapter::new(mock_client!(aws_sdk_eventbridge, [&rule]), "ferry-bus");
        adapter
            .publish(
                "Replication Succeeded",
                &serde_json::json!({"replicationId": "fr-1"}),
                &["ami-1".into()],
            )
            .await
            .unwrap();
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_rejected_entry_is_an_error_not_a_silent_success() {
        let rule = mock!(Client::put_events).then_output(|| {
            PutEventsOutput::builder()
                .failed_entry_count(1)
                .entries(
                    PutEventsResultEntry::builder()
                        .error_code("InternalFailure")
                        .error_message("try again")
                        .build(),
                )
                .build()
        });
        let adapter =
            EventBridgeAdapter::new(mock_client!(aws_sdk_eventbridge, [&rule]), "default");
        let error = adapter
            .publish("Replication Succeeded", &serde_json::json!({}), &[])
            .await
            .unwrap_err();
        assert_eq!(error.code(), "InternalFailure");
    }
}
