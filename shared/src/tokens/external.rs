//! Tokens from trusted external issuers, such as a Better Auth server's JWT plugin.
//!
//! A token whose `iss` is exactly a configured issuer is verified against that issuer's JWK
//! Set, fetched from its configured `jwks_uri` (HTTPS, or plain HTTP to loopback for tests),
//! never from anything the token names (`jku`, `x5u`, `jwk` are ignored). Keys are cached in the
//! warm instance for ten minutes; an unknown `kid` triggers one refetch, at most once a minute
//! per issuer, so a flood of bogus `kid`s cannot hammer the issuer; and a failed fetch keeps the
//! cached keys working. A JWK Set over 64 KiB, a redirect, an answer slower than the fetch
//! timeout or a set with a `kid` twice is refused as a failed fetch.
//!
//! The cache is never locked across the network: a request whose key is cached never waits
//! for a fetch, even a slow one; requests that need a fetch wait for one shared fetch.
//!
//! `jsonwebtoken` checks the signature, `alg`, `iss` and `aud`. Ours, around it: the checks of
//! [`jws::parse`], the issuer's algorithm allowlist and `typ` values, `kid` syntax, and after it
//! the time claims against the injected clock (the crate's read the system clock), `iat`
//! required and `exp` at most `max_token_lifetime_seconds` past it, the user id claim.

use std::sync::{Mutex as SyncMutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::Validation;
use serde_json::Value;
use tokio::sync::Mutex;
use tracing::{info, warn};

use super::jws::{self, JwsAlgorithm, JwsError};
use super::keys::{JwkSet, VerifyingKey, is_valid_kid};
use super::{LEEWAY_SECS, TokenError, from_crate_error};
use crate::clock::UnixTime;
use crate::config::{ExternalAlgorithm, TrustedIssuer};

/// How long fetched keys are trusted without asking again.
pub const KEYS_TTL_SECS: i64 = 600;
/// The least time between two fetches of one issuer's keys.
pub const REFETCH_COOLDOWN_SECS: i64 = 60;
/// A JWK Set larger than this is refused.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// A JWK Set answer slower than this is refused.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// Who an external token speaks for, as the authorizer passes it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    pub user_id: String,
    pub user_email: String,
    /// The token's `jti`, or its `sid`, or empty.
    pub session_id: String,
    pub issuer: String,
}

#[derive(Debug, Default)]
struct KeyCache {
    keys: Vec<VerifyingKey>,
    fetched_at: Option<UnixTime>,
    last_attempt: Option<UnixTime>,
}

#[derive(Debug)]
struct Issuer {
    config: TrustedIssuer,
    algorithms: Vec<JwsAlgorithm>,
    /// What `jsonwebtoken` checks, one per allowed algorithm (it wants the one of the key).
    validations: Vec<(JwsAlgorithm, Validation)>,
    /// Locked only to read or replace the keys, never across a fetch.
    cache: SyncMutex<KeyCache>,
    /// Held across a fetch, so requests that need one wait for one instead of starting many.
    fetching: Mutex<()>,
}

impl Issuer {
    /// The cached key `kid`, and whether the cache is fresh.
    fn cached(&self, kid: &str, now: UnixTime) -> (Option<VerifyingKey>, bool) {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let key = cache.keys.iter().find(|k| k.kid() == kid).cloned();
        let fresh = cache.fetched_at.is_some_and(|at| now - at < KEYS_TTL_SECS);
        (key, fresh)
    }

    /// Records a fetch attempt now, unless the cooldown forbids one.
    fn may_fetch(&self, now: UnixTime) -> bool {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let may = cache
            .last_attempt
            .is_none_or(|at| now - at >= REFETCH_COOLDOWN_SECS);
        if may {
            cache.last_attempt = Some(now);
        }
        may
    }

