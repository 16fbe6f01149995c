//! A hostile OpenID Provider on loopback, for the sign-in cases a real provider will not
//! produce. It runs an honest authorization-code flow (discovery, `/authorize`, `/token` with
//! PKCE and client authentication, ES256 ID tokens) and can be told to lie at each step: a
//! mixed-up issuer, a missing or foreign `iss` parameter, an error redirect, and ID tokens
//! spoiled in the ways [`Tamper`] lists. Odd client input gets a 400, never a panic.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The one client the fake knows; the service under test is configured as it.
pub const FAKE_CLIENT_ID: &str = "app";
/// That client's secret, checked at the token endpoint.
pub const FAKE_CLIENT_SECRET: &str = "fake-secret-1f2e3d4c5b6a7980";
/// The kid of the fake's only key.
const KID: &str = "fake-1";

/// What the last `/authorize` request asked for, so a test can check what the service sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub scope: Option<String>,
}

/// The `iss` parameter of the authorization response (RFC 9207).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum IssParam {
    /// The fake's own issuer, as an honest provider sends it.
    #[default]
    Own,
    /// Left out, as providers without RFC 9207 do.
    Omit,
    /// Another issuer's: a mix-up attack.
    Other(String),
}

/// How the next ID tokens are spoiled: each is a token a real provider would never sign.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Tamper {
    /// Honest.
    #[default]
    None,
    /// `{"alg":"none"}` and an empty signature part: `header.payload.`.
    AlgNone,
    /// HMAC-SHA256 with this secret, under the EC key's kid (algorithm confusion).
    Hs256(String),
    /// Issued ten minutes ago, expired five minutes ago.
    Expired,
    /// Another `aud`.
    Audience(String),
    /// Another `nonce` than the authorization request's.
    Nonce(String),
    /// Another `iss`.
    Issuer(String),
    /// Another `azp`.
    Azp(String),
    /// These claims merged over the honest ones (`{"amr": [..]}`, `{"email_verified": "true"}`).
    Claims(Value),
    /// Signed by the published key, under a kid the JWK Set does not list.
    UnknownKid,
    /// A valid token with the last byte of its signature flipped.
    Signature,
}

#[derive(Default)]
struct State {
    discovery_issuer: Option<String>,
    iss_param: IssParam,
    error: Option<String>,
    account: (String, String, bool),
    now: Option<i64>,
    tamper: Tamper,
    /// Each code issued, with the request it is bound to; `None` once spent.
    codes: HashMap<String, Option<AuthorizeRequest>>,
    last_authorize: Option<AuthorizeRequest>,
    token_requests: usize,
    replays: usize,
}

struct Inner {
    issuer: String,
    key: EcdsaKeyPair,
    rng: SystemRandom,
    state: Mutex<State>,
}

/// A running fake provider; it serves for as long as the test's runtime runs.
pub struct FakeIssuer {
    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub issuer: String,
    /// Where it listens, for a client of the test.
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

type Reply = Response<Full<Bytes>>;

impl FakeIssuer {
    /// An honest provider on a free port with a fresh ES256 key (kid `fake-1`), knowing the
    /// client [`FAKE_CLIENT_ID`] and the account `fake-user-1` / `fake@example.com` (verified).
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("an EC key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("an EC key");
        let state = State {
            account: ("fake-user-1".into(), "fake@example.com".into(), true),
            ..State::default()
        };
        let issuer = format!("http://{addr}");
        let inner = Arc::new(Inner {
            issuer: issuer.clone(),
            key,
            rng,
            state: Mutex::new(state),
        });
        let shared = inner.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let inner = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| inner.clone().handle(request));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            issuer,
            addr,
            inner,
        }
    }

    /// Publishes this `issuer` in the discovery document instead of its own (a mix-up).
    pub fn set_discovery_issuer(&self, issuer: Option<String>) {
        self.inner.state().discovery_issuer = issuer;
    }

    /// Chooses the `iss` parameter of the next authorization responses.
    pub fn set_iss_param(&self, iss: IssParam) {
        self.inner.state().iss_param = iss;
    }

    /// Makes `/authorize` redirect with `error=<error>` instead of a code (`None`: codes again).
    pub fn set_error(&self, error: Option<String>) {
        self.inner.state().error = error;
    }

    /// The account the next ID tokens are about.
    pub fn set_account(&self, sub: &str, email: &str, email_verified: bool) {
        self.inner.state().account = (sub.into(), email.into(), email_verified);
    }

    /// Fixes the provider's "now" (Unix seconds), to agree with the service's manual clock.
    pub fn set_now(&self, now: i64) {
        self.inner.state().now = Some(now);
    }

    /// Spoils the next ID tokens (until set again; [`Tamper::None`] is honest).
    pub fn set_tamper(&self, tamper: Tamper) {
        self.inner.state().tamper = tamper;
    }

    /// What the last well-formed `/authorize` request asked for.
    pub fn last_authorize(&self) -> Option<AuthorizeRequest> {
        self.inner.state().last_authorize.clone()
    }

    /// How many requests reached the token endpoint, refused ones included.
    pub fn token_requests(&self) -> usize {
        self.inner.state().token_requests
    }

    /// How many times a code already exchanged was presented again.
    pub fn replays(&self) -> usize {
        self.inner.state().replays
    }
}

