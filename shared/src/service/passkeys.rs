//! Passkeys (WebAuthn): adding, listing, renaming and removing them, signing in with one, and
//! one as the second factor of a password sign-in.
//!
//! Every ceremony has two calls. The first stores webauthn-rs-core's state under the SHA-256 of
//! a fresh `ceremony_id` (five minutes, bound to the user's epoch); the second takes it with one
//! conditional delete, so it works once, and a reset, a password change or "log out
//! everywhere" in between ends it.
//!
//! Sign-in options never list credential ids, with or without an email, so they tell nothing
//! about an address; an email only narrows which account may answer. A passkey that verified
//! its user (PIN, biometrics) is a full sign-in (`amr: ["pop", "mfa"]`); one that did not is one
//! factor (`["pop"]`), which an account with TOTP completes with a code. A signature counter
//! that goes backwards refuses the sign-in and tells the user by mail.

use std::sync::Arc;

use tracing::{info, warn};
use uuid::Uuid;

use super::email::{new_opaque_token, plausible_opaque_token};
use super::history::Happened;
use super::mfa::SignIn;
use super::throttle::ip_subject;
use super::{AuthError, AuthService, SignedIn, invalid_token};
use crate::clock::UnixTime;
use crate::mail::Mail;
use crate::model::{
    Amr, CeremonyKind, EventKind, MAX_PASSKEYS, PendingCeremony, StoredPasskey, User,
};
use crate::passkeys::{Assertion, CEREMONY_TTL_SECS, PasskeyError, RelyingParty, Started};
use crate::passwords::Password;
use crate::store::{ChallengePassed, PasskeyAdded, SpentCode};
use crate::tokens::token_hash;

/// How recent a sign-in stands in for the password before a passkey is added or removed.
pub const FRESH_SIGN_IN_SECS: i64 = 600;
/// The longest passkey name, in characters.
pub const MAX_PASSKEY_NAME_CHARS: usize = 64;
/// Sign-in ceremonies one address may start per window (the login budget's window).
const CEREMONIES_PER_IP: u32 = 60;

/// A passkey as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyInfo {
    pub id: String,
    pub name: String,
    pub created_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
    pub backed_up: bool,
    pub transports: Vec<String>,
}

impl PasskeyInfo {
    fn of(id: &str, passkey: &StoredPasskey) -> Self {
        Self {
            id: id.to_owned(),
            name: passkey.name.clone(),
            created_at: passkey.created_at,
            last_used_at: passkey.last_used_at,
            backed_up: passkey.backed_up,
            transports: passkey.transports.clone(),
        }
    }
}

/// The first call of a ceremony: its id and the options for the browser.
#[derive(Debug, Clone)]
pub struct Ceremony {
    pub ceremony_id: String,
    pub public_key: serde_json::Value,
}

/// A passkey's name as given: trimmed, 1 to [`MAX_PASSKEY_NAME_CHARS`] characters, no control
/// characters.
pub fn passkey_name(raw: &str) -> Option<String> {
    let name = raw.trim();
    let fits = (1..=MAX_PASSKEY_NAME_CHARS).contains(&name.chars().count());
    (fits && !name.chars().any(char::is_control)).then(|| name.to_owned())
}

fn refused(e: PasskeyError) -> AuthError {
    match e {
        PasskeyError::Corrupt(detail) | PasskeyError::Config(detail) => AuthError::Internal(detail),
        PasskeyError::Rejected(reason) => {
            info!(%reason, "passkey answer refused");
            AuthError::PasskeyRefused
        }
        PasskeyError::CounterWentBack => AuthError::PasskeyRefused,
    }
}

/// The key a second factor's ceremony is stored under: one per `mfa_token`, so that the
/// `/auth/mfa/verify` call finds it by the token alone.
fn second_factor_ceremony(challenge_hash: &str) -> String {
    token_hash(&format!("second-factor:{challenge_hash}"))
}

impl AuthService {
    /// The same service, with passkeys for this relying party.
    pub fn with_relying_party(mut self, relying_party: Arc<RelyingParty>) -> Self {
        self.relying_party = Some(relying_party);
        self
    }

