//! Tokens from trusted external issuers, such as a Better Auth server's JWT plugin.
//!
//! A token whose `iss` is exactly a configured issuer is verified against that issuer's JWK
//! Set, fetched from its configured `jwks_uri` through [`RemoteKeys`] (cached, refetched at
//! most once a minute for an unknown `kid`) over the bounded [`Outbound`] client (64 KiB, no
//! redirects, a timeout).
//!
//! `jsonwebtoken` checks the signature, `alg`, `iss` and `aud`. Ours, around it: the checks of
//! [`jws::parse`], the issuer's algorithm allowlist and `typ` values, `kid` syntax, and after it
//! the time claims against the injected clock (the crate's read the system clock), `iat`
//! required and `exp` at most `max_token_lifetime_seconds` past it, the user id claim.

use std::sync::Arc;

use jsonwebtoken::Validation;
use serde_json::Value;

use super::jws::{self, JwsAlgorithm, JwsError};
use super::remote_keys::RemoteKeys;
use super::{LEEWAY_SECS, TokenError, from_crate_error};
use crate::clock::UnixTime;
use crate::config::{ExternalAlgorithm, TrustedIssuer};
use crate::outbound::Outbound;

pub use super::remote_keys::{KEYS_TTL_SECS, REFETCH_COOLDOWN_SECS};
pub use crate::outbound::{FETCH_TIMEOUT, MAX_ANSWER_BYTES as MAX_JWKS_BYTES};

/// Who an external token speaks for, as the authorizer passes it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    pub user_id: String,
    pub user_email: String,
    /// The token's `jti`, or its `sid`, or empty.
    pub session_id: String,
    pub issuer: String,
}

#[derive(Debug)]
struct Issuer {
    config: TrustedIssuer,
    keys: RemoteKeys,
    /// What `jsonwebtoken` checks, one per allowed algorithm (it wants the one of the key).
    validations: Vec<(JwsAlgorithm, Validation)>,
}

impl Issuer {
    fn validation(&self, algorithm: JwsAlgorithm) -> Option<&Validation> {
        self.validations
            .iter()
            .find(|(a, _)| *a == algorithm)
            .map(|(_, v)| v)
    }
}

/// `jsonwebtoken`'s checks for one issuer and algorithm: `iss` and `aud` (a string, or a list
/// holding ours) and `exp` present. Its time checks are off: ours use the injected clock.
fn external_validation(config: &TrustedIssuer, algorithm: JwsAlgorithm) -> Validation {
    let mut validation = Validation::new(algorithm.into());
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&[&config.audience]);
    validation
}

/// Every configured external issuer.
#[derive(Debug, Default)]
pub struct ExternalIssuers {
    issuers: Vec<Issuer>,
    outbound: Arc<Outbound>,
}

fn algorithm(external: ExternalAlgorithm) -> JwsAlgorithm {
    match external {
        ExternalAlgorithm::EdDSA => JwsAlgorithm::EdDSA,
        ExternalAlgorithm::ES256 => JwsAlgorithm::ES256,
        ExternalAlgorithm::RS256 => JwsAlgorithm::RS256,
    }
}

