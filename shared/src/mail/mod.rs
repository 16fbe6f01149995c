//! Mail: the messages the service sends, rendered from the templates in `shared/mail/` (the
//! wording lives there, not in code), and their delivery through a [`Mailer`].
//!
//! Delivery happens off the request's path ([`Outbox`]): a request never waits for a mail, a
//! failed send never fails a request, and an answer never shows whether a mail went out. A send
//! is retried within its deadline; what finally fails is logged, never shown.

pub mod ses;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// One message, ready to send.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

// The bodies carry links whose tokens are credentials: never in a log.
impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The provider could not take it now (network, throttling, its own errors): try again.
    #[error("mail delivery failed for now: {0}")]
    Transient(String),
    /// The provider refused it (sender not verified, address rejected): trying again won't help.
    #[error("mail delivery refused: {0}")]
    Rejected(String),
}

/// Where mail goes: Amazon SES in AWS ([`ses::SesMailer`]), a folder the local server serves.
#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, message: &Message) -> Result<(), MailError>;
}

/// The mails of the account lifecycle.
#[derive(Debug, Clone, Copy)]
pub enum Mail<'a> {
    /// To a new or unverified address: the link that confirms it.
    VerifyEmail { link: &'a str, hours: i64 },
    /// To the address an account is changing to: the link that makes the change.
    ChangeEmail { link: &'a str, hours: i64 },
    /// To the old address of an account whose address is about to change.
    EmailChangeRequested { new_email: &'a str },
    /// The link that sets a new password.
    ResetPassword { link: &'a str, minutes: i64 },
    /// After a reset: the password changed and every session ended.
    PasswordResetDone,
    /// To an address that someone asked to move another account to: it is taken, so no link.
    EmailChangeTaken,
    /// After the fifth wrong second-factor code in a row: someone has the password.
    SecondFactorFailures,
    /// A passkey was added: it signs in without the password.
    PasskeyAdded { name: &'a str },
    /// A passkey sign-in refused because the key's counter went backwards (a cloned key).
    PasskeyCloned { name: &'a str },
    /// A provider account (Google, Microsoft, …) was linked: it signs in without the password.
    IdentityLinked { provider: &'a str },
    /// The account was deleted (by its owner or an admin): a notice to its address.
    AccountDeleted,
    /// A sign-in from a device never seen before (`NOTIFY_NEW_DEVICE`).
    NewSignIn { device: &'a str, network: &'a str },
}

struct Template {
    text: &'static str,
    html: &'static str,
}

macro_rules! template {
    ($name:literal) => {
        Template {
            text: include_str!(concat!("../../mail/", $name, ".txt")),
            html: include_str!(concat!("../../mail/", $name, ".html")),
        }
    };
}

impl Mail<'_> {
    fn template(&self) -> Template {
        match self {
            Mail::VerifyEmail { .. } => template!("verify-email"),
            Mail::ChangeEmail { .. } => template!("change-email"),
            Mail::EmailChangeRequested { .. } => template!("email-change-requested"),
            Mail::ResetPassword { .. } => template!("reset-password"),
            Mail::PasswordResetDone => template!("password-reset-done"),
            Mail::EmailChangeTaken => template!("email-change-taken"),
            Mail::SecondFactorFailures => template!("second-factor-failures"),
            Mail::PasskeyAdded { .. } => template!("passkey-added"),
            Mail::PasskeyCloned { .. } => template!("passkey-cloned"),
            Mail::IdentityLinked { .. } => template!("identity-linked"),
            Mail::AccountDeleted => template!("account-deleted"),
            Mail::NewSignIn { .. } => template!("new-sign-in"),
        }
    }

    /// A short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Mail::VerifyEmail { .. } => "verify-email",
            Mail::ChangeEmail { .. } => "change-email",
            Mail::EmailChangeRequested { .. } => "email-change-requested",
            Mail::ResetPassword { .. } => "reset-password",
            Mail::PasswordResetDone => "password-reset-done",
            Mail::EmailChangeTaken => "email-change-taken",
            Mail::SecondFactorFailures => "second-factor-failures",
            Mail::PasskeyAdded { .. } => "passkey-added",
            Mail::PasskeyCloned { .. } => "passkey-cloned",
            Mail::IdentityLinked { .. } => "identity-linked",
            Mail::AccountDeleted => "account-deleted",
            Mail::NewSignIn { .. } => "new-sign-in",
        }
    }

    fn values(&self, to: &str) -> Vec<(&'static str, String)> {
        let mut values = vec![("email", to.to_owned())];
        match *self {
            Mail::VerifyEmail { link, hours } | Mail::ChangeEmail { link, hours } => {
                values.extend([("link", link.to_owned()), ("hours", hours.to_string())]);
            }
            Mail::ResetPassword { link, minutes } => {
                values.extend([("link", link.to_owned()), ("minutes", minutes.to_string())]);
            }
            Mail::EmailChangeRequested { new_email } => {
                values.push(("new_email", new_email.to_owned()));
            }
            Mail::PasskeyAdded { name } | Mail::PasskeyCloned { name } => {
                values.push(("name", name.to_owned()));
            }
            Mail::IdentityLinked { provider } => values.push(("provider", provider.to_owned())),
            Mail::NewSignIn { device, network } => {
                values.extend([
                    ("device", device.to_owned()),
                    ("network", network.to_owned()),
                ]);
            }
            Mail::PasswordResetDone
            | Mail::EmailChangeTaken
            | Mail::SecondFactorFailures
            | Mail::AccountDeleted => {}
        }
        values
    }

    /// The message to `to`: the text template's first line is `Subject: ...`; `{{name}}`
    /// placeholders take their values, escaped for HTML in the HTML part.
    pub fn render(&self, to: &str) -> Message {
        let template = self.template();
        let values = self.values(to);
        let fill = |text: &str, escape: bool| {
            values.iter().fold(text.to_owned(), |text, (name, value)| {
                let value = if escape {
                    html_escape::encode_double_quoted_attribute(value).into_owned()
                } else {
                    value.clone()
                };
                text.replace(&format!("{{{{{name}}}}}"), &value)
            })
        };
        let text = fill(template.text, false);
        let (subject, body) = text.split_once('\n').unwrap_or((&text, ""));
        Message {
            to: to.to_owned(),
            subject: subject
                .strip_prefix("Subject:")
                .unwrap_or(subject)
                .trim()
                .to_owned(),
            text: body.trim_start_matches('\n').to_owned(),
            html: fill(template.html, true),
        }
    }
}

/// How long one message may take to go out, retries included: well inside a function's time
/// limit, which the work after the answer still counts against.
pub const DELIVERY_DEADLINE: Duration = Duration::from_secs(6);
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// Work that runs after the answer: mail, and whatever must happen before a mail (looking up
/// the account, issuing its link), so that neither delays nor shapes the answer.
///
/// Locally the work simply runs on the server's runtime. In Lambda, the function's internal
/// extension waits for [`Outbox::idle`] before the execution environment may freeze
/// (`bootstrap::serve_http`).
#[derive(Clone)]
pub struct Outbox {
    mailer: Arc<dyn Mailer>,
    tasks: TaskTracker,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("pending", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl Outbox {
    pub fn new(mailer: Arc<dyn Mailer>) -> Self {
        Self {
            mailer,
            tasks: TaskTracker::new(),
        }
    }

    /// Runs `work` after (or while) the answer goes out, in the request's span, so its log
    /// lines still name the request.
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        use tracing::Instrument;
        self.tasks.spawn(
            async move {
                // The answer's own remaining steps go first.
                tokio::task::yield_now().await;
                work.await
            }
            .in_current_span(),
        );
    }

    /// Sends `mail` to `to` in the background.
    pub fn send(&self, mail: Mail<'_>, to: &str) {
        let message = mail.render(to);
        let kind = mail.kind();
        let mailer = self.mailer.clone();
        self.spawn(async move { deliver(&*mailer, &message, kind).await });
    }

    /// The mailer, for work that sends from a job of its own.
    pub fn mailer(&self) -> Arc<dyn Mailer> {
        self.mailer.clone()
    }

    /// Waits until all work handed over so far has finished.
    pub async fn idle(&self) {
        self.tasks.close();
        self.tasks.wait().await;
        self.tasks.reopen();
    }
}

/// Sends `message`, retrying transient failures until [`DELIVERY_DEADLINE`]. The outcome is
/// logged by kind only: the address and the link stay out of the log.
pub async fn deliver(mailer: &dyn Mailer, message: &Message, kind: &'static str) {
    let attempts = async {
        let mut backoff = RETRY_BACKOFF;
        loop {
            match mailer.send(message).await {
                Ok(()) => return Ok(()),
                Err(MailError::Transient(e)) => {
                    warn!(mail = kind, error = %e, "mail delivery failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(e @ MailError::Rejected(_)) => return Err(e),
            }
        }
    };
    match tokio::time::timeout(DELIVERY_DEADLINE, attempts).await {
        Ok(Ok(())) => info!(mail = kind, "mail sent"),
        Ok(Err(e)) => {
            crate::metrics::mail_not_sent();
            warn!(mail = kind, error = %e, "mail not sent");
        }
        Err(_) => {
            crate::metrics::mail_not_sent();
            warn!(mail = kind, "mail not sent: delivery deadline passed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_mail(link: &str) -> Vec<Mail<'_>> {
        vec![
            Mail::VerifyEmail { link, hours: 24 },
            Mail::ChangeEmail { link, hours: 24 },
            Mail::EmailChangeRequested {
                new_email: "new@example.com",
            },
            Mail::ResetPassword { link, minutes: 30 },
            Mail::PasswordResetDone,
            Mail::AccountDeleted,
            Mail::NewSignIn {
                device: "Firefox on Linux",
                network: "203.0.113.0/24",
            },
        ]
    }

    #[test]
    fn every_template_renders_completely() {
        let link = "https://app.example.com/verify-email#token=abc";
        for mail in every_mail(link) {
            let message = mail.render("ada@example.com");
            assert!(!message.subject.is_empty(), "{}", mail.kind());
            assert!(!message.subject.contains("Subject"), "{}", mail.kind());
            for part in [&message.text, &message.html] {
                assert!(!part.contains("{{"), "{}: {part}", mail.kind());
                assert!(part.contains("ada@example.com") || part.contains("new@example.com"));
            }
            assert!(
                message.html.starts_with("<!doctype html>"),
                "{}",
                mail.kind()
            );
        }
        for mail in every_mail(link).into_iter().take(2) {
            let message = mail.render("ada@example.com");
            assert!(message.text.contains(link));
            assert!(message.html.contains(&format!("href=\"{link}\"")));
        }
    }

    #[test]
    fn values_are_escaped_in_html_only() {
        let to = "o'brien&<b>@example.com";
        let message = Mail::ResetPassword {
            link: "https://x.example/reset-password?a=1&b=2#token=t",
            minutes: 30,
        }
        .render(to);
        assert!(message.text.contains(to));
        assert!(!message.html.contains("<b>"), "{}", message.html);
        assert!(message.html.contains("&amp;b=2"), "{}", message.html);
        assert!(message.text.contains("a=1&b=2"));
    }

    #[test]
    fn debug_output_never_shows_a_body() {
        let message = Mail::VerifyEmail {
            link: "https://x.example/verify-email#token=secret-token",
            hours: 24,
        }
        .render("ada@example.com");
        let shown = format!("{message:?}");
        assert!(!shown.contains("secret-token"), "{shown}");
        assert!(!shown.contains("ada@example.com"), "{shown}");
    }
}