impl Inner {
    /// The state, even after a test panicked holding it.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn handle(
        self: Arc<Self>,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> Result<Reply, Infallible> {
        let (parts, body) = request.into_parts();
        let query = form(parts.uri.query().unwrap_or("").as_bytes());
        Ok(match (&parts.method, parts.uri.path()) {
            (&Method::GET, "/.well-known/openid-configuration") => self.discovery(),
            (&Method::GET, "/jwks") => self.jwks(),
            (&Method::GET, "/authorize") => match query {
                Some(query) => self.authorize(&query),
                None => oauth_error(400, "invalid_request"),
            },
            (&Method::POST, "/token") => match body.collect().await.map(|b| form(&b.to_bytes())) {
                Ok(Some(form)) => self.token(&parts.headers, &form),
                _ => oauth_error(400, "invalid_request"),
            },
            _ => json_reply(404, json!({"error": "not_found"})),
        })
    }

    fn discovery(&self) -> Reply {
        let issuer = &self.issuer;
        let published = self.state().discovery_issuer.clone();
        json_reply(
            200,
            json!({
                "issuer": published.unwrap_or_else(|| issuer.clone()),
                "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": format!("{issuer}/token"),
                "jwks_uri": format!("{issuer}/jwks"),
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported":
                    ["client_secret_basic", "client_secret_post"],
                "scopes_supported": ["openid", "email"],
                "authorization_response_iss_parameter_supported": true,
            }),
        )
    }

    fn jwks(&self) -> Reply {
        // The uncompressed point: 0x04, x, y.
        let point = self.key.public_key().as_ref();
        json_reply(
            200,
            json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": KID, "alg": "ES256", "use": "sig",
                             "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])}]}),
        )
    }

    fn authorize(&self, query: &HashMap<String, String>) -> Reply {
        let get = |name: &str| query.get(name).cloned();
        let (Some(client_id), Some(redirect_uri)) = (get("client_id"), get("redirect_uri")) else {
            return oauth_error(400, "invalid_request");
        };
        // An unknown client or a broken redirect is shown an error, never redirected.
        let Ok(mut target) = url::Url::parse(&redirect_uri) else {
            return oauth_error(400, "invalid_request");
        };
        if client_id != FAKE_CLIENT_ID {
            return oauth_error(400, "invalid_client");
        }
        let request = AuthorizeRequest {
            client_id,
            redirect_uri,
            state: get("state"),
            nonce: get("nonce"),
            code_challenge: get("code_challenge"),
            code_challenge_method: get("code_challenge_method"),
            scope: get("scope"),
        };
        let mut state = self.state();
        state.last_authorize = Some(request.clone());
        let error = match get("response_type").as_deref() {
            Some("code") => state.error.clone(),
            _ => Some("unsupported_response_type".into()),
        };
        {
            let mut pairs = target.query_pairs_mut();
            match error {
                Some(error) => pairs.append_pair("error", &error),
                None => {
                    let code = uuid::Uuid::new_v4().simple().to_string();
                    state.codes.insert(code.clone(), Some(request.clone()));
                    pairs.append_pair("code", &code)
                }
            };
            if let Some(value) = &request.state {
                pairs.append_pair("state", value);
            }
            let iss = match &state.iss_param {
                IssParam::Own => Some(self.issuer.as_str()),
                IssParam::Other(other) => Some(other.as_str()),
                IssParam::Omit => None,
            };
            if let Some(iss) = iss {
                pairs.append_pair("iss", iss);
            }
        }
        Response::builder()
            .status(302)
            .header("location", target.as_str())
            .body(Full::new(Bytes::new()))
            .unwrap_or_else(|_| oauth_error(400, "invalid_request"))
    }

