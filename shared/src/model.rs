//! The stored entities (docs/data-model.md describes them and the words for them): users, the
//! tokens issued to them, their sessions (sign-in chains) with revocation and rotation state,
//! emailed links, second-factor challenges and trusted devices.
//!
//! Field names are the stored attribute names in both stores. Timestamps are Unix seconds;
//! the API renders them as RFC 3339.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::UnixTime;

/// A registered user.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    /// Normalised: trimmed and lower-cased. Unique.
    pub email: String,
    /// Argon2id PHC string. Never leaves the store layer in a response.
    pub password_hash: String,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
    pub is_active: bool,
    /// Bumped to sign the user out everywhere at once: a chain started under an older epoch is
    /// dead. One write revokes every session, with no scan that could miss a concurrent login.
    #[serde(default)]
    pub session_epoch: u64,
    /// Whether a link mailed to `email` was followed (or a password reset reached the mailbox).
    #[serde(default)]
    pub email_verified: bool,
    /// The newest emailed link of each kind; an older one no longer matches.
    #[serde(flatten)]
    pub links: CurrentLinks,
    /// Two-factor sign-in.
    #[serde(flatten)]
    pub mfa: MfaState,
    /// The user's passkeys by credential id (base64url), at most [`MAX_PASSKEYS`]. A map, so
    /// that one passkey's counter moves by name in a conditional write.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub passkeys: std::collections::BTreeMap<String, StoredPasskey>,
    /// The user's OpenID Connect identities by id ([`identity_id`]), at most
    /// [`MAX_IDENTITIES`]; each also held by a guard that names its user.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub identities: std::collections::BTreeMap<String, LinkedIdentity>,
    /// What the user may do, as access tokens carry it (`roles`): at most [`MAX_ROLES`] names
    /// of [`is_role_name`]'s shape. A change shows in tokens from the next refresh on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

impl User {
    /// Whether a password signs this user in (an account made by a provider has none).
    pub fn has_password(&self) -> bool {
        !self.password_hash.is_empty()
    }

    /// How many ways in the account has: its password, passkeys and identities.
    pub fn ways_in(&self) -> usize {
        usize::from(self.has_password()) + self.passkeys.len() + self.identities.len()
    }
}

/// The role the admin API needs.
pub const ADMIN_ROLE: &str = "admin";

/// The most roles one user holds.
pub const MAX_ROLES: usize = 20;

/// A role's name: `[a-z][a-z0-9_-]{0,31}`.
pub fn is_role_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && name.len() <= 32
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The most OpenID Connect identities one account holds.
pub const MAX_IDENTITIES: usize = 10;

/// An account at an OpenID Connect provider, linked to a user: the provider's id (from
/// `OIDC_PROVIDERS`) and its `sub`, unique per provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedIdentity {
    pub provider: String,
    pub subject: String,
    /// The address the provider gave when it was linked, for the account page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub linked_at: UnixTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<UnixTime>,
}

/// The id of the identity (`provider`, `subject`): where it lives on the user and what its
/// guard is keyed by. Hashed, so that no provider's `sub` syntax reaches a key.
pub fn identity_id(provider: &str, subject: &str) -> String {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("{provider}\n{subject}").as_bytes(),
    );
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The most passkeys one account holds (they live on the user's item).
pub const MAX_PASSKEYS: usize = 20;

/// A passkey: a WebAuthn credential of the user, with what the account page shows of it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPasskey {
    pub name: String,
    pub created_at: UnixTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<UnixTime>,
    /// Whether the authenticator said the key is backed up (synced across devices).
    #[serde(default)]
    pub backed_up: bool,
    #[serde(default)]
    pub transports: Vec<String>,
    /// The credential as webauthn-rs-core keeps it (public key, signature counter, flags), as
    /// JSON. A sign-in replaces it only if it is still the one read.
    pub credential: String,
}

