//! The entities of `data-model.md`, plus what the contract adds: the sign-in chain (`sid`),
//! revocation and rotation state.
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
            .finish()
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

/// One issued token (the data model's Session): `session_id` is the token's `jti`, and only the
/// SHA-256 of the JWT is kept, never the JWT itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub session_id: Uuid,
    /// The sign-in chain this token belongs to.
    pub sid: Uuid,
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
}

/// A sign-in chain: what one login started, shared by every rotation of its refresh token.
/// This is what the API calls a "session" in `/auth/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionChain {
    pub sid: Uuid,
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
}
