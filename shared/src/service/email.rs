//! The account lifecycle by email: verified addresses, password reset, address change.
//!
//! Every emailed link carries an opaque token of 256 random bits (base64url); only its SHA-256
//! is stored, under a TTL. Issuing a link makes it its user's current one of its kind, so older
//! links of that kind stop working; spending one is a conditional write, so it works once. A
//! link of one kind is never accepted as another.
//!
//! Mail goes out through the outbox, after the answer: "forgot password" does all of its
//! account-dependent work there (the lookup, the link, the mail), so its answer is the same, in
//! the same time, for existing, unknown and disabled accounts.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tracing::{info, warn};
use uuid::Uuid;

use super::history::Happened;
use super::mfa::code_counter_key;
use super::{AuthError, AuthService, MfaCode, invalid_token};
use crate::clock::{Clock, UnixTime};
use crate::config::Config;
use crate::mail::{Mail, Outbox};
use crate::model::{EmailLink, EventKind, LinkKind, User};
use crate::passwords::Password;
use crate::store::{AlongWithCode, EmailChange, Store};
use crate::tokens::token_hash;
use crate::validation::normalize_email;

/// Random bytes in an emailed token.
const LINK_TOKEN_BYTES: usize = 32;
/// Its length in base64url without padding.
const LINK_TOKEN_CHARS: usize = 43;

/// Verification mails a user may ask for (beyond the one registration sends).
const VERIFICATION_MAILS_PER_MINUTE: u32 = 1;
const VERIFICATION_MAILS_PER_DAY: u32 = 10;
/// Reset mails sent to one address per hour; further requests still answer `202`.
const RESET_MAILS_PER_HOUR: u32 = 3;

/// Where the links of one request point, without a trailing slash: `APP_URL`, or the API's own
/// base URL as the request shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkBase(pub String);

impl LinkBase {
    fn link(&self, page: &str, token: &str) -> String {
        format!("{}/{page}#token={token}", self.0)
    }
}

fn page_of(kind: LinkKind) -> &'static str {
    match kind {
        LinkKind::VerifyEmail | LinkKind::ChangeEmail => "verify-email",
        LinkKind::ResetPassword => "reset-password",
    }
}

