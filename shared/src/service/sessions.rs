//! A session's life: its chain and first pair at sign-in, each rotation of its refresh token
//! (with the grace window and reuse detection), and its end by logout or revocation.

use tracing::{info, warn};
use uuid::Uuid;

use super::access::check_snapshot;
use super::contention_delay;
use super::error::invalid_token;
use super::history::Happened;
use super::{AuthError, AuthService, EXCHANGE_CODE_TTL_SECS, SessionInfo, SignedIn};
use crate::clock::UnixTime;
use crate::model::{Amr, Claims, EventKind, IssuedToken, Rotation, SessionChain, TokenType, User};
use crate::store::{RotateOutcome, RotationRequest};
use crate::tokens::{TokenError, token_hash};

/// How often a refresh retries when concurrent refreshes of the same token collide.
const ROTATE_ATTEMPTS: u32 = 8;

/// What one attempt to spend a refresh token came to.
enum Rotated {
    Done(Box<SignedIn>),
    /// A concurrent refresh spent the token first.
    SpentMeanwhile,
    /// Concurrent writers collided before anything was decided.
    Contended,
}

/// The plan of a new access and refresh pair: its key, ids and expiries, and the claims that
/// can change during a session. Minting is deterministic in it, so a spent refresh token
/// records it as its [`Rotation`] and the grace window mints the very same pair again.
#[derive(Debug, Clone)]
struct PairPlan {
    issued_at: UnixTime,
    kid: String,
    access_id: Uuid,
    access_expires_at: UnixTime,
    refresh_id: Uuid,
    refresh_expires_at: UnixTime,
    /// `None` only in plans read back from rotations recorded before these were kept.
    user_email: Option<String>,
    email_verified: Option<bool>,
    amr: Option<Vec<Amr>>,
    idp: Option<String>,
    roles: Vec<String>,
}

impl PairPlan {
    /// What the spent refresh token records of it.
    fn rotation(&self) -> Rotation {
        Rotation {
            rotated_at: self.issued_at,
            kid: self.kid.clone(),
            access_id: self.access_id,
            access_expires_at: self.access_expires_at,
            refresh_id: self.refresh_id,
            refresh_expires_at: self.refresh_expires_at,
            user_email: self.user_email.clone(),
            email_verified: self.email_verified,
            amr: self.amr.clone(),
            idp: self.idp.clone(),
            roles: self.roles.clone(),
        }
    }
}

impl From<&Rotation> for PairPlan {
    fn from(rotation: &Rotation) -> Self {
        Self {
            issued_at: rotation.rotated_at,
            kid: rotation.kid.clone(),
            access_id: rotation.access_id,
            access_expires_at: rotation.access_expires_at,
            refresh_id: rotation.refresh_id,
            refresh_expires_at: rotation.refresh_expires_at,
            user_email: rotation.user_email.clone(),
            email_verified: rotation.email_verified,
            amr: rotation.amr.clone(),
            idp: rotation.idp.clone(),
            roles: rotation.roles.clone(),
        }
    }
}

/// A token pair being minted: the tokens and their stored items.
struct Minted {
    access_token: String,
    refresh_token: String,
    access: IssuedToken,
    refresh: IssuedToken,
}
impl AuthService {
    /// Starts a sign-in chain made with `amr`, and its first pair; the answer carries
    /// `device_token`, or a new one without it.
    pub(super) async fn start_session(
        &self,
        user: User,
        now: UnixTime,
        amr: Vec<Amr>,
        device_token: Option<String>,
    ) -> Result<SignedIn, AuthError> {
        self.start_session_via(user, now, amr, None, device_token)
            .await
    }

