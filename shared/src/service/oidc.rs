//! Signing in with an OpenID provider, and linking one to an account.
//!
//! 1. `GET /auth/oidc/{provider}/start` stores a login state (our PKCE verifier for the
//!    provider, the `nonce`, the app's `redirect_uri` and its own PKCE challenge) as a pending
//!    ceremony: single use, ten minutes, bound to the browser by a `__Host-` cookie whose
//!    SHA-256 it records. The app's `redirect_uri` must be one of the provider's
//!    `allowed_redirect_uris`, exactly; anything else is `400`, never a redirect.
//! 2. The callback takes the state once, checks the cookie and RFC 9207's `iss`, trades the
//!    code and checks the ID token (`crate::oidc`), finds or makes the account, and sends the
//!    browser to `redirect_uri#code=…`: a code of ours, single use, sixty seconds.
//! 3. The app trades that code, with the verifier of its challenge, for the usual answer of a
//!    sign-in (tokens, or `mfa_required` when the account has TOTP and the provider's `amr`
//!    holds no `mfa`).
//!
//! Accounts: a linked identity signs its user in. An unknown one makes an account only if the
//! provider asserts the address is verified and no account has it. An address that is an
//! account's is linked automatically only when the provider asserts it verified AND the account's
//! own address is verified (else `account_exists`: the user signs in and links from the account),
//! which closes both pre-hijacking and the takeover through an unverified provider address.
//!
//! Every pending record names its user's epoch where it has a user, and dies when it moves.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tracing::{info, warn};
use uuid::Uuid;

use super::email::{new_opaque_token, plausible_opaque_token};
use super::history::Happened;
use super::{AuthError, AuthService, SignIn};
use crate::clock::UnixTime;
use crate::mail::Mail;
use crate::model::{
    Amr, CeremonyKind, CurrentLinks, EventKind, Federated, LinkedIdentity, MAX_IDENTITIES,
    MfaState, PendingCeremony, User, identity_id,
};
use crate::oidc::{AuthorizationRequest, OidcError, ProviderIdentity};
use crate::passwords::Password;
use crate::store::{IdentityLinked, StoreError};
use crate::tokens::token_hash;
use crate::validation::normalize_email;

/// How long a login state waits for the provider's callback.
pub const LOGIN_STATE_TTL_SECS: i64 = 600;
/// How long our code waits for the app's exchange.
pub const EXCHANGE_CODE_TTL_SECS: i64 = 60;
/// How long a link ticket (from `POST /auth/oidc/{provider}/link`) waits for its start.
pub const LINK_TICKET_TTL_SECS: i64 = 600;
/// The cookie binding a login state to the browser that started it.
pub const LOGIN_COOKIE: &str = "__Host-oidc";
/// The longest `state` an app may pass through.
const MAX_APP_STATE_CHARS: usize = 512;
/// Sign-ins started per source IP per throttling window: each stores a login state.
const STARTS_PER_IP: u32 = 60;

/// RFC 6749's error names, as the callback sends them to the app (`#error=…`), and ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackError {
    /// The answer did not come from the browser, state or provider it should have.
    InvalidRequest,
    /// The provider, its ID token or the account refused the sign-in.
    AccessDenied,
    ServerError,
    TemporarilyUnavailable,
    /// The address is an account's, and it cannot be linked automatically: sign in and link.
    AccountExists,
}

impl CallbackError {
    pub fn name(self) -> &'static str {
        match self {
            CallbackError::InvalidRequest => "invalid_request",
            CallbackError::AccessDenied => "access_denied",
            CallbackError::ServerError => "server_error",
            CallbackError::TemporarilyUnavailable => "temporarily_unavailable",
            CallbackError::AccountExists => "account_exists",
        }
    }
}

/// Where the callback sends the browser, or why it cannot send it anywhere trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callback {
    /// `redirect_uri#code=…` or `redirect_uri#error=…`.
    Redirect(String),
    /// No login state to trust a redirect from: a page says so.
    Untrusted,
}

/// What `start` answers: the provider's URL and the browser's cookie.
#[derive(Debug, Clone)]
pub struct OidcStart {
    pub location: String,
    pub cookie: String,
    /// The provider posts its answer back (`form_post`): the cookie must be `SameSite=None`.
    pub cross_site_post: bool,
}

