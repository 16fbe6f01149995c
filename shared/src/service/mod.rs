//! The auth service: every operation of the contract, independent of the store behind it.
//!
//! Handlers (Lambda or local) parse a request, call one method here and map the result. All
//! time comes from the injected clock.

mod devices;
mod email;
mod mfa;
mod reauth;
mod throttle;

pub use email::LinkBase;
pub use mfa::{MfaCode, MfaRequired, SignIn, TotpEnrolment};

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};
use uuid::Uuid;

use crate::clock::{Clock, UnixTime};
use crate::config::Config;
use crate::mail::{Mailer, Outbox};
use crate::mfa::MfaKeys;
use crate::model::{
    Amr, Claims, CurrentLinks, MfaState, Rotation, Session, SessionChain, TokenType, User,
};
use crate::passwords::{Password, PasswordError, Passwords, Verification};
use crate::store::{RotateOutcome, RotationRequest, SessionSnapshot, Store, StoreError};
use crate::tokens::external::{ExternalIdentity, ExternalIssuers, unverified_issuer};
use crate::tokens::{KeyRing, TokenError, Tokens, hashes_match, token_hash};
use crate::validation::{FieldError, PasswordPolicy, normalize_email};

/// `last_used_at` is written at most this often per session.
pub const TOUCH_INTERVAL_SECS: i64 = 60;

/// How often a refresh retries when concurrent refreshes of the same token collide.
const ROTATE_ATTEMPTS: u32 = 8;

/// Why an operation failed. The HTTP layer maps each variant to one contract error; the text of
/// `InvalidToken`, `Unavailable` and `Internal` is for logs only.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid email")]
    InvalidEmail(FieldError),
    #[error("weak password")]
    WeakPassword(Vec<FieldError>),
    #[error("email is already registered")]
    EmailTaken,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("account is disabled")]
    AccountDisabled,
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("not found")]
    NotFound,
    #[error("wrong, reused or expired code")]
    InvalidCode,
    /// A code that cannot be one (a TOTP code is six ASCII digits).
    #[error("malformed code in {field}")]
    MalformedCode { field: &'static str },
    #[error("two-factor sign-in is on already")]
    MfaAlreadyEnabled,
    #[error("two-factor sign-in is off")]
    MfaNotEnabled,
    #[error("no two-factor enrolment to confirm")]
    MfaSetupRequired,
    /// Enrolling a second factor needs a verified address.
    #[error("the address is not verified")]
    EmailUnverified,
    #[error("too many requests; retry after {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::EmailTaken => AuthError::EmailTaken,
            StoreError::Unavailable(detail) => {
                crate::metrics::store_error(true);
                AuthError::Unavailable(detail)
            }
            StoreError::Internal(detail) => {
                crate::metrics::store_error(false);
                AuthError::Internal(detail)
            }
        }
    }
}

impl From<PasswordError> for AuthError {
    fn from(e: PasswordError) -> Self {
        AuthError::Internal(e.to_string())
    }
}

fn invalid_token(reason: impl Into<String>) -> AuthError {
    AuthError::InvalidToken(reason.into())
}

/// A fresh pair of tokens and the user they belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
    pub refresh_expires_in: i64,
    pub user: User,
    /// For sign-ins (register, login, `/auth/mfa/verify`), not for rotations: see
    /// [`devices`].
    pub device_token: Option<String>,
}

/// Who an access token speaks for, as the authorizer passes it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    pub user_email: String,
    /// The sign-in chain (`sid`): the session the user sees in `/auth/sessions`.
    pub session_id: Uuid,
    /// From the store, not the token: a verification counts from the next request on.
    pub email_verified: bool,
    /// Whether the sign-in was finished with a second factor (the token's `amr`).
    pub mfa: bool,
}

/// Whoever a bearer token speaks for: one of our users, or a user of a trusted external
/// issuer (whose sessions are not ours to check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Own(Principal),
    External(ExternalIdentity),
}

/// One live session as `/auth/sessions` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: Uuid,
    pub created_at: UnixTime,
    pub last_used_at: UnixTime,
    pub expires_at: UnixTime,
    pub current: bool,
}