impl std::fmt::Debug for StoredPasskey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredPasskey")
            .field("name", &self.name)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// What a pending ceremony is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CeremonyKind {
    /// Adding a passkey to a signed-in user.
    Registration,
    /// Signing in with a passkey.
    SignIn,
    /// The second factor of a password sign-in (`mfa_required`).
    SecondFactor,
    /// An OpenID Connect sign-in between its start and the provider's callback (`state`).
    OidcLogin,
    /// A signed-in user's permission to link an identity, redeemed by the start.
    OidcLink,
    /// A finished OpenID Connect sign-in waiting for the app's exchange (`code`).
    OidcCode,
}

/// A ceremony between its two calls: what a passkey's `ceremony_id`, an OpenID Connect `state`
/// or exchange `code` stands for. Stored by the SHA-256 of the id, with its expiry as the TTL
/// attribute; taken by one conditional delete, so it works once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCeremony {
    pub id_hash: String,
    pub kind: CeremonyKind,
    /// `None` for a sign-in without an email (the authenticator names the user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    /// The user's `session_epoch` when the ceremony began: it dies when the epoch moves.
    #[serde(default)]
    pub epoch: u64,
    /// For a second factor: the `mfa_token`'s hash it finishes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_hash: Option<String>,
    /// What the second call needs, as JSON: webauthn-rs-core's state (its challenge), or the
    /// OpenID Connect flow's.
    pub state: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

impl std::fmt::Debug for PendingCeremony {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingCeremony")
            .field("kind", &self.kind)
            .field("user_id", &self.user_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A user's two-factor state. The TOTP secret is sealed (AES-256-GCM) under a key the service
/// holds apart from the table; recovery codes are kept only as hashes.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaState {
    #[serde(default)]
    pub mfa_enabled: bool,
    /// The secret in use once TOTP is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<SealedSecret>,
    /// A secret being enrolled: it becomes `totp` when a first code confirms it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_pending: Option<SealedSecret>,
    /// The last time step whose code was accepted: never again that one, nor an older one.
    #[serde(default)]
    pub totp_last_step: u64,
    /// SHA-256 of each unused recovery code (hex) → `true`. A map, so that one code is removed
    /// by name in a conditional write, however many requests race for it.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub recovery_codes: std::collections::BTreeMap<String, bool>,
}

// Hand-written so that no `{:?}` prints a sealed secret or a code's hash.
impl std::fmt::Debug for MfaState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaState")
            .field("mfa_enabled", &self.mfa_enabled)
            .field("totp_last_step", &self.totp_last_step)
            .field("recovery_codes", &self.recovery_codes.len())
            .finish_non_exhaustive()
    }
}

/// A secret sealed with AES-256-GCM: the key's id (so keys can be rotated), a fresh nonce, and
/// the ciphertext with its tag, bound to the user it belongs to. Base64url without padding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    pub kid: String,
    pub nonce: String,
    pub ciphertext: String,
}

/// The methods a sign-in was made with: RFC 8176's registry of `amr` values. Ours are `pwd`,
/// `otp` (TOTP or a recovery code), `pop` (a passkey) and `mfa` (a passkey that verified its
/// user); the others come only from an OpenID Connect provider's ID token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Amr {
    Face,
    Fpt,
    Geo,
    Hwk,
    Iris,
    Kba,
    Mca,
    Mfa,
    Otp,
    Pin,
    Pop,
    Pwd,
    Rba,
    Retina,
    Sc,
    Sms,
    Swk,
    Tel,
    User,
    Vbm,
    Wia,
}

impl Amr {
    fn password() -> Self {
        Amr::Pwd
    }

    /// The registered value `value`, or `None` for one outside RFC 8176's registry.
    pub fn registered(value: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(value.to_owned())).ok()
    }
}

/// A sign-in made at an OpenID Connect provider: its id and the provider's own `amr` values
/// that RFC 8176 registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Federated {
    pub idp: String,
    #[serde(default)]
    pub amr: Vec<Amr>,
}

