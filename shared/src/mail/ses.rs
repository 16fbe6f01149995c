//! Mail through Amazon SES v2 (`SendEmail`), from `MAIL_FROM`. The client is built once per
//! cold start from the same SDK configuration as the DynamoDB client; `AWS_ENDPOINT_URL_SESV2`
//! points it elsewhere (the SES v2 emulator in tests).

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{DisplayErrorContext, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message as SesMessage};

use super::{MailError, Mailer, Message};

#[derive(Debug, Clone)]
pub struct SesMailer {
    client: Client,
    from: String,
}

impl SesMailer {
    pub fn new(sdk: &aws_config::SdkConfig, from: impl Into<String>) -> Self {
        Self {
            client: Client::new(sdk),
            from: from.into(),
        }
    }
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
        self.client
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