/// The start's query parameters.
#[derive(Debug, Clone, Default)]
pub struct StartRequest {
    pub redirect_uri: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    /// The app's own `state`, handed back with the code.
    pub state: Option<String>,
    /// A ticket from `POST /auth/oidc/{provider}/link`.
    pub link: Option<String>,
}

/// The callback's parameters (query or form).
#[derive(Debug, Clone, Default)]
pub struct CallbackRequest {
    pub state: Option<String>,
    pub code: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
}

/// What an exchange answers: a sign-in, or the identity a link made.
pub enum Exchanged {
    SignIn(SignIn),
    Linked(IdentityInfo),
}

/// A linked identity as the account sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityInfo {
    pub id: String,
    pub provider: String,
    pub email: Option<String>,
    pub linked_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
}

impl IdentityInfo {
    fn of(id: &str, identity: &LinkedIdentity) -> Self {
        Self {
            id: id.to_owned(),
            provider: identity.provider.clone(),
            email: identity.email.clone(),
            linked_at: identity.linked_at,
            last_used_at: identity.last_used_at,
        }
    }
}

/// A login state, between start and callback.
#[derive(Serialize, Deserialize)]
struct LoginState {
    provider: String,
    redirect_uri: String,
    app_state: Option<String>,
    /// Where the provider sends the browser back: this API's callback route.
    callback: String,
    nonce: String,
    verifier: String,
    cookie_hash: String,
    code_challenge: String,
    /// Linking to the ceremony's user instead of signing in.
    link: bool,
}

/// Our code, between callback and exchange.
#[derive(Serialize, Deserialize)]
struct ExchangeState {
    code_challenge: String,
    idp: String,
    amr: Vec<Amr>,
    /// For a link: the identity to link at the exchange.
    link: Option<(String, LinkedIdentity)>,
}

/// A link ticket, between `POST …/link` and the start it leads to.
#[derive(Serialize, Deserialize)]
struct LinkTicket {
    provider: String,
}

/// An RFC 7636 S256 challenge: 43 base64url characters (a SHA-256).
fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An RFC 7636 verifier: 43 to 128 unreserved characters.
fn is_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ))
}

fn field(field: &'static str, message: impl Into<String>) -> AuthError {
    AuthError::InvalidField {
        field,
        message: message.into(),
    }
}

/// `redirect_uri` with `params` in its fragment, which reaches no server log and no `Referer`.
fn with_fragment(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    let mut fragment = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        fragment.append_pair(name, value);
    }
    format!("{redirect_uri}#{}", fragment.finish())
}

impl AuthService {
    /// The providers; none configured answers as an unknown provider would.
    fn providers(&self) -> Result<&crate::oidc::OidcProviders, AuthError> {
        self.oidc.as_deref().ok_or(AuthError::ProviderNotFound)
    }

    /// Charges one start to the source IP's budget: each start stores a login state.
    async fn charge_start(&self, source_ip: Option<&str>, now: UnixTime) -> Result<(), AuthError> {
        let Some(ip) = source_ip.and_then(super::throttle::ip_subject) else {
            return Ok(());
        };
        let (index, window_end) = super::throttle::window(now);
        let key = format!("oidc-ip:{ip}:{index}");
        if self
            .store
            .take_from_window(&key, STARTS_PER_IP, window_end)
            .await?
        {
            return Ok(());
        }
        info!(reason = "ip start budget spent", "OpenID sign-in throttled");
        Err(AuthError::TooManyRequests {
            retry_after_secs: (window_end - now) as u64,
        })
    }

    /// The providers users may sign in with: their ids and names, for sign-in buttons.
    pub fn oidc_providers(&self) -> Vec<(String, String)> {
        self.oidc
            .iter()
            .flat_map(|p| p.configs())
            .map(|c| (c.id.clone(), c.display_name().to_owned()))
            .collect()
    }

