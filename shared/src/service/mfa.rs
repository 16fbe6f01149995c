//! Two-factor sign-in with TOTP (RFC 6238) and recovery codes.
//!
//! Enrolment takes the current password; TOTP is on only once a first code confirms the secret.
//! With TOTP on, the right password answers a challenge (`mfa_token`: single use, five minutes,
//! dead after five wrong codes, bound to its user) instead of a session; a code finishes it.
//!
//! Every code works once: a TOTP step is accepted only if it is later than every step accepted
//! before, and a recovery code only while it is in the set, each decided by a conditional write
//! (together with spending the challenge), not by a read before a write. Codes are counted per
//! user across challenges and routes, before they are checked, with a wait that grows like the
//! login lockout and a mail to the user at the fifth wrong one, so a stolen password does not
//! let anyone grind codes (SECURITY.md states the worst case).
//!
//! Enrolment needs a verified address; turning TOTP off and new recovery codes need the
//! password and a code (see `reauth`).

use std::sync::Arc;

use tracing::{info, warn};
use uuid::Uuid;

use super::email::{new_opaque_token, plausible_opaque_token};
use super::history::Happened;
use super::throttle::LockoutCharge;
use super::{AuthError, AuthService, SignedIn, invalid_token};
use crate::clock::UnixTime;
use crate::mail::Mail;
use crate::mfa::{
    MfaKeys, TotpCode, is_totp_code, new_recovery_codes, new_secret, normalize_recovery_code,
    secret_base32,
};
use crate::model::{Amr, EventKind, Federated, MfaChallenge, User};
use crate::passwords::Password;
use crate::store::{AlongWithCode, ChallengePassed, SpentCode};
use crate::tokens::token_hash;

/// How long an `mfa_token` lives.
pub const MFA_TOKEN_TTL_SECS: i64 = 300;
/// Wrong codes in a row after which each further code waits, and the user is told by mail.
pub const MFA_MAX_FAILURES: u32 = 5;
/// The first wait, doubling with each further wrong code up to [`MFA_MAX_LOCK_SECS`].
const MFA_FIRST_LOCK_SECS: i64 = 60;
pub const MFA_MAX_LOCK_SECS: i64 = 86_400;
/// A user's wrong-code count is forgotten this long after its last wait ends.
const MFA_FAILURE_MEMORY_SECS: i64 = 7 * 86_400;

/// The wait after `failures` wrong codes: none before the fifth, then one minute, doubling, up
/// to a day.
pub fn mfa_lock_secs(failures: u32) -> i64 {
    if failures < MFA_MAX_FAILURES {
        return 0;
    }
    let doublings = (failures - MFA_MAX_FAILURES).min(20);
    (MFA_FIRST_LOCK_SECS << doublings).min(MFA_MAX_LOCK_SECS)
}