    fn relying_party(&self) -> Result<&RelyingParty, AuthError> {
        self.relying_party
            .as_deref()
            .ok_or_else(|| AuthError::Internal("this function holds no WebAuthn settings".into()))
    }

    /// Whether this function offers passkeys (as a second factor, in `methods`).
    pub(crate) fn offers_passkeys(&self) -> bool {
        self.relying_party.is_some()
    }

    /// A fresh factor for adding or removing a passkey: the password, or a sign-in (this
    /// session's start) in the last [`FRESH_SIGN_IN_SECS`].
    pub(super) async fn fresh_factor(
        &self,
        user: &User,
        chain_id: Uuid,
        password: Option<&Password>,
        now: UnixTime,
    ) -> Result<(), AuthError> {
        if let Some(password) = password {
            return self.reauthenticate(user, chain_id, password).await;
        }
        let chains = self.store.chains_of(user.id, now).await?;
        let fresh = chains.iter().any(|c| {
            c.chain_id == chain_id
                && c.epoch == user.session_epoch
                && c.created_at + FRESH_SIGN_IN_SECS >= now
        });
        if fresh {
            Ok(())
        } else {
            Err(AuthError::FreshFactorRequired)
        }
    }

    /// Stores a ceremony's state; `owner` (a user id and epoch) is who may finish it.
    async fn store_ceremony(
        &self,
        kind: CeremonyKind,
        owner: Option<(Uuid, u64)>,
        challenge_hash: Option<String>,
        started: Started,
        now: UnixTime,
    ) -> Result<Ceremony, AuthError> {
        let ceremony_id = new_opaque_token()?;
        let id_hash = match &challenge_hash {
            Some(challenge) => second_factor_ceremony(challenge),
            None => token_hash(&ceremony_id),
        };
        let ceremony = PendingCeremony {
            id_hash,
            kind,
            user_id: owner.map(|(id, _)| id),
            epoch: owner.map_or(0, |(_, epoch)| epoch),
            challenge_hash,
            state: started.state,
            created_at: now,
            expires_at: now + CEREMONY_TTL_SECS,
        };
        self.store.create_ceremony(&ceremony).await?;
        Ok(Ceremony {
            ceremony_id,
            public_key: started.public_key,
        })
    }

    /// Takes the ceremony of this id and kind: it works once, and dies with its user's epoch.
    async fn take_ceremony(
        &self,
        id_hash: &str,
        kind: CeremonyKind,
        now: UnixTime,
    ) -> Result<PendingCeremony, AuthError> {
        self.store
            .take_ceremony(id_hash, now)
            .await?
            .filter(|c| c.kind == kind)
            .ok_or_else(|| invalid_token("ceremony unknown, used or expired"))
    }

    fn ceremony_hash(ceremony_id: &str) -> Result<String, AuthError> {
        if plausible_opaque_token(ceremony_id) {
            Ok(token_hash(ceremony_id))
        } else {
            Err(invalid_token("not a ceremony_id"))
        }
    }

    /// `POST /auth/passkeys/register/options`: creation options for a new passkey. Needs a
    /// verified address and a fresh factor.
    pub async fn passkey_registration_options(
        &self,
        user_id: Uuid,
        chain_id: Uuid,
        password: Option<&Password>,
    ) -> Result<Ceremony, AuthError> {
        let relying_party = self.relying_party()?;
        let user = self.active_user(user_id).await?;
        if !user.email_verified {
            return Err(AuthError::EmailUnverified);
        }
        let now = self.clock.now();
        self.fresh_factor(&user, chain_id, password, now).await?;
        if user.passkeys.len() >= MAX_PASSKEYS {
            return Err(AuthError::TooManyPasskeys);
        }
        let exclude = user
            .passkeys
            .values()
            .filter_map(|p| crate::passkeys::raw_credential_id(&p.credential))
            .collect();
        let started = relying_party
            .start_registration(user.id, &user.email, exclude)
            .map_err(refused)?;
        let owner = Some((user.id, user.session_epoch));
        self.store_ceremony(CeremonyKind::Registration, owner, None, started, now)
            .await
    }