/// A device its user signed in from: what a `device_token` stands for. Stored by the SHA-256 of
/// the token, with its expiry as the TTL attribute. It lets a login from that device past the
/// lockout others caused on the address (see `service::devices`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedDevice {
    pub token_hash: String,
    pub user_id: Uuid,
    /// The user's `session_epoch` when the device signed in: "log out everywhere", a password
    /// change and a reset move the epoch on, and every device token with it stops counting.
    pub epoch: u64,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

impl TrustedDevice {
    /// Whether the device still vouches for `user`.
    pub fn vouches_for(&self, user: &User, now: UnixTime) -> bool {
        self.expires_at > now && self.user_id == user.id && self.epoch == user.session_epoch
    }
}

/// A sign-in waiting for its second factor: what an `mfa_token` stands for. Stored by the
/// SHA-256 of the token, with its expiry as the TTL attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaChallenge {
    pub token_hash: String,
    pub user_id: Uuid,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    /// Codes tried so far, each counted before it is checked; the challenge dies at
    /// [`Self::MAX_FAILURES`] wrong ones.
    #[serde(default)]
    pub failures: u32,
    /// The user's `session_epoch` when the password was checked: a reset, a password change or
    /// "log out everywhere" since kills the challenge.
    #[serde(default)]
    pub epoch: u64,
    /// What the first step was: the password, or a passkey that did not verify its user
    /// (unused after a provider's sign-in, which `federated` describes).
    #[serde(default = "Amr::password")]
    pub first_factor: Amr,
    /// A sign-in at an OpenID Connect provider, when that was the first step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated: Option<Federated>,
}

impl MfaChallenge {
    pub const MAX_FAILURES: u32 = 5;

    /// Whether another code may be tried.
    pub fn is_live(&self, now: UnixTime) -> bool {
        self.expires_at > now && self.failures < Self::MAX_FAILURES
    }

    /// Whether a code already counted against it may still pass it.
    pub fn may_pass(&self, now: UnixTime) -> bool {
        self.expires_at > now && self.failures <= Self::MAX_FAILURES
    }

    /// Whether a passkey may be the second factor: after a password alone.
    pub fn passkey_may_finish(&self) -> bool {
        self.first_factor == Amr::Pwd && self.federated.is_none()
    }

    /// The sign-in's `amr` and `idp` once `second` finished it.
    pub fn finished_with(&self, second: &[Amr]) -> (Vec<Amr>, Option<String>) {
        match &self.federated {
            Some(federated) => {
                let mut amr = federated.amr.clone();
                amr.extend(second.iter().filter(|a| !federated.amr.contains(a)));
                (amr, Some(federated.idp.clone()))
            }
            None => {
                let mut amr = vec![self.first_factor];
                amr.extend_from_slice(second);
                (amr, None)
            }
        }
    }
}

/// The token hash of the user's newest emailed link of each kind. Issuing a link replaces its
/// kind's entry, so every older link of that kind stops working; spending one removes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentLinks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_verify_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_reset_password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_change_email: Option<String>,
}

impl CurrentLinks {
    pub fn current(&self, kind: LinkKind) -> Option<&str> {
        match kind {
            LinkKind::VerifyEmail => self.link_verify_email.as_deref(),
            LinkKind::ResetPassword => self.link_reset_password.as_deref(),
            LinkKind::ChangeEmail => self.link_change_email.as_deref(),
        }
    }

    pub fn slot(&mut self, kind: LinkKind) -> &mut Option<String> {
        match kind {
            LinkKind::VerifyEmail => &mut self.link_verify_email,
            LinkKind::ResetPassword => &mut self.link_reset_password,
            LinkKind::ChangeEmail => &mut self.link_change_email,
        }
    }
}

/// What an emailed link does when its token is posted back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// Confirms the address it was sent to (after registration, or asked for again).
    VerifyEmail,
    /// Sets a new password; every session ends.
    ResetPassword,
    /// Makes the address it was sent to the account's new address.
    ChangeEmail,
}

