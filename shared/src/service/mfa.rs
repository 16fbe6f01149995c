//! Two-factor sign-in with TOTP (RFC 6238) and recovery codes.
//!
//! Enrolment takes the current password; TOTP is on only once a first code confirms the secret.
//! With TOTP on, the right password answers a challenge (`mfa_token`: single use, five minutes,
//! dead after five wrong codes, bound to its user) instead of a session; a code finishes it.
//!
//! Every code works once: a TOTP step is accepted only if it is later than every step accepted
//! before, and a recovery code only while it is in the set, each decided by a conditional write
//! (together with spending the challenge), not by a read before a write. Wrong codes count per
//! user across challenges, so a stolen password does not let anyone grind codes.

use std::sync::Arc;

use tracing::{info, warn};
use uuid::Uuid;

use super::email::{new_opaque_token, plausible_opaque_token};
use super::{AuthError, AuthService, SignedIn, invalid_token};
use crate::clock::UnixTime;
use crate::mfa::{
    MfaKeys, TotpCode, is_totp_code, new_recovery_codes, new_secret, normalize_recovery_code,
    recovery_code_hash, secret_base32,
};
use crate::model::{Amr, MfaChallenge, User};
use crate::passwords::{Password, Verification};
use crate::store::{ChallengePassed, SpentCode};
use crate::tokens::token_hash;

/// How long an `mfa_token` lives.
pub const MFA_TOKEN_TTL_SECS: i64 = 300;
/// Wrong codes a user may enter per window, across challenges and routes.
const WRONG_CODES_PER_WINDOW: u32 = 10;
const WRONG_CODES_WINDOW_SECS: i64 = 900;

/// A one-time code as a request presents it, its shape already checked.
#[derive(Clone, PartialEq, Eq)]
pub enum MfaCode {
    Totp(String),
    /// In its normal form.
    Recovery(String),
}

// Codes are credentials: never in a log.
impl std::fmt::Debug for MfaCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MfaCode::Totp(_) => "MfaCode::Totp([redacted])",
            MfaCode::Recovery(_) => "MfaCode::Recovery([redacted])",
        })
    }
}

impl MfaCode {
    /// A TOTP code: six ASCII digits.
    pub fn totp(code: &str, field: &'static str) -> Result<Self, AuthError> {
        if is_totp_code(code) {
            Ok(MfaCode::Totp(code.to_owned()))
        } else {
            Err(AuthError::MalformedCode { field })
        }
    }

    /// A recovery code: twelve characters of its alphabet, dashes and case aside.
    pub fn recovery(code: &str, field: &'static str) -> Result<Self, AuthError> {
        normalize_recovery_code(code)
            .map(MfaCode::Recovery)
            .ok_or(AuthError::MalformedCode { field })
    }

    /// A TOTP code or a recovery code, told apart by their shape.
    pub fn either(code: &str, field: &'static str) -> Result<Self, AuthError> {
        Self::totp(code, field).or_else(|_| Self::recovery(code, field))
    }
}

/// What `setup` answers: the secret three ways, for an authenticator app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpEnrolment {
    /// Base32, to type in.
    pub secret: String,
    pub otpauth_uri: String,
    pub qr_svg: String,
}

/// A sign-in that needs its second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaRequired {
    pub mfa_token: String,
    pub expires_in: i64,
}

/// What a right password leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    SignedIn(Box<SignedIn>),
    MfaRequired(MfaRequired),
}

impl SignIn {
    /// The session, when no second factor was needed.
    pub fn signed_in(self) -> Option<SignedIn> {
        match self {
            SignIn::SignedIn(signed_in) => Some(*signed_in),
            SignIn::MfaRequired(_) => None,
        }
    }
}

impl AuthService {
    /// The same service, sealing and opening TOTP secrets with `keys`.
    pub fn with_mfa_keys(mut self, keys: Arc<MfaKeys>) -> Self {
        self.mfa_keys = Some(keys);
        self
    }

    fn mfa_keys(&self) -> Result<&MfaKeys, AuthError> {
        self.mfa_keys
            .as_deref()
            .ok_or_else(|| AuthError::Internal("this function holds no MFA key".into()))
    }

    /// How authenticator apps name this service: the host of `JWT_ISSUER`.
    fn totp_issuer(&self) -> &str {
        let issuer = &self.config.issuer;
        let rest = issuer.split_once("://").map_or(issuer.as_str(), |(_, r)| r);
        let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    }

    fn totp_of(&self, user: &User, secret: &[u8]) -> Result<TotpCode, AuthError> {
        TotpCode::new(secret, self.totp_issuer(), &user.email)
            .map_err(|e| AuthError::Internal(e.to_string()))
    }

    /// After the right password: a challenge for the second factor.
    pub(crate) async fn challenge(&self, user: &User, now: UnixTime) -> Result<SignIn, AuthError> {
        let token = new_opaque_token()?;
        let challenge = MfaChallenge {
            token_hash: token_hash(&token),
            user_id: user.id,
            created_at: now,
            expires_at: now + MFA_TOKEN_TTL_SECS,
            failures: 0,
        };
        self.store.create_challenge(&challenge).await?;
        info!(user_id = %user.id, "second factor required");
        Ok(SignIn::MfaRequired(MfaRequired {
            mfa_token: token,
            expires_in: MFA_TOKEN_TTL_SECS,
        }))
    }