    fn token(&self, headers: &HeaderMap, form: &HashMap<String, String>) -> Reply {
        let mut guard = self.state();
        let state = &mut *guard;
        state.token_requests += 1;
        if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
            return oauth_error(400, "unsupported_grant_type");
        }
        // Exactly one way of client authentication (RFC 6749 section 2.3).
        let basic = headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Basic "))
            .map(|b| {
                STANDARD
                    .decode(b.trim())
                    .ok()
                    .and_then(|d| String::from_utf8(d).ok())
            });
        let (client_id, secret) = match (basic, form.get("client_secret")) {
            (Some(Some(pair)), None) => match pair.split_once(':') {
                Some((id, secret)) => (id.to_owned(), secret.to_owned()),
                None => return oauth_error(401, "invalid_client"),
            },
            (None, Some(secret)) => (
                form.get("client_id").cloned().unwrap_or_default(),
                secret.clone(),
            ),
            (Some(_), Some(_)) => return oauth_error(400, "invalid_request"),
            _ => return oauth_error(401, "invalid_client"),
        };
        if client_id != FAKE_CLIENT_ID || secret != FAKE_CLIENT_SECRET {
            return oauth_error(401, "invalid_client");
        }
        if form.get("client_id").is_some_and(|id| *id != client_id) {
            return oauth_error(400, "invalid_request");
        }
        let Some(slot) = form.get("code").and_then(|c| state.codes.get_mut(c)) else {
            return oauth_error(400, "invalid_grant");
        };
        let Some(bound) = slot.as_ref() else {
            state.replays += 1;
            return oauth_error(400, "invalid_grant");
        };
        if bound.client_id != client_id || form.get("redirect_uri") != Some(&bound.redirect_uri) {
            return oauth_error(400, "invalid_grant");
        }
        // PKCE (RFC 7636): a verifier of 43 to 128 characters whose S256 is the challenge.
        match (&bound.code_challenge, form.get("code_verifier")) {
            (Some(challenge), Some(verifier))
                if (43..=128).contains(&verifier.len())
                    && B64.encode(digest(&SHA256, verifier.as_bytes())) == *challenge => {}
            (None, None) => {}
            _ => return oauth_error(400, "invalid_grant"),
        }
        // Spent by its first successful exchange only, so a refused try can be followed by
        // the right one.
        let nonce = slot.take().and_then(|bound| bound.nonce);
        let id_token = self.id_token(state, nonce);
        json_reply(
            200,
            json!({"access_token": "opaque", "token_type": "Bearer", "expires_in": 60,
                   "id_token": id_token}),
        )
    }

    fn id_token(&self, state: &State, nonce: Option<String>) -> String {
        let now = state.now.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
        let (sub, email, verified) = &state.account;
        let mut claims = json!({"iss": self.issuer, "sub": sub, "aud": FAKE_CLIENT_ID,
            "azp": FAKE_CLIENT_ID, "exp": now + 60, "iat": now, "email": email,
            "email_verified": verified});
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        let mut header = json!({"alg": "ES256", "kid": KID, "typ": "JWT"});
        match &state.tamper {
            Tamper::Expired => {
                claims["iat"] = json!(now - 600);
                claims["exp"] = json!(now - 300);
            }
            Tamper::Audience(aud) => claims["aud"] = json!(aud),
            Tamper::Nonce(nonce) => claims["nonce"] = json!(nonce),
            Tamper::Issuer(iss) => claims["iss"] = json!(iss),
            Tamper::Azp(azp) => claims["azp"] = json!(azp),
            Tamper::Claims(extra) => {
                if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
                    claims.extend(extra.clone());
                }
            }
            Tamper::UnknownKid => header["kid"] = json!("fake-unknown"),
            Tamper::AlgNone => header = json!({"alg": "none"}),
            Tamper::Hs256(_) => header["alg"] = json!("HS256"),
            Tamper::None | Tamper::Signature => {}
        }
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature = match &state.tamper {
            Tamper::AlgNone => Vec::new(),
            Tamper::Hs256(secret) => {
                let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
                hmac::sign(&key, input.as_bytes()).as_ref().to_vec()
            }
            tamper => {
                let signed = self.key.sign(&self.rng, input.as_bytes());
                let mut signature = signed.map(|s| s.as_ref().to_vec()).unwrap_or_default();
                if let (Tamper::Signature, Some(last)) = (tamper, signature.last_mut()) {
                    *last ^= 1;
                }
                signature
            }
        };
        format!("{input}.{}", B64.encode(signature))
    }
}

/// Form or query parameters; `None` when one is repeated (RFC 6749 section 3.1).
fn form(bytes: &[u8]) -> Option<HashMap<String, String>> {
    let mut parameters = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(bytes) {
        if parameters
            .insert(name.into_owned(), value.into_owned())
            .is_some()
        {
            return None;
        }
    }
    Some(parameters)
}

fn json_reply(status: u16, body: Value) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    response
}

fn oauth_error(status: u16, error: &str) -> Reply {
    json_reply(status, json!({"error": error}))
}