    /// `POST /auth/passkeys/register`: checks the authenticator's answer and keeps the
    /// passkey; the user is told by mail.
    pub async fn register_passkey(
        &self,
        user_id: Uuid,
        ceremony_id: &str,
        credential: &serde_json::Value,
        name: Option<&str>,
    ) -> Result<PasskeyInfo, AuthError> {
        let relying_party = self.relying_party()?;
        let now = self.clock.now();
        let id_hash = Self::ceremony_hash(ceremony_id)?;
        let ceremony = self
            .take_ceremony(&id_hash, CeremonyKind::Registration, now)
            .await?;
        let user = self.active_user(user_id).await?;
        if ceremony.user_id != Some(user.id) || ceremony.epoch != user.session_epoch {
            return Err(invalid_token("ceremony of another user or epoch"));
        }
        let registered = relying_party
            .finish_registration(credential, &ceremony.state)
            .map_err(refused)?;
        let passkey = StoredPasskey {
            name: name.unwrap_or("Passkey").to_owned(),
            created_at: now,
            last_used_at: None,
            backed_up: registered.backed_up,
            transports: registered.transports,
            credential: registered.credential,
        };
        match self
            .store
            .add_passkey(user.id, ceremony.epoch, &registered.id, &passkey)
            .await?
        {
            PasskeyAdded::Added => {}
            PasskeyAdded::Taken => return Err(AuthError::PasskeyTaken),
            PasskeyAdded::Refused if user.passkeys.len() >= MAX_PASSKEYS => {
                return Err(AuthError::TooManyPasskeys);
            }
            PasskeyAdded::Refused => {
                return Err(invalid_token("the epoch moved during the ceremony"));
            }
        }
        info!(user_id = %user.id, "passkey added");
        self.record(Happened::new(user.id, EventKind::PasskeyAdded).with("passkey", &passkey.name))
            .await;
        match self.outbox() {
            Some(outbox) => outbox.send(
                Mail::PasskeyAdded {
                    name: &passkey.name,
                },
                &user.email,
            ),
            None => warn!("no mail for a new passkey: this function holds no mailer"),
        }
        Ok(PasskeyInfo::of(&registered.id, &passkey))
    }

    /// `GET /auth/passkeys`.
    pub async fn passkeys(&self, user_id: Uuid) -> Result<Vec<PasskeyInfo>, AuthError> {
        let user = self.active_user(user_id).await?;
        let mut passkeys: Vec<PasskeyInfo> = user
            .passkeys
            .iter()
            .map(|(id, passkey)| PasskeyInfo::of(id, passkey))
            .collect();
        passkeys.sort_by_key(|p| p.created_at);
        Ok(passkeys)
    }

    /// `PATCH /auth/passkeys/{id}`.
    pub async fn rename_passkey(
        &self,
        user_id: Uuid,
        id: &str,
        name: &str,
    ) -> Result<PasskeyInfo, AuthError> {
        let user = self.active_user(user_id).await?;
        if !user.passkeys.contains_key(id)
            || !self
                .store
                .rename_passkey(user.id, id, name, self.clock.now())
                .await?
        {
            return Err(AuthError::PasskeyNotFound);
        }
        let user = self.active_user(user_id).await?;
        let passkey = user.passkeys.get(id).ok_or(AuthError::PasskeyNotFound)?;
        Ok(PasskeyInfo::of(id, passkey))
    }

    /// `DELETE /auth/passkeys/{id}`: needs a fresh factor, and refuses to remove the account's
    /// only way in.
    pub async fn remove_passkey(
        &self,
        user_id: Uuid,
        chain_id: Uuid,
        id: &str,
        password: Option<&Password>,
    ) -> Result<(), AuthError> {
        let user = self.active_user(user_id).await?;
        if !user.passkeys.contains_key(id) {
            return Err(AuthError::PasskeyNotFound);
        }
        if !user.has_password() && user.passkeys.len() == 1 {
            return Err(AuthError::LastCredential);
        }
        let now = self.clock.now();
        self.fresh_factor(&user, chain_id, password, now).await?;
        if !self.store.remove_passkey(user.id, id, now).await? {
            // Removed or made the last one meanwhile: read again to say which.
            let user = self.active_user(user_id).await?;
            return Err(if user.passkeys.contains_key(id) {
                AuthError::LastCredential
            } else {
                AuthError::PasskeyNotFound
            });
        }
        info!(user_id = %user.id, "passkey removed");
        self.record(Happened::new(user.id, EventKind::PasskeyRemoved))
            .await;
        Ok(())
    }

