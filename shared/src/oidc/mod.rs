//! Signing in with an OpenID provider (Google, Microsoft Entra ID, Apple, any issuer): the
//! provider side of the flow. The service's side (login states, accounts, our codes) is in
//! `service::oidc`.
//!
//! - Discovery is read from `{issuer}/.well-known/openid-configuration`, whose `issuer` must be
//!   the configured one exactly; cached for an hour in the warm instance.
//! - `oauth2` builds the authorization request (PKCE S256, `state`, plus our `nonce`) and makes
//!   the code exchange, over the bounded [`Outbound`] client (no redirects, 64 KiB, timeout).
//! - `jsonwebtoken` checks the ID token's signature, `alg`, `iss` and `aud` against the
//!   provider's JWK Set ([`RemoteKeys`]: the discovered `jwks_uri` only). Ours, around it: the
//!   algorithm allowlist (asymmetric only: never `none`, never HMAC with the client secret),
//!   `kid`, and after it `nonce` (constant time), `azp`, `exp` and `iat` on the injected clock.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use jsonwebtoken::Validation;
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, CsrfToken, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use subtle::ConstantTimeEq;
use tracing::warn;

use crate::clock::UnixTime;
use crate::config::oidc::{ClientSecret, OidcProviderConfig, ResponseMode};
use crate::model::Amr;
use crate::outbound::{FetchError, Outbound};
use crate::tokens::jws::{self, JwsAlgorithm};
use crate::tokens::remote_keys::RemoteKeys;
use crate::tokens::{LEEWAY_SECS, TokenError, from_crate_error};

/// How long a discovery document is trusted without reading it again.
pub const DISCOVERY_TTL_SECS: i64 = 3_600;
/// An ID token issued longer ago than this is refused, whatever its `exp`: the code it came
/// with was just exchanged.
pub const MAX_ID_TOKEN_AGE_SECS: i64 = 600;

/// What went wrong on the provider's side. The texts are for logs, never for a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    #[error("no such provider")]
    UnknownProvider,
    /// Discovery, keys or the token endpoint could not be reached or made no sense.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The token endpoint refused the code (used, expired, another client's).
    #[error("the provider refused the code: {0}")]
    CodeRefused(String),
    #[error("ID token refused: {0}")]
    IdToken(String),
}

impl From<TokenError> for OidcError {
    fn from(e: TokenError) -> Self {
        OidcError::IdToken(e.to_string())
    }
}

/// The provider's discovery document, the parts we use.
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// RFC 9207: the provider sends `iss` with every authorization response.
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

/// The ID token beside the access token in the token endpoint's answer.
#[derive(Clone, Deserialize, Serialize)]
pub struct IdTokenField {
    id_token: String,
}

impl std::fmt::Debug for IdTokenField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdTokenField(redacted)")
    }
}

impl ExtraTokenFields for IdTokenField {}

type TokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;
type OauthClient = oauth2::Client<
    BasicErrorResponse,
    TokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// A provider as discovered: its endpoints as an `oauth2` client, and its keys.
#[derive(Debug)]
struct Discovered {
    client: OauthClient,
    keys: RemoteKeys,
    iss_parameter: bool,
    read_at: UnixTime,
}

#[derive(Debug)]
struct Provider {
    config: OidcProviderConfig,
    secret: ClientSecret,
    algorithms: Vec<JwsAlgorithm>,
    validations: Vec<(JwsAlgorithm, Validation)>,
    discovered: Mutex<Option<Arc<Discovered>>>,
    discovering: tokio::sync::Mutex<()>,
}

/// Who the provider says signed in, from a verified ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderIdentity {
    pub subject: String,
    pub email: Option<String>,
    /// The provider asserts it verified `email`.
    pub email_verified: bool,
    /// The provider's `amr` values that RFC 8176 registers.
    pub amr: Vec<Amr>,
}

/// What the authorization request needs from our login state.
pub struct AuthorizationRequest<'a> {
    pub callback: &'a str,
    pub state: &'a str,
    pub nonce: &'a str,
    /// Our PKCE verifier for the provider (43 to 128 characters).
    pub verifier: &'a str,
}

