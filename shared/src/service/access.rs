//! What the authorizer decides: whether a bearer token (ours, checked against its session, or
//! a trusted external issuer's) may call a protected route, and who it speaks for.

use tracing::warn;

use super::error::invalid_token;
use super::{AuthError, AuthService, Caller, Principal};
use crate::clock::UnixTime;
use crate::model::{Amr, Claims, IssuedToken, SessionChain, TokenType, User};
use crate::store::SessionSnapshot;
use crate::tokens::external::unverified_issuer;
use crate::tokens::{hashes_match, token_hash};

/// `last_used_at` is written at most this often per session.
pub const TOUCH_INTERVAL_SECS: i64 = 60;

impl AuthService {
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
                .touch_chain(principal.chain_id, now, TOUCH_INTERVAL_SECS)
                .await
            {
                warn!(chain_id = %principal.chain_id, error = %e, "could not record session use");
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
}

/// Checks what the store holds for a verified token: an active user, a live chain, and the
/// token's own IssuedToken item with a matching hash.
pub(super) fn check_snapshot(
    snapshot: SessionSnapshot,
    claims: &Claims,
    token: &str,
    token_type: TokenType,
    now: UnixTime,
) -> Result<(User, SessionChain, IssuedToken), AuthError> {
    let user = snapshot
        .user
        .filter(|u| u.is_active)
        .ok_or_else(|| invalid_token("user no longer exists or is inactive"))?;
    let chain = snapshot
        .chain
        .filter(|c| c.chain_id == claims.sid && c.is_live(&user, now))
        .ok_or_else(|| invalid_token("session revoked or expired"))?;
    let session = snapshot
        .token
        .filter(|s| {
            s.token_id == claims.jti
                && s.token_type == token_type
                && s.chain_id == chain.chain_id
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
        chain_id: chain.chain_id,
        email_verified: user.email_verified,
        // A one-time code, or a passkey that verified its user.
        mfa: claims
            .amr
            .as_ref()
            .is_some_and(|amr| amr.contains(&Amr::Otp) || amr.contains(&Amr::Mfa)),
        roles: claims.roles.clone(),
    };
    Ok((principal, chain.last_used_at))
}