    /// [`Self::start_session`] for a sign-in made at the OpenID Connect provider `idp`.
    pub(super) async fn start_session_via(
        &self,
        user: User,
        now: UnixTime,
        amr: Vec<Amr>,
        idp: Option<String>,
        device_token: Option<String>,
    ) -> Result<SignedIn, AuthError> {
        let chain_id = Uuid::new_v4();
        let amr = Some(amr);
        let pair = self.plan_pair(&user, now, now, amr.clone(), idp.clone())?;
        let minted = self.mint_pair(&user, chain_id, &pair)?;
        let chain = SessionChain {
            chain_id,
            user_id: user.id,
            created_at: now,
            last_used_at: now,
            expires_at: pair.refresh_expires_at,
            revoked_at: None,
            epoch: user.session_epoch,
            amr,
            idp,
        };
        self.store
            .start_chain(&chain, &minted.access, &minted.refresh)
            .await?;
        info!(user_id = %user.id, chain_id = %chain_id, "session started");
        let mut entry = Happened::new(user.id, EventKind::SignedIn).with("session", chain_id);
        if let Some(amr) = &chain.amr {
            let amr: Vec<String> = amr
                .iter()
                .filter_map(|a| serde_json::to_value(a).ok()?.as_str().map(str::to_owned))
                .collect();
            entry = entry.with("amr", amr.join(" "));
        }
        if let Some(idp) = &chain.idp {
            entry = entry.with("idp", idp);
        }
        self.record(entry).await;
        let device_token = match device_token {
            Some(token) => token,
            None => {
                // An account's first sign-in (a registration, or the exchange that follows a
                // provider's new account, within a minute) is from no "new" device.
                if now - user.created_at > EXCHANGE_CODE_TTL_SECS {
                    self.new_device_seen(&user, chain_id).await;
                }
                self.new_device(&user, now).await?
            }
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
        idp: Option<String>,
    ) -> Result<PairPlan, AuthError> {
        let deadline = chain_started_at + self.config.session_max_lifetime_secs;
        Ok(PairPlan {
            issued_at: now,
            kid: self.signing_kid()?,
            access_id: Uuid::new_v4(),
            access_expires_at: (now + self.config.access_token_ttl_secs).min(deadline),
            refresh_id: Uuid::new_v4(),
            refresh_expires_at: (now + self.config.refresh_token_ttl_secs).min(deadline),
            user_email: Some(user.email.clone()),
            email_verified: Some(user.email_verified),
            amr,
            idp,
            // Read from the user at every new pair: a change of roles shows at the next refresh.
            roles: user.roles.clone(),
        })
    }

    /// Mints the access and refresh token that `pair` describes, issued at `pair.issued_at`.
    /// Deterministic in its inputs, which is what lets the grace window hand out the very same
    /// pair again.
    fn mint_pair(&self, user: &User, chain_id: Uuid, pair: &PairPlan) -> Result<Minted, AuthError> {
        let iat = pair.issued_at;
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
            sid: chain_id,
            email_verified: pair.email_verified,
            amr: pair.amr.clone(),
            idp: pair.idp.clone(),
            roles: pair.roles.clone(),
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
        let session = |id, token_type, token: &str, expires_at| IssuedToken {
            token_id: id,
            chain_id,
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
                Rotated::Contended => tokio::time::sleep(contention_delay(attempt)).await,
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
        let minted = self.mint_pair(&user, chain.chain_id, &PairPlan::from(rotation))?;
        info!(user_id = %user.id, chain_id = %chain.chain_id, "refresh replayed within grace window");
        Ok(signed_in(minted, user, rotation.rotated_at))
    }

    /// A spent token presented after the grace window: someone holds a copy it should not have.
    /// The whole chain ends, for the thief and the owner alike.
    async fn reuse_detected(&self, user: &User, chain: &SessionChain, now: UnixTime) -> AuthError {
        crate::metrics::refresh_reuse();
        if let Err(e) = self
            .store
            .revoke_chain(user.id, chain.chain_id, chain.epoch, now)
            .await
        {
            return e.into();
        }
        warn!(user_id = %user.id, chain_id = %chain.chain_id, "refresh token reuse detected; session revoked");
        self.record(
            Happened::new(user.id, EventKind::SessionReuseDetected).with("session", chain.chain_id),
        )
        .await;
        invalid_token("refresh token reused after rotation")
    }

    /// Spends `spent` for a new pair, unless a concurrent refresh spent it first.
    async fn rotate(
        &self,
        user: User,
        chain: &SessionChain,
        spent: &IssuedToken,
        now: UnixTime,
    ) -> Result<Rotated, AuthError> {
        let pair = self.plan_pair(
            &user,
            chain.created_at,
            now,
            chain.amr.clone(),
            chain.idp.clone(),
        )?;
        let minted = self.mint_pair(&user, chain.chain_id, &pair)?;
        let rotation = pair.rotation();
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

    /// Ends the current session, or with `all` every session of the user.
    pub async fn logout(&self, user_id: Uuid, chain_id: Uuid, all: bool) -> Result<(), AuthError> {
        if all {
            self.store.revoke_all_sessions(user_id).await?;
            info!(user_id = %user_id, "all sessions revoked");
            self.record(Happened::new(user_id, EventKind::SessionsEnded).with("by", "logout"))
                .await;
            return Ok(());
        }
        let user = self.active_user(user_id).await?;
        // Already ended is fine: logging out is idempotent.
        let revoked = self
            .store
            .revoke_chain(user_id, chain_id, user.session_epoch, self.clock.now())
            .await?;
        info!(user_id = %user_id, chain_id = %chain_id, "session revoked by logout");
        if revoked {
            let ended = Happened::new(user_id, EventKind::SessionEnded)
                .with("session", chain_id)
                .with("by", "logout");
            self.record(ended).await;
        }
        Ok(())
    }

    /// The user's live sessions, newest first.
    pub async fn sessions(
        &self,
        user_id: Uuid,
        current: Uuid,
    ) -> Result<Vec<SessionInfo>, AuthError> {
        let user = self.active_user(user_id).await?;
        self.live_sessions(&user, Some(current)).await
    }

    /// `user`'s live sessions, newest first; `current` is the caller's own, if it is one.
    pub(super) async fn live_sessions(
        &self,
        user: &User,
        current: Option<Uuid>,
    ) -> Result<Vec<SessionInfo>, AuthError> {
        let now = self.clock.now();
        let mut sessions: Vec<SessionInfo> = self
            .store
            .chains_of(user.id, now)
            .await?
            .into_iter()
            .filter(|chain| chain.is_live(user, now))
            .map(|chain| SessionInfo {
                id: chain.chain_id,
                created_at: chain.created_at,
                last_used_at: chain.last_used_at,
                expires_at: chain.expires_at,
                current: Some(chain.chain_id) == current,
            })
            .collect();
        sessions.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(sessions)
    }

    /// Revokes one of the user's own sessions. Another user's session is `NotFound`, exactly as
    /// a session that never existed.
    pub async fn revoke_session(&self, user_id: Uuid, chain_id: Uuid) -> Result<(), AuthError> {
        let user = self.active_user(user_id).await?;
        let revoked = self
            .store
            .revoke_chain(user_id, chain_id, user.session_epoch, self.clock.now())
            .await?;
        if !revoked {
            return Err(AuthError::NotFound);
        }
        info!(user_id = %user_id, chain_id = %chain_id, "session revoked");
        let ended = Happened::new(user_id, EventKind::SessionEnded)
            .with("session", chain_id)
            .with("by", "session list");
        self.record(ended).await;
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