/// Every configured provider, with its secret.
#[derive(Debug, Default)]
pub struct OidcProviders {
    providers: Vec<Provider>,
    outbound: Arc<Outbound>,
}

fn algorithm(external: crate::config::ExternalAlgorithm) -> JwsAlgorithm {
    use crate::config::ExternalAlgorithm as A;
    match external {
        A::EdDSA => JwsAlgorithm::EdDSA,
        A::ES256 => JwsAlgorithm::ES256,
        A::RS256 => JwsAlgorithm::RS256,
    }
}

/// `jsonwebtoken`'s checks: the signature, `alg`, `iss`, `aud` (a string or a list holding our
/// client id), `exp`, `iat` and `sub` present. Its time checks are off: ours use the clock.
fn id_token_validation(config: &OidcProviderConfig, algorithm: JwsAlgorithm) -> Validation {
    let mut validation = Validation::new(algorithm.into());
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&[&config.client_id]);
    validation
}

impl OidcProviders {
    /// The providers of `configs`, each with its secret (`secrets[i]` for `configs[i]`, read
    /// from Secrets Manager or the configuration at cold start).
    pub fn new(configs: &[OidcProviderConfig], secrets: Vec<ClientSecret>) -> Self {
        let providers = configs
            .iter()
            .zip(secrets)
            .map(|(config, secret)| {
                let algorithms: Vec<JwsAlgorithm> =
                    config.algorithms.iter().copied().map(algorithm).collect();
                Provider {
                    config: config.clone(),
                    secret,
                    validations: algorithms
                        .iter()
                        .map(|&a| (a, id_token_validation(config, a)))
                        .collect(),
                    algorithms,
                    discovered: Mutex::default(),
                    discovering: tokio::sync::Mutex::default(),
                }
            })
            .collect();
        Self {
            providers,
            outbound: Arc::default(),
        }
    }