/// What one attempt to spend a refresh token came to.
enum Rotated {
    Done(Box<SignedIn>),
    /// A concurrent refresh spent the token first.
    SpentMeanwhile,
    /// Concurrent writers collided before anything was decided.
    Contended,
}

/// A token pair being minted: the tokens and their Session items.
struct Minted {
    access_token: String,
    refresh_token: String,
    access: Session,
    refresh: Session,
}

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
        }
    }

    /// The same service, sending mail through `mailer`.
    pub fn with_mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.outbox = Some(Outbox::new(mailer));
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

    /// Creates an account and signs it in, its verification link pointing to `APP_URL`.
    /// Registrations are counted per source IP.
    pub async fn register(
        &self,
        email: &str,
        password: &Password,
        source_ip: Option<&str>,
    ) -> Result<SignedIn, AuthError> {
        let links = self.config.app_url.clone().map(LinkBase);
        self.register_with_links(email, password, source_ip, links.as_ref())
            .await
    }

    /// [`Self::register`], the verification link pointing to `links` (the API's own base URL
    /// when `APP_URL` is unset); without one, no mail.
    pub async fn register_with_links(
        &self,
        email: &str,
        password: &Password,
        source_ip: Option<&str>,
        links: Option<&LinkBase>,
    ) -> Result<SignedIn, AuthError> {
        let email = normalize_email(email).map_err(AuthError::InvalidEmail)?;
        self.policy
            .check(password.expose(), &email)
            .map_err(AuthError::WeakPassword)?;
        let now = self.clock.now();
        self.charge_registration(source_ip, now).await?;
        let password_hash = self.passwords.hash(password).await?;
        let user = User {
            id: Uuid::new_v4(),
            email,
            password_hash,
            created_at: now,
            updated_at: now,
            is_active: true,
            session_epoch: 0,
            email_verified: false,
            links: CurrentLinks::default(),
            mfa: MfaState::default(),
        };
        self.store.create_user(&user).await?;
        info!(user_id = %user.id, "user registered");
        match links {
            Some(links) => self.send_first_verification(&user, links),
            None => warn!(user_id = %user.id, "no link base: no verification mail"),
        }
        self.start_session(user, now, vec![Amr::Pwd], None).await
    }

    /// Checks email and password and starts a session, or, with TOTP on, a challenge for the
    /// second factor. Unknown emails and wrong passwords get the same answer after the same
    /// Argon2 work; throttled attempts get none.
    pub async fn login(
        &self,
        email: &str,
        password: &Password,
        source_ip: Option<&str>,
    ) -> Result<SignIn, AuthError> {
        self.login_from_device(email, password, None, source_ip)
            .await
    }

    /// [`Self::login`] presenting the `device_token` of an earlier sign-in, which exempts it
    /// from the address's lockout while the device vouches for the user (see [`devices`]).
    pub async fn login_from_device(
        &self,
        email: &str,
        password: &Password,
        device_token: Option<&str>,
        source_ip: Option<&str>,
    ) -> Result<SignIn, AuthError> {
        let email = normalize_email(email).map_err(AuthError::InvalidEmail)?;
        let now = self.clock.now();
        let user = self.store.user_by_email(&email).await?;
        let device = match device_token {
            Some(token) => self.trusted_device(token, user.as_ref(), now).await?,
            None => None,
        };
        let charged = self
            .charge_login(&email, source_ip, device.as_ref(), now)
            .await?;
        let checked = self.check_credentials(user, password).await;
        // The right password counts as a success even for a disabled account.
        let right_password = matches!(checked, Ok(_) | Err(AuthError::AccountDisabled));
        self.settle_login(charged, right_password).await;
        if matches!(
            checked,
            Ok(_) | Err(AuthError::InvalidCredentials | AuthError::AccountDisabled)
        ) {
            crate::metrics::sign_in(checked.is_ok());
        }
        let (mut user, needs_rehash) = checked?;
        if needs_rehash {
            self.upgrade_hash(&mut user, password, now).await;
        }
        if user.mfa.mfa_enabled {
            return self.challenge(&user, now).await;
        }
        // A device that vouched keeps its token; any other gets a new one.
        let known_device = device.and(device_token).map(str::to_owned);
        let signed_in = self
            .start_session(user, now, vec![Amr::Pwd], known_device)
            .await?;
        Ok(SignIn::SignedIn(Box::new(signed_in)))
    }

    /// `user` (as read by its email) if `password` is its password, and whether its hash needs
    /// upgrading. An unknown email costs the same Argon2 work as a wrong password.
    async fn check_credentials(
        &self,
        user: Option<User>,
        password: &Password,
    ) -> Result<(User, bool), AuthError> {
        let stored = user.as_ref().map(|u| u.password_hash.as_str());
        let verification = self.passwords.verify(password, stored).await?;
        let (user, needs_rehash) = match (user, verification) {
            (Some(user), Verification::Match { needs_rehash }) => (user, needs_rehash),
            _ => return Err(AuthError::InvalidCredentials),
        };
        if !user.is_active {
            return Err(AuthError::AccountDisabled);
        }
        Ok((user, needs_rehash))
    }

    /// Re-hashes a password stored with older parameters. A failure here must not fail the
    /// login: the old hash still works and the next login tries again.
    async fn upgrade_hash(&self, user: &mut User, password: &Password, now: UnixTime) {
        let result = async {
            let hash = self.passwords.hash(password).await?;
            self.store.set_password_hash(user.id, &hash, now).await?;
            Ok::<_, AuthError>(hash)
        };
        match result.await {
            Ok(hash) => {
                user.password_hash = hash;
                user.updated_at = now;
                info!(user_id = %user.id, "password hash upgraded to current parameters");
            }
            Err(e) => warn!(user_id = %user.id, error = %e, "password hash upgrade failed"),
        }
    }

    /// Starts a sign-in chain made with `amr`, and its first pair; the answer carries
    /// `device_token`, or a new one without it.
    async fn start_session(
        &self,
        user: User,
        now: UnixTime,
        amr: Vec<Amr>,
        device_token: Option<String>,
    ) -> Result<SignedIn, AuthError> {
        let sid = Uuid::new_v4();
        let amr = Some(amr);
        let pair = self.plan_pair(&user, now, now, amr.clone())?;
        let minted = self.mint_pair(&user, sid, &pair)?;
        let chain = SessionChain {
            sid,
            user_id: user.id,
            created_at: now,
            last_used_at: now,
            expires_at: pair.refresh_expires_at,
            revoked_at: None,
            epoch: user.session_epoch,
            amr,
        };
        self.store
            .start_chain(&chain, &minted.access, &minted.refresh)
            .await?;
        info!(user_id = %user.id, session_id = %sid, "session started");
        let device_token = match device_token {
            Some(token) => token,
            None => self.new_device(&user, now).await?,
        };
        Ok(SignedIn {
            device_token: Some(device_token),
            ..signed_in(minted, user, now)
        })
    }

    fn signing_kid(&self) -> Result<String, AuthError> {
        self.tokens
            .signing_kid()
            .map(str::to_owned)
            .ok_or_else(|| AuthError::Internal("this function holds no signing key".into()))
    }

    /// The key, ids, times and claims of a new pair for `user` issued at `now` in a chain
    /// started at `chain_started_at`: no token outlives the chain's maximum lifetime.
    fn plan_pair(
        &self,
        user: &User,
        chain_started_at: UnixTime,
        now: UnixTime,
        amr: Option<Vec<Amr>>,
    ) -> Result<Rotation, AuthError> {
        let deadline = chain_started_at + self.config.session_max_lifetime_secs;
        Ok(Rotation {
            rotated_at: now,
            kid: self.signing_kid()?,
            access_id: Uuid::new_v4(),
            access_expires_at: (now + self.config.access_token_ttl_secs).min(deadline),
            refresh_id: Uuid::new_v4(),
            refresh_expires_at: (now + self.config.refresh_token_ttl_secs).min(deadline),
            user_email: Some(user.email.clone()),
            email_verified: Some(user.email_verified),
            amr,
        })
    }

    /// Mints the access and refresh token that `pair` describes, issued at `pair.rotated_at`.
    /// Deterministic in its inputs, which is what lets the grace window hand out the very same
    /// pair again.
    fn mint_pair(&self, user: &User, sid: Uuid, pair: &Rotation) -> Result<Minted, AuthError> {
        let iat = pair.rotated_at;
        let user_email = pair.user_email.as_ref().unwrap_or(&user.email);
        let claims = |jti, token_type, exp| Claims {
            iss: self.tokens.issuer().to_owned(),
            sub: user.id,
            aud: self.tokens.audience().to_owned(),
            exp,
            nbf: iat,
            iat,
            jti,
            user_id: user.id,
            user_email: user_email.clone(),
            token_type,
            sid,
            email_verified: pair.email_verified,
            amr: pair.amr.clone(),
        };
        let mint = |c: &Claims| match self.tokens.mint(c, &pair.kid) {
            Ok(token) => Ok(token),
            Err(TokenError::KeyRetired(kid)) => {
                Err(invalid_token(format!("signing key {kid} retired")))
            }
            Err(e) => Err(AuthError::Internal(e.to_string())),
        };
        let access_token = mint(&claims(
            pair.access_id,
            TokenType::Access,
            pair.access_expires_at,
        ))?;
        let refresh_token = mint(&claims(
            pair.refresh_id,
            TokenType::Refresh,
            pair.refresh_expires_at,
        ))?;
        let session = |id, token_type, token: &str, expires_at| Session {
            session_id: id,
            sid,
            user_id: user.id,
            token_type,
            token_hash: token_hash(token),
            created_at: iat,
            expires_at,
            last_used_at: None,
            rotation: None,
        };
        Ok(Minted {
            access: session(
                pair.access_id,
                TokenType::Access,
                &access_token,
                pair.access_expires_at,
            ),
            refresh: session(
                pair.refresh_id,
                TokenType::Refresh,
                &refresh_token,
                pair.refresh_expires_at,
            ),
            access_token,
            refresh_token,
        })
    }

    /// Exchanges a refresh token for a new pair. A token works once; presenting it again within
    /// the grace window returns the same successor pair, and after it revokes the whole chain.
    pub async fn refresh(&self, refresh_token: &str) -> Result<SignedIn, AuthError> {
        let now = self.clock.now();
        let claims = self
            .tokens
            .verify(refresh_token, TokenType::Refresh, now)
            .map_err(|e| invalid_token(e.to_string()))?;

        for attempt in 0..ROTATE_ATTEMPTS {
            let snapshot = self
                .store
                .snapshot(claims.user_id, claims.sid, claims.jti, now)
                .await?;
            let (user, chain, spent) =
                check_snapshot(snapshot, &claims, refresh_token, TokenType::Refresh, now)?;
            if let Some(rotation) = &spent.rotation {
                return if now - rotation.rotated_at <= self.config.refresh_reuse_grace_secs {
                    self.replay_within_grace(user, &chain, rotation)
                } else {
                    Err(self.reuse_detected(&user, &chain, now).await)
                };
            }
            match self.rotate(user, &chain, &spent, now).await? {
                Rotated::Done(signed_in) => return Ok(*signed_in),
                // Someone else spent it first: read again, and the grace window decides.
                Rotated::SpentMeanwhile => continue,
                Rotated::Contended => tokio::time::sleep(retry_delay(attempt)).await,
            }
        }
        Err(AuthError::Unavailable(
            "refresh kept colliding with concurrent refreshes".into(),
        ))
    }

    /// A client that retried (or two tabs racing) presents a token spent moments ago: it gets
    /// the very pair the first exchange issued, minted again from what the rotation recorded.
    fn replay_within_grace(
        &self,
        user: User,
        chain: &SessionChain,
        rotation: &Rotation,
    ) -> Result<SignedIn, AuthError> {
        let minted = self.mint_pair(&user, chain.sid, rotation)?;
        info!(user_id = %user.id, session_id = %chain.sid, "refresh replayed within grace window");
        Ok(signed_in(minted, user, rotation.rotated_at))
    }

    /// A spent token presented after the grace window: someone holds a copy it should not have.
    /// The whole chain ends, for the thief and the owner alike.
    async fn reuse_detected(&self, user: &User, chain: &SessionChain, now: UnixTime) -> AuthError {
        crate::metrics::refresh_reuse();
        if let Err(e) = self
            .store
            .revoke_chain(user.id, chain.sid, chain.epoch, now)
            .await
        {
            return e.into();
        }
        warn!(user_id = %user.id, session_id = %chain.sid, "refresh token reuse detected; session revoked");
        invalid_token("refresh token reused after rotation")
    }

    /// Spends `spent` for a new pair, unless a concurrent refresh spent it first.
    async fn rotate(
        &self,
        user: User,
        chain: &SessionChain,
        spent: &Session,
        now: UnixTime,
    ) -> Result<Rotated, AuthError> {
        let rotation = self.plan_pair(&user, chain.created_at, now, chain.amr.clone())?;
        let minted = self.mint_pair(&user, chain.sid, &rotation)?;
        let request = RotationRequest {
            spent,
            epoch: chain.epoch,
            rotation: &rotation,
            access: &minted.access,
            refresh: &minted.refresh,
            now,
        };
        Ok(match self.store.rotate(request).await? {
            RotateOutcome::Rotated => Rotated::Done(Box::new(signed_in(minted, user, now))),
            RotateOutcome::AlreadyRotated => Rotated::SpentMeanwhile,
            RotateOutcome::Contended => Rotated::Contended,
            RotateOutcome::ChainGone => return Err(invalid_token("session revoked")),
        })
    }

    /// Decides whether an access token may call a protected route: verify the token, read its
    /// user, chain and session item in one consistent step, decide. A token that fails
    /// verification never reaches the store, and a refusal writes nothing.
    pub async fn authorize(&self, access_token: &str) -> Result<Principal, AuthError> {
        let now = self.clock.now();
        let claims = self.verify_access_token(access_token, now)?;
        let snapshot = self
            .store
            .snapshot(claims.user_id, claims.sid, claims.jti, now)
            .await?;
        let (principal, last_used_at) = decide_access(&claims, access_token, snapshot, now)?;
        if now - last_used_at >= TOUCH_INTERVAL_SECS {
            // Best effort: a missed `last_used_at` must not refuse a valid request.
            if let Err(e) = self
                .store
                .touch_chain(principal.session_id, now, TOUCH_INTERVAL_SECS)
                .await
            {
                warn!(session_id = %principal.session_id, error = %e, "could not record session use");
            }
        }
        Ok(principal)
    }

    /// Decides for any bearer token: this service's own (checked against its session), or a
    /// trusted external issuer's (checked against that issuer's keys). A token naming any other
    /// issuer is refused without fetching anything.
    pub async fn authorize_bearer(&self, token: &str) -> Result<Caller, AuthError> {
        if !self.external.is_empty()
            && let Some(issuer) = unverified_issuer(token).filter(|iss| *iss != self.config.issuer)
        {
            if !self.external.is_trusted(&issuer) {
                return Err(invalid_token("issuer is neither this service nor trusted"));
            }
            let identity = self
                .external
                .verify(token, self.clock.now())
                .await
                .map_err(|e| invalid_token(format!("external token: {e}")))?;
            return Ok(Caller::External(identity));
        }
        self.authorize(token).await.map(Caller::Own)
    }

    /// The first half of [`Self::authorize`]: the token alone, no store.
    pub fn verify_access_token(
        &self,
        access_token: &str,
        now: UnixTime,
    ) -> Result<Claims, AuthError> {
        self.tokens
            .verify(access_token, TokenType::Access, now)
            .map_err(|e| invalid_token(e.to_string()))
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

    /// Ends the current session, or with `all` every session of the user.
    pub async fn logout(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        all: bool,
    ) -> Result<(), AuthError> {
        if all {
            self.store.revoke_all_sessions(user_id).await?;
            info!(user_id = %user_id, "all sessions revoked");
            return Ok(());
        }
        let user = self.active_user(user_id).await?;
        // Already ended is fine: logging out is idempotent.
        self.store
            .revoke_chain(user_id, session_id, user.session_epoch, self.clock.now())
            .await?;
        info!(user_id = %user_id, session_id = %session_id, "session revoked by logout");
        Ok(())
    }

    /// Changes the password after checking the current one (charged to this session's own
    /// budget, see [`reauth`]), and ends every other session of the user: the epoch moves and
    /// `session_id` moves with it.
    pub async fn change_password(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        current: &Password,
        new: &Password,
    ) -> Result<(), AuthError> {
        let user = self.active_user(user_id).await?;
        self.policy
            .check(new.expose(), &user.email)
            .map_err(AuthError::WeakPassword)?;
        let now = self.clock.now();
        self.reauthenticate(&user, session_id, current).await?;
        let hash = self.passwords.hash(new).await?;
        if !self
            .store
            .change_password(user.id, &hash, user.session_epoch, session_id, now)
            .await?
        {
            return Err(invalid_token("session ended during the password change"));
        }
        info!(user_id = %user.id, session_id = %session_id, "password changed; other sessions revoked");
        Ok(())
    }

    /// The user's live sessions, newest first.
    pub async fn sessions(
        &self,
        user_id: Uuid,
        current: Uuid,
    ) -> Result<Vec<SessionInfo>, AuthError> {
        let user = self.active_user(user_id).await?;
        let now = self.clock.now();
        let mut sessions: Vec<SessionInfo> = self
            .store
            .chains_of(user_id, now)
            .await?
            .into_iter()
            .filter(|chain| chain.is_live(&user, now))
            .map(|chain| SessionInfo {
                id: chain.sid,
                created_at: chain.created_at,
                last_used_at: chain.last_used_at,
                expires_at: chain.expires_at,
                current: chain.sid == current,
            })
            .collect();
        sessions.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(sessions)
    }

    /// Revokes one of the user's own sessions. Another user's session is `NotFound`, exactly as
    /// a session that never existed.
    pub async fn revoke_session(&self, user_id: Uuid, session_id: Uuid) -> Result<(), AuthError> {
        let user = self.active_user(user_id).await?;
        let revoked = self
            .store
            .revoke_chain(user_id, session_id, user.session_epoch, self.clock.now())
            .await?;
        if !revoked {
            return Err(AuthError::NotFound);
        }
        info!(user_id = %user_id, session_id = %session_id, "session revoked");
        Ok(())
    }
}

