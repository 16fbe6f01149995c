//! The WebAuthn relying party: the options of each ceremony and the checks of what an
//! authenticator answers, all made by webauthn-rs-core. Nothing here parses WebAuthn data.
//!
//! webauthn-rs's passkey wrapper requires user verification in every ceremony. The API also
//! takes a passkey that only proves presence (a security key without a PIN): such a sign-in is
//! one factor (`amr: ["pop"]`), which an account with TOTP still completes with a code. So this
//! module drives the core directly, with verification preferred, and reports per ceremony
//! whether the authenticator verified the user.
//!
//! A ceremony's state lives in the store between its two calls (see `service::passkeys`), as
//! the JSON this module gives and takes back.

use std::time::Duration;

use url::Url;
use uuid::Uuid;
use webauthn_rs_core::WebauthnCore;
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AuthenticationState, Credential, CredentialID, PublicKeyCredential,
    RegisterPublicKeyCredential, RegistrationState, ResidentKeyRequirement, UserVerificationPolicy,
};

/// How long a browser waits for the authenticator; the stored ceremony lives as long.
pub const CEREMONY_TTL_SECS: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// `WEBAUTHN_RP_ID` or `WEBAUTHN_ORIGINS` cannot work.
    #[error("WebAuthn relying party: {0}")]
    Config(String),
    /// The authenticator's answer does not verify: wrong challenge, origin, RP ID, signature,
    /// or not the credential the ceremony allowed.
    #[error("the authenticator's answer does not verify: {0}")]
    Rejected(String),
    /// The signature counter did not move forward on a credential that keeps one.
    #[error("the signature counter went backwards: the credential may have been cloned")]
    CounterWentBack,
    /// Stored state or a stored credential that does not read back.
    #[error("stored WebAuthn data: {0}")]
    Corrupt(String),
}

/// What a finished registration gives: the credential to keep, and what lists it.
#[derive(Debug, Clone)]
pub struct Registered {
    /// As [`credential_id`] encodes it.
    pub id: String,
    /// The credential as webauthn-rs-core keeps it (public key, counter, flags), as JSON.
    pub credential: String,
    pub backed_up: bool,
    pub transports: Vec<String>,
}

/// What a finished sign-in ceremony gives.
#[derive(Debug, Clone)]
pub struct Asserted {
    /// Whether the authenticator verified the user (PIN, biometrics), in this ceremony.
    pub user_verified: bool,
    /// The credential with its new counter and backup state, as JSON.
    pub credential: String,
    pub backed_up: bool,
}

/// Options for the browser (`publicKey` of `navigator.credentials.create` or `.get`, binary
/// fields base64url) and the state to keep until the answer comes.
#[derive(Debug, Clone)]
pub struct Started {
    pub public_key: serde_json::Value,
    pub state: String,
}

pub struct RelyingParty {
    core: WebauthnCore,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingParty")
            .field("origins", &self.core.get_allowed_origins())
            .finish()
    }
}