    fn store(&self, keys: Vec<VerifyingKey>, now: UnixTime) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.keys = keys;
        cache.fetched_at = Some(now);
    }

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

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Every configured external issuer.
#[derive(Debug, Default)]
pub struct ExternalIssuers {
    issuers: Vec<Issuer>,
    /// Built on first use: functions without external issuers never load TLS roots.
    client: OnceLock<Result<HttpsClient, String>>,
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
                    algorithms,
                    cache: SyncMutex::default(),
                    fetching: Mutex::default(),
                }
            })
            .collect();
        Self {
            issuers,
            client: OnceLock::new(),
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
        if !issuer.algorithms.contains(&compact.algorithm) {
            return Err(JwsError::AlgorithmNotAllowed.into());
        }
        // Ours: `typ` among the issuer's values (absent, `JWT` or `at+jwt` by default), so a
        // token of another kind from the same issuer (an ID token, `id+jwt`) is not taken for
        // an access token.
        if !issuer.config.accepts_typ(compact.header.typ.as_deref()) {
            return Err(TokenError::TypNotAccepted);
        }
        let kid = compact
            .header
            .kid
            .as_deref()
            .filter(|kid| is_valid_kid(kid))
            .ok_or(TokenError::UnknownKey)?;
        let key = self
            .key(issuer, kid, now)
            .await
            .ok_or(TokenError::UnknownKey)?;
        let validation = issuer
            .validation(compact.algorithm)
            .filter(|_| key.algorithm() == compact.algorithm)
            .ok_or(TokenError::BadSignature)?;
        // The crate: the signature, `alg` again, `iss`, `aud`, `exp` present.
        let claims = jsonwebtoken::decode::<Value>(token, key.decoding_key(), validation)
            .map_err(|e| from_crate_error(&e))?
            .claims;
        // Ours, after it.
        check_claims(&issuer.config, &claims, now)
    }

    /// The issuer's key `kid`, fetching the JWK Set when the cache is stale or lacks the key,
    /// within the cooldown.
    async fn key(&self, issuer: &Issuer, kid: &str, now: UnixTime) -> Option<VerifyingKey> {
        let (cached, fresh) = issuer.cached(kid, now);
        if cached.is_some() && fresh {
            return cached;
        }
        // A key we have never waits for a fetch: if another request is refreshing, use it.
        let _fetching = match &cached {
            Some(_) => match issuer.fetching.try_lock() {
                Ok(guard) => guard,
                Err(_) => return cached,
            },
            None => issuer.fetching.lock().await,
        };
        // The fetch we waited for may have brought the key.
        let (cached, fresh) = issuer.cached(kid, now);
        if (cached.is_some() && fresh) || !issuer.may_fetch(now) {
            return cached;
        }
        match self.fetch(issuer).await {
            Ok(keys) => {
                info!(issuer = %issuer.config.issuer, keys = keys.len(), "fetched external JWK Set");
                issuer.store(keys, now);
            }
            // Keep the keys we have: an issuer outage must not lock its users out.
            Err(e) => {
                warn!(issuer = %issuer.config.issuer, error = %e, "could not fetch external JWK Set")
            }
        }
        issuer.cached(kid, now).0
    }

    fn client(&self) -> Result<&HttpsClient, String> {
        self.client
            .get_or_init(|| {
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_native_roots()
                    .map_err(|e| format!("no TLS root certificates: {e}"))?
                    .https_or_http()
                    .enable_http1()
                    .build();
                Ok(Client::builder(TokioExecutor::new()).build(connector))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Fetches and parses the issuer's JWK Set, keeping the keys of its allowed algorithms.
    async fn fetch(&self, issuer: &Issuer) -> Result<Vec<VerifyingKey>, String> {
        let uri: hyper::Uri = issuer
            .config
            .jwks_uri
            .parse()
            .map_err(|e| format!("jwks_uri: {e}"))?;
        let request = hyper::Request::get(uri)
            .header("accept", "application/json")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let client = self.client()?;
        let body = tokio::time::timeout(FETCH_TIMEOUT, async {
            let response = client.request(request).await.map_err(|e| e.to_string())?;
            // Never followed: the configured URI is the only place keys come from.
            if response.status().is_redirection() {
                return Err(format!("redirect ({}) not followed", response.status()));
            }
            if !response.status().is_success() {
                return Err(format!("status {}", response.status()));
            }
            let body = Limited::new(response.into_body(), MAX_JWKS_BYTES);
            body.collect()
                .await
                .map(|b| b.to_bytes())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|_| "timed out".to_owned())??;
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|e| format!("not a JWK Set: {e}"))?;
        let keys: Vec<VerifyingKey> = set
            .keys
            .iter()
            .filter_map(|jwk| VerifyingKey::from_jwk(jwk).ok())
            .filter(|key| issuer.algorithms.contains(&key.algorithm()))
            .collect();
        if keys.is_empty() {
            return Err("no usable key in the JWK Set".into());
        }
        // A kid twice makes the set ambiguous: which key a token names is the attacker's pick.
        let mut kids: Vec<&str> = set.keys.iter().filter_map(|k| k.kid.as_deref()).collect();
        kids.sort_unstable();
        if kids.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err("a kid appears twice in the JWK Set".into());
        }
        Ok(keys)
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