    /// Charges one code attempt to the user, or refuses it: more than ten wrong codes in 15
    /// minutes is `429`, whichever challenges or routes they came through.
    async fn charge_code(&self, user_id: Uuid, now: UnixTime) -> Result<String, AuthError> {
        let index = now.div_euclid(WRONG_CODES_WINDOW_SECS);
        let window_end = (index + 1) * WRONG_CODES_WINDOW_SECS;
        let key = format!("mfa-codes:{user_id}:{index}");
        if self
            .store
            .take_from_window(&key, WRONG_CODES_PER_WINDOW, window_end)
            .await?
        {
            Ok(key)
        } else {
            info!(user_id = %user_id, "codes throttled");
            Err(AuthError::TooManyRequests {
                retry_after_secs: (window_end - now) as u64,
            })
        }
    }

    /// A right code does not count against the user's budget.
    async fn refund_code(&self, key: &str) {
        if let Err(e) = self.store.give_back_to_window(key).await {
            warn!(error = %e, "could not give back a code attempt");
        }
    }

    /// The code as the store will spend it, if it is right for `user` now (not yet knowing
    /// whether a concurrent request spends it first).
    fn check_code(
        &self,
        user: &User,
        code: &MfaCode,
        now: UnixTime,
    ) -> Result<Option<SpentCode>, AuthError> {
        match code {
            MfaCode::Totp(code) => {
                let Some(sealed) = &user.mfa.totp else {
                    return Ok(None);
                };
                let secret = self
                    .mfa_keys()?
                    .open(user.id, sealed)
                    .map_err(|e| AuthError::Internal(e.to_string()))?;
                let step = self.totp_of(user, &secret)?.check(code, now);
                Ok(step
                    .filter(|step| *step > user.mfa.totp_last_step)
                    .map(|step| SpentCode::Totp { step }))
            }
            MfaCode::Recovery(normalized) => {
                let hash = recovery_code_hash(normalized);
                Ok(user
                    .mfa
                    .recovery_codes
                    .contains_key(&hash)
                    .then_some(SpentCode::Recovery { hash }))
            }
        }
    }

    /// The password of a signed-in user, checked and throttled like a login.
    async fn check_password(
        &self,
        user: &User,
        password: &Password,
        source_ip: Option<&str>,
    ) -> Result<(), AuthError> {
        let charged = self
            .charge_login(&user.email, source_ip, None, self.clock.now())
            .await?;
        let verification = self
            .passwords
            .verify(password, Some(&user.password_hash))
            .await;
        let right = matches!(verification, Ok(Verification::Match { .. }));
        self.settle_login(charged, right).await;
        if !right {
            verification?;
            return Err(AuthError::InvalidCredentials);
        }
        Ok(())
    }

    /// `POST /auth/mfa/totp/setup`: a new secret for an authenticator app; nothing is on yet.
    pub async fn totp_setup(
        &self,
        user_id: Uuid,
        password: &Password,
        source_ip: Option<&str>,
    ) -> Result<TotpEnrolment, AuthError> {
        let user = self.active_user(user_id).await?;
        if user.mfa.mfa_enabled {
            return Err(AuthError::MfaAlreadyEnabled);
        }
        self.check_password(&user, password, source_ip).await?;
        let secret = new_secret().map_err(|e| AuthError::Internal(e.to_string()))?;
        let sealed = self
            .mfa_keys()?
            .seal(user.id, &secret)
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        if !self
            .store
            .set_pending_totp(user.id, &sealed, self.clock.now())
            .await?
        {
            return Err(AuthError::MfaAlreadyEnabled);
        }
        let totp = self.totp_of(&user, &secret)?;
        let enrolment = TotpEnrolment {
            secret: secret_base32(&secret),
            otpauth_uri: totp
                .otpauth_uri()
                .map_err(|e| AuthError::Internal(e.to_string()))?,
            qr_svg: totp
                .qr_svg()
                .map_err(|e| AuthError::Internal(e.to_string()))?,
        };
        info!(user_id = %user.id, "TOTP enrolment started");
        Ok(enrolment)
    }

