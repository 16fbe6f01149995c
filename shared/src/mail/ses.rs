//! Mail through Amazon SES v2 (`SendEmail`), from `MAIL_FROM`. The client is built once per
//! cold start from the same SDK configuration as the DynamoDB client; `AWS_ENDPOINT_URL_SESV2`
//! points it elsewhere (the SES v2 emulator in tests).

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{DisplayErrorContext, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message as SesMessage};

use super::{MailError, Mailer, Message};

#[derive(Debug)]
pub struct SesMailer {
    client: std::sync::OnceLock<Client>,
    make: fn() -> Client,
    from: String,
}

impl SesMailer {
    /// A mailer with a client of `sdk`'s settings (tests, tools).
    pub fn new(sdk: &aws_config::SdkConfig, from: impl Into<String>) -> Self {
        Self {
            client: std::sync::OnceLock::from(Client::new(sdk)),
            make: || unreachable!("the client is built already"),
            from: from.into(),
        }
    }

    /// A Lambda function's mailer. Its client is built on the first mail, as the DynamoDB
    /// client on the first store call (loading TLS roots is most of a cold start's CPU), from the
    /// environment Lambda sets, without `aws_config`'s default chains.
    pub fn lambda(from: impl Into<String>) -> Self {
        Self {
            client: std::sync::OnceLock::new(),
            make: lambda_client,
            from: from.into(),
        }
    }

    fn client(&self) -> &Client {
        self.client.get_or_init(self.make)
    }
}

/// Region and credentials from the variables Lambda sets; `AWS_ENDPOINT_URL_SESV2` (an SES
/// emulator) when not empty.
fn lambda_client() -> Client {
    use aws_sdk_sesv2::config;
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
    if let Some(endpoint) = var("AWS_ENDPOINT_URL_SESV2") {
        builder = builder.endpoint_url(endpoint);
    }
    Client::from_conf(builder.build())
}

fn content(text: &str) -> Result<Content, MailError> {
    Content::builder()
        .data(text)
        .charset("UTF-8")
        .build()
        .map_err(|e| MailError::Rejected(e.to_string()))
}

/// Throttling, network trouble and SES's own errors are worth another try; a refusal is not.
fn classify(err: SdkError<SendEmailError>) -> MailError {
    let detail = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::ServiceError(service) => match service.err() {
            SendEmailError::TooManyRequestsException(_)
            | SendEmailError::LimitExceededException(_) => MailError::Transient(detail),
            _ if service.raw().status().is_server_error() => MailError::Transient(detail),
            _ => MailError::Rejected(detail),
        },
        SdkError::ConstructionFailure(_) => MailError::Rejected(detail),
        _ => MailError::Transient(detail),
    }
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, message: &Message) -> Result<(), MailError> {
        let body = Body::builder()
            .text(content(&message.text)?)
            .html(content(&message.html)?)
            .build();
        let email = SesMessage::builder()
            .subject(content(&message.subject)?)
            .body(body)
            .build();
        self.client()
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&message.to).build())
            .content(EmailContent::builder().simple(email).build())
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }
}
