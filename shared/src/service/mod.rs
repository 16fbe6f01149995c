//! The auth service: every operation of the API (docs/api.md), independent of the store
//! behind it.
//!
//! Handlers (Lambda or local) parse a request, call one method here and map the result. All
//! time comes from the injected clock. One file per concern: [`sign_in`] (register, login),
//! [`sessions`] (a session's tokens from first pair to revocation), [`access`] (what the
//! authorizer decides), and the email, second-factor, device, re-authentication and throttling
//! modules; [`AuthError`] is the one error of this layer.

mod access;
mod account;
mod admin;
mod answers;
mod devices;
mod email;
mod error;
mod history;
mod mfa;
mod oidc;
mod passkeys;
mod reauth;
mod sessions;
mod sign_in;
mod throttle;

pub use access::{TOUCH_INTERVAL_SECS, decide_access};
pub use account::AccountDeletion;
pub use admin::{DEFAULT_PAGE, MAX_PAGE, UserChange};
pub use answers::{Caller, Principal, SessionInfo, SignedIn};
pub use email::{AddressChange, LinkBase};
pub use error::AuthError;
pub use history::{HISTORY_PAGE, MAX_HISTORY_PAGE, RequestOrigin, ip_prefix};
pub use mfa::{MfaCode, MfaRequired, SignIn, TotpEnrolment};
pub use oidc::{
    Callback, CallbackError, CallbackRequest, EXCHANGE_CODE_TTL_SECS, Exchanged, IdentityInfo,
    LINK_TICKET_TTL_SECS, LOGIN_COOKIE, LOGIN_STATE_TTL_SECS, OidcStart, StartRequest,
};
pub use passkeys::{
    Ceremony, FRESH_SIGN_IN_SECS, MAX_PASSKEY_NAME_CHARS, PasskeyInfo, passkey_name,
};

use std::sync::Arc;

use tracing::info;
use uuid::Uuid;

use crate::clock::{Clock, UnixTime};
use crate::config::Config;
use crate::events::{EventSink, Events};
use crate::mail::{Mailer, Outbox};
use crate::mfa::MfaKeys;
use crate::model::{EventKind, User};

use self::history::Happened;
use crate::passwords::{Password, Passwords};
use crate::store::Store;
use crate::tokens::external::ExternalIssuers;
use crate::tokens::{KeyRing, Tokens};
use crate::validation::PasswordPolicy;

use self::error::invalid_token;

pub struct AuthService {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    tokens: Tokens,
    external: ExternalIssuers,
    passwords: Passwords,
    policy: PasswordPolicy,
    clock: Arc<dyn Clock>,
    /// Mail, sent after the answer; `None` in functions that send none.
    outbox: Option<Outbox>,
    /// The keys TOTP secrets are sealed with; `None` in functions that read no secret.
    mfa_keys: Option<Arc<MfaKeys>>,
    /// The WebAuthn relying party; `None` in functions that serve no passkey.
    relying_party: Option<Arc<crate::passkeys::RelyingParty>>,
    /// The OpenID providers; `None` in functions that serve no federated sign-in.
    oidc: Option<Arc<crate::oidc::OidcProviders>>,
    /// Lifecycle events, put on the bus after the answer; `None` without `EVENT_BUS_NAME`.
    events: Option<Events>,
}

/// What a function still does after its answer: mail and events. In Lambda the function's
/// extension waits for [`AfterAnswer::idle`] before the environment may freeze.
#[derive(Debug, Clone)]
pub struct AfterAnswer {
    outbox: Option<Outbox>,
    events: Option<Events>,
}

impl AfterAnswer {
    pub async fn idle(&self) {
        if let Some(outbox) = &self.outbox {
            outbox.idle().await;
        }
        if let Some(events) = &self.events {
            events.idle().await;
        }
    }
}

impl AuthService {
    pub fn new(
        config: Arc<Config>,
        store: Arc<dyn Store>,
        keys: Arc<KeyRing>,
        passwords: Passwords,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let tokens = Tokens::new(keys, config.issuer.clone(), config.audience.clone());
        let policy = PasswordPolicy::new(config.password_min_score);
        let external = ExternalIssuers::new(&config.trusted_issuers);
        Self {
            config,
            store,
            tokens,
            external,
            passwords,
            policy,
            clock,
            outbox: None,
            mfa_keys: None,
            relying_party: None,
            oidc: None,
            events: None,
        }
    }

    /// The same service, putting lifecycle events on the bus through `sink`.
    pub fn with_events(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.events = Some(Events::new(sink));
        self
    }

    /// What this function does after its answers, if anything.
    pub fn after_answer(&self) -> Option<AfterAnswer> {
        (self.outbox.is_some() || self.events.is_some()).then(|| AfterAnswer {
            outbox: self.outbox.clone(),
            events: self.events.clone(),
        })
    }

    /// The same service, sending mail through `mailer`.
    pub fn with_mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.outbox = Some(Outbox::new(mailer));
        self
    }

    /// The same service, signing users in with these OpenID providers.
    pub fn with_oidc(mut self, providers: Arc<crate::oidc::OidcProviders>) -> Self {
        self.oidc = Some(providers);
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where this service's mail waits to go out, if it sends any.
    pub fn outbox(&self) -> Option<&Outbox> {
        self.outbox.as_ref()
    }

    pub fn passwords(&self) -> &Passwords {
        &self.passwords
    }

    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// The signed-in user, read from the store.
    pub async fn me(&self, user_id: Uuid) -> Result<User, AuthError> {
        self.active_user(user_id).await
    }

    async fn active_user(&self, user_id: Uuid) -> Result<User, AuthError> {
        match self.store.user_by_id(user_id).await? {
            Some(user) if user.is_active => Ok(user),
            _ => Err(invalid_token("user no longer exists or is inactive")),
        }
    }

    /// Changes the password after checking the current one (charged to this session's own
    /// budget, see [`reauth`]), and ends every other session of the user: the epoch moves and
    /// `chain_id` moves with it.
    pub async fn change_password(
        &self,
        user_id: Uuid,
        chain_id: Uuid,
        current: &Password,
        new: &Password,
    ) -> Result<(), AuthError> {
        let user = self.active_user(user_id).await?;
        self.policy
            .check(new.expose(), &user.email)
            .map_err(AuthError::WeakPassword)?;
        let now = self.clock.now();
        self.reauthenticate(&user, chain_id, current).await?;
        let hash = self.passwords.hash(new).await?;
        if !self
            .store
            .change_password(user.id, &hash, user.session_epoch, chain_id, now)
            .await?
        {
            return Err(invalid_token("session ended during the password change"));
        }
        info!(user_id = %user.id, chain_id = %chain_id, "password changed; other sessions revoked");
        self.record(Happened::new(user.id, EventKind::PasswordChanged))
            .await;
        Ok(())
    }
}

/// How long to wait before trying again a write that concurrent writers beat: 5 ms doubling
/// to 160 ms, with up to as much again of jitter so that they do not collide again in step.
fn contention_delay(attempt: u32) -> std::time::Duration {
    let base = 5u64 << attempt.min(5);
    std::time::Duration::from_millis(base + u64::from(Uuid::new_v4().as_u128() as u16) % base)
}