    /// `POST /auth/mfa/totp/confirm`: a first valid code turns TOTP on; the answer is the
    /// recovery codes, shown this once.
    pub async fn totp_confirm(
        &self,
        user_id: Uuid,
        code: &MfaCode,
    ) -> Result<Vec<String>, AuthError> {
        let MfaCode::Totp(code) = code else {
            return Err(AuthError::MalformedCode { field: "code" });
        };
        let user = self.active_user(user_id).await?;
        if user.mfa.mfa_enabled {
            return Err(AuthError::MfaAlreadyEnabled);
        }
        let Some(pending) = user.mfa.totp_pending.clone() else {
            return Err(AuthError::MfaSetupRequired);
        };
        let now = self.clock.now();
        let charged = self.charge_code(user.id, now).await?;
        let secret = self
            .mfa_keys()?
            .open(user.id, &pending)
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        let Some(step) = self.totp_of(&user, &secret)?.check(code, now) else {
            return Err(AuthError::InvalidCode);
        };
        let codes = new_recovery_codes().map_err(|e| AuthError::Internal(e.to_string()))?;
        let hashes = recovery_hashes(&codes);
        if !self
            .store
            .enable_totp(user.id, &pending, step, &hashes, now)
            .await?
        {
            // Another setup replaced the secret meanwhile, or a concurrent confirm won.
            return Err(AuthError::MfaSetupRequired);
        }
        self.refund_code(&charged).await;
        info!(user_id = %user.id, "TOTP turned on");
        Ok(codes)
    }

    /// `DELETE /auth/mfa/totp`: the password and a code (TOTP or recovery) turn TOTP off.
    pub async fn totp_disable(
        &self,
        user_id: Uuid,
        password: &Password,
        code: &MfaCode,
        source_ip: Option<&str>,
    ) -> Result<(), AuthError> {
        let user = self.active_user(user_id).await?;
        if !user.mfa.mfa_enabled {
            return Err(AuthError::MfaNotEnabled);
        }
        self.check_password(&user, password, source_ip).await?;
        self.spend_users_code(&user, code, None).await?;
        info!(user_id = %user.id, "TOTP turned off");
        Ok(())
    }

    /// `POST /auth/mfa/recovery-codes`: a code (TOTP or recovery) for a new set; the old set
    /// stops working.
    pub async fn regenerate_recovery_codes(
        &self,
        user_id: Uuid,
        code: &MfaCode,
    ) -> Result<Vec<String>, AuthError> {
        let user = self.active_user(user_id).await?;
        if !user.mfa.mfa_enabled {
            return Err(AuthError::MfaNotEnabled);
        }
        let codes = new_recovery_codes().map_err(|e| AuthError::Internal(e.to_string()))?;
        self.spend_users_code(&user, code, Some(&recovery_hashes(&codes)))
            .await?;
        info!(user_id = %user.id, "recovery codes replaced");
        Ok(codes)
    }

    /// Checks and spends a code of a signed-in user, with what goes with it.
    async fn spend_users_code(
        &self,
        user: &User,
        code: &MfaCode,
        new_recovery: Option<&[String]>,
    ) -> Result<(), AuthError> {
        let now = self.clock.now();
        let charged = self.charge_code(user.id, now).await?;
        let Some(spent) = self.check_code(user, code, now)? else {
            return Err(AuthError::InvalidCode);
        };
        if !self
            .store
            .spend_code(user.id, &spent, new_recovery, now)
            .await?
        {
            return Err(AuthError::InvalidCode);
        }
        self.refund_code(&charged).await;
        Ok(())
    }

    /// `POST /auth/mfa/verify`: finishes a sign-in with a TOTP or a recovery code. The session
    /// carries `amr: ["pwd", "otp"]`.
    pub async fn verify_mfa(&self, mfa_token: &str, code: &MfaCode) -> Result<SignedIn, AuthError> {
        if !plausible_opaque_token(mfa_token) {
            return Err(invalid_token("not an mfa_token"));
        }
        let now = self.clock.now();
        let challenge = self
            .store
            .challenge(&token_hash(mfa_token), now)
            .await?
            .ok_or_else(|| invalid_token("mfa_token unknown, spent, dead or expired"))?;
        let user = self.active_user(challenge.user_id).await?;
        if !user.mfa.mfa_enabled {
            return Err(invalid_token("TOTP is off for this user"));
        }
        let charged = self.charge_code(user.id, now).await?;
        let Some(spent) = self.check_code(&user, code, now)? else {
            self.store
                .fail_challenge(&challenge.token_hash, now)
                .await?;
            info!(user_id = %user.id, "wrong second factor");
            return Err(AuthError::InvalidCode);
        };
        match self.store.pass_challenge(&challenge, &spent, now).await? {
            ChallengePassed::Passed => {}
            ChallengePassed::ChallengeGone => {
                return Err(invalid_token("mfa_token spent or dead meanwhile"));
            }
            ChallengePassed::CodeSpent => {
                self.store
                    .fail_challenge(&challenge.token_hash, now)
                    .await?;
                info!(user_id = %user.id, "second factor replayed");
                return Err(AuthError::InvalidCode);
            }
        }
        self.refund_code(&charged).await;
        if matches!(spent, SpentCode::Recovery { .. }) {
            info!(user_id = %user.id, "signed in with a recovery code");
        }
        self.start_session(user, now, vec![Amr::Pwd, Amr::Otp], None)
            .await
    }
}

fn recovery_hashes(codes: &[String]) -> Vec<String> {
    codes
        .iter()
        .filter_map(|c| normalize_recovery_code(c))
        .map(|c| recovery_code_hash(&c))
        .collect()
}