    /// Providers whose secrets are in the configuration (the local server, tests).
    pub fn from_inline_secrets(configs: &[OidcProviderConfig]) -> Result<Self, String> {
        let secrets = configs
            .iter()
            .map(|c| {
                c.client_secret
                    .clone()
                    .ok_or_else(|| format!("provider {:?}: no client_secret", c.id))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(configs, secrets))
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    pub fn configs(&self) -> impl Iterator<Item = &OidcProviderConfig> {
        self.providers.iter().map(|p| &p.config)
    }

    pub fn config(&self, id: &str) -> Option<&OidcProviderConfig> {
        self.provider(id).ok().map(|p| &p.config)
    }

    fn provider(&self, id: &str) -> Result<&Provider, OidcError> {
        self.providers
            .iter()
            .find(|p| p.config.id == id)
            .ok_or(OidcError::UnknownProvider)
    }

    /// The provider's discovery, read again when older than [`DISCOVERY_TTL_SECS`]; when that
    /// fails, the document we have keeps working.
    async fn discovered(
        &self,
        provider: &Provider,
        now: UnixTime,
    ) -> Result<Arc<Discovered>, OidcError> {
        let cached = || {
            provider
                .discovered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        };
        if let Some(d) = cached().filter(|d| now - d.read_at < DISCOVERY_TTL_SECS) {
            return Ok(d);
        }
        let _discovering = provider.discovering.lock().await;
        if let Some(d) = cached().filter(|d| now - d.read_at < DISCOVERY_TTL_SECS) {
            return Ok(d);
        }
        match self.discover(provider, now).await {
            Ok(d) => {
                let d = Arc::new(d);
                *provider
                    .discovered
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(d.clone());
                Ok(d)
            }
            Err(e) => {
                warn!(provider = %provider.config.id, error = %e, "could not read the provider's discovery document");
                cached().ok_or(e)
            }
        }
    }

    async fn discover(&self, provider: &Provider, now: UnixTime) -> Result<Discovered, OidcError> {
        let config = &provider.config;
        let url = format!(
            "{}/.well-known/openid-configuration",
            config.issuer.trim_end_matches('/')
        );
        let body = self.outbound.get_json(&url).await.map_err(unavailable)?;
        let doc: Discovery = serde_json::from_slice(&body)
            .map_err(|e| OidcError::Unavailable(format!("discovery: {e}")))?;
        // OpenID Connect Discovery 1.0, 4.3: the document speaks for this issuer, exactly.
        if doc.issuer != config.issuer {
            return Err(OidcError::Unavailable(format!(
                "discovery names issuer {:?}",
                doc.issuer
            )));
        }
        for endpoint in [
            &doc.authorization_endpoint,
            &doc.token_endpoint,
            &doc.jwks_uri,
        ] {
            if !crate::config::is_allowed_jwks_uri(endpoint) {
                return Err(OidcError::Unavailable(format!(
                    "discovery endpoint {endpoint:?} is not https"
                )));
            }
        }
        let bad = |e: url::ParseError| OidcError::Unavailable(format!("discovery: {e}"));
        // Basic authentication unless the provider takes the secret in the body only (Apple).
        let methods = doc
            .token_endpoint_auth_methods_supported
            .unwrap_or_default();
        let auth_type = if !methods.is_empty()
            && !methods.iter().any(|m| m == "client_secret_basic")
            && methods.iter().any(|m| m == "client_secret_post")
        {
            AuthType::RequestBody
        } else {
            AuthType::BasicAuth
        };
        let client = oauth2::Client::new(ClientId::new(config.client_id.clone()))
            .set_client_secret(oauth2::ClientSecret::new(
                provider.secret.expose().to_owned(),
            ))
            .set_auth_uri(AuthUrl::new(doc.authorization_endpoint).map_err(bad)?)
            .set_token_uri(TokenUrl::new(doc.token_endpoint).map_err(bad)?)
            .set_auth_type(auth_type);
        Ok(Discovered {
            client,
            keys: RemoteKeys::new(doc.jwks_uri, provider.algorithms.clone()),
            iss_parameter: doc.authorization_response_iss_parameter_supported,
            read_at: now,
        })
    }

    /// The provider's authorization URL for this login state.
    pub async fn authorization_url(
        &self,
        id: &str,
        request: &AuthorizationRequest<'_>,
        now: UnixTime,
    ) -> Result<String, OidcError> {
        let provider = self.provider(id)?;
        let discovered = self.discovered(provider, now).await?;
        let callback = RedirectUrl::new(request.callback.to_owned())
            .map_err(|e| OidcError::Unavailable(format!("callback: {e}")))?;
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            request.verifier.to_owned(),
        ));
        let mut authorize = discovered
            .client
            .authorize_url(|| CsrfToken::new(request.state.to_owned()))
            .add_scopes(provider.config.scopes.iter().cloned().map(Scope::new))
            .add_extra_param("nonce", request.nonce)
            .set_pkce_challenge(challenge)
            .set_redirect_uri(Cow::Owned(callback));
        if provider.config.response_mode == ResponseMode::FormPost {
            authorize = authorize.add_extra_param("response_mode", "form_post");
        }
        Ok(authorize.url().0.into())
    }

    /// Whether the provider promises RFC 9207's `iss` on every authorization response (then an
    /// answer without it is refused).
    pub async fn sends_iss(&self, id: &str, now: UnixTime) -> Result<bool, OidcError> {
        let provider = self.provider(id)?;
        Ok(self.discovered(provider, now).await?.iss_parameter)
    }