/// The `iss` of a token, read before anything is verified: only to choose whose keys to try.
pub fn unverified_issuer(token: &str) -> Option<String> {
    let compact = jws::parse(token).ok()?;
    let claims: Value = serde_json::from_slice(&compact.payload).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

impl ExternalIssuers {
    pub fn new(configs: &[TrustedIssuer]) -> Self {
        let issuers = configs
            .iter()
            .map(|config| {
                let algorithms: Vec<JwsAlgorithm> =
                    config.algorithms.iter().copied().map(algorithm).collect();
                Issuer {
                    config: config.clone(),
                    validations: algorithms
                        .iter()
                        .map(|&a| (a, external_validation(config, a)))
                        .collect(),
                    keys: RemoteKeys::new(&config.jwks_uri, algorithms),
                }
            })
            .collect();
        Self {
            issuers,
            outbound: Arc::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    pub fn is_trusted(&self, issuer: &str) -> bool {
        self.issuers.iter().any(|i| i.config.issuer == issuer)
    }

    /// Verifies a token of a trusted external issuer.
    pub async fn verify(&self, token: &str, now: UnixTime) -> Result<ExternalIdentity, TokenError> {
        let compact = jws::parse(token)?;
        let claims: Value =
            serde_json::from_slice(&compact.payload).map_err(|_| TokenError::InvalidClaims)?;
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(TokenError::InvalidClaims)?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.config.issuer == iss)
            .ok_or(TokenError::WrongIssuer)?;
        if !issuer.keys.algorithms().contains(&compact.algorithm) {
            return Err(JwsError::AlgorithmNotAllowed.into());
        }
        // Ours: `typ` among the issuer's values (absent, `JWT` or `at+jwt` by default), so a
        // token of another kind from the same issuer (an ID token, `id+jwt`) is not taken for
        // an access token.
        if !issuer.config.accepts_typ(compact.header.typ.as_deref()) {
            return Err(TokenError::TypNotAccepted);
        }
        let key = issuer.keys.signer_of(&self.outbound, &compact, now).await?;
        let validation = issuer
            .validation(compact.algorithm)
            .ok_or(TokenError::BadSignature)?;
        // The crate: the signature, `alg` again, `iss`, `aud`, `exp` present.
        let claims = jsonwebtoken::decode::<Value>(token, key.decoding_key(), validation)
            .map_err(|e| from_crate_error(&e))?
            .claims;
        // Ours, after it.
        check_claims(&issuer.config, &claims, now)
    }
}

/// `iss` exact, `aud` (a string or a list) containing ours, `exp` required, `nbf` and `iat`
/// respected, `iat` required and `exp` at most the issuer's lifetime past it, the user id claim
/// present. `iss` and `aud` were the crate's to check too; checked again here, at no cost, so
/// this function alone states what an external token must be.
fn check_claims(
    config: &TrustedIssuer,
    claims: &Value,
    now: UnixTime,
) -> Result<ExternalIdentity, TokenError> {
    if claims.get("iss").and_then(Value::as_str) != Some(config.issuer.as_str()) {
        return Err(TokenError::WrongIssuer);
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => *aud == config.audience,
        Some(Value::Array(list)) => list
            .iter()
            .any(|a| a.as_str() == Some(config.audience.as_str())),
        _ => false,
    };
    if !audience_ok {
        return Err(TokenError::WrongAudience);
    }
    let time = |name: &str| -> Result<Option<i64>, TokenError> {
        match claims.get(name) {
            None => Ok(None),
            Some(value) => value.as_i64().map(Some).ok_or(TokenError::InvalidClaims),
        }
    };
    let exp = time("exp")?.ok_or(TokenError::InvalidClaims)?;
    if now >= exp.saturating_add(LEEWAY_SECS) {
        return Err(TokenError::Expired);
    }
    // A token without `iat` could be of any age; one living longer than the issuer allows is
    // not what a session's access token is (a leaked one would stay good for that long).
    let iat = time("iat")?.ok_or(TokenError::InvalidClaims)?;
    if exp.saturating_sub(iat) > config.max_token_lifetime_seconds {
        return Err(TokenError::LivesTooLong);
    }
    if time("nbf")?.is_some_and(|nbf| nbf > now + LEEWAY_SECS) || iat > now + LEEWAY_SECS {
        return Err(TokenError::NotYetValid);
    }
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    let user_id = text(&config.user_id_claim)
        .filter(|id| !id.is_empty() && id.len() <= 256)
        .ok_or(TokenError::InvalidClaims)?;
    Ok(ExternalIdentity {
        user_id,
        user_email: text(&config.email_claim).unwrap_or_default(),
        session_id: text("jti").or_else(|| text("sid")).unwrap_or_default(),
        issuer: config.issuer.clone(),
    })
}