    /// `GET /auth/oidc/{provider}/start`: the provider's authorization URL, and the cookie that
    /// binds the login state to this browser. `api_base` is this API's own URL.
    pub async fn oidc_start(
        &self,
        provider: &str,
        request: StartRequest,
        api_base: &str,
        source_ip: Option<&str>,
    ) -> Result<OidcStart, AuthError> {
        let providers = self.providers()?;
        let config = providers
            .config(provider)
            .ok_or(AuthError::ProviderNotFound)?;
        let redirect_uri = request
            .redirect_uri
            .ok_or_else(|| field("redirect_uri", "redirect_uri is required."))?;
        if !config.allowed_redirect_uris.contains(&redirect_uri) {
            return Err(field(
                "redirect_uri",
                "redirect_uri is not one of this provider's allowed redirect URIs.",
            ));
        }
        if request.code_challenge_method.as_deref().unwrap_or("S256") != "S256" {
            return Err(field(
                "code_challenge_method",
                "code_challenge_method must be S256.",
            ));
        }
        let code_challenge = request
            .code_challenge
            .filter(|c| is_s256_challenge(c))
            .ok_or_else(|| {
                field(
                    "code_challenge",
                    "code_challenge must be the base64url SHA-256 of the app's code_verifier (S256).",
                )
            })?;
        if request
            .state
            .as_ref()
            .is_some_and(|s| s.is_empty() || s.len() > MAX_APP_STATE_CHARS)
        {
            return Err(field(
                "state",
                format!("state must hold 1 to {MAX_APP_STATE_CHARS} characters."),
            ));
        }
        let now = self.clock.now();
        self.charge_start(source_ip, now).await?;
        // A link ticket names the user and epoch the identity will be linked to.
        let owner = match &request.link {
            None => None,
            Some(ticket) => Some(self.take_link_ticket(ticket, provider, now).await?),
        };
        let (state, nonce, verifier, cookie) = (
            new_opaque_token()?,
            new_opaque_token()?,
            new_opaque_token()?,
            new_opaque_token()?,
        );
        let callback = format!("{api_base}/auth/oidc/{provider}/callback");
        let location = providers
            .authorization_url(
                provider,
                &AuthorizationRequest {
                    callback: &callback,
                    state: &state,
                    nonce: &nonce,
                    verifier: &verifier,
                },
                now,
            )
            .await
            .map_err(provider_unavailable)?;
        let login = LoginState {
            provider: provider.to_owned(),
            redirect_uri,
            app_state: request.state,
            callback,
            nonce,
            verifier,
            cookie_hash: token_hash(&cookie),
            code_challenge,
            link: owner.is_some(),
        };
        self.store
            .create_ceremony(&PendingCeremony {
                id_hash: token_hash(&state),
                kind: CeremonyKind::OidcLogin,
                user_id: owner.map(|(id, _)| id),
                epoch: owner.map_or(0, |(_, epoch)| epoch),
                challenge_hash: None,
                state: serde_json::to_string(&login).map_err(internal)?,
                created_at: now,
                expires_at: now + LOGIN_STATE_TTL_SECS,
            })
            .await?;
        Ok(OidcStart {
            location,
            cookie,
            cross_site_post: config.response_mode == crate::config::oidc::ResponseMode::FormPost,
        })
    }

    /// The callback: where the provider sends the browser back.
    pub async fn oidc_callback(
        &self,
        provider: &str,
        request: CallbackRequest,
        cookie: Option<&str>,
    ) -> Callback {
        let now = self.clock.now();
        let Some(state) = request
            .state
            .as_deref()
            .filter(|s| plausible_opaque_token(s))
        else {
            info!(provider, "OpenID callback without a state of ours");
            return Callback::Untrusted;
        };
        let ceremony = match self.store.take_ceremony(&token_hash(state), now).await {
            Ok(Some(c)) if c.kind == CeremonyKind::OidcLogin => c,
            Ok(_) => {
                info!(
                    provider,
                    "OpenID callback with an unknown, used or expired state"
                );
                return Callback::Untrusted;
            }
            Err(e) => {
                warn!(error = %e, "could not read a login state");
                return Callback::Untrusted;
            }
        };
        let Ok(login) = serde_json::from_str::<LoginState>(&ceremony.state) else {
            return Callback::Untrusted;
        };
        let outcome = self
            .finish_callback(provider, &request, cookie, &ceremony, &login, now)
            .await;
        let (name, value) = match &outcome {
            Ok(code) => ("code", code.as_str()),
            Err(error) => ("error", error.name()),
        };
        let mut params = vec![(name, value)];
        if let Some(app_state) = &login.app_state {
            params.push(("state", app_state));
        }
        Callback::Redirect(with_fragment(&login.redirect_uri, &params))
    }