impl LinkKind {
    /// The user attribute that holds this kind's current link: [`CurrentLinks`]'s field.
    pub fn attribute(self) -> &'static str {
        match self {
            LinkKind::VerifyEmail => "link_verify_email",
            LinkKind::ResetPassword => "link_reset_password",
            LinkKind::ChangeEmail => "link_change_email",
        }
    }
}

/// An emailed link's token, as stored: only the SHA-256 of the token, never the token itself,
/// until it is spent or expires (the TTL attribute `expires_at` removes it in DynamoDB).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailLink {
    /// Lower-case hex SHA-256 of the token.
    pub token_hash: String,
    pub kind: LinkKind,
    pub user_id: Uuid,
    /// The address the link was sent to: the one it confirms.
    pub email: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    /// The user's `session_epoch` when the link was issued: a link outlives no reset,
    /// password change, "log out everywhere", address change or deactivation.
    #[serde(default)]
    pub epoch: u64,
    /// An address change: the sign-in chain that asked for it, which stays signed in when the
    /// change moves the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_chain: Option<Uuid>,
}

// Hand-written so that a stray `{:?}` can never print the password hash.
impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("password_hash", &"[redacted]")
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("is_active", &self.is_active)
            .field("session_epoch", &self.session_epoch)
            .field("email_verified", &self.email_verified)
            .field("mfa", &self.mfa)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

impl TokenType {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Access => "access",
            TokenType::Refresh => "refresh",
        }
    }
}

/// One issued access or refresh token (the data model's `Session` entity, whose attribute
/// names it keeps): `token_id` is the token's `jti`, and only the SHA-256 of the JWT is kept,
/// never the JWT itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedToken {
    #[serde(rename = "session_id")]
    pub token_id: Uuid,
    /// The session (sign-in chain) this token belongs to: the token's `sid` claim.
    #[serde(rename = "sid")]
    pub chain_id: Uuid,
    pub user_id: Uuid,
    pub token_type: TokenType,
    /// Lower-case hex SHA-256 of the compact JWT.
    pub token_hash: String,
    pub created_at: UnixTime,
    /// The token's `exp`; the sessions table's TTL attribute.
    pub expires_at: UnixTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<UnixTime>,
    /// Set once, when a refresh token is spent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
}

/// What a spent refresh token was exchanged for. Ed25519 signatures are deterministic, so these
/// fields are enough to mint the very same successor pair again within the grace window without
/// ever storing a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    pub rotated_at: UnixTime,
    pub kid: String,
    pub access_id: Uuid,
    pub access_expires_at: UnixTime,
    pub refresh_id: Uuid,
    pub refresh_expires_at: UnixTime,
    /// The user's address and its verification when the pair was minted: the replay must not
    /// pick up a change made since. `None` in rotations recorded before these were kept, whose
    /// pairs carried the address of the user's item and no `email_verified` claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// The chain's `amr` when the pair was minted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<Amr>>,
    /// The chain's `idp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
    /// The user's roles when the pair was minted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// A sign-in chain: what one login started, shared by every rotation of its refresh token.
/// This is what the API calls a "session" in `/auth/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionChain {
    /// The JWT claim `sid` of its tokens; `/auth/sessions` lists it as the session's `id`.
    #[serde(rename = "sid")]
    pub chain_id: Uuid,
    pub user_id: Uuid,
    pub created_at: UnixTime,
    pub last_used_at: UnixTime,
    /// When the newest refresh token of the chain expires; the TTL attribute.
    pub expires_at: UnixTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<UnixTime>,
    /// The user's `session_epoch` when the chain started.
    #[serde(default)]
    pub epoch: u64,
    /// How the sign-in was made; every rotation keeps it. `None` for chains older than it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<Amr>>,
    /// The OpenID Connect provider the sign-in was made at, if any; every rotation keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
}