/// A fresh opaque token (emailed links, `mfa_token`): 256 random bits, base64url.
pub(super) fn new_opaque_token() -> Result<String, AuthError> {
    let mut bytes = [0u8; LINK_TOKEN_BYTES];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| AuthError::Internal("no randomness".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `token` could be one of ours at all; anything else is refused without a lookup.
pub(super) fn plausible_opaque_token(token: &str) -> bool {
    token.len() == LINK_TOKEN_CHARS
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What background work needs of the service: it outlives the request, so it holds its own
/// handles.
#[derive(Clone)]
struct Mailing {
    store: Arc<dyn Store>,
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    outbox: Outbox,
}

impl Mailing {
    /// Issues a link of `kind` for `user` under its current epoch, sent to `to`, and mails it.
    /// `keep_chain` is the session that asked for an address change.
    async fn issue_and_send(
        &self,
        user: &User,
        kind: LinkKind,
        to: &str,
        keep_chain: Option<Uuid>,
        base: &LinkBase,
    ) -> Result<(), AuthError> {
        let now = self.clock.now();
        let lifetime = match kind {
            LinkKind::ResetPassword => self.config.password_reset_ttl_secs,
            LinkKind::VerifyEmail | LinkKind::ChangeEmail => {
                self.config.email_verification_ttl_secs
            }
        };
        let token = new_opaque_token()?;
        let link = EmailLink {
            token_hash: token_hash(&token),
            kind,
            user_id: user.id,
            email: to.to_owned(),
            created_at: now,
            expires_at: now + lifetime,
            epoch: user.session_epoch,
            keep_chain,
        };
        if !self.store.issue_link(&link).await? {
            return Err(invalid_token("user gone, or its epoch moved meanwhile"));
        }
        let url = base.link(page_of(kind), &token);
        let mail = match kind {
            LinkKind::VerifyEmail => Mail::VerifyEmail {
                link: &url,
                hours: lifetime / 3600,
            },
            LinkKind::ChangeEmail => Mail::ChangeEmail {
                link: &url,
                hours: lifetime / 3600,
            },
            LinkKind::ResetPassword => Mail::ResetPassword {
                link: &url,
                minutes: lifetime / 60,
            },
        };
        self.outbox.send(mail, to);
        info!(user_id = %user.id, link = ?kind, "link issued");
        Ok(())
    }

    /// The work of "forgot password", after the answer: a reset mail if the address has an
    /// active account and has not had too many already.
    async fn forgot_password(self, email: String, base: LinkBase) {
        let result = async {
            let Some(user) = self.store.user_by_email(&email).await? else {
                return Ok(());
            };
            if !user.is_active {
                info!(user_id = %user.id, "password reset asked for a disabled account");
                return Ok(());
            }
            let now = self.clock.now();
            if !take_budget(
                &*self.store,
                "reset-mail",
                &email,
                RESET_MAILS_PER_HOUR,
                3600,
                now,
            )
            .await?
            {
                info!(user_id = %user.id, "reset mail withheld: hourly limit reached");
                return Ok(());
            }
            self.issue_and_send(&user, LinkKind::ResetPassword, &user.email, None, &base)
                .await
        };
        if let Err(e) = result.await {
            warn!(error = %e, "password reset mail not sent");
        }
    }
}

/// Takes one unit of a fixed-window budget of `limit` per `window_secs` for `subject`; `false`
/// when it is spent.
async fn take_budget(
    store: &dyn Store,
    name: &str,
    subject: &str,
    limit: u32,
    window_secs: i64,
    now: UnixTime,
) -> Result<bool, AuthError> {
    let index = now.div_euclid(window_secs);
    let key = format!("{name}:{subject}:{index}");
    Ok(store
        .take_from_window(&key, limit, (index + 1) * window_secs)
        .await?)
}

/// What `POST /auth/email` asks for: the new address, confirmed with the current password,
/// and with a current code when TOTP is on.
#[derive(Debug, Clone, Copy)]
pub struct AddressChange<'a> {
    pub new_email: &'a str,
    pub password: &'a Password,
    pub code: Option<&'a MfaCode>,
}

impl AuthService {
    fn mailing(&self) -> Result<Mailing, AuthError> {
        let outbox = self
            .outbox
            .clone()
            .ok_or_else(|| AuthError::Internal("this function holds no mailer".into()))?;
        Ok(Mailing {
            store: self.store.clone(),
            config: self.config.clone(),
            clock: self.clock.clone(),
            outbox,
        })
    }

    /// Waits until every mail (and the work before it) handed to the outbox so far is done.
    pub async fn outbox_idle(&self) {
        if let Some(outbox) = &self.outbox {
            outbox.idle().await;
        }
    }

    /// Waits until all work after the answers so far (mail, events) is done.
    pub async fn after_answer_idle(&self) {
        if let Some(after) = self.after_answer() {
            after.idle().await;
        }
    }

    /// After a registration: the first verification link, in the background. A failure is
    /// logged; the account exists either way and the user can ask again.
    pub(crate) fn send_first_verification(&self, user: &User, base: &LinkBase) {
        let mailing = match self.mailing() {
            Ok(mailing) => mailing,
            Err(e) => {
                warn!(user_id = %user.id, error = %e, "no verification mail");
                return;
            }
        };
        let (user, base) = (user.clone(), base.clone());
        let outbox = mailing.outbox.clone();
        outbox.spawn(async move {
            if let Err(e) = mailing
                .issue_and_send(&user, LinkKind::VerifyEmail, &user.email, None, &base)
                .await
            {
                warn!(user_id = %user.id, error = %e, "verification mail not sent");
            }
        });
    }

    /// `POST /auth/email/verification`: a new verification link to the user's address, at most
    /// one a minute and ten a day. An address already verified gets none.
    pub async fn request_verification(
        &self,
        user_id: Uuid,
        base: &LinkBase,
    ) -> Result<(), AuthError> {
        let user = self.active_user(user_id).await?;
        if user.email_verified {
            info!(user_id = %user.id, "verification asked for a verified address");
            return Ok(());
        }
        let mailing = self.mailing()?;
        self.take_mail_budget("verify-mail", &user).await?;
        mailing
            .issue_and_send(&user, LinkKind::VerifyEmail, &user.email, None, base)
            .await
    }

    /// The live link a posted token names, of one of `kinds`; anything else is `invalid_token`.
    async fn live_link(&self, token: &str, kinds: &[LinkKind]) -> Result<EmailLink, AuthError> {
        if !plausible_opaque_token(token) {
            return Err(invalid_token("not an emailed token"));
        }
        self.store
            .link(&token_hash(token), self.clock.now())
            .await?
            .filter(|link| kinds.contains(&link.kind))
            .ok_or_else(|| {
                invalid_token("emailed token unknown, spent, expired or of another kind")
            })
    }

    /// `POST /auth/email/verify`: confirms the address a verification or address-change link was
    /// sent to. An address change takes effect here; sessions stay signed in.
    pub async fn verify_email(&self, token: &str) -> Result<User, AuthError> {
        let link = self
            .live_link(token, &[LinkKind::VerifyEmail, LinkKind::ChangeEmail])
            .await?;
        let user = self.active_user(link.user_id).await?;
        let now = self.clock.now();
        match link.kind {
            // A link to the address the account has now (it moved there by another link
            // since) changes nothing: spent or not, it is stale.
            LinkKind::ChangeEmail if link.email == user.email => {
                return Err(invalid_token("address-change link to the current address"));
            }
            LinkKind::ChangeEmail => {
                match self
                    .store
                    .spend_email_change(&link, &user.email, now)
                    .await?
                {
                    EmailChange::Changed => {
                        info!(user_id = %user.id, "email address changed");
                        self.record(Happened::new(user.id, EventKind::EmailChanged))
                            .await;
                    }
                    EmailChange::Taken => return Err(AuthError::EmailTaken),
                    EmailChange::Stale => return Err(invalid_token("address-change link stale")),
                }
            }
            _ => {
                if !self.store.spend_verification(&link, now).await? {
                    return Err(invalid_token("verification link stale"));
                }
                info!(user_id = %user.id, "email address verified");
                self.record(Happened::new(user.id, EventKind::EmailVerified))
                    .await;
            }
        }
        self.active_user(link.user_id).await
    }

    /// `POST /auth/password/forgot`: `202` whether or not the address has an account. Only the
    /// per-IP budget (the registrations') is checked here; everything that depends on the
    /// account happens after the answer.
    pub async fn forgot_password(
        &self,
        email: &str,
        source_ip: Option<&str>,
        base: &LinkBase,
    ) -> Result<(), AuthError> {
        let email = normalize_email(email).map_err(AuthError::InvalidEmail)?;
        self.charge_registration(source_ip, self.clock.now())
            .await?;
        let mailing = self.mailing()?;
        let outbox = mailing.outbox.clone();
        outbox.spawn(mailing.forgot_password(email, base.clone()));
        Ok(())
    }

    /// `POST /auth/password/reset`: the password policy first (a weak password leaves the link
    /// usable), then the link is spent, the password set, the address verified and every
    /// session ended, at once; a notice goes to the address.
    pub async fn reset_password(&self, token: &str, password: &Password) -> Result<(), AuthError> {
        let link = self.live_link(token, &[LinkKind::ResetPassword]).await?;
        let user = self.active_user(link.user_id).await?;
        self.policy
            .check(password.expose(), &user.email)
            .map_err(AuthError::WeakPassword)?;
        let hash = self.passwords.hash(password).await?;
        // The reset proves the mailbox: on an address unverified until now, whatever was set
        // before (TOTP, recovery codes; devices and links die with the epoch) goes.
        let wipe_unproven = !user.email_verified;
        let now = self.clock.now();
        if !self
            .store
            .spend_reset(&link, &hash, wipe_unproven, now)
            .await?
        {
            return Err(invalid_token("reset link stale"));
        }
        // Whoever had the old password may have run up the wrong-code count: it starts afresh.
        if let Err(e) = self
            .store
            .clear_failure_counter(&code_counter_key(user.id))
            .await
        {
            warn!(error = %e, "could not reset the wrong-code count");
        }
        info!(user_id = %user.id, wipe_unproven, "password reset; every session ended");
        self.record(Happened::new(user.id, EventKind::PasswordReset))
            .await;
        match self.mailing() {
            Ok(mailing) => mailing.outbox.send(Mail::PasswordResetDone, &user.email),
            Err(e) => warn!(user_id = %user.id, error = %e, "no reset notice"),
        }
        Ok(())
    }

    /// `POST /auth/email`: after the password (charged to this session, see `reauth`) and, with
    /// TOTP on, a code, a confirmation link to the new address and a notice to the old one.
    /// The answer is the same whether or not the new address is taken: a taken one gets a
    /// notice instead of a link, and the conflict shows only at confirmation. Nothing changes
    /// until the link is followed. Budgets: per user as for verification mails, per source IP
    /// the registrations'.
    #[allow(clippy::too_many_arguments)]
    pub async fn start_email_change(
        &self,
        user_id: Uuid,
        chain_id: Uuid,
        change: AddressChange<'_>,
        source_ip: Option<&str>,
        base: &LinkBase,
    ) -> Result<(), AuthError> {
        let AddressChange {
            new_email,
            password,
            code,
        } = change;
        let user = self.active_user(user_id).await?;
        let new_email = normalize_email(new_email).map_err(AuthError::InvalidEmail)?;
        if user.mfa.mfa_enabled && code.is_none() {
            return Err(AuthError::MalformedCode { field: "code" });
        }
        let mailing = self.mailing()?;
        let now = self.clock.now();
        self.charge_registration(source_ip, now).await?;
        self.reauthenticate(&user, chain_id, password).await?;
        if let (true, Some(code)) = (user.mfa.mfa_enabled, code) {
            self.spend_users_code(&user, code, AlongWithCode::Nothing)
                .await?;
        }
        self.take_mail_budget("change-mail", &user).await?;
        if new_email == user.email {
            info!(user_id = %user.id, "address change to the same address");
            return Ok(());
        }
        if self.store.user_by_email(&new_email).await?.is_some() {
            info!(user_id = %user.id, "address change to a taken address: notice only");
            mailing.outbox.send(Mail::EmailChangeTaken, &new_email);
        } else {
            mailing
                .issue_and_send(
                    &user,
                    LinkKind::ChangeEmail,
                    &new_email,
                    Some(chain_id),
                    base,
                )
                .await?;
        }
        mailing.outbox.send(
            Mail::EmailChangeRequested {
                new_email: &new_email,
            },
            &user.email,
        );
        Ok(())
    }

    /// One mail of a signed-in user's per-user budget `name`: one a minute, ten a day.
    async fn take_mail_budget(&self, name: &str, user: &User) -> Result<(), AuthError> {
        let now = self.clock.now();
        let subject = user.id.to_string();
        for (window_name, limit, window) in [
            ("minute", VERIFICATION_MAILS_PER_MINUTE, 60),
            ("day", VERIFICATION_MAILS_PER_DAY, 86_400),
        ] {
            let name = format!("{name}-{window_name}");
            if !take_budget(&*self.store, &name, &subject, limit, window, now).await? {
                return Err(AuthError::TooManyRequests {
                    retry_after_secs: (window - now.rem_euclid(window)) as u64,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_tokens_are_256_random_bits_in_base64url() {
        let a = new_opaque_token().unwrap();
        let b = new_opaque_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), LINK_TOKEN_CHARS);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len() * 8, 256);
        assert!(plausible_opaque_token(&a));
        for bad in ["", "short", &format!("{a}x"), &a.replace(&a[..1], "+")] {
            assert!(!plausible_opaque_token(bad), "{bad}");
        }
    }

    #[test]
    fn links_carry_the_token_in_the_fragment() {
        let base = LinkBase("https://app.example.com".into());
        assert_eq!(
            base.link(page_of(LinkKind::ResetPassword), "t0k"),
            "https://app.example.com/reset-password#token=t0k"
        );
        assert_eq!(page_of(LinkKind::ChangeEmail), "verify-email");
    }
}