    async fn finish_callback(
        &self,
        provider: &str,
        request: &CallbackRequest,
        cookie: Option<&str>,
        ceremony: &PendingCeremony,
        login: &LoginState,
        now: UnixTime,
    ) -> Result<String, CallbackError> {
        let providers = self.providers().map_err(|_| CallbackError::ServerError)?;
        let config = providers
            .config(provider)
            .filter(|_| login.provider == provider)
            .ok_or(CallbackError::InvalidRequest)?;
        // Login CSRF: the browser that comes back must be the one that started.
        let cookie_matches = cookie.is_some_and(|c| {
            bool::from(token_hash(c).as_bytes().ct_eq(login.cookie_hash.as_bytes()))
        });
        if !cookie_matches {
            info!(
                provider,
                "OpenID callback from another browser (no or another cookie)"
            );
            return Err(CallbackError::InvalidRequest);
        }
        // RFC 9207: the answer names its issuer, so one provider's answer cannot pass for
        // another's (mix-up).
        let sends_iss = providers
            .sends_iss(provider, now)
            .await
            .map_err(|_| CallbackError::TemporarilyUnavailable)?;
        match request.iss.as_deref() {
            Some(iss) if iss != config.issuer => {
                info!(provider, "OpenID callback naming another issuer");
                return Err(CallbackError::InvalidRequest);
            }
            None if sends_iss => {
                info!(
                    provider,
                    "OpenID callback without the iss its provider sends"
                );
                return Err(CallbackError::InvalidRequest);
            }
            _ => {}
        }
        if let Some(error) = &request.error {
            info!(provider, error = %error.chars().take(64).collect::<String>(), "the provider refused the sign-in");
            return Err(match error.as_str() {
                "temporarily_unavailable" => CallbackError::TemporarilyUnavailable,
                "server_error" => CallbackError::ServerError,
                _ => CallbackError::AccessDenied,
            });
        }
        let code = request
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 2048)
            .ok_or(CallbackError::InvalidRequest)?;
        let identity = providers
            .exchange(
                provider,
                code,
                &login.verifier,
                &login.callback,
                &login.nonce,
                now,
            )
            .await
            .map_err(|e| {
                info!(provider, error = %e, "OpenID sign-in refused");
                match e {
                    OidcError::Unavailable(_) => CallbackError::TemporarilyUnavailable,
                    _ => CallbackError::AccessDenied,
                }
            })?;
        let id = identity_id(provider, &identity.subject);
        let linked = LinkedIdentity {
            provider: provider.to_owned(),
            subject: identity.subject.clone(),
            email: identity.email.clone(),
            linked_at: now,
            last_used_at: Some(now),
        };
        let (user_id, epoch, link) = if login.link {
            let user_id = ceremony.user_id.ok_or(CallbackError::InvalidRequest)?;
            (user_id, ceremony.epoch, Some((id, linked)))
        } else {
            let user = self
                .account_for(provider, &id, linked, &identity)
                .await
                .map_err(|e| match e {
                    AccountError::Exists => CallbackError::AccountExists,
                    AccountError::Refused => CallbackError::AccessDenied,
                    AccountError::Store(e) => {
                        warn!(error = %e, "store error in an OpenID sign-in");
                        CallbackError::TemporarilyUnavailable
                    }
                })?;
            (user.id, user.session_epoch, None)
        };
        let exchange = ExchangeState {
            code_challenge: login.code_challenge.clone(),
            idp: provider.to_owned(),
            amr: identity.amr,
            link,
        };
        let code = new_opaque_token().map_err(|_| CallbackError::ServerError)?;
        let record = PendingCeremony {
            id_hash: token_hash(&code),
            kind: CeremonyKind::OidcCode,
            user_id: Some(user_id),
            epoch,
            challenge_hash: None,
            state: serde_json::to_string(&exchange).map_err(|_| CallbackError::ServerError)?,
            created_at: now,
            expires_at: now + EXCHANGE_CODE_TTL_SECS,
        };
        self.store
            .create_ceremony(&record)
            .await
            .map_err(|_| CallbackError::TemporarilyUnavailable)?;
        Ok(code)
    }

    /// The account a verified provider identity signs in to: the one it is linked to, one
    /// linked now by a verified address on both sides, or a new one.
    async fn account_for(
        &self,
        provider: &str,
        id: &str,
        linked: LinkedIdentity,
        identity: &ProviderIdentity,
    ) -> Result<User, AccountError> {
        let now = linked.linked_at;
        if let Some(owner) = self.store.identity_owner(id).await? {
            let user = self
                .store
                .user_by_id(owner)
                .await?
                .filter(|u| u.is_active)
                .ok_or(AccountError::Refused)?;
            if let Err(e) = self.store.use_identity(owner, id, now).await {
                warn!(error = %e, "could not record an identity's use");
            }
            return Ok(user);
        }
        // An address the provider does not vouch for names no account: neither a new one nor
        // one to link to (else anyone could claim an address at a lax provider).
        let email = identity
            .email
            .as_deref()
            .filter(|_| identity.email_verified)
            .and_then(|e| normalize_email(e).ok());
        let Some(email) = email else {
            info!(provider, "OpenID sign-in without a verified address");
            let claimed: Option<String> = identity
                .email
                .as_deref()
                .and_then(|e| normalize_email(e).ok());
            let taken = match claimed {
                Some(claimed) => self.store.user_by_email(&claimed).await?.is_some(),
                None => false,
            };
            return Err(if taken {
                AccountError::Exists
            } else {
                AccountError::Refused
            });
        };
        if let Some(user) = self.store.user_by_email(&email).await? {
            // Linked automatically only when both sides verified the address: else whoever
            // registered it first (pre-hijacking) or a provider account with someone else's
            // unverified address could take the other side's account.
            if !user.email_verified || !user.is_active {
                return Err(AccountError::Exists);
            }
            return match self
                .store
                .link_identity(user.id, user.session_epoch, id, &linked)
                .await?
            {
                IdentityLinked::Linked => {
                    info!(user_id = %user.id, provider, "identity linked by a verified address");
                    self.record(
                        Happened::new(user.id, EventKind::IdentityLinked)
                            .with("provider", provider),
                    )
                    .await;
                    self.tell_identity_linked(&user, provider);
                    Ok(user)
                }
                IdentityLinked::Taken | IdentityLinked::Refused => Err(AccountError::Exists),
            };
        }
        let user = User {
            id: Uuid::new_v4(),
            email,
            password_hash: String::new(),
            created_at: now,
            updated_at: now,
            is_active: true,
            session_epoch: 0,
            email_verified: true,
            links: CurrentLinks::default(),
            mfa: MfaState::default(),
            passkeys: Default::default(),
            identities: [(id.to_owned(), linked)].into(),
            roles: Vec::new(),
        };
        match self.store.create_user(&user).await {
            Ok(()) => {
                info!(user_id = %user.id, provider, "user registered through an OpenID provider");
                let method = format!("oidc:{provider}");
                self.record(Happened::new(user.id, EventKind::Registered).with("method", method))
                    .await;
                Ok(user)
            }
            Err(StoreError::EmailTaken) => Err(AccountError::Exists),
            Err(StoreError::IdentityTaken) => Err(AccountError::Refused),
            Err(e) => Err(e.into()),
        }
    }

    fn tell_identity_linked(&self, user: &User, provider: &str) {
        let name = self
            .oidc
            .as_deref()
            .and_then(|p| p.config(provider))
            .map_or(provider, |c| c.display_name());
        match self.outbox() {
            Some(outbox) => outbox.send(Mail::IdentityLinked { provider: name }, &user.email),
            None => warn!(user_id = %user.id, "no mailer: no identity-linked mail"),
        }
    }

    /// `POST /auth/oidc/exchange`: our code and the verifier of the app's challenge, for a
    /// sign-in or, when the flow was a link, the identity linked.
    pub async fn oidc_exchange(
        &self,
        code: &str,
        code_verifier: &str,
    ) -> Result<Exchanged, AuthError> {
        if !plausible_opaque_token(code) {
            return Err(AuthError::InvalidCode);
        }
        if !is_verifier(code_verifier) {
            return Err(field(
                "code_verifier",
                "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~.",
            ));
        }
        let now = self.clock.now();
        let record = self
            .store
            .take_ceremony(&token_hash(code), now)
            .await?
            .filter(|c| c.kind == CeremonyKind::OidcCode)
            .ok_or(AuthError::InvalidCode)?;
        let exchange: ExchangeState = serde_json::from_str(&record.state).map_err(internal)?;
        // PKCE: only the app that started the flow holds the verifier.
        if !bool::from(
            s256(code_verifier)
                .as_bytes()
                .ct_eq(exchange.code_challenge.as_bytes()),
        ) {
            info!("OpenID exchange with a wrong code_verifier");
            return Err(AuthError::InvalidCode);
        }
        let user_id = record.user_id.ok_or(AuthError::InvalidCode)?;
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .filter(|u| u.is_active && u.session_epoch == record.epoch)
            .ok_or(AuthError::InvalidCode)?;
        if let Some((id, identity)) = exchange.link {
            return self.finish_link(&user, record.epoch, &id, &identity).await;
        }
        crate::metrics::sign_in(true);
        if user.mfa.mfa_enabled && !exchange.amr.contains(&Amr::Mfa) {
            let federated = Federated {
                idp: exchange.idp,
                amr: exchange.amr,
            };
            let first = federated.amr.first().copied().unwrap_or(Amr::Pwd);
            return Ok(Exchanged::SignIn(
                self.challenge_after(&user, first, Some(federated), now)
                    .await?,
            ));
        }
        let signed_in = self
            .start_session_via(user, now, exchange.amr, Some(exchange.idp), None)
            .await?;
        Ok(Exchanged::SignIn(SignIn::SignedIn(Box::new(signed_in))))
    }

    async fn finish_link(
        &self,
        user: &User,
        epoch: u64,
        id: &str,
        identity: &LinkedIdentity,
    ) -> Result<Exchanged, AuthError> {
        match self
            .store
            .link_identity(user.id, epoch, id, identity)
            .await?
        {
            IdentityLinked::Linked => {}
            IdentityLinked::Taken => return Err(AuthError::IdentityTaken),
            IdentityLinked::Refused if user.identities.len() >= MAX_IDENTITIES => {
                return Err(AuthError::TooManyIdentities);
            }
            IdentityLinked::Refused => return Err(AuthError::InvalidCode),
        }
        info!(user_id = %user.id, provider = %identity.provider, "identity linked");
        self.record(
            Happened::new(user.id, EventKind::IdentityLinked).with("provider", &identity.provider),
        )
        .await;
        self.tell_identity_linked(user, &identity.provider);
        Ok(Exchanged::Linked(IdentityInfo::of(id, identity)))
    }

    /// `POST /auth/oidc/{provider}/link`: the start URL that links the provider's account to
    /// this one. Needs a verified address and a fresh factor (the password, or a sign-in in
    /// the last ten minutes).
    #[allow(clippy::too_many_arguments)]
    pub async fn oidc_link(
        &self,
        user_id: Uuid,
        chain_id: Uuid,
        provider: &str,
        password: Option<&Password>,
        redirect_uri: &str,
        code_challenge: &str,
        api_base: &str,
    ) -> Result<String, AuthError> {
        let providers = self.providers()?;
        let config = providers
            .config(provider)
            .ok_or(AuthError::ProviderNotFound)?;
        if !config
            .allowed_redirect_uris
            .iter()
            .any(|u| u == redirect_uri)
        {
            return Err(field(
                "redirect_uri",
                "redirect_uri is not one of this provider's allowed redirect URIs.",
            ));
        }
        if !is_s256_challenge(code_challenge) {
            return Err(field(
                "code_challenge",
                "code_challenge must be the base64url SHA-256 of the app's code_verifier (S256).",
            ));
        }
        let user = self.active_user(user_id).await?;
        // As for passkeys: linking adds a way in, so the address must be the user's.
        if !user.email_verified {
            return Err(AuthError::EmailUnverified);
        }
        let now = self.clock.now();
        self.fresh_factor(&user, chain_id, password, now).await?;
        if user.identities.len() >= MAX_IDENTITIES {
            return Err(AuthError::TooManyIdentities);
        }
        let ticket = new_opaque_token()?;
        let state = LinkTicket {
            provider: provider.to_owned(),
        };
        self.store
            .create_ceremony(&PendingCeremony {
                id_hash: token_hash(&ticket),
                kind: CeremonyKind::OidcLink,
                user_id: Some(user.id),
                epoch: user.session_epoch,
                challenge_hash: None,
                state: serde_json::to_string(&state).map_err(internal)?,
                created_at: now,
                expires_at: now + LINK_TICKET_TTL_SECS,
            })
            .await?;
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("link", &ticket)
            .finish();
        Ok(format!("{api_base}/auth/oidc/{provider}/start?{query}"))
    }

    /// Takes a link ticket for `provider`: its user and epoch, while both still hold.
    async fn take_link_ticket(
        &self,
        ticket: &str,
        provider: &str,
        now: UnixTime,
    ) -> Result<(Uuid, u64), AuthError> {
        let invalid = || field("link", "The link ticket is unknown, used or expired.");
        if !plausible_opaque_token(ticket) {
            return Err(invalid());
        }
        let record = self
            .store
            .take_ceremony(&token_hash(ticket), now)
            .await?
            .filter(|c| c.kind == CeremonyKind::OidcLink)
            .ok_or_else(invalid)?;
        let state: LinkTicket = serde_json::from_str(&record.state).map_err(internal)?;
        let user_id = record.user_id.ok_or_else(invalid)?;
        let current = self.store.user_by_id(user_id).await?;
        if state.provider != provider
            || !current.is_some_and(|u| u.is_active && u.session_epoch == record.epoch)
        {
            return Err(invalid());
        }
        Ok((user_id, record.epoch))
    }

    /// `GET /auth/identities`: the signed-in user's linked identities.
    pub async fn identities(&self, user_id: Uuid) -> Result<Vec<IdentityInfo>, AuthError> {
        let user = self.active_user(user_id).await?;
        Ok(user
            .identities
            .iter()
            .map(|(id, identity)| IdentityInfo::of(id, identity))
            .collect())
    }

    /// `DELETE /auth/identities/{id}`: unlinks one, never the account's last way in.
    pub async fn unlink_identity(&self, user_id: Uuid, id: &str) -> Result<(), AuthError> {
        let user = self.active_user(user_id).await?;
        if !user.identities.contains_key(id) {
            return Err(AuthError::IdentityNotFound);
        }
        let now = self.clock.now();
        if self.store.unlink_identity(user.id, id, now).await? {
            info!(user_id = %user.id, "identity unlinked");
            self.record(Happened::new(user.id, EventKind::IdentityUnlinked))
                .await;
            return Ok(());
        }
        // Removed by a racing request, or the last way in.
        match self.store.user_by_id(user.id).await? {
            Some(u) if u.identities.contains_key(id) => Err(AuthError::LastCredential),
            _ => Err(AuthError::IdentityNotFound),
        }
    }
}

/// Why no account came of a verified identity.
#[derive(Debug)]
enum AccountError {
    Exists,
    Refused,
    Store(StoreError),
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        AccountError::Store(e)
    }
}

fn provider_unavailable(e: OidcError) -> AuthError {
    match e {
        OidcError::UnknownProvider => AuthError::ProviderNotFound,
        e => AuthError::Unavailable(e.to_string()),
    }
}

fn internal(e: impl std::fmt::Display) -> AuthError {
    AuthError::Internal(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_and_verifiers_have_rfc_7636_shapes() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(is_verifier(verifier));
        assert_eq!(
            s256(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(is_s256_challenge(&s256(verifier)));
        assert!(!is_verifier("short"));
        assert!(!is_verifier(&"a".repeat(129)));
        assert!(!is_s256_challenge("plain-challenge"));
    }

    #[test]
    fn fragments_are_form_encoded() {
        assert_eq!(
            with_fragment(
                "https://app.example/done",
                &[("code", "a b"), ("state", "x&y")]
            ),
            "https://app.example/done#code=a+b&state=x%26y"
        );
    }
}