impl SessionChain {
    /// Whether the chain can still authorise anything.
    pub fn is_live(&self, user: &User, now: UnixTime) -> bool {
        self.revoked_at.is_none()
            && self.expires_at > now
            && self.user_id == user.id
            && self.epoch == user.session_epoch
    }
}

/// The claims of both token kinds. Field order is the serialised order, which keeps minting
/// deterministic (the grace window relies on it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: Uuid,
    pub aud: String,
    pub exp: UnixTime,
    pub nbf: UnixTime,
    pub iat: UnixTime,
    pub jti: Uuid,
    pub user_id: Uuid,
    pub user_email: String,
    pub token_type: TokenType,
    pub sid: Uuid,
    /// Absent only in a pair replayed from a rotation recorded before the claim existed, which
    /// must come back byte for byte as it was first minted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// How the sign-in was made: `["pwd"]`, or `["pwd", "otp"]` with a second factor. Absent
    /// in pairs of chains and rotations older than the claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<Amr>>,
    /// The OpenID Connect provider's id, for a sign-in made there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
    /// The user's roles when the token was minted; absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// What happened to an account: one entry of its security history (`GET /auth/security-events`)
/// and, for the kinds [`EventKind::bus_type`] names, one lifecycle event on the EventBridge bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Registered,
    SignedIn,
    /// A sign-in from a device that held no device token of this user.
    NewDevice,
    EmailVerified,
    EmailChanged,
    PasswordChanged,
    PasswordReset,
    MfaEnabled,
    MfaDisabled,
    RecoveryCodesRegenerated,
    PasskeyAdded,
    PasskeyRemoved,
    IdentityLinked,
    IdentityUnlinked,
    /// One session signed out, or revoked from the session list.
    SessionEnded,
    /// Every session ended ("log out everywhere", or an admin).
    SessionsEnded,
    /// A spent refresh token came back: the chain was revoked.
    SessionReuseDetected,
    /// Too many wrong passwords: the address's logins wait.
    LoginLockedOut,
    Deactivated,
    Activated,
    RolesChanged,
    /// Gone with the account; on the bus only.
    Deleted,
}

impl EventKind {
    /// The event's `type` on the bus, for the lifecycle events teams subscribe to; `None` for
    /// history alone.
    pub fn bus_type(self) -> Option<&'static str> {
        Some(match self {
            EventKind::Registered => "user.registered",
            EventKind::EmailVerified => "user.email_verified",
            EventKind::EmailChanged => "user.email_changed",
            EventKind::PasswordChanged => "user.password_changed",
            EventKind::PasswordReset => "user.password_reset",
            EventKind::MfaEnabled => "user.mfa_enabled",
            EventKind::MfaDisabled => "user.mfa_disabled",
            EventKind::Deactivated => "user.deactivated",
            EventKind::Deleted => "user.deleted",
            EventKind::SessionReuseDetected => "session.reuse_detected",
            EventKind::LoginLockedOut => "login.locked_out",
            _ => return None,
        })
    }

    /// Whether the user's history keeps it (a deleted account has no history).
    pub fn in_history(self) -> bool {
        self != EventKind::Deleted
    }
}

/// How long the security history keeps an entry (its TTL).
pub const HISTORY_RETENTION_SECS: i64 = 90 * 86_400;

/// One entry of a user's security history. Never holds a secret: no token, code, password,
/// hash or full address; the source IP only as a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityEvent {
    /// Time-ordered (UUIDv7): the history's order.
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: EventKind,
    pub occurred_at: UnixTime,
    /// The admin who did it, for an admin action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<Uuid>,
    /// The request's source address, cut to its /24 (IPv4) or /48 (IPv6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_prefix: Option<String>,
    /// The request's `User-Agent`, cut to 200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Small, non-secret facts: `method` (`password`, `passkey`, `oidc:<id>`), `session`,
    /// `roles`, `provider`, `passkey`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub detail: std::collections::BTreeMap<String, String>,
    /// [`HISTORY_RETENTION_SECS`] after it happened: the TTL attribute.
    pub expires_at: UnixTime,
}