pub(super) fn code_counter_key(user_id: Uuid) -> String {
    format!("mfa-codes:{user_id}")
}

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
    /// What may finish it: `totp`, `recovery_code`, and `passkey` after a password when the
    /// account has one.
    pub methods: Vec<&'static str>,
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

    /// After the right password: a challenge for the second factor, bound to the user's epoch.
    pub(crate) async fn challenge(&self, user: &User, now: UnixTime) -> Result<SignIn, AuthError> {
        self.challenge_after(user, Amr::Pwd, None, now).await
    }

    /// After a first factor (the password, or a passkey that did not verify its user): a
    /// challenge for the second.
    pub(crate) async fn challenge_after(
        &self,
        user: &User,
        first_factor: Amr,
        federated: Option<Federated>,
        now: UnixTime,
    ) -> Result<SignIn, AuthError> {
        let token = new_opaque_token()?;
        let challenge = MfaChallenge {
            token_hash: token_hash(&token),
            user_id: user.id,
            created_at: now,
            expires_at: now + MFA_TOKEN_TTL_SECS,
            failures: 0,
            epoch: user.session_epoch,
            first_factor,
            federated,
        };
        self.store.create_challenge(&challenge).await?;
        info!(user_id = %user.id, "second factor required");
        let mut methods = vec!["totp", "recovery_code"];
        if challenge.passkey_may_finish() && !user.passkeys.is_empty() && self.offers_passkeys() {
            methods.push("passkey");
        }
        Ok(SignIn::MfaRequired(MfaRequired {
            mfa_token: token,
            expires_in: MFA_TOKEN_TTL_SECS,
            methods,
        }))
    }

    /// Charges one code to the user before it is checked, or refuses it while the user waits
    /// after repeated wrong codes (whichever challenges or routes they came through).
    async fn charge_code(&self, user: &User, now: UnixTime) -> Result<CodeCharge, AuthError> {
        let key = code_counter_key(user.id);
        let charge = self
            .charge_lockout(&key, mfa_lock_secs, MFA_FAILURE_MEMORY_SECS, now)
            .await
            .inspect_err(|_| info!(user_id = %user.id, "codes throttled"))?;
        Ok(CodeCharge {
            key,
            charge,
            email: user.email.clone(),
        })
    }

    /// Settles a charged code: a right one is taken back; the fifth wrong one in a row tells
    /// the user by mail that someone has their password.
    async fn settle_code(&self, charge: CodeCharge, right: bool, now: UnixTime) {
        if right {
            self.refund_lockout(&charge.key, &charge.charge, MFA_FAILURE_MEMORY_SECS, now)
                .await;
            return;
        }
        if charge.charge.failures == MFA_MAX_FAILURES {
            match self.outbox() {
                Some(outbox) => outbox.send(Mail::SecondFactorFailures, &charge.email),
                None => warn!("no mail for repeated wrong codes: this function holds no mailer"),
            }
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
            MfaCode::Recovery(normalized) => Ok(self
                .mfa_keys()?
                .recovery_code_candidates(user.id, normalized)
                .into_iter()
                .find(|hash| user.mfa.recovery_codes.contains_key(hash))
                .map(|hash| SpentCode::Recovery { hash })),
        }
    }

    fn recovery_hashes(&self, user_id: Uuid, codes: &[String]) -> Result<Vec<String>, AuthError> {
        let keys = self.mfa_keys()?;
        Ok(codes
            .iter()
            .filter_map(|c| normalize_recovery_code(c))
            .map(|c| keys.recovery_code_hash(user_id, &c))
            .collect())
    }

    /// `POST /auth/mfa/totp/setup`: a new secret for an authenticator app; nothing is on yet.
    /// Needs a verified address and the password.
    pub async fn totp_setup(
        &self,
        user_id: Uuid,
        chain_id: Uuid,
        password: &Password,
    ) -> Result<TotpEnrolment, AuthError> {
        let user = self.active_user(user_id).await?;
        if user.mfa.mfa_enabled {
            return Err(AuthError::MfaAlreadyEnabled);
        }
        if !user.email_verified {
            return Err(AuthError::EmailUnverified);
        }
        self.reauthenticate(&user, chain_id, password).await?;
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
        if !user.email_verified {
            return Err(AuthError::EmailUnverified);
        }
        let Some(pending) = user.mfa.totp_pending.clone() else {
            return Err(AuthError::MfaSetupRequired);
        };
        let now = self.clock.now();
        let charge = self.charge_code(&user, now).await?;
        let secret = self
            .mfa_keys()?
            .open(user.id, &pending)
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        let Some(step) = self.totp_of(&user, &secret)?.check(code, now) else {
            self.settle_code(charge, false, now).await;
            return Err(AuthError::InvalidCode);
        };
        let codes = new_recovery_codes().map_err(|e| AuthError::Internal(e.to_string()))?;
        let hashes = self.recovery_hashes(user.id, &codes)?;
        if !self
            .store
            .enable_totp(user.id, &pending, step, &hashes, now)
            .await?
        {
            // Another setup replaced the secret meanwhile, or a concurrent confirm won.
            return Err(AuthError::MfaSetupRequired);
        }
        self.settle_code(charge, true, now).await;
        info!(user_id = %user.id, "TOTP turned on");
        self.record(Happened::new(user.id, EventKind::MfaEnabled))
            .await;
        Ok(codes)
    }

    /// `DELETE /auth/mfa/totp`: the password and a code (TOTP or recovery) turn TOTP off.
    pub async fn totp_disable(
        &self,
        user_id: Uuid,
        chain_id: Uuid,
        password: &Password,
        code: &MfaCode,
    ) -> Result<(), AuthError> {
        let user = self.active_user(user_id).await?;
        if !user.mfa.mfa_enabled {
            return Err(AuthError::MfaNotEnabled);
        }
        self.reauthenticate(&user, chain_id, password).await?;
        self.spend_users_code(&user, code, AlongWithCode::TotpOff)
            .await?;
        info!(user_id = %user.id, "TOTP turned off");
        self.record(Happened::new(user.id, EventKind::MfaDisabled))
            .await;
        Ok(())
    }

    /// `POST /auth/mfa/recovery-codes`: the password and a code (TOTP or recovery) for a new
    /// set; the old set stops working.
    pub async fn regenerate_recovery_codes(
        &self,
        user_id: Uuid,
        chain_id: Uuid,
        password: &Password,
        code: &MfaCode,
    ) -> Result<Vec<String>, AuthError> {
        let user = self.active_user(user_id).await?;
        if !user.mfa.mfa_enabled {
            return Err(AuthError::MfaNotEnabled);
        }
        self.reauthenticate(&user, chain_id, password).await?;
        let codes = new_recovery_codes().map_err(|e| AuthError::Internal(e.to_string()))?;
        let hashes = self.recovery_hashes(user.id, &codes)?;
        self.spend_users_code(&user, code, AlongWithCode::NewRecoveryCodes(&hashes))
            .await?;
        info!(user_id = %user.id, "recovery codes replaced");
        self.record(Happened::new(user.id, EventKind::RecoveryCodesRegenerated))
            .await;
        Ok(codes)
    }

    /// Checks and spends a code of a signed-in user, with what goes with it (TOTP off, or a new
    /// set of recovery codes).
    pub(crate) async fn spend_users_code(
        &self,
        user: &User,
        code: &MfaCode,
        along: AlongWithCode<'_>,
    ) -> Result<(), AuthError> {
        let now = self.clock.now();
        let charge = self.charge_code(user, now).await?;
        let spent = match self.check_code(user, code, now)? {
            Some(spent) => self.store.spend_code(user.id, &spent, along, now).await?,
            None => false,
        };
        self.settle_code(charge, spent, now).await;
        if !spent {
            return Err(AuthError::InvalidCode);
        }
        Ok(())
    }

    /// The challenge an `mfa_token` names, with its user, while both are live and at one epoch.
    pub(super) async fn live_challenge(
        &self,
        mfa_token: &str,
    ) -> Result<(MfaChallenge, User), AuthError> {
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
        if !user.mfa.mfa_enabled || user.session_epoch != challenge.epoch {
            return Err(invalid_token(
                "TOTP off, or the epoch moved since the first factor",
            ));
        }
        Ok((challenge, user))
    }

    /// `POST /auth/mfa/verify`: finishes a sign-in with a TOTP or a recovery code. The session
    /// carries `amr: ["pwd", "otp"]`. Each code is counted against the challenge before it is
    /// checked, so however many arrive at once, at most five are checked.
    pub async fn verify_mfa(&self, mfa_token: &str, code: &MfaCode) -> Result<SignedIn, AuthError> {
        let now = self.clock.now();
        let (challenge, user) = self.live_challenge(mfa_token).await?;
        if !self
            .store
            .charge_challenge(&challenge.token_hash, now)
            .await?
        {
            return Err(invalid_token("mfa_token spent or out of attempts"));
        }
        let charge = self.charge_code(&user, now).await?;
        let Some(spent) = self.check_code(&user, code, now)? else {
            self.settle_code(charge, false, now).await;
            info!(user_id = %user.id, "wrong second factor");
            return Err(AuthError::InvalidCode);
        };
        match self.store.pass_challenge(&challenge, &spent, now).await? {
            ChallengePassed::Passed => {}
            ChallengePassed::ChallengeGone => {
                self.settle_code(charge, true, now).await;
                return Err(invalid_token("mfa_token spent or dead meanwhile"));
            }
            ChallengePassed::CodeSpent => {
                // The code was right but spent meanwhile (a double submit, or a replay of one
                // seen): no guess, so it is not counted as one.
                self.settle_code(charge, true, now).await;
                info!(user_id = %user.id, "second factor replayed");
                return Err(AuthError::InvalidCode);
            }
        }
        self.settle_code(charge, true, now).await;
        if matches!(spent, SpentCode::Recovery { .. }) {
            info!(user_id = %user.id, "signed in with a recovery code");
        }
        let (amr, idp) = challenge.finished_with(&[Amr::Otp]);
        self.start_session_via(user, now, amr, idp, None).await
    }
}