fn signed_in(minted: Minted, user: User, iat: UnixTime) -> SignedIn {
    SignedIn {
        expires_in: minted.access.expires_at - iat,
        refresh_expires_in: minted.refresh.expires_at - iat,
        access_token: minted.access_token,
        refresh_token: minted.refresh_token,
        user,
        device_token: None,
    }
}

/// Checks what the store holds for a verified token: an active user, a live chain, and the
/// token's own Session item with a matching hash.
fn check_snapshot(
    snapshot: SessionSnapshot,
    claims: &Claims,
    token: &str,
    token_type: TokenType,
    now: UnixTime,
) -> Result<(User, SessionChain, Session), AuthError> {
    let user = snapshot
        .user
        .filter(|u| u.is_active)
        .ok_or_else(|| invalid_token("user no longer exists or is inactive"))?;
    let chain = snapshot
        .chain
        .filter(|c| c.sid == claims.sid && c.is_live(&user, now))
        .ok_or_else(|| invalid_token("session revoked or expired"))?;
    let session = snapshot
        .token
        .filter(|s| {
            s.session_id == claims.jti
                && s.token_type == token_type
                && s.sid == chain.sid
                && s.user_id == user.id
        })
        .ok_or_else(|| invalid_token("no session item for this token"))?;
    if !hashes_match(&token_hash(token), &session.token_hash) {
        return Err(invalid_token("token does not match its session item"));
    }
    Ok((user, chain, session))
}

/// The second half of [`AuthService::authorize`]: given what the store holds for a verified
/// access token, who it speaks for and when its session was last used.
pub fn decide_access(
    claims: &Claims,
    access_token: &str,
    snapshot: SessionSnapshot,
    now: UnixTime,
) -> Result<(Principal, UnixTime), AuthError> {
    let (user, chain, _) = check_snapshot(snapshot, claims, access_token, TokenType::Access, now)?;
    let principal = Principal {
        user_id: user.id,
        user_email: user.email,
        session_id: chain.sid,
        email_verified: user.email_verified,
        mfa: claims
            .amr
            .as_ref()
            .is_some_and(|amr| amr.contains(&Amr::Otp)),
    };
    Ok((principal, chain.last_used_at))
}

fn retry_delay(attempt: u32) -> Duration {
    let base = 5u64 << attempt.min(5);
    Duration::from_millis(base + u64::from(Uuid::new_v4().as_u128() as u8) % base)
}
