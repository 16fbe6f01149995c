//! Events through Amazon EventBridge (`PutEvents`), to `EVENT_BUS_NAME`. As the SES mailer,
//! the client is built on the first event, from the environment Lambda sets;
//! `AWS_ENDPOINT_URL_EVENTBRIDGE` points it elsewhere (an EventBridge emulator in tests).

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::error::{DisplayErrorContext, SdkError};
use aws_sdk_eventbridge::operation::put_events::PutEventsError;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::{EventError, EventSink, LifecycleEvent, SOURCE};

#[derive(Debug)]
pub struct EventBridgeSink {
    client: std::sync::OnceLock<Client>,
    make: fn() -> Client,
    bus: String,
}

impl EventBridgeSink {
    /// A sink with a client of `sdk`'s settings (tests, tools).
    pub fn new(sdk: &aws_config::SdkConfig, bus: impl Into<String>) -> Self {
        Self {
            client: std::sync::OnceLock::from(Client::new(sdk)),
            make: || unreachable!("the client is built already"),
            bus: bus.into(),
        }
    }

    /// A Lambda function's sink; its client is built on the first event.
    pub fn lambda(bus: impl Into<String>) -> Self {
        Self {
            client: std::sync::OnceLock::new(),
            make: lambda_client,
            bus: bus.into(),
        }
    }

    fn client(&self) -> &Client {
        self.client.get_or_init(self.make)
    }
}

/// Region and credentials from the variables Lambda sets; `AWS_ENDPOINT_URL_EVENTBRIDGE` when
/// not empty.
fn lambda_client() -> Client {
    use aws_sdk_eventbridge::config;
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let mut builder = config::Builder::new()
        .behavior_version(config::BehaviorVersion::latest())
        .credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        )
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(1))
                .operation_timeout(std::time::Duration::from_secs(3))
                .build(),
        );
    if let Some(region) = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")) {
        builder = builder.region(config::Region::new(region));
    }
    if let Some(endpoint) = var("AWS_ENDPOINT_URL_EVENTBRIDGE") {
        builder = builder.endpoint_url(endpoint);
    }
    Client::from_conf(builder.build())
}

/// Throttling, network trouble and EventBridge's own errors are worth another try; a refusal
/// (no such bus, no permission) is not.
fn classify(err: SdkError<PutEventsError>) -> EventError {
    let detail = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::ServiceError(service) if service.raw().status().is_server_error() => {
            EventError::Transient(detail)
        }
        SdkError::ServiceError(service)
            if service.raw().status().as_u16() == 429 || detail.contains("Throttl") =>
        {
            EventError::Transient(detail)
        }
        SdkError::ServiceError(_) | SdkError::ConstructionFailure(_) => {
            EventError::Rejected(detail)
        }
        _ => EventError::Transient(detail),
    }
}

#[async_trait]
impl EventSink for EventBridgeSink {
    async fn put(&self, event: &LifecycleEvent) -> Result<(), EventError> {
        let detail =
            serde_json::to_string(event).map_err(|e| EventError::Rejected(e.to_string()))?;
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(&event.kind)
            .detail(detail)
            .build();
        let output = self
            .client()
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(classify)?;
        // A put can succeed as a request and still fail its entry (throttled, internal).
        match output.failed_entry_count() {
            0 => Ok(()),
            _ => {
                let code = output
                    .entries()
                    .first()
                    .and_then(|e| e.error_code())
                    .unwrap_or("unknown");
                Err(EventError::Transient(format!("entry failed: {code}")))
            }
        }
    }
}
