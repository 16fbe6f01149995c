//! Tokens from trusted external issuers, such as a Better Auth server's JWT plugin.
//!
//! A token whose `iss` is exactly a configured issuer is verified against that issuer's JWK
//! Set, fetched from its configured `jwks_uri` (HTTPS, or plain HTTP to loopback for tests),
//! never from anything the token names (`jku`, `x5u`, `jwk` are ignored). Keys are cached in the
//! warm instance for ten minutes; an unknown `kid` triggers one refetch, at most once a minute
//! per issuer, so a flood of bogus `kid`s cannot hammer the issuer; and a failed fetch keeps the
//! cached keys working.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::sync::Mutex;
use tracing::{info, warn};

use super::jws::{self, JwsAlgorithm, JwsError};
use super::keys::{JwkSet, VerifyingKey};
use super::{LEEWAY_SECS, TokenError};
use crate::clock::UnixTime;
use crate::config::{ExternalAlgorithm, TrustedIssuer};

/// How long fetched keys are trusted without asking again.
pub const KEYS_TTL_SECS: i64 = 600;
/// The least time between two fetches of one issuer's keys.
pub const REFETCH_COOLDOWN_SECS: i64 = 60;
/// A JWK Set larger than this is refused.
const MAX_JWKS_BYTES: usize = 64 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

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
    /// Held across a fetch, so concurrent requests wait for one fetch instead of starting many.
    cache: Mutex<KeyCache>,
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
            .map(|config| Issuer {
                config: config.clone(),
                algorithms: config.algorithms.iter().copied().map(algorithm).collect(),
                cache: Mutex::default(),
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
        let kid = compact
            .header
            .kid
            .as_deref()
            .ok_or(TokenError::UnknownKey)?;
        let key = self
            .key(issuer, kid, now)
            .await
            .ok_or(TokenError::UnknownKey)?;
        if key.algorithm() != compact.algorithm
            || !key.verify(compact.signing_input, &compact.signature)
        {
            return Err(TokenError::BadSignature);
        }
        check_claims(&issuer.config, &claims, now)
    }

    /// The issuer's key `kid`, fetching the JWK Set when the cache is stale or lacks the key,
    /// within the cooldown.
    async fn key(&self, issuer: &Issuer, kid: &str, now: UnixTime) -> Option<VerifyingKey> {
        let mut cache = issuer.cache.lock().await;
        let cached = cache.keys.iter().find(|k| k.kid() == kid).cloned();
        let fresh = cache.fetched_at.is_some_and(|at| now - at < KEYS_TTL_SECS);
        if cached.is_some() && fresh {
            return cached;
        }
        let may_fetch = cache
            .last_attempt
            .is_none_or(|at| now - at >= REFETCH_COOLDOWN_SECS);
        if !may_fetch {
            return cached;
        }
        cache.last_attempt = Some(now);
        match self.fetch(issuer).await {
            Ok(keys) => {
                info!(issuer = %issuer.config.issuer, keys = keys.len(), "fetched external JWK Set");
                cache.keys = keys;
                cache.fetched_at = Some(now);
            }
            // Keep the keys we have: an issuer outage must not lock its users out.
            Err(e) => {
                warn!(issuer = %issuer.config.issuer, error = %e, "could not fetch external JWK Set")
            }
        }
        cache.keys.iter().find(|k| k.kid() == kid).cloned()
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
        Ok(keys)
    }
}

/// `iss` exact, `aud` (a string or a list) containing ours, `exp` required, `nbf` and `iat`
/// respected, the user id claim present.
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
    if now >= exp + LEEWAY_SECS {
        return Err(TokenError::Expired);
    }
    if time("nbf")?.is_some_and(|nbf| nbf > now + LEEWAY_SECS)
        || time("iat")?.is_some_and(|iat| iat > now + LEEWAY_SECS)
    {
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