    /// `POST /auth/passkeys/login/options`: a sign-in ceremony, counted per source IP. With an
    /// email, only that account's passkeys may answer it; the options are the same either way.
    pub async fn passkey_sign_in_options(
        &self,
        email: Option<&str>,
        source_ip: Option<&str>,
    ) -> Result<Ceremony, AuthError> {
        let relying_party = self.relying_party()?;
        let now = self.clock.now();
        self.charge_ceremony(source_ip, now).await?;
        let owner = match email {
            Some(email) => {
                let email =
                    crate::validation::normalize_email(email).map_err(AuthError::InvalidEmail)?;
                // An unknown address gets a ceremony that no passkey can finish, looking the
                // same as any other.
                Some(match self.store.user_by_email(&email).await? {
                    Some(user) => (user.id, user.session_epoch),
                    None => (Uuid::new_v4(), 0),
                })
            }
            None => None,
        };
        let started = relying_party.start_authentication(&[]).map_err(refused)?;
        self.store_ceremony(CeremonyKind::SignIn, owner, None, started, now)
            .await
    }

    async fn charge_ceremony(
        &self,
        source_ip: Option<&str>,
        now: UnixTime,
    ) -> Result<(), AuthError> {
        let Some(ip) = source_ip.and_then(ip_subject) else {
            return Ok(());
        };
        let (index, window_end) = super::throttle::window(now);
        let key = format!("passkey-ip:{ip}:{index}");
        if self
            .store
            .take_from_window(&key, CEREMONIES_PER_IP, window_end)
            .await?
        {
            Ok(())
        } else {
            info!(
                reason = "ip ceremony budget spent",
                "passkey sign-in throttled"
            );
            Err(AuthError::TooManyRequests {
                retry_after_secs: (window_end - now) as u64,
            })
        }
    }

    /// Checks an assertion for `user`'s passkey it names, and records the new counter. A
    /// counter that went backwards tells the user by mail.
    async fn check_assertion(
        &self,
        user: &User,
        assertion: &Assertion,
        state: &str,
        now: UnixTime,
    ) -> Result<bool, AuthError> {
        let relying_party = self.relying_party()?;
        let id = assertion.credential_id();
        let passkey = user.passkeys.get(&id).ok_or(AuthError::PasskeyRefused)?;
        let asserted =
            match relying_party.finish_authentication(assertion, state, &passkey.credential) {
                Ok(asserted) => asserted,
                Err(PasskeyError::CounterWentBack) => {
                    warn!(user_id = %user.id, "passkey counter went backwards: sign-in refused");
                    match self.outbox() {
                        Some(outbox) => outbox.send(
                            Mail::PasskeyCloned {
                                name: &passkey.name,
                            },
                            &user.email,
                        ),
                        None => {
                            warn!("no mail for a cloned passkey: this function holds no mailer")
                        }
                    }
                    return Err(AuthError::PasskeyRefused);
                }
                Err(e) => return Err(refused(e)),
            };
        if !self
            .store
            .use_passkey(
                user.id,
                &id,
                &passkey.credential,
                &asserted.credential,
                asserted.backed_up,
                now,
            )
            .await?
        {
            info!(user_id = %user.id, "passkey used or removed meanwhile");
            return Err(AuthError::PasskeyRefused);
        }
        Ok(asserted.user_verified)
    }