    /// Trades the provider's code for its ID token, and verifies it for `nonce`.
    pub async fn exchange(
        &self,
        id: &str,
        code: &str,
        verifier: &str,
        callback: &str,
        nonce: &str,
        now: UnixTime,
    ) -> Result<ProviderIdentity, OidcError> {
        let provider = self.provider(id)?;
        let discovered = self.discovered(provider, now).await?;
        let callback = RedirectUrl::new(callback.to_owned())
            .map_err(|e| OidcError::Unavailable(format!("callback: {e}")))?;
        let http = Http(&self.outbound);
        let answer = discovered
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
            .set_redirect_uri(Cow::Owned(callback))
            .request_async(&http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(refusal) => {
                    OidcError::CodeRefused(refusal.error().to_string())
                }
                RequestTokenError::Request(e) => unavailable(e),
                // The body may hold tokens: never logged.
                RequestTokenError::Parse(..) => {
                    OidcError::Unavailable("the token endpoint's answer made no sense".into())
                }
                RequestTokenError::Other(e) => OidcError::Unavailable(e),
            })?;
        let id_token = &answer.extra_fields().id_token;
        self.verify_id_token(provider, &discovered, id_token, nonce, now)
            .await
    }

    async fn verify_id_token(
        &self,
        provider: &Provider,
        discovered: &Discovered,
        token: &str,
        nonce: &str,
        now: UnixTime,
    ) -> Result<ProviderIdentity, OidcError> {
        // Ours first: size and shape, `crit`, and the algorithm by its name (`none` and HMAC
        // are not algorithms here), then this provider's allowlist.
        let compact = jws::parse(token).map_err(TokenError::from)?;
        if !provider.algorithms.contains(&compact.algorithm) {
            return Err(OidcError::IdToken(format!(
                "alg {:?} not allowed",
                compact.algorithm
            )));
        }
        let key = discovered
            .keys
            .signer_of(&self.outbound, &compact, now)
            .await?;
        let validation = provider
            .validations
            .iter()
            .find(|(a, _)| *a == compact.algorithm)
            .map(|(_, v)| v)
            .ok_or(TokenError::BadSignature)?;
        // The crate: the signature, `alg`, `iss`, `aud`, and the required claims present.
        let claims = jsonwebtoken::decode::<Value>(token, key.decoding_key(), validation)
            .map_err(|e| from_crate_error(&e))?
            .claims;
        check_claims(&provider.config, &claims, nonce, now)
    }
}

/// `oauth2`'s HTTP client: ours, bounded. A named type with a boxed `Send` future, so the
/// exchange's future stays `Send` for every lifetime (a closure's would not).
struct Http<'a>(&'a Outbound);

impl<'c> oauth2::AsyncHttpClient<'c> for Http<'_> {
    type Error = FetchError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, FetchError>> + Send + 'c>,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let request = hyper::Request::from_parts(parts, Full::new(Bytes::from(body)));
            let (status, body) = self.0.send(request).await?;
            hyper::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(body.to_vec())
                .map_err(|e| FetchError(e.to_string()))
        })
    }
}

fn unavailable(e: FetchError) -> OidcError {
    OidcError::Unavailable(e.0)
}