/// A code charged to its user, waiting to be settled.
struct CodeCharge {
    key: String,
    /// The user's codes counted with this one.
    charge: LockoutCharge,
    email: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_after_wrong_codes_doubles_from_a_minute_to_a_day() {
        let waits: Vec<i64> = (1..=18).map(mfa_lock_secs).collect();
        assert_eq!(
            waits,
            [
                0, 0, 0, 0, 60, 120, 240, 480, 960, 1920, 3840, 7680, 15360, 30720, 61440, 86400,
                86400, 86400
            ]
        );
        assert_eq!(mfa_lock_secs(u32::MAX), MFA_MAX_LOCK_SECS);
    }

    /// The most wrong codes one account can take in a year: an attacker ramps up to `k` wrong
    /// codes as fast as the waits allow, then lets the count be forgotten, over and over (`k`
    /// large enough is guessing without a pause, once a day). SECURITY.md quotes this bound.
    fn guesses_a_year(k: u32) -> f64 {
        let ramp: i64 = (1..k).map(mfa_lock_secs).sum();
        let cycle = ramp + mfa_lock_secs(k) + MFA_FAILURE_MEMORY_SECS;
        f64::from(k) * (365.0 * 86_400.0) / cycle as f64
    }

    #[test]
    fn a_year_of_guessing_has_under_one_percent_chance() {
        let (best, guesses) = (1..=400)
            .map(|k| (k, guesses_a_year(k)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        // Three time steps are accepted at once, each a 1-in-10^6 guess; recovery codes (60 bits
        // each) add nothing measurable.
        let chance = guesses * 3.0e-6;
        assert!(
            chance < 0.01,
            "k = {best}: {guesses:.0} guesses, {chance:.4}"
        );
        assert!(
            (600.0..700.0).contains(&guesses) && best == 14,
            "SECURITY.md says 663 guesses (k = 14); now k = {best}, {guesses:.0}"
        );
    }
}