    /// `POST /auth/passkeys/login`: a session (with a `device_token`), or with TOTP on and a
    /// passkey that did not verify its user, a challenge for the code.
    pub async fn passkey_sign_in(
        &self,
        ceremony_id: &str,
        credential: &serde_json::Value,
    ) -> Result<SignIn, AuthError> {
        let now = self.clock.now();
        let id_hash = Self::ceremony_hash(ceremony_id)?;
        let ceremony = self
            .take_ceremony(&id_hash, CeremonyKind::SignIn, now)
            .await?;
        let assertion = Assertion::parse(credential).map_err(refused)?;
        let owner = self
            .store
            .passkey_owner(&assertion.credential_id())
            .await?
            .ok_or(AuthError::PasskeyRefused)?;
        let named = assertion.user_handle().map_err(refused)?;
        if named.is_some_and(|named| named != owner) {
            return Err(AuthError::PasskeyRefused);
        }
        if ceremony.user_id.is_some_and(|user_id| user_id != owner) {
            return Err(AuthError::PasskeyRefused);
        }
        let user = match self.store.user_by_id(owner).await? {
            Some(user) => user,
            None => return Err(AuthError::PasskeyRefused),
        };
        if ceremony.user_id.is_some() && ceremony.epoch != user.session_epoch {
            return Err(invalid_token("the epoch moved during the ceremony"));
        }
        let verified = self
            .check_assertion(&user, &assertion, &ceremony.state, now)
            .await;
        crate::metrics::sign_in(verified.is_ok());
        let verified = verified?;
        if !user.is_active {
            return Err(AuthError::AccountDisabled);
        }
        if !verified && user.mfa.mfa_enabled {
            return self.challenge_after(&user, Amr::Pop, None, now).await;
        }
        let amr = if verified {
            vec![Amr::Pop, Amr::Mfa]
        } else {
            vec![Amr::Pop]
        };
        info!(user_id = %user.id, user_verified = verified, "signed in with a passkey");
        let signed_in = self.start_session(user, now, amr, None).await?;
        Ok(SignIn::SignedIn(Box::new(signed_in)))
    }

    /// `POST /auth/mfa/passkey/options`: a ceremony for the passkeys of the user an `mfa_token`
    /// (from the password) is waiting for.
    pub async fn second_factor_passkey_options(
        &self,
        mfa_token: &str,
    ) -> Result<Ceremony, AuthError> {
        let relying_party = self.relying_party()?;
        let (challenge, user) = self.live_challenge(mfa_token).await?;
        if !challenge.passkey_may_finish() || user.passkeys.is_empty() {
            return Err(AuthError::PasskeyRefused);
        }
        let credentials: Vec<&str> = user
            .passkeys
            .values()
            .map(|p| p.credential.as_str())
            .collect();
        let started = relying_party
            .start_authentication(&credentials)
            .map_err(refused)?;
        let now = self.clock.now();
        self.store_ceremony(
            CeremonyKind::SecondFactor,
            Some((user.id, user.session_epoch)),
            Some(challenge.token_hash.clone()),
            started,
            now,
        )
        .await
    }

    /// `POST /auth/mfa/verify` with a passkey: finishes a password sign-in, `amr: ["pwd",
    /// "pop", "mfa"]`. Counted against the challenge like a code.
    pub async fn verify_mfa_passkey(
        &self,
        mfa_token: &str,
        credential: &serde_json::Value,
    ) -> Result<SignedIn, AuthError> {
        let now = self.clock.now();
        let (challenge, user) = self.live_challenge(mfa_token).await?;
        if !self
            .store
            .charge_challenge(&challenge.token_hash, now)
            .await?
        {
            return Err(invalid_token("mfa_token spent or out of attempts"));
        }
        let ceremony = self
            .take_ceremony(
                &second_factor_ceremony(&challenge.token_hash),
                CeremonyKind::SecondFactor,
                now,
            )
            .await?;
        if ceremony.user_id != Some(user.id) || ceremony.epoch != user.session_epoch {
            return Err(invalid_token("ceremony of another user or epoch"));
        }
        let assertion = Assertion::parse(credential).map_err(refused)?;
        self.check_assertion(&user, &assertion, &ceremony.state, now)
            .await?;
        match self
            .store
            .pass_challenge(&challenge, &SpentCode::Passkey, now)
            .await?
        {
            ChallengePassed::Passed => {}
            ChallengePassed::ChallengeGone | ChallengePassed::CodeSpent => {
                return Err(invalid_token("mfa_token spent or dead meanwhile"));
            }
        }
        info!(user_id = %user.id, "second factor: a passkey");
        self.start_session(user, now, vec![Amr::Pwd, Amr::Pop, Amr::Mfa], None)
            .await
    }
}
