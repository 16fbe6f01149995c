//! Another party's JWK Set (an external issuer's, an OpenID provider's), fetched from its
//! configured URI only, never from anything a token names (`jku`, `x5u`, `jwk` are ignored).
//!
//! Keys are cached in the warm instance for ten minutes; an unknown `kid` triggers one refetch,
//! at most once a minute, so a flood of bogus `kid`s cannot hammer the party; and a failed
//! fetch keeps the cached keys working. A set with a `kid` twice is refused as a failed fetch.
//!
//! The cache is never locked across the network: a request whose key is cached never waits
//! for a fetch, even a slow one; requests that need a fetch wait for one shared fetch.

use std::sync::Mutex as SyncMutex;

use tokio::sync::Mutex;
use tracing::{info, warn};

use super::TokenError;
use super::jws::{Compact, JwsAlgorithm};
use super::keys::{JwkSet, VerifyingKey, is_valid_kid};
use crate::clock::UnixTime;
use crate::outbound::{FetchError, Outbound};

/// How long fetched keys are trusted without asking again.
pub const KEYS_TTL_SECS: i64 = 600;
/// The least time between two fetches of one party's keys.
pub const REFETCH_COOLDOWN_SECS: i64 = 60;

#[derive(Debug, Default)]
struct KeyCache {
    keys: Vec<VerifyingKey>,
    fetched_at: Option<UnixTime>,
    last_attempt: Option<UnixTime>,
}

/// One party's keys of the allowed algorithms.
#[derive(Debug)]
pub struct RemoteKeys {
    jwks_uri: String,
    algorithms: Vec<JwsAlgorithm>,
    /// Locked only to read or replace the keys, never across a fetch.
    cache: SyncMutex<KeyCache>,
    /// Held across a fetch, so requests that need one wait for one instead of starting many.
    fetching: Mutex<()>,
}

impl RemoteKeys {
    pub fn new(jwks_uri: impl Into<String>, algorithms: Vec<JwsAlgorithm>) -> Self {
        Self {
            jwks_uri: jwks_uri.into(),
            algorithms,
            cache: SyncMutex::default(),
            fetching: Mutex::default(),
        }
    }

    pub fn algorithms(&self) -> &[JwsAlgorithm] {
        &self.algorithms
    }

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

    /// The key `kid`, fetching the JWK Set when the cache is stale or lacks the key, within the
    /// cooldown.
    pub async fn key(&self, outbound: &Outbound, kid: &str, now: UnixTime) -> Option<VerifyingKey> {
        let (cached, fresh) = self.cached(kid, now);
        if cached.is_some() && fresh {
            return cached;
        }
        // A key we have never waits for a fetch: if another request is refreshing, use it.
        let _fetching = match &cached {
            Some(_) => match self.fetching.try_lock() {
                Ok(guard) => guard,
                Err(_) => return cached,
            },
            None => self.fetching.lock().await,
        };
        // The fetch we waited for may have brought the key.
        let (cached, fresh) = self.cached(kid, now);
        if (cached.is_some() && fresh) || !self.may_fetch(now) {
            return cached;
        }
        match self.fetch(outbound).await {
            Ok(keys) => {
                info!(jwks_uri = %self.jwks_uri, keys = keys.len(), "fetched a JWK Set");
                self.store(keys, now);
            }
            // Keep the keys we have: a party's outage must not lock its users out.
            Err(e) => warn!(jwks_uri = %self.jwks_uri, error = %e, "could not fetch a JWK Set"),
        }
        self.cached(kid, now).0
    }

    /// The key that must have signed `compact`: the one its `kid` names (a `kid` of valid
    /// syntax, in the set), of the token's algorithm.
    pub async fn signer_of(
        &self,
        outbound: &Outbound,
        compact: &Compact<'_>,
        now: UnixTime,
    ) -> Result<VerifyingKey, TokenError> {
        let kid = compact
            .header
            .kid
            .as_deref()
            .filter(|kid| is_valid_kid(kid))
            .ok_or(TokenError::UnknownKey)?;
        let key = self
            .key(outbound, kid, now)
            .await
            .ok_or(TokenError::UnknownKey)?;
        if key.algorithm() != compact.algorithm {
            return Err(TokenError::BadSignature);
        }
        Ok(key)
    }

    /// Fetches and parses the JWK Set, keeping the keys of the allowed algorithms.
    async fn fetch(&self, outbound: &Outbound) -> Result<Vec<VerifyingKey>, FetchError> {
        let body = outbound.get_json(&self.jwks_uri).await?;
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|e| FetchError(format!("not a JWK Set: {e}")))?;
        let keys: Vec<VerifyingKey> = set
            .keys
            .iter()
            .filter_map(|jwk| VerifyingKey::from_jwk(jwk).ok())
            .filter(|key| self.algorithms.contains(&key.algorithm()))
            .collect();
        if keys.is_empty() {
            return Err(FetchError("no usable key in the JWK Set".into()));
        }
        // A kid twice makes the set ambiguous: which key a token names is the attacker's pick.
        let mut kids: Vec<&str> = set.keys.iter().filter_map(|k| k.kid.as_deref()).collect();
        kids.sort_unstable();
        if kids.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(FetchError("a kid appears twice in the JWK Set".into()));
        }
        Ok(keys)
    }
}