/// A credential id as the API names a passkey: base64url without padding.
pub fn credential_id(raw: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

impl RelyingParty {
    /// The relying party `rp_id` (a domain: browsers refuse IP addresses) for pages served
    /// from `origins`.
    pub fn new(rp_id: &str, origins: &[Url], rp_name: &str) -> Result<Self, PasskeyError> {
        if origins.is_empty() {
            return Err(PasskeyError::Config("no origin".into()));
        }
        if url::Host::parse(rp_id).map_or(true, |host| !matches!(host, url::Host::Domain(_))) {
            return Err(PasskeyError::Config(format!("{rp_id:?} is not a domain")));
        }
        for origin in origins {
            let effective = origin.domain().unwrap_or_default();
            let suffix = effective == rp_id || effective.ends_with(&format!(".{rp_id}"));
            if !suffix {
                return Err(PasskeyError::Config(format!(
                    "the origin {origin} is not on the RP ID {rp_id}"
                )));
            }
        }
        let core = WebauthnCore::new_unsafe_experts_only(
            rp_name,
            rp_id,
            origins.to_vec(),
            Duration::from_secs(CEREMONY_TTL_SECS as u64),
            Some(false),
            Some(false),
        );
        Ok(Self { core })
    }

    /// Creation options for a new passkey of `user_id`, which the authenticator is asked to
    /// keep as a discoverable credential, none of `exclude` (the user's passkeys) again.
    pub fn start_registration(
        &self,
        user_id: Uuid,
        email: &str,
        exclude: Vec<CredentialID>,
    ) -> Result<Started, PasskeyError> {
        let builder = self
            .core
            .new_challenge_register_builder(user_id.as_bytes(), email, email)
            .map_err(rejected)?
            .user_verification_policy(UserVerificationPolicy::Preferred)
            .exclude_credentials(Some(exclude));
        let (mut options, state) = self
            .core
            .generate_challenge_register(builder)
            .map_err(rejected)?;
        // A hint, not a check: a discoverable credential allows a sign-in without an email.
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Preferred);
            selection.require_resident_key = false;
        }
        Ok(Started {
            public_key: json(&options.public_key)?,
            state: serde_json::to_string(&state).map_err(corrupt)?,
        })
    }

    /// Checks a registration answer (`PublicKeyCredential.toJSON()`) against its state.
    pub fn finish_registration(
        &self,
        answer: &serde_json::Value,
        state: &str,
    ) -> Result<Registered, PasskeyError> {
        let answer: RegisterPublicKeyCredential =
            serde_json::from_value(answer.clone()).map_err(rejected)?;
        let state: RegistrationState = serde_json::from_str(state).map_err(corrupt)?;
        let credential = self
            .core
            .register_credential(&answer, &state, None)
            .map_err(rejected)?;
        registered(&credential)
    }

    /// Request options: for `credentials` (JSON, as stored) when the user is known, or a
    /// discoverable ceremony when it is empty.
    pub fn start_authentication(&self, credentials: &[&str]) -> Result<Started, PasskeyError> {
        let credentials = credentials
            .iter()
            .map(|c| serde_json::from_str::<Credential>(c).map_err(corrupt))
            .collect::<Result<Vec<_>, _>>()?;
        let builder = self
            .core
            .new_challenge_authenticate_builder(
                credentials,
                Some(UserVerificationPolicy::Preferred),
            )
            .map_err(rejected)?;
        let (options, state) = self
            .core
            .generate_challenge_authenticate(builder)
            .map_err(rejected)?;
        Ok(Started {
            public_key: json(&options.public_key)?,
            state: serde_json::to_string(&state).map_err(corrupt)?,
        })
    }

    /// Checks a sign-in answer against its state and the stored `credential` it names.
    pub fn finish_authentication(
        &self,
        answer: &Assertion,
        state: &str,
        credential: &str,
    ) -> Result<Asserted, PasskeyError> {
        let state: AuthenticationState = serde_json::from_str(state).map_err(corrupt)?;
        let mut stored: Credential = serde_json::from_str(credential).map_err(corrupt)?;
        let result = self
            .core
            .authenticate_single_credential(&answer.0, &state, &stored)
            .map_err(|e| match e {
                WebauthnError::CredentialPossibleCompromise => PasskeyError::CounterWentBack,
                other => rejected(other),
            })?;
        if result.counter() > stored.counter {
            stored.counter = result.counter();
        }
        stored.backup_state = result.backup_state();
        stored.backup_eligible |= result.backup_eligible();
        Ok(Asserted {
            user_verified: result.user_verified(),
            backed_up: stored.backup_state,
            credential: serde_json::to_string(&stored).map_err(corrupt)?,
        })
    }
}

/// A sign-in answer (`PublicKeyCredential.toJSON()` of `navigator.credentials.get`), read.
#[derive(Debug, Clone)]
pub struct Assertion(PublicKeyCredential);

impl Assertion {
    pub fn parse(answer: &serde_json::Value) -> Result<Self, PasskeyError> {
        serde_json::from_value(answer.clone())
            .map(Assertion)
            .map_err(rejected)
    }

    /// The credential it names, as [`credential_id`] encodes it.
    pub fn credential_id(&self) -> String {
        credential_id(self.0.raw_id.as_ref())
    }

    /// The user the authenticator names (a discoverable credential's user handle), if any;
    /// one that is not a user id of ours is refused.
    pub fn user_handle(&self) -> Result<Option<Uuid>, PasskeyError> {
        self.0
            .get_user_unique_id()
            .map(|handle| Uuid::from_slice(handle).map_err(rejected))
            .transpose()
    }
}

/// The raw id of a stored credential (JSON, as [`Registered::credential`] gives it).
pub fn raw_credential_id(credential: &str) -> Option<CredentialID> {
    serde_json::from_str::<Credential>(credential)
        .ok()
        .map(|c| c.cred_id)
}

fn registered(credential: &Credential) -> Result<Registered, PasskeyError> {
    let transports = credential
        .transports
        .iter()
        .flatten()
        .filter_map(|t| serde_json::to_value(t).ok())
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    Ok(Registered {
        id: credential_id(credential.cred_id.as_ref()),
        credential: serde_json::to_string(credential).map_err(corrupt)?,
        backed_up: credential.backup_state,
        transports,
    })
}

fn json(value: &impl serde::Serialize) -> Result<serde_json::Value, PasskeyError> {
    serde_json::to_value(value).map_err(corrupt)
}

fn rejected(e: impl std::fmt::Display) -> PasskeyError {
    PasskeyError::Rejected(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> PasskeyError {
    PasskeyError::Corrupt(e.to_string())
}