/// After the crate: `nonce` is ours (constant time), `azp` names our client when present (and
/// is present when `aud` lists others), the times hold on our clock, `sub` is sane.
fn check_claims(
    config: &OidcProviderConfig,
    claims: &Value,
    nonce: &str,
    now: UnixTime,
) -> Result<ProviderIdentity, OidcError> {
    let refused = |why: &str| OidcError::IdToken(why.to_owned());
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let sent = text("nonce").ok_or_else(|| refused("no nonce"))?;
    if !bool::from(sent.as_bytes().ct_eq(nonce.as_bytes())) {
        return Err(refused("nonce is not this login's"));
    }
    let audiences = match claims.get("aud") {
        Some(Value::Array(list)) => list.len(),
        _ => 1,
    };
    match text("azp") {
        Some(azp) if azp != config.client_id => return Err(refused("azp is another client")),
        None if audiences > 1 => return Err(refused("several audiences and no azp")),
        _ => {}
    }
    let time = |name: &str| claims.get(name).and_then(Value::as_i64);
    let exp = time("exp").ok_or_else(|| refused("exp"))?;
    let iat = time("iat").ok_or_else(|| refused("iat"))?;
    if now >= exp.saturating_add(LEEWAY_SECS) {
        return Err(refused("expired"));
    }
    if iat > now + LEEWAY_SECS || iat < now - MAX_ID_TOKEN_AGE_SECS {
        return Err(refused("iat is in the future or too old"));
    }
    let subject = text("sub")
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .ok_or_else(|| refused("sub"))?;
    // Apple sends booleans as strings.
    let email_verified = match claims.get(&config.email_verified_claim) {
        Some(Value::Bool(verified)) => *verified,
        Some(Value::String(verified)) => verified == "true",
        _ => false,
    };
    let amr = match claims.get("amr") {
        Some(Value::Array(values)) => {
            // Each value once, in the provider's order.
            let mut amr: Vec<Amr> = Vec::new();
            for value in values
                .iter()
                .filter_map(Value::as_str)
                .filter_map(Amr::registered)
            {
                if !amr.contains(&value) {
                    amr.push(value);
                }
            }
            amr
        }
        _ => Vec::new(),
    };
    Ok(ProviderIdentity {
        subject: subject.to_owned(),
        email: text("email").map(str::to_owned),
        email_verified,
        amr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OidcProviderConfig {
        crate::config::oidc::parse(Some(
            r#"[{"id":"op","issuer":"https://op.example","client_id":"app","client_secret":"s","allowed_redirect_uris":["https://app.example/done"]}]"#.into(),
        ))
        .unwrap()
        .remove(0)
    }

    fn claims(extra: Value) -> Value {
        let mut claims = serde_json::json!({
            "iss": "https://op.example", "aud": "app", "sub": "u-1", "nonce": "n-1",
            "iat": 1_000, "exp": 1_060, "email": "a@example.com", "email_verified": true,
        });
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    }

    #[test]
    fn an_identity_id_is_the_start_of_a_sha256() {
        let id = crate::model::identity_id("op", "u-1");
        assert_eq!(id, crate::tokens::token_hash("op\nu-1")[..32]);
        assert_ne!(id, crate::model::identity_id("op", "u-2"));
        // The provider is part of it: one `sub` at two providers is two identities.
        assert_ne!(id, crate::model::identity_id("op2", "u-1"));
    }

    #[test]
    fn an_honest_id_token_names_its_user() {
        let id = check_claims(
            &config(),
            &claims(serde_json::json!({"amr": ["pwd", "mfa", "made-up", "pwd"]})),
            "n-1",
            1_010,
        )
        .unwrap();
        assert_eq!(id.subject, "u-1");
        assert_eq!(id.email.as_deref(), Some("a@example.com"));
        assert!(id.email_verified);
        assert_eq!(id.amr, [Amr::Pwd, Amr::Mfa]);
    }

    #[test]
    fn nonce_azp_and_times_are_checked() {
        let c = config();
        let refused =
            |extra: Value, now: i64| check_claims(&c, &claims(extra), "n-1", now).is_err();
        assert!(refused(serde_json::json!({"nonce": "n-2"}), 1_010));
        assert!(refused(serde_json::json!({"azp": "other"}), 1_010));
        assert!(refused(serde_json::json!({"aud": ["app", "other"]}), 1_010));
        assert!(!refused(
            serde_json::json!({"aud": ["app", "other"], "azp": "app"}),
            1_010
        ));
        assert!(refused(serde_json::json!({}), 1_060 + LEEWAY_SECS));
        assert!(refused(
            serde_json::json!({"iat": 2_000, "exp": 2_060}),
            1_010
        ));
        assert!(refused(
            serde_json::json!({"iat": 0, "exp": 5_000}),
            1_000 + MAX_ID_TOKEN_AGE_SECS
        ));
        assert!(refused(serde_json::json!({"sub": ""}), 1_010));
    }

    #[test]
    fn email_verified_is_true_only_when_the_provider_says_so() {
        let c = config();
        let verified = |v: Value| {
            check_claims(
                &c,
                &claims(serde_json::json!({"email_verified": v})),
                "n-1",
                1_010,
            )
            .unwrap()
            .email_verified
        };
        assert!(verified(Value::Bool(true)));
        assert!(verified("true".into()));
        assert!(!verified(Value::Bool(false)));
        assert!(!verified("yes".into()));
        assert!(!verified(Value::Null));
    }
}
