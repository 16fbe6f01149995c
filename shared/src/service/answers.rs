//! What the service answers with: a signed-in pair, the caller an access token speaks for,
//! and a session as `/auth/sessions` lists it.

use uuid::Uuid;

use crate::clock::UnixTime;
use crate::model::User;
use crate::tokens::external::ExternalIdentity;

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
    /// The caller's session (its chain, the token's `sid`), as `/auth/sessions` lists it.
    pub chain_id: Uuid,
    /// From the store, not the token: a verification counts from the next request on.
    pub email_verified: bool,
    /// Whether the sign-in was finished with a second factor (the token's `amr`).
    pub mfa: bool,
    /// The token's `roles`: a change shows at the next refresh.
    pub roles: Vec<String>,
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
